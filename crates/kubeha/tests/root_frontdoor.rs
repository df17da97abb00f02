//! Needs root, nginx-light and namespaces. The front door as it runs on control-plane nodes:
//! three `kubeha frontdoor run` processes with nginx as the apiservers, a client namespace
//! that keeps connecting through VIP:16443, and faults: kill -9, SIGTERM, a pulled cable, a
//! dead backend, and hostile VRRP adverts. Every namespace and process is removed by guards.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use common::*;
use lab::topology::{CLIENT, VIP};
use lab::{Proc, Topology};

const DEFAULT: FdOptions = FdOptions {
    advert: "40ms",
    priority: 0,
    local_weight: 30,
};

struct Lab {
    t: Topology,
    dir: tempfile::TempDir,
    nginx: Vec<Option<Proc>>,
    fd: Vec<Option<Proc>>,
}

impl Lab {
    fn up(tag: &str) -> Lab {
        let t = Topology::build(&format!("kh{tag}{}", std::process::id()), 3).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let nginx = (0..3).map(|i| Some(nginx(&t, i, dir.path()))).collect();
        let fd = (0..3)
            .map(|i| {
                Some(frontdoor(
                    &t,
                    i,
                    dir.path(),
                    &FdOptions {
                        priority: 150 - 10 * i as u8,
                        ..DEFAULT
                    },
                ))
            })
            .collect();
        let lab = Lab { t, dir, nginx, fd };
        let ok = within(Duration::from_secs(5), || {
            holders(&lab.t) == vec![0]
                && metric(&metrics(&lab.t, 0), "kubeha_frontdoor_backends_healthy") == Some(3.0)
        });
        assert!(
            ok.is_some(),
            "lab did not settle: holders {:?}\n{}",
            holders(&lab.t),
            lab.log(0)
        );
        lab
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(log_path(self.dir.path(), i)).unwrap_or_default()
    }
}

#[test]
fn root_frontdoor_crash_failover_and_vip_lifetime() {
    if testkit::skip_without_root("root_frontdoor") {
        return;
    }
    let mut lab = Lab::up("fc");
    let client = Client::start(&lab.t);
    std::thread::sleep(Duration::from_millis(300));
    let t0 = client.started().elapsed();
    let killed = Instant::now();
    lab.fd[0].as_ref().unwrap().signal(libc::SIGKILL);
    let took =
        within(Duration::from_secs(2), || holds_vip(&lab.t, 1)).expect("node 1 took the VIP");
    let gone = within(Duration::from_secs(5), || !holds_vip(&lab.t, 0)).map(|_| killed.elapsed());
    std::thread::sleep(Duration::from_millis(300));
    let samples = client.stop();
    let (served_again, late) = recovery(&samples, t0);
    eprintln!(
        "measured: kill -9 holder -> node 1 holds VIP after {took:?}; clients served again after {served_again:?}, {late} failed later ({} failed of {}: {}); dead holder's VIP gone after {gone:?}",
        failures(&samples).len(),
        samples.len(),
        failure_kinds(&samples)
    );
    if served_again > Duration::from_secs(1) || late > 2 {
        let tail: Vec<_> = samples.iter().rev().take(8).collect();
        eprintln!(
            "last samples: {tail:?}\nclient neighbours: {}",
            lab.t.client.ns.exec(&["ip", "neigh"]).unwrap_or_default()
        );
    }
    // The requirement: another node serves the VIP within the down interval (~150 ms at
    // 40 ms adverts), with margin for a loaded machine.
    assert!(took < Duration::from_millis(600), "takeover took {took:?}");
    // Clients follow the gratuitous ARP; a Linux client whose ARP entry changed less than
    // `locktime` (1 s) earlier ignores it until a repeat lands after that, so allow for it.
    assert!(
        served_again < Duration::from_millis(1500),
        "clients waited {served_again:?}"
    );
    // stragglers: a SYN sent just before a client's ARP entry moved is retransmitted once
    assert!(
        late <= 2,
        "{late} requests failed after clients were served again"
    );
    let gone = gone.expect("the crashed holder's VIP expired");
    assert!(
        gone < Duration::from_millis(4000),
        "VIP lifetime 2 s, gone after {gone:?}"
    );
    assert_eq!(holders(&lab.t), vec![1]);
    // the crashed node comes back and preempts (highest priority)
    lab.fd[0] = Some(frontdoor(
        &lab.t,
        0,
        lab.dir.path(),
        &FdOptions {
            priority: 150,
            ..DEFAULT
        },
    ));
    assert!(
        within(Duration::from_secs(3), || holders(&lab.t) == vec![0]).is_some(),
        "holders {:?}",
        holders(&lab.t)
    );
}

