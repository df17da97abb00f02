//! Measures how long `Store::issue` takes for N nodes (stacked etcd: N control-plane nodes
//! that are also etcd members), a first run and an idempotent second run.
//!
//!     cargo run --release -p kubeha-pki --example issue_timing -- 3 100 [--ecdsa] [--keep DIR]

use std::time::Instant;

use pki::{Endpoint, IssueOptions, KeyType, NodeId, PkiSpec, Store};
use time::OffsetDateTime;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kt = if args.iter().any(|a| a == "--ecdsa") {
        KeyType::EcdsaP256
    } else {
        KeyType::Rsa2048
    };
    let keep = args
        .iter()
        .position(|a| a == "--keep")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let counts: Vec<u32> = args.iter().filter_map(|a| a.parse().ok()).collect();
    for n in if counts.is_empty() {
        vec![3, 100]
    } else {
        counts
    } {
        let nodes: Vec<NodeId> = (0..n)
            .map(|i| {
                NodeId::new(
                    format!("node{i}"),
                    std::net::Ipv4Addr::from(0x0a00_0000 + 10 + i).into(),
                )
            })
            .collect();
        let spec = PkiSpec::new(
            "kubernetes",
            Endpoint {
                vip: "198.18.0.100".parse().unwrap(),
                port: 16443,
            },
            nodes,
        );
        let mut spec = spec;
        spec.key_type = kt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = keep
            .clone()
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| tmp.path().to_path_buf());
        let store = Store::open(&dir);
        let t = Instant::now();
        let report = store
            .issue(&spec, OffsetDateTime::now_utc(), &IssueOptions::default())
            .unwrap();
        let first = t.elapsed();
        let t = Instant::now();
        store
            .issue(&spec, OffsetDateTime::now_utc(), &IssueOptions::default())
            .unwrap();
        let second = t.elapsed();
        println!(
            "{kt} {n:>4} nodes: {} certs/keys issued in {:.2?}; re-run (all reused) {:.2?}",
            report.entries.len(),
            first,
            second
        );
    }
}
