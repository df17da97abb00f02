//! `kubeha remove`: nodes leave the cluster the way an operator would take them out by hand,
//! one at a time, and the nodes that stay stop expecting them.
//!
//! What happens is decided first, from the inventory and the cluster as `kubeha status` sees
//! it (`decide`, pure): which nodes, in which order, with which actions, and whether the
//! removal would break etcd's quorum or leave no apiserver (then it is refused and nothing is
//! touched). `--dry-run` shows that decision. Then, per node: cordon and drain (evictions, so
//! PodDisruptionBudgets hold), the front door stopped (a holder hands the VIP over), its etcd
//! member removed through a member that stays, `kubeadm reset`, the Node object deleted. A
//! node that cannot be reached skips what needs it. Last, the nodes that stay get the Plan of
//! the inventory without the removed nodes (front door peers and backends, /etc/hosts, pod
//! routes), control-plane nodes one at a time with the VIP holder last.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use inventory::{Cni, FrontdoorKind, Inventory, Node};
use serde::Serialize;

use crate::Connections;
use crate::status::ClusterStatus;
use crate::transport::{Exec, Transport};
use crate::upload::{tail_lines as tail, with_vars};

mod sh {
    pub const MEMBERS: &str = include_str!("scripts/members.sh");
    pub const MEMBER_REMOVE: &str = include_str!("scripts/member-remove.sh");
    pub const STOP_FRONTDOOR: &str = include_str!("scripts/stop-frontdoor.sh");
    pub const RESET: &str = include_str!("scripts/reset.sh");
}

/// What the cluster looks like now, as far as a removal cares.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub unreachable: BTreeSet<String>,
    pub etcd_healthy: BTreeSet<String>,
    pub apiserver_ready: BTreeSet<String>,
    pub vip_holders: Vec<String>,
    /// The Node objects the API has; `None` when the API could not be read.
    pub registered: Option<BTreeSet<String>>,
}

impl Facts {
    pub fn from_status(st: &ClusterStatus) -> Facts {
        Facts {
            unreachable: st
                .nodes
                .iter()
                .filter(|n| !n.reachable)
                .map(|n| n.name.clone())
                .collect(),
            etcd_healthy: st
                .nodes
                .iter()
                .filter(|n| n.etcd.as_ref().is_some_and(|e| e.healthy))
                .map(|n| n.name.clone())
                .collect(),
            apiserver_ready: st
                .kubernetes
                .iter()
                .flat_map(|k| &k.apiservers)
                .filter(|a| a.ready)
                .map(|a| a.name.clone())
                .collect(),
            vip_holders: st.vip_holders.clone(),
            registered: st
                .kubernetes
                .as_ref()
                .filter(|k| k.error.is_none())
                .map(|k| k.nodes.iter().map(|n| n.name.clone()).collect()),
        }
    }
}

/// One thing done to a node that leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Cordon, then evict every pod but DaemonSet and static pods.
    Drain,
    /// Stop and disable the front door (it hands the VIP over if it holds it).
    StopFrontDoor,
    /// `member remove` through a member that stays.
    RemoveEtcdMember,
    /// `kubeadm reset`, an external member's unit stopped and data kept aside, records cleared.
    Reset,
    /// Delete the Node object.
    DeleteNode,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Drain => "cordon and drain",
            Action::StopFrontDoor => "stop the front door",
            Action::RemoveEtcdMember => "remove the etcd member",
            Action::Reset => "kubeadm reset",
            Action::DeleteNode => "delete the Node object",
        })
    }
}

/// A node that leaves, and what is done to it, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leaving {
    pub name: String,
    pub roles: Vec<&'static str>,
    pub reachable: bool,
    pub actions: Vec<Action>,
    /// What is left out because the node cannot be reached.
    pub skipped: Vec<Action>,
}

/// Everything a removal will do: what `--dry-run` prints and what runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removal {
    pub leaving: Vec<Leaving>,
    /// The nodes that stay get the new Plan in these rounds, one after another: each
    /// control-plane node alone (the VIP holder last), then all the others at once.
    pub rounds: Vec<Vec<String>>,
    /// `cni: bridge`: (node, pod subnet) that cluster.yaml must pin before the removed nodes'
    /// entries are deleted, or those nodes' /24 would move.
    pub pins: Vec<(String, String)>,
    /// Nodes in the inventory but not in the cluster (removed earlier and still listed, or
    /// never joined): a removal neither joins nor updates them.
    pub left_alone: Vec<String>,
    pub warnings: Vec<String>,
}

