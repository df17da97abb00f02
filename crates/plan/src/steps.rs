//! The ordered steps for one node. Each `run` script is idempotent: run twice, it converges.

use inventory::{
    Cni, EtcdTopology, FrontdoorKind, Inventory, KubeProxyMode, Node, PackageSource, TimeSync,
};
use render::paths;

use crate::{Artifact, Bundle, Step, StepId};

/// The step scripts: plain sh files (shellcheck-clean, see scripts/test.sh) that take their
/// values as shell variables, set single-quoted before the script, never spliced into it.
mod sh {
    pub const HAVE_MOD: &str = include_str!("scripts/have-mod.sh");
    pub const APT: &str = include_str!("scripts/apt.sh");
    pub const KUBEADM: &str = include_str!("scripts/kubeadm.sh");
    pub const PREFLIGHT_HOST: &str = include_str!("scripts/preflight-host.sh");
    pub const HOSTS: &str = include_str!("scripts/hosts.sh");
    pub const SWAP_OFF: &str = include_str!("scripts/swap-off.sh");
    pub const JOURNALD: &str = include_str!("scripts/journald.sh");
    pub const TIME_SYNC: &str = include_str!("scripts/time-sync.sh");
    pub const MODULES: &str = include_str!("scripts/modules.sh");
    pub const PACKAGES_REPOSITORY: &str = include_str!("scripts/packages-repository.sh");
    pub const PACKAGES_BUNDLE: &str = include_str!("scripts/packages-bundle.sh");
    pub const PACKAGES_PREINSTALLED: &str = include_str!("scripts/packages-preinstalled.sh");
    pub const PACKAGES_KUBEHA_BUNDLE: &str = include_str!("scripts/packages-kubeha-bundle.sh");
    pub const IMAGES: &str = include_str!("scripts/images.sh");
    pub const POD_NETWORK: &str = include_str!("scripts/pod-network.sh");
    pub const CONTAINERD: &str = include_str!("scripts/containerd.sh");
    pub const ETCD_MEMBER: &str = include_str!("scripts/etcd-member.sh");
    pub const FRONTDOOR_BUILTIN: &str = include_str!("scripts/frontdoor-builtin.sh");
    pub const FRONTDOOR_KEEPALIVED_HAPROXY: &str =
        include_str!("scripts/frontdoor-keepalived-haproxy.sh");
    pub const KUBEADM_INIT: &str = include_str!("scripts/kubeadm-init.sh");
    pub const JOIN_TOKEN: &str = include_str!("scripts/join-token.sh");
    pub const CNI_FLANNEL: &str = include_str!("scripts/cni-flannel.sh");
    pub const CNI_CALICO: &str = include_str!("scripts/cni-calico.sh");
    pub const JOIN_CONTROL_PLANE: &str = include_str!("scripts/join-control-plane.sh");
    pub const JOIN_WORKER: &str = include_str!("scripts/join-worker.sh");
}

