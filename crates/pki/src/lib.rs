//! kubeha's PKI: the complete kubeadm certificate layout for an HA control plane, an on-disk
//! store with per-node trees, kubeconfigs, bootstrap tokens and the CA discovery hash.
//!
//! Rendering takes an injected clock (`now`); randomness (keys, serials, tokens) comes from
//! aws-lc-rs's CSPRNG.

pub mod check;
pub mod error;
mod fsutil;
pub mod kubeconfig;
pub mod layout;
pub mod spec;
pub mod store;
pub mod token;
pub mod x509;

pub use check::{CertRow, CheckReport, inspect_node_tree, inspect_store};
pub use error::PkiError;
pub use fsutil::{CERT_MODE, KEY_MODE};
pub use layout::CaKind;
pub use spec::{Endpoint, KeyType, KubeVersion, NodeId, PkiSpec, Roles};
pub use store::{
    Action, Artifact, IssueOptions, NODE_ROOT, RenewOptions, Report, ReportEntry, Store,
};
pub use token::{BootstrapToken, IssuedToken, generate_token, parse_duration};
pub use x509::{CertInfo, San, Usage, discovery_hash};

/// The `time` crate this API uses (`OffsetDateTime` for `now`), so callers need no own dependency.
pub use time;
