//! Runs a Plan: phase by phase across the cluster, nodes in parallel within a phase (at most
//! `concurrency` at once), steps in order within a node. The order between phases is the
//! Plan's (etcd before the control plane, the first control plane before joins, the CNI
//! before other control-plane joins, workers last). A failed worker drops out and the others
//! go on; a failure on a control-plane or etcd node stops every later phase, since all of
//! them depend on it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use plan::{NodePlan, Phase, Plan, Step};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::preflight::{self, ClockSample, Facts, Finding, Severity};
use crate::record::{self, Decision};
use crate::transport::{Exec, Output, Transport};
use crate::upload::{self, Written};

#[derive(Debug, Clone)]
pub struct Options {
    pub concurrency: usize,
    /// Redo this step and everything after it, ignoring records; earlier steps are left alone.
    pub from: Option<String>,
    /// Only these nodes (empty: all).
    pub only: Vec<String>,
    pub dry_run: bool,
    pub step_timeout: Duration,
    /// Per-run secrets (the bootstrap token) that do not count as changed inputs.
    pub masked: Vec<String>,
    /// Per-node logs go to `log_dir/<node>.log`.
    pub log_dir: PathBuf,
}

/// What the progress display is told.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    StepStarted {
        node: &'a str,
        step: &'a str,
    },
    StepFinished {
        node: &'a str,
        step: &'a str,
        outcome: &'a Outcome,
    },
    NodeDone {
        node: &'a str,
        failed: bool,
    },
}

