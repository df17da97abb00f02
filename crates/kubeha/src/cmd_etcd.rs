//! `kubeha etcd snapshot` and `kubeha etcd restore`: arguments and output; the work is in
//! `deploy::etcd`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use deploy::etcd;

use crate::EXIT_INVALID;
use crate::cluster_args::stamp;
use crate::cluster_args::{Format, InventoryArgs, load_inventory};
use crate::remote::{SshArgs, connect_all};

#[derive(Args)]
pub struct EtcdArgs {
    #[command(subcommand)]
    command: EtcdCommand,
}

#[derive(Subcommand)]
enum EtcdCommand {
    /// Take a snapshot from a healthy member, check it, and keep it here (mode 0600)
    Snapshot {
        #[command(flatten)]
        inventory: InventoryArgs,
        /// Where to write it (default: etcd-snapshot-<UTC time>.db next to the inventory); an existing file is never replaced
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
        /// How long the member may take to write the snapshot
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        output: Format,
        #[command(flatten)]
        ssh: SshArgs,
    },
    /// Restore a snapshot on every member and bring the control plane back on it (the old data is kept on each member)
    Restore {
        /// A snapshot from `kubeha etcd snapshot` or `etcdctl snapshot save`
        snapshot: PathBuf,
        #[command(flatten)]
        inventory: InventoryArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        output: Format,
        #[command(flatten)]
        ssh: SshArgs,
    },
}

pub fn run(args: EtcdArgs) -> u8 {
    match args.command {
        EtcdCommand::Snapshot {
            inventory,
            out,
            timeout,
            output,
            ssh,
        } => snapshot(&inventory, out, timeout, output, &ssh),
        EtcdCommand::Restore {
            snapshot,
            inventory,
            output,
            ssh,
        } => restore(&snapshot, &inventory, output, &ssh),
    }
}

fn runtime(what: &str) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("kubeha etcd {what}: cannot start the runtime: {e}");
            None
        }
    }
}

fn etcd_nodes(inv: &inventory::Inventory) -> Vec<String> {
    inv.etcd_members().map(|n| n.name.clone()).collect()
}

fn snapshot(
    args: &InventoryArgs,
    out: Option<PathBuf>,
    timeout: Duration,
    output: Format,
    ssh: &SshArgs,
) -> u8 {
    let loaded = match load_inventory(&args.file) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let inv = &loaded.inventory;
    let out = out.unwrap_or_else(|| {
        plan::load::inventory_dir(&args.file).join(format!("etcd-snapshot-{}.db", stamp()))
    });
    if out.exists() {
        eprintln!(
            "kubeha etcd snapshot: {} exists already: kubeha does not replace it; pick another -o or move it away",
            out.display()
        );
        return EXIT_INVALID;
    }
    let Some(rt) = runtime("snapshot") else {
        return 1;
    };
    let res = rt.block_on(async {
        let conns = connect_all(inv, &args.file, &etcd_nodes(inv), ssh).await;
        etcd::snapshot(inv, &conns, &out, timeout).await
    });
    match res {
        Ok(s) => {
            match output {
                Format::Json => {
                    println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default())
                }
                Format::Text => {
                    for (n, why) in &s.skipped {
                        eprintln!("kubeha etcd snapshot: {n} gave none: {why}");
                    }
                    let detail = match (s.revision, s.keys) {
                        (Some(r), Some(k)) => format!(", revision {r}, {k} keys"),
                        _ => String::new(),
                    };
                    println!(
                        "snapshot of etcd from {} in {} ms: {} ({} bytes{detail}, sha256 {})",
                        s.member,
                        s.millis,
                        s.path.display(),
                        s.bytes,
                        s.sha256
                    );
                    println!("it holds every Secret of the cluster: keep it as safe as the CA key");
                }
            }
            0
        }
        Err(e) => {
            eprintln!("kubeha etcd snapshot: {e}");
            1
        }
    }
}

fn restore(path: &Path, args: &InventoryArgs, output: Format, ssh: &SshArgs) -> u8 {
    let loaded = match load_inventory(&args.file) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let inv = &loaded.inventory;
    // The file is checked before anything is reached.
    let (bytes, verified) = match etcd::read_snapshot(path) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("kubeha etcd restore: {e}; nothing was changed");
            return EXIT_INVALID;
        }
    };
    let Some(rt) = runtime("restore") else {
        return 1;
    };
    let text = output == Format::Text;
    if text {
        eprintln!(
            "==> restoring {} ({} bytes): the API is unavailable from the stop until every apiserver is ready again",
            path.display(),
            verified.bytes
        );
    }
    let res = rt.block_on(async {
        let names: Vec<String> = inv.nodes.iter().map(|n| n.name.clone()).collect();
        let conns = connect_all(inv, &args.file, &names, ssh).await;
        let mut say = |s: &str| {
            if text {
                eprintln!("==> {s}");
            }
        };
        etcd::restore(inv, &conns, &bytes, &verified, &stamp(), &mut say).await
    });
    match res {
        Ok(r) => {
            match output {
                Format::Json => {
                    println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default())
                }
                Format::Text => {
                    for w in &r.warnings {
                        eprintln!("kubeha etcd restore: warning: {w}");
                    }
                    println!(
                        "etcd restored from {} on {} in {} ms; every apiserver is ready",
                        path.display(),
                        r.members.join(", "),
                        r.millis
                    );
                    for (node, dir) in &r.kept {
                        println!("  {node}: the data from before is kept in {dir}");
                    }
                }
            }
            0
        }
        Err(e) => {
            eprintln!("kubeha etcd restore: {e}");
            1
        }
    }
}
