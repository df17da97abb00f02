//! Day 2 for etcd: `kubeha etcd snapshot` and `kubeha etcd restore`, for stacked members
//! (kubeadm's static pods) and external ones (kubeha's units) alike.
//!
//! A snapshot is taken on the first member that answers, with that node's etcdctl, streamed
//! back over the node's connection and checked here (`snapshot_file`) before it is kept.
//!
//! A restore changes nothing until every member has the snapshot restored beside its live data
//! (`stage`). Then, in this order: the apiservers, controller-managers, schedulers and etcd stop
//! on every control-plane node (their static pod manifests are held aside) and external
//! members stop; each member's data is swapped for the restored one (the old data is kept);
//! etcd starts and becomes healthy; the control plane starts and every apiserver answers
//! /readyz; the kubelets restart, so no component acts on what it cached before. A failure
//! stops there with the node, the stage and what to do; running the restore again resumes.

pub mod snapshot_file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use inventory::{EtcdTopology, Inventory, Node};
use serde::Serialize;

use crate::Connections;
use crate::transport::{Exec, Output, Transport};
use crate::upload::{tail_lines as tail, with_vars};
pub use snapshot_file::{NotASnapshot, Verified};

mod sh {
    pub const SAVE: &str = include_str!("scripts/save.sh");
    pub const STAGE: &str = include_str!("scripts/stage.sh");
    pub const HOLD: &str = include_str!("scripts/hold.sh");
    pub const SWAP: &str = include_str!("scripts/swap.sh");
    pub const RELEASE: &str = include_str!("scripts/release.sh");
    pub const WAIT_HEALTHY: &str = include_str!("scripts/wait-healthy.sh");
}

/// The kubelet's static pod directory, and where kubeha holds manifests during a restore
/// (outside it, or the kubelet would run them).
const MANIFESTS: &str = "/etc/kubernetes/manifests";
const HOLD: &str = "/etc/kubernetes/kubeha-held";
/// The scratch file a snapshot is written to on the member, removed when it has been read.
const SCRATCH: &str = "/var/lib/kubeha/etcd-snapshot/snapshot.db";
const CONTROL_PLANE_PODS: &str = "kube-apiserver kube-controller-manager kube-scheduler";

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("{path}: not an etcd snapshot: {why}")]
    NotASnapshot { path: String, why: NotASnapshot },
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error(
        "{node} cannot be reached ({reason}); a restore needs every etcd member and control-plane node: bring it back or remove it from the inventory, then run it again"
    )]
    Unreachable { node: String, reason: String },
    #[error("no etcd member gave a snapshot: {0}")]
    NoSnapshot(String),
    #[error("{node}, {stage}: {detail}. {hint}")]
    Stage {
        node: String,
        stage: Stage,
        detail: String,
        hint: String,
    },
}

/// The steps of a restore, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Snapshot sent and restored beside the live data on every member.
    Stage,
    /// Control plane and etcd stopped.
    Stop,
    /// Restored data in place.
    Swap,
    /// etcd started and healthy.
    StartEtcd,
    /// Apiservers, controller-managers, schedulers started; every apiserver ready.
    StartControlPlane,
    /// Kubelets restarted.
    RestartKubelets,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Stage => "restoring the snapshot beside the live data",
            Stage::Stop => "stopping the control plane and etcd",
            Stage::Swap => "putting the restored data in place",
            Stage::StartEtcd => "starting etcd",
            Stage::StartControlPlane => "starting the control plane",
            Stage::RestartKubelets => "restarting the kubelets",
        })
    }
}

/// What `etcd snapshot` did.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotTaken {
    /// The member it came from.
    pub member: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    /// From `etcdutl snapshot status` on the member, where etcdutl is installed.
    pub revision: Option<u64>,
    pub keys: Option<u64>,
    pub millis: u64,
    /// Members tried before, and why they gave none.
    pub skipped: Vec<(String, String)>,
}

/// What `etcd restore` did.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub members: Vec<String>,
    pub snapshot_sha256: String,
    /// Where each member's data from before the restore is kept.
    pub kept: BTreeMap<String, String>,
    /// How long each stage took, in order.
    pub stages: Vec<(Stage, u64)>,
    pub millis: u64,
    /// Nodes whose kubelet could not be restarted (workers that are down): said, not fatal.
    pub warnings: Vec<String>,
}

