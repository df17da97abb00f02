//! Seed 004's host preparation as inventory settings (`host:`): journald limits and storage,
//! a time sync service, extra kernel parameters; their defaults are the seed's values.

use plan::StepId;

fn inventory(extra: &str) -> String {
    format!(
        "cluster: {{ name: c, kubernetes_version: 1.34.4 }}\n\
         endpoint: {{ vip: 198.18.0.10/24 }}\n\
         nodes:\n\
         \x20 - {{ name: cp1, address: 198.18.0.11/24, roles: [control-plane] }}\n\
         \x20 - {{ name: w1, address: 198.18.0.21/24, roles: [worker] }}\n{extra}"
    )
}

fn plan_of(extra: &str) -> plan::Plan {
    let loaded = inventory::parse_str(&inventory(extra), "cluster.yaml").expect("valid");
    plan::build(&loaded.inventory, &plan::Inputs::placeholder())
}

fn text(n: &plan::NodePlan, path: &str) -> Option<String> {
    n.artifact(path)
        .map(|a| String::from_utf8(a.contents.to_vec()).unwrap())
}

fn errors(extra: &str) -> Vec<String> {
    match inventory::parse_str(&inventory(extra), "cluster.yaml") {
        Err(inventory::LoadError::Invalid(d)) => d.iter().map(|d| d.to_string()).collect(),
        other => panic!("accepted: {extra}: {:?}", other.is_ok()),
    }
}

#[test]
fn defaults_are_seed_004s() {
    let plan = plan_of("");
    for n in &plan.nodes {
        let j = text(n, "/etc/systemd/journald.conf.d/50-kubeha.conf").expect("journald drop-in");
        for line in [
            "Storage=persistent",
            "SystemMaxFileSize=12M",
            "SystemMaxFiles=10",
        ] {
            assert!(j.contains(line), "{line} in {j}");
        }
        let sysctl = text(n, "/etc/sysctl.d/99-kubeha.conf").unwrap();
        assert!(sysctl.contains("fs.pipe-max-size = 16777216"), "{sysctl}");
        assert!(n.step(StepId::PrepareJournald).is_some());
        let sync = n.step(StepId::PrepareTimeSync).expect("time sync step");
        // From the repository by default: chrony may be installed.
        assert!(sync.run.as_deref().unwrap().contains("INSTALL='yes'"));
    }
}

#[test]
fn each_can_be_turned_off() {
    let plan = plan_of("host: { journald: { manage: false }, time_sync: none, sysctls: {} }\n");
    for n in &plan.nodes {
        assert!(text(n, "/etc/systemd/journald.conf.d/50-kubeha.conf").is_none());
        assert!(n.step(StepId::PrepareJournald).is_none());
        assert!(n.step(StepId::PrepareTimeSync).is_none());
        let sysctl = text(n, "/etc/sysctl.d/99-kubeha.conf").unwrap();
        assert!(!sysctl.contains("pipe-max-size"), "{sysctl}");
        assert!(
            sysctl.contains("net.ipv4.ip_forward = 1"),
            "kubeha's own stay: {sysctl}"
        );
    }
}

#[test]
fn settings_reach_the_files() {
    let plan = plan_of(
        "host:\n  journald: { storage: volatile, system_max_file_size: 64M, system_max_files: 3 }\n  \
         sysctls: { vm.max_map_count: 262144, net.ipv4.tcp_rmem: \"4096 87380 6291456\" }\n\
         packages: { source: preinstalled }\n",
    );
    let n = &plan.nodes[1];
    let j = text(n, "/etc/systemd/journald.conf.d/50-kubeha.conf").unwrap();
    assert!(
        j.contains("Storage=volatile")
            && j.contains("SystemMaxFileSize=64M")
            && j.contains("SystemMaxFiles=3"),
        "{j}"
    );
    let sysctl = text(n, "/etc/sysctl.d/99-kubeha.conf").unwrap();
    assert!(sysctl.contains("vm.max_map_count = 262144"), "{sysctl}");
    assert!(
        sysctl.contains("net.ipv4.tcp_rmem = 4096 87380 6291456"),
        "{sysctl}"
    );
    assert!(
        !sysctl.contains("pipe-max-size"),
        "a given map replaces the default: {sysctl}"
    );
    // Not from a repository: the node must have a time sync service or chrony.
    let sync = n.step(StepId::PrepareTimeSync).unwrap();
    assert!(sync.run.as_deref().unwrap().contains("INSTALL='no'"));
}

#[test]
fn bad_settings_name_their_place() {
    let cases = [
        (
            "host: { sysctls: { net.ipv4.ip_forward: 0 } }\n",
            "host.sysctls.net.ipv4.ip_forward",
            "kubeha sets",
        ),
        (
            "host: { sysctls: { nodots: 1 } }\n",
            "host.sysctls.nodots",
            "not a kernel parameter",
        ),
        (
            "host: { sysctls: { vm.swappiness: [1] } }\n",
            "host.sysctls.vm.swappiness",
            "one-line",
        ),
        (
            "host: { journald: { system_max_file_size: 12MB } }\n",
            "host.journald.system_max_file_size",
            "journald size",
        ),
        (
            "host: { journald: { system_max_files: 0 } }\n",
            "host.journald.system_max_files",
            "out of range",
        ),
        (
            "host: { journald: { storage: disk } }\n",
            "host.journald.storage",
            "persistent",
        ),
        ("host: { time_sync: ntp }\n", "host.time_sync", "chrony"),
    ];
    for (extra, field, says) in cases {
        let e = errors(extra);
        assert!(
            e.iter()
                .any(|d| d.starts_with("cluster.yaml:6:") && d.contains(field) && d.contains(says)),
            "{extra}: {e:?}"
        );
    }
}
