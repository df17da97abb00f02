//! `kubeha lab drill` on a Kubernetes lab: an open-loop writer creates ConfigMaps through the
//! VIP with kube-rs while faults hit the current VIP holder, a watch through the VIP records its
//! gaps, and at the end every acknowledged object is read back. Everything the clients do runs
//! in the lab's client namespace; the faults are made on the node (its processes found by its
//! cgroup, its link at the hub, its freezer cgroup).
//!
//! The accounting (`account`) is pure: it takes what was recorded and the cycles as driven.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::LabError;
use crate::drill::watch::Watcher;
use crate::drill::{HolderChange, Sample};
use crate::kubernetes::{KubeLabState, LabNode, cable, power_off_node, power_on};
use crate::netns::node::CgroupRoot;

/// What a cycle does to the current VIP holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KubeFault {
    /// SIGKILL of the front door (kubeha's, or keepalived).
    Kill,
    /// SIGTERM of the front door.
    Term,
    /// SIGKILL of the node's kube-apiserver (its kubelet restarts it).
    Apiserver,
    /// SIGKILL of the node's etcd member.
    Etcd,
    /// Every process of the node frozen (its freezer cgroup), then thawed.
    Pause,
    /// The node's cable pulled, then plugged back.
    Cable,
    /// Every process stopped and the link down; then powered on and `kubeha up`.
    Poweroff,
}

impl KubeFault {
    pub const ALL: [KubeFault; 7] = [
        KubeFault::Kill,
        KubeFault::Term,
        KubeFault::Apiserver,
        KubeFault::Etcd,
        KubeFault::Pause,
        KubeFault::Cable,
        KubeFault::Poweroff,
    ];

    pub fn parse(s: &str) -> Option<KubeFault> {
        KubeFault::ALL.into_iter().find(|f| f.name() == s)
    }

    pub fn name(&self) -> &'static str {
        match self {
            KubeFault::Kill => "kill",
            KubeFault::Term => "term",
            KubeFault::Apiserver => "apiserver",
            KubeFault::Etcd => "etcd",
            KubeFault::Pause => "pause",
            KubeFault::Cable => "cable",
            KubeFault::Poweroff => "poweroff",
        }
    }
}

#[derive(Debug, Clone)]
pub struct KubeDrillOptions {
    pub cycles: usize,
    /// Cycle i gets faults[i % len].
    pub faults: Vec<KubeFault>,
    /// How long a fault is held (cable out, node frozen or off) before it is undone.
    pub hold: Duration,
    /// This kubeha, for `kubeha up` after a power-on.
    pub kubeha: PathBuf,
}

/// One write through the VIP.
#[derive(Debug, Clone, Copy)]
pub struct Write {
    pub seq: u64,
    pub start: Instant,
    pub end: Instant,
    pub ok: bool,
}

/// A cycle as driven.
#[derive(Debug, Clone)]
pub struct Driven {
    pub fault: KubeFault,
    pub node: String,
    pub new_holder: Option<String>,
    pub fault_at: Instant,
    pub restored_at: Instant,
}

/// One cycle's numbers. Field names are a contract (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct KubeCycle {
    pub cycle: usize,
    pub fault: KubeFault,
    pub node: String,
    pub new_holder: Option<String>,
    /// From the fault until the first write started after it was acknowledged (its end).
    pub failover_ms: f64,
    pub failed_writes: u64,
    pub acked_writes: u64,
    /// The longest time without a watch event in the cycle's window (writes go on every
    /// 20 ms, so every gap above that is the watch's).
    pub watch_gap_ms: f64,
    /// Acknowledged writes of this window missing at the end: must be 0.
    pub lost_objects: u64,
    pub fault_at_ms: f64,
    pub restored_at_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct KubeFaultSummary {
    pub fault: KubeFault,
    pub cycles: usize,
    pub failover_ms_median: f64,
    pub failover_ms_max: f64,
    pub watch_gap_ms_max: f64,
    pub failed_writes: u64,
    pub lost_objects: u64,
}