impl Removal {
    /// What the nodes that stay are given: the inventory without the leaving nodes and the
    /// ones left alone.
    pub fn remaining(&self, inv: &Inventory) -> Inventory {
        let out: Vec<&str> = self
            .leaving
            .iter()
            .map(|l| l.name.as_str())
            .chain(self.left_alone.iter().map(String::as_str))
            .collect();
        inv.without(&out)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("no node `{name}` in the inventory (it lists {known}): nothing was changed")]
    UnknownNode { name: String, known: String },
    #[error("refused: {0}; nothing was changed")]
    Refused(String),
    #[error("{node}, {action}: {detail}. {hint}")]
    Step {
        node: String,
        action: Action,
        detail: String,
        hint: String,
    },
    #[error("the API through the VIP: {0}; nothing was changed")]
    Api(String),
    #[error("the nodes that stay, round {round} ({nodes}): {detail}")]
    Update {
        round: usize,
        nodes: String,
        detail: String,
    },
}

impl RemoveError {
    /// The input was wrong or the removal refused: nothing was touched.
    pub fn changed_nothing(&self) -> bool {
        matches!(
            self,
            RemoveError::UnknownNode { .. } | RemoveError::Refused(_)
        )
    }
}

/// The smallest number of members that still decides: a majority.
fn quorum(members: usize) -> usize {
    members / 2 + 1
}

