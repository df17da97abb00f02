//! `kubeha plan`: validate, then print (and optionally write) the Plan.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use inventory::{LoadError, Severity};

use crate::EXIT_INVALID;

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

/// The inventory and its PKI store: every command that works on a cluster takes these.
#[derive(Args, Clone)]
pub struct InventoryArgs {
    /// Inventory file
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        default_value = "cluster.yaml"
    )]
    pub file: PathBuf,
    /// PKI store (default: pki/ next to the inventory)
    #[arg(long, value_name = "DIR")]
    pub pki_dir: Option<PathBuf>,
}

impl InventoryArgs {
    pub fn pki_dir(&self) -> PathBuf {
        self.pki_dir
            .clone()
            .unwrap_or_else(|| default_pki_dir(&self.file))
    }
}

/// Where the PKI store of an inventory lives unless told otherwise: beside the file.
pub fn default_pki_dir(inventory: &Path) -> PathBuf {
    inventory
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("pki")
}

/// The run-time inputs of a Plan: a freshly minted bootstrap token (never a well-known one)
/// and, once issued, the PKI's files and CA hash.
pub fn plan_inputs(
    inv: &inventory::Inventory,
    inventory_path: &Path,
    pki_dir: &Path,
) -> Result<plan::Inputs, String> {
    let now = pki::time::OffsetDateTime::now_utc();
    let token = pki::generate_token(std::time::Duration::from_secs(2 * 3600), now)
        .map_err(|e| format!("cannot mint a bootstrap token: {e}"))?;
    let issued = pki_dir.join(pki::CaKind::Ca.cert_rel()).exists();
    let pki_files = if issued {
        Some(
            plan::pki::artifacts(&pki::Store::open(pki_dir), inv).map_err(|e| {
                format!(
                    "PKI store {}: {e} (run `kubeha pki issue -f FILE --dir {0}`)",
                    pki_dir.display()
                )
            })?,
        )
    } else {
        None
    };
    Ok(plan::Inputs {
        render: render::Inputs {
            bootstrap_token: token.token.to_string(),
            ca_cert_hash: plan::pki::ca_hash(pki_dir),
        },
        pki: pki_files,
        kubeha_binary: None,
        bundle: read_bundle(inv, inventory_path)?,
    })
}

/// The .deb files of `packages.bundle` (relative to the inventory), as files for every node.
fn read_bundle(
    inv: &inventory::Inventory,
    inventory_path: &Path,
) -> Result<Vec<plan::Artifact>, String> {
    let Some(dir) = inv
        .packages
        .bundle
        .as_ref()
        .filter(|_| inv.packages.source == inventory::PackageSource::Bundle)
    else {
        return Ok(Vec::new());
    };
    let dir = inventory_path.parent().unwrap_or(Path::new(".")).join(dir);
    let cannot = |e: std::io::Error| {
        format!(
            "packages.bundle {}: {e} (give a directory of .deb files, relative to the inventory)",
            dir.display()
        )
    };
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(cannot)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort();
    if debs.is_empty() {
        return Err(format!(
            "packages.bundle {}: no .deb files there (kubelet, kubeadm, kubectl, containerd and their dependencies)",
            dir.display()
        ));
    }
    debs.iter()
        .map(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            Ok(plan::Artifact {
                path: format!("{}/{name}", render::paths::BUNDLE_DIR),
                mode: 0o644,
                owner: "root:root".to_string(),
                contents: std::fs::read(p).map_err(cannot)?,
                sensitive: false,
                purpose: "offline package from packages.bundle".to_string(),
            })
        })
        .collect()
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// Loads the inventory, printing warnings; on failure prints every problem and returns the
/// exit code to use.
pub fn load_inventory(path: &Path) -> Result<inventory::Loaded, u8> {
    match inventory::load(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{w}");
            }
            Ok(loaded)
        }
        Err(LoadError::Invalid(diags)) => {
            for d in &diags {
                eprintln!("{d}");
            }
            let errors = diags
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            eprintln!(
                "kubeha: {} has {errors} error(s); nothing was changed",
                path.display()
            );
            Err(EXIT_INVALID)
        }
        Err(e @ LoadError::Io { .. }) => {
            eprintln!("kubeha: {e}");
            Err(EXIT_INVALID)
        }
    }
}

pub fn run(args: PlanArgs) -> u8 {
    let loaded = match load_inventory(&args.inventory.file) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let inv = &loaded.inventory;
    let pki_dir = args.inventory.pki_dir();
    let inputs = match plan_inputs(inv, &args.inventory.file, &pki_dir) {
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
    let mut out = std::io::stdout().lock();
    let res = match args.output {
        Format::Json => serde_json::to_writer_pretty(&mut out, &plan.to_json())
            .map_err(std::io::Error::other)
            .and_then(|_| writeln!(out)),
        Format::Text => print_text(&mut out, &plan),
    };
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
        .map(|n| n.roles.join(",").len())
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
            n.roles.join(","),
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

fn write_tree(plan: &plan::Plan, dir: &Path) -> Result<WriteStats, String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
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
                .ok_or_else(|| format!("bad artifact path {}", a.path))?;
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e} (check -o DIR)", parent.display()))?;
            match std::fs::read(&target) {
                Ok(old) if old == a.contents => {
                    stats.unchanged += 1;
                    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(a.mode))
                        .map_err(|e| format!("cannot set mode on {}: {e}", target.display()))?;
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
                .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
            f.write_all(&a.contents)
                .and_then(|_| f.sync_all())
                .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(a.mode))
                .map_err(|e| format!("cannot set mode on {}: {e}", tmp.display()))?;
            std::fs::rename(&tmp, &target)
                .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        }
    }
    Ok(stats)
}
