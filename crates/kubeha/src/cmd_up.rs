//! `kubeha up`: the Plan that `kubeha plan` shows, executed over SSH on every node.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clap::Args;
use deploy::{Event, Observer, Options, Outcome, Report, Stop};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::EXIT_INVALID;
use crate::cluster_args::{Format, InventoryArgs, load_inventory};
use crate::remote::{SshArgs, connect_all};

/// Exit status when everything before the Kubernetes-binary phases is done and kubeadm is absent.
pub const EXIT_BOUNDARY: u8 = 3;

#[derive(Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub inventory: InventoryArgs,
    /// Redo this step (phase/name, as `kubeha plan` lists them) and every later one
    #[arg(long, value_name = "STEP")]
    pub from: Option<String>,
    /// Only these nodes (repeat or comma-separate)
    #[arg(long, value_name = "NODE", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Connect, read what each node has done, and print the steps that would run now
    #[arg(long)]
    pub dry_run: bool,
    /// Leave out a whole-cluster check (vip, etcd or kubernetes; repeat or comma-separate),
    /// e.g. kubernetes when this machine cannot reach the VIP
    #[arg(long, value_name = "CHECK", value_delimiter = ',')]
    pub skip_check: Vec<plan::ClusterCheck>,
    /// Limit for one step on one node
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = humantime::parse_duration)]
    pub step_timeout: Duration,
    /// Per-node logs go to DIR/<node>.log (default: logs/up-<time>/ next to the inventory)
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Final report format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    #[command(flatten)]
    pub ssh: SshArgs,
}

pub fn run(args: UpArgs) -> u8 {
    let loaded = match load_inventory(&args.inventory.file) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let inv = &loaded.inventory;
    let pki_dir = args.inventory.pki_dir();
    let t0 = std::time::Instant::now();
    let prepared = match deploy::prepare(&deploy::Request {
        inventory: inv,
        inventory_path: &args.inventory.file,
        pki_dir: &pki_dir,
        only: &args.only,
        from: args.from.as_deref(),
    }) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kubeha up: {e}");
            return if e.is_bad_input() { EXIT_INVALID } else { 1 };
        }
    };
    // PKI brought up to date, the Plan built (kubeha's own binary read and hashed).
    let prepared_in = deploy::Timing::since("prepare", t0);
    if prepared.pki_changed > 0 {
        eprintln!(
            "kubeha up: PKI in {}: {} file(s) issued or updated",
            pki_dir.display(),
            prepared.pki_changed
        );
        if args.dry_run {
            eprintln!(
                "kubeha up: --dry-run wrote that PKI to disk: the dry run compares the nodes with \
                 the certificates the real run installs, and the real run reuses them"
            );
        }
    }
    for w in &prepared.pki_warnings {
        eprintln!("kubeha up: PKI: {w}");
    }
    let log_dir = args.log_dir.clone().unwrap_or_else(|| {
        let stamp = pki::time::OffsetDateTime::now_utc();
        plan::load::inventory_dir(&args.inventory.file)
            .join("logs")
            .join(format!(
                "up-{:04}{:02}{:02}-{:02}{:02}{:02}",
                stamp.year(),
                u8::from(stamp.month()),
                stamp.day(),
                stamp.hour(),
                stamp.minute(),
                stamp.second()
            ))
    });
    let opts = Options {
        concurrency: args.ssh.concurrency,
        from: prepared.from,
        only: args.only.clone(),
        dry_run: args.dry_run,
        step_timeout: args.step_timeout,
        masked: vec![prepared.bootstrap_token.clone()],
        log_dir: log_dir.clone(),
        kubeconfig: Some(prepared.kubeconfig.clone()),
        skip_checks: args.skip_check.clone(),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kubeha up: cannot start the runtime: {e}");
            return 1;
        }
    };
    let plan = &prepared.plan;
    let names: Vec<String> = plan
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .filter(|n| args.only.is_empty() || args.only.contains(n))
        .collect();
    let progress = Progress::new(&names, args.output == Format::Text);
    let mut report = rt.block_on(deploy::up(
        plan,
        &opts,
        async |names: &[String]| connect_all(inv, &args.inventory.file, names, &args.ssh).await,
        &progress,
    ));
    report.timings.insert(0, prepared_in);
    progress.finish();
    match args.output {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        Format::Text => print_report(&report, &args),
    }
    eprintln!("kubeha up: logs in {}", log_dir.display());
    match &report.stopped {
        Some(Stop::KubernetesBinaries { .. }) if report.failures().next().is_none() => {
            EXIT_BOUNDARY
        }
        _ if report.ok() => 0,
        _ => 1,
    }
}

/// One line of the final table: a node, or nodes that finished alike.
#[derive(Debug, PartialEq, Eq)]
struct Row {
    name: String,
    /// changed, unchanged, checks, not run
    counts: [usize; 4],
    result: String,
}

