//! The builtin front door's per-node config (`kubeha frontdoor run -c`): the typed
//! `frontdoor_config::FrontdoorConfig`, written as YAML. Field names are a contract with
//! users; the type and its checks live in crate `frontdoor-config`.

use std::net::{Ipv4Addr, SocketAddr};

use frontdoor_config::{FrontdoorConfig, HealthConfig, HealthKind, Metrics, VipCidr};
use inventory::{Inventory, Node, Priority};

use crate::{Artifact, paths};

pub fn for_node(inv: &Inventory, node: &Node) -> FrontdoorConfig {
    let fd = &inv.frontdoor;
    let peers = if fd.unicast {
        inv.control_plane()
            .filter(|n| n.name != node.name)
            .map(|n| n.address)
            .collect()
    } else {
        Vec::new()
    };
    let mut health = HealthConfig::new(
        match fd.health.kind {
            inventory::HealthKind::Https => HealthKind::Https,
            inventory::HealthKind::Http => HealthKind::Http,
            inventory::HealthKind::Tcp => HealthKind::Tcp,
        },
        fd.health.interval,
        fd.health.fall,
        fd.health.rise,
    );
    if health.kind != HealthKind::Tcp {
        health.path = Some(fd.health.path.clone());
    }
    if health.kind == HealthKind::Https {
        health.ca = Some(paths::CA_CERT.into());
    }
    let mut cfg = FrontdoorConfig::new(
        node.interface.clone(),
        VipCidr {
            address: inv.endpoint.vip,
            prefix: inv.endpoint.vip_prefix,
        },
        fd.vrid,
        // Every control-plane node has one (the inventory assigns 150, 140, … when unset).
        node.priority.unwrap_or(Priority::LOWEST),
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, inv.endpoint.port)),
        inv.control_plane()
            .map(|n| SocketAddr::from((n.address, inv.endpoint.apiserver_port)))
            .collect(),
        health,
    );
    cfg.advert_interval = Some(fd.advert_interval);
    cfg.unicast_peers = peers;
    cfg.source = Some(node.address);
    cfg.checksum = match fd.checksum {
        inventory::Checksum::Keepalived => frontdoor_config::Checksum::Keepalived,
        inventory::Checksum::Rfc9568 => frontdoor_config::Checksum::Rfc9568,
    };
    cfg.preempt = fd.preempt;
    cfg.balance = match fd.balance {
        inventory::Balance::RoundRobin => frontdoor_config::Balance::RoundRobin,
        inventory::Balance::LeastConnections => frontdoor_config::Balance::LeastConnections,
    };
    cfg.metrics = Metrics::Listen(frontdoor_config::DEFAULT_METRICS_ADDR);
    cfg.local_weight = Some(crate::keepalived_haproxy::check_weight(inv));
    cfg.max_connections = fd.max_connections.map(|m| m as usize);
    // The daemon's default is to close them; the file says so only when the inventory does not.
    cfg.close_sessions_on_down = (!fd.close_sessions_on_down).then_some(false);
    cfg
}

pub fn config(inv: &Inventory, node: &Node) -> Artifact {
    let body = for_node(inv, node).to_yaml().expect("plain data");
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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    /// The rendered file is what the daemon reads (moved here from crate frontdoor, which no
    /// longer depends on render or inventory).
    #[test]
    fn the_rendered_config_parses() {
        let src = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/cluster.yaml"
        ))
        .unwrap();
        let inv = inventory::parse_str(&src, "cluster.yaml")
            .unwrap()
            .inventory;
        let node = inv.node("master2").unwrap();
        let cfg = for_node(&inv, node);
        let text = cfg.to_yaml().unwrap();
        let c = frontdoor_config::parse(&text, "frontdoor.yaml")
            .unwrap()
            .config;
        assert_eq!(c, cfg);
        assert_eq!(c.priority, 140);
        assert_eq!(c.advert_interval().centis(), 4);
        assert_eq!(c.source, Some(Ipv4Addr::new(198, 18, 0, 12)));
        assert_eq!(
            c.unicast_peers,
            vec![Ipv4Addr::new(198, 18, 0, 11), Ipv4Addr::new(198, 18, 0, 13)]
        );
        assert_eq!(c.local_weight(), 30);
        assert!(c.close_sessions_on_down());
    }

    /// `frontdoor.close_sessions_on_down: false` reaches both front doors: kubeha's file, and
    /// haproxy's servers lose `on-marked-down shutdown-sessions`.
    #[test]
    fn sessions_can_outlive_their_backend_when_the_inventory_says_so() {
        let src = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/cluster.yaml"
        ))
        .unwrap();
        let haproxy = |text: &str| {
            let inv = inventory::parse_str(text, "cluster.yaml")
                .unwrap()
                .inventory;
            let node = inv.node("master1").unwrap();
            let cfg = for_node(&inv, node);
            let parsed = frontdoor_config::parse(&cfg.to_yaml().unwrap(), "f.yaml")
                .unwrap()
                .config;
            let h = crate::keepalived_haproxy::haproxy_cfg(&inv);
            let h = String::from_utf8_lossy(&h.contents).into_owned();
            (
                parsed.close_sessions_on_down(),
                h.contains("shutdown-sessions"),
            )
        };
        assert_eq!(haproxy(&src), (true, true));
        let kept = src.replacen(
            "frontdoor:\n",
            "frontdoor:\n  close_sessions_on_down: false\n",
            1,
        );
        assert_ne!(kept, src, "examples/cluster.yaml has no frontdoor: block");
        assert_eq!(haproxy(&kept), (false, false));
    }
}
