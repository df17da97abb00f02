//! kubeadm configuration as typed structs: InitConfiguration, ClusterConfiguration,
//! JoinConfiguration (kubeadm.k8s.io/v1beta4 from 1.31, v1beta3 before), KubeletConfiguration
//! and KubeProxyConfiguration.

use std::collections::BTreeMap;

use inventory::{EtcdTopology, Inventory, KeyType, KubeVersion, Node};
use serde::Serialize;

use crate::{Artifact, Inputs, paths};

/// v1beta4 writes extra arguments as a list of name/value pairs, v1beta3 as a map.
#[derive(Serialize, Debug, Clone)]
#[serde(untagged)]
pub enum ExtraArgs {
    List(Vec<Arg>),
    Map(BTreeMap<String, String>),
}

#[derive(Serialize, Debug, Clone)]
pub struct Arg {
    pub name: String,
    pub value: String,
}

impl ExtraArgs {
    fn new(v: &KubeVersion, args: Vec<(&str, String)>) -> Option<Self> {
        if args.is_empty() {
            return None;
        }
        Some(if v.minor >= 31 {
            ExtraArgs::List(
                args.into_iter()
                    .map(|(n, value)| Arg {
                        name: n.to_string(),
                        value,
                    })
                    .collect(),
            )
        } else {
            ExtraArgs::Map(args.into_iter().map(|(n, v)| (n.to_string(), v)).collect())
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InitConfiguration {
    api_version: &'static str,
    kind: &'static str,
    bootstrap_tokens: Vec<BootstrapToken>,
    #[serde(rename = "localAPIEndpoint")]
    local_api_endpoint: ApiEndpoint,
    node_registration: NodeRegistration,
    /// Certificates come from kubeha's PKI; kubeadm finds them on disk and keeps them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    skip_phases: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeouts: Option<Timeouts>,
}

/// v1beta4 `timeouts`: only the ones the inventory sets.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Timeouts {
    #[serde(skip_serializing_if = "Option::is_none")]
    control_plane_component_health_check: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kubelet_health_check: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    discovery: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_bootstrap: Option<String>,
}

fn timeouts(inv: &Inventory) -> Option<Timeouts> {
    let t = &inv.kubeadm.timeouts;
    // kubeadm reads metav1.Duration: Go's duration syntax, e.g. 4m0s or 90s.
    let go = |d: Option<std::time::Duration>| d.map(|d| format!("{}s", d.as_secs_f64()));
    (!t.is_empty()).then(|| Timeouts {
        control_plane_component_health_check: go(t.control_plane_health_check),
        kubelet_health_check: go(t.kubelet_health_check),
        discovery: go(t.discovery),
        tls_bootstrap: go(t.tls_bootstrap),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BootstrapToken {
    token: String,
    ttl: &'static str,
    usages: Vec<&'static str>,
    groups: Vec<&'static str>,
    description: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiEndpoint {
    advertise_address: String,
    bind_port: u16,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeRegistration {
    name: String,
    cri_socket: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ignore_preflight_errors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kubelet_extra_args: Option<ExtraArgs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    taints: Option<Vec<Taint>>,
}

#[derive(Serialize)]
struct Taint {
    key: &'static str,
    effect: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterConfiguration {
    api_version: &'static str,
    kind: &'static str,
    cluster_name: String,
    kubernetes_version: String,
    control_plane_endpoint: String,
    image_repository: String,
    networking: ClusterNetworking,
    api_server: ApiServer,
    etcd: EtcdConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    controller_manager: Option<ControlPlaneComponent>,
    /// v1beta4: what kubeadm's own renewals (`upgrade apply`, `certs renew`) issue, so they
    /// keep the inventory's key type and validity instead of kubeadm's RSA-2048 and 1 year.
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_algorithm: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate_validity_period: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_certificate_validity_period: Option<String>,
}

/// A duration as Go's time.ParseDuration reads it: whole hours where it is, else seconds.
fn go_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else {
        format!("{s}s")
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterNetworking {
    pod_subnet: String,
    service_subnet: String,
    dns_domain: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiServer {
    #[serde(rename = "certSANs")]
    cert_sans: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extra_args: Option<ExtraArgs>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ControlPlaneComponent {
    #[serde(skip_serializing_if = "Option::is_none")]
    extra_args: Option<ExtraArgs>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum EtcdConfig {
    Local(LocalEtcd),
    External(ExternalEtcd),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LocalEtcd {
    data_dir: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    extra_args: Option<ExtraArgs>,
    #[serde(rename = "serverCertSANs", skip_serializing_if = "Vec::is_empty")]
    server_cert_sans: Vec<String>,
    #[serde(rename = "peerCertSANs", skip_serializing_if = "Vec::is_empty")]
    peer_cert_sans: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalEtcd {
    endpoints: Vec<String>,
    ca_file: &'static str,
    cert_file: &'static str,
    key_file: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinConfiguration {
    api_version: &'static str,
    kind: &'static str,
    discovery: Discovery,
    node_registration: NodeRegistration,
    #[serde(skip_serializing_if = "Option::is_none")]
    control_plane: Option<JoinControlPlane>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeouts: Option<Timeouts>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Discovery {
    bootstrap_token: DiscoveryToken,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DiscoveryToken {
    api_server_endpoint: String,
    token: String,
    ca_cert_hashes: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinControlPlane {
    #[serde(rename = "localAPIEndpoint")]
    local_api_endpoint: ApiEndpoint,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeletConfiguration {
    api_version: &'static str,
    kind: &'static str,
    cgroup_driver: &'static str,
    max_pods: u32,
    #[serde(rename = "serverTLSBootstrap")]
    server_tls_bootstrap: bool,
    container_log_max_size: String,
    container_log_max_files: u32,
    cluster_domain: String,
    #[serde(rename = "clusterDNS")]
    cluster_dns: Vec<String>,
    #[serde(rename = "failCgroupV1", skip_serializing_if = "Option::is_none")]
    fail_cgroup_v1: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeProxyConfiguration {
    api_version: &'static str,
    kind: &'static str,
    mode: &'static str,
    #[serde(rename = "clusterCIDR")]
    cluster_cidr: String,
}

/// What to write where a value exists only after the PKI is issued.
pub const CA_HASH_PENDING: &str = "sha256:<issued-by-kubeha-pki>";

/// kube-apiserver serving certificate SANs: the VIP, every control-plane name and address,
/// the endpoint name and the user's extras (kubeadm adds the service names itself).
pub fn apiserver_sans(inv: &Inventory) -> Vec<String> {
    let mut v = vec![inv.endpoint.vip.to_string()];
    if let Some(n) = &inv.endpoint.dns_name {
        v.push(n.clone());
    }
    for n in inv.control_plane() {
        v.push(n.name.clone());
        v.push(n.address.to_string());
    }
    v.extend(inv.pki.extra_sans.iter().cloned());
    v.push("127.0.0.1".into());
    v.push("localhost".into());
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
    v
}

fn ms(d: std::time::Duration) -> String {
    d.as_millis().to_string()
}

/// etcd flags from the inventory's tuning (seed 004), shared by stacked and external etcd.
pub fn etcd_tuning_flags(inv: &Inventory) -> Vec<(&'static str, String)> {
    let e = &inv.etcd;
    vec![
        ("quota-backend-bytes", e.quota_backend_bytes.to_string()),
        ("heartbeat-interval", ms(e.heartbeat_interval)),
        ("election-timeout", ms(e.election_timeout)),
        ("snapshot-count", e.snapshot_count.to_string()),
        (
            "auto-compaction-mode",
            e.auto_compaction.mode.as_str().to_string(),
        ),
        (
            "auto-compaction-retention",
            e.auto_compaction.retention.clone(),
        ),
        ("listen-metrics-urls", "http://127.0.0.1:2381".to_string()),
    ]
}

fn node_registration(inv: &Inventory, node: &Node) -> NodeRegistration {
    let v = &inv.cluster.kubernetes_version;
    let mut args = vec![("node-ip", node.address.to_string())];
    if !node.labels.is_empty() {
        let labels: Vec<String> = node
            .labels
            .iter()
            .map(|(k, val)| format!("{k}={val}"))
            .collect();
        args.push(("node-labels", labels.join(",")));
    }
    // Inventory flags, the node's own over the cluster's; kubeha's node-ip and labels stay.
    let mut extra = inv.kubelet.extra_args.clone();
    extra.extend(node.kubelet_extra_args.clone());
    for (name, value) in &extra {
        if !args.iter().any(|(n, _)| n == name) {
            args.push((name.as_str(), value.clone()));
        }
    }
    // A control-plane node that is also a worker takes regular pods: no taint.
    let taints = (node.roles.control_plane && node.roles.worker).then(Vec::new);
    NodeRegistration {
        name: node.name.clone(),
        cri_socket: "unix:///run/containerd/containerd.sock",
        ignore_preflight_errors: inv.kubeadm.ignore_preflight_errors.clone(),
        kubelet_extra_args: ExtraArgs::new(v, args),
        taints,
    }
}

fn cluster_configuration(inv: &Inventory) -> ClusterConfiguration {
    let v = &inv.cluster.kubernetes_version;
    let v1beta4 = v.kubeadm_api() == "kubeadm.k8s.io/v1beta4";
    let etcd = match inv.etcd.topology {
        EtcdTopology::Stacked => {
            // No extra SANs: ClusterConfiguration is the cluster's, so every name here would
            // have to be in every member's certificate (kubeadm join checks them). kubeha's
            // PKI issues each member kubeadm's own list (its name, localhost, its address,
            // 127.0.0.1, ::1), which is all a stacked member is reached by.
            EtcdConfig::Local(LocalEtcd {
                data_dir: inv.etcd.data_dir.clone(),
                extra_args: ExtraArgs::new(v, etcd_tuning_flags(inv)),
                server_cert_sans: Vec::new(),
                peer_cert_sans: Vec::new(),
            })
        }
        EtcdTopology::External => EtcdConfig::External(ExternalEtcd {
            endpoints: inv
                .etcd_members()
                .map(|n| format!("https://{}:2379", n.address))
                .collect(),
            ca_file: "/etc/kubernetes/pki/etcd/ca.crt",
            cert_file: "/etc/kubernetes/pki/apiserver-etcd-client.crt",
            key_file: "/etc/kubernetes/pki/apiserver-etcd-client.key",
        }),
    };
    ClusterConfiguration {
        api_version: v.kubeadm_api(),
        kind: "ClusterConfiguration",
        cluster_name: inv.cluster.name.clone(),
        kubernetes_version: format!("v{v}"),
        control_plane_endpoint: inv.endpoint.host_port(),
        image_repository: inv.images.repository.clone(),
        networking: ClusterNetworking {
            pod_subnet: inv.networking.pod_cidr.to_string(),
            service_subnet: inv.networking.service_cidr.to_string(),
            dns_domain: inv.cluster.domain.clone(),
        },
        api_server: ApiServer {
            cert_sans: apiserver_sans(inv),
            extra_args: None,
        },
        etcd,
        controller_manager: None,
        encryption_algorithm: v1beta4.then_some(match inv.pki.key_type {
            KeyType::Rsa2048 => "RSA-2048",
            KeyType::EcdsaP256 => "ECDSA-P256",
        }),
        certificate_validity_period: v1beta4.then(|| go_duration(inv.pki.leaf_validity)),
        ca_certificate_validity_period: v1beta4.then(|| go_duration(inv.pki.ca_validity)),
    }
}

fn kubelet_configuration(inv: &Inventory) -> KubeletConfiguration {
    KubeletConfiguration {
        api_version: "kubelet.config.k8s.io/v1beta1",
        kind: "KubeletConfiguration",
        cgroup_driver: if inv.runtime.systemd_cgroup {
            "systemd"
        } else {
            "cgroupfs"
        },
        max_pods: inv.kubelet.max_pods,
        server_tls_bootstrap: inv.kubelet.server_tls_bootstrap,
        container_log_max_size: inv.runtime.log_max_size.clone(),
        container_log_max_files: inv.runtime.log_max_files,
        cluster_domain: inv.cluster.domain.clone(),
        cluster_dns: vec![inv.networking.dns_service_ip().to_string()],
        fail_cgroup_v1: inv.kubelet.fail_cgroup_v1,
    }
}

/// The KubeletConfiguration document with `kubelet.extra_config` merged in (validation
/// refused extras for the fields kubeha sets).
fn kubelet_document(inv: &Inventory) -> String {
    if inv.kubelet.extra_config.is_empty() {
        return yaml(&kubelet_configuration(inv));
    }
    let mut doc = serde_json::to_value(kubelet_configuration(inv)).expect("plain data");
    if let Some(map) = doc.as_object_mut() {
        for (k, v) in &inv.kubelet.extra_config {
            map.insert(k.clone(), v.clone());
        }
    }
    yaml(&doc)
}

fn kube_proxy_configuration(inv: &Inventory) -> KubeProxyConfiguration {
    KubeProxyConfiguration {
        api_version: "kubeproxy.config.k8s.io/v1alpha1",
        kind: "KubeProxyConfiguration",
        mode: inv.networking.kube_proxy_mode.as_str(),
        cluster_cidr: inv.networking.pod_cidr.to_string(),
    }
}

fn yaml<T: Serialize>(v: &T) -> String {
    serde_saphyr::to_string(v).expect("kubeadm config is plain data")
}

fn documents(docs: &[String]) -> String {
    let mut s = String::from("# kubeha: rendered from the inventory; kubeha up rewrites it\n");
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            s.push_str("---\n");
        }
        s.push_str(d);
    }
    s
}

/// `kubeadm init --config` on the first control-plane node.
pub fn init_config(inv: &Inventory, node: &Node, inputs: &Inputs) -> Artifact {
    let v = &inv.cluster.kubernetes_version;
    let init = InitConfiguration {
        api_version: v.kubeadm_api(),
        kind: "InitConfiguration",
        bootstrap_tokens: vec![BootstrapToken {
            token: inputs.bootstrap_token.clone(),
            ttl: "2h0m0s",
            usages: vec!["signing", "authentication"],
            groups: vec!["system:bootstrappers:kubeadm:default-node-token"],
            description: "minted by kubeha up for this run's joins",
        }],
        local_api_endpoint: ApiEndpoint {
            advertise_address: node.address.to_string(),
            bind_port: inv.endpoint.apiserver_port,
        },
        node_registration: node_registration(inv, node),
        skip_phases: Vec::new(),
        timeouts: timeouts(inv),
    };
    let docs = [
        yaml(&init),
        yaml(&cluster_configuration(inv)),
        kubelet_document(inv),
        yaml(&kube_proxy_configuration(inv)),
    ];
    Artifact::secret(
        paths::KUBEADM_INIT,
        "kubeadm init configuration (holds the bootstrap token)",
        documents(&docs).into_bytes(),
    )
}

/// `kubeadm join --config` for other control-plane nodes (certificates already
/// distributed, so no --certificate-key) and workers.
pub fn join_config(inv: &Inventory, node: &Node, inputs: &Inputs) -> Artifact {
    let v = &inv.cluster.kubernetes_version;
    let join = JoinConfiguration {
        api_version: v.kubeadm_api(),
        kind: "JoinConfiguration",
        discovery: Discovery {
            bootstrap_token: DiscoveryToken {
                api_server_endpoint: inv.endpoint.host_port(),
                token: inputs.bootstrap_token.clone(),
                ca_cert_hashes: vec![
                    inputs
                        .ca_cert_hash
                        .clone()
                        .unwrap_or_else(|| CA_HASH_PENDING.to_string()),
                ],
            },
        },
        node_registration: node_registration(inv, node),
        control_plane: node.roles.control_plane.then(|| JoinControlPlane {
            local_api_endpoint: ApiEndpoint {
                advertise_address: node.address.to_string(),
                bind_port: inv.endpoint.apiserver_port,
            },
        }),
        timeouts: timeouts(inv),
    };
    // kubeadm join ignores a KubeletConfiguration (the kubelet takes the cluster's, uploaded
    // at init), and says so in a warning: per-node kubelet settings go in kubelet_extra_args.
    let docs = [yaml(&join)];
    Artifact::secret(
        paths::KUBEADM_JOIN,
        "kubeadm join configuration (holds the bootstrap token)",
        documents(&docs).into_bytes(),
    )
}
