//! The Kubernetes API as kubeha reads and writes it: kube-rs with the admin kubeconfig, through
//! the VIP endpoint it names or straight to one apiserver. `up`'s verify phase, `kubeha
//! status`, the lab and its drill use this instead of ssh + kubectl.
//!
//! What is judged is pure (`judge_nodes`); this module only talks to the API.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

mod drain;
mod judge;

pub use drain::{Drained, PodOnNode, classify, to_evict};
pub use judge::{NodeState, NodeVerdict, judge_nodes, node_state};
pub use k8s_openapi;
pub use kube;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("{server}: {message}")]
    Request { server: String, message: String },
    #[error("{0}")]
    Timeout(String),
}

/// A client of one cluster through one server URL.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    server: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("server", &self.server)
            .finish()
    }
}

impl Cluster {
    /// A client from the kubeconfig at `path`; `server` (e.g. `https://198.18.0.11:6443`)
    /// replaces the kubeconfig's server, to ask one apiserver rather than the VIP. Every
    /// request gives up after `timeout` (the cluster CA is the only trust anchor: the
    /// kubeconfig's).
    pub async fn connect(
        path: &Path,
        server: Option<&str>,
        timeout: Duration,
    ) -> Result<Cluster, ApiError> {
        let bad = |message: String| ApiError::Kubeconfig {
            path: path.display().to_string(),
            message,
        };
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
        let mut config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| bad(e.to_string()))?;
        if let Some(s) = server {
            config.cluster_url = s.parse().map_err(|e| bad(format!("server {s}: {e}")))?;
        }
        config.connect_timeout = Some(timeout);
        config.read_timeout = Some(timeout);
        config.write_timeout = Some(timeout);
        let server = config.cluster_url.to_string();
        let client = kube::Client::try_from(config).map_err(|e| bad(e.to_string()))?;
        Ok(Cluster { client, server })
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    pub fn server(&self) -> &str {
        self.server.trim_end_matches('/')
    }

    fn err(&self, e: impl std::fmt::Display) -> ApiError {
        ApiError::Request {
            server: self.server().to_string(),
            message: e.to_string(),
        }
    }

    /// Every node the API knows, with its roles and Ready condition.
    pub async fn nodes(&self) -> Result<Vec<NodeState>, ApiError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let list = nodes
            .list(&ListParams::default())
            .await
            .map_err(|e| self.err(e))?;
        Ok(list.items.iter().map(node_state).collect())
    }

    /// `GET /readyz` as text (`ok` when ready).
    pub async fn readyz(&self) -> Result<String, ApiError> {
        let req = http::Request::get("/readyz")
            .body(Vec::new())
            .map_err(|e| self.err(e))?;
        self.client
            .request_text(req)
            .await
            .map(|t| t.trim().to_string())
            .map_err(|e| self.err(e))
    }

    /// Runs `image` (already on the node: pull policy Never) as pod `name` in `namespace`,
    /// bound to `node` without the scheduler, waits until it is Running (at most `limit`), and
    /// deletes it. A pod of that name left by an earlier run is replaced. Returns how long it
    /// took to run.
    pub async fn run_pod_on(
        &self,
        namespace: &str,
        name: &str,
        node: &str,
        image: &str,
        limit: Duration,
    ) -> Result<Duration, ApiError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "name": name, "labels": { "app.kubernetes.io/managed-by": "kubeha" } },
            "spec": {
                "nodeName": node,
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
                "tolerations": [{ "operator": "Exists" }],
                "containers": [{ "name": "pause", "image": image, "imagePullPolicy": "Never" }]
            }
        }))
        .map_err(|e| self.err(e))?;
        let started = Instant::now();
        self.delete_pod(&pods, name, limit).await?;
        // An earlier try that reached the apiserver before its answer was lost made the pod.
        let post = PostParams::default();
        match transport_retried(|| pods.create(&post, &pod)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(self.err(format!("create pod {namespace}/{name}: {e}"))),
        }
        let outcome = self.wait_running(&pods, name, node, limit).await;
        // Cleaned up either way; a failed delete only leaves a pause pod behind.
        let _ = self.delete_pod(&pods, name, limit).await;
        outcome.map(|()| started.elapsed())
    }

    async fn wait_running(
        &self,
        pods: &Api<Pod>,
        name: &str,
        node: &str,
        limit: Duration,
    ) -> Result<(), ApiError> {
        let deadline = Instant::now() + limit;
        let mut last = String::from("not created yet");
        // Bounded by `limit`, one read every 500 ms.
        while Instant::now() < deadline {
            match pods.get_opt(name).await {
                Ok(Some(p)) => {
                    let status = p.status.unwrap_or_default();
                    let phase = status.phase.unwrap_or_default();
                    if phase == "Running" {
                        return Ok(());
                    }
                    if phase == "Failed" || phase == "Succeeded" {
                        return Err(self.err(format!("pod {name} on {node} ended: {phase}")));
                    }
                    last = waiting_reason(&status.container_statuses.unwrap_or_default())
                        .unwrap_or(phase);
                }
                Ok(None) => last = "gone".into(),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(ApiError::Timeout(format!(
            "pod {name} on {node} not Running after {} s (last: {last}): read the kubelet's log on {node}",
            limit.as_secs()
        )))
    }

    async fn delete_pod(
        &self,
        pods: &Api<Pod>,
        name: &str,
        limit: Duration,
    ) -> Result<(), ApiError> {
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        match transport_retried(|| pods.delete(name, &dp)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(self.err(format!("delete pod {name}: {e}"))),
        }
        let deadline = Instant::now() + limit;
        // Bounded by `limit`: a deleted pod disappears once its kubelet confirms.
        while Instant::now() < deadline {
            if matches!(pods.get_opt(name).await, Ok(None)) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Err(ApiError::Timeout(format!(
            "pod {name} still there {} s after its delete",
            limit.as_secs()
        )))
    }
}

/// How long a request that never reached an apiserver's answer is tried again: the VIP moving
/// to another holder (a front door restarted, a holder that died) drops connections for a few
/// seconds, keepalived's at 1 s adverts for up to ~4 s.
const TRANSPORT_RETRY: Duration = Duration::from_secs(15);

/// Runs `call` again, once a second for up to [`TRANSPORT_RETRY`], while it fails without an
/// answer from the API (connection refused, reset, timed out); an API answer is final.
async fn transport_retried<T, F, Fut>(mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let deadline = Instant::now() + TRANSPORT_RETRY;
    // Bounded by the deadline, one try a second.
    loop {
        match call().await {
            Err(e) if !matches!(e, kube::Error::Api(_)) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            r => return r,
        }
    }
}

fn waiting_reason(statuses: &[k8s_openapi::api::core::v1::ContainerStatus]) -> Option<String> {
    statuses.iter().find_map(|c| {
        let w = c.state.as_ref()?.waiting.as_ref()?;
        Some(match &w.message {
            Some(m) => format!("{}: {m}", w.reason.clone().unwrap_or_default()),
            None => w.reason.clone().unwrap_or_default(),
        })
    })
}
