//! The validated inventory. A value of these types has passed every check in `validate`,
//! so the renderers never re-check input.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::Ipv4Net;
use serde::Serialize;
pub use vrrp::{AdvertInterval, Priority, Vrid};

#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    pub cluster: Cluster,
    pub endpoint: Endpoint,
    pub nodes: Vec<Node>,
    pub etcd: Etcd,
    pub networking: Networking,
    pub images: Images,
    pub runtime: Runtime,
    pub frontdoor: Frontdoor,
    pub kubelet: Kubelet,
    pub kubeadm: Kubeadm,
    pub pki: PkiSettings,
    pub packages: Packages,
    pub hosts: HostsEntries,
    pub host: Host,
}

/// Host preparation the seeds do by hand (seed 004), with their values as defaults.
#[derive(Debug, Clone, Serialize)]
pub struct Host {
    /// `None`: journald's configuration is left alone (`host.journald.manage: false`).
    pub journald: Option<Journald>,
    pub time_sync: TimeSync,
    /// Kernel parameters written after kubeha's own, in key order.
    pub sysctls: BTreeMap<String, String>,
}

/// A journald drop-in: seed 004's limits and persistent storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Journald {
    /// `Storage=`: persistent, volatile, auto or none.
    pub storage: String,
    /// `SystemMaxFileSize=`, like `12M`.
    pub system_max_file_size: String,
    /// `SystemMaxFiles=`.
    pub system_max_files: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeSync {
    /// A time sync service must run: one already running is kept, else chrony is enabled
    /// (installed from the repository with `packages.source: repository`).
    Chrony,
    /// The node's clock is someone else's business (a container sharing its host's clock).
    None,
}

/// Kernel parameters kubeha sets itself; `host.sysctls` may not name them.
pub const OWNED_SYSCTLS: [&str; 4] = [
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.arp_announce",
];

/// Which names kubeha writes into every node's /etc/hosts (between its markers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostsEntries {
    /// Every node's name, and `endpoint.dns_name`: the seeds' way; 5,000 lines at 5,000 nodes.
    All,
    /// Control-plane and etcd nodes, and `endpoint.dns_name`: workers are found by DNS or
    /// not at all (the kubelet registers by address).
    ControlPlane,
    /// Only `endpoint.dns_name`, if set: names come from DNS.
    None,
}

impl HostsEntries {
    /// Whether a node with `roles` gets a line.
    pub fn lists(self, roles: Roles) -> bool {
        match self {
            HostsEntries::All => true,
            HostsEntries::ControlPlane => roles.control_plane || roles.etcd,
            HostsEntries::None => false,
        }
    }
}

/// Where kubelet, kubeadm and kubectl come from.
#[derive(Debug, Clone, Serialize)]
pub struct Packages {
    pub source: PackageSource,
    /// The apt repository base for `repository`; `{stream}` becomes `v1.31`.
    pub repository: String,
    /// `source: bundle`: a directory of .deb files (relative to the inventory file).
    pub bundle: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageSource {
    /// Install from the Kubernetes apt repository, held at the inventory's version.
    Repository,
    /// The operator installs them (an image): kubeha checks, never installs.
    Preinstalled,
    /// Offline: kubeha copies a directory of .deb files to every node and installs them.
    Bundle,
}

pub const DEFAULT_PACKAGE_REPOSITORY: &str = "https://pkgs.k8s.io/core:/stable:/{stream}/deb";

impl Inventory {
    pub fn control_plane(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.roles.control_plane)
    }

