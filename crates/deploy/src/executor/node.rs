//! One node in a run: its part of the Plan, its connection, what it did before, its log and
//! its report; and running its steps of one phase in order.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use plan::{NodePlan, Phase, Step, StepId};

use super::batch::{self, Part, Segment};
use super::report::{At, Failure, NodeReport, Outcome, StepReport};
use super::{Event, Observer, Options};
use crate::preflight::ClockSample;
use crate::record::{self, Decision};
use crate::transport::{Exec, Output, Purpose, Transport, TransportError};
use crate::upload::{self, Written};

pub(super) struct NodeRun<'a> {
    pub plan: &'a NodePlan,
    pub transport: Option<Box<dyn Transport>>,
    pub decisions: BTreeMap<StepId, Decision>,
    digests: record::Digests,
    report: Mutex<NodeReport>,
    /// Log text not yet appended to the node's log file. The file is opened only to append
    /// (after the records, after each phase, at the end), so a run holds no file per node.
    log: Mutex<Vec<u8>>,
    log_path: std::path::PathBuf,
    stdout_of: Mutex<BTreeMap<StepId, String>>,
    /// The node's clock against ours, from the records read.
    pub clock: Option<ClockSample>,
    /// What the preflight steps left when they went along with the records read, and how
    /// long that command took: the preflight phase settles them instead of sending them.
    early: Mutex<Option<(Output, u64)>>,
    /// Not chosen with --only, here only for the join token step the chosen nodes need.
    pub token_only: bool,
    masked: Vec<String>,
    step_timeout: Duration,
}

impl<'a> NodeRun<'a> {
    pub fn new(
        plan: &'a NodePlan,
        connection: Option<Result<Box<dyn Transport>, TransportError>>,
        token_only: bool,
        opts: &Options,
        cache: &mut record::DigestCache,
    ) -> Self {
        let log_path = opts.log_dir.join(format!("{}.log", plan.name));
        let (transport, failure) = match connection {
            Some(Ok(t)) => (Some(t), None),
            Some(Err(e)) => (None, Some(e.to_string())),
            None => (None, Some("no connection was made".to_string())),
        };
        let run = NodeRun {
            plan,
            transport,
            decisions: BTreeMap::new(),
            digests: record::digests_cached(plan, &opts.masked, cache),
            report: Mutex::new(NodeReport {
                name: plan.name.clone(),
                steps: plan
                    .steps
                    .iter()
                    .map(|s| StepReport {
                        id: s.id,
                        outcome: Outcome::NotRun,
                        millis: 0,
                        reason: None,
                    })
                    .collect(),
                failure: None,
                backups: Vec::new(),
                log: log_path.clone(),
            }),
            log: Mutex::new(Vec::new()),
            log_path,
            stdout_of: Mutex::new(BTreeMap::new()),
            clock: None,
            early: Mutex::new(None),
            token_only,
            masked: opts.masked.clone(),
            step_timeout: opts.step_timeout,
        };
        if let Some(e) = failure {
            run.fail(Failure {
                node: plan.name.clone(),
                step: At::Connect,
                command: format!("ssh to {}", plan.address),
                exit_code: None,
                stderr_tail: vec![e],
                hint: "check the address, the ssh section of the inventory and known_hosts".into(),
            });
        } else if let Some(t) = &run.transport {
            run.log(&format!(
                "# kubeha up: node {} via {}",
                plan.name,
                t.describe()
            ));
        }
        run
    }

    pub fn name(&self) -> &str {
        &self.plan.name
    }

    /// Per-run secrets never reach a log, the report or the terminal.
    fn redact(&self, text: &str) -> String {
        let mut t = text.to_string();
        for m in self.masked.iter().filter(|m| !m.is_empty()) {
            t = t.replace(m.as_str(), "<bootstrap-token>");
        }
        t
    }

    pub fn failed(&self) -> bool {
        self.report
            .lock()
            .map(|r| r.failure.is_some())
            .unwrap_or(true)
    }

    /// Failed, and the rest of the cluster depends on it.
    pub fn blocks_cluster(&self) -> bool {
        self.failed() && !self.plan.is_worker_only()
    }

