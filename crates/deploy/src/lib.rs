//! Executes a Plan on nodes. See README.md.

pub mod executor;
pub mod preflight;
pub mod record;
pub mod status;
pub mod transport;
pub mod upload;

pub use executor::{Connections, Event, Observer, Options, Outcome, Report, Stop, execute};
