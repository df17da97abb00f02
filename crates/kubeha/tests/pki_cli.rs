//! `kubeha pki` as a user runs it: issue from an inventory or a spec, reuse on re-run, hash,
//! check with its expiry threshold, renew, token, and refusals that change nothing.

use std::path::Path;

use assert_cmd::Command;

fn kubeha() -> Command {
    Command::cargo_bin("kubeha").expect("binary built")
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = kubeha().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SPEC: &str = "\
cluster_name: kubernetes
endpoint: {vip: 198.18.0.100, port: 16443}
kubernetes_version: v1.31
control_plane:
  - {name: m1, address: 198.18.0.11}
  - {name: m2, address: 198.18.0.12}
  - {name: m3, address: 198.18.0.13}
key_type: ecdsa-p256
";

#[test]
fn issue_reuse_hash_check_renew_through_the_binary() {
    let d = tempfile::tempdir().unwrap();
    let spec = d.path().join("spec.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    let dir = d.path().join("pki");
    let (dir_s, spec_s) = (dir.to_str().unwrap(), spec.to_str().unwrap());

    let (code, out, err) = run(&["pki", "issue", "--spec", spec_s, "--dir", dir_s]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("etcd/peer[m3]") && out.contains("created"),
        "{out}"
    );
    let ca = std::fs::read(dir.join("cluster/pki/ca.crt")).unwrap();
    let hash = pki::discovery_hash(&ca).unwrap();
    assert!(out.contains(&format!("discovery hash: {hash}")), "{out}");

    let (code, out, _) = run(&["pki", "issue", "--spec", spec_s, "--dir", dir_s]);
    assert_eq!(code, 0);
    assert!(!out.contains("created") && out.contains("reused"), "{out}");
    assert_eq!(
        std::fs::read(dir.join("cluster/pki/ca.crt")).unwrap(),
        ca,
        "CA unchanged"
    );

    let ca_path = dir.join("cluster/pki/ca.crt");
    let (code, out, _) = run(&["pki", "hash", "--ca", ca_path.to_str().unwrap()]);
    assert_eq!((code, out), (0, format!("{hash}\n")));

    let (code, out, _) = run(&["pki", "check", "--dir", dir_s, "--warn-days", "30"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("cluster/admin.conf#client[kubernetes-admin]"),
        "{out}"
    );
    assert!(out.contains("none expires within 30 days"), "{out}");
    // leaves last a year: a 400-day threshold flags them and exits 1
    let (code, out, _) = run(&["pki", "check", "--dir", dir_s, "--warn-days", "400"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("expires soon: cluster/pki/apiserver.crt"),
        "{out}"
    );

    let before = std::fs::read(dir.join("cluster/pki/apiserver.crt")).unwrap();
    let (code, out, _) = run(&["pki", "renew", "--dir", dir_s, "--only", "apiserver"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().next().unwrap(), "apiserver  reissued: renewed");
    assert_ne!(
        std::fs::read(dir.join("cluster/pki/apiserver.crt")).unwrap(),
        before
    );
    assert_eq!(
        std::fs::read(dir.join("cluster/pki/ca.crt")).unwrap(),
        ca,
        "renew keeps the CA"
    );

    // refusals: exit 2 with a message, nothing replaced
    let (code, _, err) = run(&["pki", "renew", "--dir", dir_s, "--only", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("no certificate named \"nope\""), "{err}");
    std::fs::remove_file(dir.join("cluster/pki/etcd/ca.key")).unwrap();
    let (code, _, err) = run(&["pki", "issue", "--spec", spec_s, "--dir", dir_s]);
    assert_eq!(code, 2);
    assert!(err.contains("--replace-ca etcd-ca"), "{err}");
}

#[test]
fn issue_from_the_inventory_and_plan_carries_the_certificates() {
    let d = tempfile::tempdir().unwrap();
    let inv = d.path().join("cluster.yaml");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/minimal.yaml"),
        &inv,
    )
    .unwrap();
    let inv_s = inv.to_str().unwrap();
    let (code, out, err) = run(&[
        "pki",
        "issue",
        "-f",
        inv_s,
        "--dir",
        d.path().join("pki").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("etcd/server[cp3]"), "{out}");
    // plan finds the store beside the inventory and ships certificates to the nodes
    let (code, out, err) = run(&["plan", "-f", inv_s, "--output", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["pki_pending"], false);
    let cp2 = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "cp2")
        .unwrap();
    let paths: Vec<&str> = cp2["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    for want in [
        "/etc/kubernetes/pki/ca.crt",
        "/etc/kubernetes/pki/ca.key",
        "/etc/kubernetes/pki/sa.key",
        "/etc/kubernetes/pki/etcd/server.crt",
        "/etc/kubernetes/admin.conf",
    ] {
        assert!(paths.contains(&want), "{want} missing on cp2: {paths:?}");
    }
    let key = cp2["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"] == "/etc/kubernetes/pki/ca.key")
        .unwrap();
    assert_eq!(
        (
            key["mode"].as_str(),
            key["sensitive"].as_bool(),
            v["contents"].get(key["sha256"].as_str().unwrap()).is_none()
        ),
        (Some("0600"), Some(true), true)
    );
    let steps: Vec<&str> = cp2["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(steps.contains(&"pki/distribute"), "{steps:?}");
    // the join config carries the real CA hash
    let ca = std::fs::read(d.path().join("pki/cluster/pki/ca.crt")).unwrap();
    let hash = pki::discovery_hash(&ca).unwrap();
    let w1 = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "w1")
        .unwrap();
    assert!(
        w1["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["path"] != "/etc/kubernetes/pki/ca.key"),
        "workers get no CA key"
    );
    let (code, _, err) = run(&[
        "plan",
        "-f",
        inv_s,
        "-o",
        d.path().join("out").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let join =
        std::fs::read_to_string(d.path().join("out/w1/etc/kubeha/kubeadm-join.yaml")).unwrap();
    assert!(join.contains(&hash), "{join}");
}

#[test]
fn token_and_argument_errors() {
    let (code, out, _) = run(&["pki", "token", "--ttl", "1h"]);
    assert_eq!(code, 0);
    assert!(pki::BootstrapToken::parse(out.trim()).is_ok(), "{out}");
    let (code, _, err) = run(&["pki", "token", "--ttl", "soon"]);
    assert_eq!(code, 2);
    assert!(err.contains("soon"), "{err}");
    let (code, _, _) = run(&["pki", "hash", "--ca", "/nonexistent/ca.crt"]);
    assert_eq!(code, 2);
    let (code, _, _) = run(&["pki", "issue"]);
    assert_eq!(code, 2, "-f or --spec is required");
}
