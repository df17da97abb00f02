//! `kubeha plan`: validate, then print (and optionally write) the Plan.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::cluster_args::{Format, InventoryArgs};
// cmd_bundle (in progress elsewhere) still imports it from here; new code uses cluster_args.
pub use crate::cluster_args::load_inventory;

#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub inventory: InventoryArgs,
    /// Write every node's files under DIR/<node>/<absolute path>
    #[arg(short = 'o', long = "out", value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

pub fn run(args: PlanArgs) -> u8 {
    let loaded = match load_inventory(&args.inventory.file) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let inv = &loaded.inventory;
    let pki_dir = args.inventory.pki_dir();
    let inputs = match plan::load::inputs(inv, &args.inventory.file, &pki_dir) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("kubeha: {e}");
            return 1;
        }
    };
    let plan = plan::build(inv, &inputs);
    if let Some(dir) = &args.out {
        match write_tree(&plan, dir) {
            Ok(stats) => eprintln!(
                "kubeha: wrote {} files under {} ({} new, {} changed, {} unchanged; secrets 0600)",
                stats.total(),
                dir.display(),
                stats.new,
                stats.changed,
                stats.unchanged
            ),
            Err(e) => {
                eprintln!("kubeha: {e}");
                return 1;
            }
        }
    }
    // Buffered: stdout is line-buffered, and 5,000 nodes are tens of megabytes of JSON.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let res = match args.output {
        Format::Json => serde_json::to_writer_pretty(&mut out, &plan.json())
            .map_err(std::io::Error::other)
            .and_then(|_| writeln!(out)),
        Format::Text => print_text(&mut out, &plan),
    }
    .and_then(|_| out.flush());
    // A closed pipe (plan | head) is not an error worth a message.
    match res {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("kubeha: cannot write output: {e}");
            1
        }
    }
}

fn print_text(out: &mut impl Write, plan: &plan::Plan) -> std::io::Result<()> {
    writeln!(
        out,
        "cluster {} · Kubernetes {} · endpoint {} (VIP {}) · front door {} · etcd {}",
        plan.cluster,
        plan.kubernetes_version,
        plan.endpoint,
        plan.vip,
        plan.frontdoor,
        plan.etcd_topology
    )?;
    writeln!(out)?;
    let w_name = plan
        .nodes
        .iter()
        .map(|n| n.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let w_addr = plan
        .nodes
        .iter()
        .map(|n| n.address.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let w_roles = plan
        .nodes
        .iter()
        .map(|n| n.roles.names().join(",").len())
        .max()
        .unwrap_or(5)
        .max(5);
    writeln!(
        out,
        "{:w_name$}  {:w_addr$}  {:w_roles$}  STEPS  FILES",
        "NODE", "ADDRESS", "ROLES"
    )?;
    for n in &plan.nodes {
        writeln!(
            out,
            "{:w_name$}  {:w_addr$}  {:w_roles$}  {:>5}  {:>5}",
            n.name,
            n.address,
            n.roles.names().join(","),
            n.steps.len(),
            n.artifacts.len()
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "Steps, in order (phases run across all nodes before the next starts):"
    )?;
    for (names, steps) in plan.step_groups() {
        let shown = if names.len() > 6 {
            format!(
                "{} … {} ({} nodes)",
                names[..3].join(", "),
                names[names.len() - 1],
                names.len()
            )
        } else {
            names.join(", ")
        };
        writeln!(out, "  {shown}:")?;
        for s in steps {
            let kind = if s.changes { "" } else { " (runs every time)" };
            writeln!(out, "    {:<32} {}{kind}", s.id, s.description)?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "Whole-cluster checks, from this machine, after their phase:"
    )?;
    for phase in plan::Phase::ALL {
        for c in phase.policy().checks {
            writeln!(
                out,
                "    {:<32} {}",
                format!("{phase}: {c}"),
                c.description()
            )?;
        }
    }
    writeln!(out)?;
    if plan.pki_pending {
        writeln!(
            out,
            "Certificates: not issued yet; `kubeha pki issue -f FILE` issues them and they join this plan."
        )?;
    }
    writeln!(
        out,
        "{} nodes, {} steps, {} files. Nothing was changed. See every file with -o DIR; for scripts, --output json.",
        plan.nodes.len(),
        plan.step_count(),
        plan.artifact_count()
    )
}

#[derive(Default)]
struct WriteStats {
    new: usize,
    changed: usize,
    unchanged: usize,
}

impl WriteStats {
    fn total(&self) -> usize {
        self.new + self.changed + self.unchanged
    }
}

/// A file of `plan -o DIR` that could not be written.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("bad artifact path {0}")]
    BadPath(String),
    #[error("cannot create {}: {source} (check -o DIR)", .path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set mode on {}: {source}", .path.display())]
    Mode {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn write_tree(plan: &plan::Plan, dir: &Path) -> Result<WriteStats, WriteError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let at = |path: &Path| path.to_path_buf();
    let mut stats = WriteStats::default();
    for n in &plan.nodes {
        for a in &n.artifacts {
            // A preview does not carry kubeha's own binary; `up` uploads the running one.
            if a.path == render::paths::KUBEHA_BINARY && a.contents.is_empty() {
                continue;
            }
            let rel = a.path.trim_start_matches('/');
            let target = dir.join(&n.name).join(rel);
            let parent = target
                .parent()
                .ok_or_else(|| WriteError::BadPath(a.path.clone()))?;
            std::fs::create_dir_all(parent).map_err(|source| WriteError::Create {
                path: at(parent),
                source,
            })?;
            match std::fs::read(&target) {
                Ok(old) if old[..] == a.contents[..] => {
                    stats.unchanged += 1;
                    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(a.mode))
                        .map_err(|source| WriteError::Mode {
                            path: at(&target),
                            source,
                        })?;
                    continue;
                }
                Ok(_) => {
                    eprintln!(
                        "kubeha: replacing {} (its contents differ from the plan)",
                        target.display()
                    );
                    stats.changed += 1;
                }
                Err(_) => stats.new += 1,
            }
            // Write to a temp file created with the final mode, then rename: a key is never
            // readable by others, not even for a moment.
            let tmp = target.with_extension("kubeha-tmp");
            let _ = std::fs::remove_file(&tmp);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(a.mode)
                .open(&tmp)
                .map_err(|source| WriteError::Write {
                    path: at(&tmp),
                    source,
                })?;
            f.write_all(&a.contents)
                .and_then(|_| f.sync_all())
                .map_err(|source| WriteError::Write {
                    path: at(&tmp),
                    source,
                })?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(a.mode)).map_err(
                |source| WriteError::Mode {
                    path: at(&tmp),
                    source,
                },
            )?;
            std::fs::rename(&tmp, &target).map_err(|source| WriteError::Write {
                path: at(&target),
                source,
            })?;
        }
    }
    Ok(stats)
}
