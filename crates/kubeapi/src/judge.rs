//! Pure judgements over what the API returned.

use k8s_openapi::api::core::v1::Node;
use serde::Serialize;

/// A node as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeState {
    pub name: String,
    /// From the `node-role.kubernetes.io/<role>` labels, sorted.
    pub roles: Vec<String>,
    pub ready: bool,
}

pub fn node_state(n: &Node) -> NodeState {
    const ROLE: &str = "node-role.kubernetes.io/";
    let mut roles: Vec<String> = n
        .metadata
        .labels
        .iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix(ROLE).map(str::to_string))
        .collect();
    roles.sort();
    let ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    NodeState {
        name: n.metadata.name.clone().unwrap_or_default(),
        roles,
        ready,
    }
}

/// The inventory's nodes against the API's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeVerdict {
    pub ready: Vec<String>,
    /// Registered, not Ready.
    pub not_ready: Vec<String>,
    /// In the inventory, not registered.
    pub missing: Vec<String>,
    /// Registered, not in the inventory (left over after a removal, or another installer's).
    pub unknown: Vec<String>,
}

impl NodeVerdict {
    pub fn all_ready(&self) -> bool {
        self.not_ready.is_empty() && self.missing.is_empty()
    }

    /// One line for a person: `4 of 5 nodes Ready (not Ready: worker2)`.
    pub fn summary(&self) -> String {
        let want = self.ready.len() + self.not_ready.len() + self.missing.len();
        let mut s = format!("{} of {want} nodes Ready", self.ready.len());
        let mut parts = Vec::new();
        if !self.not_ready.is_empty() {
            parts.push(format!("not Ready: {}", self.not_ready.join(", ")));
        }
        if !self.missing.is_empty() {
            parts.push(format!("not registered: {}", self.missing.join(", ")));
        }
        if !self.unknown.is_empty() {
            parts.push(format!("not in the inventory: {}", self.unknown.join(", ")));
        }
        if !parts.is_empty() {
            s.push_str(&format!(" ({})", parts.join("; ")));
        }
        s
    }
}

pub fn judge_nodes<S: AsRef<str>>(expected: &[S], observed: &[NodeState]) -> NodeVerdict {
    let mut v = NodeVerdict::default();
    for name in expected.iter().map(AsRef::as_ref) {
        match observed.iter().find(|n| n.name == name) {
            Some(n) if n.ready => v.ready.push(name.to_string()),
            Some(_) => v.not_ready.push(name.to_string()),
            None => v.missing.push(name.to_string()),
        }
    }
    v.unknown = observed
        .iter()
        .filter(|n| !expected.iter().any(|e| e.as_ref() == n.name))
        .map(|n| n.name.clone())
        .collect();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(json: serde_json::Value) -> Node {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn roles_and_ready_come_from_labels_and_the_ready_condition() {
        let n = node(serde_json::json!({
            "metadata": { "name": "master1", "labels": {
                "node-role.kubernetes.io/control-plane": "",
                "kubernetes.io/hostname": "master1" } },
            "status": { "conditions": [
                { "type": "MemoryPressure", "status": "False" },
                { "type": "Ready", "status": "True" } ] }
        }));
        assert_eq!(
            node_state(&n),
            NodeState {
                name: "master1".into(),
                roles: vec!["control-plane".into()],
                ready: true
            }
        );
        let n = node(serde_json::json!({
            "metadata": { "name": "worker1" },
            "status": { "conditions": [ { "type": "Ready", "status": "Unknown" } ] }
        }));
        assert!(!node_state(&n).ready);
        assert!(node_state(&n).roles.is_empty());
        let n = node(serde_json::json!({ "metadata": { "name": "new" } }));
        assert!(!node_state(&n).ready, "no status yet is not Ready");
    }

    fn st(name: &str, ready: bool) -> NodeState {
        NodeState {
            name: name.into(),
            roles: vec![],
            ready,
        }
    }

    #[test]
    fn every_inventory_node_must_be_registered_and_ready() {
        let v = judge_nodes(
            &["m1", "m2", "w1", "w2"],
            &[
                st("m1", true),
                st("m2", true),
                st("w1", false),
                st("old", true),
            ],
        );
        assert_eq!(v.ready, ["m1", "m2"]);
        assert_eq!(v.not_ready, ["w1"]);
        assert_eq!(v.missing, ["w2"]);
        assert_eq!(v.unknown, ["old"]);
        assert!(!v.all_ready());
        assert_eq!(
            v.summary(),
            "2 of 4 nodes Ready (not Ready: w1; not registered: w2; not in the inventory: old)"
        );
        let v = judge_nodes(&["m1"], &[st("m1", true), st("old", false)]);
        assert!(
            v.all_ready(),
            "a node outside the inventory does not fail the check"
        );
        assert_eq!(
            v.summary(),
            "1 of 1 nodes Ready (not in the inventory: old)"
        );
    }
}
