//! `kubeha pki`: issue / check / renew certificates, CA discovery hash, bootstrap tokens.
//!
//! Wiring (lead): add `pki = { path = "../pki", package = "kubeha-pki" }` to this crate
//! (no other new dependency: clap is there, `time` comes re-exported as `pki::time`),
//! `mod cmd_pki;` in main.rs, a `Pki(cmd_pki::PkiArgs)` subcommand, and map
//! `run`'s `Ok(code)` to the exit status and `Err(msg)` to a message + exit 2.
//! `pki issue -f cluster.yaml` maps the inventory with `plan::pki::spec`; `--spec spec.yaml`
//! takes a PKI spec directly.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use pki::time::OffsetDateTime;
use pki::time::format_description::well_known::Rfc3339;
use pki::{CaKind, IssueOptions, PkiSpec, RenewOptions, Store};

/// `kubeha pki ...`
#[derive(Args, Debug)]
pub struct PkiArgs {
    #[command(subcommand)]
    pub command: PkiCommand,
}

/// The `pki` subcommands.
#[derive(Subcommand, Debug)]
pub enum PkiCommand {
    /// Issue the cluster's certificates, keys and kubeconfigs (reusing what is valid)
    Issue(IssueArgs),
    /// List every certificate with its expiry; exit 1 if one expires within --warn-days
    Check(CheckArgs),
    /// Reissue leaf certificates with the same CAs (new keys, same names)
    Renew(RenewArgs),
    /// Print the discovery hash (sha256 of the CA's public key) for `kubeadm join`
    Hash(HashArgs),
    /// Generate a bootstrap token ([a-z0-9]{6}.[a-z0-9]{16})
    Token(TokenArgs),
}

/// `pki issue`
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["file", "spec"])))]
pub struct IssueArgs {
    /// Cluster inventory
    #[arg(short = 'f', long = "file", value_name = "cluster.yaml")]
    pub file: Option<PathBuf>,
    /// PKI spec file (endpoint, control_plane, etcd, ...), instead of an inventory
    #[arg(long, value_name = "spec.yaml")]
    pub spec: Option<PathBuf>,
    /// Store directory (per-node trees end up in DIR/nodes/<node>/); default: pki/ beside the
    /// inventory, where `plan` and `up` look, or ./pki with --spec
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Replace this CA (ca, front-proxy-ca, etcd-ca, sa) even though it exists; the old files
    /// are moved to DIR/replaced/. Everything the CA signed is reissued
    #[arg(long = "replace-ca", value_name = "CA")]
    pub replace_ca: Vec<String>,
    /// Reissue leaves that expire within this many days
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub renew_before_days: u64,
}

/// `pki check`
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Store directory to inspect
    #[arg(long, value_name = "DIR", conflicts_with = "node_path")]
    pub dir: Option<PathBuf>,
    /// A node's Kubernetes directory to inspect (e.g. /etc/kubernetes)
    #[arg(long, value_name = "PATH")]
    pub node_path: Option<PathBuf>,
    /// Exit 1 if a certificate expires within this many days
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub warn_days: i64,
}

/// `pki renew`
#[derive(Args, Debug)]
pub struct RenewArgs {
    /// Store directory
    #[arg(long, value_name = "DIR", default_value = "pki")]
    pub dir: PathBuf,
    /// Renew only this one (apiserver, etcd/server, etcd/peer[m1], admin.conf, ...)
    #[arg(long, value_name = "NAME")]
    pub only: Option<String>,
    /// New validity in days (default: each certificate keeps its validity period)
    #[arg(long, value_name = "DAYS")]
    pub days: Option<u64>,
}

/// `pki hash`
#[derive(Args, Debug)]
pub struct HashArgs {
    /// CA certificate (PEM)
    #[arg(long, value_name = "FILE")]
    pub ca: PathBuf,
}

/// `pki token`
#[derive(Args, Debug)]
pub struct TokenArgs {
    /// Lifetime (24h, 1h30m, 7d; 0 = never expires)
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub ttl: String,
}

/// Why a `pki` subcommand could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum PkiCmdError {
    #[error("give -f cluster.yaml or --spec spec.yaml")]
    NoInput,
    #[error("{}: fix the inventory first; nothing was issued", .0.display())]
    Inventory(PathBuf),
    #[error("--replace-ca {0}: expected one of ca, front-proxy-ca, etcd-ca, sa")]
    ReplaceCa(String),
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: pki::PkiError,
    },
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Runs a `pki` subcommand. `Ok(0)` success, `Ok(1)` `check` found certificates expiring
/// within the threshold (or unreadable ones); `Err` is for the user.
pub fn run(args: PkiArgs) -> Result<i32, PkiCmdError> {
    let now = OffsetDateTime::now_utc();
    let mut out = std::io::stdout().lock();
    run_to(args, now, &mut out)
}

