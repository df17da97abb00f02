//! The `kubeha pki` CLI module (crates/kubeha/src/cmd_pki.rs), compiled here against this
//! crate so it is tested before the lead wires it into the binary.

#[path = "../../kubeha/src/cmd_pki.rs"]
#[allow(dead_code)]
mod cmd_pki;

mod common;

use clap::Parser;
use time::OffsetDateTime;

#[derive(Parser, Debug)]
struct Cli {
    #[command(subcommand)]
    top: Top,
}

#[derive(clap::Subcommand, Debug)]
enum Top {
    Pki(cmd_pki::PkiArgs),
}

fn parse(args: &[&str]) -> Result<cmd_pki::PkiArgs, clap::Error> {
    let mut v = vec!["kubeha", "pki"];
    v.extend_from_slice(args);
    Cli::try_parse_from(v).map(|c| match c.top {
        Top::Pki(a) => a,
    })
}

fn run(args: &[&str], now: OffsetDateTime) -> (Result<i32, String>, String) {
    let mut out = Vec::new();
    let r = cmd_pki::run_to(parse(args).unwrap(), now, &mut out);
    (r, String::from_utf8(out).unwrap())
}

const SPEC: &str = "\
cluster_name: kubernetes
endpoint: {vip: 10.0.0.100, port: 16443}
kubernetes_version: v1.31
control_plane:
  - {name: m1, address: 10.0.0.11}
  - {name: m2, address: 10.0.0.12}
  - {name: m3, address: 10.0.0.13}
key_type: ecdsa-p256
";

#[test]
fn issue_check_renew_hash_through_the_cli() {
    let d = tempfile::tempdir().unwrap();
    let spec = d.path().join("spec.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    let dir = d.path().join("pki");
    let (dir_s, spec_s) = (dir.to_str().unwrap(), spec.to_str().unwrap());
    let now = common::fixed_now();

    let (r, out) = run(&["issue", "--spec", spec_s, "--dir", dir_s], now);
    assert_eq!(r, Ok(0), "{out}");
    assert!(
        out.contains("etcd/peer[m3]") && out.contains("created"),
        "{out}"
    );
    let hash_line = out
        .lines()
        .find(|l| l.starts_with("discovery hash: sha256:"))
        .unwrap();
    let ca = std::fs::read(dir.join("cluster/pki/ca.crt")).unwrap();
    assert_eq!(
        hash_line,
        format!("discovery hash: {}", pki::discovery_hash(&ca).unwrap())
    );
    assert!(dir.join("nodes/m2/pki/etcd/server.crt").exists());

    let (r, out) = run(&["issue", "--spec", spec_s, "--dir", dir_s], now);
    assert_eq!(r, Ok(0));
    assert!(!out.contains("created") && out.contains("reused"), "{out}");

    let ca_path = dir.join("cluster/pki/ca.crt");
    let (r, out) = run(&["hash", "--ca", ca_path.to_str().unwrap()], now);
    assert_eq!(r, Ok(0));
    assert_eq!(out, format!("{}\n", pki::discovery_hash(&ca).unwrap()));

    let (r, out) = run(&["check", "--dir", dir_s, "--warn-days", "30"], now);
    assert_eq!(r, Ok(0), "{out}");
    assert!(
        out.starts_with("SOURCE") && out.contains("cluster/admin.conf#client[kubernetes-admin]"),
        "{out}"
    );
    assert!(
        out.contains("22 certificate(s), none expires within 30 days"),
        "{out}"
    );
    let (r, out) = run(&["check", "--dir", dir_s, "--warn-days", "400"], now);
    assert_eq!(r, Ok(1), "{out}");
    assert!(
        out.contains("expires soon: cluster/pki/apiserver.crt"),
        "{out}"
    );
    let node = dir.join("nodes/m1");
    let (r, out) = run(
        &["check", "--node-path", node.to_str().unwrap()],
        now + time::Duration::days(366),
    );
    assert_eq!(r, Ok(1), "{out}");
    assert!(out.contains("EXPIRED: pki/apiserver.crt"), "{out}");

    let (r, out) = run(&["renew", "--dir", dir_s, "--only", "apiserver"], now);
    assert_eq!(r, Ok(0));
    assert_eq!(out.lines().next().unwrap(), "apiserver  reissued: renewed");
    let (r, _) = run(&["renew", "--dir", dir_s, "--only", "nope"], now);
    assert!(r.unwrap_err().contains("no certificate named \"nope\""));

    // Refusals are errors with a message, not panics.
    let (r, _) = run(
        &[
            "issue",
            "--spec",
            spec_s,
            "--dir",
            dir_s,
            "--replace-ca",
            "root",
        ],
        now,
    );
    assert!(r.unwrap_err().contains("--replace-ca root"));
    std::fs::remove_file(dir.join("cluster/pki/etcd/ca.key")).unwrap();
    let (r, _) = run(&["issue", "--spec", spec_s, "--dir", dir_s], now);
    assert!(r.unwrap_err().contains("--replace-ca etcd-ca"));
    let (r, out) = run(
        &[
            "issue",
            "--spec",
            spec_s,
            "--dir",
            dir_s,
            "--replace-ca",
            "etcd-ca",
        ],
        now,
    );
    assert_eq!(r, Ok(0), "{out}");
    assert!(
        out.contains("etcd-ca") && out.contains("replaced: etcd/ca.key is missing"),
        "{out}"
    );
}

#[test]
fn token_and_argument_errors() {
    let now = OffsetDateTime::from_unix_timestamp(0).unwrap();
    let (r, out) = run(&["token", "--ttl", "1h"], now);
    assert_eq!(r, Ok(0));
    let t = out.trim();
    assert!(pki::BootstrapToken::parse(t).is_ok(), "{out}");
    let (r, _) = run(&["token", "--ttl", "soon"], now);
    assert!(r.unwrap_err().contains("soon"));
    let (r, _) = run(&["issue", "-f", "cluster.yaml"], now);
    assert!(r.unwrap_err().contains("not wired"));
    let (r, _) = run(&["hash", "--ca", "/nonexistent/ca.crt"], now);
    assert!(r.is_err());
    assert!(parse(&["issue"]).is_err(), "-f or --spec is required");
    assert!(parse(&["check", "--dir", "a", "--node-path", "b"]).is_err());
}
