//! The kubeha inventory (`cluster.yaml`): parsing with source positions and validation into
//! types the renderers can trust. Pure: no I/O except `load`, which reads the one file.

mod diag;
mod raw;
mod types;
mod validate;

use std::path::Path;

pub use diag::{Diagnostic, Pos, Severity};
pub use types::*;
pub use validate::MIN_KUBE_MINOR;

/// A validated inventory and the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub inventory: Inventory,
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source} (check the path given with -f)")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Every problem found, errors and warnings, in file order.
    #[error("{} problem(s) in the inventory", .0.len())]
    Invalid(Vec<Diagnostic>),
}

/// Parses and validates inventory text. `file` is the name used in diagnostics.
pub fn parse_str(src: &str, file: &str) -> Result<Loaded, LoadError> {
    let raw: raw::RawInventory = match serde_saphyr::from_str(src) {
        Ok(r) => r,
        Err(e) => return Err(LoadError::Invalid(vec![diag::from_yaml_error(file, &e)])),
    };
    let mut sink = diag::Sink::new(file);
    let inv = validate::validate(raw, &mut sink);
    let mut items = sink.items;
    items.sort_by_key(|d| (d.line, d.column));
    match inv {
        Some(inventory) if !items.iter().any(|d| d.severity == Severity::Error) => Ok(Loaded {
            inventory,
            warnings: items,
        }),
        _ => Err(LoadError::Invalid(items)),
    }
}

/// The JSON Schema of cluster.yaml (draft 2020-12), generated from the types the file is read
/// into, so it cannot drift from the parser: unknown keys are refused, required keys marked.
/// Value rules (addresses, CIDRs, versions) are checked by validation, not by the schema.
/// Checked in as docs/cluster.schema.json (a test keeps it current); `kubeha schema` prints it.
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(raw::RawInventory);
    schema.insert("title".into(), "kubeha inventory (cluster.yaml)".into());
    schema.insert(
        "description".into(),
        "One file describes the whole cluster; see docs/inventory.md.".into(),
    );
    schema.to_value()
}

/// Reads and validates an inventory file.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let src = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_str(&src, &path.display().to_string())
}