/// A row per node; past `LINES_PER_NODE_UP_TO` nodes, the nodes that are done with the same
/// counts share one row (the first and last name and how many), so a large cluster's table
/// shows what needs a look. Failed and stopped nodes always have their own row.
fn table(r: &Report) -> Vec<Row> {
    let rows = r.nodes.iter().map(|n| Row {
        name: n.name.clone(),
        counts: [
            n.count(&Outcome::Changed),
            n.count(&Outcome::Unchanged),
            n.count(&Outcome::Checked),
            n.count(&Outcome::NotRun),
        ],
        result: match &n.failure {
            Some(f) => format!("FAILED at {}", f.step),
            None if n.count(&Outcome::NotRun) > 0 => "stopped".to_string(),
            None => "done".to_string(),
        },
    });
    if r.nodes.len() <= LINES_PER_NODE_UP_TO {
        return rows.collect();
    }
    let mut out: Vec<Row> = Vec::new();
    let mut alike: Vec<(Row, String, usize)> = Vec::new();
    for row in rows {
        if row.result != "done" {
            out.push(row);
        } else if let Some((_, last, n)) = alike.iter_mut().find(|(a, _, _)| a.counts == row.counts)
        {
            *last = row.name;
            *n += 1;
        } else {
            let first = row.name.clone();
            alike.push((row, first, 1));
        }
    }
    for (mut row, last, n) in alike {
        if n > 1 {
            row.name = format!("{} … {last} ({n} nodes)", row.name);
        }
        out.push(row);
    }
    out
}

