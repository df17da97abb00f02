//! A scripted transport for tests: no shell, no root. Each node answers by what a script is
//! for (`Purpose`): steps succeed unless told to fail, and write their record and files into
//! the node's memory, so record reads answer as a real node would and re-runs skip. A batch
//! of steps (`executor::batch`) runs step by step and stops at the first that fails. Every
//! step is journaled with its start and end, to check order and overlap; every command is
//! counted (`calls`), to check round trips.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use plan::StepId;
use sha2::{Digest, Sha256};

use super::{Exec, Output, Purpose, Transport, TransportError};

/// One step as a node ran it.
#[derive(Debug, Clone)]
pub struct Ran {
    pub node: String,
    pub step: StepId,
    pub start: Instant,
    pub end: Instant,
}

#[derive(Debug, Default)]
struct Node {
    /// Record name → fingerprint, as under `record::RECORD_DIR`.
    records: BTreeMap<String, String>,
    /// Path → sha256 of what was written there.
    files: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct State {
    nodes: BTreeMap<String, Node>,
    fail: BTreeSet<(String, StepId)>,
    journal: Vec<Ran>,
    /// Everything that ran, with its purpose, in order.
    calls: Vec<(String, Purpose)>,
    vip_holder: Option<String>,
    tools_absent: bool,
    step_time: Duration,
}

/// The cluster of fake nodes; `node(name)` gives each one's transport.
#[derive(Clone, Default)]
pub struct Cluster {
    state: Arc<Mutex<State>>,
}

impl Cluster {
    pub fn new() -> Self {
        Cluster::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn node(&self, name: &str) -> Box<dyn Transport> {
        Box::new(FakeNode {
            name: name.to_string(),
            cluster: self.clone(),
        })
    }

    /// `step` fails on `node` (exit 1, a traced command and a line of stderr).
    pub fn fail(&self, node: &str, step: StepId) {
        self.with(|s| s.fail.insert((node.to_string(), step)));
    }

    /// `step` succeeds on `node` again.
    pub fn unfail(&self, node: &str, step: StepId) {
        self.with(|s| s.fail.remove(&(node.to_string(), step)));
    }

    /// This node answers the VIP probe with `vip held`.
    pub fn hold_vip(&self, node: &str) {
        self.with(|s| s.vip_holder = Some(node.to_string()));
    }

    /// kubeadm and kubectl are missing everywhere.
    pub fn without_kubernetes_tools(&self) {
        self.with(|s| s.tools_absent = true);
    }

    /// Every step takes this long (for overlap checks).
    pub fn step_time(&self, d: Duration) {
        self.with(|s| s.step_time = d);
    }

    pub fn journal(&self) -> Vec<Ran> {
        self.with(|s| s.journal.clone())
    }

    pub fn calls(&self) -> Vec<(String, Purpose)> {
        self.with(|s| s.calls.clone())
    }

    pub fn clear_journal(&self) {
        self.with(|s| {
            s.journal.clear();
            s.calls.clear();
        });
    }

    /// A file on `node` edited behind kubeha's back.
    pub fn edit_file(&self, node: &str, path: &str) {
        self.with(|s| {
            s.nodes
                .entry(node.to_string())
                .or_default()
                .files
                .insert(path.to_string(), "0".repeat(64));
        });
    }
}

struct FakeNode {
    name: String,
    cluster: Cluster,
}

fn ok(stdout: impl Into<String>) -> Output {
    Output {
        exit: Some(0),
        stdout: stdout.into().into_bytes(),
        stderr: Vec::new(),
    }
}

impl FakeNode {
    /// A batch of steps as the real script runs it: in order, each writing its files and
    /// record, stopping at the first that is told to fail. The steps that began, and whether
    /// the last one finished.
    fn steps(&self, s: &mut State, exec: &Exec) -> (Output, Vec<StepId>, bool) {
        let name = &self.name;
        let mut at = 0;
        let mut began = Vec::new();
        let mut outputs = Vec::new();
        let mut finished = true;
        for (id, part) in crate::executor::batch::steps_of(&exec.script) {
            let Ok(step) = id.parse::<StepId>() else {
                continue;
            };
            began.push(step);
            let files = crate::upload::planned(&part, &exec.stdin[at.min(exec.stdin.len())..]);
            at += files.iter().map(|(_, b)| b.len()).sum::<usize>();
            if s.fail.contains(&(name.clone(), step)) {
                outputs.push((
                    id.clone(),
                    String::new(),
                    format!("+kubeha+ false {id}\n{id} failed on {name}\n"),
                ));
                finished = false;
                break;
            }
            let node = s.nodes.entry(name.clone()).or_default();
            let mut out = String::new();
            for (path, bytes) in files {
                node.files
                    .insert(path.clone(), hex::encode(Sha256::digest(&bytes)));
                out.push_str(&format!("kubeha-file written {path}\n"));
            }
            if let Some((record, fp)) = crate::record::written(&part) {
                node.records.insert(record, fp);
            }
            outputs.push((id, out, String::new()));
        }
        let (stdout, stderr) = crate::executor::batch::output_of(&outputs, finished);
        let out = Output {
            exit: Some(if finished { 0 } else { 1 }),
            stdout: stdout.into_bytes(),
            stderr: stderr.into_bytes(),
        };
        (out, began, finished)
    }

