//! How kubeha reaches a node: run a shell script there with optional stdin and a timeout.
//! Uploads are built on that one primitive (see `upload`), so every transport gets the same
//! atomic write, mode and owner handling.

pub mod local;
pub mod ssh;

use std::time::Duration;

/// One script to run on a node with `sh -eu`.
#[derive(Debug, Clone)]
pub struct Exec {
    pub script: String,
    pub stdin: Vec<u8>,
    pub timeout: Duration,
}

impl Exec {
    pub fn new(script: impl Into<String>, timeout: Duration) -> Self {
        Exec {
            script: script.into(),
            stdin: Vec::new(),
            timeout,
        }
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

/// A connected node. An enum rather than a trait object: two transports, no boxing.
pub enum Transport {
    Local(local::Local),
    Ssh(ssh::SshSession),
}

impl Transport {
    pub async fn run(&self, exec: &Exec) -> Result<Output, TransportError> {
        match self {
            Transport::Local(t) => t.run(exec).await,
            Transport::Ssh(t) => t.run(exec).await,
        }
    }

    /// `local` or `ssh user@host:port`, for logs.
    pub fn describe(&self) -> String {
        match self {
            Transport::Local(t) => t.describe(),
            Transport::Ssh(t) => t.describe(),
        }
    }
}