fn print_report(r: &Report, args: &UpArgs) {
    if r.dry_run {
        for n in &r.nodes {
            println!("{}:", n.name);
            for s in &n.steps {
                let what = match s.outcome {
                    Outcome::WouldRun => "would run",
                    Outcome::Unchanged => "unchanged, skip",
                    Outcome::Skipped if s.reason.is_some() => "skip",
                    Outcome::Skipped => "before --from, skip",
                    _ => "not reachable",
                };
                let why = s
                    .reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                println!("  {:<32} {what}{why}", s.id);
            }
            if let Some(f) = &n.failure {
                println!("  {f}");
            }
        }
        return;
    }
    let rows = table(r);
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    println!(
        "{:<width$}  {:>7}  {:>9}  {:>6}  {:>7}  result",
        "node", "changed", "unchanged", "checks", "not run"
    );
    for row in &rows {
        let [changed, unchanged, checks, not_run] = row.counts;
        println!(
            "{:<width$}  {changed:>7}  {unchanged:>9}  {checks:>6}  {not_run:>7}  {}",
            row.name, row.result
        );
    }
    for c in &r.checks {
        println!("ok: {c}");
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
    for n in &r.nodes {
        for b in &n.backups {
            println!(
                "note: {}: a file kubeha did not write was replaced; the old one is at {b}",
                n.name
            );
        }
    }
    for f in r.failures() {
        println!("error: {f}");
    }
    let file = args.inventory.file.display();
    match &r.stopped {
        None if r.ok() => println!(
            "kubeha up: {} step(s) changed, {} node(s) done in {:.1} s",
            r.changed(),
            r.nodes.len(),
            r.millis as f64 / 1000.0
        ),
        None => println!(
            "kubeha up: failed workers above; the rest is done. Fix them and run `kubeha up -f {file}` again"
        ),
        Some(Stop::Preflight { findings }) => {
            for f in findings {
                println!("error: preflight: {f}");
            }
            println!("kubeha up: preflight found problems; nothing was changed");
        }
        Some(Stop::Failed { node, step }) => println!(
            "kubeha up: stopped after {node} failed at {step}; later phases did not run. Fix it and run `kubeha up -f {file}` again"
        ),
        Some(Stop::Cluster { check, detail }) => {
            println!("kubeha up: cluster check `{check}` failed: {detail}")
        }
        Some(Stop::KubernetesBinaries { nodes, phase }) => println!(
            "kubeha up: everything before phase {phase} is done; kubeadm/kubectl are not installed on {} — \
             install kubelet, kubeadm and kubectl (packages.source: repository does it) and run `kubeha up -f {file}` again",
            nodes.join(", ")
        ),
    }
}

/// Up to this many nodes get a live line each on a terminal; more share one summary line.
const LINES_PER_NODE_UP_TO: usize = 40;

/// On a terminal, one live line per node (a summary line for large clusters); a line per
/// finished step otherwise.
struct Progress {
    bars: Option<Bars>,
    plain: bool,
    out: Mutex<()>,
}

enum Bars {
    /// A line per node; events find theirs by name in a map, not by a scan.
    PerNode {
        /// Draws the lines; kept for as long as they live.
        _multi: MultiProgress,
        bars: HashMap<String, ProgressBar>,
    },
    /// One line: nodes done out of all, failures, the last step started.
    Summary(ProgressBar, AtomicUsize),
}

impl Progress {
    fn new(names: &[String], enabled: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bars = (enabled && tty).then(|| {
            if names.len() > LINES_PER_NODE_UP_TO {
                let b = ProgressBar::new(names.len() as u64);
                b.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {elapsed:>4} {pos}/{len} nodes done {wide_msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b.enable_steady_tick(Duration::from_millis(120));
                return Bars::Summary(b, AtomicUsize::new(0));
            }
            let mp = MultiProgress::new();
            let width = names.iter().map(|n| n.len()).max().unwrap_or(4);
            let style = ProgressStyle::with_template(&format!(
                "{{prefix:>{width}}} {{spinner}} {{elapsed:>4}} {{wide_msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let bars = names
                .iter()
                .map(|n| {
                    let b = mp.add(ProgressBar::new_spinner());
                    b.set_style(style.clone());
                    b.set_prefix(n.clone());
                    b.set_message("connecting");
                    b.enable_steady_tick(Duration::from_millis(120));
                    (n.clone(), b)
                })
                .collect();
            Bars::PerNode { _multi: mp, bars }
        });
        Progress {
            bars,
            plain: enabled && !tty,
            out: Mutex::new(()),
        }
    }

    fn finish(&self) {
        match &self.bars {
            Some(Bars::PerNode { bars, .. }) => {
                for b in bars.values() {
                    if !b.is_finished() {
                        b.finish();
                    }
                }
            }
            Some(Bars::Summary(b, _)) => b.finish(),
            None => return,
        }
        // The bars leave the cursor at the end of the last one; the table starts below.
        eprintln!();
    }
}

impl Observer for Progress {
    fn event(&self, e: Event<'_>) {
        match e {
            Event::StepStarted { node, step } => match &self.bars {
                Some(Bars::PerNode { bars, .. }) => {
                    if let Some(b) = bars.get(node) {
                        b.set_message(step.to_string());
                    }
                }
                Some(Bars::Summary(b, failed)) => {
                    let failed = failed.load(Ordering::Relaxed);
                    let failed = if failed > 0 {
                        format!("{failed} FAILED, ")
                    } else {
                        String::new()
                    };
                    b.set_message(format!("({failed}now {step} on {node})"));
                }
                None => {}
            },
            Event::StepFinished {
                node,
                step,
                outcome,
            } => {
                if self.plain && *outcome != Outcome::Unchanged {
                    let _g = self.out.lock();
                    eprintln!("{node}: {step} {outcome:?}");
                }
            }
            Event::NodeDone { node, failed } => match &self.bars {
                Some(Bars::PerNode { bars, .. }) => {
                    if let Some(b) = bars.get(node) {
                        b.finish_with_message(if failed { "FAILED" } else { "done" });
                    }
                }
                Some(Bars::Summary(b, count)) => {
                    if failed {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    b.inc(1);
                }
                None => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deploy::executor::StepReport;
    use deploy::{At, Failure, NodeReport};
    use plan::StepId;

    fn report(n: usize) -> Report {
        let node = |i: usize| NodeReport {
            name: format!("w{i}"),
            steps: [StepId::PreflightHost, StepId::PrepareSysctl]
                .into_iter()
                .map(|id| StepReport {
                    id,
                    outcome: if id == StepId::PrepareSysctl && i % 2 == 0 {
                        Outcome::Changed
                    } else if id == StepId::PrepareSysctl {
                        Outcome::Unchanged
                    } else {
                        Outcome::Checked
                    },
                    millis: 0,
                    reason: None,
                })
                .collect(),
            failure: (i == 7).then(|| Failure {
                node: format!("w{i}"),
                step: At::Step(StepId::PrepareSysctl),
                command: "sysctl".into(),
                exit_code: Some(1),
                stderr_tail: vec![],
                hint: String::new(),
            }),
            backups: vec![],
            log: "w.log".into(),
        };
        Report {
            nodes: (1..=n).map(node).collect(),
            warnings: vec![],
            checks: vec![],
            stopped: None,
            dry_run: false,
            millis: 0,
            timings: vec![],
        }
    }

    #[test]
    fn a_small_cluster_gets_a_row_per_node() {
        let rows = table(&report(5));
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[1].name, "w2");
        assert_eq!(rows[1].counts, [1, 0, 1, 0]);
    }

    #[test]
    fn a_large_cluster_gets_a_row_per_kind_of_done_node_and_one_per_failure() {
        let rows = table(&report(5000));
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["w7", "w1 … w4999 (2499 nodes)", "w2 … w5000 (2500 nodes)"]
        );
        assert_eq!(rows[0].result, "FAILED at prepare/sysctl");
        assert_eq!(rows[2].counts, [1, 0, 1, 0]);
    }
}