    pub fn failed_at(&self) -> Option<At> {
        self.report
            .lock()
            .ok()
            .and_then(|r| r.failure.as_ref().map(|f| f.step))
    }

    pub fn has_phase(&self, phase: Phase) -> bool {
        self.plan.steps.iter().any(|s| s.phase() == phase)
    }

    /// Some step of `phase` will run here now (not skipped, not before `--from`).
    pub fn runs_in(&self, phase: Phase) -> bool {
        self.plan.steps.iter().any(|s| {
            s.phase() == phase
                && matches!(
                    self.decisions.get(&s.id),
                    Some(Decision::Run { .. } | Decision::Check | Decision::Drifted(_))
                )
        })
    }

    /// A step of `phase` that ran here before is redone: a restart of something running.
    pub fn redoes(&self, phase: Phase) -> bool {
        self.plan.steps.iter().any(|s| {
            s.phase() == phase
                && matches!(
                    self.decisions.get(&s.id),
                    Some(Decision::Run { previous: Some(_) } | Decision::Drifted(_))
                )
        })
    }

    pub fn stdout_of(&self, id: StepId) -> Option<String> {
        self.stdout_of.lock().ok()?.get(&id).cloned()
    }

    pub fn log(&self, text: &str) {
        if let Ok(mut g) = self.log.lock() {
            g.extend_from_slice(self.redact(text).as_bytes());
            if !text.ends_with('\n') {
                g.push(b'\n');
            }
        }
    }

    /// Appends what was logged since the last flush to the node's log file, and closes it.
    pub fn flush_log(&self) {
        let Ok(mut g) = self.log.lock() else {
            return;
        };
        if g.is_empty() {
            return;
        }
        // Taken, not cleared: thousands of idle nodes keep no buffer between phases.
        let text = std::mem::take(&mut *g);
        if let Some(mut f) = open_log(&self.log_path) {
            let _ = f.write_all(&text);
        }
    }

    pub fn set_outcome(&self, step: StepId, outcome: Outcome, millis: u64, reason: Option<String>) {
        if let Ok(mut r) = self.report.lock()
            && let Some(s) = r.steps.iter_mut().find(|s| s.id == step)
        {
            s.outcome = outcome;
            s.millis = millis;
            s.reason = reason;
        }
    }

    pub fn fail(&self, mut f: Failure) {
        f.command = self.redact(&f.command);
        f.stderr_tail = f.stderr_tail.iter().map(|l| self.redact(l)).collect();
        self.log(&format!("FAILED: {f}"));
        if let Ok(mut r) = self.report.lock()
            && r.failure.is_none()
        {
            r.failure = Some(f);
        }
    }

