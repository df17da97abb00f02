//! The inventory file as written: every value keeps its place in the file so that
//! validation can point at it. Nothing here is trusted; `validate` turns it into `Inventory`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

/// A value with its place in the file. Reads and derefs as serde-saphyr's `Spanned`; its JSON
/// Schema is the value's, so `crate::json_schema` describes the file as written.
#[derive(Debug)]
pub(crate) struct S<T>(pub Spanned<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for S<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Spanned::deserialize(d).map(S)
    }
}

impl<T> std::ops::Deref for S<T> {
    type Target = Spanned<T>;
    fn deref(&self) -> &Spanned<T> {
        &self.0
    }
}

impl<T> From<&S<T>> for crate::diag::Pos {
    fn from(s: &S<T>) -> Self {
        crate::diag::Pos::from(&s.0)
    }
}

impl<T: JsonSchema> JsonSchema for S<T> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<T>()
    }
}
/// A list of strings, each with its place.
pub(crate) type StrList = S<Vec<S<String>>>;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Inventory")]
pub(crate) struct RawInventory {
    pub cluster: S<RawCluster>,
    pub endpoint: S<RawEndpoint>,
    #[serde(default)]
    pub ssh: Option<S<RawSsh>>,
    pub nodes: S<Vec<S<RawNode>>>,
    #[serde(default)]
    pub etcd: Option<S<RawEtcd>>,
    #[serde(default)]
    pub networking: Option<S<RawNetworking>>,
    #[serde(default)]
    pub images: Option<S<RawImages>>,
    #[serde(default)]
    pub runtime: Option<S<RawRuntime>>,
    #[serde(default)]
    pub frontdoor: Option<S<RawFrontdoor>>,
    #[serde(default)]
    pub kubelet: Option<S<RawKubelet>>,
    #[serde(default)]
    pub kubeadm: Option<S<RawKubeadm>>,
    #[serde(default)]
    pub pki: Option<S<RawPki>>,
    #[serde(default)]
    pub packages: Option<S<RawPackages>>,
    /// Which names go in every node's /etc/hosts: `all` (every node, the default),
    /// `control-plane` (control-plane and etcd nodes) or `none` (only `endpoint.dns_name`).
    #[serde(default)]
    pub hosts: Option<S<String>>,
    /// Host preparation the seeds do by hand (seed 004): journald, time sync, sysctls.
    #[serde(default)]
    pub host: Option<S<RawHost>>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Host")]
pub(crate) struct RawHost {
    #[serde(default)]
    pub journald: Option<S<RawJournald>>,
    /// `chrony` (default) or `none`.
    #[serde(default)]
    pub time_sync: Option<S<String>>,
    /// Kernel parameters written after kubeha's own; replaces the default map when given.
    #[serde(default)]
    pub sysctls: Option<S<BTreeMap<String, S<serde_json::Value>>>>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Journald")]
pub(crate) struct RawJournald {
    /// `false`: kubeha leaves journald's configuration alone.
    #[serde(default)]
    pub manage: Option<S<bool>>,
    /// journald's `Storage=`: `persistent` (default), `volatile`, `auto` or `none`.
    #[serde(default)]
    pub storage: Option<S<String>>,
    /// journald's `SystemMaxFileSize=`, like `12M`.
    #[serde(default)]
    pub system_max_file_size: Option<S<String>>,
    /// journald's `SystemMaxFiles=`.
    #[serde(default)]
    pub system_max_files: Option<S<u32>>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Packages")]
pub(crate) struct RawPackages {
    #[serde(default)]
    pub source: Option<S<String>>,
    #[serde(default)]
    pub repository: Option<S<String>>,
    #[serde(default)]
    pub bundle: Option<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Cluster")]
pub(crate) struct RawCluster {
    pub name: S<String>,
    pub kubernetes_version: S<String>,
    #[serde(default)]
    pub domain: Option<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Endpoint")]
pub(crate) struct RawEndpoint {
    pub vip: S<String>,
    #[serde(default)]
    pub port: Option<S<u16>>,
    #[serde(default)]
    pub apiserver_port: Option<S<u16>>,
    #[serde(default)]
    pub dns_name: Option<S<String>>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Ssh")]
pub(crate) struct RawSsh {
    #[serde(default)]
    pub user: Option<S<String>>,
    #[serde(default)]
    pub port: Option<S<u16>>,
    #[serde(default)]
    pub key: Option<S<String>>,
    /// `user@host:port` of a bastion to go through.
    #[serde(default)]
    pub jump: Option<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Node")]
pub(crate) struct RawNode {
    pub name: S<String>,
    pub address: S<String>,
    pub roles: S<Vec<S<String>>>,
    #[serde(default)]
    pub ssh: Option<S<RawSsh>>,
    #[serde(default)]
    pub interface: Option<S<String>>,
    #[serde(default)]
    pub labels: Option<S<BTreeMap<String, String>>>,
    /// VRRP priority of this node's front door (control-plane nodes only).
    #[serde(default)]
    pub priority: Option<S<u16>>,
    /// kubelet flags for this node alone, over `kubelet.extra_args`.
    #[serde(default)]
    pub kubelet_extra_args: Option<S<BTreeMap<String, S<String>>>>,
    /// `cni: bridge`: this node's /24 of the pod range, instead of the one its place in the
    /// list gives it (pin it before removing a node listed above it).
    #[serde(default)]
    pub pod_subnet: Option<S<String>>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Etcd")]
pub(crate) struct RawEtcd {
    #[serde(default)]
    pub topology: Option<S<String>>,
    #[serde(default)]
    pub quota_backend_bytes: Option<S<u64>>,
    #[serde(default)]
    pub heartbeat_interval: Option<S<String>>,
    #[serde(default)]
    pub election_timeout: Option<S<String>>,
    #[serde(default)]
    pub snapshot_count: Option<S<u64>>,
    #[serde(default)]
    pub auto_compaction: Option<S<RawCompaction>>,
    #[serde(default)]
    pub data_dir: Option<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Compaction")]
pub(crate) struct RawCompaction {
    pub mode: S<String>,
    pub retention: S<String>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Networking")]
pub(crate) struct RawNetworking {
    #[serde(default)]
    pub pod_cidr: Option<S<String>>,
    #[serde(default)]
    pub service_cidr: Option<S<String>>,
    #[serde(default)]
    pub cni: Option<S<String>>,
    #[serde(default)]
    pub kube_proxy_mode: Option<S<String>>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Images")]
pub(crate) struct RawImages {
    #[serde(default)]
    pub repository: Option<S<String>>,
    #[serde(default)]
    pub mirrors: Option<S<BTreeMap<String, StrList>>>,
    #[serde(default)]
    pub proxy: Option<S<RawProxy>>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Proxy")]
pub(crate) struct RawProxy {
    #[serde(default)]
    pub http: Option<S<String>>,
    #[serde(default)]
    pub https: Option<S<String>>,
    #[serde(default)]
    pub no_proxy: Option<S<Vec<S<String>>>>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Runtime")]
pub(crate) struct RawRuntime {
    #[serde(default)]
    pub kind: Option<S<String>>,
    #[serde(default)]
    pub systemd_cgroup: Option<S<bool>>,
    #[serde(default)]
    pub log_max_size: Option<S<String>>,
    #[serde(default)]
    pub log_max_files: Option<S<u32>>,
    #[serde(default)]
    pub restrict_oom_score_adj: Option<S<bool>>,
    #[serde(default)]
    pub cni_bin_dir: Option<S<String>>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Frontdoor")]
pub(crate) struct RawFrontdoor {
    #[serde(default)]
    pub kind: Option<S<String>>,
    #[serde(default)]
    pub vrid: Option<S<i64>>,
    #[serde(default)]
    pub advert_interval: Option<S<String>>,
    #[serde(default)]
    pub unicast: Option<S<bool>>,
    #[serde(default)]
    pub checksum: Option<S<String>>,
    #[serde(default)]
    pub preempt: Option<S<bool>>,
    #[serde(default)]
    pub balance: Option<S<String>>,
    #[serde(default)]
    pub health: Option<S<RawHealth>>,
    #[serde(default)]
    pub max_connections: Option<S<u32>>,
    #[serde(default)]
    pub close_sessions_on_down: Option<S<bool>>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Health")]
pub(crate) struct RawHealth {
    #[serde(default)]
    pub kind: Option<S<String>>,
    #[serde(default)]
    pub path: Option<S<String>>,
    #[serde(default)]
    pub interval: Option<S<String>>,
    #[serde(default)]
    pub fall: Option<S<u32>>,
    #[serde(default)]
    pub rise: Option<S<u32>>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Kubelet")]
pub(crate) struct RawKubelet {
    #[serde(default)]
    pub max_pods: Option<S<u32>>,
    #[serde(default)]
    pub server_tls_bootstrap: Option<S<bool>>,
    #[serde(default)]
    pub fail_cgroup_v1: Option<S<bool>>,
    #[serde(default)]
    pub extra_args: Option<S<BTreeMap<String, S<String>>>>,
    /// Merged into the KubeletConfiguration kubeadm uploads for every node.
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub extra_config: Option<S<BTreeMap<String, serde_json::Value>>>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Kubeadm")]
pub(crate) struct RawKubeadm {
    #[serde(default)]
    pub ignore_preflight_errors: Option<StrList>,
    #[serde(default)]
    pub timeouts: Option<S<RawKubeadmTimeouts>>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "KubeadmTimeouts")]
pub(crate) struct RawKubeadmTimeouts {
    #[serde(default)]
    pub control_plane_health_check: Option<S<String>>,
    #[serde(default)]
    pub kubelet_health_check: Option<S<String>>,
    #[serde(default)]
    pub discovery: Option<S<String>>,
    #[serde(default)]
    pub tls_bootstrap: Option<S<String>>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Pki")]
pub(crate) struct RawPki {
    #[serde(default)]
    pub key_type: Option<S<String>>,
    #[serde(default)]
    pub ca_validity: Option<S<String>>,
    #[serde(default)]
    pub leaf_validity: Option<S<String>>,
    #[serde(default)]
    pub extra_sans: Option<S<Vec<S<String>>>>,
}
