//! What a run reports: per node, per step outcomes, the first failure with its hint, and
//! why the run stopped. `kubeha up --output json` prints it as it is.

use std::path::PathBuf;

use plan::{ClusterCheck, Phase, StepId};
use serde::Serialize;

use crate::transport::{Output, TransportError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Ran, and it is a step that changes the node.
    Changed,
    /// Done before with the same inputs.
    Unchanged,
    /// A read-only check (or an every-run step) ran.
    Checked,
    /// Left alone: before `--from`, or not needed in this run (the join token step when
    /// nothing joins).
    Skipped,
    Failed,
    /// Not reached: an earlier failure or stop.
    NotRun,
    /// `--dry-run`: would run now.
    WouldRun,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub id: StepId,
    pub outcome: Outcome,
    pub millis: u64,
    /// Why it runs: never done, or inputs changed since the recorded run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Where on a node something failed: reaching it, reading its records, or a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Connect,
    Records,
    Step(StepId),
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Connect => f.write_str("connect"),
            At::Records => f.write_str("records"),
            At::Step(id) => f.write_str(id.as_str()),
        }
    }
}

impl Serialize for At {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub node: String,
    pub step: At,
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

/// Marker for the shell's trace lines, so the failing command can be told from stderr.
pub(super) const TRACE: &str = "+kubeha+ ";

impl Failure {
    /// From what a script left (or the transport's error): the last traced command, the
    /// last lines of stderr, and a hint for the usual causes.
    pub(super) fn from_run(
        node: &str,
        step: At,
        fallback_command: &str,
        res: Result<&Output, &TransportError>,
    ) -> Failure {
        let (exit, stderr, command) = match res {
            Ok(o) => {
                let err = o.stderr_str();
                let mut command = fallback_command.to_string();
                let mut lines = Vec::new();
                for l in err.lines() {
                    match l.strip_prefix(TRACE) {
                        // A step's failure-report helpers (kubeadm.sh's report_*) are not
                        // the command that failed.
                        Some(c) if c.starts_with("report_") => {}
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
        let hint = if matches!(res, Err(TransportError::Timeout(_))) {
            "the step ran longer than --step-timeout; read the node's log, then fix the node or raise the timeout".to_string()
        } else if exit == Some(127) || text.contains("not found") {
            format!(
                "a command is missing on {node}: install it (packages.source preinstalled means the operator installs Kubernetes' tools)"
            )
        } else if text.contains("half-way") && text.contains("kubeadm reset -f") {
            format!(
                "{node} is half-initialised: fix the cause, run `kubeadm reset -f` on {node}, then `kubeha up` again"
            )
        } else if text.contains("Permission denied") || text.contains("sudo:") {
            "kubeha needs root on the node: log in as root, or give the SSH user passwordless sudo"
                .to_string()
        } else {
            format!(
                "fix the cause on {node}, then run `kubeha up` again (finished steps are skipped), or only this node: `kubeha up --only {node} --from {step}`"
            )
        };
        Failure {
            node: node.to_string(),
            step,
            command,
            exit_code: exit,
            stderr_tail: tail,
            hint,
        }
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

    pub fn outcome(&self, id: StepId) -> Option<&Outcome> {
        self.steps.iter().find(|s| s.id == id).map(|s| &s.outcome)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Stop {
    /// Cross-node preflight found problems; nothing was changed.
    Preflight { findings: Vec<String> },
    /// A control-plane or etcd node failed; later phases did not run.
    Failed { node: String, step: At },
    /// Kubernetes' own binaries are missing where the next phase needs them.
    KubernetesBinaries { nodes: Vec<String>, phase: Phase },
    /// A whole-cluster check after a phase failed (the VIP held by exactly one node, every
    /// etcd member healthy).
    Cluster { check: ClusterCheck, detail: String },
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
    /// Where the run's time went, in order: `connect`, `records`, each phase, each check
    /// (`check vip after frontdoor`), with wall milliseconds.
    pub timings: Vec<Timing>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Timing {
    pub what: String,
    pub millis: u64,
}

impl Timing {
    pub fn since(what: impl Into<String>, t0: std::time::Instant) -> Self {
        Timing {
            what: what.into(),
            millis: t0.elapsed().as_millis() as u64,
        }
    }
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
    pub fn node(&self, name: &str) -> Option<&NodeReport> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What join-control-plane.sh leaves when kubeadm fails: kubeadm's trace and error, then
    /// the report_* helpers' call, the way out and the kubelet's last lines.
    #[test]
    fn a_half_way_join_names_kubeadm_and_the_way_out() {
        let stderr = format!(
            "{TRACE}kubeadm join --config /etc/kubeha/kubeadm-join.yaml\n\
             error execution phase kubelet-start: timed out waiting for the condition\n\
             {TRACE}report_half_way 1 kubeadm join --control-plane\n\
             kubeadm join --control-plane stopped half-way on this node: fix the cause, run `kubeadm reset -f` here, then kubeha up again\n\
             the kubelet's last log lines (systemctl status kubelet):\n\
             E1208 run.go:72] \"command failed\" err=\"failed to parse kubelet flag: unknown flag: --allow-privileged\"\n"
        );
        let out = Output {
            exit: Some(1),
            stdout: Vec::new(),
            stderr: stderr.into_bytes(),
        };
        let f = Failure::from_run(
            "master1",
            At::Step(StepId::JoinControlPlane),
            "fallback",
            Ok(&out),
        );
        assert_eq!(
            f.command,
            "kubeadm join --config /etc/kubeha/kubeadm-join.yaml"
        );
        assert!(f.stderr_tail.last().unwrap().contains("--allow-privileged"));
        assert_eq!(
            f.hint,
            "master1 is half-initialised: fix the cause, run `kubeadm reset -f` on master1, then `kubeha up` again"
        );
    }
}
