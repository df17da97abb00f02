//! The inventory's view of the PKI: the spec the pki crate issues from, and the issued files
//! as Plan artifacts. The pki crate does not know the inventory; this is the one mapping.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use inventory::{Inventory, KeyType};
use pki::{CaKind, NodeId, PkiSpec, Store};

use crate::Artifact;

pub fn spec(inv: &Inventory) -> PkiSpec {
    let node = |n: &inventory::Node| NodeId {
        name: n.name.clone(),
        address: IpAddr::V4(n.address),
    };
    let mut extra = inv.pki.extra_sans.clone();
    if let Some(name) = &inv.endpoint.dns_name {
        extra.insert(0, name.clone());
    }
    let v = inv.cluster.kubernetes_version;
    let mut spec = PkiSpec::new(
        inv.cluster.name.clone(),
        pki::Endpoint {
            vip: IpAddr::V4(inv.endpoint.vip),
            port: inv.endpoint.port,
        },
        inv.control_plane().map(node).collect(),
    );
    spec.cluster_domain = inv.cluster.domain.clone();
    spec.service_cidr = inv.networking.service_cidr.to_string();
    spec.kubernetes_version = pki::KubeVersion {
        major: v.major,
        minor: v.minor,
    };
    spec.etcd = inv.etcd_members().map(node).collect();
    spec.extra_sans = extra;
    spec.key_type = match inv.pki.key_type {
        KeyType::Rsa2048 => pki::KeyType::Rsa2048,
        KeyType::EcdsaP256 => pki::KeyType::EcdsaP256,
    };
    spec.ca_validity = inv.pki.ca_validity;
    spec.leaf_validity = inv.pki.leaf_validity;
    spec
}

/// Per-node certificate files from an issued store, as Plan artifacts (keys and kubeconfigs
/// are sensitive: 0600, never printed).
pub fn artifacts(
    store: &Store,
    inv: &Inventory,
) -> Result<BTreeMap<String, Vec<Artifact>>, pki::PkiError> {
    let files = store.node_artifacts(&spec(inv))?;
    Ok(files
        .into_iter()
        .map(|(node, list)| {
            let arts = list
                .into_iter()
                .map(|a| Artifact {
                    path: a.path.display().to_string(),
                    mode: a.mode,
                    owner: "root:root".into(),
                    sensitive: a.mode & 0o077 == 0,
                    purpose: "certificate material from kubeha's PKI".into(),
                    contents: a.bytes.into(),
                })
                .collect();
            (node, arts)
        })
        .collect())
}

/// The discovery hash of an issued store's cluster CA, if the store exists.
pub fn ca_hash(dir: &Path) -> Option<String> {
    let ca = std::fs::read(dir.join(CaKind::Ca.cert_rel())).ok()?;
    pki::discovery_hash(&ca).ok()
}
