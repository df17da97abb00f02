//! `kubeha status`: one read-only script per node and a parser for what it prints. The
//! front door's own metrics say which VRRP state each node is in and which backends it
//! routes to; etcd answers for itself with the node's health-check certificate.

use std::path::Path;
use std::time::{Duration, Instant};

use inventory::Inventory;
use serde::Serialize;

use crate::executor::Connections;
use crate::transport::{Exec, Purpose};
use crate::upload::sh_quote;

/// The whole cluster as `kubeha status` judges it.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    pub cluster: String,
    pub vip: String,
    pub vip_holders: Vec<String>,
    pub etcd_members: usize,
    pub etcd_healthy: usize,
    /// The VIP held exactly once, every node answering, every etcd member healthy.
    pub healthy: bool,
    pub nodes: Vec<NodeStatus>,
    pub certificates: Option<Certificates>,
    /// Read from the nodes' own files, kubeconfig-embedded client certificates included.
    pub node_certificates: NodeCertificates,
    /// The cluster through its API (kube-rs, the PKI store's admin kubeconfig, the VIP);
    /// `None` before the PKI store has an admin kubeconfig.
    pub kubernetes: Option<crate::kubernetes::ApiStatus>,
}

/// The PKI store's expiry summary.
#[derive(Debug, Clone, Serialize)]
pub struct Certificates {
    pub store: String,
    pub certificates: usize,
    pub soonest: Option<String>,
    pub soonest_days_left: Option<i64>,
    pub expiring_within_30_days: usize,
}

/// Connects to every node, runs the read-only status script on each (at most `concurrency`
/// at once), and judges the result.
pub async fn status(
    inv: &Inventory,
    connect: impl AsyncFnOnce(&[String]) -> Connections,
    pki_dir: &Path,
    concurrency: usize,
) -> ClusterStatus {
    let names: Vec<String> = inv.nodes.iter().map(|n| n.name.clone()).collect();
    let conns = connect(&names).await;
    let vip = inv.endpoint.vip.to_string();
    let sem = tokio::sync::Semaphore::new(concurrency.max(1));
    let members: std::collections::HashSet<&str> =
        inv.etcd_members().map(|m| m.name.as_str()).collect();
    let probes = inv.nodes.iter().map(|n| {
        let conn = conns.get(&n.name);
        let (vip, sem, members) = (&vip, &sem, &members);
        async move {
            let _permit = sem.acquire().await.ok();
            let unreachable = |error: Option<String>| NodeStatus {
                name: n.name.clone(),
                error,
                ..NodeStatus::default()
            };
            let t = match conn {
                Some(Ok(t)) => t,
                Some(Err(e)) => return unreachable(Some(e.to_string())),
                None => return unreachable(None),
            };
            let address = n.address.to_string();
            let script = script(&Probe {
                vip,
                address: &address,
                metrics: "127.0.0.1:9100",
                etcd_member: members.contains(n.name.as_str()),
            });
            let t0 = Instant::now();
            let exec = Exec::new(script, Duration::from_secs(20)).purpose(Purpose::Status);
            match t.run(&exec).await {
                Ok(o) => {
                    let stdout = o.stdout_str();
                    let mut s = parse(&n.name, &stdout);
                    s.latency_ms = Some(t0.elapsed().as_millis() as u64);
                    s.certificates =
                        node_certificates(&stdout, pki::time::OffsetDateTime::now_utc());
                    s
                }
                Err(e) => unreachable(Some(e.to_string())),
            }
        }
    });
    let kubeconfig = pki::Store::open(pki_dir).admin_kubeconfig();
    let api = async {
        if !kubeconfig.exists() {
            return None;
        }
        let target = crate::kubernetes::Target::from_inventory(inv, &kubeconfig);
        Some(crate::kubernetes::status(&target).await)
    };
    let (nodes, api) =
        futures_util::future::join(futures_util::future::join_all(probes), api).await;
    let mut st = judge(&inv.cluster.name, vip, nodes, certificates(pki_dir));
    if let Some(a) = &api {
        st.healthy &= a.healthy;
    }
    st.kubernetes = api;
    st
}

fn certificates(pki_dir: &Path) -> Option<Certificates> {
    let now = pki::time::OffsetDateTime::now_utc();
    let r = pki::inspect_store(pki_dir, now).ok()?;
    let soonest = r.rows.iter().min_by_key(|row| row.days_left);
    Some(Certificates {
        store: pki_dir.display().to_string(),
        certificates: r.rows.len(),
        soonest: soonest.map(|s| s.source.clone()),
        soonest_days_left: soonest.map(|s| s.days_left),
        expiring_within_30_days: r.expiring(30).len(),
    })
}

