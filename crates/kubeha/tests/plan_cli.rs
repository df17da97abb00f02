//! `kubeha plan` as a user runs it: the broken-inventory corpus, -o DIR, JSON output.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kubeha() -> Command {
    Command::cargo_bin("kubeha").expect("binary built")
}

/// Every file in tests/broken fails with exactly the diagnostic in EXPECTED, exit 2,
/// and `-o DIR` writes nothing.
#[test]
fn broken_inventories_fail_with_exact_place_and_write_nothing() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/broken");
    let expected = std::fs::read_to_string(dir.join("EXPECTED")).unwrap();
    let mut checked = 0;
    for line in expected.lines().filter(|l| !l.trim().is_empty()) {
        let (file, diag) = line
            .split_once('\t')
            .expect("EXPECTED lines are file<TAB>diagnostic");
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let assert = kubeha()
            .current_dir(&dir)
            .args(["plan", "-f", file, "-o"])
            .arg(&out)
            .assert()
            .code(2);
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
        let first = stderr.lines().next().unwrap_or_default();
        assert_eq!(first, format!("{file}:{diag}"), "diagnostic for {file}");
        assert!(stderr.contains("nothing was changed"), "{file}: {stderr}");
        assert!(
            assert.get_output().stdout.is_empty(),
            "{file}: printed a plan"
        );
        assert!(!out.exists(), "{file}: -o DIR was written");
        checked += 1;
    }
    assert!(
        checked >= 20,
        "the corpus has {checked} cases; keep at least 20"
    );
    // every file in the folder has an expectation
    let files = std::fs::read_dir(&dir).unwrap().filter(|e| {
        e.as_ref()
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x == "yaml")
    });
    assert_eq!(files.count(), checked);
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("c.yaml");
    std::fs::write(
        &f,
        "cluster: { name: lab, kubernetes_version: 1.31.4 }\n\
         endpoint: { vip: 198.18.0.10 }\n\
         nodes:\n\
         \x20 - { name: a, address: 198.18.0.11/24, roles: [control-plane] }\n\
         \x20 - { name: a, address: 198.18.0.11/24, roles: [worker] }\n\
         frontdoor: { vrid: 300 }\n",
    )
    .unwrap();
    let out = kubeha().args(["plan", "-f"]).arg(&f).assert().code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains(":5:13: error: nodes[1].name:"), "{stderr}");
    assert!(
        stderr.contains(":5:25: error: nodes[1].address:"),
        "{stderr}"
    );
    assert!(stderr.contains(":6:20: error: frontdoor.vrid:"), "{stderr}");
}

#[test]
fn even_member_count_warns_and_still_plans() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("c.yaml");
    std::fs::write(
        &f,
        "cluster: { name: lab, kubernetes_version: 1.30.2 }\n\
         endpoint: { vip: 198.18.0.10 }\n\
         nodes:\n\
         \x20 - { name: a, address: 198.18.0.11/24, roles: [control-plane] }\n\
         \x20 - { name: b, address: 198.18.0.12/24, roles: [control-plane] }\n",
    )
    .unwrap();
    let out = kubeha().args(["plan", "-f"]).arg(&f).assert().success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains(":4:3: warning: nodes: 2 control-plane nodes run 2 stacked etcd members, which tolerate 0 failure(s)"), "{stderr}");
}

#[test]
fn missing_file_is_exit_2_with_the_path() {
    let out = kubeha()
        .args(["plan", "-f", "/nonexistent/cluster.yaml"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        stderr.contains("cannot read /nonexistent/cluster.yaml"),
        "{stderr}"
    );
}

#[test]
fn out_dir_gets_every_artifact_with_its_mode_and_reruns_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let example = root().join("examples/cluster.yaml");
    let first = kubeha()
        .args(["plan", "-f"])
        .arg(&example)
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&first.get_output().stderr).to_string();
    assert!(stderr.contains("0 changed, 0 unchanged"), "{stderr}");
    let init = out.join("master1/etc/kubeha/kubeadm-init.yaml");
    let mode = std::fs::metadata(&init).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the init config holds a token");
    let sysctl = out.join("worker1/etc/sysctl.d/99-kubeha.conf");
    assert_eq!(
        std::fs::metadata(&sysctl).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert!(out.join("master2/etc/kubeha/frontdoor.yaml").exists());
    assert!(!out.join("worker1/etc/kubeha/frontdoor.yaml").exists());
    let token = |p: &Path| -> String {
        let s = std::fs::read_to_string(p).unwrap();
        s.lines()
            .find_map(|l| l.trim().strip_prefix("- token: "))
            .unwrap()
            .to_string()
    };
    let first_token = token(&init);
    assert!(
        first_token.len() == 23 && first_token.as_bytes()[6] == b'.',
        "{first_token}"
    );
    assert_ne!(
        first_token, "abcdef.0123456789abcdef",
        "never a well-known token"
    );
    let again = kubeha()
        .args(["plan", "-f"])
        .arg(&example)
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&again.get_output().stderr).to_string();
    // each run mints its own bootstrap token: only the five kubeadm configs and the token
    // file change
    assert!(
        stderr.contains("(0 new, 6 changed, 41 unchanged"),
        "{stderr}"
    );
    assert_ne!(token(&init), first_token);
    // a file the user edited is replaced, and the user is told
    std::fs::write(&sysctl, "edited\n").unwrap();
    let third = kubeha()
        .args(["plan", "-f"])
        .arg(&example)
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&third.get_output().stderr).to_string();
    assert!(
        stderr.contains("replacing") && stderr.contains("99-kubeha.conf"),
        "{stderr}"
    );
}

#[test]
fn json_plan_has_nodes_steps_and_redacted_secrets() {
    let example = root().join("examples/cluster.yaml");
    let out = kubeha()
        .args(["plan", "--output", "json", "-f"])
        .arg(&example)
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["cluster"], "prod");
    assert_eq!(v["endpoint"], "k8s-api.prod.internal:16443");
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 5);
    let m1 = &nodes[0];
    let init = m1["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"] == "/etc/kubeha/kubeadm-init.yaml")
        .unwrap();
    assert_eq!(init["sensitive"], true);
    let digest = init["sha256"].as_str().unwrap();
    assert!(
        v["contents"].get(digest).is_none() && init.get("contents").is_none(),
        "secrets are never printed"
    );
    // Shown contents are named once, by digest: the hosts block every node gets is one entry.
    let hosts: Vec<&str> = nodes
        .iter()
        .map(|n| {
            n["artifacts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["path"] == "/etc/kubeha/hosts.block")
                .and_then(|a| a["sha256"].as_str())
                .unwrap()
        })
        .collect();
    assert!(hosts.iter().all(|h| *h == hosts[0]));
    let block = v["contents"][hosts[0]].as_str().unwrap();
    assert!(block.contains("k8s-api.prod.internal"), "{block}");
    assert_eq!(init["mode"], "0600");
    let steps: Vec<&str> = m1["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(steps.first(), Some(&"preflight/host"));
    assert!(steps.contains(&"init/kubeadm-init"));
}

#[test]
fn help_and_version() {
    kubeha()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicates::str::contains("kubeha 0.1.0"));
    kubeha()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicates::str::contains("plan"));
}
