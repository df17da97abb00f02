//! Inventory -> per-node files. Every function here is pure: the same inventory and inputs
//! give the same bytes (no clock, no randomness, no I/O). Secrets and run-time values come
//! in through [`Inputs`].

pub mod cni;
pub mod containerd;
pub mod frontdoor;
pub mod host;
pub mod keepalived_haproxy;
pub mod kubeadm;
pub mod units;

use inventory::{EtcdTopology, FrontdoorKind, Inventory, Node};
use serde::Serialize;

/// One file kubeha puts on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Artifact {
    /// Absolute path on the node.
    pub path: String,
    /// Unix permission bits, e.g. 0o644.
    pub mode: u32,
    pub owner: String,
    /// Shared: a bundle's hundreds of megabytes go to every node without a copy each.
    pub contents: std::sync::Arc<[u8]>,
    /// Private keys and tokens: never printed, written 0600.
    pub sensitive: bool,
    /// What the file is for, one line.
    pub purpose: String,
}

impl Artifact {
    pub fn text(path: &str, mode: u32, purpose: &str, contents: String) -> Self {
        Artifact {
            path: path.to_string(),
            mode,
            owner: "root:root".to_string(),
            contents: contents.into_bytes().into(),
            sensitive: false,
            purpose: purpose.to_string(),
        }
    }

    pub fn secret(path: &str, purpose: &str, contents: Vec<u8>) -> Self {
        Artifact {
            path: path.to_string(),
            mode: 0o600,
            owner: "root:root".to_string(),
            contents: contents.into(),
            sensitive: true,
            purpose: purpose.to_string(),
        }
    }
}

/// Values that are not in the inventory: minted per run or read from the PKI store.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}` minted for this run.
    pub bootstrap_token: String,
    /// `sha256:<hex>` of the cluster CA's public key, once the PKI is issued.
    pub ca_cert_hash: Option<String>,
    /// The etcd an external member's unit runs: Debian's package, or a kubeha bundle's.
    pub etcd_binary: String,
}

impl Inputs {
    /// Inputs for rendering when nothing has been minted yet (tests, `plan` previews).
    pub fn placeholder() -> Self {
        Inputs {
            bootstrap_token: "abcdef.0123456789abcdef".into(),
            ca_cert_hash: None,
            etcd_binary: paths::ETCD_PACKAGE_BINARY.into(),
        }
    }
}

/// Where the kubeadm, front door and etcd files live on a node.
pub mod paths {
    pub const KUBEADM_INIT: &str = "/etc/kubeha/kubeadm-init.yaml";
    pub const KUBEADM_JOIN: &str = "/etc/kubeha/kubeadm-join.yaml";
    pub const FRONTDOOR_CONFIG: &str = "/etc/kubeha/frontdoor.yaml";
    pub const FRONTDOOR_UNIT: &str = "/etc/systemd/system/kubeha-frontdoor.service";
    pub const ETCD_UNIT: &str = "/etc/systemd/system/etcd.service";
    pub const ETCD_INITIAL_ENV: &str = "/etc/kubeha/etcd-initial.env";
    /// Written on the node by etcd-member.sh when the member joins a running cluster.
    pub const ETCD_JOIN_ENV: &str = "/var/lib/kubeha/etcd-join.env";
    pub const HOSTS_BLOCK: &str = "/etc/kubeha/hosts.block";
    pub const KEEPALIVED_CONF: &str = "/etc/keepalived/keepalived.conf";
    pub const KEEPALIVED_CHECK: &str = "/etc/keepalived/check_apiserver.sh";
    pub const HAPROXY_CFG: &str = "/etc/haproxy/haproxy.cfg";
    pub const CA_CERT: &str = "/etc/kubernetes/pki/ca.crt";
    /// kubeha itself on control-plane nodes: it runs the front door.
    pub const KUBEHA_BINARY: &str = "/usr/local/bin/kubeha";
    /// `cni: bridge`: the network config, and the pod routes with their boot unit.
    pub const CNI_BRIDGE_CONF: &str = "/etc/cni/net.d/10-kubeha-bridge.conflist";
    pub const POD_ROUTES_SCRIPT: &str = "/etc/kubeha/pod-routes.sh";
    pub const POD_ROUTES_UNIT: &str = "/etc/systemd/system/kubeha-pod-routes.service";
    /// etcd from a distribution package, and from a kubeha bundle (`BUNDLE_BIN_DIR`).
    pub const ETCD_PACKAGE_BINARY: &str = "/usr/bin/etcd";
    pub const ETCD_BUNDLE_BINARY: &str = "/usr/local/bin/etcd";
    pub const CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";
    /// The kubelet unit and kubeadm's drop-in, written for a kubeha bundle's static binaries.
    pub const KUBELET_UNIT: &str = "/etc/systemd/system/kubelet.service";
    pub const KUBELET_DROPIN: &str = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf";
    /// Where a kubeha bundle's binaries are installed (kubeadm, kubelet, kubectl, crictl, …).
    pub const BUNDLE_BIN_DIR: &str = "/usr/local/bin";
    pub const KUBELET_BINARY: &str = "/usr/local/bin/kubelet";
    /// Offline packages (`packages.source: bundle`) are copied here before they are installed.
    pub const BUNDLE_DIR: &str = "/var/lib/kubeha/bundle";
    /// This run's bootstrap token, read by the first control-plane node's token step.
    pub const JOIN_TOKEN: &str = "/etc/kubeha/join-token";
}