fn judge(
    cluster: &str,
    vip: String,
    nodes: Vec<NodeStatus>,
    certificates: Option<Certificates>,
) -> ClusterStatus {
    let vip_holders: Vec<String> = nodes
        .iter()
        .filter(|n| n.vip_held)
        .map(|n| n.name.clone())
        .collect();
    let members: Vec<&EtcdMember> = nodes.iter().filter_map(|n| n.etcd.as_ref()).collect();
    let etcd_healthy = members.iter().filter(|e| e.healthy).count();
    let healthy = vip_holders.len() == 1
        && nodes.iter().all(|n| n.reachable)
        && etcd_healthy == members.len();
    ClusterStatus {
        cluster: cluster.to_string(),
        vip,
        vip_holders,
        etcd_members: members.len(),
        etcd_healthy,
        healthy,
        certificates,
        node_certificates: sum_node_certificates(&nodes),
        nodes,
        kubernetes: None,
    }
}

/// What the status script needs to know about a node.
pub struct Probe<'a> {
    pub vip: &'a str,
    pub address: &'a str,
    pub metrics: &'a str,
    pub etcd_member: bool,
}

pub const SERVICES: [&str; 6] = [
    "containerd",
    "kubelet",
    "etcd",
    "kubeha-frontdoor",
    "keepalived",
    "haproxy",
];

pub fn script(p: &Probe<'_>) -> String {
    let mut s = format!(
        "for s in {services}; do for d in /etc/systemd/system /lib/systemd/system /usr/lib/systemd/system; do if [ -f \"$d/$s.service\" ]; then echo \"service $s $(systemctl is-active \"$s\" 2>/dev/null || true)\"; break; fi; done; done\n\
         {vip}\
         if [ -f /etc/kubeha/frontdoor.yaml ]; then curl -fsS --max-time 2 {metrics} 2>/dev/null | grep -E '^kubeha_frontdoor_(vrrp_state|vrrp_priority|backend_up)' | sed 's/^/metric /' || echo 'metric unavailable'; fi\n",
        services = SERVICES.join(" "),
        vip = vip_probe(p.vip),
        metrics = sh_quote(&format!("http://{}/metrics", p.metrics)),
    );
    if p.etcd_member {
        s.push_str(&etcd_probe(p.address));
    }
    s.push_str(CERTS_PROBE);
    s.push_str("exit 0\n");
    s
}

/// Prints `cert <file> <base64 PEM>` for every certificate the node's components use: the
/// files under /etc/kubernetes/pki, the client certificates embedded in /etc/kubernetes/*.conf,
/// and the kubelet's own (only the CERTIFICATE blocks of its .pem: never a key).
pub const CERTS_PROBE: &str = "\
for f in /etc/kubernetes/pki/*.crt /etc/kubernetes/pki/etcd/*.crt /var/lib/kubelet/pki/kubelet.crt; do [ -f \"$f\" ] && echo \"cert $f $(base64 -w0 < \"$f\")\"; done
for f in /etc/kubernetes/*.conf; do [ -f \"$f\" ] && sed -n 's/^ *client-certificate-data: *//p' \"$f\" | while read -r d; do echo \"cert $f $d\"; done; done
f=/var/lib/kubelet/pki/kubelet-client-current.pem; [ -f \"$f\" ] && echo \"cert $f $(sed -n '/-BEGIN CERTIFICATE-/,/-END CERTIFICATE-/p' \"$f\" | base64 -w0)\"
";

/// A certificate found on a node.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NodeCert {
    /// The file (a kubeconfig for an embedded client certificate).
    pub source: String,
    pub subject: String,
    pub not_after: String,
    /// Whole days from now (negative once expired).
    pub days_left: i64,
    pub is_ca: bool,
}

