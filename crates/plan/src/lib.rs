//! The Plan: per node, the ordered steps and the files kubeha will put there. `kubeha plan`
//! prints a Plan; `kubeha up` executes the same value. Building it is pure.

mod build;
pub mod pki;
mod steps;

use std::collections::BTreeMap;

use serde::Serialize;

pub use build::{Inputs, build};
pub use render::Artifact;

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

    /// Whether this phase runs Kubernetes' own binaries (kubeadm, kubectl).
    pub fn needs_kubernetes_binaries(&self) -> bool {
        matches!(
            self,
            Phase::Init | Phase::Cni | Phase::JoinControlPlane | Phase::JoinWorker | Phase::Verify
        )
    }
}

/// One thing done on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// `phase/name`, unique per node; `--from` takes it.
    pub id: String,
    pub phase: Phase,
    pub description: String,
    /// Artifacts (by path) uploaded before `run`.
    pub uploads: Vec<String>,
    /// Shell run with `sh -eu` on the node, if any.
    pub run: Option<String>,
    /// False for checks that only read.
    pub changes: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodePlan {
    pub name: String,
    pub address: String,
    pub roles: Vec<&'static str>,
    pub steps: Vec<Step>,
    pub artifacts: Vec<Artifact>,
}

impl NodePlan {
    pub fn artifact(&self, path: &str) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| a.path == path)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub cluster: String,
    pub kubernetes_version: String,
    pub endpoint: String,
    pub vip: String,
    pub frontdoor: String,
    pub etcd_topology: String,
    /// Set when the PKI store has not been issued yet: certificate files are not in this plan.
    pub pki_pending: bool,
    pub nodes: Vec<NodePlan>,
}

impl Plan {
    pub fn node(&self, name: &str) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn step_count(&self) -> usize {
        self.nodes.iter().map(|n| n.steps.len()).sum()
    }

    pub fn artifact_count(&self) -> usize {
        self.nodes.iter().map(|n| n.artifacts.len()).sum()
    }

    /// The plan as JSON for scripts. Sensitive artifacts carry their digest and size, never
    /// their bytes.
    pub fn to_json(&self) -> serde_json::Value {
        let nodes: Vec<serde_json::Value> = self
            .nodes
            .iter()
            .map(|n| {
                let artifacts: Vec<serde_json::Value> = n
                    .artifacts
                    .iter()
                    .map(|a| {
                        let digest =
                            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&a.contents));
                        // Secrets and binaries (kubeha itself) are shown by digest only.
                        let contents = match std::str::from_utf8(&a.contents) {
                            Ok(text) if !a.sensitive => serde_json::Value::String(text.into()),
                            _ => serde_json::Value::Null,
                        };
                        serde_json::json!({
                            "path": a.path,
                            "mode": format!("{:04o}", a.mode),
                            "owner": a.owner,
                            "size": a.contents.len(),
                            "sha256": digest,
                            "sensitive": a.sensitive,
                            "purpose": a.purpose,
                            "contents": contents,
                        })
                    })
                    .collect();
                serde_json::json!({
                    "name": n.name,
                    "address": n.address,
                    "roles": n.roles,
                    "steps": n.steps,
                    "artifacts": artifacts,
                })
            })
            .collect();
        serde_json::json!({
            "cluster": self.cluster,
            "kubernetes_version": self.kubernetes_version,
            "endpoint": self.endpoint,
            "vip": self.vip,
            "frontdoor": self.frontdoor,
            "etcd_topology": self.etcd_topology,
            "pki_pending": self.pki_pending,
            "nodes": nodes,
        })
    }

    /// Nodes grouped by identical step lists, for a compact listing of many similar nodes.
    pub fn step_groups(&self) -> Vec<(Vec<&str>, &[Step])> {
        let mut groups: BTreeMap<Vec<&str>, (usize, Vec<&str>)> = BTreeMap::new();
        let mut order: Vec<(Vec<&str>, usize)> = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let key: Vec<&str> = n.steps.iter().map(|s| s.id.as_str()).collect();
            match groups.get_mut(&key) {
                Some((_, names)) => names.push(&n.name),
                None => {
                    groups.insert(key.clone(), (i, vec![&n.name]));
                    order.push((key, i));
                }
            }
        }
        order
            .into_iter()
            .map(|(key, i)| {
                let names = groups.remove(&key).map(|(_, v)| v).unwrap_or_default();
                (names, self.nodes[i].steps.as_slice())
            })
            .collect()
    }
}
