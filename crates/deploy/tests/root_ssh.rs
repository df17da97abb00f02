//! The SSH transport against a real OpenSSH sshd in network namespaces. Needs root.
//! Each test has its own namespace(s) and host-side subnet 198.19.<n>.0/24, so they can run
//! in parallel.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{LinkedNs, Sshd, keygen, link_namespaces, ns_linked_to_host, ns_name, require_root};
use deploy::transport::ssh::{SshOptions, SshSession, SshTarget};
use deploy::transport::{Exec, TransportError};
use tempfile::TempDir;
use testkit::netns::Netns;

const T: Duration = Duration::from_secs(10);

/// One sshd in its own namespace, a client key it accepts, and a known_hosts file with its key.
struct Fixture {
    // Field order: sshd, then its namespace, then the files.
    sshd: Sshd,
    ns: LinkedNs,
    dir: TempDir,
    key: PathBuf,
    known_hosts: PathBuf,
}

impl Fixture {
    fn new(tag: &str, subnet: u8, port: u16, key_kind: &str) -> Fixture {
        require_root();
        let dir = tempfile::tempdir().expect("tempdir");
        let (key, public) = keygen(dir.path(), &format!("client_{key_kind}"), key_kind);
        let ns = ns_linked_to_host(tag, subnet);
        let sshd = Sshd::start(&ns.ns, &ns.addr, port, &[&public]);
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(&known_hosts, sshd.known_hosts_line() + "\n").expect("known_hosts");
        Fixture {
            sshd,
            ns,
            dir,
            key,
            known_hosts,
        }
    }

    fn target(&self) -> SshTarget {
        SshTarget {
            host: self.sshd.addr.clone(),
            port: self.sshd.port,
            user: "root".into(),
            key: Some(self.key.clone()),
            jump: None,
        }
    }

    fn opts(&self) -> SshOptions {
        SshOptions {
            known_hosts: self.known_hosts.clone(),
            accept_new_host_keys: false,
            connect_timeout: Duration::from_secs(5),
        }
    }

