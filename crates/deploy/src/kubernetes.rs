//! The cluster as its Kubernetes API sees it, read from this machine with kube-rs and the
//! admin kubeconfig of the PKI store: through the VIP endpoint, and each apiserver directly.
//! `up`'s verify phase waits for it to be whole; `kubeha status` shows it as it is.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use kubeapi::{Cluster, NodeState, judge_nodes};
use serde::Serialize;

/// Where the API is and whom to ask.
#[derive(Debug, Clone)]
pub struct Target {
    pub kubeconfig: PathBuf,
    /// `host:port` of the VIP endpoint.
    pub endpoint: String,
    /// (name, address) of every control-plane node.
    pub apiservers: Vec<(String, String)>,
    pub apiserver_port: u16,
    /// Nodes that run a kubelet and must register.
    pub nodes: Vec<String>,
}

impl Target {
    pub fn from_plan(plan: &plan::Plan, kubeconfig: &Path) -> Target {
        Target {
            kubeconfig: kubeconfig.to_path_buf(),
            endpoint: plan.endpoint.clone(),
            apiservers: plan
                .control_plane()
                .map(|n| (n.name.clone(), n.address.clone()))
                .collect(),
            apiserver_port: plan.apiserver_port,
            nodes: plan
                .nodes
                .iter()
                .filter(|n| n.roles.control_plane || n.roles.worker)
                .map(|n| n.name.clone())
                .collect(),
        }
    }

    pub fn from_inventory(inv: &inventory::Inventory, kubeconfig: &Path) -> Target {
        Target {
            kubeconfig: kubeconfig.to_path_buf(),
            endpoint: inv.endpoint.host_port(),
            apiservers: inv
                .nodes
                .iter()
                .filter(|n| n.roles.control_plane)
                .map(|n| (n.name.clone(), n.address.to_string()))
                .collect(),
            apiserver_port: inv.endpoint.apiserver_port,
            nodes: inv
                .nodes
                .iter()
                .filter(|n| n.roles.control_plane || n.roles.worker)
                .map(|n| n.name.clone())
                .collect(),
        }
    }

    fn vip_url(&self) -> String {
        format!("https://{}", self.endpoint)
    }

    async fn through_vip(&self) -> Result<Cluster, kubeapi::ApiError> {
        Cluster::connect(&self.kubeconfig, Some(&self.vip_url()), REQUEST).await
    }
}

/// One request's limit: a front door that is failing over answers within this.
const REQUEST: Duration = Duration::from_secs(5);

/// What `kubeha status` shows of the API.
#[derive(Debug, Clone, Serialize)]
pub struct ApiStatus {
    pub server: String,
    /// Set when the API could not be read through the VIP.
    pub error: Option<String>,
    pub nodes: Vec<NodeState>,
    pub summary: String,
    pub apiservers: Vec<ApiserverStatus>,
    /// Every inventory node Ready and every apiserver ready.
    pub healthy: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiserverStatus {
    pub name: String,
    pub server: String,
    /// `GET /readyz`: `ok`, or what failed.
    pub readyz: String,
    pub ready: bool,
}

/// Every apiserver's `/readyz`, asked directly (not through the VIP), in parallel.
async fn apiservers(t: &Target) -> Vec<ApiserverStatus> {
    join_all(t.apiservers.iter().map(|(name, address)| async move {
        let server = format!("https://{address}:{}", t.apiserver_port);
        let readyz = match Cluster::connect(&t.kubeconfig, Some(&server), REQUEST).await {
            Ok(c) => c.readyz().await.unwrap_or_else(|e| e.to_string()),
            Err(e) => e.to_string(),
        };
        ApiserverStatus {
            name: name.to_string(),
            ready: readyz == "ok",
            server,
            readyz,
        }
    }))
    .await
}

/// The API as it is now (one read each; no waiting).
pub async fn status(t: &Target) -> ApiStatus {
    let server = t.vip_url();
    let nodes = match t.through_vip().await {
        Ok(c) => c.nodes().await,
        Err(e) => Err(e),
    };
    let apiservers = apiservers(t).await;
    let (nodes, error) = match nodes {
        Ok(n) => (n, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let verdict = judge_nodes(&t.nodes, &nodes);
    let summary = match &error {
        Some(e) => format!("cannot read the API through {server}: {e}"),
        None => verdict.summary(),
    };
    ApiStatus {
        healthy: error.is_none() && verdict.all_ready() && apiservers.iter().all(|a| a.ready),
        server,
        error,
        nodes,
        summary,
        apiservers,
    }
}

/// How long `verify` waits for each part.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub nodes_ready: Duration,
    pub apiserver_ready: Duration,
    pub pod_running: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            nodes_ready: Duration::from_secs(600),
            apiserver_ready: Duration::from_secs(120),
            pod_running: Duration::from_secs(180),
        }
    }
}

