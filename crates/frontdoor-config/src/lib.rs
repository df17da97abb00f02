//! The front door's config file as typed values, read with serde-saphyr spans so every error
//! names the `file:line:column` of the value, and written back as YAML for `kubeha plan`.
//!
//! Optional fields are `None` when the file does not set them (so a written file says only
//! what was set); the methods of the same name give the value in force, with the defaults of
//! [`defaults`]. No I/O except [`load`], which reads the one file.

mod parse;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Serialize, Serializer};
pub use vrrp::{AdvertInterval, Priority, Vrid};

pub use parse::{Parsed, Pos, parse};

/// Where the daemon serves Prometheus metrics unless the file says otherwise; what
/// `kubeha plan` renders, the lab uses and `kubeha status` reads on every node.
pub const DEFAULT_METRICS_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 9100));

/// The value in force when an optional field is left out (docs/frontdoor.md).
pub mod defaults {
    use std::time::Duration;

    pub const PREEMPT: bool = true;
    pub const LOCAL_WEIGHT: u8 = 50;
    pub const VIP_LIFETIME: Duration = Duration::from_secs(2);
    pub const HANDOVER_TIMEOUT: Duration = Duration::from_secs(3);
    pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
    pub const MAX_CONNECTIONS: usize = 20_000;
    /// The VRRP thread's SCHED_FIFO priority: above every ordinary thread, well below the
    /// kernel's own real-time threads (keepalived's `vrrp_rt_priority` is unset by default;
    /// its docs suggest a low value).
    pub const REALTIME_PRIORITY: u8 = 10;
    pub const HTTP_PATH: &str = "/healthz";
    pub const HTTPS_PATH: &str = "/readyz";
    /// `health.timeout` left out: the interval, but at most this.
    pub const CHECK_TIMEOUT_MAX: Duration = Duration::from_secs(1);
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrontdoorConfig {
    pub interface: String,
    pub vip: VipCidr,
    pub vrid: Vrid,
    pub priority: Priority,
    /// `None`: VRRP's default, 1 s ([`AdvertInterval::DEFAULT`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advert_interval: Option<AdvertInterval>,
    /// Empty: multicast to 224.0.0.18.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unicast_peers: Vec<Ipv4Addr>,
    /// This node's own address, the VRRP source; `None`: the interface's primary address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Ipv4Addr>,
    pub checksum: Checksum,
    pub preempt: bool,
    pub listen: SocketAddr,
    pub backends: Vec<SocketAddr>,
    pub balance: Balance,
    pub health: HealthConfig,
    pub metrics: Metrics,
    /// How far priority drops while this node's own backend is not ready (keepalived's
    /// weight); more than the spread of the priorities, so a healthy node takes over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_weight: Option<u8>,
    /// The holder's VIP valid lifetime, refreshed while it holds it.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_duration"
    )]
    pub vip_lifetime: Option<Duration>,
    /// On SIGTERM: how long to keep the VIP waiting for the new master.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_duration"
    )]
    pub handover_timeout: Option<Duration>,
    /// keepalived's `preempt_delay`: how long a backup follows a lower-priority master before
    /// it preempts. Default: (fall + 1) health intervals, the time every node's checks need to
    /// see the same backends down, so an outage of every apiserver (whose priority drops come
    /// a check apart on each node) moves the VIP nowhere.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_duration"
    )]
    pub preempt_delay: Option<Duration>,
    /// On SIGTERM: how long open connections may finish.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_duration"
    )]
    pub drain_timeout: Option<Duration>,
    /// One backend connect attempt; then the next backend is tried.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_duration"
    )]
    pub connect_timeout: Option<Duration>,
    /// Idle sessions are closed after this long (watches idle for minutes).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_duration"
    )]
    pub idle_timeout: Option<Duration>,
    /// Open sessions at most.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Close a backend's open sessions when it leaves rotation, so watches move to a healthy
    /// apiserver (haproxy's `on-marked-down shutdown-sessions`). Default true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_sessions_on_down: Option<bool>,
    /// `SCHED_FIFO` priority of the VRRP thread (keepalived's `vrrp_rt_priority`), 1-99; 0 =
    /// ordinary scheduling. Default [`defaults::REALTIME_PRIORITY`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realtime_priority: Option<u8>,
}

impl FrontdoorConfig {
    /// A config with every optional field left out: multicast, keepalived's checksum,
    /// preempt, round robin, metrics on [`DEFAULT_METRICS_ADDR`].
    pub fn new(
        interface: impl Into<String>,
        vip: VipCidr,
        vrid: Vrid,
        priority: Priority,
        listen: SocketAddr,
        backends: Vec<SocketAddr>,
        health: HealthConfig,
    ) -> FrontdoorConfig {
        FrontdoorConfig {
            interface: interface.into(),
            vip,
            vrid,
            priority,
            advert_interval: None,
            unicast_peers: Vec::new(),
            source: None,
            checksum: Checksum::Keepalived,
            preempt: defaults::PREEMPT,
            listen,
            backends,
            balance: Balance::RoundRobin,
            health,
            metrics: Metrics::Listen(DEFAULT_METRICS_ADDR),
            local_weight: None,
            vip_lifetime: None,
            handover_timeout: None,
            preempt_delay: None,
            drain_timeout: None,
            connect_timeout: None,
            idle_timeout: None,
            max_connections: None,
            close_sessions_on_down: None,
            realtime_priority: None,
        }
    }

