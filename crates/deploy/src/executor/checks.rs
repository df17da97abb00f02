//! What runs between phases across the cluster: the cross-node preflight, the
//! Kubernetes-binary boundary before a phase that needs kubeadm/kubectl, and the checks a
//! phase declares (the VIP held by exactly one node, every etcd member healthy).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use plan::{ClusterCheck, FrontdoorKind, Phase, Plan, StepId};
use tokio::sync::Semaphore;

use super::Options;
use super::node::NodeRun;
use super::report::Stop;
use crate::kubernetes::{self, Limits};
use crate::preflight::{self, ClockSample, Facts, Finding, Severity};
use crate::status;
use crate::transport::Purpose;

/// What a check found: lines that passed, warnings, and the reason to stop if it failed.
#[derive(Default)]
pub(super) struct Checked {
    pub passed: Vec<String>,
    pub warnings: Vec<String>,
    pub stop: Option<Stop>,
}

pub(super) async fn run(
    check: ClusterCheck,
    nodes: &[NodeRun<'_>],
    plan: &Plan,
    phase: Phase,
    opts: &Options,
) -> Checked {
    let one = |r: Result<Option<String>, Stop>| match r {
        Ok(passed) => Checked {
            passed: passed.into_iter().collect(),
            ..Checked::default()
        },
        Err(stop) => Checked {
            stop: Some(stop),
            ..Checked::default()
        },
    };
    match check {
        ClusterCheck::CrossNode => {
            let (errors, warnings): (Vec<Finding>, Vec<Finding>) = cross_node(nodes, plan)
                .await
                .into_iter()
                .partition(|f| f.severity == Severity::Error);
            Checked {
                passed: Vec::new(),
                warnings: warnings.into_iter().map(|f| f.message).collect(),
                stop: (!errors.is_empty()).then(|| Stop::Preflight {
                    findings: errors.into_iter().map(|f| f.message).collect(),
                }),
            }
        }
        ClusterCheck::VipHeldOnce => one(vip_held_once(nodes, plan, phase).await),
        ClusterCheck::EtcdHealthy => one(etcd_healthy(nodes, plan).await),
        ClusterCheck::Kubernetes => {
            // A node that failed this run is reported already: its kubelet may never register,
            // and verify would wait its whole limit for it. The others are checked as ever.
            let failed: Vec<&str> = nodes
                .iter()
                .filter(|n| n.failed())
                .map(|n| n.name())
                .collect();
            one(kubernetes(plan, &failed, opts).await)
        }
    }
}

/// Facts from every node's preflight, clocks as each node's records read saw them, and the
/// VIP's ARP owner as seen from the first control-plane node.
async fn cross_node(nodes: &[NodeRun<'_>], plan: &Plan) -> Vec<Finding> {
    let facts: Vec<(String, Facts)> = nodes
        .iter()
        .filter_map(|n| {
            let out = n.stdout_of(StepId::PreflightHost)?;
            Some((n.name().to_string(), plan::facts::parse(&out)))
        })
        .collect();
    let clocks: Vec<(String, ClockSample)> = nodes
        .iter()
        .filter(|n| !n.failed())
        .filter_map(|n| Some((n.name().to_string(), n.clock?)))
        .collect();
    let mut findings = preflight::cross_node(&facts, &clocks);
    findings.extend(preflight::kubeadm_versions(
        &facts,
        &plan.kubernetes_version,
    ));
    let vip = plan.vip.address.to_string();
    let first_cp = nodes
        .iter()
        .find(|n| !n.failed() && n.plan.roles.control_plane);
    // Whose MAC may answer for the VIP is only known when every control-plane node reported.
    let all_cp_facts = plan
        .control_plane()
        .all(|n| facts.iter().any(|(name, _)| *name == n.name));
    if plan.frontdoor != FrontdoorKind::External
        && all_cp_facts
        && let Some(n) = first_cp
    {
        let script = format!(
            "ping -c 1 -W 1 {vip} >/dev/null 2>&1 || true\nip neigh show {vip} 2>/dev/null || true"
        );
        if let Some(out) = n
            .probe(Purpose::VipNeighbour, script, Duration::from_secs(10))
            .await
        {
            let mac = preflight::parse_neigh(&out);
            findings.extend(preflight::vip_owner(&vip, mac.as_deref(), &facts));
        }
    }
    // Into the log of each node a finding names (by word: a lookup, not a scan of every node
    // per finding).
    let by_name: HashMap<&str, &NodeRun<'_>> = nodes.iter().map(|n| (n.name(), n)).collect();
    for f in &findings {
        let mut named: Vec<&str> = f
            .message
            .split(|c: char| c.is_whitespace() || c == ',' || c == ':')
            .filter(|w| by_name.contains_key(w))
            .collect();
        named.sort_unstable();
        named.dedup();
        for w in named {
            by_name[w].log(&format!("preflight: {f:?}"));
        }
    }
    for n in nodes {
        n.flush_log();
    }
    findings
}

/// Before the first phase that runs kubeadm/kubectl: are the phase's tools there on every
/// node that will run such a step now? If not, stop with a clear boundary instead of a failed
/// step.
pub(super) async fn kubernetes_boundary(
    nodes: &[NodeRun<'_>],
    phase: Phase,
    opts: &Options,
    sem: &Semaphore,
) -> Option<Stop> {
    let tools = phase.policy().tools;
    if tools.is_empty() {
        return None;
    }
    let script = format!(
        "{} && echo present || echo absent",
        tools
            .iter()
            .map(|t| format!("command -v {t} >/dev/null"))
            .collect::<Vec<_>>()
            .join(" && ")
    );
    let needing: Vec<&NodeRun<'_>> = nodes
        .iter()
        .filter(|n| !n.failed() && n.runs_in(phase))
        .collect();
    let probes = needing.iter().map(|n| {
        let script = script.clone();
        async move {
            let _permit = sem.acquire().await.ok();
            let out = n.probe(Purpose::Tools, script, opts.step_timeout).await?;
            (out.trim() == "absent").then(|| n.name().to_string())
        }
    });
    let missing: Vec<String> = join_all(probes).await.into_iter().flatten().collect();
    if missing.is_empty() {
        return None;
    }
    for n in needing
        .iter()
        .filter(|n| missing.iter().any(|m| m == n.name()))
    {
        n.log(&format!(
            "## stop: kubeadm/kubectl not installed; phase {phase} needs them"
        ));
        n.flush_log();
    }
    Some(Stop::KubernetesBinaries {
        nodes: missing,
        phase,
    })
}

/// The VIP is held by exactly one control-plane node, waiting a bounded time for the
/// election. Skipped (`None`) without a front door of ours, or when --only left some
/// control-plane node unconnected (holders cannot be counted then).
async fn vip_held_once(
    nodes: &[NodeRun<'_>],
    plan: &Plan,
    phase: Phase,
) -> Result<Option<String>, Stop> {
    let vip = plan.vip.address.to_string();
    let cps: Vec<&NodeRun<'_>> = nodes
        .iter()
        .filter(|n| n.plan.roles.control_plane && n.transport.is_some())
        .collect();
    if plan.frontdoor == FrontdoorKind::External
        || cps.is_empty()
        || cps.len() != plan.control_plane().count()
    {
        return Ok(None);
    }
    let started = Instant::now();
    let limit = Duration::from_secs(15);
    let script = status::vip_probe(&vip);
    let mut holders: Vec<String>;
    // Bounded: 15 s, a probe every 250 ms.
    loop {
        let probes = cps.iter().map(|n| {
            let script = script.clone();
            async move {
                let out = n
                    .probe(Purpose::VipProbe, script, Duration::from_secs(10))
                    .await?;
                status::parse(n.name(), &out)
                    .vip_held
                    .then(|| n.name().to_string())
            }
        });
        holders = join_all(probes).await.into_iter().flatten().collect();
        if holders.len() == 1 || started.elapsed() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if holders.len() != 1 {
        let detail = if holders.is_empty() {
            format!(
                "no control-plane node holds the VIP {vip} after {} s: check the front door logs (journalctl -u kubeha-frontdoor) and that VRRP (IP protocol 112) passes between the nodes",
                limit.as_secs()
            )
        } else {
            format!(
                "the VIP {vip} is held by {} at once: VRRP adverts do not reach each other (firewall, or unicast peers wrong)",
                holders.join(" and ")
            )
        };
        return Err(Stop::Cluster {
            check: ClusterCheck::VipHeldOnce,
            detail,
        });
    }
    Ok(Some(format!(
        "VIP {vip} held by {} only ({:.1} s after the {phase} phase)",
        holders[0],
        started.elapsed().as_secs_f64(),
    )))
}

/// Every etcd member (stacked or external) that this run reached answers `/health`.
async fn etcd_healthy(nodes: &[NodeRun<'_>], plan: &Plan) -> Result<Option<String>, Stop> {
    let members: Vec<&NodeRun<'_>> = nodes
        .iter()
        .filter(|n| n.transport.is_some() && !n.failed() && plan.runs_etcd(n.plan))
        .collect();
    let probes = members.iter().map(|n| async move {
        let out = n
            .probe(
                Purpose::EtcdProbe,
                status::etcd_probe(&n.plan.address),
                Duration::from_secs(20),
            )
            .await?;
        Some(
            status::parse(n.name(), &out)
                .etcd
                .is_some_and(|e| e.healthy),
        )
    });
    let results = join_all(probes).await;
    let unhealthy: Vec<String> = results
        .iter()
        .zip(&members)
        .filter(|(r, _)| **r != Some(true))
        .map(|(_, n)| n.name().to_string())
        .collect();
    if !unhealthy.is_empty() {
        return Err(Stop::Cluster {
            check: ClusterCheck::EtcdHealthy,
            detail: format!(
                "etcd on {} is not healthy: run `kubeha status` and read the etcd unit's log there",
                unhealthy.join(", ")
            ),
        });
    }
    Ok((!members.is_empty()).then(|| format!("etcd: {} member(s) healthy", members.len())))
}

/// The cluster through its API, from this machine (`crate::kubernetes::verify`).
async fn kubernetes(plan: &Plan, failed: &[&str], opts: &Options) -> Result<Option<String>, Stop> {
    let Some(kubeconfig) = &opts.kubeconfig else {
        return Ok(None);
    };
    let mut target = kubernetes::Target::from_plan(plan, kubeconfig);
    target.nodes.retain(|n| !failed.contains(&n.as_str()));
    let workers: Vec<&str> = plan
        .nodes
        .iter()
        .filter(|n| n.roles.worker && !failed.contains(&n.name.as_str()))
        .map(|n| n.name.as_str())
        .collect();
    kubernetes::verify(&target, &workers, &plan.sandbox_image, Limits::default())
        .await
        .map(Some)
        .map_err(|detail| Stop::Cluster {
            check: ClusterCheck::Kubernetes,
            detail,
        })
}