/// `up`'s last check: waits (bounded) until every node is Ready through the VIP and every
/// apiserver is ready, then runs the sandbox image on every worker (every node if there are
/// none) and waits for it to be Running. One line on success; the reason and what to do on
/// failure.
pub async fn verify(
    t: &Target,
    workers: &[&str],
    sandbox_image: &str,
    limits: Limits,
) -> Result<String, String> {
    let started = Instant::now();
    let vip = t.vip_url();
    let api = t
        .through_vip()
        .await
        .map_err(|e| format!("cannot use the admin kubeconfig: {e}"))?;
    // Bounded: nodes_ready, one list every 2 s.
    let deadline = Instant::now() + limits.nodes_ready;
    let ready = loop {
        let verdict = api.nodes().await.map(|n| judge_nodes(&t.nodes, &n));
        if let Err(e) = &verdict
            && e.to_string().contains("certificate")
        {
            return Err(format!(
                "{vip} does not present a certificate the cluster CA signed ({e}): is the endpoint's port the apiservers' front door?"
            ));
        }
        match verdict {
            Ok(v) if v.all_ready() => break v,
            _ if Instant::now() >= deadline => {
                let why = match verdict {
                    Ok(v) => v.summary(),
                    Err(e) => format!("the API does not answer: {e}"),
                };
                return Err(format!(
                    "through {vip} after {} s: {why}; read the kubelet log of the nodes named (journalctl -u kubelet)",
                    limits.nodes_ready.as_secs()
                ));
            }
            _ => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    };
    // Bounded: apiserver_ready, one round every second.
    let deadline = Instant::now() + limits.apiserver_ready;
    loop {
        let all = apiservers(t).await;
        let not: Vec<String> = all
            .iter()
            .filter(|a| !a.ready)
            .map(|a| format!("{} ({}: {})", a.name, a.server, a.readyz))
            .collect();
        if not.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "apiserver /readyz not ok after {} s on {}: read its log (crictl logs on that node)",
                limits.apiserver_ready.as_secs(),
                not.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let on: Vec<&str> = if workers.is_empty() {
        t.nodes.iter().map(String::as_str).collect()
    } else {
        workers.to_vec()
    };
    let runs = join_all(on.iter().map(|node| {
        let api = &api;
        async move {
            let name = format!("kubeha-verify-{node}");
            api.run_pod_on("default", &name, node, sandbox_image, limits.pod_running)
                .await
                .map(|d| format!("{node} ({:.1} s)", d.as_secs_f64()))
                .map_err(|e| format!("{node}: {e}"))
        }
    }))
    .await;
    let (ran, failed): (Vec<_>, Vec<_>) = runs.into_iter().partition(Result::is_ok);
    if !failed.is_empty() {
        let failed: Vec<String> = failed.into_iter().filter_map(Result::err).collect();
        return Err(format!(
            "{sandbox_image} did not run: {}",
            failed.join("; ")
        ));
    }
    let ran: Vec<String> = ran.into_iter().filter_map(Result::ok).collect();
    Ok(format!(
        "kubernetes through {vip}: {}; /readyz ok on {}; {sandbox_image} Running on {} ({:.1} s in all)",
        ready.summary(),
        t.apiservers
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        ran.join(", "),
        started.elapsed().as_secs_f64()
    ))
}