/// `script` (hold.sh or release.sh) for these static pods and this unit.
fn static_pods(script: &str, pods: &str, unit: &str) -> String {
    with_vars(
        &[
            ("HOLD", HOLD),
            ("MANIFESTS", MANIFESTS),
            ("STATIC", pods),
            ("UNIT", unit),
        ],
        script,
    )
}

fn members(inv: &Inventory) -> Vec<&Node> {
    inv.etcd_members().collect()
}

fn client_url(n: &Node) -> String {
    format!("https://{}:2379", n.address)
}

/// The revision and key count `etcdutl snapshot status -w json` reported (on stderr, prefixed).
fn status_of(stderr: &[u8]) -> (Option<u64>, Option<u64>) {
    let t = String::from_utf8_lossy(stderr);
    let Some(json) = t.lines().find_map(|l| l.strip_prefix("kubeha-status ")) else {
        return (None, None);
    };
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    (v["revision"].as_u64(), v["totalKey"].as_u64())
}

/// Takes a snapshot from the first member (inventory order) that gives one, checks it and
/// writes it to `out` (mode 0600: it holds every Secret of the cluster). An existing `out` is
/// never replaced.
pub async fn snapshot(
    inv: &Inventory,
    conns: &Connections,
    out: &Path,
    timeout: Duration,
) -> Result<SnapshotTaken, EtcdError> {
    let file_err = |reason: String| EtcdError::File {
        path: out.display().to_string(),
        reason,
    };
    if out.exists() {
        return Err(file_err(
            "exists already: kubeha does not replace it; pick another -o or move it away".into(),
        ));
    }
    let started = Instant::now();
    let mut skipped = Vec::new();
    for m in members(inv) {
        let t = match conns.get(&m.name) {
            Some(Ok(t)) => t,
            Some(Err(e)) => {
                skipped.push((m.name.clone(), e.to_string()));
                continue;
            }
            None => continue,
        };
        let script = with_vars(&[("ENDPOINT", &client_url(m)), ("SNAP", SCRATCH)], sh::SAVE);
        let res = t.run(&Exec::new(script, timeout)).await;
        let o = match res {
            Ok(o) if o.success() => o,
            Ok(o) => {
                skipped.push((m.name.clone(), tail(&o.stderr, 3)));
                continue;
            }
            Err(e) => {
                skipped.push((m.name.clone(), e.to_string()));
                continue;
            }
        };
        let verified = match snapshot_file::verify(&o.stdout) {
            Ok(v) => v,
            Err(why) => {
                skipped.push((m.name.clone(), format!("what it sent is {why}")));
                continue;
            }
        };
        write_new(out, &o.stdout).map_err(file_err)?;
        let (revision, keys) = status_of(&o.stderr);
        return Ok(SnapshotTaken {
            member: m.name.clone(),
            path: out.to_path_buf(),
            bytes: verified.bytes,
            sha256: verified.sha256,
            revision,
            keys,
            millis: started.elapsed().as_millis() as u64,
            skipped,
        });
    }
    let why: Vec<String> = skipped.iter().map(|(n, e)| format!("{n}: {e}")).collect();
    Err(EtcdError::NoSnapshot(if why.is_empty() {
        "the inventory has no etcd member".into()
    } else {
        why.join("; ")
    }))
}

/// Creates `path` with mode 0600; refuses to replace anything.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create it: {e}"))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| {
        let _ = std::fs::remove_file(path);
        format!("cannot write it: {e}")
    })
}

/// Reads and checks a snapshot file: what `restore` does before it connects to anything.
pub fn read_snapshot(path: &Path) -> Result<(Vec<u8>, Verified), EtcdError> {
    let bytes = std::fs::read(path).map_err(|e| EtcdError::File {
        path: path.display().to_string(),
        reason: format!("cannot read it: {e}"),
    })?;
    let v = snapshot_file::verify(&bytes).map_err(|why| EtcdError::NotASnapshot {
        path: path.display().to_string(),
        why,
    })?;
    Ok((bytes, v))
}

/// A node a restore works on, with what it runs.
struct Target<'a> {
    node: &'a Node,
    t: &'a dyn Transport,
    member: bool,
    control_plane: bool,
}

impl Target<'_> {
    /// The static pods of this node the restore stops, and the unit (external etcd).
    fn stops(&self, stacked: bool, with_control_plane: bool) -> (String, &'static str) {
        let mut pods: Vec<&str> = Vec::new();
        if self.control_plane && with_control_plane {
            pods.extend(CONTROL_PLANE_PODS.split(' '));
        }
        if self.member && stacked {
            pods.push("etcd");
        }
        let unit = if self.member && !stacked { "etcd" } else { "" };
        (pods.join(" "), unit)
    }
}

