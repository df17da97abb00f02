//! systemd units for the services kubeha runs outside Kubernetes.

use inventory::{Inventory, Node};

use crate::kubeadm::etcd_tuning_flags;
use crate::{Artifact, paths};

pub fn frontdoor() -> Artifact {
    let s = format!(
        "\
# kubeha front door: VRRP VIP + health-checked L4 load balancer for kube-apiserver
[Unit]
Description=kubeha front door (VIP + apiserver load balancer)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/usr/local/bin/kubeha frontdoor run -c {cfg}
# SIGTERM hands the VIP over (priority 0) before the process exits.
KillSignal=SIGTERM
TimeoutStopSec=15
Restart=always
RestartSec=1
AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE
LimitNOFILE=1048576

[Install]
WantedBy=multi-user.target
",
        cfg = paths::FRONTDOOR_CONFIG
    );
    Artifact::text(
        paths::FRONTDOOR_UNIT,
        0o644,
        "systemd unit for the front door",
        s,
    )
}

/// The kubelet's unit and kubeadm's drop-in, as the Kubernetes packages ship them, for the
/// static binaries of a kubeha bundle (in /usr/local/bin; no package installs them).
pub fn kubelet() -> [Artifact; 2] {
    let unit = format!(
        "\
# kubelet from the kubeha bundle (the upstream package's unit)
[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart={bin}
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
",
        bin = paths::KUBELET_BINARY
    );
    // kubeadm writes kubeadm-flags.env (flags from nodeRegistration.kubeletExtraArgs) and
    // config.yaml; /etc/default/kubelet is the operator's.
    let dropin = format!(
        "\
# kubeadm's drop-in (the upstream package's 10-kubeadm.conf)
[Service]
Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"
Environment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart={bin} $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
",
        bin = paths::KUBELET_BINARY
    );
    [
        Artifact::text(
            paths::KUBELET_UNIT,
            0o644,
            "systemd unit for the kubelet (bundle binaries)",
            unit,
        ),
        Artifact::text(
            paths::KUBELET_DROPIN,
            0o644,
            "kubeadm's kubelet drop-in (bundle binaries)",
            dropin,
        ),
    ]
}

/// How the members of a new cluster find each other: every member of the inventory, state
/// `new`. etcd reads it only when its data directory is empty; a member that joins a running
/// cluster gets its own in `ETCD_JOIN_ENV` (etcd-member.sh, after `member add`), read after this
/// one, so it wins.
pub fn etcd_initial_env(inv: &Inventory) -> Artifact {
    let cluster: Vec<String> = inv
        .etcd_members()
        .map(|n| format!("{}=https://{}:2380", n.name, n.address))
        .collect();
    Artifact::text(
        paths::ETCD_INITIAL_ENV,
        0o644,
        "etcd's initial cluster (read only by a member without data)",
        format!(
            "ETCD_INITIAL_CLUSTER={}\nETCD_INITIAL_CLUSTER_STATE=new\n",
            cluster.join(",")
        ),
    )
}

/// External-topology etcd member, seed 004's unit with the inventory's tuning.
pub fn etcd(inv: &Inventory, node: &Node, binary: &str) -> Artifact {
    let a = node.address;
    let mut flags: Vec<(String, String)> = vec![
        ("name".into(), node.name.clone()),
        ("data-dir".into(), inv.etcd.data_dir.clone()),
        (
            "listen-client-urls".into(),
            format!("https://{a}:2379,https://127.0.0.1:2379"),
        ),
        ("advertise-client-urls".into(), format!("https://{a}:2379")),
        ("listen-peer-urls".into(), format!("https://{a}:2380")),
        (
            "initial-advertise-peer-urls".into(),
            format!("https://{a}:2380"),
        ),
        (
            "initial-cluster-token".into(),
            format!("kubeha-{}", inv.cluster.name),
        ),
        ("client-cert-auth".into(), "true".into()),
        (
            "trusted-ca-file".into(),
            "/etc/kubernetes/pki/etcd/ca.crt".into(),
        ),
        (
            "cert-file".into(),
            "/etc/kubernetes/pki/etcd/server.crt".into(),
        ),
        (
            "key-file".into(),
            "/etc/kubernetes/pki/etcd/server.key".into(),
        ),
        ("peer-client-cert-auth".into(), "true".into()),
        (
            "peer-trusted-ca-file".into(),
            "/etc/kubernetes/pki/etcd/ca.crt".into(),
        ),
        (
            "peer-cert-file".into(),
            "/etc/kubernetes/pki/etcd/peer.crt".into(),
        ),
        (
            "peer-key-file".into(),
            "/etc/kubernetes/pki/etcd/peer.key".into(),
        ),
    ];
    flags.extend(
        etcd_tuning_flags(inv)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
    );
    let exec: Vec<String> = flags.iter().map(|(k, v)| format!("  --{k}={v}")).collect();
    let s = format!(
        "\
# kubeha: external etcd member {name}
[Unit]
Description=etcd member {name} (kubeha)
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
EnvironmentFile={initial}
EnvironmentFile=-{join}
ExecStart={binary} \\
{exec}
Restart=always
RestartSec=5
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
",
        name = node.name,
        exec = exec.join(" \\\n"),
        initial = paths::ETCD_INITIAL_ENV,
        join = paths::ETCD_JOIN_ENV,
    );
    Artifact::text(
        paths::ETCD_UNIT,
        0o644,
        "systemd unit for the etcd member",
        s,
    )
}