    async fn connect(&self) -> SshSession {
        match SshSession::connect(&self.target(), &self.opts()).await {
            Ok(s) => s,
            Err(e) => panic!("connect: {e}\nsshd log:\n{}", self.sshd.log_text()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_ssh_exit_output_stdin_and_concurrent_runs() {
    if testkit::skip_without_root("root_ssh") {
        return;
    }
    let f = Fixture::new("run", 71, 22, "ed25519");
    let s = Arc::new(f.connect().await);
    assert_eq!(s.describe(), format!("ssh root@{}:22", f.sshd.addr));

    let out = s
        .run(&Exec::new("echo out; echo err >&2; exit 3", T))
        .await
        .unwrap();
    assert_eq!(out.exit, Some(3));
    assert_eq!(out.stdout_str(), "out\n");
    assert_eq!(out.stderr_str(), "err\n");

    // Quoting survives the remote shell; -u is in force.
    let out = s
        .run(&Exec::new(r#"printf '%s|' "it's" '$HOME' "a\"b""#, T))
        .await
        .unwrap();
    assert_eq!(out.stdout_str(), r#"it's|$HOME|a"b|"#);
    let out = s.run(&Exec::new("echo $UNSET_VAR", T)).await.unwrap();
    assert_ne!(out.exit, Some(0), "sh -u should fail on an unset variable");

    // 1 MiB through stdin and back, byte-exact.
    let payload: Vec<u8> = (0..1usize << 20).map(|i| (i * 7 % 251) as u8).collect();
    let mut cat = Exec::new("cat", T);
    cat.stdin = payload.clone();
    let out = s.run(&cat).await.unwrap();
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout.len(), payload.len());
    assert!(out.stdout == payload, "cat echoed different bytes");

    // A script that never reads its stdin finishes anyway.
    let mut ignore = Exec::new("exit 0", T);
    ignore.stdin = payload;
    assert!(s.run(&ignore).await.unwrap().success());

    // Death by signal: no exit code.
    let out = s.run(&Exec::new("kill -9 $$", T)).await.unwrap();
    assert_eq!(out.exit, None, "{out:?}");

    // 8 runs at once on one session, each on its own channel.
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..8 {
        let s = s.clone();
        set.spawn(async move {
            let out = s.run(&Exec::new(format!("sleep 0.3; echo {i}"), T)).await;
            (i, out)
        });
    }
    let mut seen = 0;
    while let Some(joined) = set.join_next().await {
        let (i, out) = joined.expect("task");
        let out = out.unwrap_or_else(|e| panic!("run {i}: {e}"));
        assert!(out.success(), "run {i}: {out:?}");
        assert_eq!(out.stdout_str(), format!("{i}\n"));
        seen += 1;
    }
    assert_eq!(seen, 8);
    assert!(
        start.elapsed() < Duration::from_millis(2000),
        "runs were not concurrent: {:?}",
        start.elapsed()
    );
    Arc::into_inner(s).expect("no other owner").close().await;
}

#[tokio::test]
async fn root_ssh_timeout() {
    if testkit::skip_without_root("root_ssh") {
        return;
    }
    let f = Fixture::new("tmo", 72, 22, "ed25519");
    let s = f.connect().await;
    let start = Instant::now();
    // The marker keeps sh from exec'ing sleep, so pgrep below can find this script.
    let r = s
        .run(&Exec::new(
            "sleep 30; : khssh-marker",
            Duration::from_secs(1),
        ))
        .await;
    assert!(
        matches!(r, Err(TransportError::Timeout(d)) if d == Duration::from_secs(1)),
        "{r:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    // The session is still good, and the script is gone from the node (within 2 s).
    let gone = "for i in $(seq 20); do pgrep -f 'khssh-marke[r]' >/dev/null || exit 0; sleep 0.1; done; exit 1";
    let out = s.run(&Exec::new(gone, T)).await.unwrap();
    assert!(out.success(), "the timed-out script still runs: {out:?}");
    s.close().await;
}

#[tokio::test]
async fn root_ssh_connection_lost_is_an_error() {
    if testkit::skip_without_root("root_ssh") {
        return;
    }
    let f = Fixture::new("lost", 80, 22, "ed25519");
    let s = f.connect().await;
    let exec = Exec::new("sleep 20", T);
    let run = s.run(&exec);
    let kill = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Every process in the namespace: sshd and the session's sshd first, then sleep. A
        // sleep killed first would be reported by its live sshd as an exit signal, which is
        // a finished script, not a lost connection (CI saw that once).
        let mut pids = f.ns.ns.pids();
        let is_sshd = |pid: &i32| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("sshd"))
        };
        pids.sort_by_key(|p| !is_sshd(p));
        for pid in pids {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
    };
    let start = Instant::now();
    let (r, ()) = tokio::join!(run, kill);
    match r {
        Err(TransportError::Other(m)) => assert!(m.contains("connection lost"), "{m}"),
        other => panic!("expected a lost connection, got {other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn root_ssh_unknown_host_key_refused_then_learned() {
    if testkit::skip_without_root("root_ssh") {
        return;
    }
    let f = Fixture::new("new", 73, 2200, "ed25519");
    // A known_hosts that does not exist yet, in a directory that does not exist yet.
    let kh = f.dir.path().join("fresh/known_hosts");
    let mut opts = f.opts();
    opts.known_hosts = kh.clone();

    let err = match SshSession::connect(&f.target(), &opts).await {
        Ok(_) => panic!("connected to a host not in known_hosts"),
        Err(e) => e,
    };
    match &err {
        TransportError::UnknownHostKey {
            host, fingerprint, ..
        } => {
            assert_eq!(host, &format!("[{}]:2200", f.sshd.addr));
            assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
        }
        other => panic!("expected UnknownHostKey, got {other:?}"),
    }
    assert!(err.to_string().contains(&f.sshd.addr), "{err}");
    assert!(!kh.exists(), "refusing must not write known_hosts");

    opts.accept_new_host_keys = true;
    let s = SshSession::connect(&f.target(), &opts)
        .await
        .expect("accept new");
    assert!(s.run(&Exec::new("true", T)).await.unwrap().success());
    let text = std::fs::read_to_string(&kh).unwrap();
    assert_eq!(text, f.sshd.known_hosts_line() + "\n");
    let mode = std::fs::metadata(&kh).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // Known now: no flag needed, nothing appended.
    opts.accept_new_host_keys = false;
    let s = SshSession::connect(&f.target(), &opts)
        .await
        .expect("known now");
    assert!(s.run(&Exec::new("true", T)).await.unwrap().success());
    s.close().await;
    assert_eq!(std::fs::read_to_string(&kh).unwrap(), text);
}

#[tokio::test]
async fn root_ssh_host_key_mismatch_always_refused() {
    if testkit::skip_without_root("root_ssh") {
        return;
    }
    let f = Fixture::new("mis", 74, 22, "ed25519");
    let (_, other) = keygen(f.dir.path(), "impostor", "ed25519");
    let other: String = other
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let text = format!("# recorded earlier\n\n{} {other}\n", f.sshd.addr);
    std::fs::write(&f.known_hosts, &text).unwrap();

    for accept in [false, true] {
        let mut opts = f.opts();
        opts.accept_new_host_keys = accept;
        match SshSession::connect(&f.target(), &opts).await {
            Ok(_) => panic!("connected despite a changed host key (accept={accept})"),
            Err(e) => {
                let msg = e.to_string();
                match e {
                    TransportError::HostKeyMismatch { host, line, .. } => {
                        assert_eq!(host, f.sshd.addr);
                        assert_eq!(line, 3);
                        assert!(msg.contains("line 3"), "{msg}");
                    }
                    other => panic!("expected HostKeyMismatch (accept={accept}), got {other:?}"),
                }
            }
        }
    }
    assert_eq!(std::fs::read_to_string(&f.known_hosts).unwrap(), text);
}

#[tokio::test]
async fn root_ssh_wrong_client_key_is_an_auth_error() {
    if testkit::skip_without_root("root_ssh") {
        return;
    }
    let f = Fixture::new("auth", 75, 22, "ed25519");
    let (stranger, _) = keygen(f.dir.path(), "stranger", "ed25519");
    let mut target = f.target();
    target.key = Some(stranger.clone());
    let err = match SshSession::connect(&target, &f.opts()).await {
        Ok(_) => panic!("authenticated with a key sshd does not know"),
        Err(e) => e,
    };
    let msg = err.to_string();
    let want = format!("authentication as root@{}:22 failed", f.sshd.addr);
    assert!(msg.starts_with(&want), "{msg}");
    match err {
        TransportError::Auth { user, reason, .. } => {
            assert_eq!(user, "root");
            assert!(reason.contains(&stranger.display().to_string()), "{reason}");
        }
        other => panic!("expected Auth, got {other:?}"),
    }
    target.key = Some(f.dir.path().join("no-such-key"));
    match SshSession::connect(&target, &f.opts()).await {
        Err(TransportError::Auth { reason, .. }) => {
            assert!(reason.contains("cannot load"), "{reason}")
        }
        Err(e) => panic!("expected Auth, got {e:?}"),
        Ok(_) => panic!("authenticated without a key"),
    }
}

#[tokio::test]
async fn root_ssh_jump_host() {
    if testkit::skip_without_root("root_ssh") {
        return;
    }
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "client", "ed25519");
    // ns1 is reachable from here; ns2 only from ns1.
    let ns1 = ns_linked_to_host("j1", 76);
    let addr1 = ns1.addr.clone();
    let ns2 = Netns::create(&ns_name("j2")).expect("ns2");
    let addr2 = link_namespaces(&ns1.ns, "eth1", &ns2, "eth0", 78);
    let sshd1 = Sshd::start(&ns1.ns, &addr1, 22, &[&public]);
    let sshd2 = Sshd::start(&ns2, &addr2, 22, &[&public]);
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, sshd1.known_hosts_line() + "\n").unwrap();
    let opts = SshOptions {
        known_hosts: known_hosts.clone(),
        accept_new_host_keys: false,
        connect_timeout: Duration::from_secs(5),
    };
    let jump = SshTarget {
        host: addr1.clone(),
        port: 22,
        user: "root".into(),
        key: Some(key.clone()),
        jump: None,
    };
    let target = SshTarget {
        key: Some(key),
        jump: Some(Box::new(jump)),
        ..SshTarget::new(addr2.clone(), "root")
    };

    // Not directly reachable.
    let direct = SshTarget {
        jump: None,
        ..target.clone()
    };
    let short = SshOptions {
        connect_timeout: Duration::from_secs(1),
        ..opts.clone()
    };
    assert!(matches!(
        SshSession::connect(&direct, &short).await,
        Err(TransportError::Connect { .. })
    ));

    // The target's key is checked too, not just the jump host's.
    match SshSession::connect(&target, &opts).await {
        Err(TransportError::UnknownHostKey { host, .. }) => assert_eq!(host, addr2),
        Err(e) => panic!("expected UnknownHostKey for the target, got {e:?}"),
        Ok(_) => panic!("connected to a target not in known_hosts"),
    }

    std::fs::write(
        &known_hosts,
        format!(
            "{}\n{}\n",
            sshd1.known_hosts_line(),
            sshd2.known_hosts_line()
        ),
    )
    .unwrap();
    let s = match SshSession::connect(&target, &opts).await {
        Ok(s) => s,
        Err(e) => panic!(
            "via jump: {e}\njump sshd:\n{}\ntarget sshd:\n{}",
            sshd1.log_text(),
            sshd2.log_text()
        ),
    };
    assert_eq!(
        s.describe(),
        format!("ssh root@{addr2}:22 via root@{addr1}:22")
    );
    let out = s
        .run(&Exec::new("ip -4 -o addr show dev eth0", T))
        .await
        .unwrap();
    assert!(out.success(), "{out:?}");
    assert!(out.stdout_str().contains(&addr2), "{}", out.stdout_str());
    s.close().await;
}

/// Without `key`: the ssh-agent, then ~/.ssh/id_*. SSH_AUTH_SOCK and HOME are process-wide,
/// so each case runs this test binary again (`agent_child` below) with its own environment.
#[tokio::test]
async fn root_ssh_agent_then_default_keys() {
    if testkit::skip_without_root("root_ssh") {
        return;
    }
    let f = Fixture::new("agent", 81, 22, "ed25519");
    let sock = f.dir.path().join("agent.sock");
    let sock_s = sock.display().to_string();
    let _agent =
        f.ns.ns
            .spawn(&["ssh-agent", "-D", "-a", &sock_s], None)
            .expect("ssh-agent");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "no agent socket after 5 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let added = std::process::Command::new("ssh-add")
        .arg("-q")
        .arg(&f.key)
        .env("SSH_AUTH_SOCK", &sock)
        .status()
        .expect("ssh-add");
    assert!(added.success());
    // A HOME with no keys, and one with the client key as ~/.ssh/id_ed25519.
    let empty_home = f.dir.path().join("home-empty");
    let home = f.dir.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::copy(&f.key, home.join(".ssh/id_ed25519")).unwrap();

    let cases: [(&str, Option<&PathBuf>, &PathBuf, &str); 3] = [
        ("agent", Some(&sock), &empty_home, "ok"),
        ("default key", None, &home, "ok"),
        ("nothing", None, &empty_home, "auth"),
    ];
    for (what, agent, home, expect) in cases {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["agent_child", "--exact", "--nocapture", "--test-threads=1"])
            .env("KHSSH_CHILD_HOST", &f.sshd.addr)
            .env("KHSSH_CHILD_KNOWN_HOSTS", &f.known_hosts)
            .env("KHSSH_CHILD_EXPECT", expect)
            .env("HOME", home)
            .env_remove("SSH_AUTH_SOCK");
        if let Some(a) = agent {
            cmd.env("SSH_AUTH_SOCK", a);
        }
        let out = cmd.output().expect("run child");
        assert!(
            out.status.success(),
            "{what}: child failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Half of `root_ssh_agent_then_default_keys`; does nothing unless started by it.
#[tokio::test]
async fn agent_child() {
    let Ok(host) = std::env::var("KHSSH_CHILD_HOST") else {
        return;
    };
    let opts = SshOptions::new(std::env::var("KHSSH_CHILD_KNOWN_HOSTS").unwrap());
    let r = SshSession::connect(&SshTarget::new(host, "root"), &opts).await;
    match (std::env::var("KHSSH_CHILD_EXPECT").unwrap().as_str(), r) {
        ("ok", Ok(s)) => {
            assert!(s.run(&Exec::new("true", T)).await.unwrap().success());
            s.close().await;
        }
        ("auth", Err(TransportError::Auth { reason, .. })) => {
            // Names what was tried.
            assert!(reason.contains("SSH_AUTH_SOCK unset"), "{reason}");
            assert!(reason.contains("no key"), "{reason}");
        }
        (expect, r) => panic!("expected {expect}, got {:?}", r.map(|s| s.describe())),
    }
}

#[tokio::test]
async fn root_ssh_rsa_client_key() {
    if testkit::skip_without_root("root_ssh") {
        return;
    }
    // Debian's sshd refuses SHA-1 `ssh-rsa` signatures, so success means rsa-sha2 was used.
    let f = Fixture::new("rsa", 77, 22, "rsa");
    let s = f.connect().await;
    let out = s.run(&Exec::new("echo rsa", T)).await.unwrap();
    assert_eq!(out.stdout_str(), "rsa\n");
    s.close().await;
}

#[tokio::test]
async fn root_ssh_hashed_known_hosts_entry() {
    if testkit::skip_without_root("root_ssh") {
        return;
    }
    let f = Fixture::new("hash", 79, 2222, "ed25519");
    testkit::netns::run(
        std::process::Command::new("ssh-keygen")
            .args(["-q", "-H", "-f"])
            .arg(&f.known_hosts),
    )
    .expect("ssh-keygen -H");
    let text = std::fs::read_to_string(&f.known_hosts).unwrap();
    assert!(
        text.starts_with("|1|") && !text.contains(&f.sshd.addr),
        "{text}"
    );
    let s = f.connect().await;
    assert!(s.run(&Exec::new("true", T)).await.unwrap().success());
    s.close().await;
}
