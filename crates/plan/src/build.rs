use std::collections::BTreeMap;

use inventory::{FrontdoorKind, Inventory};

use crate::steps;
use crate::{Artifact, Contents, NodePlan, Plan};

/// What the Plan needs besides the inventory, injected so building stays pure.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub render: render::Inputs,
    /// Certificate files per node name from the PKI store; `None` until it is issued.
    pub pki: Option<BTreeMap<String, Vec<Artifact>>>,
    /// kubeha's own executable, installed on control-plane nodes for the builtin front door.
    /// `None` in previews: the plan then says the file comes from the running binary.
    pub kubeha_binary: Option<std::sync::Arc<[u8]>>,
    /// `packages.source: bundle`: what `packages.bundle` holds, at its path on the node.
    pub bundle: Bundle,
}

/// The offline bundle of `packages.source: bundle`, read from `packages.bundle`.
#[derive(Debug, Clone, Default)]
pub enum Bundle {
    /// No offline bundle: packages come from a repository or the operator.
    #[default]
    None,
    /// A directory of .deb files (kubelet, kubeadm, kubectl, containerd, dependencies), under
    /// `render::paths::BUNDLE_DIR` on every node.
    Debs(Vec<Artifact>),
    /// A `kubeha bundle build` directory: static binaries, image archives and `SHA256SUMS`.
    Kubeha(KubehaBundle),
}

/// A kubeha bundle as files for the nodes (under `render::paths::BUNDLE_DIR`).
#[derive(Debug, Clone)]
pub struct KubehaBundle {
    pub files: Vec<BundleFile>,
    /// The `SHA256SUMS` file; nodes check what they received against it.
    pub sums: Artifact,
    /// Image archives to import into containerd, as `(image name, path on the node)`.
    pub images: Vec<BundleImage>,
}

#[derive(Debug, Clone)]
pub struct BundleFile {
    pub artifact: Artifact,
    /// Only control-plane and etcd nodes need it (`bundle::CONTROL_PLANE_ONLY`).
    pub control_plane_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleImage {
    pub name: String,
    pub path: String,
    pub control_plane_only: bool,
}

impl KubehaBundle {
    /// Whether a node with `roles` needs a file or image marked `control_plane_only`.
    fn wanted(control_plane_only: bool, roles: inventory::Roles) -> bool {
        !control_plane_only || roles.control_plane || roles.etcd
    }

    /// The files one node gets: its binaries and images, and the sums.
    pub fn files_for(&self, roles: inventory::Roles) -> impl Iterator<Item = &Artifact> {
        self.files
            .iter()
            .filter(move |f| Self::wanted(f.control_plane_only, roles))
            .map(|f| &f.artifact)
            .chain(std::iter::once(&self.sums))
    }

    pub fn images_for(&self, roles: inventory::Roles) -> impl Iterator<Item = &BundleImage> {
        self.images
            .iter()
            .filter(move |i| Self::wanted(i.control_plane_only, roles))
    }
}

impl Inputs {
    pub fn placeholder() -> Self {
        Inputs {
            render: render::Inputs::placeholder(),
            pki: None,
            kubeha_binary: None,
            bundle: Bundle::None,
        }
    }
}

pub fn build(inv: &Inventory, inputs: &Inputs) -> Plan {
    let renderer = render::Renderer::new(inv, &inputs.render);
    let first_control_plane = &inv.first_control_plane().name;
    let mut contents = Contents::default();
    let nodes = inv
        .nodes
        .iter()
        .map(|node| {
            let mut artifacts = renderer.node_artifacts(node);
            let pki_files: Vec<Artifact> = inputs
                .pki
                .as_ref()
                .and_then(|m| m.get(&node.name))
                .cloned()
                .unwrap_or_default();
            let pki_paths: Vec<String> = pki_files.iter().map(|a| a.path.clone()).collect();
            artifacts.extend(pki_files);
            if inv.packages.source == inventory::PackageSource::Bundle {
                match &inputs.bundle {
                    Bundle::None => {}
                    Bundle::Debs(debs) => artifacts.extend(debs.iter().cloned()),
                    Bundle::Kubeha(b) => {
                        artifacts.extend(b.files_for(node.roles).cloned());
                        artifacts.extend(render::units::kubelet());
                    }
                }
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
            if node.roles.control_plane && &node.name == first_control_plane {
                artifacts.push(Artifact {
                    path: render::paths::JOIN_TOKEN.to_string(),
                    mode: 0o600,
                    owner: "root:root".to_string(),
                    contents: inputs.render.bootstrap_token.clone().into_bytes().into(),
                    sensitive: true,
                    purpose: "this run's bootstrap token for kubeadm joins".to_string(),
                });
            }
            for a in &mut artifacts {
                a.contents = contents.intern(&a.contents).1;
            }
            let steps = steps::for_node(inv, node, &artifacts, &pki_paths, &inputs.bundle);
            NodePlan {
                name: node.name.clone(),
                address: node.address.to_string(),
                roles: node.roles,
                steps,
                artifacts,
            }
        })
        .collect();
    Plan {
        cluster: inv.cluster.name.clone(),
        kubernetes_version: inv.cluster.kubernetes_version.to_string(),
        endpoint: inv.endpoint.host_port(),
        vip: crate::Vip {
            address: inv.endpoint.vip,
            prefix: inv.endpoint.vip_prefix,
        },
        frontdoor: inv.frontdoor.kind,
        etcd_topology: inv.etcd.topology,
        pki_pending: inputs.pki.is_none(),
        apiserver_port: inv.endpoint.apiserver_port,
        sandbox_image: render::containerd::sandbox_image(inv),
        nodes,
        contents,
    }
}
