//! A real OpenSSH server in a network namespace, for tests that need root. Everything started
//! here is removed by guards (sshd by PID, namespaces with their veth links), also on panic.
#![allow(dead_code)] // each test file uses a different part

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use testkit::netns::{self, Netns, Proc};

pub const SSHD: &str = "/usr/sbin/sshd";

/// Panics with a clear message when not root (these tests need namespaces and sshd).
pub fn require_root() {
    assert!(
        netns::is_root(),
        "this test needs root (network namespaces, sshd)"
    );
}

/// A namespace name unique to this process: `khssh-<pid>-<tag>`.
pub fn ns_name(tag: &str) -> String {
    format!("khssh-{}-{tag}", std::process::id())
}

/// A namespace joined to the host by a veth pair: host side `198.19.<subnet>.1/24`,
/// namespace side (`eth0`) `addr` = `198.19.<subnet>.2/24`.
pub struct LinkedNs {
    // Field order: the host end goes first. A namespace can outlive its deletion for a while
    // (orphaned TCP sockets of killed daemons pin it), and its veth with it; removing our end
    // explicitly keeps such a leftover from shadowing the subnet in the next run.
    link: HostLink,
    pub ns: Netns,
    pub addr: String,
}

/// The host end of a veth pair; deleting it deletes the pair.
struct HostLink(String);

impl Drop for HostLink {
    fn drop(&mut self) {
        let _ = netns::ip(&["link", "del", &self.0]);
    }
}

/// Creates `khssh-<pid>-<tag>` linked to the host on `198.19.<subnet>.0/24`. `subnet` must
/// be unique among concurrent tests. A leftover `khs*` link of an earlier run on that subnet
/// is removed first.
pub fn ns_linked_to_host(tag: &str, subnet: u8) -> LinkedNs {
    let net = format!("198.19.{subnet}.0/24");
    let stale = netns::ip(&["-o", "-4", "addr", "show", "to", &net]).unwrap_or_default();
    for name in stale.lines().filter_map(|l| l.split_whitespace().nth(1)) {
        if name.starts_with("khs") {
            let _ = netns::ip(&["link", "del", name]);
        }
    }
    let ns = Netns::create(&ns_name(tag)).expect("create namespace");
    // Interface names have at most 15 bytes.
    let host_if = format!("khs{}{subnet}", std::process::id() % 1_000_000);
    netns::ip(&[
        "link",
        "add",
        &host_if,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        ns.name(),
    ])
    .expect("veth to host");
    let link = HostLink(host_if.clone());
    netns::ip(&[
        "addr",
        "add",
        &format!("198.19.{subnet}.1/24"),
        "dev",
        &host_if,
    ])
    .expect("addr");
    netns::ip(&["link", "set", &host_if, "up"]).expect("link up");
    let addr = format!("198.19.{subnet}.2");
    ns.exec(&["ip", "addr", "add", &format!("{addr}/24"), "dev", "eth0"])
        .expect("addr in namespace");
    ns.exec(&["ip", "link", "set", "eth0", "up"])
        .expect("link up in namespace");
    LinkedNs { link, ns, addr }
}

/// A veth pair between two namespaces on `198.19.<subnet>.0/24`: `a` gets `.1` on `if_a`,
/// `b` gets `.2` on `if_b`. Returns `b`'s address.
pub fn link_namespaces(a: &Netns, if_a: &str, b: &Netns, if_b: &str, subnet: u8) -> String {
    a.exec(&[
        "ip",
        "link",
        "add",
        if_a,
        "type",
        "veth",
        "peer",
        "name",
        if_b,
        "netns",
        b.name(),
    ])
    .expect("veth between namespaces");
    a.exec(&[
        "ip",
        "addr",
        "add",
        &format!("198.19.{subnet}.1/24"),
        "dev",
        if_a,
    ])
    .expect("addr");
    a.exec(&["ip", "link", "set", if_a, "up"]).expect("link up");
    b.exec(&[
        "ip",
        "addr",
        "add",
        &format!("198.19.{subnet}.2/24"),
        "dev",
        if_b,
    ])
    .expect("addr");
    b.exec(&["ip", "link", "set", if_b, "up"]).expect("link up");
    format!("198.19.{subnet}.2")
}

/// Generates a key pair with ssh-keygen (`kind`: ed25519, rsa, ecdsa). Returns the private
/// key's path and the public key line (`type base64 comment`).
pub fn keygen(dir: &Path, name: &str, kind: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", "", "-C", name, "-f"])
        .arg(&path);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    netns::run(&mut cmd).expect("ssh-keygen");
    let public = std::fs::read_to_string(format!("{}.pub", path.display())).expect("read .pub");
    (path, public.trim().to_string())
}

/// `sshd -D -e` in a namespace with its own config, host key and authorized_keys (for any
/// user, root included) in a temp dir. Dropping it kills sshd by PID.
pub struct Sshd {
    // Field order: sshd is killed before its directory goes.
    proc: Proc,
    dir: TempDir,
    pub addr: String,
    pub port: u16,
    /// `ssh-ed25519 AAAA…` (no comment).
    pub host_key: String,
    pub log: PathBuf,
}

impl Sshd {
    /// Starts sshd in `ns` on `addr:port` and waits (up to 5 s) until it listens.
    pub fn start(ns: &Netns, addr: &str, port: u16, authorized_keys: &[&str]) -> Sshd {
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let dir = tempfile::Builder::new()
            .prefix("khssh-sshd")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let (host_key_path, host_pub) = keygen(d, "host_ed25519", "ed25519");
        let host_key = host_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let authorized = d.join("authorized_keys");
        std::fs::write(&authorized, authorized_keys.join("\n") + "\n").expect("authorized_keys");
        let config = d.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress {addr}:{port}\n\
                 HostKey {}\n\
                 PidFile {}\n\
                 AuthorizedKeysFile {}\n\
                 PermitRootLogin prohibit-password\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 AllowTcpForwarding yes\n\
                 MaxSessions 64\n\
                 MaxStartups 64\n\
                 LogLevel VERBOSE\n",
                host_key_path.display(),
                d.join("sshd.pid").display(),
                authorized.display(),
            ),
        )
        .expect("sshd_config");
        let log = d.join("sshd.log");
        let config_s = config.display().to_string();
        let mut proc = ns
            .spawn(&[SSHD, "-D", "-e", "-f", &config_s], Some(&log))
            .expect("start sshd");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Server listening on") {
                break;
            }
            if let Some(status) = proc.exited() {
                panic!("sshd exited ({status}) before listening:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "sshd not listening after 5 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Sshd {
            proc,
            dir,
            addr: addr.to_string(),
            port,
            host_key,
            log,
        }
    }

    /// The line for a known_hosts file (`addr key`, or `[addr]:port key` off port 22).
    pub fn known_hosts_line(&self) -> String {
        if self.port == 22 {
            format!("{} {}", self.addr, self.host_key)
        } else {
            format!("[{}]:{} {}", self.addr, self.port, self.host_key)
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.proc.pid()
    }
}
