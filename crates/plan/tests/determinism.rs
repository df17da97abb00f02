//! Rendering is a pure function: the same inventory gives the same bytes, every time.

use proptest::prelude::*;

#[allow(clippy::too_many_arguments)] // one argument per generated dimension
fn inventory_text(
    cps: usize,
    workers: usize,
    minor: u32,
    kind: &str,
    external: bool,
    ipvs: bool,
    cni: &str,
    mirrors: usize,
) -> String {
    let mut s = format!(
        "cluster: {{ name: c, kubernetes_version: 1.{minor}.3 }}\nendpoint: {{ vip: 198.18.0.250/23, dns_name: api.c.test }}\n\
         networking: {{ cni: {cni}, kube_proxy_mode: {} }}\nfrontdoor: {{ kind: {kind} }}\n",
        if ipvs { "ipvs" } else { "iptables" }
    );
    if external {
        s.push_str("etcd: { topology: external }\n");
    }
    if mirrors > 0 {
        s.push_str("images:\n  mirrors:\n");
        for m in 0..mirrors {
            s.push_str(&format!(
                "    reg{m}.test: [https://m{m}.test, https://n{m}.test]\n"
            ));
        }
    }
    s.push_str("nodes:\n");
    for i in 0..cps {
        let roles = if external {
            "[control-plane, etcd]"
        } else {
            "[control-plane]"
        };
        s.push_str(&format!(
            "  - {{ name: cp{i}, address: 198.18.0.{}/23, roles: {roles} }}\n",
            i + 1
        ));
    }
    for i in 0..workers {
        s.push_str(&format!("  - {{ name: w{i}, address: 198.18.1.{}/23, roles: [worker], labels: {{ tier: t{} }} }}\n", i + 1, i % 3));
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn same_inventory_same_bytes(
        cps in 1usize..6, workers in 0usize..30, minor in 28u32..34,
        kind in prop::sample::select(vec!["builtin", "keepalived-haproxy", "external"]),
        external in any::<bool>(), ipvs in any::<bool>(),
        cni in prop::sample::select(vec!["flannel", "calico", "none"]), mirrors in 0usize..3,
    ) {
        let text = inventory_text(cps, workers, minor, kind, external, ipvs, cni, mirrors);
        let a = inventory::parse_str(&text, "a.yaml").map_err(|e| TestCaseError::fail(format!("{e:?}\n{text}")))?;
        let b = inventory::parse_str(&text, "a.yaml").unwrap();
        let inputs = plan::Inputs::placeholder();
        let pa = plan::build(&a.inventory, &inputs);
        let pb = plan::build(&b.inventory, &inputs);
        prop_assert_eq!(pa.to_json().to_string(), pb.to_json().to_string());
        for (na, nb) in pa.nodes.iter().zip(&pb.nodes) {
            prop_assert_eq!(&na.artifacts, &nb.artifacts);
            prop_assert_eq!(&na.steps, &nb.steps);
        }
        prop_assert_eq!(pa.nodes.len(), cps + workers);
    }
}
