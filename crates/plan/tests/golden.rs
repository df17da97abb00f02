//! Golden files: every artifact kubeha renders for the example inventory, reviewed once and
//! then held byte for byte. Update with INSTA_UPDATE=always after reviewing a change.

use std::path::Path;

fn example(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(name),
    )
    .unwrap()
}

fn plan_for(src: &str) -> plan::Plan {
    let loaded = inventory::parse_str(src, "cluster.yaml").expect("example is valid");
    plan::build(&loaded.inventory, &plan::Inputs::placeholder())
}

fn snapshot_node(plan: &plan::Plan, node: &str, prefix: &str) {
    let n = plan.node(node).unwrap();
    for a in &n.artifacts {
        let name = format!("{prefix}{node}{}", a.path.replace('/', "__"));
        let header = format!(
            "# path: {} mode: {:04o} owner: {}\n",
            a.path, a.mode, a.owner
        );
        insta::assert_snapshot!(
            name,
            format!("{header}{}", String::from_utf8_lossy(&a.contents))
        );
    }
    let steps: Vec<String> = n
        .steps
        .iter()
        .map(|s| {
            format!(
                "## {} (changes: {})\n# uploads: {}\n{}\n",
                s.id,
                s.changes,
                s.uploads.join(" "),
                s.run.as_deref().unwrap_or("")
            )
        })
        .collect();
    insta::assert_snapshot!(format!("{prefix}{node}__steps"), steps.join("\n"));
}

#[test]
fn example_builtin_frontdoor() {
    let plan = plan_for(&example("cluster.yaml"));
    for node in ["master1", "master2", "worker1"] {
        snapshot_node(&plan, node, "");
    }
}

#[test]
fn example_keepalived_haproxy_and_external_etcd() {
    let src = example("cluster.yaml")
        .replace("kind: builtin ", "kind: keepalived-haproxy ")
        .replace("topology: stacked", "topology: external")
        .replace(
            "roles: [worker]\n    labels",
            "roles: [worker, etcd]\n    labels",
        )
        .replace(
            "address: 198.18.0.12/24\n    roles: [control-plane]",
            "address: 198.18.0.12/24\n    roles: [control-plane, etcd]",
        )
        .replace(
            "address: 198.18.0.13/24\n    roles: [control-plane]",
            "address: 198.18.0.13/24\n    roles: [control-plane, etcd]",
        );
    let plan = plan_for(&src);
    snapshot_node(&plan, "master1", "kh-");
    snapshot_node(&plan, "worker1", "kh-");
}

#[test]
fn v1beta3_for_kubernetes_before_1_31() {
    let plan = plan_for(&example("minimal.yaml").replace("1.31.4", "1.30.6"));
    let n = plan.node("cp1").unwrap();
    let init = String::from_utf8(
        n.artifact("/etc/kubeha/kubeadm-init.yaml")
            .unwrap()
            .contents
            .to_vec(),
    )
    .unwrap();
    assert!(init.contains("apiVersion: kubeadm.k8s.io/v1beta3"));
    // v1beta3 takes extraArgs as a map
    assert!(
        init.contains("    extraArgs:\n      auto-compaction-mode: periodic\n")
            && init.contains("\n      quota-backend-bytes: \"8589934592\"\n"),
        "{init}"
    );
    let plan = plan_for(&example("minimal.yaml"));
    let init = String::from_utf8(
        plan.node("cp1")
            .unwrap()
            .artifact("/etc/kubeha/kubeadm-init.yaml")
            .unwrap()
            .contents
            .to_vec(),
    )
    .unwrap();
    assert!(init.contains("apiVersion: kubeadm.k8s.io/v1beta4"));
    assert!(
        init.contains(
            "    extraArgs:\n    - name: quota-backend-bytes\n      value: \"8589934592\"\n"
        ),
        "{init}"
    );
}

#[test]
fn certsans_include_vip_every_control_plane_name_and_address() {
    let plan = plan_for(&example("cluster.yaml"));
    let init = String::from_utf8(
        plan.node("master1")
            .unwrap()
            .artifact("/etc/kubeha/kubeadm-init.yaml")
            .unwrap()
            .contents
            .to_vec(),
    )
    .unwrap();
    let sans_start = init.find("certSANs:").unwrap();
    let sans = &init[sans_start..init[sans_start..].find("etcd:").unwrap() + sans_start];
    for want in [
        "198.18.0.10",
        "k8s-api.prod.internal",
        "master1",
        "198.18.0.11",
        "master2",
        "198.18.0.12",
        "master3",
        "198.18.0.13",
    ] {
        assert!(
            sans.contains(&format!("- {want}\n")) || sans.contains(&format!("- \"{want}\"\n")),
            "{want} missing in {sans}"
        );
    }
    assert!(init.contains("controlPlaneEndpoint: k8s-api.prod.internal:16443"));
}
