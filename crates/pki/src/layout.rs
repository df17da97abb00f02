//! The kubeadm layout: which CAs, leaves and kubeconfigs exist, where they live in the store,
//! and which of them each node gets.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::error::PkiError;
use crate::fsutil::{CERT_MODE, KEY_MODE};
use crate::spec::PkiSpec;
use crate::x509::{LeafTemplate, San, Usage};

/// The long-lived trust roots. `ServiceAccount` is not a CA, but like one it must never be
/// replaced silently (every service-account token is signed with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CaKind {
    /// `ca.crt` / `ca.key`: the cluster CA (CN=kubernetes).
    Ca,
    /// `front-proxy-ca.crt` / `.key`.
    FrontProxyCa,
    /// `etcd/ca.crt` / `.key`.
    EtcdCa,
    /// `sa.key` / `sa.pub`.
    ServiceAccount,
}

impl CaKind {
    /// All of them, in issue order.
    pub const ALL: [CaKind; 4] = [
        CaKind::Ca,
        CaKind::FrontProxyCa,
        CaKind::EtcdCa,
        CaKind::ServiceAccount,
    ];

    /// `ca`, `front-proxy-ca`, `etcd-ca`, `sa` (the `--replace-ca` names).
    pub fn name(self) -> &'static str {
        match self {
            CaKind::Ca => "ca",
            CaKind::FrontProxyCa => "front-proxy-ca",
            CaKind::EtcdCa => "etcd-ca",
            CaKind::ServiceAccount => "sa",
        }
    }

    /// Inverse of [`CaKind::name`].
    pub fn parse(s: &str) -> Option<CaKind> {
        CaKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Subject CN of the CA certificate (kubeadm's).
    pub(crate) fn cn(self) -> &'static str {
        match self {
            CaKind::Ca => "kubernetes",
            CaKind::FrontProxyCa => "front-proxy-ca",
            CaKind::EtcdCa => "etcd-ca",
            CaKind::ServiceAccount => "service-accounts",
        }
    }

    /// Path of the certificate (`sa.pub` for the service-account pair) relative to the store.
    pub fn cert_rel(self) -> &'static str {
        match self {
            CaKind::Ca => "cluster/pki/ca.crt",
            CaKind::FrontProxyCa => "cluster/pki/front-proxy-ca.crt",
            CaKind::EtcdCa => "cluster/pki/etcd/ca.crt",
            CaKind::ServiceAccount => "cluster/pki/sa.pub",
        }
    }

    /// Path of the private key relative to the store.
    pub fn key_rel(self) -> &'static str {
        match self {
            CaKind::Ca => "cluster/pki/ca.key",
            CaKind::FrontProxyCa => "cluster/pki/front-proxy-ca.key",
            CaKind::EtcdCa => "cluster/pki/etcd/ca.key",
            CaKind::ServiceAccount => "cluster/pki/sa.key",
        }
    }

    /// What stops working when it is replaced.
    pub fn breaks(self) -> &'static str {
        match self {
            CaKind::Ca => {
                "the cluster's trust root: every certificate it signed (apiserver, apiserver-kubelet-client, \
                 admin/controller-manager/scheduler kubeconfigs), every kubelet's client certificate and \
                 kubelet.conf, every user kubeconfig, and the discovery hash in `kubeadm join` commands; \
                 every node needs the new ca.crt and every kubelet must re-bootstrap"
            }
            CaKind::FrontProxyCa => {
                "front-proxy-client; aggregated APIs (metrics-server, ...) reject the apiserver until they \
                 re-read requestheader-client-ca-file"
            }
            CaKind::EtcdCa => {
                "every etcd server and peer certificate, etcd/healthcheck-client and apiserver-etcd-client; \
                 all etcd members must switch to the new CA together (peers reject each other in between, \
                 so the cluster loses quorum until all are restarted)"
            }
            CaKind::ServiceAccount => {
                "every service-account token issued so far (pods, controllers and CI using them get 401 \
                 until their tokens are re-issued)"
            }
        }
    }
}

/// A leaf certificate of the layout.
#[derive(Debug, Clone)]
pub(crate) struct LeafDef {
    /// Stable name (`apiserver`, `etcd/server[m1]`).
    pub name: String,
    pub cert_rel: String,
    pub key_rel: String,
    pub signer: CaKind,
    pub template: LeafTemplate,
}

/// A kubeconfig of the layout.
#[derive(Debug, Clone)]
pub(crate) struct KubeconfigDef {
    /// `admin.conf`.
    pub name: String,
    pub rel: String,
    pub user: String,
    pub template: LeafTemplate,
}

