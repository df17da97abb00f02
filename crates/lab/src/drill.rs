//! `kubeha lab drill`: keep writing numbered keys through the VIP while faults hit the current
//! VIP holder in turn; measure failover per cycle and check that no acknowledged write is lost.

//!
//! How it measures (see docs/lab.md):
//! - the writer ([`writer`]) writes one key at a time through the VIP from the client
//!   namespace, each on a fresh TCP + TLS connection bounded by 1 s;
//! - the watcher ([`watch`]) samples which nodes carry the VIP every ~10 ms;
//! - a cycle's window runs from its fault to the next cycle's fault (the last one to the end
//!   of the writes), so failures while the old holder takes the VIP back count too;
//! - `failover_ms`: from the fault until writes through the VIP succeed again: the end of the
//!   first acknowledged write that started after the fault and after which no write started
//!   within 300 ms failed (looking only at writes started before the fault was undone); when
//!   no write failed, from the fault until another node held the VIP; 0 when it did not move
//!   (`failover_basis` says which);
//! - `failback_ms`: the same measure from undoing the fault to the end of the window (the
//!   old holder taking the VIP back, a member rejoining); 0 when no write failed then;
//! - a cycle whose lab is not steady 15 s after the fault was undone is marked
//!   (`steady: false`) and the drill goes on if every process runs;
//! - `writes_lost`: acknowledged keys missing from any member, each member read directly
//!   (`serializable`, its own copy) after the lab is steady again.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::LabError;
use crate::cluster::{self, LabState};
use crate::netns::{Netns, in_netns};

pub mod account;
pub mod client;
pub mod plot;
pub mod watch;
pub mod writer;

pub use account::{Basis, HolderChange, Sample};
use account::{Isolated, median};
use client::EtcdClient;
use watch::Watcher;
use writer::{Writer, ms};

/// What a cycle does to the current VIP holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// SIGKILL of the front door.
    Kill,
    /// SIGTERM of the front door (graceful handover).
    Term,
    /// The node's cable pulled, then plugged back.
    Cable,
    /// SIGSTOP of the front door for longer than the down interval, then SIGCONT.
    Pause,
    /// SIGKILL of the node's etcd member (the front door's local backend).
    Backend,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::Kill,
        Fault::Term,
        Fault::Cable,
        Fault::Pause,
        Fault::Backend,
    ];

    pub fn parse(s: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == s)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Term => "term",
            Fault::Cable => "cable",
            Fault::Pause => "pause",
            Fault::Backend => "backend",
        }
    }
}

#[derive(Debug, Clone)]
pub struct DrillOptions {
    pub cycles: usize,
    /// Faults applied in turn, cycle i gets faults[i % len].
    pub faults: Vec<Fault>,
    /// How long a cable stays pulled or a front door stays stopped.
    pub hold: Duration,
}

/// One cycle's numbers. Field names are a contract (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct CycleReport {
    pub cycle: usize,
    pub fault: Fault,
    /// The holder the fault hit.
    pub node: String,
    /// The node that held the VIP after the failover.
    pub new_holder: Option<String>,
    /// Fault until writes through the VIP succeeded again from another node.
    pub failover_ms: f64,
    /// What `failover_ms` was measured on.
    pub failover_basis: Basis,
    /// Writes that failed in this cycle's window.
    pub failed_requests: u64,
    /// Writes acknowledged in this cycle's window.
    pub acked_requests: u64,
    /// How long two or more nodes held the VIP at once.
    pub dual_holder_ms: f64,
    /// The same, not counting a node while its cable is pulled (nobody can reach its VIP).
    pub dual_holder_connected_ms: f64,
    /// From undoing the fault until writes succeed again (measured as `failover_ms`, over the
    /// rest of the window); 0 when no write failed after the fault was undone.
    pub failback_ms: f64,
    /// Whether the lab was steady again within 15 s of undoing the fault, and if not, why.
    pub steady: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsteady: Option<String>,
    /// When the fault was made, undone, and the lab was steady again or given up on (ms since
    /// the start).
    pub fault_at_ms: f64,
    pub restored_at_ms: f64,
    pub steady_at_ms: f64,
    /// Exit status of a front door that was sent SIGTERM, when it was ours to reap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// Per fault kind, over the cycles of that kind.