/// The inventory's nodes named `names`, once each, in that order; an unknown name is bad
/// input. `decide` starts with it, and the CLI calls it before reaching any node.
pub fn nodes_named<'a>(inv: &'a Inventory, names: &[String]) -> Result<Vec<&'a Node>, RemoveError> {
    let mut chosen: Vec<&Node> = Vec::new();
    for name in names {
        let Some(n) = inv.node(name) else {
            return Err(RemoveError::UnknownNode {
                name: name.clone(),
                known: inv
                    .nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        if !chosen.iter().any(|c| c.name == n.name) {
            chosen.push(n);
        }
    }
    Ok(chosen)
}

/// Decides what removing `names` does, or refuses. Nodes that cannot be reached leave first
/// (taking a dead member out first raises the share of healthy ones), then the others in the
/// order given.
pub fn decide(inv: &Inventory, names: &[String], facts: &Facts) -> Result<Removal, RemoveError> {
    let mut chosen = nodes_named(inv, names)?;
    chosen.sort_by_key(|n| !facts.unreachable.contains(&n.name));
    let gone: Vec<&str> = chosen.iter().map(|n| n.name.as_str()).collect();
    let listed = gone.join(", ");
    let staying_cp: Vec<&Node> = inv
        .control_plane()
        .filter(|n| !gone.contains(&n.name.as_str()))
        .collect();
    if staying_cp.is_empty() {
        return Err(RemoveError::Refused(format!(
            "removing {listed} would leave no control-plane node: keep at least one"
        )));
    }
    if !staying_cp
        .iter()
        .any(|n| facts.apiserver_ready.contains(&n.name))
    {
        let names: Vec<&str> = staying_cp.iter().map(|n| n.name.as_str()).collect();
        return Err(RemoveError::Refused(format!(
            "removing {listed} would leave no ready apiserver (not ready now: {}): bring one of them back first",
            names.join(", ")
        )));
    }
    let mut warnings = Vec::new();
    let mut members: Vec<&str> = inv.etcd_members().map(|n| n.name.as_str()).collect();
    for n in &chosen {
        let Some(i) = members.iter().position(|m| *m == n.name) else {
            continue;
        };
        let healthy = members
            .iter()
            .filter(|m| facts.etcd_healthy.contains(**m))
            .count();
        if healthy < quorum(members.len()) {
            return Err(RemoveError::Refused(format!(
                "etcd has no quorum ({healthy} of {} members healthy), so removing {}'s member cannot commit: bring members back, or restore a snapshot (kubeha etcd restore)",
                members.len(),
                n.name
            )));
        }
        members.remove(i);
        let healthy_after = members
            .iter()
            .filter(|m| facts.etcd_healthy.contains(**m))
            .count();
        if members.is_empty() {
            return Err(RemoveError::Refused(format!(
                "removing {listed} would remove every etcd member"
            )));
        }
        if healthy_after < quorum(members.len()) {
            return Err(RemoveError::Refused(format!(
                "removing {} would break etcd's quorum: {healthy_after} of the {} members left would be healthy, {} are needed",
                n.name,
                members.len(),
                quorum(members.len())
            )));
        }
    }
    let removed_members = inv
        .etcd_members()
        .filter(|m| gone.contains(&m.name.as_str()))
        .count();
    if removed_members > 0 && members.len() % 2 == 0 {
        warnings.push(format!(
            "etcd will have {} members, which tolerate {} failure(s), no more than {} would: add a member (or remove one more) soon",
            members.len(),
            (members.len() - 1) / 2,
            members.len() - 1
        ));
    }
    let stacked = inv.etcd.topology == inventory::EtcdTopology::Stacked;
    let leaving = chosen
        .iter()
        .map(|n| {
            let reachable = !facts.unreachable.contains(&n.name);
            let kube = n.roles.control_plane || n.roles.worker;
            let member = inv.etcd_members().any(|m| m.name == n.name);
            let mut want = Vec::new();
            if kube {
                want.push((Action::Drain, true));
            }
            if n.roles.control_plane && inv.frontdoor.kind != FrontdoorKind::External {
                want.push((Action::StopFrontDoor, true));
            }
            if member {
                want.push((Action::RemoveEtcdMember, false));
            }
            if kube || (member && !stacked) {
                want.push((Action::Reset, true));
            }
            if kube {
                want.push((Action::DeleteNode, false));
            }
            let (actions, skipped): (Vec<_>, Vec<_>) = want
                .into_iter()
                .partition(|(_, on_node)| reachable || !on_node);
            Leaving {
                name: n.name.clone(),
                roles: n.roles.names(),
                reachable,
                actions: actions.into_iter().map(|(a, _)| a).collect(),
                skipped: skipped.into_iter().map(|(a, _)| a).collect(),
            }
        })
        .collect::<Vec<_>>();
    for l in leaving.iter().filter(|l| !l.reachable) {
        warnings.push(format!(
            "{} cannot be reached: it is not drained or reset; its pods go with its Node object. Wipe it (kubeadm reset) before it comes back, or it rejoins as it was",
            l.name
        ));
    }
    let left_alone: Vec<String> = inv
        .nodes
        .iter()
        .filter(|n| n.roles.control_plane || n.roles.worker)
        .filter(|n| !gone.contains(&n.name.as_str()))
        .filter(|n| {
            facts
                .registered
                .as_ref()
                .is_some_and(|r| !r.contains(&n.name))
        })
        .map(|n| n.name.clone())
        .collect();
    for n in &left_alone {
        warnings.push(format!(
            "{n} is in the inventory but not in the cluster: left alone (delete its entry if it was removed; `kubeha up` joins it otherwise)"
        ));
    }
    let mut out = gone.clone();
    out.extend(left_alone.iter().map(String::as_str));
    let remaining = inv.without(&out);
    let holder = facts.vip_holders.first();
    let mut cps: Vec<String> = remaining
        .control_plane()
        .map(|n| n.name.clone())
        .filter(|n| !facts.unreachable.contains(n))
        .collect();
    cps.sort_by_key(|n| Some(n) == holder);
    let mut rounds: Vec<Vec<String>> = cps.into_iter().map(|n| vec![n]).collect();
    let others: Vec<String> = remaining
        .nodes
        .iter()
        .filter(|n| !n.roles.control_plane && !facts.unreachable.contains(&n.name))
        .map(|n| n.name.clone())
        .collect();
    if !others.is_empty() {
        rounds.push(others);
    }
    for n in remaining
        .nodes
        .iter()
        .filter(|n| facts.unreachable.contains(&n.name))
    {
        warnings.push(format!(
            "{} stays but cannot be reached: it keeps the old peers and /etc/hosts until `kubeha up` reaches it",
            n.name
        ));
    }
    Ok(Removal {
        leaving,
        rounds,
        pins: pins(inv, &inv.without(&gone)),
        left_alone,
        warnings,
    })
}

/// `cni: bridge`: the nodes whose place in the list changes when the removed entries are
/// deleted and that have no pin yet, with the /24 they have now.
fn pins(inv: &Inventory, remaining: &Inventory) -> Vec<(String, String)> {
    if inv.networking.cni != Cni::Bridge {
        return Vec::new();
    }
    remaining
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let before = inv.nodes.iter().position(|o| o.name == n.name)?;
            let unpinned = inv.nodes[before].pod_subnet.is_none();
            if !unpinned || before == i {
                return None;
            }
            Some((n.name.clone(), inv.pod_subnet(before)?.to_string()))
        })
        .collect()
}