fn shared(name: &str, signer: CaKind, template: LeafTemplate) -> LeafDef {
    LeafDef {
        name: name.into(),
        cert_rel: format!("cluster/pki/{name}.crt"),
        key_rel: format!("cluster/pki/{name}.key"),
        signer,
        template,
    }
}

/// The admin group: `kubeadm:cluster-admins` from 1.29 on, `system:masters` before.
fn admin_group(spec: &PkiSpec) -> &'static str {
    if spec.kubernetes_version.has_super_admin() {
        "kubeadm:cluster-admins"
    } else {
        "system:masters"
    }
}

/// The apiserver SANs: the kubernetes service names, the first service IP, every
/// control-plane name and address, the VIP, localhost and 127.0.0.1 (kubectl on a
/// control-plane node while the VIP is down) and the user's extra SANs. kubeadm checks the
/// certificate against its own list plus `apiServer.certSANs`, which render writes the same.
pub(crate) fn apiserver_sans(spec: &PkiSpec) -> Result<BTreeSet<San>, PkiError> {
    let mut s = BTreeSet::new();
    for d in [
        "kubernetes".to_string(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        format!("kubernetes.default.svc.{}", spec.cluster_domain),
    ] {
        s.insert(San::Dns(d));
    }
    s.insert(San::Ip(spec.first_service_ip()?));
    for n in &spec.control_plane {
        s.insert(San::Dns(n.name.clone()));
        s.insert(San::Ip(n.address));
    }
    s.insert(San::Ip(spec.endpoint.vip));
    s.insert(San::Dns("localhost".into()));
    s.insert(San::Ip(IpAddr::from([127, 0, 0, 1])));
    for e in &spec.extra_sans {
        s.insert(San::parse(e));
    }
    Ok(s)
}

/// etcd server and peer SANs (kubeadm's): node name, localhost, its address, 127.0.0.1, ::1.
pub(crate) fn etcd_member_sans(name: &str, address: IpAddr) -> BTreeSet<San> {
    [
        San::Dns(name.into()),
        San::Dns("localhost".into()),
        San::Ip(address),
        San::Ip(IpAddr::from([127, 0, 0, 1])),
        San::Ip(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
    ]
    .into_iter()
    .collect()
}

/// Every leaf certificate of the spec.
pub(crate) fn leaves(spec: &PkiSpec) -> Result<Vec<LeafDef>, PkiError> {
    let mut v = vec![
        shared(
            "apiserver",
            CaKind::Ca,
            LeafTemplate {
                cn: "kube-apiserver".into(),
                org: None,
                sans: apiserver_sans(spec)?,
                usage: Usage::Server,
            },
        ),
        shared(
            "apiserver-kubelet-client",
            CaKind::Ca,
            LeafTemplate::client("kube-apiserver-kubelet-client", Some(admin_group(spec))),
        ),
        shared(
            "front-proxy-client",
            CaKind::FrontProxyCa,
            LeafTemplate::client("front-proxy-client", None),
        ),
        shared(
            "apiserver-etcd-client",
            CaKind::EtcdCa,
            LeafTemplate::client("kube-apiserver-etcd-client", None),
        ),
        shared(
            "etcd/healthcheck-client",
            CaKind::EtcdCa,
            LeafTemplate::client("kube-etcd-healthcheck-client", None),
        ),
    ];
    for n in &spec.etcd {
        for kind in ["server", "peer"] {
            v.push(LeafDef {
                name: format!("etcd/{kind}[{}]", n.name),
                cert_rel: format!("members/{}/pki/etcd/{kind}.crt", n.name),
                key_rel: format!("members/{}/pki/etcd/{kind}.key", n.name),
                signer: CaKind::EtcdCa,
                template: LeafTemplate {
                    cn: n.name.clone(),
                    org: None,
                    sans: {
                        let mut sans = etcd_member_sans(&n.name, n.address);
                        if kind == "server" {
                            sans.extend(spec.etcd_extra_sans.iter().map(|e| San::parse(e)));
                        }
                        sans
                    },
                    usage: Usage::ServerClient,
                },
            });
        }
    }
    Ok(v)
}

/// The signer of a shared leaf, by name (for `renew`, which has no spec).
pub(crate) fn signer_of(name: &str) -> CaKind {
    match name {
        "front-proxy-client" => CaKind::FrontProxyCa,
        "apiserver-etcd-client" | "etcd/healthcheck-client" => CaKind::EtcdCa,
        n if n.starts_with("etcd/") => CaKind::EtcdCa,
        _ => CaKind::Ca,
    }
}

/// The shared leaves, by name, in the order [`leaves`] lists them.
pub(crate) const SHARED_LEAVES: [&str; 5] = [
    "apiserver",
    "apiserver-kubelet-client",
    "front-proxy-client",
    "apiserver-etcd-client",
    "etcd/healthcheck-client",
];

/// Every kubeconfig of the spec (super-admin.conf only for Kubernetes >= 1.29).
pub(crate) fn kubeconfigs(spec: &PkiSpec) -> Vec<KubeconfigDef> {
    let mut v = Vec::new();
    let mut add = |file: &str, user: &str, cn: &str, org: Option<&str>| {
        v.push(KubeconfigDef {
            name: file.into(),
            rel: format!("cluster/{file}"),
            user: user.into(),
            template: LeafTemplate::client(cn, org),
        })
    };
    add(
        "admin.conf",
        "kubernetes-admin",
        "kubernetes-admin",
        Some(admin_group(spec)),
    );
    if spec.kubernetes_version.has_super_admin() {
        add(
            "super-admin.conf",
            "kubernetes-super-admin",
            "kubernetes-super-admin",
            Some("system:masters"),
        );
    }
    add(
        "controller-manager.conf",
        "system:kube-controller-manager",
        "system:kube-controller-manager",
        None,
    );
    add(
        "scheduler.conf",
        "system:kube-scheduler",
        "system:kube-scheduler",
        None,
    );
    v
}

/// One file a node receives: destination relative to /etc/kubernetes, source relative to
/// the store, mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeFile {
    pub dest: String,
    pub source: String,
    pub mode: u32,
}

/// What each node gets, keyed by node name. Control-plane nodes: the shared CAs with keys,
/// sa.key/sa.pub, front-proxy-client, apiserver, apiserver-kubelet-client,
/// apiserver-etcd-client, etcd/ca.crt (and etcd/ca.key when the node is also an etcd member,
/// as kubeadm's --upload-certs does for stacked etcd) and the kubeconfigs (super-admin.conf
/// only on the first control-plane node, as kubeadm creates it only on `init`). etcd
/// members: etcd/ca.crt, their own etcd/server and etcd/peer pairs, etcd/healthcheck-client.
pub(crate) fn node_files(spec: &PkiSpec) -> BTreeMap<String, Vec<NodeFile>> {
    let mut out = BTreeMap::new();
    let first_cp = spec.control_plane.first().map(|n| n.name.as_str());
    for (node, roles) in spec.nodes() {
        let mut files: BTreeMap<String, NodeFile> = BTreeMap::new();
        let mut add = |dest: String, source: String, mode: u32| {
            files.insert(dest.clone(), NodeFile { dest, source, mode });
        };
        let pair = |add: &mut dyn FnMut(String, String, u32), name: &str, source_dir: &str| {
            add(
                format!("pki/{name}.crt"),
                format!("{source_dir}/{name}.crt"),
                CERT_MODE,
            );
            add(
                format!("pki/{name}.key"),
                format!("{source_dir}/{name}.key"),
                KEY_MODE,
            );
        };
        if roles.control_plane {
            for n in [
                "ca",
                "front-proxy-ca",
                "front-proxy-client",
                "apiserver",
                "apiserver-kubelet-client",
                "apiserver-etcd-client",
            ] {
                pair(&mut add, n, "cluster/pki");
            }
            add("pki/sa.key".into(), "cluster/pki/sa.key".into(), KEY_MODE);
            add("pki/sa.pub".into(), "cluster/pki/sa.pub".into(), CERT_MODE);
            add(
                "pki/etcd/ca.crt".into(),
                "cluster/pki/etcd/ca.crt".into(),
                CERT_MODE,
            );
            if roles.etcd {
                add(
                    "pki/etcd/ca.key".into(),
                    "cluster/pki/etcd/ca.key".into(),
                    KEY_MODE,
                );
            }
            for k in kubeconfigs(spec) {
                if k.name == "super-admin.conf" && Some(node.name.as_str()) != first_cp {
                    continue;
                }
                add(k.name.clone(), k.rel.clone(), KEY_MODE);
            }
        }
        if roles.etcd {
            add(
                "pki/etcd/ca.crt".into(),
                "cluster/pki/etcd/ca.crt".into(),
                CERT_MODE,
            );
            pair(&mut add, "etcd/healthcheck-client", "cluster/pki");
            let member = format!("members/{}/pki", node.name);
            pair(&mut add, "etcd/server", &member);
            pair(&mut add, "etcd/peer", &member);
        }
        out.insert(node.name.clone(), files.into_values().collect());
    }
    out
}