/// Restores `bytes` (checked with [`read_snapshot`]) on every member and brings the control
/// plane back on it. `say` hears each stage as it starts.
pub async fn restore(
    inv: &Inventory,
    conns: &Connections,
    bytes: &[u8],
    verified: &Verified,
    stamp: &str,
    say: &mut (dyn FnMut(&str) + Send),
) -> Result<Restored, EtcdError> {
    let started = Instant::now();
    let stacked = inv.etcd.topology == EtcdTopology::Stacked;
    let mut targets = Vec::new();
    for n in &inv.nodes {
        let member = inv.etcd_members().any(|m| m.name == n.name);
        if !member && !n.roles.control_plane {
            continue;
        }
        match conns.get(&n.name) {
            Some(Ok(t)) => targets.push(Target {
                node: n,
                t: t.as_ref(),
                member,
                control_plane: n.roles.control_plane,
            }),
            Some(Err(e)) => {
                return Err(EtcdError::Unreachable {
                    node: n.name.clone(),
                    reason: e.to_string(),
                });
            }
            None => {
                return Err(EtcdError::Unreachable {
                    node: n.name.clone(),
                    reason: "no connection was made".into(),
                });
            }
        }
    }
    let cluster: Vec<String> = members(inv)
        .iter()
        .map(|m| format!("{}=https://{}:2380", m.name, m.address))
        .collect();
    let cluster = cluster.join(",");
    let token = format!("kubeha-{}", inv.cluster.name);
    let data_dir = inv.etcd.data_dir.as_str();
    let size = bytes.len().to_string();
    let mut stages = Vec::new();
    let mut warnings = Vec::new();
    let minutes = |m: u64| Duration::from_secs(60 * m);

    // 1. Nothing live is touched until every member has the restored data beside its own.
    let t0 = Instant::now();
    say("restoring the snapshot beside the live data on every member");
    let runs = targets.iter().filter(|x| x.member).map(|x| {
        let peer = format!("https://{}:2380", x.node.address);
        let script = with_vars(
            &[
                ("SIZE", &size),
                ("SHA", &verified.sha256),
                ("NAME", &x.node.name),
                ("PEER_URL", &peer),
                ("CLUSTER", &cluster),
                ("TOKEN", &token),
                ("DATA_DIR", data_dir),
            ],
            sh::STAGE,
        );
        let mut e = Exec::new(script, minutes(10));
        e.stdin = bytes.to_vec();
        (x, e)
    });
    let runs: Vec<_> = runs.collect();
    all_ok(
        Stage::Stage,
        &runs,
        "nothing was changed; fix the cause and run the restore again",
    )
    .await?;
    stages.push((Stage::Stage, ms(t0)));

    // 2. Everything that reads or writes etcd stops.
    let t0 = Instant::now();
    say("stopping the apiservers, controller-managers, schedulers and etcd");
    let runs: Vec<_> = targets
        .iter()
        .map(|x| {
            let (pods, unit) = x.stops(stacked, true);
            let script = static_pods(sh::HOLD, &pods, unit);
            (x, Exec::new(script, minutes(3)))
        })
        .collect();
    let held = format!(
        "static pod manifests held in {HOLD} on the control-plane nodes; run the restore again, or move them back to {MANIFESTS} to keep the old data"
    );
    all_ok(Stage::Stop, &runs, &held).await?;
    stages.push((Stage::Stop, ms(t0)));

    // 3. The restored data in place of the old, which is kept.
    let t0 = Instant::now();
    say("putting the restored data in place (the old data is kept)");
    let runs: Vec<_> = targets
        .iter()
        .filter(|x| x.member)
        .map(|x| {
            let script = with_vars(&[("DATA_DIR", data_dir), ("STAMP", stamp)], sh::SWAP);
            (x, Exec::new(script, minutes(5)))
        })
        .collect();
    let outs = all_ok(Stage::Swap, &runs, &held).await?;
    let kept: BTreeMap<String, String> = outs
        .into_iter()
        .filter_map(|(name, o)| {
            let out = o.stdout_str();
            let dir = out
                .lines()
                .find_map(|l| l.strip_prefix("kept "))?
                .to_string();
            Some((name, dir))
        })
        .collect();
    stages.push((Stage::Swap, ms(t0)));

    // 4. etcd first: every member must run before any has a quorum to be healthy with.
    let t0 = Instant::now();
    say("starting etcd on every member");
    let runs: Vec<_> = targets
        .iter()
        .filter(|x| x.member)
        .map(|x| {
            let (pods, unit) = x.stops(stacked, false);
            let script = static_pods(sh::RELEASE, &pods, unit);
            (x, Exec::new(script, minutes(2)))
        })
        .collect();
    all_ok(Stage::StartEtcd, &runs, &held).await?;
    let runs: Vec<_> = targets
        .iter()
        .filter(|x| x.member)
        .map(|x| {
            let url = format!("{}/health", client_url(x.node));
            let script = with_vars(
                &[
                    ("URL", &url),
                    ("CURL_TLS", crate::status::ETCD_HEALTHCHECK_TLS),
                    ("EXPECT", "\"health\":\"true\""),
                    ("SECONDS_MAX", "180"),
                    ("WHAT", "etcd"),
                ],
                sh::WAIT_HEALTHY,
            );
            (x, Exec::new(script, minutes(4)))
        })
        .collect();
    all_ok(
        Stage::StartEtcd,
        &runs,
        &format!("the restored data is in place, the old in {data_dir}.kubeha-before-restore-{stamp}; {held}"),
    )
    .await?;
    stages.push((Stage::StartEtcd, ms(t0)));

    // 5. The control plane on the restored data.
    let t0 = Instant::now();
    say("starting the apiservers, controller-managers and schedulers");
    let runs: Vec<_> = targets
        .iter()
        .filter(|x| x.control_plane)
        .map(|x| {
            let url = format!(
                "https://{}:{}/readyz",
                x.node.address, inv.endpoint.apiserver_port
            );
            let script = static_pods(sh::RELEASE, CONTROL_PLANE_PODS, "")
                + "\n"
                + &with_vars(
                    &[
                        ("URL", &url),
                        ("CURL_TLS", "--cacert /etc/kubernetes/pki/ca.crt"),
                        ("EXPECT", "ok"),
                        ("SECONDS_MAX", "300"),
                        ("WHAT", "the apiserver"),
                    ],
                    sh::WAIT_HEALTHY,
                );
            (x, Exec::new(script, minutes(6)))
        })
        .collect();
    all_ok(
        Stage::StartControlPlane,
        &runs,
        "etcd runs on the restored data; see the kubelet's log and `crictl ps -a` on that node, then run the restore again",
    )
    .await?;
    stages.push((Stage::StartControlPlane, ms(t0)));

    // 6. Kubelets forget what they cached from the old data. A worker that is down restarts
    //    its kubelet when it comes back anyway: said, not fatal.
    let t0 = Instant::now();
    say("restarting the kubelets");
    let restart = Exec::new("systemctl restart kubelet", minutes(2));
    let runs = inv.nodes.iter().map(|n| {
        let restart = &restart;
        async move {
            match conns.get(&n.name) {
                Some(Ok(t)) => match t.run(restart).await {
                    Ok(o) if o.success() => None,
                    Ok(o) => Some(format!(
                        "{}: kubelet restart failed: {}",
                        n.name,
                        tail(&o.stderr, 2)
                    )),
                    Err(e) => Some(format!("{}: kubelet not restarted: {e}", n.name)),
                },
                Some(Err(e)) => Some(format!("{}: kubelet not restarted: {e}", n.name)),
                None => None,
            }
        }
    });
    warnings.extend(join_all(runs).await.into_iter().flatten());
    stages.push((Stage::RestartKubelets, ms(t0)));

    Ok(Restored {
        members: members(inv).iter().map(|m| m.name.clone()).collect(),
        snapshot_sha256: verified.sha256.clone(),
        kept,
        stages,
        millis: started.elapsed().as_millis() as u64,
        warnings,
    })
}

