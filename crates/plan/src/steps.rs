//! The ordered steps for one node. Each `run` script is idempotent: run twice, it converges.

use inventory::{Cni, EtcdTopology, FrontdoorKind, Inventory, KubeProxyMode, Node, PackageSource};
use render::paths;

use crate::{Artifact, Phase, Step};

/// A shell function: a module is there if built in, loaded, or loadable. Containers and some
/// kernels build overlay and br_netfilter in, with no modprobe or /lib/modules at all.
const HAVE_MOD: &str = "have_mod() { [ -d \"/sys/module/$1\" ] || { [ \"$1\" = br_netfilter ] && [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; } || grep -qw \"$1\" /proc/filesystems 2>/dev/null || { command -v modprobe >/dev/null && modprobe -n \"$1\" 2>/dev/null; }; }";

struct Builder {
    steps: Vec<Step>,
}

impl Builder {
    fn step(
        &mut self,
        phase: Phase,
        name: &str,
        description: &str,
        uploads: Vec<String>,
        run: Option<String>,
        changes: bool,
    ) {
        self.steps.push(Step {
            id: format!("{}/{name}", phase.name()),
            phase,
            description: description.to_string(),
            uploads,
            run,
            changes,
        });
    }
}

fn paths_under(artifacts: &[Artifact], prefix: &str) -> Vec<String> {
    artifacts
        .iter()
        .filter(|a| a.path.starts_with(prefix))
        .map(|a| a.path.clone())
        .collect()
}

