//! Executes a Plan on nodes. See README.md.

pub mod etcd;
pub mod executor;
pub mod kubernetes;
pub mod preflight;
pub mod record;
pub mod remove;
pub mod status;
pub mod transport;
pub mod up;
pub mod upload;

pub use executor::{
    At, Connections, Event, Failure, NodeReport, Observer, Options, Outcome, Report, Stop, Timing,
    execute,
};
pub use up::{Prepared, Request, UpError, prepare, up};
