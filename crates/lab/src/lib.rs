//! Network-namespace labs on one Linux machine: node namespaces on a bridge, processes started
//! inside them, faults (kill, stop, cable pull). Used by `kubeha lab`.
//! Everything made is removed by guards (Drop), by PID, also when a test fails.
//! The namespaces themselves come from the netns crate, re-exported here.

pub mod cluster;
pub mod drill;
pub mod kubedrill;
pub mod kubernetes;
pub mod state_file;

pub use netns::Error as LabError;
pub use netns::{Host, Netns, Proc, Topology, is_root, topology};
// `lab::netns::…` and `crate::netns::…` name the netns crate.
pub use ::netns;