#[test]
fn root_frontdoor_graceful_stop_fails_no_connect() {
    if testkit::skip_without_root("root_frontdoor") {
        return;
    }
    let mut lab = Lab::up("fg");
    let client = Client::start(&lab.t);
    std::thread::sleep(Duration::from_millis(300));
    let mut holder = lab.fd[0].take().unwrap();
    holder.signal(libc::SIGTERM);
    let status = holder
        .wait_timeout(Duration::from_secs(8))
        .expect("exits after handover and drain");
    std::thread::sleep(Duration::from_millis(300));
    let samples = client.stop();
    let failed = failures(&samples);
    let connects = testkit::probe::failed_connects(&samples);
    eprintln!(
        "measured: SIGTERM handover: {connects} failed connects, {} requests lost in flight, of {}; longest gap {:?}",
        failed.len() - connects,
        samples.len(),
        longest_gap(&samples)
    );
    assert!(status.success(), "exit status {status:?}\n{}", lab.log(0));
    // The goal is no failed connect across a graceful handover (issue 15, item 1). Not there
    // yet: about one run in four here, one SYN sent in the instant the old holder releases the
    // VIP is dropped and its retransmit comes at the client's 1 s connect timeout (seen at
    // 321 ms, once). So at most one, until the window is closed; bench/failover.sh counts
    // them over 20 handovers. A request already on a connection when clients' ARP moves to
    // the new holder can be cut (L2 failover cannot move an open TCP connection): at most the
    // few in flight at that instant, one per client loop, and one more per loop whose next
    // connection, made within the same few milliseconds, still reached the old holder through
    // its stale ARP entry (seen once in CI: 6 of 339 over 7 ms with 4 loops).
    assert!(
        connects <= 1,
        "{connects} failed connects across a graceful handover: {failed:?}"
    );
    assert!(
        failed.len() <= 2 * testkit::probe::WORKERS,
        "more than the requests in flight at the handover lost: {failed:?}"
    );
    assert_eq!(holders(&lab.t), vec![1]);
    assert!(lab.log(0).contains("new master heard"), "{}", lab.log(0));
}

#[test]
fn root_frontdoor_cable_pull_then_heal_one_holder() {
    if testkit::skip_without_root("root_frontdoor") {
        return;
    }
    let lab = Lab::up("fl");
    lab.t.cable(0, false).unwrap();
    assert!(
        within(Duration::from_secs(2), || holds_vip(&lab.t, 1)).is_some(),
        "node 1 took over the segment"
    );
    lab.t.cable(0, true).unwrap();
    assert!(
        within(Duration::from_secs(3), || holders(&lab.t) == vec![0]).is_some(),
        "holders {:?}",
        holders(&lab.t)
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        holders(&lab.t),
        vec![0],
        "exactly one holder after the partition heals"
    );
}

