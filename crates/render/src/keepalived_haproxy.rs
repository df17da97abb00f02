//! keepalived.conf and haproxy.cfg for users who keep those (frontdoor.kind:
//! keepalived-haproxy). As the seeds write them, with their mistakes fixed: one unicast peer
//! per line, an HTTPS /readyz check through the local haproxy, and a priority drop large
//! enough to move the VIP to any healthy node.

use inventory::{Checksum, Inventory, Node};

use crate::{Artifact, paths};

/// How far a failing check lowers priority: more than the spread of the control-plane
/// priorities, so a failing top node falls below every healthy one.
pub fn check_weight(inv: &Inventory) -> u8 {
    let prios: Vec<u8> = inv
        .control_plane()
        .map(|n| n.priority.map_or(0, u8::from))
        .collect();
    let max = prios.iter().copied().max().unwrap_or(0);
    let min = prios.iter().copied().min().unwrap_or(0);
    (max - min).saturating_add(10).min(253)
}

fn seconds(d: std::time::Duration) -> String {
    let cs = d.as_millis() / 10;
    format!("{}.{:02}", cs / 100, cs % 100)
}

pub fn keepalived_conf(inv: &Inventory, node: &Node) -> Artifact {
    let fd = &inv.frontdoor;
    let mut s = format!(
        "! kubeha: keepalived for cluster {cluster} on {name} (rendered; kubeha up rewrites it)\n\
         global_defs {{\n    router_id {name}\n    enable_script_security\n    script_user root\n    vrrp_version 3\n",
        cluster = inv.cluster.name,
        name = node.name
    );
    if fd.checksum == Checksum::Rfc9568 {
        s.push_str("    v3_checksum_as_v2\n");
    }
    s.push_str("}\n\n");
    s.push_str(&format!(
        "vrrp_script chk_apiserver {{\n    script \"{script}\"\n    interval 1\n    timeout 2\n    fall {fall}\n    rise {rise}\n    weight -{weight}\n}}\n\n",
        script = paths::KEEPALIVED_CHECK,
        fall = fd.health.fall,
        rise = fd.health.rise,
        weight = check_weight(inv)
    ));
    s.push_str(&format!(
        "vrrp_instance VI_{cluster} {{\n    state BACKUP\n    interface {ifc}\n    virtual_router_id {vrid}\n    priority {prio}\n    advert_int {adv}\n",
        cluster = inv.cluster.name.replace('-', "_"),
        ifc = node.interface,
        vrid = fd.vrid,
        prio = node.priority.map_or(0, u8::from),
        adv = seconds(fd.advert_interval.as_duration()),
    ));
    if !fd.preempt {
        s.push_str("    nopreempt\n");
    }
    if fd.unicast {
        s.push_str(&format!(
            "    unicast_src_ip {}\n    unicast_peer {{\n",
            node.address
        ));
        for peer in inv.control_plane().filter(|n| n.name != node.name) {
            s.push_str(&format!("        {}\n", peer.address));
        }
        s.push_str("    }\n");
    }
    s.push_str(&format!(
        "    virtual_ipaddress {{\n        {}/{} dev {}\n    }}\n    track_script {{\n        chk_apiserver\n    }}\n}}\n",
        inv.endpoint.vip, inv.endpoint.vip_prefix, node.interface
    ));
    Artifact::text(paths::KEEPALIVED_CONF, 0o644, "keepalived: VIP by VRRP", s)
}

pub fn check_script(inv: &Inventory) -> Artifact {
    let s = format!(
        "#!/bin/sh\n\
         # kubeha: healthy when this node's haproxy reaches a ready kube-apiserver over TLS\n\
         exec curl --silent --fail --max-time 2 --cacert {ca} -o /dev/null https://127.0.0.1:{port}/readyz\n",
        ca = paths::CA_CERT,
        port = inv.endpoint.port
    );
    Artifact::text(paths::KEEPALIVED_CHECK, 0o755, "keepalived health check", s)
}

pub fn haproxy_cfg(inv: &Inventory) -> Artifact {
    let h = &inv.frontdoor.health;
    let balance = match inv.frontdoor.balance {
        inventory::Balance::RoundRobin => "roundrobin",
        inventory::Balance::LeastConnections => "leastconn",
    };
    // frontdoor.close_sessions_on_down: clients of an apiserver that leaves rotation reconnect.
    let down = if inv.frontdoor.close_sessions_on_down {
        " on-marked-down shutdown-sessions"
    } else {
        ""
    };
    let mut s = format!(
        "\
# kubeha: haproxy in front of kube-apiserver for cluster {cluster} (rendered; kubeha up rewrites it)
global
    log /dev/log local0
    maxconn {maxconn}
    daemon

defaults
    mode tcp
    log global
    option tcplog
    option dontlognull
    timeout connect 5s
    # watches are long-lived: do not cut idle API connections early
    timeout client 1h
    timeout server 1h

frontend kube-apiserver
    bind *:{port}
    default_backend kube-apiserver

backend kube-apiserver
    balance {balance}
{check}",
        cluster = inv.cluster.name,
        port = inv.endpoint.port,
        maxconn = inv.frontdoor.max_connections.unwrap_or(20000),
        check = match h.kind {
            inventory::HealthKind::Https => format!(
                "    option httpchk GET {path}\n    http-check expect status 200\n    default-server check check-ssl verify required ca-file {ca} inter {inter}ms fall {fall} rise {rise}{down}\n",
                path = h.path,
                ca = paths::CA_CERT,
                inter = h.interval.as_millis(),
                fall = h.fall,
                rise = h.rise,
                down = down,
            ),
            inventory::HealthKind::Http => format!(
                "    option httpchk GET {path}\n    http-check expect status 200\n    default-server check inter {inter}ms fall {fall} rise {rise}{down}\n",
                path = h.path,
                inter = h.interval.as_millis(),
                fall = h.fall,
                rise = h.rise,
                down = down,
            ),
            // A connect is the check, as in the front door.
            inventory::HealthKind::Tcp => format!(
                "    default-server check inter {inter}ms fall {fall} rise {rise}{down}\n",
                inter = h.interval.as_millis(),
                fall = h.fall,
                rise = h.rise,
                down = down,
            ),
        },
    );
    for n in inv.control_plane() {
        s.push_str(&format!(
            "    server {} {}:{}\n",
            n.name, n.address, inv.endpoint.apiserver_port
        ));
    }
    Artifact::text(
        paths::HAPROXY_CFG,
        0o644,
        "haproxy: TCP load balancer for the apiservers",
        s,
    )
}
