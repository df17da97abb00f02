//! Needs root. Issue 15 item 5: no duplicate VIP and no VIP left unannounced. A device
//! outside the VRRP group (the client namespace, with the VIP configured by hand) answers ARP
//! for the VIP: the speaker does not claim it, says so, and claims it once the device lets go.
//! A crashed holder that still has the VIP is a peer, not a conflict. After the link comes
//! back up, the holder announces the VIP again.

mod common;

use std::time::Duration;

use common::*;
use testkit::netns::Topology;
use testkit::netns::topology::VIP;

fn vip_on_client(t: &Topology, add: bool) {
    let verb = if add { "add" } else { "del" };
    t.client
        .ns
        .exec(&["ip", "addr", verb, &format!("{VIP}/24"), "dev", "eth0"])
        .unwrap();
}

#[test]
fn root_a_vip_another_device_answers_for_is_not_claimed() {
    if testkit::skip_without_root("root_arp") {
        return;
    }
    let t = Topology::build(&format!("khar{}", std::process::id()), 2).unwrap();
    let names: Vec<String> = t.nodes.iter().map(|h| h.ns.name().to_string()).collect();
    vip_on_client(&t, true);
    let first = start(&names[0], config(0, 2, 150));
    assert!(
        within(Duration::from_secs(3), || first
            .status
            .borrow()
            .conflict
            .is_some())
        .is_some(),
        "the other device was not noticed: {:?}",
        *first.status.borrow()
    );
    // Well past Master_Down_Interval: never claimed, in Fault, counted.
    std::thread::sleep(Duration::from_millis(800));
    let st = first.status.borrow().clone();
    assert_eq!(st.state, vrrp::State::Fault, "{st:?}");
    assert!(!st.holds_vip && holders(&t).is_empty(), "{st:?}");
    assert!(st.conflicts_found >= 1, "{st:?}");
    let client_mac = t
        .client
        .ns
        .exec(&["cat", "/sys/class/net/eth0/address"])
        .unwrap_or_default();
    eprintln!(
        "measured: conflict with {} (client eth0 {}), {} probe(s) found it",
        vip::arp::mac_string(st.conflict.unwrap()),
        client_mac.trim(),
        st.conflicts_found
    );

    // The device lets go: the next probe (every 2 s) finds nobody, and the VIP is claimed.
    vip_on_client(&t, false);
    assert!(
        within(Duration::from_secs(5), || holders(&t) == vec![0]).is_some(),
        "not claimed after the other device let go: {:?}",
        *first.status.borrow()
    );
    assert_eq!(first.status.borrow().conflict, None);

    // A backup; then the holder crashes and keeps the VIP until its lifetime ends. It still
    // answers ARP for the VIP, and for its own address: a peer, so the takeover stands.
    let second = start(&names[1], config(1, 2, 140));
    assert!(
        within(Duration::from_secs(3), || second.state()
            == vrrp::State::Backup)
        .is_some()
    );
    first.crash.send(()).unwrap();
    assert!(
        within(Duration::from_secs(2), || second.state()
            == vrrp::State::Master)
        .is_some(),
        "no takeover"
    );
    assert!(
        holds_vip(&t, 0),
        "the crashed holder still has the VIP (lifetime)"
    );
    std::thread::sleep(Duration::from_millis(600));
    let st = second.status.borrow().clone();
    assert_eq!(
        (st.state, st.conflict, st.conflicts_found),
        (vrrp::State::Master, None, 0),
        "a crashed peer is no conflict: {st:?}"
    );
}

#[test]
fn root_the_holder_announces_the_vip_again_when_its_link_comes_back() {
    if testkit::skip_without_root("root_arp") {
        return;
    }
    let t = Topology::build(&format!("khal{}", std::process::id()), 1).unwrap();
    let ns = &t.nodes[0].ns;
    let only = start(ns.name(), config(0, 1, 150));
    assert!(within(Duration::from_secs(3), || holders(&t) == vec![0]).is_some());
    // Past the takeover's own gratuitous ARP repeats (the last at +3 s).
    std::thread::sleep(Duration::from_millis(3300));
    let before = only.status.borrow().clone();
    ns.exec(&["ip", "link", "set", "eth0", "down"]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    ns.exec(&["ip", "link", "set", "eth0", "up"]).unwrap();
    assert!(
        within(Duration::from_secs(3), || {
            let s = only.status.borrow();
            s.link_ups == before.link_ups + 1 && s.gratuitous_arps > before.gratuitous_arps
        })
        .is_some(),
        "no announcement after link-up: before {before:?}, now {:?}",
        *only.status.borrow()
    );
    let st = only.status.borrow().clone();
    assert_eq!(
        (st.state, st.holds_vip),
        (vrrp::State::Master, true),
        "{st:?}"
    );
    assert!(client_reaches_vip(&t));
}
