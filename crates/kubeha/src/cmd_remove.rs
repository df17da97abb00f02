//! `kubeha remove NODE… -f cluster.yaml`: arguments and output; what is decided and done is
//! in `deploy::remove`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use deploy::remove::{self, Facts, Removal, Update, Work};

use crate::EXIT_INVALID;
use crate::cluster_args::stamp;
use crate::cluster_args::{Format, InventoryArgs, load_inventory};
use crate::remote::{SshArgs, connect_all};

#[derive(Args)]
pub struct RemoveArgs {
    /// The nodes to take out of the cluster, as the inventory names them
    #[arg(required = true, value_name = "NODE")]
    pub nodes: Vec<String>,
    #[command(flatten)]
    pub inventory: InventoryArgs,
    /// Read the cluster, decide, and print what would happen; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How long a node's pods may take to leave (PodDisruptionBudgets pace the evictions)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Limit for one step of the nodes that stay
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = humantime::parse_duration)]
    pub step_timeout: Duration,
    /// Logs of the nodes that stay go to DIR/<node>.log (default: logs/remove-<time>/ next to the inventory)
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    #[command(flatten)]
    pub ssh: SshArgs,
}

/// `--output json`: the decision, what each node's removal did, and the report of each
/// round of the nodes that stay.
struct Outcome<'a> {
    dry_run: bool,
    removal: &'a Removal,
    left: Vec<remove::Left>,
    updated: Vec<deploy::Report>,
    millis: u64,
}

impl Outcome<'_> {
    fn json(&self) -> String {
        let v = serde_json::json!({
            "dry_run": self.dry_run,
            "removal": self.removal,
            "left": self.left,
            "updated": self.updated,
            "millis": self.millis,
        });
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }
}

fn print_removal(r: &Removal) {
    for l in &r.leaving {
        let steps: Vec<String> = l.actions.iter().map(|a| a.to_string()).collect();
        println!(
            "{} ({}): {}",
            l.name,
            l.roles.join(", "),
            steps.join(", then ")
        );
        if !l.skipped.is_empty() {
            let s: Vec<String> = l.skipped.iter().map(|a| a.to_string()).collect();
            println!("  unreachable, so not: {}", s.join(", "));
        }
    }
    for (i, round) in r.rounds.iter().enumerate() {
        println!(
            "then the nodes that stay get the new plan, round {}: {}",
            i + 1,
            round.join(", ")
        );
    }
    for w in &r.warnings {
        eprintln!("kubeha remove: warning: {w}");
    }
}

pub fn run(args: RemoveArgs) -> u8 {
    let loaded = match load_inventory(&args.inventory.file) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let inv = &loaded.inventory;
    // Names are checked before anything is reached.
    if let Err(e) = remove::nodes_named(inv, &args.nodes) {
        eprintln!("kubeha remove: {}: {e}", args.inventory.file.display());
        return EXIT_INVALID;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kubeha remove: cannot start the runtime: {e}");
            return 1;
        }
    };
    let t0 = Instant::now();
    let pki_dir = args.inventory.pki_dir();
    let file = &args.inventory.file;
    let connect = async |names: &[String]| connect_all(inv, file, names, &args.ssh).await;
    let text = args.output == Format::Text;
    let st = rt.block_on(deploy::status::status(
        inv,
        connect,
        &pki_dir,
        args.ssh.concurrency,
    ));
    let facts = Facts::from_status(&st);
    let removal = match remove::decide(inv, &args.nodes, &facts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kubeha remove: {e}");
            return if e.changed_nothing() { EXIT_INVALID } else { 1 };
        }
    };
    let mut out = Outcome {
        dry_run: args.dry_run,
        removal: &removal,
        left: Vec::new(),
        updated: Vec::new(),
        millis: 0,
    };
    if text {
        print_removal(&removal);
    }
    if args.dry_run {
        if text {
            println!("dry run: nothing was changed");
        } else {
            out.millis = t0.elapsed().as_millis() as u64;
            println!("{}", out.json());
        }
        return 0;
    }
    let log_dir = args.log_dir.clone().unwrap_or_else(|| {
        plan::load::inventory_dir(file)
            .join("logs")
            .join(format!("remove-{}", stamp()))
    });
    let mut say = |s: &str| {
        if text {
            eprintln!("==> {s}");
        }
    };
    let gone: Vec<&str> = removal.leaving.iter().map(|l| l.name.as_str()).collect();
    let remaining = removal.remaining(inv);
    let res = rt.block_on(async {
        let api = remove::connect_api(inv, &pki_dir)
            .await
            .map_err(|e| e.to_string())?;
        let names: Vec<String> = inv.nodes.iter().map(|n| n.name.clone()).collect();
        let conns = connect_all(inv, file, &names, &args.ssh).await;
        let stamp = stamp();
        let work = Work {
            inv,
            conns: &conns,
            api: &api,
            facts: &facts,
            drain_timeout: args.drain_timeout,
            stamp: &stamp,
        };
        out.left = remove::remove(&work, &removal, &mut say)
            .await
            .map_err(|e| e.to_string())?;
        drop(conns);
        let u = Update {
            remaining: &remaining,
            inventory_path: file,
            pki_dir: &pki_dir,
            concurrency: args.ssh.concurrency,
            step_timeout: args.step_timeout,
            log_dir: log_dir.clone(),
        };
        out.updated = remove::update(&u, &removal, connect, &(), &mut say)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    });
    out.millis = t0.elapsed().as_millis() as u64;
    if let Err(e) = res {
        eprintln!("kubeha remove: {e}");
        return 1;
    }
    match args.output {
        Format::Json => println!("{}", out.json()),
        Format::Text => {
            for l in &out.left {
                for (a, what, ms) in &l.done {
                    println!("{}: {a}: {what} ({ms} ms)", l.name);
                }
            }
            println!(
                "removed {} in {} ms; the nodes that stay run the plan without {}",
                gone.join(", "),
                out.millis,
                if gone.len() == 1 { "it" } else { "them" }
            );
            if !removal.pins.is_empty() {
                println!(
                    "cni: bridge: before deleting the entries, pin these nodes' pod subnets in {} (or they move):",
                    file.display()
                );
                for (n, s) in &removal.pins {
                    println!("  {n}: pod_subnet: {s}");
                }
            }
            println!(
                "now delete {} from {}: `kubeha up` with {} still listed would join {} again",
                gone.join(", "),
                file.display(),
                if gone.len() == 1 { "it" } else { "them" },
                if gone.len() == 1 { "it" } else { "them" },
            );
        }
    }
    0
}
