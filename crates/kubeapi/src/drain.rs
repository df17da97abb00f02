//! Cordon and drain, as `kubectl drain --ignore-daemonsets --delete-emptydir-data --force`
//! does it: every pod on the node is evicted through the Eviction API, so PodDisruptionBudgets
//! decide the pace, except DaemonSet pods (their controller ignores cordons and would put
//! them back) and static pods (the kubelet's, not the API's). Which pods go is pure
//! (`to_evict`); `Cluster::drain` only talks to the API.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, EvictParams, ListParams};
use serde::Serialize;

use crate::{ApiError, Cluster};

/// What a drain did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Drained {
    /// `namespace/name` of every pod evicted.
    pub evicted: Vec<String>,
    /// `namespace/name` and why it stays (DaemonSet, static pod, finished).
    pub left: Vec<(String, String)>,
    pub millis: u64,
}

/// A pod on the node, as the drain sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodOnNode {
    pub namespace: String,
    pub name: String,
    /// Why it is not evicted, if it is not.
    pub stays: Option<&'static str>,
    /// Already being deleted: waited for, not evicted again.
    pub deleting: bool,
}

impl PodOnNode {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// How the drain treats `pod`.
pub fn classify(pod: &Pod) -> PodOnNode {
    let meta = &pod.metadata;
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let stays = if meta
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"))
    {
        Some("static pod: the kubelet runs it, kubeadm reset removes it")
    } else if meta
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "DaemonSet" && o.controller == Some(true))
    {
        Some("DaemonSet pod: goes with the node")
    } else if matches!(phase, Some("Succeeded" | "Failed")) && meta.deletion_timestamp.is_none() {
        // Evicted pods pass through Succeeded on their way out: those are waited for.
        Some("finished")
    } else {
        None
    };
    PodOnNode {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        stays,
        deleting: meta.deletion_timestamp.is_some(),
    }
}

/// The pods a drain still has to move off the node.
pub fn to_evict(pods: &[PodOnNode]) -> impl Iterator<Item = &PodOnNode> {
    pods.iter().filter(|p| p.stays.is_none())
}

impl Cluster {
    /// Marks `node` unschedulable. `Ok(false)`: the API has no such node.
    pub async fn cordon(&self, node: &str) -> Result<bool, ApiError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        match nodes.cordon(node).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(self.err(format!("cordon {node}: {e}"))),
        }
    }

    /// Deletes the Node object. `Ok(false)`: it was gone already.
    pub async fn delete_node(&self, node: &str) -> Result<bool, ApiError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        match nodes.delete(node, &DeleteParams::default()).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(self.err(format!("delete node {node}: {e}"))),
        }
    }

    async fn pods_on(&self, node: &str) -> Result<Vec<PodOnNode>, ApiError> {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
        let list = pods
            .list(&lp)
            .await
            .map_err(|e| self.err(format!("list pods on {node}: {e}")))?;
        Ok(list.items.iter().map(classify).collect())
    }

    /// Evicts every pod `to_evict` names until none is left on `node`, at most `limit`. An
    /// eviction a PodDisruptionBudget refuses (429) is tried again each second; at the limit,
    /// the error names the pods still there and the last refusal. The node should be cordoned
    /// first, or the scheduler puts pods back.
    pub async fn drain(&self, node: &str, limit: Duration) -> Result<Drained, ApiError> {
        let started = Instant::now();
        let deadline = started + limit;
        let mut evicted: Vec<String> = Vec::new();
        let mut refused = String::new();
        // Bounded by `limit`: one round a second.
        loop {
            let pods = match self.pods_on(node).await {
                Ok(p) => p,
                // The API may be failing over: asked again next round, until the limit.
                Err(e) if Instant::now() < deadline => {
                    refused = e.to_string();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let pending: Vec<&PodOnNode> = to_evict(&pods).collect();
            if pending.is_empty() {
                let left = pods
                    .iter()
                    .filter_map(|p| p.stays.map(|why| (p.key(), why.to_string())))
                    .collect();
                return Ok(Drained {
                    evicted,
                    left,
                    millis: started.elapsed().as_millis() as u64,
                });
            }
            if Instant::now() >= deadline {
                let names: Vec<String> = pending.iter().map(|p| p.key()).collect();
                return Err(ApiError::Timeout(format!(
                    "draining {node}: {} pod(s) still there after {} s ({}){}",
                    names.len(),
                    limit.as_secs(),
                    names.join(", "),
                    if refused.is_empty() {
                        String::new()
                    } else {
                        format!("; last refusal or error: {refused}")
                    }
                )));
            }
            for p in pending.iter().filter(|p| !p.deleting) {
                let pods: Api<Pod> = Api::namespaced(self.client.clone(), &p.namespace);
                match pods.evict(&p.name, &EvictParams::default()).await {
                    Ok(_) => {
                        if !evicted.contains(&p.key()) {
                            evicted.push(p.key());
                        }
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    // A PodDisruptionBudget says not now.
                    Err(kube::Error::Api(s)) if s.code == 429 => {
                        refused = format!("{}: {}", p.key(), s.message);
                    }
                    // Not fatal before the limit: the API may be failing over.
                    Err(e) => refused = format!("evict {}: {e}", p.key()),
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn daemonset_static_and_finished_pods_stay_the_rest_are_evicted() {
        let pods: Vec<PodOnNode> = [
            pod(serde_json::json!({"metadata": {"namespace": "kube-system", "name": "kube-proxy-x",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "kube-proxy", "uid": "1", "controller": true}]}})),
            pod(serde_json::json!({"metadata": {"namespace": "kube-system", "name": "kube-apiserver-cp1",
                "annotations": {"kubernetes.io/config.mirror": "abc"}}})),
            pod(serde_json::json!({"metadata": {"namespace": "default", "name": "job-1"}, "status": {"phase": "Succeeded"}})),
            pod(serde_json::json!({"metadata": {"namespace": "default", "name": "web-1",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "2", "controller": true}]}})),
            pod(serde_json::json!({"metadata": {"namespace": "default", "name": "bare"}, "status": {"phase": "Running"}})),
        ]
        .iter()
        .map(classify)
        .collect();
        let evict: Vec<String> = to_evict(&pods).map(|p| p.key()).collect();
        assert_eq!(evict, ["default/web-1", "default/bare"]);
        assert!(pods[0].stays.unwrap().starts_with("DaemonSet"));
        assert!(pods[1].stays.unwrap().starts_with("static"));
        assert_eq!(pods[2].stays, Some("finished"));
    }

    #[test]
    fn a_pod_being_deleted_is_waited_for() {
        let p = classify(&pod(
            serde_json::json!({"metadata": {"namespace": "a", "name": "b",
            "deletionTimestamp": "2026-12-02T00:00:00Z"}}),
        ));
        assert!(p.deleting);
        assert_eq!(p.stays, None);
    }
}