pub trait Observer: Sync {
    fn event(&self, e: Event<'_>);
}

impl Observer for () {
    fn event(&self, _: Event<'_>) {}
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Ran, and it is a step that changes the node.
    Changed,
    /// Done before with the same inputs.
    Unchanged,
    /// A read-only check (or an every-run step) ran.
    Checked,
    /// Left alone: before `--from`.
    Skipped,
    Failed,
    /// Not reached: an earlier failure or stop.
    NotRun,
    /// `--dry-run`: would run now.
    WouldRun,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub id: String,
    pub outcome: Outcome,
    pub millis: u64,
    /// Why it runs: never done, or inputs changed since the recorded run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub node: String,
    pub step: String,
    /// The command that failed (the last one the shell traced), or what kubeha was doing.
    pub command: String,
    pub exit_code: Option<i32>,
    pub stderr_tail: Vec<String>,
    pub hint: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = self
            .exit_code
            .map_or_else(|| "no exit status".to_string(), |c| format!("exit {c}"));
        write!(
            f,
            "{}: {} failed ({code}) at `{}`",
            self.node, self.step, self.command
        )?;
        for l in &self.stderr_tail {
            write!(f, "\n    | {l}")?;
        }
        write!(f, "\n    hint: {}", self.hint)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub name: String,
    pub steps: Vec<StepReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Files someone else wrote that kubeha replaced, each kept at the path listed.
    pub backups: Vec<String>,
    pub log: PathBuf,
}

impl NodeReport {
    pub fn count(&self, o: &Outcome) -> usize {
        self.steps.iter().filter(|s| s.outcome == *o).count()
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Stop {
    /// Cross-node preflight found problems; nothing was changed.
    Preflight { findings: Vec<String> },
    /// A control-plane or etcd node failed; later phases did not run.
    Failed { node: String, step: String },
    /// Kubernetes' own binaries are missing where the next phase needs them.
    KubernetesBinaries { nodes: Vec<String>, phase: String },
    /// A whole-cluster check after a phase failed (the VIP held by exactly one node, every
    /// etcd member healthy).
    Cluster { check: String, detail: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub nodes: Vec<NodeReport>,
    pub warnings: Vec<String>,
    /// Whole-cluster checks that passed, in order.
    pub checks: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stop>,
    pub dry_run: bool,
    pub millis: u64,
}

impl Report {
    pub fn changed(&self) -> usize {
        self.nodes.iter().map(|n| n.count(&Outcome::Changed)).sum()
    }
    pub fn failures(&self) -> impl Iterator<Item = &Failure> {
        self.nodes.iter().filter_map(|n| n.failure.as_ref())
    }
    pub fn ok(&self) -> bool {
        self.stopped.is_none() && self.failures().next().is_none()
    }
}

/// A node as the executor sees it: its part of the Plan and how to reach it.
struct NodeRun<'a> {
    plan: &'a NodePlan,
    transport: Option<Transport>,
    decisions: BTreeMap<String, Decision>,
    digests: record::Digests,
    report: Mutex<NodeReport>,
    log: Mutex<Option<std::fs::File>>,
    stdout_of: Mutex<BTreeMap<String, String>>,
    /// Not chosen with --only, here only for the join token step the chosen nodes need.
    token_only: bool,
    masked: Vec<String>,
}

/// The step on the first control-plane node that makes this run's join token exist.
pub const JOIN_TOKEN_STEP: &str = "init/join-token";

impl NodeRun<'_> {
    /// Per-run secrets never reach a log, the report or the terminal.
    fn redact(&self, text: &str) -> String {
        let mut t = text.to_string();
        for m in self.masked.iter().filter(|m| !m.is_empty()) {
            t = t.replace(m.as_str(), "<bootstrap-token>");
        }
        t
    }
    fn is_worker_only(&self) -> bool {
        self.plan.roles == ["worker"]
    }
    fn failed(&self) -> bool {
        self.report
            .lock()
            .map(|r| r.failure.is_some())
            .unwrap_or(true)
    }
    fn log(&self, text: &str) {
        if let Ok(mut g) = self.log.lock()
            && let Some(f) = g.as_mut()
        {
            let _ = f.write_all(self.redact(text).as_bytes());
            if !text.ends_with('\n') {
                let _ = f.write_all(b"\n");
            }
        }
    }
    fn set_outcome(&self, step: &str, outcome: Outcome, millis: u64, reason: Option<String>) {
        if let Ok(mut r) = self.report.lock() {
            if let Some(s) = r.steps.iter_mut().find(|s| s.id == step) {
                s.outcome = outcome;
                s.millis = millis;
                s.reason = reason;
            }
        }
    }
    fn fail(&self, mut f: Failure) {
        f.command = self.redact(&f.command);
        f.stderr_tail = f.stderr_tail.iter().map(|l| self.redact(l)).collect();
        self.log(&format!("FAILED: {f}"));
        if let Ok(mut r) = self.report.lock()
            && r.failure.is_none()
        {
            r.failure = Some(f);
        }
    }
}

/// Connections made beforehand (the caller picks SSH or local); a node that could not be
/// reached carries the reason.
pub type Connections = BTreeMap<String, Result<Transport, String>>;

pub async fn execute(
    plan: &Plan,
    mut connections: Connections,
    opts: &Options,
    observer: &dyn Observer,
) -> Report {
    let started = Instant::now();
    let _ = std::fs::create_dir_all(&opts.log_dir);
    // With --only, the first control-plane node comes along for the join token step alone:
    // a join on a chosen node needs this run's token to exist in the cluster.
    let selected: Vec<(&NodePlan, bool)> = plan
        .nodes
        .iter()
        .filter_map(|n| {
            if opts.only.is_empty() || opts.only.contains(&n.name) {
                Some((n, false))
            } else if n.steps.iter().any(|s| s.id == JOIN_TOKEN_STEP) {
                Some((n, true))
            } else {
                None
            }
        })
        .collect();
    let mut nodes: Vec<NodeRun<'_>> = Vec::new();
    for (n, token_only) in selected {
        let log_path = opts.log_dir.join(format!("{}.log", n.name));
        let log = open_log(&log_path);
        let (transport, failure) = match connections.remove(&n.name) {
            Some(Ok(t)) => (Some(t), None),
            Some(Err(e)) => (None, Some(e)),
            None => (None, Some("no connection was made".to_string())),
        };
        let run = NodeRun {
            plan: n,
            transport,
            decisions: BTreeMap::new(),
            digests: record::digests(n, &opts.masked),
            report: Mutex::new(NodeReport {
                name: n.name.clone(),
                steps: n
                    .steps
                    .iter()
                    .map(|s| StepReport {
                        id: s.id.clone(),
                        outcome: Outcome::NotRun,
                        millis: 0,
                        reason: None,
                    })
                    .collect(),
                failure: None,
                backups: Vec::new(),
                log: log_path,
            }),
            log: Mutex::new(log),
            stdout_of: Mutex::new(BTreeMap::new()),
            token_only,
            masked: opts.masked.clone(),
        };
        if let Some(e) = failure {
            run.fail(Failure {
                node: n.name.clone(),
                step: "connect".into(),
                command: format!("ssh to {}", n.address),
                exit_code: None,
                stderr_tail: vec![e],
                hint: "check the address, the ssh section of the inventory and known_hosts".into(),
            });
        } else if let Some(t) = &run.transport {
            run.log(&format!(
                "# kubeha up: node {} via {}",
                n.name,
                t.describe()
            ));
        }
        nodes.push(run);
    }

    let mut warnings = Vec::new();
    let mut checks = Vec::new();
    let mut stopped = None;

    // A node we cannot reach fails the run now if the rest depends on it.
    if let Some(n) = nodes.iter().find(|n| n.failed() && !n.is_worker_only()) {
        stopped = Some(Stop::Failed {
            node: n.plan.name.clone(),
            step: "connect".into(),
        });
    }

    // What each node has done before.
    if stopped.is_none() {
        let reads = nodes
            .iter_mut()
            .filter(|n| n.transport.is_some())
            .map(|n| async {
                let t = n.transport.as_ref().expect("filtered");
                let paths: Vec<&str> = n.plan.artifacts.iter().map(|a| a.path.as_str()).collect();
                let out = t
                    .run(&Exec::new(
                        record::read_script(&paths),
                        Duration::from_secs(60),
                    ))
                    .await;
                (n, out)
            });
        for (n, out) in futures_util::future::join_all(reads).await {
            match out {
                Ok(o) if o.success() => {
                    let records = record::parse(&o.stdout_str());
                    n.decisions =
                        record::decide(n.plan, &records, &n.digests, opts.from.as_deref())
                            .into_iter()
                            .collect();
                }
                Ok(o) => n.fail(failure_from(n.plan, "records", "read step records", Ok(&o))),
                Err(e) => n.fail(failure_from(
                    n.plan,
                    "records",
                    "read step records",
                    Err(&e),
                )),
            }
        }
        if let Some(n) = nodes.iter().find(|n| n.failed() && !n.is_worker_only()) {
            stopped = Some(Stop::Failed {
                node: n.plan.name.clone(),
                step: "records".into(),
            });
        }
        settle_join_token(&mut nodes);
    }

    if opts.dry_run {
        for n in &nodes {
            for s in &n.plan.steps {
                let d = n.decisions.get(&s.id);
                let (outcome, reason) = match d {
                    Some(Decision::Unchanged) => (Outcome::Unchanged, None),
                    Some(Decision::BeforeFrom) => (Outcome::Skipped, None),
                    Some(Decision::Check) => (Outcome::WouldRun, Some("check".into())),
                    Some(Decision::Run { previous }) => (Outcome::WouldRun, Some(reason(previous))),
                    Some(Decision::Drifted(files)) => {
                        (Outcome::WouldRun, Some(drift_reason(files)))
                    }
                    None => (Outcome::NotRun, None),
                };
                n.set_outcome(&s.id, outcome, 0, reason);
            }
        }
        return finish(nodes, warnings, checks, stopped, true, started);
    }

    let sem = Semaphore::new(opts.concurrency.max(1));
    // Re-configuring a running etcd member or front door restarts it: one node at a time,
    // so quorum and the VIP survive. First installs run in parallel.
    let roll = tokio::sync::Mutex::new(());
    for phase in Phase::ALL {
        if stopped.is_some() {
            break;
        }
        if phase.needs_kubernetes_binaries()
            && let Some(stop) = kubernetes_boundary(&nodes, phase, opts).await
        {
            stopped = Some(stop);
            break;
        }
        let active: Vec<&NodeRun<'_>> = nodes
            .iter()
            .filter(|n| !n.failed() && n.plan.steps.iter().any(|s| s.phase == phase))
            .collect();
        let runs = active.iter().map(|n| async {
            // etcd members wait for quorum, so they must all start together, whatever the
            // concurrency limit (a cluster has a handful of them).
            let _permit = if phase == Phase::Etcd {
                None
            } else {
                sem.acquire().await.ok()
            };
            run_phase(n, phase, opts, observer, &roll).await;
        });
        futures_util::future::join_all(runs).await;

        if phase == Phase::Preflight {
            let findings = cross_node_checks(&nodes, plan).await;
            for f in &findings {
                if f.severity == Severity::Warning {
                    warnings.push(f.message.clone());
                }
            }
            let errors: Vec<String> = findings
                .into_iter()
                .filter(|f| f.severity == Severity::Error)
                .map(|f| f.message)
                .collect();
            if !errors.is_empty() {
                stopped = Some(Stop::Preflight { findings: errors });
                break;
            }
        }
        if stopped.is_none()
            && !active.is_empty()
            && matches!(phase, Phase::Frontdoor | Phase::Verify)
            && nodes.iter().all(|n| n.is_worker_only() || !n.failed())
        {
            match cluster_checks(&nodes, plan, phase).await {
                Ok(passed) => checks.extend(passed),
                Err(stop) => {
                    stopped = Some(stop);
                    break;
                }
            }
        }
        if let Some(n) = nodes.iter().find(|n| n.failed() && !n.is_worker_only()) {
            let step = n
                .report
                .lock()
                .ok()
                .and_then(|r| r.failure.as_ref().map(|f| f.step.clone()))
                .unwrap_or_default();
            stopped = Some(Stop::Failed {
                node: n.plan.name.clone(),
                step,
            });
        }
    }
    finish(nodes, warnings, checks, stopped, false, started)
}

/// The join token step runs whenever a join runs in this execution (also with --from after
/// init, or --only without the first control-plane node), and not at all otherwise when its
/// node was not chosen.
fn settle_join_token(nodes: &mut [NodeRun<'_>]) {
    let joins_run = nodes.iter().any(|n| {
        n.plan.steps.iter().any(|s| {
            matches!(s.phase, Phase::JoinControlPlane | Phase::JoinWorker)
                && matches!(
                    n.decisions.get(&s.id),
                    Some(Decision::Run { .. } | Decision::Drifted(_) | Decision::Check)
                )
        })
    });
    for n in nodes.iter_mut() {
        if n.token_only {
            for s in &n.plan.steps {
                n.decisions.insert(s.id.clone(), Decision::BeforeFrom);
            }
        }
        if joins_run && n.decisions.contains_key(JOIN_TOKEN_STEP) {
            n.decisions
                .insert(JOIN_TOKEN_STEP.to_string(), Decision::Check);
        }
    }
}

fn finish(
    nodes: Vec<NodeRun<'_>>,
    warnings: Vec<String>,
    checks: Vec<String>,
    stopped: Option<Stop>,
    dry_run: bool,
    started: Instant,
) -> Report {
    Report {
        nodes: nodes
            .into_iter()
            .map(|n| n.report.into_inner().unwrap_or_else(|p| p.into_inner()))
            .collect(),
        warnings,
        checks,
        stopped,
        dry_run,
        millis: started.elapsed().as_millis() as u64,
    }
}

fn reason(previous: &Option<String>) -> String {
    match previous {
        None => "not done before".into(),
        Some(_) => "inputs changed since the last run".into(),
    }
}

fn drift_reason(files: &[String]) -> String {
    format!(
        "changed on the node since the last run: {}",
        files.join(", ")
    )
}

fn open_log(path: &Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    // Logs may quote secrets a command printed: readable by the operator only.
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .ok()?;
    // An existing file (a reused --log-dir) keeps its mode unless told.
    use std::os::unix::fs::PermissionsExt;
    let _ = f.set_permissions(std::fs::Permissions::from_mode(0o600));
    Some(f)
}

async fn run_phase(
    n: &NodeRun<'_>,
    phase: Phase,
    opts: &Options,
    observer: &dyn Observer,
    roll: &tokio::sync::Mutex<()>,
) {
    for step in n.plan.steps.iter().filter(|s| s.phase == phase) {
        if n.failed() {
            return;
        }
        match n.decisions.get(&step.id) {
            Some(Decision::Unchanged) => {
                n.set_outcome(&step.id, Outcome::Unchanged, 0, None);
                n.log(&format!(
                    "## {} unchanged since the last run: skipped",
                    step.id
                ));
                observer.event(Event::StepFinished {
                    node: &n.plan.name,
                    step: &step.id,
                    outcome: &Outcome::Unchanged,
                });
                continue;
            }
            Some(Decision::BeforeFrom) => {
                n.set_outcome(&step.id, Outcome::Skipped, 0, None);
                continue;
            }
            Some(d) => {
                let why = match d {
                    Decision::Run { previous } => Some(reason(previous)),
                    Decision::Drifted(files) => Some(drift_reason(files)),
                    _ => None,
                };
                observer.event(Event::StepStarted {
                    node: &n.plan.name,
                    step: &step.id,
                });
                let t0 = Instant::now();
                let rolling = matches!(phase, Phase::Etcd | Phase::Frontdoor)
                    && matches!(
                        d,
                        Decision::Run { previous: Some(_) } | Decision::Drifted(_)
                    );
                let _turn = if rolling {
                    Some(roll.lock().await)
                } else {
                    None
                };
                let ok = run_step(n, step, opts).await;
                let outcome = match (ok, step.changes) {
                    (false, _) => Outcome::Failed,
                    (true, true) => Outcome::Changed,
                    (true, false) => Outcome::Checked,
                };
                n.set_outcome(
                    &step.id,
                    outcome.clone(),
                    t0.elapsed().as_millis() as u64,
                    why,
                );
                observer.event(Event::StepFinished {
                    node: &n.plan.name,
                    step: &step.id,
                    outcome: &outcome,
                });
                if !ok {
                    observer.event(Event::NodeDone {
                        node: &n.plan.name,
                        failed: true,
                    });
                    return;
                }
            }
            None => return,
        }
    }
    let last_phase = n.plan.steps.last().map(|s| s.phase);
    if last_phase == Some(phase) {
        observer.event(Event::NodeDone {
            node: &n.plan.name,
            failed: false,
        });
    }
}

/// Marker for the shell's trace lines, so the failing command can be told from stderr.
const TRACE: &str = "+kubeha+ ";

async fn run_step(n: &NodeRun<'_>, step: &Step, opts: &Options) -> bool {
    let Some(t) = n.transport.as_ref() else {
        return false;
    };
    n.log(&format!(
        "\n## {} ({}) at {}",
        step.id,
        step.description,
        unix_now()
    ));
    let mut files = Vec::new();
    for path in &step.uploads {
        let Some(a) = n.plan.artifact(path) else {
            n.fail(Failure {
                node: n.plan.name.clone(),
                step: step.id.clone(),
                command: format!("write {path}"),
                exit_code: None,
                stderr_tail: vec![],
                hint: "the plan lists a file it does not carry; this is a kubeha bug".into(),
            });
            return false;
        };
        files.push(a);
    }
    // One command per step: its files over stdin, then its script, then its record.
    let (mut script, stdin) = upload::puts(&files);
    if let Some(run) = &step.run {
        // In a subshell, so a script that finishes early with `exit 0` still gets its record.
        script.push_str(&format!("PS4='{TRACE}'\nset -x\n(\n{run}\n)\nset +x\n"));
        n.log(&format!("$ sh -eu <<'EOF'\n{run}\nEOF"));
    }
    if step.changes {
        script.push_str(&record::write_script(
            &step.id,
            &record::fingerprint(step, n.plan, &n.digests),
        ));
        script.push('\n');
    }
    let res = t
        .run(&Exec {
            script,
            stdin,
            timeout: opts.step_timeout,
        })
        .await;
    match &res {
        Ok(o) => {
            let stdout = o.stdout_str();
            for (path, w) in upload::parse(&stdout) {
                n.log(&format!("write {path}: {w:?}"));
                if let Written::BackedUp(b) = w
                    && let Ok(mut r) = n.report.lock()
                {
                    r.backups.push(b);
                }
            }
            n.log(&format!(
                "--- stdout\n{stdout}--- stderr\n{}--- exit {:?}",
                o.stderr_str(),
                o.exit
            ));
            if let Ok(mut s) = n.stdout_of.lock() {
                s.insert(step.id.clone(), stdout);
            }
            if o.success() {
                return true;
            }
        }
        Err(e) => n.log(&format!("--- transport error: {e}")),
    }
    // Without a trace line the failure was in writing the files.
    let fallback = format!("write {}", step.uploads.join(" "));
    n.fail(failure_from(n.plan, &step.id, &fallback, res.as_ref()));
    false
}

fn failure_from(
    node: &NodePlan,
    step: &str,
    fallback_command: &str,
    res: Result<&Output, &crate::transport::TransportError>,
) -> Failure {
    let (exit, stderr, command) = match res {
        Ok(o) => {
            let err = o.stderr_str();
            let mut command = fallback_command.to_string();
            let mut lines = Vec::new();
            for l in err.lines() {
                match l.strip_prefix(TRACE) {
                    Some(c) => command = c.to_string(),
                    None if !l.starts_with(TRACE.trim_end()) => lines.push(l.to_string()),
                    None => {}
                }
            }
            if lines.is_empty() {
                // Some tools report on stdout.
                lines = o.stdout_str().lines().map(str::to_string).collect();
            }
            (o.exit, lines, command)
        }
        Err(e) => (None, vec![e.to_string()], fallback_command.to_string()),
    };
    let nonempty: Vec<&String> = stderr.iter().filter(|l| !l.trim().is_empty()).collect();
    let tail: Vec<String> = nonempty[nonempty.len().saturating_sub(8)..]
        .iter()
        .map(|l| l.to_string())
        .collect();
    let text = tail.join("\n");
    let hint = if matches!(res, Err(crate::transport::TransportError::Timeout(_))) {
        "the step ran longer than --step-timeout; read the node's log, then fix the node or raise the timeout".to_string()
    } else if exit == Some(127) || text.contains("not found") {
        format!(
            "a command is missing on {}: install it (packages.source preinstalled means the operator installs Kubernetes' tools)",
            node.name
        )
    } else if text.contains("Permission denied") || text.contains("sudo:") {
        "kubeha needs root on the node: log in as root, or give the SSH user passwordless sudo"
            .to_string()
    } else {
        format!(
            "fix the cause on {node}, then run `kubeha up` again (finished steps are skipped), or only this node: `kubeha up --only {node} --from {step}`",
            node = node.name
        )
    };
    Failure {
        node: node.name.clone(),
        step: step.to_string(),
        command,
        exit_code: exit,
        stderr_tail: tail,
        hint,
    }
}

fn unix_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

fn unix_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Before the first phase that runs kubeadm/kubectl: is kubeadm there on every node that
/// will run such a step now? If not, stop with a clear boundary instead of a failed step.
async fn kubernetes_boundary(nodes: &[NodeRun<'_>], phase: Phase, opts: &Options) -> Option<Stop> {
    let needing: Vec<&NodeRun<'_>> = nodes
        .iter()
        .filter(|n| !n.failed())
        .filter(|n| {
            n.plan.steps.iter().any(|s| {
                s.phase == phase
                    && matches!(
                        n.decisions.get(&s.id),
                        Some(Decision::Run { .. } | Decision::Check | Decision::Drifted(_))
                    )
            })
        })
        .collect();
    let probes = needing.iter().map(|n| async move {
        let t = n.transport.as_ref()?;
        let out = t
            .run(&Exec::new(
                if matches!(phase, Phase::Init | Phase::Cni | Phase::Verify) {
                    "command -v kubeadm >/dev/null && command -v kubectl >/dev/null && echo present || echo absent"
                } else {
                    "command -v kubeadm >/dev/null && echo present || echo absent"
                },
                opts.step_timeout,
            ))
            .await
            .ok()?;
        (out.stdout_str().trim() == "absent").then(|| n.plan.name.clone())
    });
    let missing: Vec<String> = futures_util::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .collect();
    if missing.is_empty() {
        return None;
    }
    for n in needing.iter().filter(|n| missing.contains(&n.plan.name)) {
        n.log(&format!(
            "## stop: kubeadm/kubectl not installed; phase {} needs them",
            phase.name()
        ));
    }
    Some(Stop::KubernetesBinaries {
        nodes: missing,
        phase: phase.name().to_string(),
    })
}

/// Facts from every node's preflight, clocks read one round trip each, and the VIP's ARP
/// owner as seen from the first control-plane node.
async fn cross_node_checks(nodes: &[NodeRun<'_>], plan: &Plan) -> Vec<Finding> {
    let facts: Vec<(String, Facts)> = nodes
        .iter()
        .filter_map(|n| {
            let out = n.stdout_of.lock().ok()?.get("preflight/host").cloned()?;
            Some((n.plan.name.clone(), preflight::parse_facts(&out)))
        })
        .collect();
    let clocks = nodes.iter().filter(|n| !n.failed()).map(|n| async move {
        let t = n.transport.as_ref()?;
        let sent = unix_secs();
        let out = t
            .run(&Exec::new("date +%s.%N", Duration::from_secs(10)))
            .await
            .ok()?;
        let received = unix_secs();
        let clock: f64 = out.stdout_str().trim().parse().ok()?;
        Some((n.plan.name.clone(), ClockSample::new(sent, received, clock)))
    });
    let clocks: Vec<(String, ClockSample)> = futures_util::future::join_all(clocks)
        .await
        .into_iter()
        .flatten()
        .collect();
    let mut findings = preflight::cross_node(&facts, &clocks);
    findings.extend(preflight::kubeadm_versions(
        &facts,
        &plan.kubernetes_version,
    ));
    let vip = plan.vip.split('/').next().unwrap_or_default().to_string();
    let first_cp = nodes
        .iter()
        .find(|n| !n.failed() && n.plan.roles.contains(&"control-plane"));
    // Whose MAC may answer for the VIP is only known when every control-plane node reported.
    let all_cp_facts = plan
        .nodes
        .iter()
        .filter(|n| n.roles.contains(&"control-plane"))
        .all(|n| facts.iter().any(|(name, _)| *name == n.name));
    if plan.frontdoor != "external"
        && all_cp_facts
        && let Some(n) = first_cp
        && let Some(t) = n.transport.as_ref()
    {
        let script = format!(
            "ping -c 1 -W 1 {vip} >/dev/null 2>&1 || true\nip neigh show {vip} 2>/dev/null || true"
        );
        if let Ok(o) = t.run(&Exec::new(script, Duration::from_secs(10))).await {
            let mac = preflight::parse_neigh(&o.stdout_str());
            findings.extend(preflight::vip_owner(&vip, mac.as_deref(), &facts));
        }
    }
    for f in &findings {
        for n in nodes {
            if f.message.contains(&n.plan.name) {
                n.log(&format!("preflight: {f:?}"));
            }
        }
    }
    findings
}

/// After the front door phase: the VIP is held by exactly one control-plane node (waiting a
/// bounded time for the election). After verify: that again, and every etcd member healthy.
async fn cluster_checks(
    nodes: &[NodeRun<'_>],
    plan: &Plan,
    phase: Phase,
) -> Result<Vec<String>, Stop> {
    let mut passed = Vec::new();
    let vip = plan.vip.split('/').next().unwrap_or_default().to_string();
    let cps: Vec<&NodeRun<'_>> = nodes
        .iter()
        .filter(|n| n.plan.roles.contains(&"control-plane") && n.transport.is_some())
        .collect();
    // With --only, some control-plane nodes are not connected: holders cannot be counted.
    let every_cp = plan
        .nodes
        .iter()
        .filter(|n| n.roles.contains(&"control-plane"))
        .count();
    if plan.frontdoor != "external" && !cps.is_empty() && cps.len() == every_cp {
        let started = Instant::now();
        let limit = Duration::from_secs(15);
        let script = crate::status::vip_probe(&vip);
        let mut holders: Vec<String>;
        // Bounded: 15 s, a probe every 250 ms.
        loop {
            let probes = cps.iter().map(|n| {
                let script = &script;
                async move {
                    let t = n.transport.as_ref()?;
                    let o = t
                        .run(&Exec::new(script.clone(), Duration::from_secs(10)))
                        .await
                        .ok()?;
                    crate::status::parse(&n.plan.name, &o.stdout_str())
                        .vip_held
                        .then(|| n.plan.name.clone())
                }
            });
            holders = futures_util::future::join_all(probes)
                .await
                .into_iter()
                .flatten()
                .collect();
            if holders.len() == 1 || started.elapsed() > limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if holders.len() != 1 {
            let detail = if holders.is_empty() {
                format!(
                    "no control-plane node holds the VIP {vip} after {} s: check the front door logs (journalctl -u kubeha-frontdoor) and that VRRP (IP protocol 112) passes between the nodes",
                    limit.as_secs()
                )
            } else {
                format!(
                    "the VIP {vip} is held by {} at once: VRRP adverts do not reach each other (firewall, or unicast peers wrong)",
                    holders.join(" and ")
                )
            };
            return Err(Stop::Cluster {
                check: "vip".into(),
                detail,
            });
        }
        passed.push(format!(
            "VIP {vip} held by {} only ({:.1} s after the {} phase)",
            holders[0],
            started.elapsed().as_secs_f64(),
            phase.name()
        ));
    }
    if phase == Phase::Verify {
        let members: Vec<&NodeRun<'_>> = nodes
            .iter()
            .filter(|n| n.transport.is_some() && !n.failed())
            .filter(|n| match plan.etcd_topology.as_str() {
                "stacked" => n.plan.roles.contains(&"control-plane"),
                _ => n.plan.roles.contains(&"etcd"),
            })
            .collect();
        let probes = members.iter().map(|n| async move {
            let t = n.transport.as_ref()?;
            let script = crate::status::etcd_probe(&n.plan.address);
            let o = t
                .run(&Exec::new(script, Duration::from_secs(20)))
                .await
                .ok()?;
            let st = crate::status::parse(&n.plan.name, &o.stdout_str());
            Some((n.plan.name.clone(), st.etcd.is_some_and(|e| e.healthy)))
        });
        let results: Vec<Option<(String, bool)>> = futures_util::future::join_all(probes).await;
        let unhealthy: Vec<String> = results
            .iter()
            .zip(&members)
            .filter(|(r, _)| !matches!(r, Some((_, true))))
            .map(|(_, n)| n.plan.name.clone())
            .collect();
        if !unhealthy.is_empty() {
            return Err(Stop::Cluster {
                check: "etcd".into(),
                detail: format!(
                    "etcd on {} is not healthy: run `kubeha status` and read the etcd unit's log there",
                    unhealthy.join(", ")
                ),
            });
        }
        if !members.is_empty() {
            passed.push(format!("etcd: {} member(s) healthy", members.len()));
        }
    }
    Ok(passed)
}