/// The whole drill. `writes_acked`, `writes_lost`, `cycles[].fault` and
/// `cycles[].failover_ms` are the contract of the etcd lab's drill too.
#[derive(Debug, Clone, Serialize)]
pub struct KubeDrillReport {
    pub kubernetes: bool,
    pub writes_acked: u64,
    pub writes_failed: u64,
    pub writes_lost: u64,
    pub cycles: Vec<KubeCycle>,
    pub summary: Vec<KubeFaultSummary>,
    /// The label (`kubeha-drill=<run>`) of every ConfigMap written.
    pub run: String,
    pub frontdoor: &'static str,
    pub duration_ms: f64,
    /// The control-plane nodes: the lanes of `holders`.
    pub nodes: Vec<String>,
    /// Every change of the set of VIP holders (indices into `nodes`), sampled every 10 ms.
    pub holders: Vec<HolderChange>,
    /// Every write, for the SVG (not in the JSON: tens of thousands of rows).
    #[serde(skip)]
    pub samples: Vec<Sample>,
}

/// The timeline as SVG (`--svg`): a lane per control-plane node showing when it held the
/// VIP, the share of writes acknowledged over time, each failed write, each fault's window.
pub fn svg(r: &KubeDrillReport) -> String {
    crate::drill::plot::draw(&crate::drill::plot::Timeline {
        title: format!(
            "kubeha lab drill (Kubernetes, front door {}): {} cycles, {} writes acknowledged, {} failed, {} lost",
            r.frontdoor,
            r.cycles.len(),
            r.writes_acked,
            r.writes_failed,
            r.writes_lost
        ),
        nodes: &r.nodes,
        duration_ms: r.duration_ms,
        holders: &r.holders,
        samples: &r.samples,
        faults: r
            .cycles
            .iter()
            .map(|c| {
                crate::drill::plot::FaultWindow::new(
                    c.cycle,
                    c.fault.name(),
                    &c.node,
                    c.fault_at_ms,
                    c.restored_at_ms,
                )
            })
            .collect(),
    })
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

/// The numbers, from what was recorded: writes, watch events, the cycles as driven, the
/// sequence numbers found at the end.
pub fn account(
    start: Instant,
    end: Instant,
    writes: &[Write],
    watched: &[Instant],
    driven: &[Driven],
    present: &BTreeSet<u64>,
) -> Vec<KubeCycle> {
    driven
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let until = driven.get(i + 1).map_or(end, |n| n.fault_at);
            let window: Vec<&Write> = writes
                .iter()
                .filter(|w| w.end >= d.fault_at && w.end < until)
                .collect();
            let failover = writes
                .iter()
                .filter(|w| w.start >= d.fault_at && w.ok)
                .map(|w| w.end)
                .min()
                .map_or(until - d.fault_at, |t| t - d.fault_at);
            let mut events: Vec<Instant> = watched
                .iter()
                .copied()
                .filter(|t| *t >= d.fault_at && *t < until)
                .collect();
            events.insert(0, d.fault_at);
            events.push(until);
            let gap = events
                .windows(2)
                .map(|p| p[1] - p[0])
                .max()
                .unwrap_or_default();
            KubeCycle {
                cycle: i + 1,
                fault: d.fault,
                node: d.node.clone(),
                new_holder: d.new_holder.clone(),
                failover_ms: ms(failover),
                failed_writes: window.iter().filter(|w| !w.ok).count() as u64,
                acked_writes: window.iter().filter(|w| w.ok).count() as u64,
                watch_gap_ms: ms(gap),
                lost_objects: window
                    .iter()
                    .filter(|w| w.ok && !present.contains(&w.seq))
                    .count() as u64,
                fault_at_ms: ms(d.fault_at - start),
                restored_at_ms: ms(d.restored_at - start),
            }
        })
        .collect()
}

pub fn summarize(cycles: &[KubeCycle]) -> Vec<KubeFaultSummary> {
    let mut out = Vec::new();
    for f in KubeFault::ALL {
        let of: Vec<&KubeCycle> = cycles.iter().filter(|c| c.fault == f).collect();
        if of.is_empty() {
            continue;
        }
        let failover: Vec<f64> = of.iter().map(|c| c.failover_ms).collect();
        out.push(KubeFaultSummary {
            fault: f,
            cycles: of.len(),
            failover_ms_median: crate::drill::account::median(&failover),
            failover_ms_max: failover.iter().copied().fold(0.0, f64::max),
            watch_gap_ms_max: of.iter().map(|c| c.watch_gap_ms).fold(0.0, f64::max),
            failed_writes: of.iter().map(|c| c.failed_writes).sum(),
            lost_objects: of.iter().map(|c| c.lost_objects).sum(),
        });
    }
    out
}

