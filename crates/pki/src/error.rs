//! Library errors.

use std::path::PathBuf;

use crate::store::CLUSTER_MARKER;

/// Everything that can go wrong in this crate. No function of the crate panics on bad input
/// files; they return one of these.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The [`crate::PkiSpec`] is not usable (duplicate node, bad name, bad CIDR, ...).
    #[error("invalid PKI spec: {0}")]
    InvalidSpec(String),

    /// A file system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A file exists but its content is not what it should be (not PEM, not a certificate, ...).
    #[error("{}: {msg}", path.display())]
    BadFile {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },

    /// Key or certificate generation failed inside the crypto library.
    #[error("generating {what} failed: {msg}")]
    Generate {
        /// Which key or certificate.
        what: String,
        /// The library's message.
        msg: String,
    },

    /// An existing CA (or the service-account key pair) cannot be reused and will not be
    /// replaced without an explicit request.
    #[error(
        "{ca} ({}) cannot be reused: {reason}. Replacing it breaks {breaks}. \
         Re-run with --replace-ca {ca} to replace it (the old files are moved to replaced/)",
        path.display()
    )]
    CaNeedsReplacement {
        /// `ca`, `front-proxy-ca`, `etcd-ca` or `sa`.
        ca: String,
        /// The certificate (or key) file.
        path: PathBuf,
        /// Why it cannot be reused.
        reason: String,
        /// What stops working when it is replaced.
        breaks: String,
    },

    /// The store was issued for another cluster (its `cluster-name` file says which).
    #[error(
        "{} belongs to cluster {store:?}, not {wanted:?} (see its {CLUSTER_MARKER} file): give \
         this inventory a store of its own with --pki-dir DIR (kubeha pki: --dir DIR)",
        dir.display()
    )]
    OtherCluster {
        /// The store directory.
        dir: PathBuf,
        /// The cluster the store belongs to.
        store: String,
        /// The cluster of the spec.
        wanted: String,
    },

    /// A file that `issue` should have written is missing.
    #[error("{} is missing; run `kubeha pki issue` first", .0.display())]
    NotIssued(PathBuf),

    /// `renew --only NAME` named nothing that exists.
    #[error("no certificate named {name:?}; known names: {known}")]
    UnknownName {
        /// The name asked for.
        name: String,
        /// The names that exist.
        known: String,
    },

    /// A bootstrap token string is malformed.
    #[error("invalid bootstrap token: {0}")]
    InvalidToken(String),

    /// A duration string (such as `24h`) is malformed.
    #[error("invalid duration {0:?}: {1}")]
    InvalidDuration(String, String),

    /// A kubeconfig could not be read or written.
    #[error("kubeconfig {}: {msg}", path.display())]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

impl PkiError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PkiError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn bad(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        PkiError::BadFile {
            path: path.into(),
            msg: msg.into(),
        }
    }

    pub(crate) fn generate(what: impl Into<String>, err: impl std::fmt::Display) -> Self {
        PkiError::Generate {
            what: what.into(),
            msg: err.to_string(),
        }
    }
}
