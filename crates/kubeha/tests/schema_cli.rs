//! `kubeha completions SHELL` and `kubeha schema`.

use assert_cmd::Command;

fn stdout(args: &[&str]) -> String {
    let out = Command::cargo_bin("kubeha")
        .expect("binary built")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn completions_for_each_shell_name_the_commands() {
    let bash = stdout(&["completions", "bash"]);
    assert!(bash.contains("complete -F _kubeha"), "{bash}");
    for sub in ["plan", "up", "pki", "lab", "schema", "--pki-dir"] {
        assert!(bash.contains(sub), "bash completion lacks {sub}");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        assert!(
            stdout(&["completions", shell]).contains("kubeha"),
            "{shell}"
        );
    }
    let bad = Command::cargo_bin("kubeha")
        .unwrap()
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn schema_is_the_checked_in_one() {
    let want = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cluster.schema.json"),
    )
    .unwrap();
    assert!(
        stdout(&["schema"]) == want,
        "kubeha schema differs from docs/cluster.schema.json"
    );
}
