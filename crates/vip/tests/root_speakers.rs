//! Needs root. Three speakers, each on a thread inside its own node namespace (setns), on a
//! real bridge: election, crash failover, the VIP's lifetime on a crashed holder, graceful
//! handover, and cable pull then heal.

mod common;

use std::time::{Duration, Instant};

use common::*;
use testkit::netns::Topology;

#[test]
fn root_election_crash_failover_lifetime_and_graceful_handover() {
    if testkit::skip_without_root("root_speakers") {
        return;
    }
    let t = Topology::build(&format!("khsp{}", std::process::id()), 3).unwrap();
    let names: Vec<String> = t.nodes.iter().map(|h| h.ns.name().to_string()).collect();
    let mut speakers: Vec<Option<Running>> = (0..3)
        .map(|i| Some(start(&names[i], config(i, 3, 200 - 10 * i as u8))))
        .collect();

    // one holder, the highest priority
    assert!(
        within(Duration::from_secs(3), || holders(&t) == vec![0]).is_some(),
        "holders {:?}",
        holders(&t)
    );
    assert!(
        within(Duration::from_secs(2), || speakers[1]
            .as_ref()
            .unwrap()
            .state()
            == vrrp::State::Backup)
        .is_some()
    );
    assert!(client_reaches_vip(&t));

    // crash node 0: node 1 takes over within about Master_Down_Interval, and node 0's VIP
    // disappears by itself when its lifetime runs out
    speakers[0].as_ref().unwrap().crash.send(()).unwrap();
    let crashed_at = Instant::now();
    let took = within(Duration::from_secs(2), || {
        speakers[1].as_ref().unwrap().state() == vrrp::State::Master
    });
    let took = took.expect("node 1 became master");
    assert!(took < Duration::from_millis(600), "failover took {took:?}");
    assert!(
        within(Duration::from_secs(5), || !holds_vip(&t, 0)).is_some(),
        "crashed holder kept the VIP"
    );
    let gone = crashed_at.elapsed();
    assert!(
        gone <= Duration::from_millis(4000),
        "VIP lifetime 2 s, gone after {gone:?}"
    );
    eprintln!(
        "measured: crash failover {took:?} (50 ms adverts), crashed holder's VIP gone after {gone:?}"
    );
    assert_eq!(holders(&t), vec![1]);
    speakers[0] = None;

    // graceful stop of node 1: node 2 takes over, node 1 keeps the VIP until then
    let stopping = speakers[1].take().unwrap();
    stopping.stop.cancel();
    assert!(
        within(Duration::from_secs(2), || holds_vip(&t, 2)).is_some(),
        "node 2 took the VIP"
    );
    assert!(
        within(Duration::from_secs(3), || !holds_vip(&t, 1)).is_some(),
        "node 1 released it"
    );
    drop(stopping);
    assert_eq!(holders(&t), vec![2]);
    assert!(client_reaches_vip(&t));
    let c = speakers[2].as_ref().unwrap().status.borrow().clone();
    assert!(c.gratuitous_arps >= 1 && c.transitions >= 2, "{c:?}");
}

#[test]
fn root_cable_pull_then_heal_leaves_exactly_one_holder() {
    if testkit::skip_without_root("root_speakers") {
        return;
    }
    let t = Topology::build(&format!("khsc{}", std::process::id()), 3).unwrap();
    let names: Vec<String> = t.nodes.iter().map(|h| h.ns.name().to_string()).collect();
    let _speakers: Vec<Running> = (0..3)
        .map(|i| start(&names[i], config(i, 3, 200 - 10 * i as u8)))
        .collect();
    assert!(within(Duration::from_secs(3), || holders(&t) == vec![0]).is_some());
    t.cable(0, false).unwrap();
    // the isolated node keeps the VIP (it hears nobody); node 1 takes it on the segment
    assert!(within(Duration::from_secs(2), || holds_vip(&t, 1)).is_some());
    t.cable(0, true).unwrap();
    // after healing, node 0 preempts (highest priority) and node 1 steps down: one holder
    assert!(
        within(Duration::from_secs(3), || holders(&t) == vec![0]).is_some(),
        "holders {:?}",
        holders(&t)
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(holders(&t), vec![0], "stable with one holder");
}
