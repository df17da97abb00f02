#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use pki::{Endpoint, KeyType, NodeId, PkiSpec};
use time::OffsetDateTime;

/// Three stacked control-plane nodes behind VIP 198.18.0.100:16443.
pub fn spec(kt: KeyType) -> PkiSpec {
    let nodes = (1..=3)
        .map(|i| {
            NodeId::new(
                format!("m{i}"),
                format!("198.18.0.{}", 10 + i).parse().unwrap(),
            )
        })
        .collect();
    let mut s = PkiSpec::new(
        "kubernetes",
        Endpoint {
            vip: "198.18.0.100".parse().unwrap(),
            port: 16443,
        },
        nodes,
    );
    s.extra_sans = vec!["api.example.com".into()];
    s.key_type = kt;
    s
}

/// A fixed clock for tests that do not hand certificates to openssl or etcd.
pub fn fixed_now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

/// Runs a tool; the test fails (not skips) when it is missing.
pub fn run(tool: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} must be installed for this test (CI installs it): {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `openssl x509 -noout -text` of a PEM file.
pub fn x509_text(file: &Path) -> String {
    let (ok, out, err) = run(
        "openssl",
        &["x509", "-noout", "-text", "-in", file.to_str().unwrap()],
    );
    assert!(ok, "openssl x509 failed on {}: {err}", file.display());
    out
}

/// `openssl verify -x509_strict -purpose P -CAfile ca cert`, asserting success.
pub fn assert_verifies(ca: &Path, cert: &Path, purpose: &str) {
    let (ok, out, err) = run(
        "openssl",
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            purpose,
            "-CAfile",
            ca.to_str().unwrap(),
            cert.to_str().unwrap(),
        ],
    );
    assert!(
        ok && out.trim_end().ends_with(": OK"),
        "openssl verify -purpose {purpose} {} against {}: {out}{err}",
        cert.display(),
        ca.display()
    );
}