    fn answer(&self, exec: &Exec) -> (Output, Vec<StepId>) {
        let name = &self.name;
        self.cluster.with(|s| {
            s.calls.push((name.clone(), exec.purpose));
            let out = match exec.purpose {
                Purpose::Steps(_) => {
                    let (out, began, _) = self.steps(s, exec);
                    return (out, began);
                }
                Purpose::Records => {
                    let node = s.nodes.entry(name.clone()).or_default();
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default();
                    let mut out = format!("clock {}.{:09}\n", now.as_secs(), now.subsec_nanos());
                    for (r, fp) in &node.records {
                        out.push_str(&format!("step {r} {fp}\n"));
                    }
                    for (path, sha) in &node.files {
                        out.push_str(&format!("file {sha} {path}\n"));
                    }
                    out.push_str(crate::record::READ_DONE);
                    out.push('\n');
                    // Steps that went along with the read run after it.
                    if crate::executor::batch::steps_of(&exec.script).is_empty() {
                        return (ok(out), Vec::new());
                    }
                    let (steps, began, _) = self.steps(s, exec);
                    let mut stdout = out.into_bytes();
                    stdout.extend_from_slice(&steps.stdout);
                    let out = Output { stdout, ..steps };
                    return (out, began);
                }
                Purpose::Tools if s.tools_absent => ok("absent\n"),
                Purpose::Tools => ok("present\n"),
                Purpose::VipProbe if s.vip_holder.as_deref() == Some(name) => ok("vip held\n"),
                Purpose::VipProbe => ok("vip not-held\n"),
                Purpose::EtcdProbe => ok("etcd-health {\"health\":\"true\"}\n"),
                Purpose::VipNeighbour | Purpose::Status | Purpose::Other => ok(""),
            };
            (out, Vec::new())
        })
    }
}

impl Transport for FakeNode {
    fn run<'a>(&'a self, exec: &'a Exec) -> BoxFuture<'a, Result<Output, TransportError>> {
        Box::pin(async move {
            let (out, steps) = self.answer(exec);
            let wait = self.cluster.with(|s| s.step_time);
            // One after the other, as the batch's steps run on a node.
            for step in steps {
                let start = Instant::now();
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                let end = Instant::now();
                self.cluster.with(|s| {
                    s.journal.push(Ran {
                        node: self.name.clone(),
                        step,
                        start,
                        end,
                    })
                });
            }
            Ok(out)
        })
    }

    fn describe(&self) -> String {
        format!("fake {}", self.name)
    }
}
