//! Needs root, iproute2 and Debian's etcd-server. `kubeha lab up/status/drill/down` as a user
//! runs them: a 3-node lab with TLS etcd behind the front door, a 5-cycle drill with every
//! fault kind, and the refusals of `lab up` (a foreign namespace, no etcd, not root). Each
//! test uses its own `--name` and `--dir`; a guard runs `lab down` if a test panics.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const KUBEHA: &str = env!("CARGO_BIN_EXE_kubeha");

/// A lab name unique to this test process and test (names are at most 8 characters).
fn lab_name(tag: char) -> String {
    format!("t{}{tag}", std::process::id() % 100_000)
}

fn kubeha(args: &[&str]) -> Output {
    Command::new(KUBEHA)
        .args(args)
        .output()
        .expect("run kubeha")
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Namespaces whose name starts with `<name>-`.
fn namespaces_of(name: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{name}-")))
        .map(str::to_string)
        .collect()
}

/// Runs `kubeha lab down` when dropped (a failed test leaves nothing behind).
struct Down {
    name: String,
    dir: PathBuf,
}

impl Drop for Down {
    fn drop(&mut self) {
        let _ = kubeha(&[
            "lab",
            "down",
            "--name",
            &self.name,
            "--dir",
            self.dir.to_str().unwrap(),
        ]);
    }
}

/// Whether `pid` is gone or a zombie (exited, not yet reaped by whoever adopted it).
fn gone(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.contains(") Z "),
    }
}

fn pids(state: &serde_json::Value) -> Vec<i64> {
    state["members"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| [m["etcd"]["pid"].as_i64(), m["frontdoor"]["pid"].as_i64()])
        .flatten()
        .collect()
}

#[test]
fn root_lab_drill_keeps_every_acknowledged_write() {
    if testkit::skip_without_root("root_lab") {
        return;
    }
    let name = lab_name('d');
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    let d = dir.to_str().unwrap();
    let _down = Down {
        name: name.clone(),
        dir: dir.clone(),
    };

    let up = kubeha(&["lab", "up", "--name", &name, "--dir", d, "--nodes", "3"]);
    assert!(up.status.success(), "lab up: {}", show(&up));
    let st = kubeha(&["lab", "status", "--name", &name, "--dir", d]);
    assert!(st.status.success(), "lab status: {}", show(&st));

    let json = tmp.path().join("drill.json");
    let svg = tmp.path().join("drill.svg");
    let drill = kubeha(&[
        "lab",
        "drill",
        "--name",
        &name,
        "--dir",
        d,
        "--cycles",
        "5",
        "--faults",
        "kill,term,cable,pause,backend",
        "--json",
        json.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(drill.status.success(), "lab drill: {}", show(&drill));
    eprintln!("{}", String::from_utf8_lossy(&drill.stdout));

    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["writes_lost"], 0, "{report:#}");
    assert!(report["writes_acked"].as_u64().unwrap() > 0, "{report:#}");
    let cycles = report["cycles"].as_array().unwrap();
    let faults: Vec<&str> = cycles
        .iter()
        .map(|c| c["fault"].as_str().unwrap())
        .collect();
    assert_eq!(faults, ["kill", "term", "cable", "pause", "backend"]);
    for c in cycles {
        // Every fault is undone after --hold (1 s) at the latest once writes work again. The
        // longest outages last until the fault is undone (a paused holder keeps the VIP and
        // its kernel keeps answering for it) or until etcd has elected a new leader (backend:
        // election timeout 1 s); a write is bounded by 1 s. 1 s + 1 s + 1 s, and as much
        // again for a 2-core CI machine that runs other tests meanwhile.
        let ms = c["failover_ms"].as_f64().unwrap();
        assert!((0.0..6000.0).contains(&ms), "failover {ms} ms: {c:#}");
        assert!(c["dual_holder_ms"].as_f64().unwrap() >= 0.0);
        // And the lab recovered from it within 15 s: one holder, writes through the VIP
        // working again. A paused holder that resumes can leave clients on a stale ARP entry
        // (docs/lab.md, "pause"): that fails here, as it should.
        assert_eq!(
            c["steady"],
            true,
            "the lab did not recover within 15 s of undoing the fault: {c:#}
{}",
            String::from_utf8_lossy(&drill.stdout)
        );
        assert!(c["failed_requests"].as_u64().is_some());
    }

    // Exactly one VIP holder once the drill is over.
    let st = kubeha(&[
        "lab", "status", "--name", &name, "--dir", d, "--output", "json",
    ]);
    assert!(st.status.success(), "lab status: {}", show(&st));
    let status: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let holding = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["holds_vip"] == true)
        .count();
    assert_eq!(holding, 1, "{status:#}");

    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg") && text.trim_end().ends_with("</svg>"));
    assert!(text.contains("n0 VIP") && text.contains("kill@"));

    // Down removes every namespace and process of the lab, also those the drill restarted.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    let before = pids(&state);
    assert_eq!(before.len(), 6, "{state:#}");
    let down = kubeha(&["lab", "down", "--name", &name, "--dir", d]);
    assert!(down.status.success(), "lab down: {}", show(&down));
    assert_eq!(namespaces_of(&name), Vec::<String>::new());
    for pid in before {
        assert!(gone(pid), "pid {pid} still runs after lab down");
    }
    assert!(!dir.exists());
}

/// `lab up` that must fail before making anything: non-zero, `want` in stderr, no namespace
/// of the lab's besides `allowed`, no lab directory.
fn refused(cmd: &mut Command, name: &str, dir: &Path, want: &str, allowed: &[String]) {
    let out = cmd.output().expect("run kubeha");
    let _down = Down {
        name: name.to_string(),
        dir: dir.to_path_buf(),
    };
    assert!(!out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(want), "want {want:?}: {}", show(&out));
    assert_eq!(namespaces_of(name), allowed);
    assert!(!dir.exists(), "{} was made", dir.display());
}

#[test]
fn root_lab_up_refuses_a_namespace_that_is_not_its_own() {
    if testkit::skip_without_root("root_lab") {
        return;
    }
    let name = lab_name('x');
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    let hub = format!("{name}-hub");
    let made = Command::new("ip")
        .args(["netns", "add", &hub])
        .status()
        .unwrap();
    assert!(made.success());
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _del = Del(hub.clone());
    refused(
        Command::new(KUBEHA).args(["lab", "up", "--name", &name, "--dir", dir.to_str().unwrap()]),
        &name,
        &dir,
        &format!("network namespace {hub} already exists and is not this lab's"),
        std::slice::from_ref(&hub),
    );
}

#[test]
fn root_lab_up_needs_etcd() {
    if testkit::skip_without_root("root_lab") {
        return;
    }
    let name = lab_name('e');
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    // `ip` lives in /usr/sbin, etcd in /usr/bin.
    refused(
        Command::new(KUBEHA)
            .args(["lab", "up", "--name", &name, "--dir", dir.to_str().unwrap()])
            .env("PATH", "/usr/sbin:/sbin"),
        &name,
        &dir,
        "etcd is not installed",
        &[],
    );
}

#[test]
fn root_lab_up_needs_root() {
    if testkit::skip_without_root("root_lab") {
        return;
    }
    let name = lab_name('r');
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    refused(
        Command::new("setpriv").args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            KUBEHA,
            "lab",
            "up",
            "--name",
            &name,
            "--dir",
            dir.to_str().unwrap(),
        ]),
        &name,
        &dir,
        "needs root",
        &[],
    );
}