    pub fn into_report(self) -> NodeReport {
        self.flush_log();
        self.report.into_inner().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a script that is not a step, bounded by `timeout`; `None` if unreachable.
    pub async fn probe(
        &self,
        purpose: Purpose,
        script: String,
        timeout: Duration,
    ) -> Option<String> {
        let t = self.transport.as_ref()?;
        let out = t
            .run(&Exec::new(script, timeout).purpose(purpose))
            .await
            .ok()?;
        Some(out.stdout_str())
    }

    /// Reads what the node has done before (and its clock) in one command, and decides every
    /// step. With `with_preflight`, the preflight steps (checks that run every time, nothing
    /// recorded) go along in the same command: a re-run that changes nothing then costs this
    /// command plus one per later phase with every-run steps.
    pub async fn read_records(&mut self, from: Option<StepId>, with_preflight: bool) {
        let Some(t) = self.transport.as_ref() else {
            return;
        };
        let (large, small): (Vec<&plan::Artifact>, Vec<&plan::Artifact>) = self
            .plan
            .artifacts
            .iter()
            .partition(|a| a.contents.len() >= upload::STAMPED_MIN);
        let paths = |v: Vec<&'a plan::Artifact>| {
            v.into_iter()
                .map(|a| a.path.as_str())
                .collect::<Vec<&str>>()
        };
        let mut script = record::read_script(&paths(small), &paths(large));
        let mut exec_stdin = Vec::new();
        let mut timeout = Duration::from_secs(60);
        let check = Decision::Check;
        let preflight: Vec<(&Step, &Decision)> = self
            .plan
            .steps
            .iter()
            .filter(|s| s.phase() == Phase::Preflight)
            .map(|s| (s, &check))
            .collect();
        let along =
            with_preflight && !preflight.is_empty() && preflight.iter().all(|(s, _)| !s.changes);
        if along {
            match self.command(&preflight) {
                Ok((more, stdin)) => {
                    script.push_str(&more);
                    exec_stdin = stdin;
                    timeout += self.step_timeout * preflight.len() as u32;
                }
                Err(_) => return,
            }
        }
        let mut exec = Exec::new(script, timeout).purpose(Purpose::Records);
        exec.stdin = exec_stdin;
        let sent = unix_secs();
        let t0 = Instant::now();
        let res = t.run(&exec).await;
        let ms = t0.elapsed().as_millis() as u64;
        let received = unix_secs();
        let read = match &res {
            Ok(o) if o.stdout_str().lines().any(|l| l == record::READ_DONE) => Some(o.stdout_str()),
            _ => None,
        };
        match read {
            Some(stdout) => {
                let records = record::parse(&stdout);
                // The node read its clock first; whatever ran after it does not widen the
                // window the reading fell in.
                let node_end = batch::split(&stdout, "")
                    .last()
                    .and_then(|s| s.ended_ns.or(s.started_ns))
                    .map(|ns| ns as f64 / 1e9);
                let received = match (records.clock, node_end) {
                    (Some(c), Some(end)) if end >= c => (received - (end - c)).max(sent),
                    _ => received,
                };
                self.clock = records.clock.map(|c| ClockSample::new(sent, received, c));
                self.decisions = record::decide(self.plan, &records, &self.digests, from)
                    .into_iter()
                    .collect();
                if along
                    && let Ok(o) = res
                    && let Ok(mut e) = self.early.lock()
                {
                    *e = Some((o, ms));
                }
            }
            None => self.fail(Failure::from_run(
                &self.plan.name,
                At::Records,
                "read step records",
                res.as_ref(),
            )),
        }
        self.flush_log();
    }

    /// What `--dry-run` reports for every step.
    pub fn dry_run(&self) {
        for s in &self.plan.steps {
            let (outcome, reason) = match self.decisions.get(&s.id) {
                Some(Decision::Unchanged) => (Outcome::Unchanged, None),
                Some(Decision::BeforeFrom) => (Outcome::Skipped, None),
                Some(d @ Decision::NotNeeded) => (Outcome::Skipped, reason(d)),
                Some(Decision::Check) => (Outcome::WouldRun, Some("check".into())),
                Some(d @ (Decision::Run { .. } | Decision::Drifted(_))) => {
                    (Outcome::WouldRun, reason(d))
                }
                None => (Outcome::NotRun, None),
            };
            self.set_outcome(s.id, outcome, 0, reason);
        }
    }

