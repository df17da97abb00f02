//! `kubeha lab drill`: keep writing numbered keys through the VIP while faults hit the current
//! VIP holder in turn; measure failover per cycle and check that no acknowledged write is lost.

use std::time::Duration;

use serde::Serialize;

use crate::LabError;
use crate::cluster::LabState;

/// What a cycle does to the current VIP holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// SIGKILL of the front door.
    Kill,
    /// SIGTERM of the front door (graceful handover).
    Term,
    /// The node's cable pulled, then plugged back.
    Cable,
    /// SIGSTOP of the front door for longer than the down interval, then SIGCONT.
    Pause,
    /// SIGKILL of the node's etcd member (the front door's local backend).
    Backend,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::Kill,
        Fault::Term,
        Fault::Cable,
        Fault::Pause,
        Fault::Backend,
    ];

    pub fn parse(s: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == s)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Term => "term",
            Fault::Cable => "cable",
            Fault::Pause => "pause",
            Fault::Backend => "backend",
        }
    }
}

#[derive(Debug, Clone)]
pub struct DrillOptions {
    pub cycles: usize,
    /// Faults applied in turn, cycle i gets faults[i % len].
    pub faults: Vec<Fault>,
    /// How long a cable stays pulled or a front door stays stopped.
    pub hold: Duration,
}

/// One cycle's numbers. Field names are a contract (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct CycleReport {
    pub cycle: usize,
    pub fault: Fault,
    /// The holder the fault hit.
    pub node: String,
    /// The node that held the VIP after the failover.
    pub new_holder: Option<String>,
    /// Fault until writes through the VIP succeeded again from another node.
    pub failover_ms: f64,
    /// Writes that failed in this cycle's window.
    pub failed_requests: u64,
    /// How long two or more nodes held the VIP at once.
    pub dual_holder_ms: f64,
}

/// The whole drill. Field names are a contract (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub writes_acked: u64,
    pub writes_failed: u64,
    /// Acknowledged writes missing from any member at the end: must be 0.
    pub writes_lost: u64,
    pub cycles: Vec<CycleReport>,
}

pub fn run(
    _state: &mut LabState,
    _opts: &DrillOptions,
    _log: &mut dyn FnMut(&str),
) -> Result<DrillReport, LabError> {
    Err(LabError::Invalid("lab drill is not built yet".into()))
}

/// The report as a table a person reads.
pub fn table(r: &DrillReport) -> String {
    let mut s = String::from("CYCLE  FAULT    NODE  NEW   FAILOVER_MS  FAILED  DUAL_HOLDER_MS\n");
    for c in &r.cycles {
        s.push_str(&format!(
            "{:<6} {:<8} {:<5} {:<5} {:>11.0}  {:>6}  {:>14.0}\n",
            c.cycle,
            c.fault.name(),
            c.node,
            c.new_holder.as_deref().unwrap_or("-"),
            c.failover_ms,
            c.failed_requests,
            c.dual_holder_ms
        ));
    }
    s.push_str(&format!(
        "writes: {} acknowledged, {} failed, {} acknowledged writes lost\n",
        r.writes_acked, r.writes_failed, r.writes_lost
    ));
    s
}

/// The timeline as SVG.
pub fn svg(_r: &DrillReport) -> String {
    String::new()
}
