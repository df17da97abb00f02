//! One node in a run: its part of the Plan, its connection, what it did before, its log and
//! its report; and running its steps of one phase in order.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use plan::{NodePlan, Phase, Step, StepId};

use super::report::{At, Failure, NodeReport, Outcome, StepReport, TRACE};
use super::{Event, Observer, Options};
use crate::record::{self, Decision};
use crate::transport::{Exec, Purpose, Transport, TransportError};
use crate::upload::{self, Written};

pub(super) struct NodeRun<'a> {
    pub plan: &'a NodePlan,
    pub transport: Option<Box<dyn Transport>>,
    pub decisions: BTreeMap<StepId, Decision>,
    digests: record::Digests,
    report: Mutex<NodeReport>,
    log: Mutex<Option<std::fs::File>>,
    stdout_of: Mutex<BTreeMap<StepId, String>>,
    /// Not chosen with --only, here only for the join token step the chosen nodes need.
    pub token_only: bool,
    masked: Vec<String>,
}

impl<'a> NodeRun<'a> {
    pub fn new(
        plan: &'a NodePlan,
        connection: Option<Result<Box<dyn Transport>, TransportError>>,
        token_only: bool,
        opts: &Options,
    ) -> Self {
        let log_path = opts.log_dir.join(format!("{}.log", plan.name));
        let log = open_log(&log_path);
        let (transport, failure) = match connection {
            Some(Ok(t)) => (Some(t), None),
            Some(Err(e)) => (None, Some(e.to_string())),
            None => (None, Some("no connection was made".to_string())),
        };
        let run = NodeRun {
            plan,
            transport,
            decisions: BTreeMap::new(),
            digests: record::digests(plan, &opts.masked),
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
                log: log_path,
            }),
            log: Mutex::new(log),
            stdout_of: Mutex::new(BTreeMap::new()),
            token_only,
            masked: opts.masked.clone(),
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
        if let Ok(mut g) = self.log.lock()
            && let Some(f) = g.as_mut()
        {
            let _ = f.write_all(self.redact(text).as_bytes());
            if !text.ends_with('\n') {
                let _ = f.write_all(b"\n");
            }
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

    /// Reads what the node has done before and decides every step.
    pub async fn read_records(&mut self, from: Option<StepId>) {
        let Some(t) = self.transport.as_ref() else {
            return;
        };
        let paths: Vec<&str> = self
            .plan
            .artifacts
            .iter()
            .map(|a| a.path.as_str())
            .collect();
        let exec = Exec::new(record::read_script(&paths), Duration::from_secs(60))
            .purpose(Purpose::Records);
        let res = t.run(&exec).await;
        match res {
            Ok(o) if o.success() => {
                let records = record::parse(&o.stdout_str());
                self.decisions = record::decide(self.plan, &records, &self.digests, from)
                    .into_iter()
                    .collect();
            }
            other => self.fail(Failure::from_run(
                &self.plan.name,
                At::Records,
                "read step records",
                other.as_ref(),
            )),
        }
    }

    /// What `--dry-run` reports for every step.
    pub fn dry_run(&self) {
        for s in &self.plan.steps {
            let (outcome, reason) = match self.decisions.get(&s.id) {
                Some(Decision::Unchanged) => (Outcome::Unchanged, None),
                Some(Decision::BeforeFrom) => (Outcome::Skipped, None),
                Some(Decision::Check) => (Outcome::WouldRun, Some("check".into())),
                Some(d @ (Decision::Run { .. } | Decision::Drifted(_))) => {
                    (Outcome::WouldRun, reason(d))
                }
                None => (Outcome::NotRun, None),
            };
            self.set_outcome(s.id, outcome, 0, reason);
        }
    }

    /// This node's steps of `phase`, in order, until one fails.
    pub async fn run_phase(&self, phase: Phase, opts: &Options, observer: &dyn Observer) {
        let node = self.name();
        for step in self.plan.steps.iter().filter(|s| s.phase() == phase) {
            if self.failed() {
                return;
            }
            match self.decisions.get(&step.id) {
                Some(Decision::Unchanged) => {
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
                Some(Decision::BeforeFrom) => {
                    self.set_outcome(step.id, Outcome::Skipped, 0, None);
                }
                Some(d) => {
                    observer.event(Event::StepStarted {
                        node,
                        step: step.id,
                    });
                    let t0 = Instant::now();
                    let ok = self.run_step(step, opts).await;
                    let outcome = match (ok, step.changes) {
                        (false, _) => Outcome::Failed,
                        (true, true) => Outcome::Changed,
                        (true, false) => Outcome::Checked,
                    };
                    self.set_outcome(
                        step.id,
                        outcome.clone(),
                        t0.elapsed().as_millis() as u64,
                        reason(d),
                    );
                    observer.event(Event::StepFinished {
                        node,
                        step: step.id,
                        outcome: &outcome,
                    });
                    if !ok {
                        observer.event(Event::NodeDone { node, failed: true });
                        return;
                    }
                }
                None => return,
            }
        }
        if self.plan.steps.last().map(|s| s.phase()) == Some(phase) {
            observer.event(Event::NodeDone {
                node,
                failed: false,
            });
        }
    }

    /// One command per step: its files over stdin, then its script, then its record.
    async fn run_step(&self, step: &Step, opts: &Options) -> bool {
        let Some(t) = self.transport.as_ref() else {
            return false;
        };
        self.log(&format!(
            "\n## {} ({}) at {}",
            step.id,
            step.description,
            unix_now()
        ));
        let mut files = Vec::new();
        for path in &step.uploads {
            let Some(a) = self.plan.artifact(path) else {
                self.fail(Failure {
                    node: self.plan.name.clone(),
                    step: At::Step(step.id),
                    command: format!("write {path}"),
                    exit_code: None,
                    stderr_tail: vec![],
                    hint: "the plan lists a file it does not carry; this is a kubeha bug".into(),
                });
                return false;
            };
            files.push(a);
        }
        let (mut script, stdin) = upload::puts(&files);
        if let Some(run) = &step.run {
            // In a subshell, so a script that finishes early with `exit 0` still gets its record.
            script.push_str(&format!("PS4='{TRACE}'\nset -x\n(\n{run}\n)\nset +x\n"));
            self.log(&format!("$ sh -eu <<'EOF'\n{run}\nEOF"));
        }
        if step.changes {
            script.push_str(&record::write_script(
                step.id,
                &record::fingerprint(step, self.plan, &self.digests),
            ));
            script.push('\n');
        }
        let mut exec = Exec::new(script, opts.step_timeout).purpose(Purpose::Step(step.id));
        exec.stdin = stdin;
        let res = t.run(&exec).await;
        match &res {
            Ok(o) => {
                let stdout = o.stdout_str();
                for (path, w) in upload::parse(&stdout) {
                    self.log(&format!("write {path}: {w:?}"));
                    if let Written::BackedUp(b) = w
                        && let Ok(mut r) = self.report.lock()
                    {
                        r.backups.push(b);
                    }
                }
                self.log(&format!(
                    "--- stdout\n{stdout}--- stderr\n{}--- exit {:?}",
                    o.stderr_str(),
                    o.exit
                ));
                if let Ok(mut s) = self.stdout_of.lock() {
                    s.insert(step.id, stdout);
                }
                if o.success() {
                    return true;
                }
            }
            Err(e) => self.log(&format!("--- transport error: {e}")),
        }
        // Without a trace line the failure was in writing the files.
        let fallback = format!("write {}", step.uploads.join(" "));
        self.fail(Failure::from_run(
            &self.plan.name,
            At::Step(step.id),
            &fallback,
            res.as_ref(),
        ));
        false
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
        _ => None,
    }
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
