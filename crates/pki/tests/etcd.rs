//! A real three-member etcd cluster (Debian's /usr/bin/etcd) on loopback, with mutual TLS
//! from the issued node trees. Fails (does not skip) when etcd or etcdctl is missing.

mod common;

use std::fs::{self, File};
use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pki::{Endpoint, IssueOptions, KeyType, NodeId, PkiSpec, Store};
use time::OffsetDateTime;

/// Kills every etcd it started, by PID, when dropped (also when the test panics).
struct Members {
    children: Vec<Child>,
    logs: Vec<PathBuf>,
}

impl Drop for Members {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            for l in &self.logs {
                eprintln!(
                    "==== {} ====\n{}",
                    l.display(),
                    fs::read_to_string(l).unwrap_or_default()
                );
            }
        }
    }
}

fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

fn loopback_spec(kt: KeyType) -> PkiSpec {
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let nodes = (1..=3).map(|i| NodeId::new(format!("m{i}"), lo)).collect();
    let mut s = PkiSpec::new(
        "kubernetes",
        Endpoint {
            vip: lo,
            port: 16443,
        },
        nodes,
    );
    s.key_type = kt;
    s
}

fn etcdctl(endpoints: &str, pki: &Path, client: &str, args: &[&str]) -> (bool, String) {
    let p = |f: &str| pki.join(f).display().to_string();
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            endpoints,
            "--cacert",
            &p("etcd/ca.crt"),
            "--cert",
            &p(&format!("{client}.crt")),
            "--key",
            &p(&format!("{client}.key")),
            "--dial-timeout",
            "2s",
            "--command-timeout",
            "5s",
        ])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("etcdctl must be installed (Debian etcd-client): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn three_member_cluster(kt: KeyType) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store"));
    let spec = loopback_spec(kt);
    store
        .issue(&spec, OffsetDateTime::now_utc(), &IssueOptions::default())
        .unwrap();

    let ports = free_ports(6);
    let (client, peer) = ports.split_at(3);
    let initial: Vec<String> = (0..3)
        .map(|i| format!("m{}=https://127.0.0.1:{}", i + 1, peer[i]))
        .collect();
    let mut members = Members {
        children: Vec::new(),
        logs: Vec::new(),
    };
    for i in 0..3 {
        let name = format!("m{}", i + 1);
        // The node's tree exactly as it would land in /etc/kubernetes.
        let pki = store.node_dir(&name).join("pki");
        let p = |f: &str| pki.join(f).display().to_string();
        let log = dir.path().join(format!("{name}.log"));
        let child = Command::new("etcd")
            .args([
                "--name",
                &name,
                "--data-dir",
                &dir.path()
                    .join(format!("{name}.etcd"))
                    .display()
                    .to_string(),
                "--listen-client-urls",
                &format!("https://127.0.0.1:{}", client[i]),
                "--advertise-client-urls",
                &format!("https://127.0.0.1:{}", client[i]),
                "--listen-peer-urls",
                &format!("https://127.0.0.1:{}", peer[i]),
                "--initial-advertise-peer-urls",
                &format!("https://127.0.0.1:{}", peer[i]),
                "--initial-cluster",
                &initial.join(","),
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                "kubeha-pki-test",
                "--client-cert-auth",
                "--trusted-ca-file",
                &p("etcd/ca.crt"),
                "--cert-file",
                &p("etcd/server.crt"),
                "--key-file",
                &p("etcd/server.key"),
                "--peer-client-cert-auth",
                "--peer-trusted-ca-file",
                &p("etcd/ca.crt"),
                "--peer-cert-file",
                &p("etcd/peer.crt"),
                "--peer-key-file",
                &p("etcd/peer.key"),
            ])
            .stdin(Stdio::null())
            .stdout(File::create(&log).unwrap())
            .stderr(File::create(&log).unwrap().try_clone().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("etcd must be installed (Debian etcd-server): {e}"));
        members.children.push(child);
        members.logs.push(log);
    }

    let m1_pki = store.node_dir("m1").join("pki");
    let ep = format!("https://127.0.0.1:{}", client[0]);
    // Bounded wait: at most 60 attempts and 45 seconds.
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut last = String::new();
    let mut healthy = false;
    for _ in 0..60 {
        for c in &mut members.children {
            if let Some(status) = c.try_wait().unwrap() {
                panic!("an etcd member exited early: {status}");
            }
        }
        let (ok, out) = etcdctl(
            &ep,
            &m1_pki,
            "etcd/healthcheck-client",
            &["endpoint", "health", "--cluster"],
        );
        last = out;
        if ok && last.matches("is healthy").count() == 3 {
            healthy = true;
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        healthy,
        "cluster not healthy in time; last etcdctl output:\n{last}"
    );
    for port in client {
        assert!(
            last.contains(&format!("https://127.0.0.1:{port} is healthy")),
            "{last}"
        );
    }

    // The apiserver's client certificate writes and reads, through another member.
    let ep3 = format!("https://127.0.0.1:{}", client[2]);
    let (ok, out) = etcdctl(
        &ep3,
        &m1_pki,
        "apiserver-etcd-client",
        &["put", "/kubeha/test", "ok"],
    );
    assert!(ok, "{out}");
    let (ok, out) = etcdctl(
        &ep,
        &m1_pki,
        "apiserver-etcd-client",
        &["get", "/kubeha/test", "--print-value-only"],
    );
    assert!(ok && out.trim() == "ok", "{out}");

    // A client certificate from a different CA is refused.
    let other = Store::open(dir.path().join("other"));
    other
        .issue(&spec, OffsetDateTime::now_utc(), &IssueOptions::default())
        .unwrap();
    let other_pki = other.node_dir("m1").join("pki");
    // Trust the real server (our CA) but present the foreign client certificate.
    let mixed = dir.path().join("mixed");
    fs::create_dir_all(mixed.join("etcd")).unwrap();
    fs::copy(m1_pki.join("etcd/ca.crt"), mixed.join("etcd/ca.crt")).unwrap();
    fs::copy(
        other_pki.join("etcd/healthcheck-client.crt"),
        mixed.join("etcd/healthcheck-client.crt"),
    )
    .unwrap();
    fs::copy(
        other_pki.join("etcd/healthcheck-client.key"),
        mixed.join("etcd/healthcheck-client.key"),
    )
    .unwrap();
    let (ok, out) = etcdctl(
        &ep,
        &mixed,
        "etcd/healthcheck-client",
        &["endpoint", "health"],
    );
    assert!(!ok, "foreign client certificate accepted:\n{out}");
    assert!(
        out.contains("unhealthy") || out.contains("certificate") || out.contains("deadline"),
        "{out}"
    );
    let (ok, out) = etcdctl(
        &ep,
        &mixed,
        "etcd/healthcheck-client",
        &["get", "/kubeha/test"],
    );
    assert!(!ok, "foreign client certificate could read:\n{out}");
    // And the same command with our own certificate still works (the refusal was the cert).
    let (ok, out) = etcdctl(
        &ep,
        &m1_pki,
        "etcd/healthcheck-client",
        &["endpoint", "health"],
    );
    assert!(ok, "{out}");
}

#[test]
fn three_member_etcd_cluster_with_issued_rsa_certificates() {
    three_member_cluster(KeyType::Rsa2048);
}

#[test]
fn three_member_etcd_cluster_with_issued_ecdsa_certificates() {
    three_member_cluster(KeyType::EcdsaP256);
}
