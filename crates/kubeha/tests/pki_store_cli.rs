//! Two inventories in one folder, as a new user meets them: the PKI store beside them belongs
//! to the cluster it was issued for, and `up --dry-run` says that it wrote one.

use std::path::Path;

use assert_cmd::Command;

fn run(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::cargo_bin("kubeha")
        .expect("binary built")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn examples(dir: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for f in ["cluster.yaml", "minimal.yaml"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
}

#[test]
fn dry_run_says_it_wrote_the_pki_and_another_inventory_is_told_to_use_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    examples(dir);
    // The nodes do not exist; the PKI is issued before anything connects.
    let (_, err) = run(
        dir,
        &[
            "up",
            "-f",
            "cluster.yaml",
            "--dry-run",
            "--connect-timeout",
            "1s",
        ],
    );
    assert!(err.contains("kubeha up: PKI in ./pki: 19 file(s)"), "{err}");
    assert!(err.contains("--dry-run wrote that PKI to disk"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("pki/cluster-name")).unwrap(),
        "prod\n"
    );

    // minimal.yaml (cluster "lab") beside it: one line that says what to do.
    let (code, err) = run(dir, &["plan", "-f", "minimal.yaml"]);
    assert_ne!(code, 0, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("belongs to cluster \"prod\", not \"lab\""),
        "{err}"
    );
    assert!(err.contains("--pki-dir DIR"), "{err}");
    // With a store of its own it plans; the first cluster's store is untouched.
    let (code, err) = run(dir, &["plan", "-f", "minimal.yaml", "--pki-dir", "pki-lab"]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = run(dir, &["plan", "-f", "cluster.yaml"]);
    assert_eq!(code, 0, "{err}");
}