    /// This node's steps of `phase`, in order, until one fails: those recorded as unchanged
    /// are skipped here, the rest run as one command (`batch`).
    pub async fn run_phase(&self, phase: Phase, opts: &Options, observer: &dyn Observer) {
        let node = self.name();
        if self.failed() {
            return;
        }
        let steps: Vec<&Step> = self
            .plan
            .steps
            .iter()
            .filter(|s| s.phase() == phase)
            .take_while(|s| self.decisions.contains_key(&s.id))
            .collect();
        let todo: Vec<(&Step, &Decision)> = steps
            .iter()
            .filter_map(|s| match &self.decisions[&s.id] {
                Decision::Unchanged | Decision::BeforeFrom | Decision::NotNeeded => None,
                d => Some((*s, d)),
            })
            .collect();
        let early = match self.early.lock() {
            Ok(mut e) if phase == Phase::Preflight => e.take(),
            _ => None,
        };
        let failed_at = match early {
            _ if todo.is_empty() => None,
            // Sent along with the records read: only their outcomes are left to settle.
            Some((out, ms)) => {
                observer.event(Event::StepStarted {
                    node,
                    step: todo[0].0.id,
                });
                self.settle(&todo, Ok(out), ms, observer)
            }
            None => self.run_steps(&todo, opts, observer).await,
        };
        // What is skipped, up to the step that failed (later ones stay not run).
        for step in steps.iter().take_while(|s| Some(s.id) != failed_at) {
            match &self.decisions[&step.id] {
                Decision::Unchanged => {
                    self.set_outcome(step.id, Outcome::Unchanged, 0, None);
                    self.log(&format!(
                        "## {} unchanged since the last run: skipped",
                        step.id
                    ));
                    observer.event(Event::StepFinished {
                        node,
                        step: step.id,
                        outcome: &Outcome::Unchanged,
                    });
                }
                Decision::BeforeFrom => self.set_outcome(step.id, Outcome::Skipped, 0, None),
                d @ Decision::NotNeeded => {
                    self.set_outcome(step.id, Outcome::Skipped, 0, reason(d));
                    self.log(&format!("## {} not needed now: skipped", step.id));
                }
                _ => {}
            }
        }
        self.flush_log();
        if failed_at.is_some() {
            observer.event(Event::NodeDone { node, failed: true });
            return;
        }
        if self.plan.steps.last().map(|s| s.phase()) == Some(phase) {
            observer.event(Event::NodeDone {
                node,
                failed: false,
            });
        }
    }

    /// The script and stdin of `steps` (in plan order) as one command: each its files over
    /// stdin, its script, its record. Logs what will run. `Err`: the step whose file the plan
    /// lacks (failed).
    fn command(&self, steps: &[(&Step, &Decision)]) -> Result<(String, Vec<u8>), StepId> {
        let mut files: Vec<Vec<&plan::Artifact>> = Vec::new();
        for (step, _) in steps {
            let mut mine = Vec::new();
            for path in &step.uploads {
                let Some(a) = self.plan.artifact(path) else {
                    self.fail(Failure {
                        node: self.plan.name.clone(),
                        step: At::Step(step.id),
                        command: format!("write {path}"),
                        exit_code: None,
                        stderr_tail: vec![],
                        hint: "the plan lists a file it does not carry; this is a kubeha bug"
                            .into(),
                    });
                    return Err(step.id);
                };
                mine.push(a);
            }
            files.push(mine);
        }
        let bytes: Vec<Vec<&[u8]>> = files
            .iter()
            .map(|fs| fs.iter().map(|a| &a.contents[..]).collect())
            .collect();
        let parts: Vec<Part<'_>> = steps
            .iter()
            .zip(&files)
            .zip(&bytes)
            .map(|(((step, _), fs), b)| Part {
                id: step.id,
                puts: upload::put_lines(fs),
                stdin: b,
                run: step.run.as_deref(),
                record: step.changes.then(|| {
                    record::write_script(
                        step.id,
                        &record::fingerprint(step, self.plan, &self.digests),
                    )
                }),
            })
            .collect();
        let prelude = if files.iter().any(|f| !f.is_empty()) {
            upload::put_function()
        } else {
            String::new()
        };
        let started = unix_now();
        for (step, _) in steps {
            self.log(&format!(
                "\n## {} ({}) at {started}",
                step.id, step.description
            ));
            if let Some(run) = &step.run {
                self.log(&format!("$ sh -eu <<'EOF'\n{run}\nEOF"));
            }
        }
        if steps.len() > 1 {
            let ids: Vec<String> = steps.iter().map(|(s, _)| s.id.to_string()).collect();
            self.log(&format!("# as one command: {}", ids.join(", ")));
        }
        Ok(batch::script(&prelude, &parts))
    }

    /// `steps` (in plan order) as one command; the step that failed, if one did.
    async fn run_steps(
        &self,
        steps: &[(&Step, &Decision)],
        opts: &Options,
        observer: &dyn Observer,
    ) -> Option<StepId> {
        let Some(t) = self.transport.as_ref() else {
            return Some(steps[0].0.id);
        };
        let (script, stdin) = match self.command(steps) {
            Ok(c) => c,
            Err(id) => return Some(id),
        };
        // Every step keeps its own limit: the command may take the sum.
        let timeout = opts.step_timeout * steps.len() as u32;
        let mut exec = Exec::new(script, timeout).purpose(Purpose::Steps(steps[0].0.phase()));
        exec.stdin = stdin;
        observer.event(Event::StepStarted {
            node: self.name(),
            step: steps[0].0.id,
        });
        let t0 = Instant::now();
        let res = t.run(&exec).await;
        self.settle(steps, res, t0.elapsed().as_millis() as u64, observer)
    }

