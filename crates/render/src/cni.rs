//! `cni: bridge`: the reference bridge plugin with host-local addresses. Each node owns one /24
//! of the pod range (by its place in the inventory); pods reach other nodes' pods through plain
//! routes via those nodes' addresses, which a small oneshot unit puts back at boot.

use inventory::Inventory;

use crate::{Artifact, paths};

/// The bridge network of the node at `index` in the inventory (its /24 of the pod range).
pub fn bridge_conflist(inv: &Inventory, index: usize) -> Artifact {
    let subnet = inv
        .pod_subnet(index)
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

/// Routes to every node's /24 via that node, fed to one `ip -batch`; idempotent (`route
/// replace`), run by the step and at boot by `kubeha-pod-routes.service`. The same file on
/// every node, so a cluster of n nodes renders it once, not n times: a node skips the line of
/// its own address.
pub fn routes_script(inv: &Inventory) -> Artifact {
    let mut s = String::from(
        "#!/bin/sh
# kubeha: routes to the other nodes' pod subnets (cni: bridge). One line per node: its /24,
# its address, its name. The same file on every node: a node skips its own line.
set -e
own=$(ip -o -4 addr show | awk '{ sub(\"/.*\", \"\", $4); printf \"%s \", $4 }')
awk -v own=\"$own\" 'BEGIN { n = split(own, a, \" \"); for (i = 1; i <= n; i++) mine[a[i]] = 1 }
  NF >= 2 && !($2 in mine) { print \"route replace \" $1 \" via \" $2 }' <<'ROUTES' | ip -batch -
",
    );
    for (i, node) in inv.nodes.iter().enumerate() {
        let subnet = inv.pod_subnet(i).expect("validation leaves a /24 per node");
        s.push_str(&format!("{subnet} {} {}\n", node.address, node.name));
    }
    s.push_str("ROUTES\n");
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
