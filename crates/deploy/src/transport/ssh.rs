//! SSH transport (russh): host keys checked against an OpenSSH known_hosts file, key or agent
//! authentication, an optional jump host, and one channel per script so runs can overlap.

mod known_hosts;

use std::borrow::Cow;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::ssh_key::{Algorithm, HashAlg};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, Preferred, Sig};
use tokio::time::{Instant, timeout_at};

use super::{Exec, Output, TransportError};
use known_hosts::Verdict;

/// Keepalive every 15 s without traffic; 4 unanswered ones (a minute) drop the connection.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_MAX: usize = 4;

/// Where to connect and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// An address (or a name the resolver, or the jump host, knows).
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Private key (OpenSSH format, unencrypted). `None`: the ssh-agent, then ~/.ssh/id_*.
    pub key: Option<PathBuf>,
    /// Reach `host` through this one (a direct-tcpip channel, like `ssh -J`).
    pub jump: Option<Box<SshTarget>>,
}

impl SshTarget {
    pub fn new(host: impl Into<String>, user: impl Into<String>) -> Self {
        SshTarget {
            host: host.into(),
            port: 22,
            user: user.into(),
            key: None,
            jump: None,
        }
    }

    /// `user@host:port`.
    pub fn display(&self) -> String {
        format!("{}@{}", self.user, self.host_port())
    }

    /// `host:port`, with an IPv6 address in brackets.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone)]
pub struct SshOptions {
    pub known_hosts: PathBuf,
    /// Trust and record a host not in `known_hosts` (never a changed key).
    pub accept_new_host_keys: bool,
    /// For each hop: TCP connect (or tunnel open), handshake and authentication.
    pub connect_timeout: Duration,
}

impl SshOptions {
    pub fn new(known_hosts: impl Into<PathBuf>) -> Self {
        SshOptions {
            known_hosts: known_hosts.into(),
            accept_new_host_keys: false,
            connect_timeout: Duration::from_secs(15),
        }
    }
}

/// An authenticated connection. Cheap to share: `run` takes `&self` and opens a channel per
/// call. Dropping it closes the connection (and the jump host's, if any).
pub struct SshSession {
    // Field order: the target's connection goes before the jump connection it rides on.
    handle: Handle<Client>,
    jump: Option<Box<SshSession>>,
    target: SshTarget,
}

impl SshSession {
    pub async fn connect(
        target: &SshTarget,
        opts: &SshOptions,
    ) -> Result<SshSession, TransportError> {
        let jump = match &target.jump {
            Some(j) => Some(Box::new(Box::pin(SshSession::connect(j, opts)).await?)),
            None => None,
        };
        let deadline = Instant::now() + opts.connect_timeout;
        let hop = connect_hop(target, opts, jump.as_deref());
        let handle = match timeout_at(deadline, hop).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(TransportError::Connect {
                    addr: target.display(),
                    reason: format!(
                        "no SSH session within {:?} (connect, handshake, authentication)",
                        opts.connect_timeout
                    ),
                });
            }
        };
        Ok(SshSession {
            handle,
            jump,
            target: SshTarget {
                jump: None,
                ..target.clone()
            },
        })
    }

    /// `ssh user@host:port`, plus ` via user@jump:port` for each jump host.
    pub fn describe(&self) -> String {
        let mut s = format!("ssh {}", self.target.display());
        let mut j = self.jump.as_deref();
        while let Some(hop) = j {
            s.push_str(" via ");
            s.push_str(&hop.target.display());
            j = hop.jump.as_deref();
        }
        s
    }

    /// Runs `sh -eu -c SCRIPT` (under `sudo -n` unless the user is root) on its own channel.
    /// The timeout covers opening the channel, stdin, and waiting for the exit status.
    pub async fn run(&self, exec: &Exec) -> Result<Output, TransportError> {
        let deadline = Instant::now() + exec.timeout;
        let channel = match timeout_at(deadline, self.handle.channel_open_session()).await {
            Err(_) => return Err(TransportError::Timeout(exec.timeout)),
            Ok(Err(e)) => {
                return Err(TransportError::Other(format!(
                    "{}: cannot open a channel: {e}",
                    self.describe()
                )));
            }
            Ok(Ok(c)) => c,
        };
        let (mut rd, wr) = channel.split();
        let command = remote_command(&self.target.user, &exec.script, exec.timeout);
        let work = async {
            wr.exec(true, command)
                .await
                .map_err(|e| TransportError::Other(format!("{}: exec: {e}", self.describe())))?;
            // Feed stdin while reading; a script that stops reading does not block the result.
            let feed = async {
                if !exec.stdin.is_empty() {
                    let _ = wr.data(exec.stdin.as_slice()).await;
                }
                let _ = wr.eof().await;
                std::future::pending::<Infallible>().await
            };
            let collect = async {
                let mut out = Output::default();
                let mut ended = false;
                while let Some(msg) = rd.wait().await {
                    match msg {
                        ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                        ChannelMsg::ExtendedData { data, ext: 1 } => {
                            out.stderr.extend_from_slice(&data)
                        }
                        ChannelMsg::ExitStatus { exit_status } => {
                            out.exit = i32::try_from(exit_status).ok();
                            ended = true;
                        }
                        ChannelMsg::ExitSignal { .. } => {
                            out.exit = None;
                            ended = true;
                        }
                        ChannelMsg::Failure => {
                            return Err(TransportError::Other(format!(
                                "{}: the server refused to run the command",
                                self.describe()
                            )));
                        }
                        ChannelMsg::Close => {
                            ended = true;
                            break;
                        }
                        _ => {}
                    }
                }
                if !ended {
                    return Err(TransportError::Other(format!(
                        "{}: connection lost before the script finished",
                        self.describe()
                    )));
                }
                Ok(out)
            };
            tokio::select! {
                r = collect => r,
                never = feed => match never {},
            }
        };
        match timeout_at(deadline, work).await {
            Ok(r) => r,
            Err(_) => {
                // The remote `timeout` ends the script; a signal is quicker where sshd takes it.
                let _ = wr.signal(Sig::TERM).await;
                let _ = wr.close().await;
                Err(TransportError::Timeout(exec.timeout))
            }
        }
    }

    /// Says goodbye to the server(s) and waits (up to 2 s each) until the connection is
    /// closed, instead of leaving that to a background task as dropping does.
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.handle).await;
        if let Some(j) = self.jump {
            Box::pin(j.close()).await;
        }
    }
}

