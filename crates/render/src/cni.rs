//! `cni: bridge`: the reference bridge plugin with host-local addresses. Each node owns one /24
//! of the pod range (by its place in the inventory); pods reach other nodes' pods through plain
//! routes via those nodes' addresses, which a small oneshot unit puts back at boot.

use inventory::{Inventory, Node};

use crate::{Artifact, paths};

/// The node's place in the inventory (its /24 of the pod range).
fn index(inv: &Inventory, node: &Node) -> usize {
    inv.nodes
        .iter()
        .position(|n| n.name == node.name)
        .expect("the node is one of the inventory's")
}

pub fn bridge_conflist(inv: &Inventory, node: &Node) -> Artifact {
    let subnet = inv
        .networking
        .node_pod_subnet(index(inv, node))
        .expect("validation leaves a /24 per node");
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "kubeha",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "kubeha0",
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": subnet.to_string() }]],
                    "routes": [{ "dst": "0.0.0.0/0" }]
                }
            },
            { "type": "portmap", "capabilities": { "portMappings": true } },
            { "type": "loopback" }
        ]
    });
    Artifact::text(
        paths::CNI_BRIDGE_CONF,
        0o644,
        "pod network: bridge + host-local on this node's /24",
        serde_json::to_string_pretty(&conf).expect("plain JSON") + "\n",
    )
}

/// `ip route replace` for every other node's /24 via that node; idempotent, run by the step
/// and at boot by `kubeha-pod-routes.service`.
pub fn routes_script(inv: &Inventory, node: &Node) -> Artifact {
    let mut s = String::from(
        "#!/bin/sh\n# kubeha: routes to the other nodes' pod subnets (cni: bridge)\nset -e\n",
    );
    for (i, other) in inv.nodes.iter().enumerate() {
        if other.name == node.name {
            continue;
        }
        let subnet = inv
            .networking
            .node_pod_subnet(i)
            .expect("validation leaves a /24 per node");
        s.push_str(&format!(
            "ip route replace {subnet} via {} # {}\n",
            other.address, other.name
        ));
    }
    Artifact::text(
        paths::POD_ROUTES_SCRIPT,
        0o755,
        "routes to the other nodes' pod subnets",
        s,
    )
}

pub fn routes_unit() -> Artifact {
    Artifact::text(
        paths::POD_ROUTES_UNIT,
        0o644,
        "puts the pod routes back at boot",
        format!(
            "\
# kubeha: routes to the other nodes' pod subnets (cni: bridge)
[Unit]
Description=kubeha pod routes
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={script}

[Install]
WantedBy=multi-user.target
",
            script = paths::POD_ROUTES_SCRIPT
        ),
    )
}