/// Single-quotes a value for sh.
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `vars` as quoted assignments, then `parts` (each without its leading comment block, which
/// documents the file, not the run).
fn script(vars: &[(&str, String)], parts: &[&str]) -> String {
    let mut out: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={}", q(v))).collect();
    for part in parts {
        out.extend(
            part.lines()
                .skip_while(|l| l.starts_with('#'))
                .map(str::to_string),
        );
    }
    out.join("\n")
}

struct Builder {
    steps: Vec<Step>,
}

impl Builder {
    fn step(
        &mut self,
        id: StepId,
        description: &str,
        uploads: Vec<String>,
        run: Option<String>,
        changes: bool,
    ) {
        self.steps.push(Step {
            id,
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
    bundle: &Bundle,
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
        StepId::PreflightHost,
        "kernel >= 4.x, modules available, required ports free, a container runtime; reports swap, product_uuid, machine-id, MACs, time sync and tool versions for the cross-node checks",
        vec![],
        Some(script(
            &[("PORTS", port_list.join(" "))],
            &[sh::HAVE_MOD, sh::PREFLIGHT_HOST],
        )),
        false,
    );

    let (begin, end) = render::host::hosts_markers(inv);
    b.step(
        StepId::PrepareHosts,
        "merge the cluster's names into /etc/hosts between kubeha markers (the rest of the file is kept)",
        vec![paths::HOSTS_BLOCK.into()],
        Some(script(
            &[
                ("BEGIN", begin),
                ("END", end),
                ("BLOCK", paths::HOSTS_BLOCK.to_string()),
            ],
            &[sh::HOSTS],
        )),
        // Every run: cloud-init and others rewrite /etc/hosts; the merge is idempotent.
        false,
    );
    b.step(
        StepId::PrepareSwapOff,
        "turn swap off now and comment swap lines in /etc/fstab (backup in /etc/fstab.kubeha.bak)",
        vec![],
        Some(script(&[], &[sh::SWAP_OFF])),
        // Every run: swap comes back (zram, swap units), and turning it off again is harmless.
        false,
    );
    let mut mods = vec!["overlay", "br_netfilter"];
    if inv.networking.kube_proxy_mode == KubeProxyMode::Ipvs {
        mods.extend(["ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack"]);
    }
    b.step(
        StepId::PrepareModules,
        "load br_netfilter, overlay (and ip_vs for kube-proxy ipvs) now and at boot",
        vec!["/etc/modules-load.d/kubeha.conf".into()],
        Some(script(
            &[("MODULES", mods.join(" "))],
            &[sh::HAVE_MOD, sh::MODULES],
        )),
        true,
    );
    b.step(
        StepId::PrepareSysctl,
        "bridged traffic through iptables, IP forwarding, and host.sysctls",
        vec!["/etc/sysctl.d/99-kubeha.conf".into()],
        Some("sysctl -q -p /etc/sysctl.d/99-kubeha.conf".into()),
        true,
    );
    if let Some(j) = &inv.host.journald {
        b.step(
            StepId::PrepareJournald,
            &format!(
                "journald: storage {}, at most {} files of {} (a drop-in; journald restarted if it runs)",
                j.storage, j.system_max_files, j.system_max_file_size
            ),
            vec![render::host::JOURNALD_DROPIN.into()],
            Some(script(
                &[("STORAGE", j.storage.clone())],
                &[sh::JOURNALD],
            )),
            true,
        );
    }
    if inv.networking.cni == Cni::Bridge {
        b.step(
            StepId::PreparePodNetwork,
            "pod network (cni: bridge): this node's /24 for the bridge plugin, routes to the other nodes' /24s, now and at boot",
            vec![
                paths::CNI_BRIDGE_CONF.into(),
                paths::POD_ROUTES_SCRIPT.into(),
                paths::POD_ROUTES_UNIT.into(),
            ],
            Some(script(
                &[
                    ("ROUTES", paths::POD_ROUTES_SCRIPT.to_string()),
                    ("UNIT", "kubeha-pod-routes".to_string()),
                ],
                &[sh::POD_NETWORK],
            )),
            // Every run: a route deleted by hand or a network restart comes back.
            false,
        );
    }
    let v = &inv.cluster.kubernetes_version;
    match inv.packages.source {
        PackageSource::Repository => b.step(
            StepId::PreparePackages,
            &format!("install containerd and kubelet/kubeadm/kubectl {v}, held at that version"),
            vec![],
            Some(script(
                &[
                    ("VERSION", v.to_string()),
                    (
                        "REPO",
                        inv.packages
                            .repository
                            .replace("{stream}", &v.minor_stream()),
                    ),
                ],
                &[sh::APT, sh::PACKAGES_REPOSITORY],
            )),
            true,
        ),
        PackageSource::Bundle if matches!(bundle, Bundle::Kubeha(_)) => {
            let mut files = vec![
                paths::KUBELET_UNIT.to_string(),
                paths::KUBELET_DROPIN.to_string(),
            ];
            files.extend(
                paths_under(artifacts, &format!("{}/", paths::BUNDLE_DIR))
                    .into_iter()
                    .filter(|p| !p.contains("/images/")),
            );
            b.step(
                StepId::PreparePackages,
                &format!("install the kubeha bundle's static binaries {v} in {} (digests checked on the node) and the kubelet's unit", paths::BUNDLE_BIN_DIR),
                files,
                Some(script(
                    &[
                        ("DIR", paths::BUNDLE_DIR.to_string()),
                        ("BIN", paths::BUNDLE_BIN_DIR.to_string()),
                        ("VERSION", v.to_string()),
                    ],
                    &[sh::PACKAGES_KUBEHA_BUNDLE],
                )),
                true,
            )
        }
        PackageSource::Bundle => b.step(
            StepId::PreparePackages,
            &format!("install the offline bundle's packages with dpkg, hold kubelet/kubeadm/kubectl, check kubeadm is {v}"),
            paths_under(artifacts, &format!("{}/", paths::BUNDLE_DIR)),
            Some(script(
                &[
                    ("DIR", paths::BUNDLE_DIR.to_string()),
                    ("VERSION", v.to_string()),
                ],
                &[sh::PACKAGES_BUNDLE],
            )),
            true,
        ),
        // Nothing to install; what is missing is reported, and `up` stops before the first
        // kubeadm step when kubeadm is absent.
        PackageSource::Preinstalled => b.step(
            StepId::PreparePackages,
            &format!("check containerd and kubelet/kubeadm/kubectl {v} installed by the operator"),
            vec![],
            Some(script(
                &[("VERSION", v.to_string())],
                &[sh::PACKAGES_PREINSTALLED],
            )),
            false,
        ),
    }
    if inv.host.time_sync == TimeSync::Chrony {
        let install = inv.packages.source == PackageSource::Repository;
        b.step(
            StepId::PrepareTimeSync,
            if install {
                "a time sync service runs: one already running is kept, else chrony is installed and enabled"
            } else {
                "a time sync service runs: one already running is kept, else the node's chrony is enabled (offline nodes must have it)"
            },
            vec![],
            Some(script(
                &[("INSTALL", if install { "yes" } else { "no" }.to_string())],
                &[sh::APT, sh::TIME_SYNC],
            )),
            true,
        );
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
        StepId::PrepareContainerd,
        "containerd with systemd cgroups, the sandbox image and registry mirrors",
        containerd_files,
        Some(script(&[], &[sh::CONTAINERD])),
        true,
    );
    if let Bundle::Kubeha(kb) = bundle
        && inv.packages.source == PackageSource::Bundle
    {
        let images: Vec<&crate::BundleImage> = kb.images_for(node.roles).collect();
        b.step(
            StepId::PrepareImages,
            &format!(
                "import {} image(s) of the kubeha bundle into containerd (no registry needed)",
                images.len()
            ),
            images.iter().map(|i| i.path.clone()).collect(),
            Some(script(
                &[
                    ("DIR", paths::BUNDLE_DIR.to_string()),
                    ("SOCK", paths::CONTAINERD_SOCKET.to_string()),
                    (
                        "IMAGES",
                        images
                            .iter()
                            .map(|i| format!("{},{}", i.name, i.path))
                            .collect::<Vec<_>>()
                            .join(" "),
                    ),
                ],
                &[sh::IMAGES],
            )),
            true,
        );
    }

    if !pki_paths.is_empty() {
        b.step(
            StepId::PkiDistribute,
            "certificates and keys from kubeha's PKI (no --upload-certs window needed)",
            pki_paths.to_vec(),
            None,
            true,
        );
    }

    if inv.etcd.topology == EtcdTopology::External && node.roles.etcd {
        b.step(
            StepId::EtcdMember,
            "external etcd member as a systemd unit, then wait until it is healthy",
            vec![paths::ETCD_INITIAL_ENV.into(), paths::ETCD_UNIT.into()],
            Some(script(
                &[
                    ("DATA_DIR", inv.etcd.data_dir.clone()),
                    ("ADDRESS", node.address.to_string()),
                    ("NAME", node.name.clone()),
                    (
                        "OTHERS",
                        inv.etcd_members()
                            .filter(|m| m.name != node.name)
                            .map(|m| format!("{}=https://{}:2380", m.name, m.address))
                            .collect::<Vec<_>>()
                            .join(" "),
                    ),
                    ("JOIN_ENV", paths::ETCD_JOIN_ENV.to_string()),
                ],
                &[sh::ETCD_MEMBER],
            )),
            true,
        );
    }

    if node.roles.control_plane {
        match inv.frontdoor.kind {
            FrontdoorKind::Builtin => b.step(
                StepId::FrontdoorBuiltin,
                "kubeha front door (VRRP VIP + apiserver load balancer) as a systemd unit, after making sure no other router already speaks on the VRID",
                [paths::KUBEHA_BINARY, paths::FRONTDOOR_CONFIG, paths::FRONTDOOR_UNIT]
                    .iter()
                    .filter(|p| artifacts.iter().any(|a| a.path == **p))
                    .map(|p| p.to_string())
                    .collect(),
                Some(script(
                    &[
                        ("BIN", paths::KUBEHA_BINARY.to_string()),
                        ("INTERFACE", node.interface.clone()),
                        ("VRID", inv.frontdoor.vrid.to_string()),
                        (
                            "PEERS",
                            inv.control_plane()
                                .map(|n| n.address.to_string())
                                .collect::<Vec<_>>()
                                .join(","),
                        ),
                    ],
                    &[sh::FRONTDOOR_BUILTIN],
                )),
                true,
            ),
            FrontdoorKind::KeepalivedHaproxy => b.step(
                StepId::FrontdoorKeepalivedHaproxy,
                "keepalived (VIP) and haproxy (load balancer), configs checked before restart",
                vec![paths::KEEPALIVED_CONF.into(), paths::KEEPALIVED_CHECK.into(), paths::HAPROXY_CFG.into()],
                Some(script(
                    &[
                        ("HAPROXY_CFG", paths::HAPROXY_CFG.to_string()),
                        ("KEEPALIVED_CONF", paths::KEEPALIVED_CONF.to_string()),
                        ("PORT", inv.endpoint.port.to_string()),
                    ],
                    &[sh::APT, sh::FRONTDOOR_KEEPALIVED_HAPROXY],
                )),
                true,
            ),
            FrontdoorKind::External => {}
        }
    }

    if is_first_cp {
        b.step(
            StepId::InitKubeadmInit,
            "kubeadm init with the rendered config, skipping the certs phase (kubeha's PKI is in place)",
            vec![paths::KUBEADM_INIT.into()],
            Some(script(
                &[("CONFIG", paths::KUBEADM_INIT.to_string())],
                &[sh::KUBEADM, sh::KUBEADM_INIT],
            )),
            true,
        );
        b.step(
            StepId::InitJoinToken,
            "make sure this run's bootstrap token exists for the joins (tokens expire)",
            vec![paths::JOIN_TOKEN.into()],
            Some(script(
                &[("TOKEN_FILE", paths::JOIN_TOKEN.to_string())],
                &[sh::JOIN_TOKEN],
            )),
            false,
        );
        let cni = match inv.networking.cni {
            Cni::Flannel => Some(script(
                &[("POD_CIDR", inv.networking.pod_cidr.to_string())],
                &[sh::CNI_FLANNEL],
            )),
            Cni::Calico => Some(script(
                &[("POD_CIDR", inv.networking.pod_cidr.to_string())],
                &[sh::CNI_CALICO],
            )),
            // Per node, in the prepare phase: nothing to apply to the cluster.
            Cni::Bridge | Cni::None => None,
        };
        if let Some(run) = cni {
            b.step(
                StepId::CniApply,
                &format!("install the CNI with pod CIDR {}", inv.networking.pod_cidr),
                vec![],
                Some(run),
                true,
            );
        }
    } else if node.roles.control_plane {
        b.step(
            StepId::JoinControlPlane,
            "kubeadm join --control-plane with the distributed certificates",
            vec![paths::KUBEADM_JOIN.into()],
            Some(script(
                &[
                    ("CONFIG", paths::KUBEADM_JOIN.to_string()),
                    ("NODE", node.name.clone()),
                ],
                &[sh::KUBEADM, sh::JOIN_CONTROL_PLANE],
            )),
            true,
        );
    } else if node.roles.worker {
        b.step(
            StepId::JoinWorker,
            "kubeadm join as a worker",
            vec![paths::KUBEADM_JOIN.into()],
            Some(script(
                &[("CONFIG", paths::KUBEADM_JOIN.to_string())],
                &[sh::KUBEADM, sh::JOIN_WORKER],
            )),
            true,
        );
    }
    b.steps
}