/// The certificates in `CERTS_PROBE`'s lines of `stdout`, as of `now`. A line that does not
/// decode is reported as a certificate with an empty `not_after` and days_left 0, so it shows.
pub fn node_certificates(stdout: &str, now: pki::time::OffsetDateTime) -> Vec<NodeCert> {
    let mut out = Vec::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("cert ") else {
            continue;
        };
        let Some((source, data)) = rest.split_once(' ') else {
            continue;
        };
        let parsed = pki::kubeconfig::decode_data(data)
            .and_then(|pem| pki::x509::pem_certs(&pem))
            .and_then(|ders| {
                ders.iter()
                    .map(|d| pki::x509::parse_cert(d))
                    .collect::<Result<Vec<_>, _>>()
            });
        match parsed {
            Ok(infos) => out.extend(infos.into_iter().map(|i| {
                NodeCert {
                    source: source.to_string(),
                    subject: i.subject.clone(),
                    not_after: i
                        .not_after
                        .format(&pki::time::format_description::well_known::Rfc3339)
                        .unwrap_or_default(),
                    days_left: (i.not_after - now).whole_seconds().div_euclid(86400),
                    is_ca: i.is_ca,
                }
            })),
            Err(e) => out.push(NodeCert {
                source: source.to_string(),
                subject: format!("unreadable: {e}"),
                not_after: String::new(),
                days_left: 0,
                is_ca: false,
            }),
        }
    }
    out
}

/// The certificates read from the nodes, summed up.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct NodeCertificates {
    /// How many certificates were read, on how many nodes.
    pub certificates: usize,
    pub nodes: usize,
    /// `node:file` of the leaf certificate that expires first.
    pub soonest: Option<String>,
    pub soonest_days_left: Option<i64>,
    pub expiring_within_30_days: usize,
}

fn sum_node_certificates(nodes: &[NodeStatus]) -> NodeCertificates {
    let leaves = || {
        nodes
            .iter()
            .flat_map(|n| n.certificates.iter().map(move |c| (n, c)))
            .filter(|(_, c)| !c.is_ca)
    };
    let soonest = leaves().min_by_key(|(_, c)| c.days_left);
    NodeCertificates {
        certificates: nodes.iter().map(|n| n.certificates.len()).sum(),
        nodes: nodes.iter().filter(|n| !n.certificates.is_empty()).count(),
        soonest: soonest.map(|(n, c)| format!("{}:{}", n.name, c.source)),
        soonest_days_left: soonest.map(|(_, c)| c.days_left),
        expiring_within_30_days: leaves().filter(|(_, c)| c.days_left < 30).count(),
    }
}

/// Prints `vip held` or `vip not-held` (for [`parse`]): is `vip` on one of the node's links?
pub fn vip_probe(vip: &str) -> String {
    format!(
        "if ip -o -4 addr show | grep -q ' {vip}/'; then echo 'vip held'; else echo 'vip not-held'; fi\n"
    )
}

/// curl's options for an etcd member's client port, with the health-check client certificate
/// kubeha's PKI gives every member (and `etcd restore`'s health wait).
pub const ETCD_HEALTHCHECK_TLS: &str = "--cacert /etc/kubernetes/pki/etcd/ca.crt --cert /etc/kubernetes/pki/etcd/healthcheck-client.crt --key /etc/kubernetes/pki/etcd/healthcheck-client.key";

