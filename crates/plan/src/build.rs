use std::collections::BTreeMap;

use inventory::{EtcdTopology, FrontdoorKind, Inventory};

use crate::steps;
use crate::{Artifact, NodePlan, Plan};

/// What the Plan needs besides the inventory, injected so building stays pure.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub render: render::Inputs,
    /// Certificate files per node name from the PKI store; `None` until it is issued.
    pub pki: Option<BTreeMap<String, Vec<Artifact>>>,
    /// kubeha's own executable, installed on control-plane nodes for the builtin front door.
    /// `None` in previews: the plan then says the file comes from the running binary.
    pub kubeha_binary: Option<Vec<u8>>,
    /// `packages.source: bundle`: the .deb files, already at their path on the node
    /// (`render::paths::BUNDLE_DIR`).
    pub bundle: Vec<Artifact>,
}

impl Inputs {
    pub fn placeholder() -> Self {
        Inputs {
            render: render::Inputs::placeholder(),
            pki: None,
            kubeha_binary: None,
            bundle: Vec::new(),
        }
    }
}

pub fn build(inv: &Inventory, inputs: &Inputs) -> Plan {
    let nodes = inv
        .nodes
        .iter()
        .map(|node| {
            let mut artifacts = render::node_artifacts(inv, node, &inputs.render);
            let pki_files: Vec<Artifact> = inputs
                .pki
                .as_ref()
                .and_then(|m| m.get(&node.name))
                .cloned()
                .unwrap_or_default();
            let pki_paths: Vec<String> = pki_files.iter().map(|a| a.path.clone()).collect();
            artifacts.extend(pki_files);
            if inv.packages.source == inventory::PackageSource::Bundle {
                artifacts.extend(inputs.bundle.iter().cloned());
            }
            if node.roles.control_plane && inv.frontdoor.kind == FrontdoorKind::Builtin {
                artifacts.push(Artifact {
                    path: render::paths::KUBEHA_BINARY.to_string(),
                    mode: 0o755,
                    owner: "root:root".to_string(),
                    contents: inputs.kubeha_binary.clone().unwrap_or_default(),
                    sensitive: false,
                    purpose: "kubeha itself (this binary): runs the front door".to_string(),
                });
            }
            if node.roles.control_plane && node.name == inv.first_control_plane().name {
                artifacts.push(Artifact {
                    path: render::paths::JOIN_TOKEN.to_string(),
                    mode: 0o600,
                    owner: "root:root".to_string(),
                    contents: inputs.render.bootstrap_token.clone().into_bytes(),
                    sensitive: true,
                    purpose: "this run's bootstrap token for kubeadm joins".to_string(),
                });
            }
            let steps = steps::for_node(inv, node, &artifacts, &pki_paths);
            NodePlan {
                name: node.name.clone(),
                address: node.address.to_string(),
                roles: node.roles.names(),
                steps,
                artifacts,
            }
        })
        .collect();
    Plan {
        cluster: inv.cluster.name.clone(),
        kubernetes_version: inv.cluster.kubernetes_version.to_string(),
        endpoint: inv.endpoint.host_port(),
        vip: format!("{}/{}", inv.endpoint.vip, inv.endpoint.vip_prefix),
        frontdoor: match inv.frontdoor.kind {
            FrontdoorKind::Builtin => "builtin",
            FrontdoorKind::KeepalivedHaproxy => "keepalived-haproxy",
            FrontdoorKind::External => "external",
        }
        .to_string(),
        etcd_topology: match inv.etcd.topology {
            EtcdTopology::Stacked => "stacked",
            EtcdTopology::External => "external",
        }
        .to_string(),
        pki_pending: inputs.pki.is_none(),
        nodes,
    }
}