pub(crate) fn for_node(
    inv: &Inventory,
    node: &Node,
    artifacts: &[Artifact],
    pki_paths: &[String],
) -> Vec<Step> {
    let mut b = Builder { steps: Vec::new() };
    let is_first_cp = node.roles.control_plane && inv.first_control_plane().name == node.name;
    let api = inv.endpoint.apiserver_port;
    let mut ports = vec![10250u16];
    if node.roles.control_plane {
        ports.extend([api, 10257, 10259]);
        if inv.frontdoor.kind != FrontdoorKind::External {
            ports.push(inv.endpoint.port);
        }
    }
    let runs_etcd = match inv.etcd.topology {
        EtcdTopology::Stacked => node.roles.control_plane,
        EtcdTopology::External => node.roles.etcd,
    };
    if runs_etcd {
        ports.extend([2379, 2380]);
    }
    let port_list: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    b.step(
        Phase::Preflight,
        "host",
        "kernel >= 4.x, modules available, required ports free, a container runtime; reports swap, product_uuid, machine-id, MACs, time sync and tool versions for the cross-node checks",
        vec![],
        Some(format!(
            "{have_mod}\n\
             kver=$(uname -r | cut -d. -f1); [ \"$kver\" -ge 4 ] || {{ echo \"kernel $(uname -r) is older than 4.x\" >&2; exit 1; }}\n\
             for m in overlay br_netfilter; do have_mod \"$m\" || {{ echo \"kernel module $m is neither built in nor loadable\" >&2; exit 1; }}; done\n\
             for p in {ports}; do u=$(ss -Hltnp \"sport = :$p\"); [ -z \"$u\" ] && continue; echo \"$u\" | grep -Eq '\"(kube-apiserver|kube-controller|kube-scheduler|kubelet|etcd|kubeha|haproxy)\"' || {{ echo \"port $p is in use by: $u\" >&2; exit 1; }}; done\n\
             fact() {{ echo \"fact $*\"; }}\n\
             fact hostname \"$(hostname)\"\n\
             fact uuid \"$(cat /sys/class/dmi/id/product_uuid 2>/dev/null || echo unknown)\"\n\
             fact machine-id \"$(cat /etc/machine-id 2>/dev/null || echo unknown)\"\n\
             ip -o link | awk '$2 != \"lo:\" {{ for (i = 1; i < NF; i++) if ($i == \"link/ether\") {{ sub(\":$\", \"\", $2); sub(\"@.*\", \"\", $2); print \"fact mac\", $2, $(i+1) }} }}'\n\
             swapon --show=NAME --noheadings 2>/dev/null | sed 's/^/fact swap /'\n\
             fact timesync \"$(timedatectl show -p NTPSynchronized --value 2>/dev/null || echo unknown)\"\n\
             fact runtime \"$(containerd --version 2>/dev/null | awk '{{print $3}}' || true)\"\n\
             fact kubeadm \"$(kubeadm version -o short 2>/dev/null || true)\"",
            have_mod = HAVE_MOD,
            ports = port_list.join(" ")
        )),
        false,
    );

    let (begin, end) = render::host::hosts_markers(inv);
    b.step(
        Phase::Prepare,
        "hosts",
        "merge the cluster's names into /etc/hosts between kubeha markers (the rest of the file is kept)",
        vec![paths::HOSTS_BLOCK.into()],
        Some(format!(
            "awk -v b='{begin}' -v e='{end}' '$0==b{{skip=1}} !skip{{print}} $0==e{{skip=0}}' /etc/hosts > /etc/hosts.kubeha.tmp\n\
             cat {block} >> /etc/hosts.kubeha.tmp\n\
             cmp -s /etc/hosts.kubeha.tmp /etc/hosts || cp /etc/hosts /etc/hosts.kubeha.bak\n\
             cat /etc/hosts.kubeha.tmp > /etc/hosts && rm -f /etc/hosts.kubeha.tmp",
            block = paths::HOSTS_BLOCK
        )),
        true,
    );
    b.step(
        Phase::Prepare,
        "swap-off",
        "turn swap off now and comment swap lines in /etc/fstab (backup in /etc/fstab.kubeha.bak)",
        vec![],
        Some("swapoff -a\nif grep -Eq '^[^#].*[[:space:]]swap[[:space:]]' /etc/fstab; then cp /etc/fstab /etc/fstab.kubeha.bak; sed -Ei '/^[^#].*[[:space:]]swap[[:space:]]/s/^/#kubeha# /' /etc/fstab; fi".into()),
        true,
    );
    let mut mods = vec!["overlay", "br_netfilter"];
    if inv.networking.kube_proxy_mode == KubeProxyMode::Ipvs {
        mods.extend(["ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack"]);
    }
    b.step(
        Phase::Prepare,
        "modules",
        "load br_netfilter, overlay (and ip_vs for kube-proxy ipvs) now and at boot",
        vec!["/etc/modules-load.d/kubeha.conf".into()],
        Some(format!(
            "{HAVE_MOD}\nfor m in {}; do modprobe \"$m\" 2>/dev/null || have_mod \"$m\" || {{ echo \"kernel module $m cannot be loaded\" >&2; exit 1; }}; done",
            mods.join(" ")
        )),
        true,
    );
    b.step(
        Phase::Prepare,
        "sysctl",
        "bridged traffic through iptables, IP forwarding",
        vec!["/etc/sysctl.d/99-kubeha.conf".into()],
        Some("sysctl -q -p /etc/sysctl.d/99-kubeha.conf".into()),
        true,
    );
    let v = &inv.cluster.kubernetes_version;
    match inv.packages.source {
        PackageSource::Repository => b.step(
            Phase::Prepare,
            "packages",
            &format!("install containerd and kubelet/kubeadm/kubectl {v}, held at that version"),
            vec![],
            Some(format!(
                "export DEBIAN_FRONTEND=noninteractive\n\
                 if ! dpkg-query -W -f='${{Version}}' kubeadm 2>/dev/null | grep -q '^{v}-'; then\n\
                 \x20 apt-get update -q && apt-get install -y -q apt-transport-https ca-certificates curl gpg containerd conntrack ipvsadm\n\
                 \x20 mkdir -p /etc/apt/keyrings\n\
                 \x20 curl -fsSL {repo}/Release.key | gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg\n\
                 \x20 echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] {repo}/ /' > /etc/apt/sources.list.d/kubernetes.list\n\
                 \x20 apt-get update -q && apt-mark unhold kubelet kubeadm kubectl >/dev/null 2>&1 || true\n\
                 \x20 apt-get install -y -q kubelet='{v}-*' kubeadm='{v}-*' kubectl='{v}-*' && apt-mark hold kubelet kubeadm kubectl\n\
                 fi",
                repo = inv.packages.repository.replace("{stream}", &v.minor_stream())
            )),
            true,
        ),
        PackageSource::Bundle => b.step(
            Phase::Prepare,
            "packages",
            &format!("install the offline bundle's packages with dpkg, hold kubelet/kubeadm/kubectl, check kubeadm is {v}"),
            paths_under(artifacts, &format!("{}/", paths::BUNDLE_DIR)),
            Some(format!(
                "ls {dir}/*.deb >/dev/null 2>&1 || {{ echo 'the bundle has no .deb files' >&2; exit 1; }}\n\
                 dpkg -i --force-confold {dir}/*.deb\n\
                 apt-mark hold kubelet kubeadm kubectl >/dev/null\n\
                 have=$(kubeadm version -o short)\n\
                 [ \"$have\" = v{v} ] || {{ echo \"the bundle installed kubeadm $have, the inventory says v{v}\" >&2; exit 1; }}",
                dir = paths::BUNDLE_DIR
            )),
            true,
        ),
        // Nothing to install; what is missing is reported, and `up` stops before the first
        // kubeadm step when kubeadm is absent.
        PackageSource::Preinstalled => b.step(
            Phase::Prepare,
            "packages",
            &format!("check containerd and kubelet/kubeadm/kubectl {v} installed by the operator"),
            vec![],
            Some(format!(
                "for t in containerd kubelet kubeadm kubectl; do command -v \"$t\" >/dev/null || echo \"$t is not installed (packages.source is preinstalled)\"; done\n\
                 have=$(kubeadm version -o short 2>/dev/null || true); [ -z \"$have\" ] || [ \"$have\" = v{v} ] || echo \"kubeadm is $have, the inventory says v{v}\""
            )),
            false,
        ),
    }
    let mut containerd_files = vec![
        "/etc/containerd/config.toml".to_string(),
        "/etc/crictl.yaml".to_string(),
    ];
    containerd_files.extend(paths_under(artifacts, render::containerd::CERTS_D));
    containerd_files.extend(paths_under(
        artifacts,
        "/etc/systemd/system/containerd.service.d/",
    ));
    b.step(
        Phase::Prepare,
        "containerd",
        "containerd with systemd cgroups, the sandbox image and registry mirrors",
        containerd_files,
        Some("systemctl daemon-reload\nsystemctl enable containerd >/dev/null 2>&1\nsystemctl restart containerd".into()),
        true,
    );

    if !pki_paths.is_empty() {
        b.step(
            Phase::Pki,
            "distribute",
            "certificates and keys from kubeha's PKI (no --upload-certs window needed)",
            pki_paths.to_vec(),
            None,
            true,
        );
    }

    if inv.etcd.topology == EtcdTopology::External && node.roles.etcd {
        b.step(
            Phase::Etcd,
            "member",
            "external etcd member as a systemd unit, then wait until it is healthy",
            vec![paths::ETCD_UNIT.into()],
            Some(format!(
                "mkdir -p {dir} && chmod 700 {dir}\nsystemctl daemon-reload\nsystemctl enable --now etcd\n\
                 for i in $(seq 1 60); do ETCDCTL_API=3 etcdctl --endpoints=https://{a}:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key endpoint health && exit 0; sleep 1; done; echo 'etcd did not become healthy in 60s'; exit 1",
                dir = inv.etcd.data_dir,
                a = node.address
            )),
            true,
        );
    }

    if node.roles.control_plane {
        match inv.frontdoor.kind {
            FrontdoorKind::Builtin => b.step(
                Phase::Frontdoor,
                "builtin",
                "kubeha front door (VRRP VIP + apiserver load balancer) as a systemd unit, after making sure no other router already speaks on the VRID",
                [paths::KUBEHA_BINARY, paths::FRONTDOOR_CONFIG, paths::FRONTDOOR_UNIT]
                    .iter()
                    .filter(|p| artifacts.iter().any(|a| a.path == **p))
                    .map(|p| p.to_string())
                    .collect(),
                Some(format!(
                    "{bin} frontdoor listen --interface {iface} --vrid {vrid} --duration 3s --ignore {peers}\n\
                     systemctl daemon-reload\nsystemctl enable kubeha-frontdoor >/dev/null 2>&1\nsystemctl restart kubeha-frontdoor",
                    bin = paths::KUBEHA_BINARY,
                    iface = node.interface,
                    vrid = inv.frontdoor.vrid,
                    peers = inv
                        .control_plane()
                        .map(|n| n.address.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                )),
                true,
            ),
            FrontdoorKind::KeepalivedHaproxy => b.step(
                Phase::Frontdoor,
                "keepalived-haproxy",
                "keepalived (VIP) and haproxy (load balancer), configs checked before restart",
                vec![paths::KEEPALIVED_CONF.into(), paths::KEEPALIVED_CHECK.into(), paths::HAPROXY_CFG.into()],
                Some(format!(
                    "command -v keepalived >/dev/null && command -v haproxy >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q keepalived haproxy curl\n\
                     haproxy -c -q -f {h}\nkeepalived -t -f {k}\nsystemctl enable haproxy keepalived >/dev/null 2>&1\nsystemctl restart haproxy keepalived",
                    h = paths::HAPROXY_CFG,
                    k = paths::KEEPALIVED_CONF
                )),
                true,
            ),
            FrontdoorKind::External => {}
        }
    }

    let guard =
        "[ -f /etc/kubernetes/kubelet.conf ] && { echo 'already part of the cluster'; exit 0; }";
    if is_first_cp {
        b.step(
            Phase::Init,
            "kubeadm-init",
            "kubeadm init with the rendered config, skipping the certs phase (kubeha's PKI is in place)",
            vec![paths::KUBEADM_INIT.into()],
            Some(format!(
                "{guard}\nkubeadm init --config {} --skip-phases=certs",
                paths::KUBEADM_INIT
            )),
            true,
        );
        b.step(
            Phase::Init,
            "join-token",
            "make sure this run's bootstrap token exists for the joins (tokens expire)",
            vec![paths::JOIN_TOKEN.into()],
            Some(format!(
                "t=$(cat {tok})\n\
                 kubeadm token list --kubeconfig /etc/kubernetes/admin.conf 2>/dev/null | awk 'NR > 1 {{print $1}}' | grep -qx \"$t\" || \
                 kubeadm token create \"$t\" --ttl 2h --description 'kubeha up' --kubeconfig /etc/kubernetes/admin.conf >/dev/null",
                tok = paths::JOIN_TOKEN
            )),
            false,
        );
        let cni = match inv.networking.cni {
            Cni::Flannel => Some(format!(
                "curl -fsSL https://github.com/flannel-io/flannel/releases/download/v0.26.7/kube-flannel.yml | sed 's#10.244.0.0/16#{cidr}#g' | kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f -",
                cidr = inv.networking.pod_cidr
            )),
            Cni::Calico => Some(format!(
                "kubectl --kubeconfig /etc/kubernetes/admin.conf apply --server-side -f https://raw.githubusercontent.com/projectcalico/calico/v3.29.3/manifests/tigera-operator.yaml\n\
                 cat <<'EOF' | kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f -\n\
                 apiVersion: operator.tigera.io/v1\nkind: Installation\nmetadata:\n  name: default\nspec:\n  calicoNetwork:\n    ipPools:\n    - cidr: {cidr}\n      encapsulation: VXLANCrossSubnet\n      natOutgoing: Enabled\n      nodeSelector: all()\nEOF",
                cidr = inv.networking.pod_cidr
            )),
            Cni::None => None,
        };
        if let Some(run) = cni {
            b.step(
                Phase::Cni,
                "apply",
                &format!("install the CNI with pod CIDR {}", inv.networking.pod_cidr),
                vec![],
                Some(run),
                true,
            );
        }
    } else if node.roles.control_plane {
        b.step(
            Phase::JoinControlPlane,
            "kubeadm-join",
            "kubeadm join --control-plane with the distributed certificates",
            vec![paths::KUBEADM_JOIN.into()],
            Some(format!(
                "{guard}\nkubeadm join --config {}",
                paths::KUBEADM_JOIN
            )),
            true,
        );
    } else if node.roles.worker {
        b.step(
            Phase::JoinWorker,
            "kubeadm-join",
            "kubeadm join as a worker",
            vec![paths::KUBEADM_JOIN.into()],
            Some(format!(
                "{guard}\nkubeadm join --config {}",
                paths::KUBEADM_JOIN
            )),
            true,
        );
    }
    if is_first_cp {
        b.step(
            Phase::Verify,
            "cluster",
            "every node Ready through the VIP endpoint",
            vec![],
            Some(format!(
                "for i in $(seq 1 120); do kubectl --kubeconfig /etc/kubernetes/admin.conf --server https://{ep} get nodes -o jsonpath='{{range .items[*]}}{{.status.conditions[?(@.type==\"Ready\")].status}}{{\"\\n\"}}{{end}}' | grep -qv True || exit 0; sleep 5; done; echo 'nodes not Ready after 10 minutes'; exit 1",
                ep = inv.endpoint.host_port()
            )),
            false,
        );
    }
    b.steps
}