/// `sh -eu -c 'script'` with the script single-quoted, behind `sudo -n` for non-root users.
/// coreutils `timeout` ends the script (and its process group) on the node when the run's
/// time is up: closing the channel alone leaves it running, and sshd refuses signal
/// requests on root logins.
fn remote_command(user: &str, script: &str, limit: Duration) -> String {
    let quoted = format!("'{}'", script.replace('\'', r"'\''"));
    let limit = format!("{}.{:03}s", limit.as_secs(), limit.subsec_millis());
    let sudo = if user == "root" { "" } else { "sudo -n " };
    format!("{sudo}timeout -k 5s {limit} sh -eu -c {quoted}")
}

/// Why the handshake stopped: our own verdict on the host key, or russh's error.
#[derive(Debug)]
enum HopError {
    Refused(TransportError),
    Ssh(russh::Error),
}

impl From<russh::Error> for HopError {
    fn from(e: russh::Error) -> Self {
        HopError::Ssh(e)
    }
}

/// Checks the server's key against known_hosts during the handshake.
struct Client {
    host: String,
    port: u16,
    known_hosts: PathBuf,
    accept_new: bool,
}

impl client::Handler for Client {
    type Error = HopError;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, HopError> {
        let key = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            // Never asked for; judge the key inside it as a plain host key.
            PublicKeyOrCertificate::Certificate(c) => PublicKey::new(c.public_key().clone(), ""),
        };
        self.check(&key).map(|()| true).map_err(HopError::Refused)
    }
}

