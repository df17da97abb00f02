//! Network-namespace labs on one Linux machine: node namespaces on a bridge, processes started
//! inside them, faults (kill, stop, cable pull). Used by `kubeha lab` and the integration tests.
//! Everything made is removed by guards (Drop), by PID, also when a test fails.

pub mod cluster;
pub mod drill;
pub mod netns;
pub mod probe;
pub mod topology;

pub use netns::{Netns, Proc};
pub use topology::{Host, Topology};

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("cannot start {0}: {1}")]
    Spawn(String, #[source] std::io::Error),
    #[error("{command} failed with status {status}: {stderr}")]
    Command {
        command: String,
        status: i32,
        stderr: String,
    },
    #[error(
        "network namespace {0} already exists and is not this lab's; remove it or pick another --name"
    )]
    Exists(String),
    #[error("{0}")]
    Invalid(String),
}

/// Whether this process may create namespaces (root).
pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}