/// Prints `etcd-health …` and, where etcdctl exists, `etcd <endpoint status>` (for [`parse`]).
/// /health answers only with a quorum; etcdctl (often absent on kubeadm hosts, where etcd is
/// a static pod) adds whether this member leads.
pub fn etcd_probe(address: &str) -> String {
    let tls = ETCD_HEALTHCHECK_TLS;
    format!(
        "echo \"etcd-health $(curl -sS --max-time 3 {tls} https://{address}:2379/health 2>&1 | head -c 300 | tr '\\n' ' ')\"\n\
         if command -v etcdctl >/dev/null; then ETCDCTL_API=3 etcdctl --endpoints=https://{address}:2379 {ctl} --dial-timeout=2s --command-timeout=3s endpoint status -w simple 2>&1 | sed 's/^/etcd /'; fi\n",
        ctl = tls.replace(" /", "=/"),
    )
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct NodeStatus {
    pub name: String,
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub latency_ms: Option<u64>,
    pub services: Vec<(String, String)>,
    pub vip_held: bool,
    /// `master`, `backup`, ... from the front door's metrics; `None` where it does not run.
    pub vrrp_state: Option<String>,
    pub vrrp_priority: Option<u32>,
    /// (backend, up).
    pub backends: Vec<(String, bool)>,
    /// `None` for nodes without an etcd member.
    pub etcd: Option<EtcdMember>,
    /// What the node's own files hold (`kubeha pki renew` changes the store; these show
    /// whether the nodes have the renewed ones).
    pub certificates: Vec<NodeCert>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct EtcdMember {
    pub healthy: bool,
    pub is_leader: bool,
    /// What etcdctl said, when it was not healthy.
    pub detail: String,
}

pub fn parse(name: &str, stdout: &str) -> NodeStatus {
    let mut st = NodeStatus {
        name: name.to_string(),
        reachable: true,
        ..NodeStatus::default()
    };
    let mut etcd_lines = Vec::new();
    let mut etcd_health: Option<String> = None;
    for line in stdout.lines() {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        match kind {
            "service" => {
                if let Some((svc, state)) = rest.split_once(' ') {
                    let state = if state.trim().is_empty() {
                        "unknown"
                    } else {
                        state.trim()
                    };
                    st.services.push((svc.to_string(), state.to_string()));
                }
            }
            "vip" => st.vip_held = rest == "held",
            "metric" => {
                if let Some(state) = rest
                    .strip_prefix("kubeha_frontdoor_vrrp_state{state=\"")
                    .and_then(|r| r.strip_suffix("\"} 1"))
                {
                    st.vrrp_state = Some(state.to_string());
                } else if let Some(p) = rest.strip_prefix("kubeha_frontdoor_vrrp_priority ") {
                    st.vrrp_priority = p.trim().parse::<f64>().ok().map(|v| v as u32);
                } else if let Some(b) = rest.strip_prefix("kubeha_frontdoor_backend_up{backend=\"")
                {
                    if let Some((addr, v)) = b.split_once("\"} ") {
                        st.backends.push((addr.to_string(), v.trim() == "1"));
                    }
                } else if rest == "unavailable" {
                    st.vrrp_state = Some("metrics unavailable".into());
                }
            }
            "etcd" => etcd_lines.push(rest.to_string()),
            "etcd-health" => etcd_health = Some(rest.trim().to_string()),
            _ => {}
        }
    }
    if etcd_health.is_some() || !etcd_lines.is_empty() {
        // `endpoint status -w simple`: endpoint, id, version, db size, is leader, is learner, ...
        let first = etcd_lines.first().cloned().unwrap_or_default();
        let fields: Vec<&str> = first.split(", ").collect();
        let status_ok = fields.len() >= 6 && fields[0].starts_with("https://");
        let healthy = match &etcd_health {
            Some(h) => h.contains("\"health\":\"true\""),
            None => status_ok,
        };
        let mut detail = String::new();
        if !healthy {
            detail = etcd_health.clone().unwrap_or_default();
            if !etcd_lines.is_empty() {
                detail = format!("{detail} {}", etcd_lines.join(" "))
                    .trim()
                    .to_string();
            }
        }
        st.etcd = Some(EtcdMember {
            healthy,
            is_leader: healthy && status_ok && fields[4] == "true",
            detail,
        });
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PKI issued for a small inventory, as `up` issues it.
    fn issued() -> tempfile::TempDir {
        let inv = inventory::parse_str(
            "cluster: { name: c, kubernetes_version: 1.34.4 }\nendpoint: { vip: 198.18.0.10/24 }\nnodes:\n  - { name: cp1, address: 198.18.0.11/24, roles: [control-plane] }\npki: { leaf_validity: 100d }\n",
            "c.yaml",
        )
        .unwrap()
        .inventory;
        let dir = tempfile::tempdir().unwrap();
        pki::Store::open(dir.path())
            .issue(
                &plan::pki::spec(&inv),
                pki::time::OffsetDateTime::now_utc(),
                &pki::IssueOptions::default(),
            )
            .unwrap();
        dir
    }

    #[test]
    fn node_certificates_read_files_and_kubeconfig_data_and_sum_up_the_leaves() {
        use base64::Engine;
        let dir = issued();
        let cluster = dir.path().join("cluster");
        let b64 = |p: &str| {
            base64::engine::general_purpose::STANDARD
                .encode(std::fs::read(cluster.join(p)).unwrap())
        };
        let admin = std::fs::read_to_string(cluster.join("admin.conf")).unwrap();
        let embedded = admin
            .lines()
            .find_map(|l| l.trim().strip_prefix("client-certificate-data: "))
            .unwrap();
        let stdout = format!(
            "vip held\ncert /etc/kubernetes/pki/ca.crt {}\ncert /etc/kubernetes/pki/apiserver.crt {}\ncert /etc/kubernetes/admin.conf {embedded}\ncert /etc/kubernetes/pki/bad.crt bm90IGEgY2VydA==\n",
            b64("pki/ca.crt"),
            b64("pki/apiserver.crt"),
        );
        let certs = node_certificates(&stdout, pki::time::OffsetDateTime::now_utc());
        assert_eq!(certs.len(), 4, "{certs:#?}");
        assert!(certs[0].is_ca && certs[0].days_left > 3000);
        assert_eq!((certs[1].is_ca, certs[1].days_left), (false, 99));
        assert!(
            certs[2].subject.contains("kubernetes-admin") || certs[2].subject.contains("admin"),
            "{:?}",
            certs[2]
        );
        assert!(certs[3].subject.starts_with("unreadable"), "{:?}", certs[3]);
        let mut node = parse("cp1", &stdout);
        node.certificates = certs;
        let sum = sum_node_certificates(&[node, parse("w1", "")]);
        assert_eq!((sum.certificates, sum.nodes), (4, 1));
        // The unreadable one counts as expiring: it needs a look.
        assert_eq!(
            sum.soonest.as_deref(),
            Some("cp1:/etc/kubernetes/pki/bad.crt")
        );
        assert_eq!(sum.expiring_within_30_days, 1);
    }

    #[test]
    fn healthy_needs_one_vip_holder_every_node_and_every_member() {
        let up = |name: &str, out: &str| parse(name, out);
        let good = || {
            vec![
                up("m1", "vip held\netcd-health {\"health\":\"true\"}\n"),
                up("m2", "vip not-held\netcd-health {\"health\":\"true\"}\n"),
                up("w1", ""),
            ]
        };
        let s = judge("c", "198.18.0.10".into(), good(), None);
        assert!(s.healthy);
        assert_eq!((s.etcd_members, s.etcd_healthy), (2, 2));
        assert_eq!(s.vip_holders, ["m1"]);
        let mut two = good();
        two[1].vip_held = true;
        assert!(!judge("c", "v".into(), two, None).healthy);
        let mut down = good();
        down[2] = NodeStatus {
            name: "w1".into(),
            ..NodeStatus::default()
        };
        assert!(!judge("c", "v".into(), down, None).healthy);
        let mut sick = good();
        sick[1] = up("m2", "vip not-held\netcd-health {\"health\":\"false\"}\n");
        let s = judge("c", "v".into(), sick, None);
        assert!(!s.healthy);
        assert_eq!(s.etcd_healthy, 1);
    }

    #[test]
    fn parses_a_master_with_a_healthy_leader() {
        let out = "\
service etcd active
service kubeha-frontdoor active
service kubelet inactive
vip held
metric kubeha_frontdoor_vrrp_state{state=\"initialize\"} 0
metric kubeha_frontdoor_vrrp_state{state=\"master\"} 1
metric kubeha_frontdoor_vrrp_priority 150
metric kubeha_frontdoor_backend_up{backend=\"198.18.0.11:2379\"} 1
metric kubeha_frontdoor_backend_up{backend=\"198.18.0.12:2379\"} 0
etcd-health {\"health\":\"true\",\"reason\":\"\"}
etcd https://198.18.0.11:2379, 8e9e05c52164694d, 3.4.23, 20 kB, true, false, 2, 8, 8, 
";
        let s = parse("m1", out);
        assert_eq!(s.vrrp_state.as_deref(), Some("master"));
        assert_eq!(s.vrrp_priority, Some(150));
        assert!(s.vip_held);
        assert_eq!(s.services.len(), 3);
        assert_eq!(s.services[2], ("kubelet".into(), "inactive".into()));
        assert_eq!(
            s.backends,
            vec![
                ("198.18.0.11:2379".into(), true),
                ("198.18.0.12:2379".into(), false)
            ]
        );
        let e = s.etcd.unwrap();
        assert!(e.healthy && e.is_leader);
    }

    #[test]
    fn an_unreachable_etcd_is_unhealthy_with_the_reason() {
        let s = parse(
            "m2",
            "vip not-held\netcd-health curl: (7) Failed to connect to 198.18.0.12 port 2379\netcd {\"level\":\"warn\"} context deadline exceeded\n",
        );
        assert!(!s.vip_held);
        let e = s.etcd.unwrap();
        assert!(!e.healthy);
        assert!(e.detail.contains("deadline exceeded"));
        assert!(e.detail.contains("Failed to connect"));
    }

    #[test]
    fn a_stacked_member_without_etcdctl_is_judged_by_its_health_endpoint() {
        let s = parse("m1", "etcd-health {\"health\":\"true\",\"reason\":\"\"}\n");
        let e = s.etcd.unwrap();
        assert!(e.healthy && !e.is_leader);
        let s = parse(
            "m1",
            "etcd-health {\"health\":\"false\",\"reason\":\"RAFT NO LEADER\"}\n",
        );
        assert!(!s.etcd.unwrap().healthy);
    }
}