pub fn table(r: &KubeDrillReport) -> String {
    let mut s = format!(
        "{:<5} {:<10} {:<8} {:<10} {:>11} {:>7} {:>7} {:>12} {:>5}\n",
        "CYCLE",
        "FAULT",
        "NODE",
        "NEW HOLDER",
        "FAILOVER ms",
        "FAILED",
        "ACKED",
        "WATCH GAP ms",
        "LOST"
    );
    for c in &r.cycles {
        s.push_str(&format!(
            "{:<5} {:<10} {:<8} {:<10} {:>11.0} {:>7} {:>7} {:>12.0} {:>5}\n",
            c.cycle,
            c.fault.name(),
            c.node,
            c.new_holder.as_deref().unwrap_or("-"),
            c.failover_ms,
            c.failed_writes,
            c.acked_writes,
            c.watch_gap_ms,
            c.lost_objects
        ));
    }
    s.push_str(&format!(
        "writes: {} acknowledged, {} failed, {} acknowledged and lost (front door: {})\n",
        r.writes_acked, r.writes_failed, r.writes_lost, r.frontdoor
    ));
    s
}

/// What the client thread shares with the driver.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Acknowledged writes in a row (reset by a failure): the driver's "steady".
    streak: AtomicU64,
    /// When the last write was acknowledged (ms since `epoch`): writes that stall without
    /// failing do not reset the streak, so steady also wants a recent acknowledgement.
    last_ack_ms: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
    writes: Mutex<Vec<Write>>,
    watched: Mutex<Vec<Instant>>,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.get_or_init(Instant::now).elapsed().as_millis() as u64
    }
}

/// Whether the lab is steady: one VIP holder, the last 25 writes (half a second)
/// acknowledged, one within the last 200 ms, and every control-plane node's etcd member and
/// apiserver healthy again (a fault on the next holder must not meet a member still
/// restarting from the last one: that would be two faults at once, and quorum gone).
fn steady(state: &KubeLabState, shared: &Shared) -> Option<usize> {
    let holders = state.vip_holders();
    let recent = shared
        .now_ms()
        .saturating_sub(shared.last_ack_ms.load(Ordering::Relaxed))
        < 200;
    if holders.len() != 1 || !recent || shared.streak.load(Ordering::Relaxed) < 25 {
        return None;
    }
    let all_healthy = state
        .nodes
        .iter()
        .filter(|n| n.is_control_plane())
        .all(control_plane_healthy);
    all_healthy
        .then(|| state.nodes.iter().position(|n| n.name == holders[0]))
        .flatten()
}

