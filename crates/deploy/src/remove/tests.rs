use super::*;

const LAB: &str = "
cluster: { name: lab, kubernetes_version: 1.34.4 }
endpoint: { vip: 198.18.0.10/24 }
nodes:
  - { name: cp1, address: 198.18.0.11/24, roles: [control-plane] }
  - { name: cp2, address: 198.18.0.12/24, roles: [control-plane] }
  - { name: cp3, address: 198.18.0.13/24, roles: [control-plane] }
  - { name: w1, address: 198.18.0.21/24, roles: [worker] }
  - { name: w2, address: 198.18.0.22/24, roles: [worker], pod_subnet: 10.244.9.0/24 }
networking: { cni: bridge }
";

fn inv() -> Inventory {
    inventory::parse_str(LAB, "c.yaml").unwrap().inventory
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Everything healthy, cp2 holds the VIP.
fn healthy() -> Facts {
    Facts {
        unreachable: set(&[]),
        etcd_healthy: set(&["cp1", "cp2", "cp3"]),
        apiserver_ready: set(&["cp1", "cp2", "cp3"]),
        vip_holders: vec!["cp2".into()],
        registered: Some(set(&["cp1", "cp2", "cp3", "w1", "w2"])),
    }
}

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

fn refusal(r: Result<Removal, RemoveError>) -> String {
    match r {
        Err(e @ RemoveError::Refused(_)) => {
            assert!(e.changed_nothing());
            e.to_string()
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn an_unknown_node_is_bad_input_naming_the_known_ones() {
    let e = decide(&inv(), &names(&["cp9"]), &healthy()).unwrap_err();
    assert!(e.changed_nothing());
    assert!(e.to_string().contains("no node `cp9`"), "{e}");
    assert!(e.to_string().contains("cp1, cp2, cp3, w1, w2"), "{e}");
}

#[test]
fn a_worker_is_drained_reset_and_deleted_and_the_rest_update_holder_last() {
    let r = decide(&inv(), &names(&["w1"]), &healthy()).unwrap();
    assert_eq!(r.leaving.len(), 1);
    assert_eq!(
        r.leaving[0].actions,
        [Action::Drain, Action::Reset, Action::DeleteNode]
    );
    assert!(r.leaving[0].skipped.is_empty());
    assert_eq!(
        r.rounds,
        [
            names(&["cp1"]),
            names(&["cp3"]),
            names(&["cp2"]),
            names(&["w2"])
        ]
    );
    // w2 is pinned already; nothing above the others moves.
    assert!(r.pins.is_empty());
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn a_control_plane_node_also_stops_its_front_door_and_leaves_etcd() {
    let r = decide(&inv(), &names(&["cp3"]), &healthy()).unwrap();
    assert_eq!(
        r.leaving[0].actions,
        [
            Action::Drain,
            Action::StopFrontDoor,
            Action::RemoveEtcdMember,
            Action::Reset,
            Action::DeleteNode
        ]
    );
    // Two members tolerate no failure: said.
    assert!(
        r.warnings[0].contains("etcd will have 2 members"),
        "{:?}",
        r.warnings
    );
}

#[test]
fn a_dead_first_control_plane_node_leaves_first_with_what_needs_no_ssh() {
    let mut f = healthy();
    f.unreachable = set(&["cp1"]);
    f.etcd_healthy.remove("cp1");
    f.apiserver_ready.remove("cp1");
    let r = decide(&inv(), &names(&["w1", "cp1"]), &f).unwrap();
    assert_eq!(r.leaving[0].name, "cp1");
    assert!(!r.leaving[0].reachable);
    assert_eq!(
        r.leaving[0].actions,
        [Action::RemoveEtcdMember, Action::DeleteNode]
    );
    assert_eq!(
        r.leaving[0].skipped,
        [Action::Drain, Action::StopFrontDoor, Action::Reset]
    );
    assert_eq!(r.leaving[1].name, "w1");
    assert!(
        r.warnings
            .iter()
            .any(|w| w.starts_with("cp1 cannot be reached"))
    );
    // cp2 and cp3 move up the list: without pins their /24s would change.
    assert_eq!(
        r.pins,
        [
            ("cp2".to_string(), "10.244.1.0/24".to_string()),
            ("cp3".to_string(), "10.244.2.0/24".to_string())
        ]
    );
}

#[test]
fn removing_a_healthy_member_while_another_is_down_is_refused() {
    let mut f = healthy();
    f.etcd_healthy.remove("cp3");
    let msg = refusal(decide(&inv(), &names(&["cp2"]), &f));
    assert!(
        msg.contains("break etcd's quorum: 1 of the 2 members left would be healthy, 2 are needed"),
        "{msg}"
    );
    // Taking the dead one out instead is fine.
    decide(&inv(), &names(&["cp3"]), &f).unwrap();
}

#[test]
fn without_a_quorum_no_member_removal_can_commit() {
    let mut f = healthy();
    f.etcd_healthy = set(&["cp1"]);
    let msg = refusal(decide(&inv(), &names(&["cp3"]), &f));
    assert!(
        msg.contains("etcd has no quorum (1 of 3 members healthy)"),
        "{msg}"
    );
}

#[test]
fn the_last_control_plane_node_or_the_last_apiserver_stays() {
    let msg = refusal(decide(&inv(), &names(&["cp1", "cp2", "cp3"]), &healthy()));
    assert!(msg.contains("no control-plane node"), "{msg}");
    let mut f = healthy();
    f.apiserver_ready = set(&["cp1", "cp2"]);
    let msg = refusal(decide(&inv(), &names(&["cp1", "cp2"]), &f));
    assert!(
        msg.contains("no ready apiserver (not ready now: cp3)"),
        "{msg}"
    );
}

#[test]
fn members_parse_from_the_gateway_and_are_found_by_name_or_peer_url() {
    let json = r#"{"header":{"cluster_id":"1"},"members":[
        {"ID":"1234","name":"cp1","peerURLs":["https://198.18.0.11:2380"],"clientURLs":["https://198.18.0.11:2379"]},
        {"ID":"5678","peerURLs":["https://198.18.0.13:2380"]}]}"#;
    let m = parse_members(json).unwrap();
    let inv = inv();
    assert_eq!(member_of(&m, inv.node("cp1").unwrap()).unwrap().id, "1234");
    // Added but never started: no name yet.
    assert_eq!(member_of(&m, inv.node("cp3").unwrap()).unwrap().id, "5678");
    assert!(member_of(&m, inv.node("cp2").unwrap()).is_none());
    assert!(parse_members("<html>").is_err());
    assert!(parse_members("{}").is_err());
}

#[test]
fn a_node_listed_but_not_in_the_cluster_is_left_alone() {
    // w1 was removed earlier and is still listed: removing cp3 must not join it again.
    let mut f = healthy();
    f.registered = Some(set(&["cp1", "cp2", "cp3", "w2"]));
    let r = decide(&inv(), &names(&["cp3"]), &f).unwrap();
    assert_eq!(r.left_alone, ["w1"]);
    assert_eq!(r.rounds.last().unwrap(), &names(&["w2"]));
    let rest: Vec<String> = r
        .remaining(&inv())
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .collect();
    assert_eq!(rest, ["cp1", "cp2", "w2"]);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.starts_with("w1 is in the inventory but not in the cluster"))
    );
    // Without the API's word, nothing is assumed.
    f.registered = None;
    assert!(
        decide(&inv(), &names(&["cp3"]), &f)
            .unwrap()
            .left_alone
            .is_empty()
    );
}
