//! The Plan: per node, the ordered steps and the files kubeha will put there. `kubeha plan`
//! prints a Plan; `kubeha up` executes the same value. Building it is pure.

mod build;
pub mod contents;
pub mod facts;
mod json;
pub mod load;
mod phase;
pub mod pki;
mod step_id;
mod steps;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Serialize;

pub use build::{Bundle, BundleFile, BundleImage, Inputs, KubehaBundle, build};
pub use contents::{Contents, Digest};
pub use inventory::{EtcdTopology, FrontdoorKind, Roles};
pub use phase::{ClusterCheck, Phase, Policy, Rollout};
pub use render::Artifact;
pub use step_id::{StepId, UnknownStep};

/// One thing done on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Unique per node; its phase comes with it.
    pub id: StepId,
    pub description: String,
    /// Artifacts (by path) uploaded before `run`.
    pub uploads: Vec<String>,
    /// Shell run with `sh -eu` on the node, if any.
    pub run: Option<String>,
    /// False for checks that only read.
    pub changes: bool,
}

impl Step {
    pub fn phase(&self) -> Phase {
        self.id.phase()
    }
}

/// Field for field what `--output json` has always shown, `phase` included.
impl Serialize for Step {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Step", 6)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("phase", &self.phase())?;
        st.serialize_field("description", &self.description)?;
        st.serialize_field("uploads", &self.uploads)?;
        st.serialize_field("run", &self.run)?;
        st.serialize_field("changes", &self.changes)?;
        st.end()
    }
}

/// The virtual IP and the prefix length it is added with; shown as `a.b.c.d/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vip {
    pub address: Ipv4Addr,
    pub prefix: u8,
}

impl std::fmt::Display for Vip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl Serialize for Vip {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone)]
pub struct NodePlan {
    pub name: String,
    pub address: String,
    pub roles: Roles,
    pub steps: Vec<Step>,
    pub artifacts: Vec<Artifact>,
}

impl NodePlan {
    pub fn artifact(&self, path: &str) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| a.path == path)
    }

    pub fn step(&self, id: StepId) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// Only a worker: its failure does not stop the rest of the cluster.
    pub fn is_worker_only(&self) -> bool {
        self.roles.worker && !self.roles.control_plane && !self.roles.etcd
    }
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub cluster: String,
    pub kubernetes_version: String,
    pub endpoint: String,
    pub vip: Vip,
    pub frontdoor: FrontdoorKind,
    pub etcd_topology: EtcdTopology,
    /// Set when the PKI store has not been issued yet: certificate files are not in this plan.
    pub pki_pending: bool,
    /// The port every apiserver listens on (behind the VIP's port).
    pub apiserver_port: u16,
    /// The sandbox (pause) image containerd runs: the verify phase runs it on every worker,
    /// since an offline node has it.
    pub sandbox_image: String,
    pub nodes: Vec<NodePlan>,
    /// Every distinct file content of the plan, once; the nodes' artifacts share these.
    pub contents: Contents,
}

impl Plan {
    pub fn node(&self, name: &str) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn control_plane(&self) -> impl Iterator<Item = &NodePlan> {
        self.nodes.iter().filter(|n| n.roles.control_plane)
    }

    /// Whether `node` runs an etcd member: control-plane nodes when stacked, etcd nodes when
    /// external.
    pub fn runs_etcd(&self, node: &NodePlan) -> bool {
        match self.etcd_topology {
            EtcdTopology::Stacked => node.roles.control_plane,
            EtcdTopology::External => node.roles.etcd,
        }
    }

    /// Step ids of every node, sorted, each once.
    pub fn step_ids(&self) -> Vec<StepId> {
        let mut ids: Vec<StepId> = self
            .nodes
            .iter()
            .flat_map(|n| n.steps.iter().map(|s| s.id))
            .collect();
        ids.sort_by_key(|id| id.as_str());
        ids.dedup();
        ids
    }

    pub fn step_count(&self) -> usize {
        self.nodes.iter().map(|n| n.steps.len()).sum()
    }

    pub fn artifact_count(&self) -> usize {
        self.nodes.iter().map(|n| n.artifacts.len()).sum()
    }

    /// The plan as JSON for scripts: see [`Plan::json`].
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.json()).expect("a plan is plain JSON")
    }

    /// The plan as JSON for scripts, serialized as it is written (no tree of values first:
    /// 5,000 nodes are tens of megabytes). Each artifact names its contents by SHA-256; the
    /// text of every distinct content is under `contents`, once, however many nodes get it.
    /// Sensitive artifacts and binaries (kubeha itself) carry their digest and size, never
    /// their bytes.
    pub fn json(&self) -> impl Serialize + '_ {
        json::PlanJson::new(self)
    }

    /// Nodes grouped by identical step lists, for a compact listing of many similar nodes.
    pub fn step_groups(&self) -> Vec<(Vec<&str>, &[Step])> {
        let mut groups: BTreeMap<Vec<StepId>, (usize, Vec<&str>)> = BTreeMap::new();
        let mut order: Vec<(Vec<StepId>, usize)> = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let key: Vec<StepId> = n.steps.iter().map(|s| s.id).collect();
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
