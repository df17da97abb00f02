//! Needs root and Debian's keepalived. Our speaker and a real keepalived (vrrp_version 3,
//! unicast peers, same VRID and interval, keepalived's default checksum) in one group: they
//! elect by priority both ways and hand the VIP over both ways when the master dies.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use testkit::netns::topology::{VIP, node_address};
use testkit::netns::{Proc, Topology};

/// keepalived in node `i`'s namespace with its own pid files (fresh per start), so instances
/// never collide.
fn keepalived(t: &Topology, i: usize, peer: usize, priority: u8, dir: &Path) -> Proc {
    static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let start_no = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let conf = format!(
        "global_defs {{\n  router_id kh{i}\n  vrrp_version 3\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority {priority}\n  advert_int 0.05\n\
         \x20 unicast_src_ip {me}\n  unicast_peer {{\n    {peer}\n  }}\n  virtual_ipaddress {{\n    {VIP}/24 dev eth0\n  }}\n}}\n",
        me = node_address(i),
        peer = node_address(peer)
    );
    let path = dir.join(format!("keepalived{i}.conf"));
    std::fs::write(&path, conf).unwrap();
    let (p, r) = (
        dir.join(format!("k{i}-{start_no}.pid")),
        vrrp_pid_file(dir, i, start_no),
    );
    testkit::probe::keepalived(
        &t.nodes[i].ns,
        &path,
        &p,
        &r,
        &dir.join(format!("keepalived{i}.log")),
    )
    .expect("keepalived is installed (scripts/test.sh)")
}

fn vrrp_pid_file(dir: &Path, i: usize, start_no: usize) -> std::path::PathBuf {
    dir.join(format!("v{i}-{start_no}.pid"))
}

/// A hard crash: SIGKILL to keepalived's VRRP child and to its parent at once, so no
/// priority-0 advert goes out (killing only the parent makes the child shut down gracefully).
fn crash_keepalived(mut ka: Proc, dir: &Path, i: usize, start_no: usize) {
    assert!(
        testkit::probe::kill_keepalived(&ka, &vrrp_pid_file(dir, i, start_no)),
        "keepalived's VRRP child pid file"
    );
    ka.wait_timeout(Duration::from_secs(2));
}

fn log(dir: &Path, i: usize) -> String {
    std::fs::read_to_string(dir.join(format!("keepalived{i}.log"))).unwrap_or_default()
}

#[test]
fn root_keepalived_interop_both_ways() {
    if testkit::skip_without_root("root_keepalived") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = Topology::build(&format!("khka{}", std::process::id()), 2).unwrap();
    let ours_ns = t.nodes[0].ns.name().to_string();

    // keepalived (150) outranks us (100): keepalived holds the VIP, we are Backup
    let ka = keepalived(&t, 1, 0, 150, dir.path());
    let ours = start(&ours_ns, config(0, 2, 100));
    assert!(
        within(Duration::from_secs(5), || holders(&t) == vec![1]).is_some(),
        "holders {:?}\n{}",
        holders(&t),
        log(dir.path(), 1)
    );
    assert!(
        within(Duration::from_secs(2), || ours.state()
            == vrrp::State::Backup)
        .is_some()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(holders(&t), vec![1], "stable: keepalived stays master");
    let drops = ours.status.borrow().counters;
    assert_eq!(
        drops.dropped(),
        0,
        "keepalived's adverts all accepted: {drops:?}"
    );

    // keepalived dies: we take over within about Master_Down_Interval
    crash_keepalived(ka, dir.path(), 1, 0);
    let took = within(Duration::from_secs(2), || {
        ours.state() == vrrp::State::Master
    })
    .expect("we took over");
    eprintln!("measured: keepalived killed -> kubeha master after {took:?}");
    assert!(
        took >= Duration::from_millis(100),
        "a hard kill sends no priority 0: {took:?}"
    );
    assert!(took < Duration::from_millis(700), "{took:?}");
    assert!(within(Duration::from_secs(2), || holds_vip(&t, 0)).is_some());
    // killed keepalived leaves its VIP behind: the behaviour kubeha's lifetime fixes
    assert!(holds_vip(&t, 1), "keepalived left no VIP behind?");
    t.nodes[1]
        .ns
        .exec(&["ip", "addr", "del", &format!("{VIP}/24"), "dev", "eth0"])
        .ok();

    // keepalived comes back with the higher priority and preempts us
    let ka = keepalived(&t, 1, 0, 150, dir.path());
    assert!(
        within(Duration::from_secs(5), || holders(&t) == vec![1]).is_some(),
        "holders {:?}\n{}",
        holders(&t),
        log(dir.path(), 1)
    );
    assert!(
        within(Duration::from_secs(2), || ours.state()
            == vrrp::State::Backup)
        .is_some()
    );
    drop(ka);
    drop(ours);
    t.nodes[1]
        .ns
        .exec(&["ip", "addr", "del", &format!("{VIP}/24"), "dev", "eth0"])
        .ok();
    t.nodes[0]
        .ns
        .exec(&["ip", "addr", "del", &format!("{VIP}/24"), "dev", "eth0"])
        .ok();

    // the other way round: we (200) outrank keepalived (150)
    let ours = start(&ours_ns, config(0, 2, 200));
    let _ka = keepalived(&t, 1, 0, 150, dir.path());
    assert!(
        within(Duration::from_secs(5), || holders(&t) == vec![0]).is_some(),
        "holders {:?}",
        holders(&t)
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(holders(&t), vec![0], "keepalived stays backup");
    assert!(
        log(dir.path(), 1).contains("Entering BACKUP STATE"),
        "{}",
        log(dir.path(), 1)
    );

    // we crash: keepalived takes over; our VIP expires by itself
    ours.crash.send(()).unwrap();
    let took = within(Duration::from_secs(3), || holds_vip(&t, 1)).expect("keepalived took over");
    eprintln!("measured: kubeha crashed -> keepalived holds the VIP after {took:?}");
    assert!(
        within(Duration::from_secs(4), || holders(&t) == vec![1]).is_some(),
        "holders {:?}",
        holders(&t)
    );
}