#[test]
fn root_frontdoor_backend_death_is_invisible_and_priority_follows_health() {
    if testkit::skip_without_root("root_frontdoor") {
        return;
    }
    let mut lab = Lab::up("fb");
    let client = Client::start(&lab.t);
    std::thread::sleep(Duration::from_millis(300));
    // a non-holder's apiserver dies: no client notices, it is ejected within interval x fall
    let killed = Instant::now();
    drop(lab.nginx[2].take());
    let ejected = within(Duration::from_secs(2), || {
        metric(
            &metrics(&lab.t, 0),
            "kubeha_frontdoor_backend_up{backend=\"198.18.0.13:6443\"}",
        ) == Some(0.0)
    })
    .map(|_| killed.elapsed());
    std::thread::sleep(Duration::from_millis(500));
    let samples = client.stop();
    let failed = failures(&samples);
    // A connect through the VIP must never fail; a request already inside the dying nginx
    // is lost with it (an L4 proxy cannot replay bytes it has forwarded).
    let connect_failed: Vec<_> = failed
        .iter()
        .filter(|s| s.result.as_ref().is_err_and(|e| e.starts_with("connect")))
        .collect();
    eprintln!(
        "measured: backend kill: {} failed connects, {} in-flight requests lost, of {}; ejected after {ejected:?}",
        connect_failed.len(),
        failed.len() - connect_failed.len(),
        samples.len()
    );
    assert!(connect_failed.is_empty(), "{connect_failed:?}");
    assert!(
        failed.len() <= 2,
        "more than the in-flight requests lost: {failed:?}"
    );
    let ejected = ejected.expect("backend marked down");
    assert!(
        ejected < Duration::from_millis(200 + 300),
        "interval 100ms x fall 2 (+ scrape): {ejected:?}"
    );
    assert!(
        samples
            .iter()
            .rev()
            .take(50)
            .all(|s| s.result.as_ref().is_ok_and(|n| *n != 2)),
        "dead backend still used"
    );

    // the holder's own apiserver dies: its priority drops by local_weight and the VIP moves
    let killed = Instant::now();
    drop(lab.nginx[0].take());
    let moved =
        within(Duration::from_secs(3), || holders(&lab.t) == vec![1]).map(|_| killed.elapsed());
    eprintln!("measured: holder's local backend killed -> VIP moved after {moved:?}");
    assert!(
        moved.expect("VIP moved to a node whose apiserver is ready") < Duration::from_millis(1500)
    );
    let m = metrics(&lab.t, 0);
    assert_eq!(
        metric(&m, "kubeha_frontdoor_vrrp_priority"),
        Some(120.0),
        "150 - local_weight 30"
    );

    // Every apiserver down (an etcd outage looks like this): every node sinks by twice
    // local_weight and preempts nobody, so the VIP stays where it is, although node 0's
    // priority (150 - 60) is now above the holder's (140 - 60).
    drop(lab.nginx[1].take());
    let all_down = Instant::now();
    assert!(
        within(Duration::from_secs(2), || metric(
            &metrics(&lab.t, 0),
            "kubeha_frontdoor_vrrp_priority"
        ) == Some(90.0))
        .is_some(),
        "node 0 did not sink: {:?}",
        metric(&metrics(&lab.t, 0), "kubeha_frontdoor_vrrp_priority")
    );
    let mut moved_away = Vec::new();
    while all_down.elapsed() < Duration::from_secs(3) {
        let h = holders(&lab.t);
        if h != vec![1] {
            moved_away.push(h);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        moved_away.is_empty(),
        "the VIP moved while nothing could serve: {moved_away:?}\n{}",
        lab.log(0)
    );
    // One apiserver back: the VIP goes at once to the node whose own apiserver is ready.
    lab.nginx[2] = Some(nginx(&lab.t, 2, lab.dir.path()));
    let back = Instant::now();
    let moved =
        within(Duration::from_secs(3), || holders(&lab.t) == vec![2]).map(|_| back.elapsed());
    eprintln!(
        "measured: every backend down -> the VIP stayed for 3 s; one back -> VIP on its node after {moved:?}"
    );
    assert!(moved.is_some(), "holders {:?}", holders(&lab.t));
}

/// A VRRPv3 advert inside a hand-made IPv4 header (IP_HDRINCL), so the test picks the source
/// address and TTL.
fn hostile(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, corrupt_checksum: bool) -> Vec<u8> {
    let advert = vrrp::Advert {
        vrid: 51,
        priority: 254,
        timing: vrrp::Timing::V3 {
            max_advert_interval: 4,
        },
        addresses: vec![VIP],
    };
    let mut payload = advert.encode(vrrp::ChecksumMode::Keepalived, src, dst);
    if corrupt_checksum {
        payload[6] ^= 0xff;
    }
    let mut ip = vec![0x45, 0xc0, 0, 0, 0, 0, 0, 0, ttl, 112, 0, 0];
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let total = (ip.len() + payload.len()) as u16;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&payload);
    ip
}

#[test]
fn root_frontdoor_hostile_adverts_change_nothing_and_are_counted() {
    if testkit::skip_without_root("root_frontdoor") {
        return;
    }
    let lab = Lab::up("fh");
    let node0 = addr(0);
    let peer = addr(1);
    let packets = vec![
        hostile(peer, node0, 64, false), // wrong TTL, from a real peer's address
        hostile(peer, node0, 255, true), // bad checksum
        hostile(CLIENT, node0, 255, false), // foreign source: not a unicast peer
    ];
    let before = metrics(&lab.t, 0);
    let sent = in_netns(lab.t.client.ns.name(), move || {
        let s = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::RAW,
            Some(socket2::Protocol::from(112)),
        )
        .unwrap();
        s.set_header_included_v4(true).unwrap();
        let to = socket2::SockAddr::from(SocketAddrV4::new(node0, 0));
        let mut n = 0;
        for _ in 0..20 {
            for p in &packets {
                n += usize::from(s.send_to(p, &to).is_ok());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        n
    })
    .join()
    .unwrap()
    .unwrap();
    assert_eq!(sent, 60);
    std::thread::sleep(Duration::from_millis(300));
    let after = metrics(&lab.t, 0);
    for reason in ["bad_ttl", "bad_checksum", "foreign_source"] {
        let k = format!("kubeha_frontdoor_vrrp_dropped_total{{reason=\"{reason}\"}}");
        let (b, a) = (
            metric(&before, &k).unwrap_or(0.0),
            metric(&after, &k).unwrap_or(-1.0),
        );
        assert!(a - b >= 20.0, "{reason}: {b} -> {a}");
    }
    assert_eq!(
        holders(&lab.t),
        vec![0],
        "priority-254 forgeries moved nothing"
    );
    assert_eq!(
        metric(&after, "kubeha_frontdoor_vrrp_state{state=\"master\"}"),
        Some(1.0)
    );
}
