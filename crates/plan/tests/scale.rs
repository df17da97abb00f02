//! What a plan holds grows linearly with the node count: files every node gets are kept once
//! (the contents store), and `hosts:` limits what the hosts block lists. Speed itself is
//! measured by bench/plan.sh, not here.

use std::sync::Arc;

fn inventory(workers: usize, extra: &str) -> String {
    let mut s = format!(
        "cluster: {{ name: big, kubernetes_version: 1.34.4 }}\n\
         endpoint: {{ vip: 198.18.0.10/15, dns_name: api.big.internal }}\n\
         networking: {{ cni: bridge, pod_cidr: 10.128.0.0/9 }}\n{extra}\nnodes:\n"
    );
    for i in 1..=3 {
        s.push_str(&format!(
            "  - {{ name: cp{i}, address: 198.18.0.{}/15, roles: [control-plane] }}\n",
            10 + i
        ));
    }
    for i in 0..workers {
        s.push_str(&format!(
            "  - {{ name: w{i}, address: 198.19.{}.{}/15, roles: [worker] }}\n",
            i / 250,
            i % 250 + 1
        ));
    }
    s
}

fn plan_of(src: &str) -> plan::Plan {
    let loaded = inventory::parse_str(src, "cluster.yaml").expect("valid inventory");
    plan::build(&loaded.inventory, &plan::Inputs::placeholder())
}

fn artifact<'a>(n: &'a plan::NodePlan, path: &str) -> &'a plan::Artifact {
    n.artifact(path)
        .unwrap_or_else(|| panic!("{path} on {}", n.name))
}

#[test]
fn files_every_node_gets_are_kept_once() {
    let plan = plan_of(&inventory(200, ""));
    let first = &plan.nodes[0];
    for path in ["/etc/kubeha/hosts.block", "/etc/kubeha/pod-routes.sh"] {
        let kept = &artifact(first, path).contents;
        for n in &plan.nodes {
            assert!(
                Arc::ptr_eq(kept, &artifact(n, path).contents),
                "{path} of {} is a copy",
                n.name
            );
        }
    }
    // Equal files rendered per node (a worker's sysctl file) end up shared too.
    let w = |i: usize| &artifact(&plan.nodes[3 + i], "/etc/sysctl.d/99-kubeha.conf").contents;
    assert!(Arc::ptr_eq(w(0), w(199)));
}

#[test]
fn distinct_contents_grow_linearly_with_the_nodes() {
    let small = plan_of(&inventory(200, ""));
    let large = plan_of(&inventory(400, ""));
    let (a, b) = (small.contents.bytes(), large.contents.bytes());
    // Twice the nodes: a little over twice the bytes (per-node files, plus one hosts block and
    // one routes script twice as long), nowhere near four times.
    assert!(
        b < a * 5 / 2,
        "200 workers keep {a} bytes, 400 keep {b}: more than linear"
    );
    assert!(b > a, "more nodes, more distinct files");
}

fn hosts_block(src: &str) -> String {
    let plan = plan_of(src);
    let n = plan.nodes.last().unwrap();
    String::from_utf8(artifact(n, "/etc/kubeha/hosts.block").contents.to_vec()).unwrap()
}

#[test]
fn hosts_lists_all_nodes_by_default_or_what_the_inventory_says() {
    let all = hosts_block(&inventory(3, ""));
    assert!(all.contains("198.18.0.10 api.big.internal"), "{all}");
    assert!(
        all.contains("198.18.0.11 cp1") && all.contains("198.19.0.3 w2"),
        "{all}"
    );

    let cp = hosts_block(&inventory(3, "hosts: control-plane"));
    assert!(cp.contains("198.18.0.10 api.big.internal"), "{cp}");
    assert!(cp.contains("198.18.0.13 cp3"), "{cp}");
    assert!(!cp.contains(" w0"), "workers are not listed: {cp}");

    let none = hosts_block(&inventory(3, "hosts: none"));
    assert!(none.contains("198.18.0.10 api.big.internal"), "{none}");
    assert!(!none.contains(" cp1") && !none.contains(" w0"), "{none}");
}

#[test]
fn an_unknown_hosts_choice_names_its_place() {
    let Err(inventory::LoadError::Invalid(found)) =
        inventory::parse_str(&inventory(1, "hosts: some"), "cluster.yaml")
    else {
        panic!("`hosts: some` was accepted");
    };
    let text: Vec<String> = found.iter().map(|d| d.to_string()).collect();
    assert!(
        text.iter().any(|t| t.starts_with("cluster.yaml:4:8:")
            && t.contains("hosts")
            && t.contains("control-plane")),
        "{text:?}"
    );
}
