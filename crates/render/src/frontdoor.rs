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
        },
        metrics: "127.0.0.1:9100".into(),
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