/// A member as etcd's member list gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Decimal, as the gateway writes uint64.
    pub id: String,
    pub name: String,
    pub peer_urls: Vec<String>,
}

/// Parses `/v3/cluster/member/list`'s answer.
pub fn parse_members(json: &str) -> Result<Vec<Member>, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("not etcd's member list: {e}"))?;
    let list = v["members"]
        .as_array()
        .ok_or_else(|| "not etcd's member list: no `members`".to_string())?;
    Ok(list
        .iter()
        .map(|m| Member {
            id: match &m["ID"] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            },
            name: m["name"].as_str().unwrap_or_default().to_string(),
            peer_urls: m["peerURLs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|u| u.as_str().map(str::to_string))
                .collect(),
        })
        .collect())
}

/// The member that is `node`: by name, or (a member that never started has no name) by its
/// peer URL.
pub fn member_of<'a>(members: &'a [Member], node: &Node) -> Option<&'a Member> {
    let peer = format!("https://{}:2380", node.address);
    members
        .iter()
        .find(|m| m.name == node.name || m.peer_urls.iter().any(|u| u == &peer))
}

/// What one node's removal did.
#[derive(Debug, Clone, Serialize)]
pub struct Left {
    pub name: String,
    /// (action, what happened, milliseconds).
    pub done: Vec<(Action, String, u64)>,
}

