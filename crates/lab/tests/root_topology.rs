//! Needs root: builds a real 3-node topology, checks reachability and cable pulls, and that
//! dropping it leaves no namespace behind.

use lab::Topology;
use lab::netns::list;

fn ping(from: &lab::Host, to: std::net::Ipv4Addr) -> bool {
    from.ns
        .exec(&["ping", "-c", "1", "-W", "1", &to.to_string()])
        .is_ok()
}

/// A link that just came up needs a moment (carrier, neighbour resolution): up to 5 tries.
fn ping_soon(from: &lab::Host, to: std::net::Ipv4Addr) -> bool {
    (0..5).any(|_| ping(from, to))
}

#[test]
fn root_three_nodes_reach_each_other_and_cleanup_is_complete() {
    if testkit::skip_without_root("root_topology") {
        return;
    }
    let name = format!("khlt{}", std::process::id());
    let names;
    {
        let t = Topology::build(&name, 3).expect("build topology (needs root)");
        names = t.namespaces();
        for ns in &names {
            assert!(list().unwrap().contains(ns), "{ns} exists");
        }
        assert!(ping(&t.client, t.nodes[2].address));
        assert!(ping(&t.nodes[0], t.nodes[1].address));
        t.cable(1, false).unwrap();
        assert!(!ping(&t.client, t.nodes[1].address), "cable pulled");
        t.cable(1, true).unwrap();
        assert!(ping_soon(&t.client, t.nodes[1].address), "cable back");
        // a process started inside is killed when the topology goes
        let p = t.nodes[0].ns.spawn(&["sleep", "300"], None).unwrap();
        let pid = p.detach();
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        drop(t);
        // reaped by init or zombie-free: /proc entry gone or a zombie
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "sleep {pid} still runs: {stat}"
        );
    }
    let now = list().unwrap();
    for ns in names {
        assert!(!now.contains(&ns), "{ns} left behind");
    }
}

#[test]
fn root_existing_namespace_is_refused() {
    if testkit::skip_without_root("root_topology") {
        return;
    }
    let name = format!("khlx{}", std::process::id());
    let _first = lab::Netns::create(&format!("{name}-hub")).unwrap();
    let err = Topology::build(&name, 1).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}