#[derive(Debug, Clone, Serialize)]
pub struct FaultSummary {
    pub fault: Fault,
    pub cycles: usize,
    pub failover_ms_median: f64,
    pub failover_ms_max: f64,
    pub failback_ms_median: f64,
    pub failback_ms_max: f64,
    pub unsteady_cycles: usize,
    pub failed_requests: u64,
    pub dual_holder_ms_median: f64,
    pub dual_holder_ms_max: f64,
    pub dual_holder_connected_ms_max: f64,
}

/// How many keys of the run a member had at the end.
#[derive(Debug, Clone, Serialize)]
pub struct MemberKeys {
    pub name: String,
    pub keys: usize,
}

/// The whole drill. Field names are a contract (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub writes_acked: u64,
    pub writes_failed: u64,
    /// Acknowledged writes missing from any member at the end: must be 0.
    pub writes_lost: u64,
    /// Failed (unacknowledged) writes whose key is there anyway (allowed either way).
    pub writes_failed_present: u64,
    pub cycles: Vec<CycleReport>,
    pub summary: Vec<FaultSummary>,
    pub key_prefix: String,
    pub nodes: Vec<String>,
    pub members: Vec<MemberKeys>,
    pub hold_ms: f64,
    pub duration_ms: f64,
    /// Every change of the set of VIP holders (node indices), as the watcher saw it.
    pub holders: Vec<HolderChange>,
    /// How often the watcher sampled every node.
    pub vip_polls: u64,
    /// /proc/loadavg (1, 5, 15 min) when the drill started and ended: the lab shares the CPU.
    pub loadavg_start: String,
    pub loadavg_end: String,
    /// Every write, for the SVG (not in the JSON: tens of thousands of rows).
    #[serde(skip)]
    pub samples: Vec<Sample>,
}

/// A cycle as driven, before the accounting.
#[derive(Debug, Clone)]
struct Driven {
    fault: Fault,
    node: usize,
    fault_at_ms: f64,
    restored_at_ms: f64,
    steady_at_ms: f64,
    exit_code: Option<i32>,
    unsteady: Option<String>,
}

/// Set by SIGINT/SIGTERM while a drill runs: the drill undoes the fault in hand and stops.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Catches SIGINT and SIGTERM while alive (so a pulled cable is plugged back and a stopped
/// front door resumed), restoring the previous handlers when dropped.
struct CatchSignals {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

impl CatchSignals {
    fn new() -> CatchSignals {
        INTERRUPTED.store(false, std::sync::atomic::Ordering::Relaxed);
        let mut old = Vec::new();
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: a plain sigaction with a handler that only stores to an atomic.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as usize;
                libc::sigemptyset(&mut sa.sa_mask);
                let mut prev: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &sa, &mut prev) == 0 {
                    old.push((sig, prev));
                }
            }
        }
        CatchSignals { old }
    }
}

impl Drop for CatchSignals {
    fn drop(&mut self) {
        for (sig, prev) in &self.old {
            // SAFETY: puts back the handler sigaction returned.
            unsafe {
                libc::sigaction(*sig, prev, std::ptr::null_mut());
            }
        }
    }
}

/// How long a lab may take to be steady again after a fault is undone.
const STEADY_LIMIT: Duration = Duration::from_secs(15);
/// A holder must have held the VIP alone this long to count as steady.
const STEADY_HOLD: Duration = Duration::from_millis(300);
/// ... and this many writes in a row (200 ms of them) must have been acknowledged.
const STEADY_STREAK: u64 = 20;
/// How long after `hold` a kill, term or backend fault waits for the failover.
const RECOVER_LIMIT: Duration = Duration::from_secs(10);
/// How long the read-back waits for a member to catch up.
const READ_LIMIT: Duration = Duration::from_secs(10);

