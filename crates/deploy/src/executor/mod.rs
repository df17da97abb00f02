//! Runs a Plan: phase by phase across the cluster, steps in order within a node. Each phase
//! declares its policy (`plan::Phase::policy`): how its nodes roll out, which whole-cluster
//! checks follow it, which of Kubernetes' tools it needs. This module owns the order, the
//! dry run and the stops; `schedule` runs a phase's nodes, `node` a node's steps, `checks`
//! what runs between phases, `report` what comes out.
//!
//! A failed worker drops out and the others go on; a failure on a control-plane or etcd node
//! stops every later phase, since all of them depend on it.

pub mod batch;
mod checks;
mod node;
mod report;
mod schedule;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use plan::{Phase, Plan, StepId};
use tokio::sync::Semaphore;

pub use report::{At, Failure, NodeReport, Outcome, Report, StepReport, Stop, Timing};
pub use schedule::{Selected, select};

use crate::transport::{Transport, TransportError};
use node::NodeRun;

#[derive(Debug, Clone)]
pub struct Options {
    pub concurrency: usize,
    /// Redo this step and everything after it, ignoring records; earlier steps are left alone.
    pub from: Option<StepId>,
    /// Only these nodes (empty: all).
    pub only: Vec<String>,
    pub dry_run: bool,
    pub step_timeout: Duration,
    /// Per-run secrets (the bootstrap token) that do not count as changed inputs.
    pub masked: Vec<String>,
    /// Per-node logs go to `log_dir/<node>.log`.
    pub log_dir: PathBuf,
    /// The admin kubeconfig the verify phase reads the API with (from this machine, through
    /// the VIP). `None` leaves the Kubernetes check out.
    pub kubeconfig: Option<PathBuf>,
    /// Whole-cluster checks not to run (`--skip-check`), each said in the report's warnings.
    pub skip_checks: Vec<plan::ClusterCheck>,
}

/// What the progress display is told.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    StepStarted {
        node: &'a str,
        step: StepId,
    },
    StepFinished {
        node: &'a str,
        step: StepId,
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

/// Connections made beforehand (the caller picks SSH, local, or a fake); a node that could
/// not be reached carries the reason.
pub type Connections = BTreeMap<String, Result<Box<dyn Transport>, TransportError>>;

pub async fn execute(
    plan: &Plan,
    mut connections: Connections,
    opts: &Options,
    observer: &dyn Observer,
) -> Report {
    let started = Instant::now();
    let _ = std::fs::create_dir_all(&opts.log_dir);
    let mut cache = crate::record::DigestCache::new(&plan.contents);
    let mut nodes: Vec<NodeRun<'_>> = select(plan, &opts.only)
        .into_iter()
        .map(|s| {
            NodeRun::new(
                s.node,
                connections.remove(&s.node.name),
                s.token_only,
                opts,
                &mut cache,
            )
        })
        .collect();
    drop(cache);
    // At most --concurrency nodes are talked to at once (all-at-once rollouts aside), so
    // channels and log files open at once are bounded by it, not by the node count.
    let sem = Semaphore::new(opts.concurrency.max(1));
    let mut run = Run {
        warnings: Vec::new(),
        checks: Vec::new(),
        stopped: None,
        timings: Vec::new(),
    };
    // A node we cannot reach fails the run now if the rest depends on it.
    run.stop_if_blocked(&nodes);
    if run.stopped.is_none() {
        let t0 = Instant::now();
        let from = opts.from;
        let sem = &sem;
        // The preflight checks go along with the records read, unless --from, a dry run or
        // --only (the token node) could leave them out.
        let along = |n: &NodeRun<'_>| !opts.dry_run && from.is_none() && !n.token_only;
        futures_util::future::join_all(nodes.iter_mut().map(|n| async move {
            let _permit = sem.acquire().await.ok();
            let with_preflight = along(n);
            n.read_records(from, with_preflight).await
        }))
        .await;
        run.stop_if_blocked(&nodes);
        schedule::settle_join_token(&mut nodes);
        run.timings.push(Timing::since("records", t0));
    }
    if opts.dry_run {
        for n in &nodes {
            n.dry_run();
        }
        return run.finish(nodes, true, started);
    }
    for phase in Phase::ALL {
        if run.stopped.is_some() {
            break;
        }
        if let Some(stop) = checks::kubernetes_boundary(&nodes, phase, opts, &sem).await {
            run.stopped = Some(stop);
            break;
        }
        // Did something: a re-run whose front doors are unchanged leaves the VIP check to
        // verify, which always runs, instead of probing it twice.
        let active = nodes.iter().any(|n| !n.failed() && n.runs_in(phase));
        let t0 = Instant::now();
        schedule::run_phase(&nodes, phase, opts, observer, &sem).await;
        run.timings
            .push(Timing::since(format!("phase {phase}"), t0));
        for &check in phase.policy().checks {
            // The cross-node preflight always runs after preflight; the others only when no
            // node the cluster depends on failed, and most only when the phase did something.
            if check != plan::ClusterCheck::CrossNode
                && (nodes.iter().any(NodeRun::blocks_cluster)
                    || (!phase.policy().checks_always && !active))
            {
                continue;
            }
            if opts.skip_checks.contains(&check) {
                run.warnings.push(format!(
                    "check {check} after the {phase} phase skipped (--skip-check)"
                ));
                continue;
            }
            let t0 = Instant::now();
            let c = checks::run(check, &nodes, plan, phase, opts).await;
            run.timings
                .push(Timing::since(format!("check {check} after {phase}"), t0));
            run.checks.extend(c.passed);
            run.warnings.extend(c.warnings);
            if c.stop.is_some() {
                run.stopped = c.stop;
                break;
            }
        }
        if run.stopped.is_none() {
            run.stop_if_blocked(&nodes);
        }
    }
    run.finish(nodes, false, started)
}

/// What the run itself (not a node) collected.
struct Run {
    warnings: Vec<String>,
    checks: Vec<String>,
    stopped: Option<Stop>,
    timings: Vec<Timing>,
}

impl Run {
    fn stop_if_blocked(&mut self, nodes: &[NodeRun<'_>]) {
        if let Some(n) = nodes.iter().find(|n| n.blocks_cluster()) {
            self.stopped = Some(Stop::Failed {
                node: n.name().to_string(),
                step: n.failed_at().unwrap_or(At::Connect),
            });
        }
    }

    fn finish(self, nodes: Vec<NodeRun<'_>>, dry_run: bool, started: Instant) -> Report {
        Report {
            nodes: nodes.into_iter().map(NodeRun::into_report).collect(),
            warnings: self.warnings,
            checks: self.checks,
            stopped: self.stopped,
            dry_run,
            millis: started.elapsed().as_millis() as u64,
            timings: self.timings,
        }
    }
}