/// [`run`] with the clock and output injected.
pub fn run_to(
    args: PkiArgs,
    now: OffsetDateTime,
    out: &mut dyn std::io::Write,
) -> Result<i32, PkiCmdError> {
    let w = |out: &mut dyn std::io::Write, s: &str| out.write_all(s.as_bytes());
    match args.command {
        PkiCommand::Issue(a) => {
            let spec = match (&a.file, &a.spec) {
                (Some(f), _) => spec_from_inventory(f)?,
                (None, Some(s)) => {
                    let text = std::fs::read_to_string(s).map_err(|source| PkiCmdError::Read {
                        path: s.clone(),
                        source,
                    })?;
                    PkiSpec::from_yaml(&text).map_err(|source| PkiCmdError::File {
                        path: s.clone(),
                        source,
                    })?
                }
                (None, None) => return Err(PkiCmdError::NoInput),
            };
            let mut replace_ca = BTreeSet::new();
            for name in &a.replace_ca {
                let k = CaKind::parse(name).ok_or_else(|| PkiCmdError::ReplaceCa(name.clone()))?;
                replace_ca.insert(k);
            }
            let opts = IssueOptions {
                replace_ca,
                renew_before: Duration::from_secs(a.renew_before_days.saturating_mul(86400)),
            };
            let dir = match (&a.dir, &a.file) {
                (Some(d), _) => d.clone(),
                (None, Some(f)) => plan::load::default_pki_dir(f),
                (None, None) => PathBuf::from("pki"),
            };
            let store = Store::open(&dir);
            let report = store.issue(&spec, now, &opts)?;
            w(out, &report.to_string())?;
            let ca = std::fs::read(dir.join(CaKind::Ca.cert_rel()))?;
            let hash = pki::discovery_hash(&ca)?;
            w(
                out,
                &format!(
                    "discovery hash: {hash}\nper-node trees: {}/<node>/ (copy to /etc/kubernetes)\n",
                    dir.join("nodes").display()
                ),
            )?;
            Ok(0)
        }
        PkiCommand::Check(a) => {
            let report = match (&a.dir, &a.node_path) {
                (_, Some(p)) => pki::inspect_node_tree(p, now),
                (Some(d), None) => pki::inspect_store(d, now),
                (None, None) => pki::inspect_store(Path::new("pki"), now),
            }?;
            w(out, &report.table())?;
            let expiring = report.expiring(a.warn_days);
            for r in &expiring {
                let when = r.not_after.format(&Rfc3339).unwrap_or_default();
                let what = if r.days_left < 0 {
                    "EXPIRED"
                } else {
                    "expires soon"
                };
                w(
                    out,
                    &format!("{what}: {} on {when} ({} days)\n", r.source, r.days_left),
                )?;
            }
            if report.ok(a.warn_days) {
                w(
                    out,
                    &format!(
                        "{} certificate(s), none expires within {} days\n",
                        report.rows.len(),
                        a.warn_days
                    ),
                )?;
                Ok(0)
            } else {
                w(
                    out,
                    &format!(
                        "{} certificate(s) expire within {} days, {} unreadable file(s)\n",
                        expiring.len(),
                        a.warn_days,
                        report.errors.len()
                    ),
                )?;
                Ok(1)
            }
        }
        PkiCommand::Renew(a) => {
            let opts = RenewOptions {
                leaf_validity: a.days.map(|d| Duration::from_secs(d.saturating_mul(86400))),
            };
            let report = Store::open(&a.dir).renew(now, a.only.as_deref(), &opts)?;
            w(out, &report.to_string())?;
            Ok(0)
        }
        PkiCommand::Hash(a) => {
            let bytes = std::fs::read(&a.ca).map_err(|source| PkiCmdError::Read {
                path: a.ca.clone(),
                source,
            })?;
            let hash = pki::discovery_hash(&bytes).map_err(|source| PkiCmdError::File {
                path: a.ca.clone(),
                source,
            })?;
            w(out, &format!("{hash}\n"))?;
            Ok(0)
        }
        PkiCommand::Token(a) => {
            let ttl = pki::parse_duration(&a.ttl)?;
            let t = pki::generate_token(ttl, now)?;
            w(out, &format!("{}\n", t.token))?;
            match t.expires {
                Some(e) => eprintln!(
                    "expires {} (ttl {})",
                    e.format(&Rfc3339).unwrap_or_default(),
                    a.ttl
                ),
                None => eprintln!("never expires (ttl 0)"),
            }
            Ok(0)
        }
    }
}

/// The PKI spec for a cluster inventory (validation errors are printed with their place).
pub fn spec_from_inventory(path: &Path) -> Result<PkiSpec, PkiCmdError> {
    let loaded = crate::cluster_args::load_inventory(path)
        .map_err(|_| PkiCmdError::Inventory(path.to_path_buf()))?;
    Ok(plan::pki::spec(&loaded.inventory))
}