fn ms(t0: Instant) -> u64 {
    t0.elapsed().as_millis() as u64
}

/// Runs each node's command at once; the first failure (in inventory order) is the error.
async fn all_ok(
    stage: Stage,
    runs: &[(&Target<'_>, Exec)],
    hint: &str,
) -> Result<Vec<(String, Output)>, EtcdError> {
    let outs = join_all(runs.iter().map(|(x, e)| x.t.run(e))).await;
    let mut ok = Vec::new();
    for ((x, _), res) in runs.iter().zip(outs) {
        let name = x.node.name.clone();
        match res {
            Ok(o) if o.success() => ok.push((name, o)),
            Ok(o) => {
                return Err(EtcdError::Stage {
                    node: name,
                    stage,
                    detail: match tail(&o.stderr, 3) {
                        t if t.is_empty() => format!("exit {:?}", o.exit),
                        t => t,
                    },
                    hint: hint.to_string(),
                });
            }
            Err(e) => {
                return Err(EtcdError::Stage {
                    node: name,
                    stage,
                    detail: e.to_string(),
                    hint: hint.to_string(),
                });
            }
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures_util::future::BoxFuture;

    use super::*;
    use crate::transport::TransportError;

    /// A node that keeps every script it is sent and fails the first that holds `fail_on`.
    struct Recorder {
        name: String,
        sent: Arc<Mutex<Vec<(String, String)>>>,
        fail_on: Option<&'static str>,
    }

    impl Transport for Recorder {
        fn run<'a>(&'a self, exec: &'a Exec) -> BoxFuture<'a, Result<Output, TransportError>> {
            Box::pin(async move {
                self.sent
                    .lock()
                    .unwrap()
                    .push((self.name.clone(), exec.script.clone()));
                let fails = self.fail_on.is_some_and(|f| exec.script.contains(f));
                Ok(Output {
                    exit: Some(if fails { 1 } else { 0 }),
                    stdout: if exec.script.contains("mv \"$DATA_DIR/member\"") {
                        b"kept /var/lib/etcd.kubeha-before-restore-T\n".to_vec()
                    } else {
                        Vec::new()
                    },
                    stderr: if fails {
                        b"it broke\n".to_vec()
                    } else {
                        Vec::new()
                    },
                })
            })
        }
        fn describe(&self) -> String {
            self.name.clone()
        }
    }

    fn inventory() -> Inventory {
        let text = "cluster: { name: lab, kubernetes_version: 1.34.4 }\n\
                    endpoint: { vip: 198.18.0.10 }\n\
                    nodes:\n\
                    \x20 - { name: cp1, address: 198.18.0.11/24, roles: [control-plane] }\n\
                    \x20 - { name: cp2, address: 198.18.0.12/24, roles: [control-plane] }\n\
                    \x20 - { name: cp3, address: 198.18.0.13/24, roles: [control-plane] }\n\
                    \x20 - { name: w1,  address: 198.18.0.21/24, roles: [worker] }\n";
        inventory::parse_str(text, "cluster.yaml")
            .unwrap()
            .inventory
    }

    /// What each script does, from a line only it has.
    fn kind(script: &str) -> &'static str {
        [
            ("etcdutl snapshot restore", "stage"),
            ("mv -f \"$MANIFESTS/$p.yaml\" \"$HOLD/$p.yaml\"", "hold"),
            ("mv \"$DATA_DIR.kubeha-restore/member\"", "swap"),
            ("did not become healthy", "wait"),
            ("mv -f \"$HOLD/$p.yaml\" \"$MANIFESTS/$p.yaml\"", "release"),
            ("systemctl restart kubelet", "kubelet"),
        ]
        .iter()
        .find(|(line, _)| script.contains(line))
        .map_or("other", |(_, k)| k)
    }

    fn run(
        fail: Option<(&str, &'static str)>,
    ) -> (Result<Restored, EtcdError>, Vec<(String, String)>) {
        let inv = inventory();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let conns: Connections = inv
            .nodes
            .iter()
            .map(|n| {
                let t: Box<dyn Transport> = Box::new(Recorder {
                    name: n.name.clone(),
                    sent: sent.clone(),
                    fail_on: fail.filter(|(node, _)| *node == n.name).map(|(_, f)| f),
                });
                (n.name.clone(), Ok(t))
            })
            .collect();
        let v = Verified {
            sha256: "a".repeat(64),
            bytes: 3,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let res = rt.block_on(restore(&inv, &conns, b"abc", &v, "T", &mut |_| {}));
        let sent = sent.lock().unwrap().clone();
        (res, sent)
    }

    #[test]
    fn a_restore_stages_everywhere_before_it_stops_anything_then_starts_etcd_first() {
        let (res, sent) = run(None);
        let r = res.unwrap();
        assert_eq!(r.members, ["cp1", "cp2", "cp3"]);
        assert_eq!(r.kept.len(), 3);
        let kinds: Vec<&str> = sent.iter().map(|(_, s)| kind(s)).collect();
        let first = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
        let last = |k: &str| kinds.iter().rposition(|x| *x == k).unwrap();
        assert_eq!(
            kinds.iter().filter(|k| **k == "stage").count(),
            3,
            "{kinds:?}"
        );
        assert!(last("stage") < first("hold"), "{kinds:?}");
        assert!(last("hold") < first("swap"), "{kinds:?}");
        assert!(last("swap") < first("release"), "{kinds:?}");
        assert!(last("wait") < first("kubelet"), "{kinds:?}");
        // The worker is only asked to restart its kubelet.
        let w1: Vec<&str> = sent
            .iter()
            .filter(|(n, _)| n == "w1")
            .map(|(_, s)| kind(s))
            .collect();
        assert_eq!(w1, ["kubelet"]);
        // Stacked etcd: held and released with the control plane's static pods; the stage
        // names each member and its peers as the inventory does.
        let stage = &sent
            .iter()
            .find(|(n, s)| n == "cp2" && kind(s) == "stage")
            .unwrap()
            .1;
        assert!(stage.contains("NAME='cp2'"), "{stage}");
        assert!(
            stage.contains("CLUSTER='cp1=https://198.18.0.11:2380,cp2=https://198.18.0.12:2380,cp3=https://198.18.0.13:2380'"),
            "{stage}"
        );
        let hold = &sent
            .iter()
            .find(|(n, s)| n == "cp1" && kind(s) == "hold")
            .unwrap()
            .1;
        assert!(
            hold.contains("STATIC='kube-apiserver kube-controller-manager kube-scheduler etcd'"),
            "{hold}"
        );
        assert!(hold.contains("UNIT=''"), "{hold}");
    }

    #[test]
    fn a_member_that_cannot_stage_stops_the_restore_before_anything_live_is_touched() {
        let (res, sent) = run(Some(("cp3", "etcdutl snapshot restore")));
        let e = res.unwrap_err().to_string();
        assert!(
            e.starts_with("cp3, restoring the snapshot beside the live data: it broke"),
            "{e}"
        );
        assert!(e.contains("nothing was changed"), "{e}");
        assert!(sent.iter().all(|(_, s)| kind(s) == "stage"), "{sent:?}");
    }

    #[test]
    fn a_failed_stop_says_where_the_manifests_are_and_swaps_nothing() {
        let (res, sent) = run(Some(("cp2", "mv -f \"$MANIFESTS/$p.yaml\"")));
        let e = res.unwrap_err().to_string();
        assert!(
            e.contains("cp2, stopping the control plane and etcd"),
            "{e}"
        );
        assert!(e.contains("/etc/kubernetes/kubeha-held"), "{e}");
        assert!(!sent.iter().any(|(_, s)| kind(s) == "swap"), "{sent:?}");
    }

    #[test]
    fn an_unreachable_member_refuses_the_restore_before_anything_is_sent() {
        let inv = inventory();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let conns: Connections = inv
            .nodes
            .iter()
            .map(|n| {
                let c = if n.name == "cp2" {
                    Err(TransportError::Other("connection refused".into()))
                } else {
                    Ok(Box::new(Recorder {
                        name: n.name.clone(),
                        sent: sent.clone(),
                        fail_on: None,
                    }) as Box<dyn Transport>)
                };
                (n.name.clone(), c)
            })
            .collect();
        let v = Verified {
            sha256: "a".repeat(64),
            bytes: 3,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let e = rt
            .block_on(restore(&inv, &conns, b"abc", &v, "T", &mut |_| {}))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cp2 cannot be reached (connection refused)"),
            "{e}"
        );
        assert!(sent.lock().unwrap().is_empty());
    }

    #[test]
    fn the_status_line_gives_revision_and_keys() {
        let err = b"Snapshot saved at x\nkubeha-status {\"hash\":1,\"revision\":4321,\"totalKey\":987,\"totalSize\":2105344}\n";
        assert_eq!(status_of(err), (Some(4321), Some(987)));
        assert_eq!(status_of(b"no etcdutl here\n"), (None, None));
    }

    #[test]
    fn a_new_snapshot_file_is_private_and_never_replaces_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/snap.db");
        write_new(&p, b"one").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let e = write_new(&p, b"two").unwrap_err();
        assert!(e.contains("cannot create it"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
    }
}