impl Client {
    fn check(&self, key: &PublicKey) -> Result<(), TransportError> {
        let path = &self.known_hosts;
        let shown = path.display().to_string();
        let name = known_hosts::lookup_name(&self.host, self.port);
        let entries = known_hosts::entries_for(path, &self.host, self.port)
            .map_err(|e| TransportError::Other(format!("cannot read {shown}: {e}")))?;
        match known_hosts::verdict(&entries, key) {
            Verdict::Known => Ok(()),
            Verdict::Changed { line } => Err(TransportError::HostKeyMismatch {
                host: name,
                known_hosts: shown,
                line,
            }),
            Verdict::Revoked { line } => Err(TransportError::Other(format!(
                "host key of {name} is marked @revoked in {shown} line {line}: refusing to connect"
            ))),
            Verdict::Unknown if self.accept_new => {
                known_hosts::append(path, &self.host, self.port, key).map_err(|e| {
                    TransportError::Other(format!(
                        "cannot record the host key of {name} in {shown}: {e}"
                    ))
                })
            }
            Verdict::Unknown => Err(TransportError::UnknownHostKey {
                host: name,
                fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
                known_hosts: shown,
            }),
        }
    }
}

async fn connect_hop(
    target: &SshTarget,
    opts: &SshOptions,
    jump: Option<&SshSession>,
) -> Result<Handle<Client>, TransportError> {
    let addr = target.display();
    let connect_err = |reason: String| TransportError::Connect {
        addr: addr.clone(),
        reason,
    };
    let entries =
        known_hosts::entries_for(&opts.known_hosts, &target.host, target.port).map_err(|e| {
            TransportError::Other(format!("cannot read {}: {e}", opts.known_hosts.display()))
        })?;
    let config = Arc::new(client::Config {
        keepalive_interval: Some(KEEPALIVE_INTERVAL),
        keepalive_max: KEEPALIVE_MAX,
        inactivity_timeout: None,
        nodelay: true,
        preferred: Preferred {
            key: Cow::Owned(host_key_order(&known_hosts::recorded_algorithms(&entries))),
            ..Preferred::default()
        },
        ..client::Config::default()
    });
    let handler = Client {
        host: target.host.clone(),
        port: target.port,
        known_hosts: opts.known_hosts.clone(),
        accept_new: opts.accept_new_host_keys,
    };
    let result = match jump {
        None => {
            let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
                .await
                .map_err(|e| connect_err(e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            client::connect_stream(config, tcp, handler).await
        }
        Some(j) => {
            let channel = j
                .handle
                .channel_open_direct_tcpip(
                    target.host.clone(),
                    u32::from(target.port),
                    "127.0.0.1",
                    0,
                )
                .await
                .map_err(|e| {
                    connect_err(format!(
                        "jump host {} cannot reach it: {e}",
                        j.target.display()
                    ))
                })?;
            client::connect_stream(config, channel.into_stream(), handler).await
        }
    };
    let mut handle = match result {
        Ok(h) => h,
        Err(HopError::Refused(e)) => return Err(e),
        Err(HopError::Ssh(e)) => return Err(connect_err(format!("SSH handshake failed: {e}"))),
    };
    if let Err(e) = authenticate(&mut handle, target).await {
        // Hang up properly rather than leave it to the dropped handle's task.
        let _ = handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(1), handle).await;
        return Err(e);
    }
    Ok(handle)
}

/// russh's host key preference with the types recorded for this host moved to the front, so
/// the server shows the key we can check (an rsa entry covers all rsa signature hashes).
fn host_key_order(recorded: &[Algorithm]) -> Vec<Algorithm> {
    let family = |a: &Algorithm| match a {
        Algorithm::Rsa { .. } => Algorithm::Rsa { hash: None },
        other => other.clone(),
    };
    let recorded: Vec<Algorithm> = recorded.iter().map(family).collect();
    let all = Preferred::default().key.into_owned();
    let (mut first, rest): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|a| recorded.contains(&family(a)));
    first.extend(rest);
    first
}