/// Runs the drill on a lab that is up. Faults are undone also when the drill fails half-way.
pub fn run(
    state: &mut LabState,
    opts: &DrillOptions,
    log: &mut dyn FnMut(&str),
) -> Result<DrillReport, LabError> {
    if !crate::is_root() {
        return Err(LabError::Invalid(
            "kubeha lab drill needs root (namespaces, signals); run it with sudo".into(),
        ));
    }
    if opts.faults.is_empty() {
        return Err(LabError::Invalid(
            "--faults: name at least one fault".into(),
        ));
    }
    if opts.cycles > 10_000 {
        return Err(LabError::Invalid(format!(
            "--cycles {}: use at most 10000",
            opts.cycles
        )));
    }
    if opts.hold > Duration::from_secs(60) {
        return Err(LabError::Invalid(format!(
            "--hold {:?}: use at most 60s",
            opts.hold
        )));
    }
    let n = state.members.len();
    if n < 2 {
        return Err(LabError::Invalid(format!(
            "lab {} has {n} node; a failover needs at least 2 (kubeha lab up --nodes 3)",
            state.name
        )));
    }
    let present = crate::netns::list()?;
    if let Some(missing) = state.namespaces.iter().find(|ns| !present.contains(ns)) {
        return Err(LabError::Invalid(format!(
            "lab {} is not up (namespace {missing} is missing); run `kubeha lab up --name {}`",
            state.name, state.name
        )));
    }
    let client = EtcdClient::new(&state.ca, &state.cert, &state.key)?;
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let prefix = format!("drill/{unix}-{}/", std::process::id());
    let loadavg_start = loadavg();
    let t0 = Instant::now();
    let per_cycle = opts.hold + RECOVER_LIMIT + STEADY_LIMIT + Duration::from_secs(10);
    let limit = per_cycle * (opts.cycles as u32 + 1) + Duration::from_secs(60);
    let node_ns: Vec<String> = state.members.iter().map(|m| m.namespace.clone()).collect();

    let watcher = Watcher::start(&node_ns, state.vip, t0, limit)?;
    if !watcher.wait_first(Duration::from_secs(2)) {
        return Err(LabError::Invalid(
            "the VIP watcher did not sample within 2 s".into(),
        ));
    }
    check_probe(state, &watcher)?;
    log("waiting until the lab is steady (one VIP holder, every etcd and front door healthy)");
    if let Err(why) = wait_steady(state, &watcher, None, STEADY_LIMIT) {
        return Err(LabError::Invalid(format!(
            "lab {} is not steady: {why}; see `kubeha lab status --name {}` (`kubeha lab up` repairs)",
            state.name, state.name
        )));
    }

    let _signals = CatchSignals::new();
    let target = SocketAddr::from((state.vip, state.lb_port));
    let writer = Writer::start(
        client.clone(),
        &state.client,
        target,
        prefix.clone(),
        t0,
        limit,
        10_000_000,
    );
    log(&format!(
        "writing {prefix}<seq> through {target} from {}",
        state.client
    ));
    let first = wait_until(Duration::from_secs(10), || {
        writer.tail(1).first().is_some_and(|s| s.ok) || !writer.running()
    });
    if !first || !writer.tail(1).first().is_some_and(|s| s.ok) {
        let _ = writer.finish();
        return Err(LabError::Invalid(format!(
            "no write through {target} was acknowledged within 10 s; is the lab healthy?"
        )));
    }

    let mut driven = Vec::new();
    let outcome = drive(state, opts, &watcher, &writer, t0, log, &mut driven);
    let samples = writer.finish();
    let end_ms = ms(t0.elapsed());
    let (changes, polls) = watcher.finish();
    let samples = samples?;
    if let Err(e) = &outcome {
        log(&format!(
            "drill stopped: {e}; reading back what was written"
        ));
    }

    // Read every key back from every member directly.
    let acked: Vec<String> = samples
        .iter()
        .filter(|s| s.ok)
        .map(|s| writer::key(&prefix, s.seq))
        .collect();
    log(&format!(
        "reading {} acknowledged keys back from every member",
        acked.len()
    ));
    let sets = read_back(state, &client, &prefix, &acked)?;
    let lost = account::lost(&acked, &sets);
    for k in lost.iter().take(10) {
        log(&format!(
            "LOST: {k} was acknowledged but is missing on a member"
        ));
    }
    let failed_present = samples
        .iter()
        .filter(|s| !s.ok)
        .filter(|s| {
            let k = writer::key(&prefix, s.seq);
            sets.iter().any(|m| m.contains(&k))
        })
        .count() as u64;

    let cycles = account_cycles(state, &driven, &samples, &changes, end_ms);
    let report = DrillReport {
        writes_acked: acked.len() as u64,
        writes_failed: samples.iter().filter(|s| !s.ok).count() as u64,
        writes_lost: lost.len() as u64,
        writes_failed_present: failed_present,
        summary: summarize(&cycles),
        cycles,
        key_prefix: prefix,
        nodes: state.members.iter().map(|m| m.name.clone()).collect(),
        members: state
            .members
            .iter()
            .zip(&sets)
            .map(|(m, s)| MemberKeys {
                name: m.name.clone(),
                keys: s.len(),
            })
            .collect(),
        hold_ms: ms(opts.hold),
        duration_ms: end_ms,
        holders: changes,
        vip_polls: polls,
        loadavg_start,
        loadavg_end: loadavg(),
        samples,
    };
    let unsteady = report.cycles.iter().filter(|c| !c.steady).count();
    if unsteady > 0 {
        log(&format!(
            "WARNING: after {unsteady} of {} faults the lab was not steady within {STEADY_LIMIT:?} (see STEADY and FAILBACK_MS)",
            report.cycles.len()
        ));
    }
    match outcome {
        Ok(()) => Ok(report),
        Err(e) => {
            // The CLI prints no table for a failed drill: show what was measured.
            for line in table(&report).lines() {
                log(line);
            }
            Err(e)
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The cycles, each starting from a steady lab. Undoes a fault it made before returning an error.
fn drive(
    state: &mut LabState,
    opts: &DrillOptions,
    watcher: &Watcher,
    writer: &Writer,
    t0: Instant,
    log: &mut dyn FnMut(&str),
    driven: &mut Vec<Driven>,
) -> Result<(), LabError> {
    for c in 0..opts.cycles {
        if interrupted() {
            return Err(LabError::Invalid(format!(
                "interrupted before cycle {c}; every fault made was undone"
            )));
        }
        let fault = opts.faults[c % opts.faults.len()];
        let Some((holders, _)) = watcher.current() else {
            return Err(LabError::Invalid("the VIP watcher stopped".into()));
        };
        let [node] = holders[..] else {
            return Err(LabError::Invalid(format!(
                "cycle {c}: VIP holders {holders:?}, want exactly one"
            )));
        };
        let name = state.members[node].name.clone();
        let fault_at_ms = ms(t0.elapsed());
        inject(state, node, fault)?;
        let mut exit_code = None;
        let waited = wait_recovered(node, fault, opts.hold, watcher, writer, t0);
        let restored_at_ms = ms(t0.elapsed());
        let undone = undo(state, node, fault, &mut exit_code);
        waited?;
        undone?;
        let steady = wait_steady(state, watcher, Some(writer), STEADY_LIMIT);
        let steady_at_ms = ms(t0.elapsed());
        match &steady {
            Ok(_) => log(&format!(
                "cycle {c}: {} on {name}, undone after {} ms, steady after {} ms",
                fault.name(),
                (restored_at_ms - fault_at_ms).round(),
                (steady_at_ms - fault_at_ms).round(),
            )),
            Err(why) => log(&format!(
                "cycle {c}: {} on {name}, undone after {} ms, NOT steady {STEADY_LIMIT:?} later: {why}",
                fault.name(),
                (restored_at_ms - fault_at_ms).round(),
            )),
        }
        driven.push(Driven {
            fault,
            node,
            fault_at_ms,
            restored_at_ms,
            steady_at_ms,
            exit_code,
            unsteady: steady.as_ref().err().cloned(),
        });
        // A lab that did not settle still gets the next fault if it can (one VIP holder, every
        // process up): the cycle is marked and its failed writes show what happened.
        if let Err(why) = steady
            && why.contains("not running")
        {
            return Err(LabError::Invalid(format!(
                "cycle {c} ({} on {name}): the lab was not steady {STEADY_LIMIT:?} after the fault was undone: {why}",
                fault.name(),
            )));
        }
        if let Some(e) = watcher.error() {
            return Err(LabError::Invalid(format!("VIP watcher: {e}")));
        }
    }
    Ok(())
}

/// Makes `fault` on node `i`.
fn inject(state: &mut LabState, i: usize, fault: Fault) -> Result<(), LabError> {
    let m = &mut state.members[i];
    let sent = match fault {
        Fault::Kill => m.frontdoor.signal(libc::SIGKILL),
        Fault::Term => m.frontdoor.signal(libc::SIGTERM),
        Fault::Pause => m.frontdoor.signal(libc::SIGSTOP),
        Fault::Backend => m.etcd.signal(libc::SIGKILL),
        Fault::Cable => {
            Netns::existing(&state.hub).exec(&["ip", "link", "set", &format!("p{i}"), "down"])?;
            true
        }
    };
    if !sent {
        return Err(LabError::Invalid(format!(
            "{}: the process on n{i} is not running",
            fault.name()
        )));
    }
    Ok(())
}

/// Waits until the fault is to be undone: after `hold` for cable and pause (the fault lasts
/// that long); for kill, term and backend after `hold` and once writes succeed through a new
/// holder (bounded by RECOVER_LIMIT more).
fn wait_recovered(
    node: usize,
    fault: Fault,
    hold: Duration,
    watcher: &Watcher,
    writer: &Writer,
    t0: Instant,
) -> Result<(), LabError> {
    let start = Instant::now();
    let mut moved_ms: Option<f64> = None;
    loop {
        let elapsed = start.elapsed();
        if moved_ms.is_none()
            && watcher
                .current()
                .is_some_and(|(h, _)| h.iter().any(|&n| n != node))
        {
            moved_ms = Some(ms(t0.elapsed()));
        }
        if interrupted() {
            return Ok(());
        }
        if elapsed >= hold {
            if matches!(fault, Fault::Cable | Fault::Pause) {
                return Ok(());
            }
            let tail = writer.tail(3);
            let recovered = moved_ms
                .is_some_and(|m| tail.len() == 3 && tail.iter().all(|s| s.ok && s.start_ms >= m));
            if recovered || elapsed >= hold + RECOVER_LIMIT || !writer.running() {
                return Ok(());
            }
        }
        if let Some(e) = watcher.error() {
            return Err(LabError::Invalid(format!("VIP watcher: {e}")));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Undoes `fault` on node `i`: restarts what was killed, plugs the cable back, resumes.
fn undo(
    state: &mut LabState,
    i: usize,
    fault: Fault,
    exit_code: &mut Option<i32>,
) -> Result<(), LabError> {
    match fault {
        Fault::Cable => {
            Netns::existing(&state.hub).exec(&["ip", "link", "set", &format!("p{i}"), "up"])?;
        }
        Fault::Pause => {
            state.members[i].frontdoor.signal(libc::SIGCONT);
        }
        Fault::Kill | Fault::Term => {
            let fd = &mut state.members[i].frontdoor;
            // A terminated front door hands over, drains (≤ 2 s) and exits by itself.
            wait_until(Duration::from_secs(6), || !fd.running());
            if fd.running() {
                fd.stop();
            }
            *exit_code = fd.pid.and_then(crate::netns::reap);
            fd.start()?;
            state.save()?;
        }
        Fault::Backend => {
            let etcd = &mut state.members[i].etcd;
            wait_until(Duration::from_secs(3), || !etcd.running());
            if etcd.running() {
                etcd.stop();
            }
            etcd.pid.and_then(crate::netns::reap);
            cluster::start_etcd(state, i)?;
        }
    }
    Ok(())
}

/// Polls `f` every 10 ms for at most `limit`; whether it became true.
fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The watcher's bind probe must agree with `ip addr` (the lab's own view of the VIP).
fn check_probe(state: &LabState, watcher: &Watcher) -> Result<(), LabError> {
    let mut last = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let by_ip = cluster::holders(state);
        if let Some((probe, _)) = watcher.current() {
            if probe == by_ip {
                return Ok(());
            }
            last = (probe, by_ip);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(LabError::Invalid(format!(
        "the VIP probe sees holders {:?} but `ip addr` sees {:?} (is ip_nonlocal_bind set in a node namespace?)",
        last.0, last.1
    )))
}

/// Steady: every front door and etcd runs, every etcd answers /health, every front door sees
/// every backend healthy, exactly one node has held the VIP for STEADY_HOLD and it has the
/// highest VRRP priority (no preemption pending), and (once the writer runs) the last
/// STEADY_STREAK writes through the VIP were acknowledged: a VIP that clients cannot reach
/// (an ARP entry still pointing at the previous holder) is not steady. The holder, or why not.
fn steady_now(
    state: &LabState,
    watcher: &Watcher,
    writer: Option<&Writer>,
) -> Result<usize, String> {
    let n = state.members.len();
    for m in &state.members {
        if !m.frontdoor.running() {
            return Err(format!("the front door on {} is not running", m.name));
        }
        if !m.etcd.running() {
            return Err(format!("etcd on {} is not running", m.name));
        }
    }
    let Some((holders, since)) = watcher.current() else {
        return Err("no VIP sample yet".into());
    };
    let [holder] = holders[..] else {
        return Err(format!("VIP holders {holders:?}"));
    };
    if since < STEADY_HOLD {
        return Err(format!("the VIP moved {} ms ago", since.as_millis()));
    }
    if let Some(w) = writer
        && w.streak() < STEADY_STREAK
    {
        return Err(format!(
            "only the last {} writes through the VIP were acknowledged",
            w.streak()
        ));
    }
    let mut priorities = Vec::new();
    for m in &state.members {
        if !cluster::etcd_healthy(m) {
            return Err(format!("etcd on {} is not healthy", m.name));
        }
        let page = cluster::metrics_page(m);
        let healthy = cluster::metric(&page, "kubeha_frontdoor_backends_healthy");
        if healthy != Some(n as f64) {
            return Err(format!(
                "the front door on {} sees {healthy:?} of {n} backends healthy",
                m.name
            ));
        }
        priorities.push(cluster::metric(&page, "kubeha_frontdoor_vrrp_priority").unwrap_or(0.0));
    }
    if priorities.iter().any(|&p| p > priorities[holder]) {
        return Err(format!(
            "{} holds the VIP at priority {} below another node's (priorities {priorities:?})",
            state.members[holder].name, priorities[holder]
        ));
    }
    Ok(holder)
}

/// Waits for [`steady_now`], bounded by `limit`; a process that stays down for 3 s will not
/// come back by itself, so that ends the wait early.
fn wait_steady(
    state: &LabState,
    watcher: &Watcher,
    writer: Option<&Writer>,
    limit: Duration,
) -> Result<usize, String> {
    let start = Instant::now();
    let mut down_since: Option<Instant> = None;
    loop {
        match steady_now(state, watcher, writer) {
            Ok(h) => return Ok(h),
            Err(why) if interrupted() => return Err(format!("interrupted ({why})")),
            Err(why) if start.elapsed() >= limit => return Err(why),
            Err(why) => {
                if why.contains("not running") {
                    let since = *down_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= Duration::from_secs(3) {
                        return Err(why);
                    }
                } else {
                    down_since = None;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Every member's keys under `prefix`, read from the client namespace straight from the
/// member's client port. A member missing acknowledged keys is read again (it may still be
/// catching up after a restart) for at most READ_LIMIT.
fn read_back(
    state: &LabState,
    client: &EtcdClient,
    prefix: &str,
    acked: &[String],
) -> Result<Vec<HashSet<String>>, LabError> {
    let addrs: Vec<SocketAddr> = state
        .members
        .iter()
        .map(|m| SocketAddr::from((m.address, cluster::ETCD_CLIENT_PORT)))
        .collect();
    let (client, prefix, acked) = (client.clone(), prefix.to_string(), acked.to_vec());
    let names: Vec<String> = state.members.iter().map(|m| m.name.clone()).collect();
    let r = in_netns(&state.client, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        rt.block_on(async move {
            let mut sets = Vec::new();
            for (addr, name) in addrs.iter().zip(&names) {
                let start = Instant::now();
                let set = loop {
                    let got = client.keys(*addr, &prefix, Duration::from_secs(10)).await;
                    let done = start.elapsed() >= READ_LIMIT;
                    match got {
                        Ok(set) if done || acked.iter().all(|k| set.contains(k)) => break set,
                        Err(e) if done => return Err(format!("reading keys from {name}: {e}")),
                        _ => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                };
                sets.push(set);
            }
            Ok(sets)
        })
    })
    .join()
    .map_err(|_| LabError::Invalid("read-back thread panicked".into()))??;
    r.map_err(LabError::Invalid)
}

fn account_cycles(
    state: &LabState,
    driven: &[Driven],
    samples: &[Sample],
    changes: &[HolderChange],
    end_ms: f64,
) -> Vec<CycleReport> {
    driven
        .iter()
        .enumerate()
        .map(|(c, d)| {
            let window_end = driven.get(c + 1).map_or(end_ms, |n| n.fault_at_ms);
            let moved = account::moved(changes, d.node, d.fault_at_ms, window_end);
            let (failover_ms, basis) = account::failover(
                samples,
                d.fault_at_ms,
                d.restored_at_ms,
                moved.map(|(t, _)| t).filter(|t| *t <= d.restored_at_ms),
            );
            let isolated = if d.fault == Fault::Cable {
                vec![Isolated {
                    node: d.node,
                    from_ms: d.fault_at_ms,
                    to_ms: d.restored_at_ms,
                }]
            } else {
                Vec::new()
            };
            CycleReport {
                cycle: c,
                fault: d.fault,
                node: state.members[d.node].name.clone(),
                new_holder: moved.map(|(_, n)| state.members[n].name.clone()),
                failover_ms: round1(failover_ms),
                failover_basis: basis,
                failed_requests: account::failed_in(samples, d.fault_at_ms, window_end),
                acked_requests: account::acked_in(samples, d.fault_at_ms, window_end),
                dual_holder_ms: round1(account::dual_holder_ms(
                    changes,
                    d.fault_at_ms,
                    window_end,
                    &[],
                )),
                dual_holder_connected_ms: round1(account::dual_holder_ms(
                    changes,
                    d.fault_at_ms,
                    window_end,
                    &isolated,
                )),
                failback_ms: round1(
                    account::failover(samples, d.restored_at_ms, window_end, None).0,
                ),
                steady: d.unsteady.is_none(),
                unsteady: d.unsteady.clone(),
                fault_at_ms: round1(d.fault_at_ms),
                restored_at_ms: round1(d.restored_at_ms),
                steady_at_ms: round1(d.steady_at_ms),
                exit_code: d.exit_code,
            }
        })
        .collect()
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Per fault kind, in `Fault::ALL` order.
pub fn summarize(cycles: &[CycleReport]) -> Vec<FaultSummary> {
    Fault::ALL
        .iter()
        .filter_map(|&f| {
            let of: Vec<&CycleReport> = cycles.iter().filter(|c| c.fault == f).collect();
            if of.is_empty() {
                return None;
            }
            let fo: Vec<f64> = of.iter().map(|c| c.failover_ms).collect();
            let dual: Vec<f64> = of.iter().map(|c| c.dual_holder_ms).collect();
            let back: Vec<f64> = of.iter().map(|c| c.failback_ms).collect();
            Some(FaultSummary {
                fault: f,
                cycles: of.len(),
                failover_ms_median: median(&fo),
                failover_ms_max: fo.iter().copied().fold(0.0, f64::max),
                failback_ms_median: median(&back),
                failback_ms_max: back.iter().copied().fold(0.0, f64::max),
                unsteady_cycles: of.iter().filter(|c| !c.steady).count(),
                failed_requests: of.iter().map(|c| c.failed_requests).sum(),
                dual_holder_ms_median: median(&dual),
                dual_holder_ms_max: dual.iter().copied().fold(0.0, f64::max),
                dual_holder_connected_ms_max: of
                    .iter()
                    .map(|c| c.dual_holder_connected_ms)
                    .fold(0.0, f64::max),
            })
        })
        .collect()
}

/// The report as a table a person reads.
pub fn table(r: &DrillReport) -> String {
    let mut s = String::from(
        "CYCLE  FAULT    NODE  NEW   FAILOVER_MS  BASIS     FAILBACK_MS  FAILED   ACKED  DUAL_HOLDER_MS  DUAL_CONNECTED_MS  STEADY\n",
    );
    for c in &r.cycles {
        s.push_str(&format!(
            "{:<6} {:<8} {:<5} {:<5} {:>11.0}  {:<8} {:>11.0}  {:>6}  {:>6}  {:>14.0}  {:>17.0}  {}\n",
            c.cycle,
            c.fault.name(),
            c.node,
            c.new_holder.as_deref().unwrap_or("-"),
            c.failover_ms,
            basis_name(c.failover_basis),
            c.failback_ms,
            c.failed_requests,
            c.acked_requests,
            c.dual_holder_ms,
            c.dual_holder_connected_ms,
            if c.steady { "yes" } else { "NO" },
        ));
    }
    if !r.summary.is_empty() {
        s.push_str(
            "\nFAULT    CYCLES  FAILOVER_MS_MEDIAN  FAILOVER_MS_MAX  FAILBACK_MS_MEDIAN  FAILBACK_MS_MAX  FAILED  DUAL_MS_MEDIAN  DUAL_MS_MAX  DUAL_CONNECTED_MS_MAX  UNSTEADY\n",
        );
        for f in &r.summary {
            s.push_str(&format!(
                "{:<8} {:>6}  {:>18.0}  {:>15.0}  {:>18.0}  {:>15.0}  {:>6}  {:>14.0}  {:>11.0}  {:>21.0}  {:>8}\n",
                f.fault.name(),
                f.cycles,
                f.failover_ms_median,
                f.failover_ms_max,
                f.failback_ms_median,
                f.failback_ms_max,
                f.failed_requests,
                f.dual_holder_ms_median,
                f.dual_holder_ms_max,
                f.dual_holder_connected_ms_max,
                f.unsteady_cycles,
            ));
        }
    }
    s.push_str(&format!(
        "load average: {} at the start, {} at the end\n",
        r.loadavg_start, r.loadavg_end
    ));
    s.push_str(&format!(
        "writes: {} acknowledged, {} failed ({} of them present anyway), {} acknowledged writes lost\n",
        r.writes_acked, r.writes_failed, r.writes_failed_present, r.writes_lost
    ));
    s
}

fn basis_name(b: Basis) -> &'static str {
    match b {
        Basis::Writes => "writes",
        Basis::VipMove => "vip_move",
        Basis::None => "none",
    }
}

/// The timeline as SVG: a lane per node showing when it held the VIP, the share of writes
/// acknowledged over time, each failed write, and each fault's window with its name.
pub fn svg(r: &DrillReport) -> String {
    plot::draw(&r.timeline())
}

impl DrillReport {
    /// What the SVG draws.
    pub fn timeline(&self) -> plot::Timeline<'_> {
        plot::Timeline {
            title: format!(
                "kubeha lab drill: {} cycles, {} writes acknowledged, {} failed, {} lost",
                self.cycles.len(),
                self.writes_acked,
                self.writes_failed,
                self.writes_lost
            ),
            nodes: &self.nodes,
            duration_ms: self.duration_ms,
            holders: &self.holders,
            samples: &self.samples,
            faults: self
                .cycles
                .iter()
                .map(|c| {
                    plot::FaultWindow::new(
                        c.cycle,
                        c.fault.name(),
                        &c.node,
                        c.fault_at_ms,
                        c.restored_at_ms,
                    )
                })
                .collect(),
        }
    }
}
