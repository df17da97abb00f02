//! Which nodes take part, and how the nodes of a phase run relative to each other (the
//! phase's declared rollout).

use futures_util::future::join_all;
use plan::{NodePlan, Phase, Plan, Rollout, StepId};
use tokio::sync::Semaphore;

use super::node::NodeRun;
use super::{Observer, Options};
use crate::record::Decision;

/// A node of the run, and whether it only comes for the join token step.
pub struct Selected<'a> {
    pub node: &'a NodePlan,
    pub token_only: bool,
}

/// The nodes a run reaches: all, or those of `only` plus the node with the join token step
/// (a join on a chosen node needs this run's token to exist in the cluster).
pub fn select<'a>(plan: &'a Plan, only: &[String]) -> Vec<Selected<'a>> {
    plan.nodes
        .iter()
        .filter_map(|n| {
            if only.is_empty() || only.contains(&n.name) {
                Some(Selected {
                    node: n,
                    token_only: false,
                })
            } else if n.step(StepId::InitJoinToken).is_some() {
                Some(Selected {
                    node: n,
                    token_only: true,
                })
            } else {
                None
            }
        })
        .collect()
}

/// The join token step runs whenever a join runs in this execution (also with --from after
/// init, or --only without the first control-plane node), and not otherwise: it makes this
/// run's token for the joins, and a run without joins needs none (a re-run that changes
/// nothing saves the kubeadm boundary probe and a command on the first control-plane node).
pub(super) fn settle_join_token(nodes: &mut [NodeRun<'_>]) {
    let joins_run = nodes
        .iter()
        .any(|n| n.runs_in(Phase::JoinControlPlane) || n.runs_in(Phase::JoinWorker));
    for n in nodes.iter_mut() {
        if n.token_only {
            for s in &n.plan.steps {
                n.decisions.insert(s.id, Decision::BeforeFrom);
            }
        }
        if let Some(d) = n.decisions.get_mut(&StepId::InitJoinToken) {
            *d = match (joins_run, &*d) {
                (true, _) => Decision::Check,
                (false, Decision::Check) => Decision::NotNeeded,
                (false, other) => other.clone(),
            };
        }
    }
}

/// Runs `phase` on every node that has work in it: nodes doing it for the first time by
/// the phase's rollout, nodes redoing it by its redo rollout, both groups at the same time.
pub(super) async fn run_phase(
    nodes: &[NodeRun<'_>],
    phase: Phase,
    opts: &Options,
    observer: &dyn Observer,
    sem: &Semaphore,
) {
    let policy = phase.policy();
    let (redo, first): (Vec<&NodeRun<'_>>, Vec<&NodeRun<'_>>) = nodes
        .iter()
        .filter(|n| !n.failed() && n.has_phase(phase))
        .partition(|n| policy.redo != policy.rollout && n.redoes(phase));
    futures_util::join!(
        run_group(first, policy.rollout, phase, opts, observer, sem),
        run_group(redo, policy.redo, phase, opts, observer, sem)
    );
}

async fn run_group(
    group: Vec<&NodeRun<'_>>,
    rollout: Rollout,
    phase: Phase,
    opts: &Options,
    observer: &dyn Observer,
    sem: &Semaphore,
) {
    match rollout {
        Rollout::Parallel => {
            join_all(group.into_iter().map(|n| async move {
                let _permit = sem.acquire().await.ok();
                n.run_phase(phase, opts, observer).await;
            }))
            .await;
        }
        Rollout::AllAtOnce => {
            join_all(
                group
                    .into_iter()
                    .map(|n| n.run_phase(phase, opts, observer)),
            )
            .await;
        }
        // A rollout stops at its first failure, as a rolling update does: the next node would
        // meet the same cause, and a half-joined etcd member plus another join risks quorum.
        Rollout::OneAtATime => {
            for n in group {
                n.run_phase(phase, opts, observer).await;
                if n.failed() {
                    break;
                }
            }
        }
    }
}
