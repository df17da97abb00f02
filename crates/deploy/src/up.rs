//! `kubeha up` as one application function: the PKI brought up to date, the Plan built with
//! this run's inputs (kubeha's own binary included), the nodes of the run connected, the Plan
//! executed. The CLI parses arguments, calls these, and prints.

use std::path::{Path, PathBuf};

use inventory::Inventory;
use plan::{Plan, StepId};

use crate::executor::{self, Connections, Observer, Options, Report};

#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error("--only {name}: no such node in {} (nodes: {})", inventory.display(), nodes.join(", "))]
    NoSuchNode {
        name: String,
        inventory: PathBuf,
        nodes: Vec<String>,
    },
    #[error("--from {from}: no such step (steps: {})", steps.join(", "))]
    NoSuchStep { from: String, steps: Vec<String> },
    #[error("PKI store {}: {source}", dir.display())]
    Pki {
        dir: PathBuf,
        #[source]
        source: pki::PkiError,
    },
    #[error(transparent)]
    Inputs(#[from] plan::load::InputsError),
    #[error("cannot read this kubeha binary to install it on the nodes: {0}")]
    Binary(#[source] std::io::Error),
}

impl UpError {
    /// Bad arguments: nothing was changed (exit status 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            UpError::NoSuchNode { .. } | UpError::NoSuchStep { .. }
        )
    }
}

/// What `up` runs on: the inventory file, its PKI store, the chosen nodes and first step.
pub struct Request<'a> {
    pub inventory: &'a Inventory,
    pub inventory_path: &'a Path,
    pub pki_dir: &'a Path,
    pub only: &'a [String],
    /// As typed; checked against the Plan's steps.
    pub from: Option<&'a str>,
}

/// A Plan ready to execute, and what preparing it did.
pub struct Prepared {
    pub plan: Plan,
    pub from: Option<StepId>,
    /// This run's bootstrap token: masked in logs and reports, not a change to converge on.
    pub bootstrap_token: String,
    /// PKI files issued or updated now.
    pub pki_changed: usize,
    pub pki_warnings: Vec<String>,
    /// The PKI store's admin kubeconfig (server: the VIP endpoint), for the verify phase.
    pub kubeconfig: PathBuf,
}

/// Checks the request, issues or renews the PKI, and builds the Plan with this binary in it.
pub fn prepare(req: &Request<'_>) -> Result<Prepared, UpError> {
    let inv = req.inventory;
    if let Some(name) = req
        .only
        .iter()
        .find(|o| !inv.nodes.iter().any(|n| &n.name == *o))
    {
        return Err(UpError::NoSuchNode {
            name: name.clone(),
            inventory: req.inventory_path.to_path_buf(),
            nodes: inv.nodes.iter().map(|n| n.name.clone()).collect(),
        });
    }
    let spec = plan::pki::spec(inv);
    let now = pki::time::OffsetDateTime::now_utc();
    let issued = pki::Store::open(req.pki_dir)
        .issue(&spec, now, &pki::IssueOptions::default())
        .map_err(|source| UpError::Pki {
            dir: req.pki_dir.to_path_buf(),
            source,
        })?;
    let mut inputs = plan::load::inputs(inv, req.inventory_path, req.pki_dir)?;
    inputs.kubeha_binary = Some(
        std::env::current_exe()
            .and_then(std::fs::read)
            .map_err(UpError::Binary)?
            .into(),
    );
    let plan = plan::build(inv, &inputs);
    // A step id no node of this plan has (another front door kind, say) is a typo too.
    let from = match req.from {
        None => None,
        Some(f) => Some(
            f.parse::<StepId>()
                .ok()
                .filter(|id| plan.step_ids().contains(id))
                .ok_or_else(|| UpError::NoSuchStep {
                    from: f.to_string(),
                    steps: plan.step_ids().iter().map(|s| s.to_string()).collect(),
                })?,
        ),
    };
    Ok(Prepared {
        from,
        bootstrap_token: inputs.render.bootstrap_token.clone(),
        pki_changed: issued.changed().count(),
        pki_warnings: issued.warnings,
        kubeconfig: pki::Store::open(req.pki_dir).admin_kubeconfig(),
        plan,
    })
}

/// Connects to the nodes this run needs (with `--only`, also the node with the join token
/// step) and executes the Plan there.
pub async fn up(
    plan: &Plan,
    opts: &Options,
    connect: impl AsyncFnOnce(&[String]) -> Connections,
    observer: &dyn Observer,
) -> Report {
    let names: Vec<String> = executor::select(plan, &opts.only)
        .iter()
        .map(|s| s.node.name.clone())
        .collect();
    let t0 = std::time::Instant::now();
    let connections = connect(&names).await;
    let connected = executor::Timing::since("connect", t0);
    let mut report = executor::execute(plan, connections, opts, observer).await;
    report.timings.insert(0, connected);
    report
}