/// Renders every node's files of one inventory. What does not depend on the node (the
/// /etc/hosts block, containerd's config, the pod routes, unit files) is rendered once, here,
/// and shared by every node's artifact list (`Arc` contents): rendered per node, a 5,000-node
/// cluster's hosts block alone made `plan` quadratic (5,000 copies of 150 KB).
pub struct Renderer<'a> {
    inv: &'a Inventory,
    inputs: &'a Inputs,
    first_control_plane: &'a str,
    /// A node's place in the inventory, for `cni: bridge`'s /24 per node.
    index: std::collections::HashMap<&'a str, usize>,
    hosts: Artifact,
    modules: Artifact,
    containerd: Artifact,
    crictl: Artifact,
    journald: Option<Artifact>,
    /// `cni: bridge`: the pod routes script and its boot unit.
    pod_routes: Option<[Artifact; 2]>,
    mirror_hosts: Vec<Artifact>,
    proxy_dropin: Option<Artifact>,
    /// Builtin front door: its unit; keepalived + haproxy: the check script and haproxy.cfg.
    frontdoor_common: Vec<Artifact>,
}

impl<'a> Renderer<'a> {
    pub fn new(inv: &'a Inventory, inputs: &'a Inputs) -> Self {
        let bridge = inv.networking.cni == inventory::Cni::Bridge;
        Renderer {
            inv,
            inputs,
            first_control_plane: &inv.first_control_plane().name,
            index: if bridge {
                inv.nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.name.as_str(), i))
                    .collect()
            } else {
                Default::default()
            },
            hosts: host::hosts_block(inv),
            modules: host::modules(inv),
            containerd: containerd::config(inv),
            crictl: host::crictl(),
            journald: inv.host.journald.as_ref().map(host::journald),
            pod_routes: bridge.then(|| [cni::routes_script(inv), cni::routes_unit()]),
            mirror_hosts: containerd::mirror_hosts(inv),
            proxy_dropin: containerd::proxy_dropin(inv),
            frontdoor_common: match inv.frontdoor.kind {
                FrontdoorKind::Builtin => vec![units::frontdoor()],
                FrontdoorKind::KeepalivedHaproxy => vec![
                    keepalived_haproxy::check_script(inv),
                    keepalived_haproxy::haproxy_cfg(inv),
                ],
                FrontdoorKind::External => vec![],
            },
        }
    }

    /// Every file for one node, in a stable order.
    pub fn node_artifacts(&self, node: &Node) -> Vec<Artifact> {
        let (inv, inputs) = (self.inv, self.inputs);
        let mut out = vec![
            self.hosts.clone(),
            host::sysctl(inv, node),
            self.modules.clone(),
            self.containerd.clone(),
            self.crictl.clone(),
        ];
        out.extend(self.journald.iter().cloned());
        if let Some([script, unit]) = &self.pod_routes {
            let index = self.index[node.name.as_str()];
            out.push(cni::bridge_conflist(inv, index));
            out.push(script.clone());
            out.push(unit.clone());
        }
        out.extend(self.mirror_hosts.iter().cloned());
        out.extend(self.proxy_dropin.iter().cloned());
        if node.roles.control_plane {
            if node.name == self.first_control_plane {
                out.push(kubeadm::init_config(inv, node, inputs));
            } else {
                out.push(kubeadm::join_config(inv, node, inputs));
            }
            match inv.frontdoor.kind {
                FrontdoorKind::Builtin => out.push(frontdoor::config(inv, node)),
                FrontdoorKind::KeepalivedHaproxy => {
                    out.push(keepalived_haproxy::keepalived_conf(inv, node))
                }
                FrontdoorKind::External => {}
            }
            out.extend(self.frontdoor_common.iter().cloned());
        } else if node.roles.worker {
            out.push(kubeadm::join_config(inv, node, inputs));
        }
        if inv.etcd.topology == EtcdTopology::External && node.roles.etcd {
            out.push(units::etcd_initial_env(inv));
            out.push(units::etcd(inv, node, &inputs.etcd_binary));
        }
        out
    }
}