    pub fn advert_interval(&self) -> AdvertInterval {
        self.advert_interval.unwrap_or_default()
    }
    pub fn local_weight(&self) -> u8 {
        self.local_weight.unwrap_or(defaults::LOCAL_WEIGHT)
    }
    pub fn vip_lifetime(&self) -> Duration {
        self.vip_lifetime.unwrap_or(defaults::VIP_LIFETIME)
    }
    pub fn preempt_delay(&self) -> Duration {
        self.preempt_delay
            .unwrap_or(self.health.interval * (self.health.fall + 1))
    }
    pub fn handover_timeout(&self) -> Duration {
        self.handover_timeout.unwrap_or(defaults::HANDOVER_TIMEOUT)
    }
    pub fn drain_timeout(&self) -> Duration {
        self.drain_timeout.unwrap_or(defaults::DRAIN_TIMEOUT)
    }
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout.unwrap_or(defaults::CONNECT_TIMEOUT)
    }
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout.unwrap_or(defaults::IDLE_TIMEOUT)
    }
    pub fn max_connections(&self) -> usize {
        self.max_connections.unwrap_or(defaults::MAX_CONNECTIONS)
    }
    pub fn close_sessions_on_down(&self) -> bool {
        self.close_sessions_on_down.unwrap_or(true)
    }
    pub fn realtime_priority(&self) -> u8 {
        self.realtime_priority
            .unwrap_or(defaults::REALTIME_PRIORITY)
    }

    /// The file as YAML (no header comment).
    pub fn to_yaml(&self) -> Result<String, WriteError> {
        serde_saphyr::to_string(self).map_err(|e| WriteError(e.to_string()))
    }
}

/// The config could not be written as YAML (it holds only plain data, so this is a bug).
#[derive(Debug, thiserror::Error)]
#[error("cannot write the front door config as YAML: {0}")]
pub struct WriteError(String);

/// The active health check of every backend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthConfig {
    pub kind: HealthKind,
    /// HTTP(S) path; `None`: `/healthz` (http) or `/readyz` (https).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// https: the only trusted CA (PEM path); required for https.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    #[serde(serialize_with = "duration")]
    pub interval: Duration,
    pub fall: u32,
    pub rise: u32,
    /// Check this port instead of the backend's (e.g. etcd's plain-HTTP metrics port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Client certificate and key (PEM paths) for backends that require mutual TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    /// Bound on one check; `None`: the interval, at most 1 s.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_duration"
    )]
    pub timeout: Option<Duration>,
}

impl HealthConfig {
    /// A check of `kind` every `interval`, down after `fall` failures, up after `rise`
    /// successes; no path, CA, port, client identity or timeout set.
    pub fn new(kind: HealthKind, interval: Duration, fall: u32, rise: u32) -> HealthConfig {
        HealthConfig {
            kind,
            path: None,
            ca: None,
            interval,
            fall,
            rise,
            port: None,
            client_cert: None,
            client_key: None,
            timeout: None,
        }
    }

    /// The HTTP(S) path in force (ignored for tcp).
    pub fn path(&self) -> &str {
        match (&self.path, self.kind) {
            (Some(p), _) => p,
            (None, HealthKind::Https) => defaults::HTTPS_PATH,
            (None, _) => defaults::HTTP_PATH,
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
            .unwrap_or(self.interval.min(defaults::CHECK_TIMEOUT_MAX))
    }
}

/// `address/prefix`; written without a prefix it means /32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VipCidr {
    pub address: Ipv4Addr,
    pub prefix: u8,
}

impl fmt::Display for VipCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl Serialize for VipCidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Checksum {
    /// IPv4 pseudo-header with the real destination (keepalived's v3 default).
    Keepalived,
    /// The VRRP message only (RFC 9568).
    Rfc9568,
}

impl From<Checksum> for vrrp::ChecksumMode {
    fn from(c: Checksum) -> vrrp::ChecksumMode {
        match c {
            Checksum::Keepalived => vrrp::ChecksumMode::Keepalived,
            Checksum::Rfc9568 => vrrp::ChecksumMode::Rfc9568,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    RoundRobin,
    LeastConnections,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthKind {
    Https,
    Http,
    Tcp,
}

/// `metrics:` an address to serve Prometheus text on, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metrics {
    Off,
    Listen(SocketAddr),
}

impl Metrics {
    pub fn address(self) -> Option<SocketAddr> {
        match self {
            Metrics::Off => None,
            Metrics::Listen(a) => Some(a),
        }
    }
}

impl Serialize for Metrics {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Metrics::Off => s.serialize_str("off"),
            Metrics::Listen(a) => s.collect_str(a),
        }
    }
}

fn duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&vrrp::params::format_duration(*d))
}

fn opt_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => duration(d, s),
        None => s.serialize_none(),
    }
}

/// A config problem, printed as `file:line:column: error: field: message (hint)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: error: {field}: {message} ({hint})")]
pub struct ConfigError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub field: String,
    pub message: String,
    pub hint: String,
}

/// Reads and parses one config file.
pub fn load(path: &Path) -> Result<Parsed, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 0,
        column: 0,
        field: "-c".into(),
        message: format!("cannot read the file: {e}"),
        hint: "give the path of a front door config; `kubeha plan -o DIR` writes one per control-plane node".into(),
    })?;
    parse(&text, &file)
}