async fn authenticate(
    handle: &mut Handle<Client>,
    target: &SshTarget,
) -> Result<(), TransportError> {
    let user = target.user.as_str();
    let fail = |reason: String| TransportError::Auth {
        user: user.to_string(),
        host: target.host_port(),
        reason,
    };
    if let Some(path) = &target.key {
        let key = russh::keys::load_secret_key(path, None)
            .map_err(|e| fail(format!("cannot load key {}: {e}", path.display())))?;
        return match try_key(handle, user, key).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(fail(format!("the server refused key {}", path.display()))),
            Err(e) => Err(fail(format!("key {}: {e}", path.display()))),
        };
    }

    let mut tried: Vec<String> = Vec::new();
    match std::env::var_os("SSH_AUTH_SOCK") {
        None => tried.push("no ssh-agent (SSH_AUTH_SOCK unset)".into()),
        Some(sock) => match AgentClient::connect_uds(&sock).await {
            Err(e) => tried.push(format!("ssh-agent at {}: {e}", Path::new(&sock).display())),
            Ok(mut agent) => match agent.request_identities().await {
                Err(e) => tried.push(format!("ssh-agent: {e}")),
                Ok(ids) if ids.is_empty() => tried.push("ssh-agent (no identities)".into()),
                Ok(ids) => {
                    for id in ids {
                        let key = id.public_key().into_owned();
                        let what = format!("agent key {}", key.fingerprint(HashAlg::Sha256));
                        let hash = rsa_hash(handle, key.algorithm()).await;
                        match handle
                            .authenticate_publickey_with(user, key, hash, &mut agent)
                            .await
                        {
                            Ok(r) if r.success() => return Ok(()),
                            Ok(_) => tried.push(what),
                            Err(e) => tried.push(format!("{what} ({e})")),
                        }
                        if handle.is_closed() {
                            return Err(fail(format!(
                                "the server closed the connection; tried {}",
                                tried.join(", ")
                            )));
                        }
                    }
                }
            },
        },
    }

    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
        let path = home.join(".ssh").join(name);
        if !path.exists() {
            continue;
        }
        let key = match russh::keys::load_secret_key(&path, None) {
            Ok(k) => k,
            Err(e) => {
                tried.push(format!("{} (cannot load: {e})", path.display()));
                continue;
            }
        };
        match try_key(handle, user, key).await {
            Ok(true) => return Ok(()),
            Ok(false) => tried.push(path.display().to_string()),
            Err(e) => tried.push(format!("{} ({e})", path.display())),
        }
        if handle.is_closed() {
            break;
        }
    }
    if tried.is_empty() {
        tried.push("no key (none given, no ssh-agent, no ~/.ssh/id_*)".into());
    }
    Err(fail(format!(
        "no key was accepted; tried {}",
        tried.join(", ")
    )))
}

/// Offers one private key; RSA signs with the best rsa-sha2 hash the server announced.
async fn try_key(
    handle: &mut Handle<Client>,
    user: &str,
    key: PrivateKey,
) -> Result<bool, russh::Error> {
    let hash = rsa_hash(handle, key.algorithm()).await;
    let r = handle
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
        .await?;
    Ok(r.success())
}

async fn rsa_hash(handle: &Handle<Client>, alg: Algorithm) -> Option<HashAlg> {
    if !alg.is_rsa() {
        return None;
    }
    // `None` from the server (no server-sig-algs) means plain ssh-rsa, as OpenSSH does.
    handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_quoting() {
        let t = Duration::from_millis(90_500);
        assert_eq!(
            remote_command("root", "echo 'a b'", t),
            r"timeout -k 5s 90.500s sh -eu -c 'echo '\''a b'\'''"
        );
        assert_eq!(
            remote_command("ops", "true", t),
            "sudo -n timeout -k 5s 90.500s sh -eu -c 'true'"
        );
    }

    #[test]
    fn recorded_host_key_types_go_first() {
        let order = host_key_order(&[Algorithm::Rsa { hash: None }]);
        assert!(order[..3].iter().all(|a| a.clone().is_rsa()));
        assert_eq!(order[3], Algorithm::Ed25519);
        assert_eq!(host_key_order(&[]), Preferred::default().key.into_owned());
    }
}
