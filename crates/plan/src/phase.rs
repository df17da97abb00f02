//! Phases: the cross-node order, and the policy each phase declares for the executor (how
//! its nodes are rolled out, which whole-cluster checks follow it, which of Kubernetes' own
//! tools it needs). The executor reads the policy; it does not know the phases by name.

use serde::Serialize;

/// Cross-node order: every step of a phase finishes on every node that has it before the next
/// phase starts (etcd before the control plane, first control plane before joins, the CNI
/// before other control-plane nodes join as seed 000 notes, workers last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Preflight,
    Prepare,
    Pki,
    Etcd,
    Frontdoor,
    Init,
    Cni,
    JoinControlPlane,
    JoinWorker,
    Verify,
}

/// How the nodes of a phase run relative to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rollout {
    /// In parallel, at most `--concurrency` at once.
    Parallel,
    /// Every node together whatever the concurrency limit (etcd members wait for quorum).
    AllAtOnce,
    /// One node after the other, in plan order.
    OneAtATime,
}

/// A whole-cluster check that runs after a phase, once every node of it is through.
/// Serialized by its short name (`vip`, `etcd`), as `up --output json` reports a failed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ClusterCheck {
    /// Compare the nodes' preflight facts and clocks; the VIP answering ARP from a stranger.
    #[serde(rename = "cross-node")]
    CrossNode,
    /// Exactly one control-plane node holds the VIP (waiting a bounded time for the election).
    #[serde(rename = "vip")]
    VipHeldOnce,
    /// Every etcd member answers `/health`.
    #[serde(rename = "etcd")]
    EtcdHealthy,
    /// Through the Kubernetes API (kube-rs, the admin kubeconfig, the VIP endpoint): every
    /// node Ready, every apiserver's `/readyz`, the sandbox image Running on every worker.
    #[serde(rename = "kubernetes")]
    Kubernetes,
}

impl std::str::FromStr for ClusterCheck {
    type Err = String;

    /// The short names `--skip-check` takes (`cross-node` cannot be skipped).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "vip" => Ok(ClusterCheck::VipHeldOnce),
            "etcd" => Ok(ClusterCheck::EtcdHealthy),
            "kubernetes" => Ok(ClusterCheck::Kubernetes),
            _ => Err(format!("{s}: use vip, etcd or kubernetes")),
        }
    }
}

impl ClusterCheck {
    /// What `kubeha plan` says the check does.
    pub fn description(&self) -> &'static str {
        match self {
            ClusterCheck::CrossNode => {
                "the nodes' facts side by side: unique names, product_uuid, machine-id and MACs, clocks within 2 s, one kubeadm version, nobody else answering ARP for the VIP"
            }
            ClusterCheck::VipHeldOnce => "exactly one control-plane node holds the VIP",
            ClusterCheck::EtcdHealthy => "every etcd member answers /health",
            ClusterCheck::Kubernetes => {
                "from this machine, with the admin kubeconfig through the VIP: every node Ready, /readyz of every apiserver, a pause pod Running on every worker"
            }
        }
    }
}

impl std::fmt::Display for ClusterCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClusterCheck::CrossNode => "cross-node",
            ClusterCheck::VipHeldOnce => "vip",
            ClusterCheck::EtcdHealthy => "etcd",
            ClusterCheck::Kubernetes => "kubernetes",
        })
    }
}

/// What a phase declares about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Nodes doing the phase's work for the first time (or a check).
    pub rollout: Rollout,
    /// Nodes whose recorded step is redone (changed inputs or files): a restart of a running
    /// etcd member or front door goes one node at a time so quorum and the VIP survive.
    pub redo: Rollout,
    pub checks: &'static [ClusterCheck],
    /// The checks run even when no node had a step of this phase (the verify phase is
    /// nothing but checks); otherwise only after the phase did something.
    pub checks_always: bool,
    /// Kubernetes' own tools every node running a step of this phase must have.
    pub tools: &'static [&'static str],
}

impl Phase {
    pub const ALL: [Phase; 10] = [
        Phase::Preflight,
        Phase::Prepare,
        Phase::Pki,
        Phase::Etcd,
        Phase::Frontdoor,
        Phase::Init,
        Phase::Cni,
        Phase::JoinControlPlane,
        Phase::JoinWorker,
        Phase::Verify,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Phase::Preflight => "preflight",
            Phase::Prepare => "prepare",
            Phase::Pki => "pki",
            Phase::Etcd => "etcd",
            Phase::Frontdoor => "frontdoor",
            Phase::Init => "init",
            Phase::Cni => "cni",
            Phase::JoinControlPlane => "join-control-plane",
            Phase::JoinWorker => "join-worker",
            Phase::Verify => "verify",
        }
    }

    pub fn policy(&self) -> Policy {
        const KUBEADM: &[&str] = &["kubeadm"];
        const KUBEADM_KUBECTL: &[&str] = &["kubeadm", "kubectl"];
        let parallel = Policy {
            rollout: Rollout::Parallel,
            redo: Rollout::Parallel,
            checks: &[],
            checks_always: false,
            tools: &[],
        };
        match self {
            Phase::Preflight => Policy {
                checks: &[ClusterCheck::CrossNode],
                ..parallel
            },
            Phase::Prepare | Phase::Pki => parallel,
            Phase::Etcd => Policy {
                rollout: Rollout::AllAtOnce,
                redo: Rollout::OneAtATime,
                ..parallel
            },
            Phase::Frontdoor => Policy {
                redo: Rollout::OneAtATime,
                checks: &[ClusterCheck::VipHeldOnce],
                ..parallel
            },
            Phase::Init | Phase::Cni => Policy {
                tools: KUBEADM_KUBECTL,
                ..parallel
            },
            // kubeadm adds each new stacked etcd member as a learner and promotes it; etcd
            // takes one learner at a time, so control-plane joins go one after the other.
            Phase::JoinControlPlane => Policy {
                rollout: Rollout::OneAtATime,
                redo: Rollout::OneAtATime,
                tools: KUBEADM,
                ..parallel
            },
            Phase::JoinWorker => Policy {
                tools: KUBEADM,
                ..parallel
            },
            Phase::Verify => Policy {
                checks: &[
                    ClusterCheck::VipHeldOnce,
                    ClusterCheck::EtcdHealthy,
                    ClusterCheck::Kubernetes,
                ],
                checks_always: true,
                ..parallel
            },
        }
    }

    /// Whether this phase runs Kubernetes' own binaries (kubeadm, kubectl).
    pub fn needs_kubernetes_binaries(&self) -> bool {
        !self.policy().tools.is_empty()
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
