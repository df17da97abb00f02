//! The builtin front door's per-node config (`kubeha frontdoor run -c`), in the format the
//! daemon reads. Field names are a contract with users: keep them.

use inventory::{Balance, Checksum, HealthKind, Inventory, Node};
use serde::{Deserialize, Serialize};

use crate::{Artifact, paths};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontdoorConfig {
    pub interface: String,
    /// `address/prefix`.
    pub vip: String,
    pub vrid: u8,
    pub priority: u8,
    pub advert_interval: String,
    /// Empty: multicast to 224.0.0.18.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unicast_peers: Vec<String>,
    /// This node's own address, the VRRP source and primary address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub checksum: String,
    #[serde(default = "yes")]
    pub preempt: bool,
    pub listen: String,
    pub backends: Vec<String>,
    #[serde(default = "round_robin")]
    pub balance: String,
    pub health: HealthConfig,
    pub metrics: String,
    /// How far priority drops while this node's own backend is not ready (keepalived's
    /// weight); more than the spread of the priorities, so a healthy node takes over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_weight: Option<u8>,
    /// The holder's VIP valid lifetime, refreshed while it holds it (default 2s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip_lifetime: Option<String>,
    /// On SIGTERM: how long to keep the VIP waiting for the new master (default 3s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover_timeout: Option<String>,
    /// On SIGTERM: how long open connections may finish (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<String>,
    /// One backend connect attempt (default 1s); then the next backend is tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
    /// Idle sessions are closed after this long (default 1h: watches idle for minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    /// Open sessions at most (default 20000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
}

fn yes() -> bool {
    true
}

fn round_robin() -> String {
    "round-robin".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    pub interval: String,
    pub fall: u32,
    pub rise: u32,
    /// Check this port instead of the backend's (e.g. etcd's plain-HTTP metrics port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Client certificate and key (PEM paths) for backends that require mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    /// Bound on one check (default: the interval, at most 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

fn duration(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string().replace(' ', "")
}

pub fn for_node(inv: &Inventory, node: &Node) -> FrontdoorConfig {
    let fd = &inv.frontdoor;
    let peers = if fd.unicast {
        inv.control_plane()
            .filter(|n| n.name != node.name)
            .map(|n| n.address.to_string())
            .collect()
    } else {
        Vec::new()
    };
    let (kind, path, ca) = match fd.health.kind {
        HealthKind::Https => (
            "https",
            Some(fd.health.path.clone()),
            Some(paths::CA_CERT.to_string()),
        ),
        HealthKind::Http => ("http", Some(fd.health.path.clone()), None),
        HealthKind::Tcp => ("tcp", None, None),
    };
    FrontdoorConfig {
        interface: node.interface.clone(),
        vip: format!("{}/{}", inv.endpoint.vip, inv.endpoint.vip_prefix),
        vrid: fd.vrid,
        priority: node.priority,
        advert_interval: duration(fd.advert_interval),
        unicast_peers: peers,
        source: Some(node.address.to_string()),
        checksum: match fd.checksum {
            Checksum::Keepalived => "keepalived",
            Checksum::Rfc9568 => "rfc9568",
        }
        .into(),
        preempt: fd.preempt,
        listen: format!("0.0.0.0:{}", inv.endpoint.port),
        backends: inv
            .control_plane()
            .map(|n| format!("{}:{}", n.address, inv.endpoint.apiserver_port))
            .collect(),
        balance: match fd.balance {
            Balance::RoundRobin => "round-robin",
            Balance::LeastConnections => "least-connections",
        }
        .into(),
        health: HealthConfig {
            kind: kind.into(),
            path,
            ca,
            interval: duration(fd.health.interval),
            fall: fd.health.fall,
            rise: fd.health.rise,
            port: None,
            client_cert: None,
            client_key: None,
            timeout: None,
        },
        metrics: "127.0.0.1:9100".into(),
        local_weight: Some(crate::keepalived_haproxy::check_weight(inv)),
        vip_lifetime: None,
        handover_timeout: None,
        drain_timeout: None,
        connect_timeout: None,
        idle_timeout: None,
        max_connections: inv.frontdoor.max_connections.map(|m| m as usize),
    }
}

pub fn config(inv: &Inventory, node: &Node) -> Artifact {
    let body = serde_saphyr::to_string(&for_node(inv, node)).expect("plain data");
    Artifact::text(
        paths::FRONTDOOR_CONFIG,
        0o644,
        "kubeha front door: VIP (VRRP) + apiserver load balancer",
        format!(
            "# kubeha front door for {} (rendered; kubeha up rewrites it)\n{body}",
            node.name
        ),
    )
}
