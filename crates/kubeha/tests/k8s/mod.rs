//! Real Kubernetes binaries for the tests: the directory `scripts/k8s-binaries.sh` prints
//! (scripts/test.sh exports it as KUBEHA_K8S_BIN before the tests run).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binaries directory, or None (with the reason printed) where they are not built. Under
/// CI (env CI set) a missing directory fails the test: the test command builds it first.
pub fn binaries(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("KUBEHA_K8S_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/kubeha/k8s/v1.34.4"));
    if dir.join("SHA256SUMS").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: no Kubernetes binaries in {} (scripts/test.sh builds them with scripts/k8s-binaries.sh)",
        dir.display()
    );
    eprintln!(
        "skipped {test}: no Kubernetes binaries in {} (run scripts/k8s-binaries.sh, or set KUBEHA_K8S_BIN)",
        dir.display()
    );
    None
}

/// `v1.34.4` from the binaries' VERSIONS file.
pub fn version(bin: &Path) -> String {
    std::fs::read_to_string(bin.join("VERSIONS"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("kubernetes ").map(str::to_string))
        .expect("VERSIONS names kubernetes")
}

pub fn kubeha(args: &[&str]) -> Output {
    Command::new(assert_cmd::cargo::cargo_bin("kubeha"))
        .args(args)
        .output()
        .expect("kubeha runs")
}

/// Runs a command and returns stdout + stderr, failing the test with both when it fails.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

pub fn assert_ok(out: &Output, what: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

/// A repository example with its kubernetes_version set to the binaries' version (kubeadm
/// refuses control planes older than its own minor - 1).
pub fn example_at(name: &str, version: &str, edit: &dyn Fn(String) -> String) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    let text = std::fs::read_to_string(path).unwrap();
    let v = version.trim_start_matches('v');
    let mut out = String::new();
    for line in text.lines() {
        if let Some(i) = line.find("kubernetes_version:") {
            let rest = &line[i + "kubernetes_version:".len()..];
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            out.push_str(&format!(
                "{}kubernetes_version: {v}{}\n",
                &line[..i],
                &rest[end..]
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    edit(out)
}

/// Every file under `dir`, with its bytes (to prove a tool changed none).
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut m = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                m.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    m
}
