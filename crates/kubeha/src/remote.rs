//! Reaching the inventory's nodes: SSH settings from the inventory and the command line,
//! connections made in parallel. Shared by `up` and `status`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use deploy::Connections;
use deploy::transport::local::Local;
use deploy::transport::ssh::{SshOptions, SshSession, SshTarget};
use deploy::transport::{Transport, TransportError};
use inventory::{Inventory, Node};

/// An `ssh.jump` the inventory validated but that does not make a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JumpError {
    #[error("jump host {jump}: {port} is not a port")]
    Port { jump: String, port: String },
    #[error("jump host {0}: expected user@host:port")]
    Shape(String),
}

#[derive(Args, Debug, Clone)]
pub struct SshArgs {
    /// OpenSSH known_hosts file that node host keys are checked against
    #[arg(long, value_name = "FILE", env = "KUBEHA_KNOWN_HOSTS")]
    pub known_hosts: Option<PathBuf>,
    /// Trust and record host keys not yet in known_hosts (first use); a changed key is still refused
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Reach this node with the local shell instead of SSH (kubeha running on the node itself)
    #[arg(long, value_name = "NODE")]
    pub local: Vec<String>,
    /// TCP connect plus SSH handshake limit per node
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// Nodes connected at once
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub concurrency: usize,
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from)
}

fn expand(p: &str, base: &Path) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        home().join(rest)
    } else if Path::new(p).is_absolute() {
        PathBuf::from(p)
    } else {
        base.join(p)
    }
}

/// `user@host:port` (user and port optional) for a jump host.
pub fn parse_jump(s: &str, default_user: &str) -> Result<SshTarget, JumpError> {
    let (user, rest) = match s.split_once('@') {
        Some((u, r)) => (u.to_string(), r),
        None => (default_user.to_string(), s),
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h.to_string(),
            p.parse::<u16>().map_err(|_| JumpError::Port {
                jump: s.to_string(),
                port: p.to_string(),
            })?,
        ),
        None => (rest.to_string(), 22),
    };
    if host.is_empty() || user.is_empty() {
        return Err(JumpError::Shape(s.to_string()));
    }
    Ok(SshTarget {
        host,
        port,
        user,
        key: None,
        jump: None,
    })
}

pub fn target(node: &Node, inventory_dir: &Path) -> Result<SshTarget, JumpError> {
    let key = node.ssh.key.as_deref().map(|k| expand(k, inventory_dir));
    let jump = match &node.ssh.jump {
        Some(j) => {
            let mut t = parse_jump(j, &node.ssh.user)?;
            t.key = key.clone();
            Some(Box::new(t))
        }
        None => None,
    };
    Ok(SshTarget {
        host: node.address.to_string(),
        port: node.ssh.port,
        user: node.ssh.user.clone(),
        key,
        jump,
    })
}

/// Connects to `names` (every node when empty), at most `args.concurrency` handshakes at once.
pub async fn connect_all(
    inv: &Inventory,
    inventory_path: &Path,
    names: &[String],
    args: &SshArgs,
) -> Connections {
    let dir = plan::load::inventory_dir(inventory_path).to_path_buf();
    let mut opts = SshOptions::new(
        args.known_hosts
            .clone()
            .unwrap_or_else(|| home().join(".ssh/known_hosts")),
    );
    opts.accept_new_host_keys = args.accept_new_host_keys;
    opts.connect_timeout = args.connect_timeout;
    let sem = tokio::sync::Semaphore::new(args.concurrency.max(1));
    let conns = inv
        .nodes
        .iter()
        .filter(|n| names.is_empty() || names.contains(&n.name))
        .map(|n| {
            let (sem, opts, dir) = (&sem, &opts, &dir);
            async move {
                let _permit = sem.acquire().await;
                if args.local.contains(&n.name) {
                    return (n.name.clone(), Ok(Box::new(Local) as Box<dyn Transport>));
                }
                let res = match target(n, dir) {
                    Ok(t) => SshSession::connect(&t, opts)
                        .await
                        .map(|s| Box::new(s) as Box<dyn Transport>),
                    Err(e) => Err(TransportError::Connect {
                        addr: n.address.to_string(),
                        reason: e.to_string(),
                    }),
                };
                (n.name.clone(), res)
            }
        });
    futures_util::future::join_all(conns)
        .await
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_hosts_parse_with_defaults() {
        let t = parse_jump("ops@198.18.0.2:2222", "root").unwrap();
        assert_eq!(
            (t.user.as_str(), t.host.as_str(), t.port),
            ("ops", "198.18.0.2", 2222)
        );
        let t = parse_jump("bastion", "admin").unwrap();
        assert_eq!(
            (t.user.as_str(), t.host.as_str(), t.port),
            ("admin", "bastion", 22)
        );
        assert!(
            parse_jump("ops@host:ssh", "root")
                .unwrap_err()
                .to_string()
                .contains("not a port")
        );
        assert!(parse_jump("@host", "root").is_err());
    }

    #[test]
    fn key_paths_expand_home_and_the_inventory_dir() {
        let base = Path::new("/srv/cluster");
        assert_eq!(
            expand("keys/id", base),
            PathBuf::from("/srv/cluster/keys/id")
        );
        assert_eq!(expand("/k", base), PathBuf::from("/k"));
        assert!(expand("~/.ssh/id", base).ends_with(".ssh/id"));
    }
}