/// Runs `script` on `t`; a failure or a non-zero exit is the step's error.
async fn run(t: &dyn Transport, script: String, limit: Duration) -> Result<String, String> {
    match t.run(&Exec::new(script, limit)).await {
        Ok(o) if o.success() => Ok(o.stdout_str().to_string()),
        Ok(o) => Err(format!(
            "exit {}: {}",
            o.exit.map_or("signal".into(), |c| c.to_string()),
            tail(&o.stderr, 4)
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// What a removal needs besides the decision.
pub struct Work<'a> {
    pub inv: &'a Inventory,
    pub conns: &'a Connections,
    /// The API through the VIP, with the admin kubeconfig.
    pub api: &'a kubeapi::Cluster,
    pub facts: &'a Facts,
    pub drain_timeout: Duration,
    /// Names what is kept aside on the nodes (an external member's data).
    pub stamp: &'a str,
}

impl Work<'_> {
    fn transport(&self, node: &str) -> Option<&dyn Transport> {
        match self.conns.get(node) {
            Some(Ok(t)) => Some(t.as_ref()),
            _ => None,
        }
    }

    /// A healthy member that stays, to ask for the member list and the removal.
    fn helper(&self, removal: &Removal) -> Option<(&Node, &dyn Transport)> {
        let gone: Vec<&str> = removal.leaving.iter().map(|l| l.name.as_str()).collect();
        self.inv
            .etcd_members()
            .filter(|m| !gone.contains(&m.name.as_str()))
            .filter(|m| self.facts.etcd_healthy.contains(&m.name))
            .find_map(|m| Some((m, self.transport(&m.name)?)))
    }
}

/// The API through the VIP with the PKI store's admin kubeconfig: what drains and deletes.
pub async fn connect_api(
    inv: &Inventory,
    pki_dir: &std::path::Path,
) -> Result<kubeapi::Cluster, RemoveError> {
    let kubeconfig = pki::Store::open(pki_dir).admin_kubeconfig();
    let vip = format!("https://{}", inv.endpoint.host_port());
    kubeapi::Cluster::connect(&kubeconfig, Some(&vip), Duration::from_secs(10))
        .await
        .map_err(|e| RemoveError::Api(e.to_string()))
}

/// Carries out `removal` (from [`decide`]) node by node; `say` hears each action as it starts.
/// It stops at the first failure, with the node, the action and what to do; running it
/// again resumes (every action is idempotent).
pub async fn remove(
    w: &Work<'_>,
    removal: &Removal,
    say: &mut (dyn FnMut(&str) + Send),
) -> Result<Vec<Left>, RemoveError> {
    let mut out = Vec::new();
    for l in &removal.leaving {
        let node = w
            .inv
            .node(&l.name)
            .expect("decide took names from the inventory");
        let mut done = Vec::new();
        for &action in &l.actions {
            say(&format!("{}: {action}", l.name));
            let t0 = Instant::now();
            let what = act(w, removal, node, action)
                .await
                .map_err(|(detail, hint)| RemoveError::Step {
                    node: l.name.clone(),
                    action,
                    detail,
                    hint,
                })?;
            done.push((action, what, t0.elapsed().as_millis() as u64));
        }
        out.push(Left {
            name: l.name.clone(),
            done,
        });
    }
    // A removed node may have held the VIP: the rounds for the nodes that stay begin once the
    // API answers through it again (bounded; if not, their checks say so).
    let _ = api_retry(|| async {
        match w.api.readyz().await {
            Ok(t) if t == "ok" => Ok(()),
            Ok(t) => Err(kubeapi::ApiError::Timeout(t)),
            Err(e) => Err(e),
        }
    })
    .await;
    Ok(out)
}

const AGAIN: &str = "fix that, then run kubeha remove again: it resumes";

/// How long an API call is tried again: a removal often starts right after a node died, and
/// the VIP may still be moving off it (seconds with keepalived) or the client's pooled
/// connection may lead to it.
const API_RETRY: Duration = Duration::from_secs(45);

/// `call` until it succeeds or `API_RETRY` has passed (every 2 s); the last error otherwise.
async fn api_retry<T, F>(mut call: impl FnMut() -> F) -> Result<T, kubeapi::ApiError>
where
    F: std::future::Future<Output = Result<T, kubeapi::ApiError>>,
{
    let deadline = Instant::now() + API_RETRY;
    // Bounded by API_RETRY.
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
}

async fn act(
    w: &Work<'_>,
    removal: &Removal,
    node: &Node,
    action: Action,
) -> Result<String, (String, String)> {
    let on_node = || {
        w.transport(&node.name).ok_or_else(|| {
            (
                "cannot be reached any more".to_string(),
                "bring it back, or run kubeha remove again: an unreachable node skips this".into(),
            )
        })
    };
    let failed = |detail: String| (detail, AGAIN.to_string());
    match action {
        Action::Drain => {
            if !api_retry(|| w.api.cordon(&node.name))
                .await
                .map_err(|e| failed(e.to_string()))?
            {
                return Ok("no Node object: nothing to drain".into());
            }
            let d = w
                .api
                .drain(&node.name, w.drain_timeout)
                .await
                .map_err(|e| {
                    (
                        e.to_string(),
                        format!(
                            "the node stays cordoned; let the PodDisruptionBudget allow it (or give --drain-timeout more), then run kubeha remove again; `kubectl uncordon {}` takes it back",
                            node.name
                        ),
                    )
                })?;
            Ok(format!(
                "{} pod(s) evicted, {} left (DaemonSet, static or finished)",
                d.evicted.len(),
                d.left.len()
            ))
        }
        Action::StopFrontDoor => {
            let units = match w.inv.frontdoor.kind {
                FrontdoorKind::KeepalivedHaproxy => "keepalived haproxy",
                _ => "kubeha-frontdoor",
            };
            run(
                on_node()?,
                with_vars(&[("UNITS", units)], sh::STOP_FRONTDOOR),
                Duration::from_secs(60),
            )
            .await
            .map_err(failed)?;
            Ok(format!("{units} stopped and disabled"))
        }
        Action::RemoveEtcdMember => {
            let Some((helper, t)) = w.helper(removal) else {
                return Err((
                    "no healthy etcd member that stays can be reached to remove it".into(),
                    "bring one back, then run kubeha remove again".into(),
                ));
            };
            let endpoint = format!("https://{}:2379", helper.address);
            let list = run(
                t,
                with_vars(&[("ENDPOINT", &endpoint)], sh::MEMBERS),
                Duration::from_secs(20),
            )
            .await
            .map_err(|e| failed(format!("member list on {}: {e}", helper.name)))?;
            let members = parse_members(&list).map_err(failed)?;
            let Some(m) = member_of(&members, node) else {
                return Ok(format!("not a member any more (asked {})", helper.name));
            };
            run(
                t,
                with_vars(&[("ENDPOINT", &endpoint), ("ID", &m.id)], sh::MEMBER_REMOVE),
                Duration::from_secs(40),
            )
            .await
            .map_err(|e| failed(format!("member remove on {}: {e}", helper.name)))?;
            Ok(format!(
                "member {} removed through {}; {} left",
                m.id,
                helper.name,
                members.len() - 1
            ))
        }
        Action::Reset => {
            let stacked = w.inv.etcd.topology == inventory::EtcdTopology::Stacked;
            let member = w.inv.etcd_members().any(|m| m.name == node.name);
            let data = if member && !stacked {
                w.inv.etcd.data_dir.clone()
            } else {
                String::new()
            };
            let kube = if node.roles.control_plane || node.roles.worker {
                "1"
            } else {
                "0"
            };
            let said = run(
                on_node()?,
                with_vars(
                    &[("KUBE", kube), ("ETCD_DATA", &data), ("STAMP", w.stamp)],
                    sh::RESET,
                ),
                Duration::from_secs(300),
            )
            .await
            .map_err(failed)?;
            if !said.contains("kubeha-reset-done") {
                return Err(failed(format!(
                    "the reset did not finish: {}",
                    tail(said.as_bytes(), 3)
                )));
            }
            Ok("kubeadm reset done, kubeha's records cleared".into())
        }
        Action::DeleteNode => {
            let existed = api_retry(|| w.api.delete_node(&node.name))
                .await
                .map_err(|e| failed(e.to_string()))?;
            Ok(if existed {
                "Node deleted".into()
            } else {
                "no Node object".into()
            })
        }
    }
}

/// What the nodes that stay need to get the new Plan.
pub struct Update<'a> {
    /// `Removal::remaining`.
    pub remaining: &'a Inventory,
    pub inventory_path: &'a std::path::Path,
    pub pki_dir: &'a std::path::Path,
    pub concurrency: usize,
    pub step_timeout: Duration,
    pub log_dir: std::path::PathBuf,
}

/// Runs the Plan of `u.remaining` on the nodes that stay, round by round (`Removal::rounds`):
/// the same Plan `kubeha up` runs once the removed entries are deleted from cluster.yaml, so
/// that run changes nothing. Each round ends with `up`'s checks (one VIP holder, etcd, every
/// node Ready), and a failed round stops the rest. Returns each round's report.
pub async fn update(
    u: &Update<'_>,
    removal: &Removal,
    connect: impl AsyncFn(&[String]) -> Connections,
    observer: &dyn crate::Observer,
    say: &mut (dyn FnMut(&str) + Send),
) -> Result<Vec<crate::Report>, RemoveError> {
    let prepared = crate::prepare(&crate::Request {
        inventory: u.remaining,
        inventory_path: u.inventory_path,
        pki_dir: u.pki_dir,
        only: &[],
        from: None,
    })
    .map_err(|e| RemoveError::Update {
        round: 0,
        nodes: String::new(),
        detail: e.to_string(),
    })?;
    let mut reports = Vec::new();
    for (i, round) in removal.rounds.iter().enumerate() {
        let nodes = round.join(", ");
        say(&format!(
            "the nodes that stay, round {} of {}: {nodes}",
            i + 1,
            removal.rounds.len()
        ));
        let opts = crate::Options {
            concurrency: u.concurrency,
            from: None,
            only: round.clone(),
            dry_run: false,
            step_timeout: u.step_timeout,
            masked: vec![prepared.bootstrap_token.clone()],
            log_dir: u.log_dir.clone(),
            kubeconfig: Some(prepared.kubeconfig.clone()),
            skip_checks: Vec::new(),
        };
        let report = crate::up(
            &prepared.plan,
            &opts,
            async |n: &[String]| connect(n).await,
            observer,
        )
        .await;
        if !report.ok() {
            let detail = match (report.failures().next(), &report.stopped) {
                (Some(f), _) => f.to_string(),
                (None, Some(stop)) => format!("stopped: {stop:?}"),
                (None, None) => "failed".into(),
            };
            return Err(RemoveError::Update {
                round: i + 1,
                nodes,
                detail: format!(
                    "{detail}; the removal itself is done: fix that and run `kubeha up` with the removed nodes deleted from the inventory (logs in {})",
                    u.log_dir.display()
                ),
            });
        }
        reports.push(report);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests;