    /// Outcomes, logs and the failure of `steps` from what their command left.
    fn settle(
        &self,
        steps: &[(&Step, &Decision)],
        res: Result<Output, TransportError>,
        total_ms: u64,
        observer: &dyn Observer,
    ) -> Option<StepId> {
        let node = self.name();
        let out = match res {
            Ok(o) => o,
            Err(e) => {
                // No output at all: the first step that may not have finished is the first.
                self.log(&format!("--- transport error: {e}"));
                let (step, d) = steps[0];
                self.set_outcome(step.id, Outcome::Failed, total_ms, reason(d));
                observer.event(Event::StepFinished {
                    node,
                    step: step.id,
                    outcome: &Outcome::Failed,
                });
                let fallback = format!("write {}", step.uploads.join(" "));
                self.fail(Failure::from_run(
                    &self.plan.name,
                    At::Step(step.id),
                    &fallback,
                    Err(&e),
                ));
                return Some(step.id);
            }
        };
        let segs = batch::split(&out.stdout_str(), &out.stderr_str());
        let mut spent = 0u64;
        for (i, (step, d)) in steps.iter().enumerate() {
            let seg: Option<&Segment> = segs.get(i).filter(|s| s.id == step.id.as_str());
            let last = i + 1 == segs.len().max(1);
            let ok = out.success() || (!last && seg.is_some());
            let millis = match seg.and_then(|s| s.ended_ns?.checked_sub(s.started_ns?)) {
                Some(ns) => (ns / 1_000_000) as u64,
                None => total_ms.saturating_sub(spent),
            };
            spent += millis;
            let (stdout, stderr) = match seg {
                Some(s) => (s.stdout.clone(), s.stderr.clone()),
                // Nothing of this step's own: whatever the command printed is its.
                None => (out.stdout_str(), out.stderr_str()),
            };
            for (path, w) in upload::parse(&stdout) {
                self.log(&format!("write {path}: {w:?}"));
                if let Written::BackedUp(b) = w
                    && let Ok(mut r) = self.report.lock()
                {
                    r.backups.push(b);
                }
            }
            let exit = if ok { Some(0) } else { out.exit };
            self.log(&format!(
                "## {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- exit {exit:?}",
                step.id
            ));
            let outcome = match (ok, step.changes) {
                (false, _) => Outcome::Failed,
                (true, true) => Outcome::Changed,
                (true, false) => Outcome::Checked,
            };
            self.set_outcome(step.id, outcome.clone(), millis, reason(d));
            if let Ok(mut s) = self.stdout_of.lock() {
                s.insert(step.id, stdout.clone());
            }
            observer.event(Event::StepFinished {
                node,
                step: step.id,
                outcome: &outcome,
            });
            if !ok {
                // Without a trace line the failure was in writing the files.
                let fallback = format!("write {}", step.uploads.join(" "));
                let alone = Output {
                    exit: out.exit,
                    stdout: stdout.into_bytes(),
                    stderr: stderr.into_bytes(),
                };
                self.fail(Failure::from_run(
                    &self.plan.name,
                    At::Step(step.id),
                    &fallback,
                    Ok(&alone),
                ));
                return Some(step.id);
            }
        }
        None
    }
}

/// Why a step runs: never done, inputs changed, or files changed on the node.
fn reason(d: &Decision) -> Option<String> {
    match d {
        Decision::Run { previous: None } => Some("not done before".into()),
        Decision::Run { previous: Some(_) } => Some("inputs changed since the last run".into()),
        Decision::Drifted(files) => Some(format!(
            "changed on the node since the last run: {}",
            files.join(", ")
        )),
        Decision::NotNeeded => Some("no join runs now".into()),
        _ => None,
    }
}

fn unix_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn unix_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
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