    pub fn workers(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.roles.worker)
    }

    /// Nodes that run an etcd member: the control plane when stacked, the `etcd` role when external.
    pub fn etcd_members(&self) -> impl Iterator<Item = &Node> {
        let stacked = self.etcd.topology == EtcdTopology::Stacked;
        self.nodes.iter().filter(move |n| {
            if stacked {
                n.roles.control_plane
            } else {
                n.roles.etcd
            }
        })
    }

    /// The node `kubeadm init` runs on: the first control-plane node in file order.
    pub fn first_control_plane(&self) -> &Node {
        // validate guarantees at least one control-plane node
        self.control_plane()
            .next()
            .expect("validated inventory has a control-plane node")
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// `cni: bridge`: the pod subnet of the node at `index`: pinned, or by its place in the list.
    pub fn pod_subnet(&self, index: usize) -> Option<Ipv4Net> {
        let node = self.nodes.get(index)?;
        node.pod_subnet
            .or_else(|| self.networking.node_pod_subnet(index))
    }

    /// The cluster once `names` are gone from it: what `kubeha remove` renders for the nodes
    /// that stay. Every node that stays keeps the pod subnet it had (pinned), so a removal
    /// never moves a running node's pods. Validation's guarantees hold: at least one
    /// control-plane node stays (callers refuse otherwise) and nothing is added.
    pub fn without(&self, names: &[&str]) -> Inventory {
        let mut inv = self.clone();
        if inv.networking.cni == Cni::Bridge {
            for i in 0..inv.nodes.len() {
                inv.nodes[i].pod_subnet = self.pod_subnet(i);
            }
        }
        inv.nodes.retain(|n| !names.contains(&n.name.as_str()));
        // As validation would give the file without those entries.
        inv.assign_priorities();
        inv
    }

    /// Control-plane nodes without a priority of their own get 150, 140, 130, … in file
    /// order, so the first control-plane node holds the VIP when all are healthy.
    pub(crate) fn assign_priorities(&mut self) {
        let mut next: i32 = 150;
        for n in self.nodes.iter_mut().filter(|n| n.roles.control_plane) {
            if !n.priority_set {
                n.priority = Priority::try_from(i64::from(next.clamp(1, 254))).ok();
            }
            next -= 10;
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub name: String,
    pub kubernetes_version: KubeVersion,
    pub domain: String,
}

/// A Kubernetes release `major.minor.patch` (kubeadm and the packages need all three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct KubeVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl KubeVersion {
    /// kubeadm's config API for this release: v1beta4 from 1.31 on.
    pub fn kubeadm_api(&self) -> &'static str {
        if self.minor >= 31 {
            "kubeadm.k8s.io/v1beta4"
        } else {
            "kubeadm.k8s.io/v1beta3"
        }
    }

    pub fn at_least(&self, minor: u32) -> bool {
        self.major > 1 || self.minor >= minor
    }

    /// The package repository stream, e.g. `v1.31` for pkgs.k8s.io.
    pub fn minor_stream(&self) -> String {
        format!("v{}.{}", self.major, self.minor)
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub vip: Ipv4Addr,
    /// Prefix length the VIP is added with (defaults to the control-plane nodes' prefix, else 32).
    pub vip_prefix: u8,
    /// Front door port on the VIP (the seeds' 16443).
    pub port: u16,
    /// kube-apiserver port on each control-plane node.
    pub apiserver_port: u16,
    /// Optional DNS name for the endpoint (added to SANs and /etc/hosts).
    pub dns_name: Option<String>,
}

impl Endpoint {
    /// What kubeadm's controlPlaneEndpoint and every kubeconfig point at.
    pub fn host_port(&self) -> String {
        match &self.dns_name {
            Some(name) => format!("{name}:{}", self.port),
            None => format!("{}:{}", self.vip, self.port),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub name: String,
    pub address: Ipv4Addr,
    /// The node's subnet when the inventory gave a prefix (`198.18.0.11/24`).
    pub subnet: Option<Ipv4Net>,
    pub roles: Roles,
    pub ssh: Ssh,
    pub interface: String,
    pub labels: BTreeMap<String, String>,
    /// Front door VRRP priority (control-plane nodes; `None` elsewhere).
    pub priority: Option<Priority>,
    /// The priority is cluster.yaml's, not the default of the node's place.
    pub priority_set: bool,
    /// kubelet flags (without `--`) for this node alone, over `kubelet.extra_args`.
    pub kubelet_extra_args: BTreeMap<String, String>,
    /// `cni: bridge`: the /24 the inventory pins for this node; `None` takes the one its place
    /// in the list gives (`Inventory::pod_subnet`).
    pub pod_subnet: Option<Ipv4Net>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Roles {
    pub control_plane: bool,
    pub worker: bool,
    pub etcd: bool,
}

impl Roles {
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.control_plane {
            v.push("control-plane");
        }
        if self.etcd {
            v.push("etcd");
        }
        if self.worker {
            v.push("worker");
        }
        v
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Ssh {
    pub user: String,
    pub port: u16,
    pub key: Option<String>,
    /// A bastion as `user@host:port` (user and port optional).
    pub jump: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EtcdTopology {
    Stacked,
    External,
}

impl EtcdTopology {
    /// The inventory's (and the Plan's JSON) spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            EtcdTopology::Stacked => "stacked",
            EtcdTopology::External => "external",
        }
    }
}

impl fmt::Display for EtcdTopology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Etcd {
    pub topology: EtcdTopology,
    pub quota_backend_bytes: u64,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    pub snapshot_count: u64,
    pub auto_compaction: Compaction,
    pub data_dir: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Compaction {
    pub mode: CompactionMode,
    /// etcd's retention string: hours as `1h` for periodic, a revision count for revision.
    pub retention: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CompactionMode {
    Periodic,
    Revision,
}

impl CompactionMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            CompactionMode::Periodic => "periodic",
            CompactionMode::Revision => "revision",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Networking {
    pub pod_cidr: Ipv4Net,
    pub service_cidr: Ipv4Net,
    pub cni: Cni,
    pub kube_proxy_mode: KubeProxyMode,
}

impl Networking {
    /// `cni: bridge`: the pod subnet of the node at `index` in the inventory (a /24).
    pub fn node_pod_subnet(&self, index: usize) -> Option<Ipv4Net> {
        let per_node = 24u8.checked_sub(self.pod_cidr.prefix_len())?;
        if per_node < 32 && index >= 1usize << per_node {
            return None;
        }
        let base = u32::from(self.pod_cidr.network()) + ((index as u32) << 8);
        Ipv4Net::new(Ipv4Addr::from(base), 24).ok()
    }

    /// The cluster IP of the `kubernetes` service: the first address of the service CIDR.
    pub fn kubernetes_service_ip(&self) -> Ipv4Addr {
        let base = u32::from(self.service_cidr.network());
        Ipv4Addr::from(base + 1)
    }

    /// CoreDNS's cluster IP: the tenth address, as kubeadm picks it.
    pub fn dns_service_ip(&self) -> Ipv4Addr {
        let base = u32::from(self.service_cidr.network());
        Ipv4Addr::from(base + 10)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cni {
    Flannel,
    Calico,
    /// The reference bridge plugin with host-local addresses: a /24 of `pod_cidr` per node
    /// (in inventory order) and routes to the other nodes' /24s that kubeha manages. For labs
    /// and flat L2 networks; no image, no overlay.
    Bridge,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KubeProxyMode {
    Iptables,
    Ipvs,
}

impl KubeProxyMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            KubeProxyMode::Iptables => "iptables",
            KubeProxyMode::Ipvs => "ipvs",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Images {
    pub repository: String,
    /// registry host -> mirror endpoints, tried in order.
    pub mirrors: BTreeMap<String, Vec<String>>,
    pub proxy: Option<Proxy>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Proxy {
    pub http: Option<String>,
    pub https: Option<String>,
    pub no_proxy: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Runtime {
    pub systemd_cgroup: bool,
    /// kubelet containerLogMaxSize, e.g. `100Mi`.
    pub log_max_size: String,
    pub log_max_files: u32,
    /// containerd CRI `restrict_oom_score_adj`: for hosts (containers, sandboxes) without
    /// CAP_SYS_RESOURCE, where a negative oom_score_adj fails every pod sandbox.
    pub restrict_oom_score_adj: bool,
    /// Where the CNI plugins live (Debian's containernetworking-plugins: /usr/lib/cni).
    pub cni_bin_dir: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FrontdoorKind {
    /// kubeha's own VRRP + L4 daemon.
    Builtin,
    /// keepalived + haproxy, as the seeds write them.
    KeepalivedHaproxy,
    /// A load balancer kubeha does not manage.
    External,
}

impl FrontdoorKind {
    /// The inventory's (and the Plan's JSON) spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            FrontdoorKind::Builtin => "builtin",
            FrontdoorKind::KeepalivedHaproxy => "keepalived-haproxy",
            FrontdoorKind::External => "external",
        }
    }
}

impl fmt::Display for FrontdoorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Checksum {
    /// keepalived's default: IPv4 pseudo-header included.
    Keepalived,
    /// RFC 9568: no pseudo-header for IPv4.
    Rfc9568,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    RoundRobin,
    LeastConnections,
}

#[derive(Debug, Clone, Serialize)]
pub struct Frontdoor {
    pub kind: FrontdoorKind,
    pub vrid: Vrid,
    /// VRRP advertisement interval; a whole number of centiseconds, 10 ms to 40.95 s.
    pub advert_interval: AdvertInterval,
    pub unicast: bool,
    pub checksum: Checksum,
    pub preempt: bool,
    pub balance: Balance,
    pub health: Health,
    /// Client connections the load balancer accepts at once (haproxy's maxconn); `None`:
    /// the front door's own default, 20000 for haproxy.
    pub max_connections: Option<u32>,
    /// Open sessions to an apiserver that leaves rotation are closed at once, so clients
    /// reconnect to a live one (haproxy's `on-marked-down shutdown-sessions`). Default true.
    pub close_sessions_on_down: bool,
}

impl Frontdoor {
    pub fn advert_interval_cs(&self) -> u16 {
        self.advert_interval.centis()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthKind {
    Https,
    Http,
    Tcp,
}

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub kind: HealthKind,
    pub path: String,
    pub interval: Duration,
    pub fall: u32,
    pub rise: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Kubelet {
    pub max_pods: u32,
    pub server_tls_bootstrap: bool,
    /// `failCgroupV1`; unset leaves the kubelet's default (true from 1.35).
    pub fail_cgroup_v1: Option<bool>,
    /// kubelet flags (without `--`) on every node.
    pub extra_args: BTreeMap<String, String>,
    /// Fields merged into the KubeletConfiguration (kubeadm uploads it for every node).
    pub extra_config: BTreeMap<String, serde_json::Value>,
}

/// kubeadm's own knobs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Kubeadm {
    /// `nodeRegistration.ignorePreflightErrors`, e.g. `SystemVerification` on cgroup v1
    /// hybrid hosts.
    pub ignore_preflight_errors: Vec<String>,
    pub timeouts: KubeadmTimeouts,
}

/// kubeadm v1beta4 `timeouts` (1.31+); unset keeps kubeadm's defaults.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KubeadmTimeouts {
    pub control_plane_health_check: Option<Duration>,
    pub kubelet_health_check: Option<Duration>,
    pub discovery: Option<Duration>,
    pub tls_bootstrap: Option<Duration>,
}

impl KubeadmTimeouts {
    pub fn is_empty(&self) -> bool {
        self.control_plane_health_check.is_none()
            && self.kubelet_health_check.is_none()
            && self.discovery.is_none()
            && self.tls_bootstrap.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    Rsa2048,
    EcdsaP256,
}

#[derive(Debug, Clone, Serialize)]
pub struct PkiSettings {
    pub key_type: KeyType,
    pub ca_validity: Duration,
    pub leaf_validity: Duration,
    pub extra_sans: Vec<String>,
}

#[cfg(test)]
mod tests {
    const BRIDGE: &str = "
cluster: { name: lab, kubernetes_version: 1.34.4 }
endpoint: { vip: 198.18.0.10/24 }
nodes:
  - { name: cp1, address: 198.18.0.11/24, roles: [control-plane] }
  - { name: cp2, address: 198.18.0.12/24, roles: [control-plane] }
  - { name: cp3, address: 198.18.0.13/24, roles: [control-plane] }
  - { name: w1, address: 198.18.0.21/24, roles: [worker], pod_subnet: 10.244.9.0/24 }
  - { name: w2, address: 198.18.0.22/24, roles: [worker] }
networking: { cni: bridge }
";

    fn subnets(inv: &super::Inventory) -> Vec<(String, String)> {
        (0..inv.nodes.len())
            .map(|i| {
                let s = inv.pod_subnet(i).map(|s| s.to_string()).unwrap_or_default();
                (inv.nodes[i].name.clone(), s)
            })
            .collect()
    }

    #[test]
    fn a_pinned_pod_subnet_wins_over_the_place() {
        let inv = crate::parse_str(BRIDGE, "c.yaml").unwrap().inventory;
        let s = subnets(&inv);
        assert_eq!(s[3], ("w1".into(), "10.244.9.0/24".into()));
        assert_eq!(s[4], ("w2".into(), "10.244.4.0/24".into()));
    }

    #[test]
    fn without_keeps_every_remaining_node_on_its_pod_subnet() {
        let inv = crate::parse_str(BRIDGE, "c.yaml").unwrap().inventory;
        let before = subnets(&inv);
        let after = subnets(&inv.without(&["cp1", "w1"]));
        let kept: Vec<_> = before
            .into_iter()
            .filter(|(n, _)| n != "cp1" && n != "w1")
            .collect();
        assert_eq!(after, kept);
        // cp2 is now first in the list, and still has the /24 it had (not 10.244.0.0/24).
        assert_eq!(after[0], ("cp2".into(), "10.244.1.0/24".into()));
    }

    #[test]
    fn without_gives_default_priorities_by_the_new_place_and_keeps_set_ones() {
        let src = BRIDGE.replace(
            "name: cp3, address: 198.18.0.13/24, roles: [control-plane]",
            "name: cp3, address: 198.18.0.13/24, roles: [control-plane], priority: 200",
        );
        let inv = crate::parse_str(&src, "c.yaml").unwrap().inventory;
        let prio = |inv: &super::Inventory| -> Vec<u8> {
            inv.control_plane()
                .map(|n| u8::from(n.priority.unwrap()))
                .collect()
        };
        assert_eq!(prio(&inv), [150, 140, 200]);
        assert_eq!(prio(&inv.without(&["cp1"])), [150, 200]);
    }
}
