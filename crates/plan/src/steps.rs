//! The ordered steps for one node. Each `run` script is idempotent: run twice, it converges.

use inventory::{Cni, EtcdTopology, FrontdoorKind, Inventory, KubeProxyMode, Node, PackageSource};
use render::paths;

use crate::{Artifact, Phase, Step};

/// A shell function: a module is there if built in, loaded, or loadable. Containers and some
/// kernels build overlay and br_netfilter in, with no modprobe or /lib/modules at all.
const HAVE_MOD: &str = "have_mod() { [ -d \"/sys/module/$1\" ] || { [ \"$1\" = br_netfilter ] && [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; } || grep -qw \"$1\" /proc/filesystems 2>/dev/null || { command -v modprobe >/dev/null && modprobe -n \"$1\" 2>/dev/null; }; }";

/// Single-quotes a value from the inventory for sh.
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// apt-get that never stops at a config-file question: our files are kept (they are in place
/// before the package, or the package is upgraded under them).
const APT_INSTALL: &str =
    "apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold";

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
             ip -o link | awk '$2 != \"lo:\" && $2 !~ /^(cali|flannel|cni|veth|docker|kube-|vxlan|tunl|cilium|lxc|br-|virbr)/ {{ for (i = 1; i < NF; i++) if ($i == \"link/ether\" && $(i+1) != \"ee:ee:ee:ee:ee:ee\") {{ sub(\":$\", \"\", $2); sub(\"@.*\", \"\", $2); print \"fact mac\", $2, $(i+1) }} }}'\n\
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
             if cmp -s /etc/hosts.kubeha.tmp /etc/hosts; then rm -f /etc/hosts.kubeha.tmp; exit 0; fi\n\
             [ -e /etc/hosts.kubeha.bak ] || cp /etc/hosts /etc/hosts.kubeha.bak\n\
             cat /etc/hosts.kubeha.tmp > /etc/hosts && rm -f /etc/hosts.kubeha.tmp",
            block = paths::HOSTS_BLOCK
        )),
        // Every run: cloud-init and others rewrite /etc/hosts; the merge is idempotent.
        false,
    );
    b.step(
        Phase::Prepare,
        "swap-off",
        "turn swap off now and comment swap lines in /etc/fstab (backup in /etc/fstab.kubeha.bak)",
        vec![],
        Some("swapoff -a\nif grep -Eq '^[^#].*[[:space:]]swap[[:space:]]' /etc/fstab; then [ -e /etc/fstab.kubeha.bak ] || cp /etc/fstab /etc/fstab.kubeha.bak; sed -Ei '/^[^#].*[[:space:]]swap[[:space:]]/s/^/#kubeha# /' /etc/fstab; fi\n\
              if command -v systemctl >/dev/null; then for u in $(systemctl list-units --type=swap --state=active --plain --no-legend 2>/dev/null | awk '{print $1}'); do systemctl mask --now \"$u\" >/dev/null 2>&1 || true; done; fi".into()),
        // Every run: swap comes back (zram, swap units), and turning it off again is harmless.
        false,
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
                 have=$(dpkg-query -W -f='${{Version}}' kubeadm 2>/dev/null || true)\n\
                 case \"$have\" in {v}-*) exit 0 ;; esac\n\
                 if [ -n \"$have\" ] && [ -f /etc/kubernetes/kubelet.conf ]; then echo \"this node already runs Kubernetes $have; kubeha up does not upgrade a cluster: upgrade with kubeadm upgrade (control plane first), or set cluster.kubernetes_version back\" >&2; exit 1; fi\n\
                 apt-get update -q\n\
                 {APT_INSTALL} apt-transport-https ca-certificates curl gpg conntrack ipvsadm\n\
                 command -v containerd >/dev/null || {APT_INSTALL} containerd\n\
                 mkdir -p /etc/apt/keyrings\n\
                 curl -fsSL {repo}/Release.key -o /etc/apt/keyrings/kubernetes-apt-keyring.asc\n\
                 gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg /etc/apt/keyrings/kubernetes-apt-keyring.asc\n\
                 echo {list} > /etc/apt/sources.list.d/kubernetes.list\n\
                 apt-get update -q\n\
                 apt-mark unhold kubelet kubeadm kubectl >/dev/null 2>&1 || true\n\
                 {APT_INSTALL} kubelet='{v}-*' kubeadm='{v}-*' kubectl='{v}-*'\n\
                 apt-mark hold kubelet kubeadm kubectl >/dev/null",
                repo = q(&inv.packages.repository.replace("{stream}", &v.minor_stream())),
                list = q(&format!(
                    "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] {}/ /",
                    inv.packages.repository.replace("{stream}", &v.minor_stream())
                ))
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
                "command -v etcd >/dev/null || {{ echo 'etcd is not installed here: install etcd (server and etcdctl) on the etcd nodes, or use etcd.topology: stacked' >&2; exit 1; }}\n\
                 mkdir -p {dir} && chmod 700 {dir}\nsystemctl daemon-reload\nsystemctl enable etcd >/dev/null 2>&1\n\
                 # A changed unit or certificate only takes effect on a restart.\n\
                 systemctl restart etcd\n\
                 for i in $(seq 1 60); do curl -fsS --max-time 2 --cacert /etc/kubernetes/pki/etcd/ca.crt --cert /etc/kubernetes/pki/etcd/healthcheck-client.crt --key /etc/kubernetes/pki/etcd/healthcheck-client.key https://{a}:2379/health 2>/dev/null | grep -q '\"health\":\"true\"' && exit 0; sleep 1; done; echo 'etcd did not become healthy in 60 s (a member needs a quorum of its peers: are they started and reachable on 2380?)' >&2; exit 1",
                dir = q(&inv.etcd.data_dir),
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
                    "command -v keepalived >/dev/null && command -v haproxy >/dev/null || {{ apt-get update -q && DEBIAN_FRONTEND=noninteractive {APT_INSTALL} keepalived haproxy curl; }}\n\
                     haproxy -c -q -f {h}\nkeepalived -t -f {k}\nsystemctl enable haproxy keepalived >/dev/null 2>&1\nsystemctl restart haproxy keepalived",
                    h = paths::HAPROXY_CFG,
                    k = paths::KEEPALIVED_CONF
                )),
                true,
            ),
            FrontdoorKind::External => {}
        }
    }

    // kubeadm writes kubelet.conf early; a run that failed after it left a half-made node.
    // Done means what kubeadm does last exists; half-done stops with the way out.
    let admin = "kubectl --kubeconfig /etc/kubernetes/admin.conf";
    let half = |what: &str| {
        format!(
            "echo 'a previous {what} stopped half-way on this node: run `kubeadm reset -f` here (it removes what kubeadm made), then kubeha up again' >&2; exit 1"
        )
    };
    let changed_note = "echo 'already done; kubeadm does not apply a changed configuration to a running node (kubeadm upgrade or a node replacement does)'";
    if is_first_cp {
        b.step(
            Phase::Init,
            "kubeadm-init",
            "kubeadm init with the rendered config, skipping the certs phase (kubeha's PKI is in place)",
            vec![paths::KUBEADM_INIT.into()],
            Some(format!(
                "if [ -f /etc/kubernetes/admin.conf ] && {admin} -n kube-system get configmap kubeadm-config >/dev/null 2>&1 && {admin} -n kube-system get daemonset kube-proxy >/dev/null 2>&1; then {changed_note}; exit 0; fi\n\
                 if [ -f /etc/kubernetes/kubelet.conf ] || [ -f /etc/kubernetes/manifests/kube-apiserver.yaml ]; then {half}; fi\n\
                 kubeadm init --config {} --skip-phases=certs",
                paths::KUBEADM_INIT,
                half = half("kubeadm init"),
            )),
            true,
        );
        b.step(
            Phase::Init,
            "join-token",
            "make sure this run's bootstrap token exists for the joins (tokens expire)",
            vec![paths::JOIN_TOKEN.into()],
            Some(format!(
                "{{ set +x; }} 2>/dev/null # keep the token out of the trace\n\
                 t=$(cat {tok})\n\
                 kubeadm token list --kubeconfig /etc/kubernetes/admin.conf 2>/dev/null | awk 'NR > 1 {{print $1}}' | grep -qx \"$t\" || \
                 kubeadm token create \"$t\" --ttl 2h --description 'kubeha up' --kubeconfig /etc/kubernetes/admin.conf >/dev/null",
                tok = paths::JOIN_TOKEN
            )),
            false,
        );
        let cni = match inv.networking.cni {
            Cni::Flannel => Some(format!(
                "curl -fsSL https://github.com/flannel-io/flannel/releases/download/v0.26.7/kube-flannel.yml -o /etc/kubeha/kube-flannel.yml\n\
                 sed -i 's#10.244.0.0/16#{cidr}#g' /etc/kubeha/kube-flannel.yml\n\
                 kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f /etc/kubeha/kube-flannel.yml",
                cidr = inv.networking.pod_cidr
            )),
            Cni::Calico => Some(format!(
                "kubectl --kubeconfig /etc/kubernetes/admin.conf apply --server-side -f https://raw.githubusercontent.com/projectcalico/calico/v3.29.3/manifests/tigera-operator.yaml\n\
                 kubectl --kubeconfig /etc/kubernetes/admin.conf wait --for=condition=Established crd/installations.operator.tigera.io --timeout=120s\n\
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
                "if [ -f /etc/kubernetes/kubelet.conf ] && [ -f /etc/kubernetes/admin.conf ] && {admin} get node {name} -o jsonpath='{{.metadata.labels}}' 2>/dev/null | grep -q node-role.kubernetes.io/control-plane; then {changed_note}; exit 0; fi\n\
                 if [ -f /etc/kubernetes/kubelet.conf ] || [ -f /etc/kubernetes/manifests/kube-apiserver.yaml ]; then {half}; fi\n\
                 kubeadm join --config {}",
                paths::KUBEADM_JOIN,
                name = q(&node.name),
                half = half("kubeadm join --control-plane"),
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
                "if [ -f /etc/kubernetes/kubelet.conf ]; then {changed_note}; exit 0; fi\n\
                 if [ -f /etc/kubernetes/bootstrap-kubelet.conf ]; then {half}; fi\n\
                 kubeadm join --config {}",
                paths::KUBEADM_JOIN,
                half = half("kubeadm join"),
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
                "want={count}\n\
                 for i in $(seq 1 120); do\n\
                 \x20 if out=$(kubectl --kubeconfig /etc/kubernetes/admin.conf --server https://{ep} get nodes -o jsonpath='{{range .items[*]}}{{.status.conditions[?(@.type==\"Ready\")].status}}{{\"\\n\"}}{{end}}'); then\n\
                 \x20   ready=$(printf '%s\\n' \"$out\" | grep -c '^True$' || true)\n\
                 \x20   [ \"$ready\" -ge \"$want\" ] && {{ echo \"$ready of $want nodes Ready through https://{ep}\"; exit 0; }}\n\
                 \x20 fi\n\
                 \x20 sleep 5\n\
                 done\n\
                 echo \"not every node is Ready through https://{ep} after 10 minutes (${{ready:-0}} of $want): kubectl get nodes there tells which\" >&2; exit 1",
                ep = inv.endpoint.host_port(),
                count = inv.nodes.len()
            )),
            false,
        );
    }
    b.steps
}
