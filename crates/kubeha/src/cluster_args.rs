//! What every command that works on a cluster takes (the inventory, its PKI store, an output
//! format), and loading the inventory with its diagnostics printed.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use inventory::{LoadError, Severity};

use crate::EXIT_INVALID;

/// The inventory and its PKI store.
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
            .unwrap_or_else(|| plan::load::default_pki_dir(&self.file))
    }
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

/// `20261202T131131Z`: sorts by time, and is a file name everywhere (snapshots, logs, what
/// day-2 commands keep aside on nodes).
pub fn stamp() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(['-', ':'], "")
}