/// The node's etcd member answers `/health` (with the node's health-check certificate) and its
/// apiserver's `/readyz` is `ok`, asked inside the node.
fn control_plane_healthy(node: &crate::kubernetes::LabNode) -> bool {
    let ask = |argv: &[&str]| {
        node.command(argv)
            .ok()
            .and_then(|mut c| c.output().ok())
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let pki = "/etc/kubernetes/pki/etcd";
    let etcd = ask(&[
        "curl",
        "-s",
        "--max-time",
        "1",
        "--cacert",
        &format!("{pki}/ca.crt"),
        "--cert",
        &format!("{pki}/healthcheck-client.crt"),
        "--key",
        &format!("{pki}/healthcheck-client.key"),
        &format!("https://{}:2379/health", node.address),
    ]);
    etcd.contains("\"health\":\"true\"")
        && ask(&[
            "curl",
            "-sk",
            "--max-time",
            "1",
            "https://127.0.0.1:6443/readyz",
        ])
        .trim()
            == "ok"
}

fn wait_steady(state: &KubeLabState, shared: &Shared, limit: Duration) -> Result<usize, LabError> {
    let deadline = Instant::now() + limit;
    // Bounded by `limit`, a look every 100 ms.
    loop {
        if let Some(h) = steady(state, shared) {
            return Ok(h);
        }
        // The health probes cost a few processes per node: not faster than this.
        std::thread::sleep(Duration::from_millis(150));
        if Instant::now() > deadline {
            return Err(LabError::Invalid(format!(
                "the lab was not steady within {} s (VIP holders {:?}, {} writes acknowledged in a row, or an etcd member or apiserver not healthy); `kubeha lab status` says more",
                limit.as_secs(),
                state.vip_holders(),
                shared.streak.load(Ordering::Relaxed)
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// PIDs of the node's processes whose command name is `comm` (and, if given, whose command
/// line contains `arg`). The node shares the host's PID namespace: its cgroup says which are
/// its own.
fn node_pids(cgroup_root: &str, comm: &str, arg: Option<&str>) -> Vec<i32> {
    CgroupRoot::existing(cgroup_root)
        .pids()
        .into_iter()
        .filter(|pid| {
            let c = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            c.trim() == comm
                && arg.is_none_or(|a| cmdline.split(|b| *b == 0).any(|w| w == a.as_bytes()))
        })
        .collect()
}

fn signal_all(pids: &[i32], sig: i32) -> Result<(), LabError> {
    if pids.is_empty() {
        return Err(LabError::Invalid("no such process on the node".into()));
    }
    for &p in pids {
        crate::netns::signal(p, sig);
    }
    Ok(())
}

/// The first node other than `from` seen holding the VIP within `limit` (polled every 50 ms on
/// a thread of its own while the fault is made; `from` may still hold it then, cut off behind
/// a pulled cable or frozen), or `from` if no other node took it.
fn watch_holder(
    state: &KubeLabState,
    from: usize,
    limit: Duration,
) -> std::thread::JoinHandle<Option<String>> {
    let state = state.clone();
    std::thread::spawn(move || {
        let from = state.nodes[from].name.clone();
        let deadline = Instant::now() + limit;
        // Bounded by `limit`.
        while Instant::now() < deadline {
            if let Some(other) = state.vip_holders().into_iter().find(|h| *h != from) {
                return Some(other);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(from)
    })
}

/// Makes `fault` on node `i`, holds it, and undoes it.
fn apply(
    state: &mut KubeLabState,
    i: usize,
    fault: KubeFault,
    opts: &KubeDrillOptions,
    log: &mut dyn FnMut(&str),
) -> Result<(), LabError> {
    let cg = state.nodes[i].cgroup_root.clone();
    let (frontdoor, frontdoor_arg) = match state.frontdoor {
        crate::kubernetes::Frontdoor::Builtin => ("kubeha", Some("frontdoor")),
        crate::kubernetes::Frontdoor::KeepalivedHaproxy => ("keepalived", None),
    };
    match fault {
        KubeFault::Kill => signal_all(&node_pids(&cg, frontdoor, frontdoor_arg), libc::SIGKILL)?,
        KubeFault::Term => signal_all(&node_pids(&cg, frontdoor, frontdoor_arg), libc::SIGTERM)?,
        KubeFault::Apiserver => signal_all(&node_pids(&cg, "kube-apiserver", None), libc::SIGKILL)?,
        KubeFault::Etcd => signal_all(&node_pids(&cg, "etcd", None), libc::SIGKILL)?,
        KubeFault::Pause => {
            freeze(&cg, true)?;
            std::thread::sleep(opts.hold);
            freeze(&cg, false)?;
        }
        KubeFault::Cable => {
            cable(state, i, false)?;
            std::thread::sleep(opts.hold);
            cable(state, i, true)?;
        }
        KubeFault::Poweroff => {
            power_off_node(state, i)?;
            std::thread::sleep(opts.hold);
            power_on(state, i)?;
            log(&format!(
                "{} powered on; kubeha up brings it back",
                state.nodes[i].name
            ));
            let out = state
                .kubeha(&opts.kubeha, &["up", "--output", "json"])
                .output()
                .map_err(|e| LabError::Spawn("kubeha up".into(), e))?;
            if !out.status.success() {
                return Err(LabError::Invalid(format!(
                    "kubeha up after powering {} on failed: {}",
                    state.nodes[i].name,
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .last()
                        .unwrap_or_default()
                )));
            }
        }
    }
    Ok(())
}

/// Freezes (or thaws) every process of a node through its freezer cgroup (cgroup v1).
fn freeze(cgroup_root: &str, frozen: bool) -> Result<(), LabError> {
    let dir = crate::netns::node::cgroup_mounts()?
        .into_iter()
        .map(|m| m.join(cgroup_root))
        .find(|d| d.join("freezer.state").exists())
        .ok_or_else(|| {
            LabError::Invalid(format!(
                "no freezer cgroup for {cgroup_root} (cgroup v1's freezer is needed for `pause`)"
            ))
        })?;
    std::fs::write(
        dir.join("freezer.state"),
        if frozen { "FROZEN" } else { "THAWED" },
    )
    .map_err(|e| LabError::Spawn(dir.display().to_string(), e))
}

/// The client side: writes every 20 ms (each its own task, bounded by 2 s, at most 64 in
/// flight), a watch of the run's ConfigMaps; after `stop`, every object of the run listed.
async fn clients(
    kubeconfig: PathBuf,
    run: String,
    shared: Arc<Shared>,
) -> Result<BTreeSet<u64>, String> {
    use futures_util::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, DeleteParams, ListParams, PostParams};
    use kube::runtime::{WatchStreamExt, watcher};
    use kubeapi::{k8s_openapi, kube};

    let writer = kubeapi::Cluster::connect(&kubeconfig, None, Duration::from_secs(2))
        .await
        .map_err(|e| e.to_string())?;
    let watching = kubeapi::Cluster::connect(&kubeconfig, None, Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    let label = format!("kubeha-drill={run}");
    let api: Api<ConfigMap> = Api::namespaced(writer.client().clone(), "default");
    let watch_api: Api<ConfigMap> = Api::namespaced(watching.client().clone(), "default");
    let w_shared = shared.clone();
    let cfg = watcher::Config::default().labels(&label);
    let watch = tokio::spawn(async move {
        let mut s = watcher(watch_api, cfg)
            .default_backoff()
            .applied_objects()
            .boxed();
        while !w_shared.stop.load(Ordering::Relaxed) {
            if let Ok(Some(Ok(_))) =
                tokio::time::timeout(Duration::from_millis(200), s.next()).await
            {
                w_shared
                    .watched
                    .lock()
                    .expect("not poisoned")
                    .push(Instant::now());
            }
        }
    });
    let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut seq = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    while !shared.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            continue;
        };
        seq += 1;
        let (api, shared, run) = (api.clone(), shared.clone(), run.clone());
        tasks.spawn(async move {
            let cm: ConfigMap = serde_json::from_value(serde_json::json!({
                "metadata": {
                    "name": format!("d-{run}-{seq:07}"),
                    "labels": { "kubeha-drill": run, "app.kubernetes.io/managed-by": "kubeha" }
                },
                "data": { "seq": seq.to_string() }
            }))
            .expect("a ConfigMap");
            let start = Instant::now();
            let r = tokio::time::timeout(
                Duration::from_secs(2),
                api.create(&PostParams::default(), &cm),
            )
            .await;
            let ok = matches!(r, Ok(Ok(_)));
            if ok {
                shared.streak.fetch_add(1, Ordering::Relaxed);
                shared.last_ack_ms.store(shared.now_ms(), Ordering::Relaxed);
            } else {
                shared.streak.store(0, Ordering::Relaxed);
            }
            shared.writes.lock().expect("not poisoned").push(Write {
                seq,
                start,
                end: Instant::now(),
                ok,
            });
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let _ = watch.await;
    // Read back, through the VIP, until a list succeeds (bounded: 60 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    let lp = ListParams::default().labels(&label);
    let present = loop {
        match api.list(&lp).await {
            Ok(list) => {
                break list
                    .items
                    .iter()
                    .filter_map(|c| c.data.as_ref()?.get("seq")?.parse().ok())
                    .collect::<BTreeSet<u64>>();
            }
            Err(e) if Instant::now() > deadline => return Err(format!("reading back: {e}")),
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    };
    let _ = api.delete_collection(&DeleteParams::default(), &lp).await;
    Ok(present)
}

/// Runs the drill on a Kubernetes lab.
pub fn run(
    state: &mut KubeLabState,
    opts: &KubeDrillOptions,
    log: &mut dyn FnMut(&str),
) -> Result<KubeDrillReport, LabError> {
    if opts.faults.is_empty() || opts.cycles == 0 {
        return Err(LabError::Invalid(
            "give at least one cycle and one fault".into(),
        ));
    }
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
    );
    let shared = Arc::new(Shared::default());
    let (kubeconfig, r, s) = (state.kubeconfig.clone(), run.clone(), shared.clone());
    let client = crate::netns::in_netns(&state.client, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(clients(kubeconfig, r, s))
    });
    let start = Instant::now();
    let lanes: Vec<&LabNode> = state
        .nodes
        .iter()
        .filter(|n| n.is_control_plane())
        .collect();
    let namespaces: Vec<String> = lanes.iter().map(|n| n.namespace.clone()).collect();
    let nodes: Vec<String> = lanes.iter().map(|n| n.name.clone()).collect();
    // Bounded: a cycle waits at most 3 min to be steady, holds, and is undone.
    let watch_limit = (Duration::from_secs(240) + opts.hold) * (opts.cycles as u32 + 1);
    let watcher = Watcher::start(&namespaces, state.vip, start, watch_limit)?;
    let mut driven = Vec::new();
    let mut failure = None;
    for c in 0..opts.cycles {
        let fault = opts.faults[c % opts.faults.len()];
        let limit = if driven
            .last()
            .is_some_and(|d: &Driven| d.fault == KubeFault::Poweroff)
        {
            Duration::from_secs(180)
        } else {
            Duration::from_secs(90)
        };
        let h = match wait_steady(state, &shared, limit) {
            Ok(h) => h,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        // A steady second between faults.
        std::thread::sleep(Duration::from_secs(1));
        let node = state.nodes[h].name.clone();
        log(&format!(
            "cycle {}: {} on {node} (the VIP holder)",
            c + 1,
            fault.name()
        ));
        let fault_at = Instant::now();
        let moved_to = watch_holder(state, h, opts.hold + Duration::from_secs(5));
        if let Err(e) = apply(state, h, fault, opts, log) {
            failure = Some(LabError::Invalid(format!(
                "cycle {} ({} on {node}): {e}",
                c + 1,
                fault.name()
            )));
            break;
        }
        let restored_at = Instant::now();
        let new_holder = moved_to.join().ok().flatten();
        driven.push(Driven {
            fault,
            node,
            new_holder,
            fault_at,
            restored_at,
        });
    }
    // Writes of the last cycle go on until the lab is steady again (bounded).
    let _ = wait_steady(state, &shared, Duration::from_secs(90));
    std::thread::sleep(Duration::from_secs(1));
    shared.stop.store(true, Ordering::Relaxed);
    let end = Instant::now();
    let present = client
        .join()
        .map_err(|_| LabError::Invalid("the client thread panicked".into()))??
        .map_err(|e| LabError::Invalid(format!("the drill's clients: {e}")))?;
    let writes = std::mem::take(&mut *shared.writes.lock().expect("not poisoned"));
    let watched = std::mem::take(&mut *shared.watched.lock().expect("not poisoned"));
    let (holders, _polls) = watcher.finish();
    let since = |t: Instant| ms(t.saturating_duration_since(start));
    let samples = writes
        .iter()
        .map(|w| Sample {
            seq: w.seq,
            start_ms: since(w.start),
            end_ms: since(w.end),
            ok: w.ok,
        })
        .collect();
    let cycles = account(start, end, &writes, &watched, &driven, &present);
    let acked = writes.iter().filter(|w| w.ok).count() as u64;
    let lost = writes
        .iter()
        .filter(|w| w.ok && !present.contains(&w.seq))
        .count() as u64;
    let report = KubeDrillReport {
        kubernetes: true,
        writes_acked: acked,
        writes_failed: writes.len() as u64 - acked,
        writes_lost: lost,
        summary: summarize(&cycles),
        cycles,
        run,
        frontdoor: state.frontdoor.name(),
        duration_ms: ms(end - start),
        nodes,
        holders,
        samples,
    };
    match failure {
        Some(e) => {
            log(&format!("stopped early: {e}"));
            log(&table(&report));
            Err(e)
        }
        None => Ok(report),
    }
}

/// Writes the report as JSON (`--json`).
pub fn write_json(path: &Path, report: &KubeDrillReport) -> Result<(), LabError> {
    std::fs::write(path, serde_json::to_vec_pretty(report).expect("plain data"))
        .map_err(|e| LabError::Spawn(path.display().to_string(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_are_accounted_in_their_windows() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Writes every 100 ms; the fault at 1000 ms makes the writes started at 1000 and 1100
        // fail; 1200 succeeds (ends 1250). Seq 5 was acknowledged but is not there at the end.
        let writes: Vec<Write> = (0..30)
            .map(|i| Write {
                seq: i,
                start: at(i * 100),
                end: at(i * 100 + 50),
                ok: !(10..12).contains(&i),
            })
            .collect();
        let present: BTreeSet<u64> = (0..30).filter(|&i| i != 5 && i != 15).collect();
        let watched: Vec<Instant> = (0..30)
            .filter(|i| !(10..14).contains(i))
            .map(|i| at(i * 100 + 60))
            .collect();
        let driven = vec![
            Driven {
                fault: KubeFault::Kill,
                node: "master1".into(),
                new_holder: Some("master2".into()),
                fault_at: at(1000),
                restored_at: at(1100),
            },
            Driven {
                fault: KubeFault::Cable,
                node: "master2".into(),
                new_holder: None,
                fault_at: at(2000),
                restored_at: at(2500),
            },
        ];
        let c = account(t0, at(3000), &writes, &watched, &driven, &present);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].failover_ms, 250.0);
        assert_eq!(c[0].failed_writes, 2);
        assert_eq!(c[0].acked_writes, 8);
        // Watch events end at 960 (before the window) and resume at 1460.
        assert_eq!(c[0].watch_gap_ms, 460.0);
        assert_eq!(c[0].lost_objects, 1, "seq 15 is in the first window");
        assert_eq!(c[1].failover_ms, 50.0);
        assert_eq!(c[1].failed_writes, 0);
        assert_eq!(c[1].lost_objects, 0, "seq 5 was before any fault");
        assert_eq!(c[1].fault_at_ms, 2000.0);
        let s = summarize(&c);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].fault, KubeFault::Kill);
        assert_eq!(s[0].lost_objects, 1);
    }

    #[test]
    fn the_svg_names_the_lanes_and_the_faults() {
        let cycle = KubeCycle {
            cycle: 1,
            fault: KubeFault::Poweroff,
            node: "master1".into(),
            new_holder: Some("master2".into()),
            failover_ms: 1400.0,
            failed_writes: 2,
            acked_writes: 40,
            watch_gap_ms: 1800.0,
            lost_objects: 0,
            fault_at_ms: 1000.0,
            restored_at_ms: 3000.0,
        };
        let sample = |seq, end_ms, ok| Sample {
            seq,
            start_ms: end_ms - 5.0,
            end_ms,
            ok,
        };
        let r = KubeDrillReport {
            kubernetes: true,
            writes_acked: 2,
            writes_failed: 1,
            writes_lost: 0,
            summary: summarize(std::slice::from_ref(&cycle)),
            cycles: vec![cycle],
            run: "x".into(),
            frontdoor: "builtin",
            duration_ms: 4000.0,
            nodes: vec!["master1".into(), "master2".into(), "master3".into()],
            holders: vec![
                HolderChange {
                    t_ms: 0,
                    holders: vec![0],
                },
                HolderChange {
                    t_ms: 1100,
                    holders: vec![1],
                },
            ],
            samples: vec![
                sample(1, 900.0, true),
                sample(2, 1200.0, false),
                sample(3, 1500.0, true),
            ],
        };
        let svg = svg(&r);
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
        for text in [
            "master1 VIP",
            "master3 VIP",
            "1 poweroff@master1",
            "front door builtin",
        ] {
            assert!(svg.contains(text), "{text} not drawn");
        }
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn faults_parse_by_name() {
        for f in KubeFault::ALL {
            assert_eq!(KubeFault::parse(f.name()), Some(f));
        }
        assert_eq!(KubeFault::parse("reboot"), None);
    }
}
