//! kubeha front door: the L4 data path, health checks and metrics.
//!
//! - [`pool`]: backends, balancing (round robin, least connections) and the pure health
//!   state machine (fall / rise / passive ejection), with a [`pool::HealthSummary`] watch.
//! - [`proxy`]: the TCP proxy (retry on the next backend, half-close, idle timeout,
//!   connection limit, graceful drain).
//! - [`health`]: active checks (TCP, HTTP, HTTPS with only the given CA trusted).
//! - [`metrics`]: atomic counters, OpenMetrics text rendering and a `/metrics` server.
//! - [`vrrp_metrics`]: the VRRP side's metrics, a collector in the same registry.
//! - [`config`]: the daemon's config file, parsed with file:line:column errors.
//! - [`daemon`]: the wiring: VIP (`vip` crate) + pool + checks + proxy + metrics, priority
//!   following health, make-before-break shutdown.

pub mod config;
pub mod daemon;
pub mod health;
pub mod metrics;
pub mod pool;
pub mod proxy;
#[cfg(target_os = "linux")]
mod splice;
pub mod vrrp_metrics;

pub use health::{CheckKind, HealthCheck, run_health_checks};
pub use metrics::{Metrics, serve_metrics};
pub use pool::{Balance, HealthSummary, Pool};
pub use proxy::{ProxyConfig, run_proxy};
