//! How kubeha reaches a node: run a shell script there with optional stdin and a timeout.
//! Uploads are built on that one primitive (see `upload`), so every transport gets the same
//! atomic write, mode and owner handling.

#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod local;
pub mod ssh;

use std::time::Duration;

use futures_util::future::BoxFuture;
use plan::Phase;

/// One script to run on a node with `sh -eu`.
#[derive(Debug, Clone)]
pub struct Exec {
    pub script: String,
    pub stdin: Vec<u8>,
    pub timeout: Duration,
    /// What the script is for: logs say so, and a scripted transport answers by it.
    pub purpose: Purpose,
}

/// Why kubeha runs a script on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// A node's steps of one phase that run now, in one command (each its files, its script,
    /// its record; `executor::batch`).
    Steps(Phase),
    /// Read the step records, the digests of kubeha's files and the node's clock
    /// (`record::read_script`).
    Records,
    /// Who answers ARP for the VIP.
    VipNeighbour,
    /// Whether Kubernetes' own tools are installed.
    Tools,
    /// Whether the node holds the VIP (`status::vip_probe`).
    VipProbe,
    /// Whether the node's etcd member is healthy (`status::etcd_probe`).
    EtcdProbe,
    /// `kubeha status`'s read-only script.
    Status,
    Other,
}

impl Exec {
    pub fn new(script: impl Into<String>, timeout: Duration) -> Self {
        Exec {
            script: script.into(),
            stdin: Vec::new(),
            timeout,
            purpose: Purpose::Other,
        }
    }

    pub fn purpose(mut self, purpose: Purpose) -> Self {
        self.purpose = purpose;
        self
    }
}

/// What a finished script left behind.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// `None` when the script died from a signal or the session closed without a status.
    pub exit: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.exit == Some(0)
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error(
        "host key of {host} does not match {known_hosts} line {line}: refusing to connect (if the host was reinstalled, remove that line)"
    )]
    HostKeyMismatch {
        host: String,
        known_hosts: String,
        line: usize,
    },
    #[error(
        "host key of {host} ({fingerprint}) is not in {known_hosts}: add it, or pass --accept-new-host-keys to trust it on first use"
    )]
    UnknownHostKey {
        host: String,
        fingerprint: String,
        known_hosts: String,
    },
    #[error("authentication as {user}@{host} failed: {reason}")]
    Auth {
        user: String,
        host: String,
        reason: String,
    },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Other(String),
}

/// A connected node: runs one script there. SSH, the local shell, and in tests a scripted
/// fake. Boxed futures keep it object-safe, so nodes of different kinds mix in one run.
pub trait Transport: Send + Sync {
    fn run<'a>(&'a self, exec: &'a Exec) -> BoxFuture<'a, Result<Output, TransportError>>;

    /// `local` or `ssh user@host:port`, for logs.
    fn describe(&self) -> String;
}

impl Transport for local::Local {
    fn run<'a>(&'a self, exec: &'a Exec) -> BoxFuture<'a, Result<Output, TransportError>> {
        Box::pin(local::Local::run(self, exec))
    }
    fn describe(&self) -> String {
        local::Local::describe(self)
    }
}

impl Transport for ssh::SshSession {
    fn run<'a>(&'a self, exec: &'a Exec) -> BoxFuture<'a, Result<Output, TransportError>> {
        Box::pin(ssh::SshSession::run(self, exec))
    }
    fn describe(&self) -> String {
        ssh::SshSession::describe(self)
    }
}
