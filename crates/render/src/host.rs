//! Host preparation files: /etc/hosts block, kernel modules, sysctl, crictl.

use inventory::{Inventory, KubeProxyMode};

use crate::{Artifact, paths};

/// Marker lines around the block kubeha manages inside /etc/hosts; the rest of the file is
/// the user's and is never touched.
pub fn hosts_markers(inv: &Inventory) -> (String, String) {
    (
        format!(
            "# BEGIN kubeha cluster {} (managed: edits inside are replaced)",
            inv.cluster.name
        ),
        format!("# END kubeha cluster {}", inv.cluster.name),
    )
}

pub fn hosts_block(inv: &Inventory) -> Artifact {
    let (begin, end) = hosts_markers(inv);
    let mut s = format!("{begin}\n");
    if let Some(name) = &inv.endpoint.dns_name {
        s.push_str(&format!("{} {name}\n", inv.endpoint.vip));
    }
    for n in inv.nodes.iter().filter(|n| inv.hosts.lists(n.roles)) {
        s.push_str(&format!("{} {}\n", n.address, n.name));
    }
    s.push_str(&format!("{end}\n"));
    Artifact::text(
        paths::HOSTS_BLOCK,
        0o644,
        "cluster names for /etc/hosts (merged between markers)",
        s,
    )
}

pub fn sysctl(inv: &Inventory, node: &inventory::Node) -> Artifact {
    let mut s = "\
# kubeha: kernel settings Kubernetes needs (bridged traffic through iptables, forwarding)
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward = 1
"
    .to_string();
    if node.roles.control_plane && inv.frontdoor.kind != inventory::FrontdoorKind::External {
        // ARP from the primary address, never the VIP: a node that lost the VIP uncleanly
        // must not pull clients back to itself.
        s.push_str("net.ipv4.conf.all.arp_announce = 2\n");
    }
    if !inv.host.sysctls.is_empty() {
        s.push_str("# host.sysctls\n");
        for (key, value) in &inv.host.sysctls {
            s.push_str(&format!("{key} = {value}\n"));
        }
    }
    Artifact::text(
        "/etc/sysctl.d/99-kubeha.conf",
        0o644,
        "kernel parameters",
        s,
    )
}

pub fn modules(inv: &Inventory) -> Artifact {
    let mut s = String::from("# kubeha: modules loaded at boot\noverlay\nbr_netfilter\n");
    if inv.networking.kube_proxy_mode == KubeProxyMode::Ipvs {
        s.push_str("ip_vs\nip_vs_rr\nip_vs_wrr\nip_vs_sh\nnf_conntrack\n");
    }
    Artifact::text(
        "/etc/modules-load.d/kubeha.conf",
        0o644,
        "kernel modules",
        s,
    )
}

pub fn crictl() -> Artifact {
    Artifact::text(
        "/etc/crictl.yaml",
        0o644,
        "crictl talks to containerd",
        "runtime-endpoint: unix:///run/containerd/containerd.sock\nimage-endpoint: unix:///run/containerd/containerd.sock\ntimeout: 10\n".into(),
    )
}

/// Where the journald drop-in goes.
pub const JOURNALD_DROPIN: &str = "/etc/systemd/journald.conf.d/50-kubeha.conf";

/// `host.journald`: seed 004's limits and persistent storage, as a drop-in (journald.conf
/// itself is the distribution's).
pub fn journald(j: &inventory::Journald) -> Artifact {
    Artifact::text(
        JOURNALD_DROPIN,
        0o644,
        "journald limits and storage (host.journald)",
        format!(
            "# kubeha: journald limits and storage (host.journald; seed 004)\n\
             [Journal]\n\
             Storage={}\n\
             SystemMaxFileSize={}\n\
             SystemMaxFiles={}\n",
            j.storage, j.system_max_file_size, j.system_max_files
        ),
    )
}
