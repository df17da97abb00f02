//! Real adverts captured from keepalived 2.2.7 (see tests/fixtures/README.md): decode them
//! and re-encode them byte for byte.

use std::net::Ipv4Addr;

use vrrp::{
    Action, Auth, ChecksumMode, Config, Input, Instant, Ipv4Header, Router, State, Timing, Version,
    decode, decode_ipv4,
};

const SENDER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
const PEER_12: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);
const PEER_13: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 13);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

/// Whole IPv4 datagrams (Ethernet header stripped), named by frame number and destination.
const V2: [(&[u8], Ipv4Addr); 3] = [
    (
        include_bytes!("fixtures/keepalived-v2-pass-frame1-to-12.bin"),
        PEER_12,
    ),
    (
        include_bytes!("fixtures/keepalived-v2-pass-frame2-to-13.bin"),
        PEER_13,
    ),
    (
        include_bytes!("fixtures/keepalived-v2-pass-frame3-to-12.bin"),
        PEER_12,
    ),
];
const V3: [(&[u8], Ipv4Addr, u16); 3] = [
    (
        include_bytes!("fixtures/keepalived-v3-unicast-frame1-to-12.bin"),
        PEER_12,
        0x17ec,
    ),
    (
        include_bytes!("fixtures/keepalived-v3-unicast-frame2-to-13.bin"),
        PEER_13,
        0x17eb,
    ),
    (
        include_bytes!("fixtures/keepalived-v3-unicast-frame3-to-12.bin"),
        PEER_12,
        0x17ec,
    ),
];

fn check_ip_header(h: &Ipv4Header, dst: Ipv4Addr) {
    assert_eq!(h.src, SENDER);
    assert_eq!(h.dst, dst);
    assert_eq!(h.ttl, 255);
    assert_eq!(h.protocol, 112);
    assert_eq!(h.tos, 0xc0, "DSCP CS6");
    assert_eq!(h.header_len, 20);
}

#[test]
fn keepalived_v2_pass_decodes_and_reencodes_byte_for_byte() {
    for (datagram, dst) in V2 {
        let (h, payload) = Ipv4Header::split(datagram).expect("IPv4 header");
        check_ip_header(&h, dst);
        assert_eq!(payload.len(), 20);
        let d = decode(payload, &h.context()).expect("keepalived v2 advert decodes");
        let a = &d.advert;
        assert_eq!(a.version(), Version::V2);
        assert_eq!(a.vrid, 51);
        assert_eq!(a.priority, 100);
        assert_eq!(a.addresses, vec![VIP]);
        assert_eq!(
            a.timing,
            Timing::V2 {
                advert_int: 1,
                auth: Auth::pass("42").expect("short password"),
            }
        );
        assert_eq!(a.interval_cs(), 100);
        assert_eq!(u16::from_be_bytes([payload[6], payload[7]]), 0x7f7b);
        // v2 has no pseudo-header: same bytes whatever the mode or addresses.
        for mode in [ChecksumMode::Keepalived, ChecksumMode::Rfc9568] {
            assert_eq!(a.encode(mode, SENDER, dst), payload);
            assert_eq!(a.encode(mode, SENDER, Ipv4Addr::UNSPECIFIED), payload);
        }
    }
}

#[test]
fn keepalived_v3_unicast_decodes_with_its_pseudo_header_checksum_and_reencodes() {
    for (datagram, dst, checksum) in V3 {
        let (h, d) = decode_ipv4(datagram).expect("keepalived v3 advert decodes");
        check_ip_header(&h, dst);
        let payload = &datagram[20..];
        assert_eq!(u16::from_be_bytes([payload[6], payload[7]]), checksum);
        assert_eq!(d.checksum, ChecksumMode::Keepalived);
        let a = &d.advert;
        assert_eq!(a.version(), Version::V3);
        assert_eq!(a.vrid, 51);
        assert_eq!(a.priority, 100);
        assert_eq!(a.addresses, vec![VIP]);
        assert_eq!(
            a.timing,
            Timing::V3 {
                max_advert_interval: 10
            }
        );
        assert_eq!(a.encode(ChecksumMode::Keepalived, SENDER, dst), payload);
        // The RFC 9568 form of the same advert differs only in the checksum.
        let rfc = a.encode(ChecksumMode::Rfc9568, SENDER, dst);
        assert_eq!(rfc[..6], payload[..6]);
        assert_eq!(rfc[8..], payload[8..]);
        assert_ne!(rfc[6..8], payload[6..8]);
    }
}

#[test]
fn keepalived_v3_checksum_is_bound_to_its_destination() {
    // The advert keepalived sent to .13, presented as if it had been sent to .12.
    let (h, payload) = Ipv4Header::split(V3[1].0).expect("header");
    let mut ip = h.context();
    ip.dst = PEER_12;
    assert_eq!(
        decode(payload, &ip),
        Err(vrrp::DecodeError::BadChecksum { received: 0x17eb })
    );
}

fn keepalived_peer(version: Version) -> Router {
    let mut c = Config::new(51, 90, PEER_12, vec![VIP]);
    c.version = version;
    c.unicast_peers = vec![SENDER, PEER_13];
    match version {
        Version::V2 => c.auth = Auth::pass("42").expect("short"),
        Version::V3 => c.advert_interval_cs = 10,
    }
    Router::new(c).expect("valid config")
}

#[test]
fn router_follows_a_keepalived_master_v3() {
    let mut r = keepalived_peer(Version::V3);
    let t0 = Instant::ZERO;
    r.handle(Input::Startup, t0);
    assert_eq!(r.state(), State::Backup);
    let t1 = t0 + std::time::Duration::from_millis(50);
    let actions = r.handle(Input::Datagram(V3[0].0), t1);
    assert!(actions.is_empty());
    assert_eq!(r.counters().adverts_accepted, 1);
    assert_eq!(r.counters().dropped(), 0);
    assert_eq!(r.last_master(), Some(SENDER));
    assert_eq!(r.next_deadline(), Some(t1 + r.master_down_interval()));
    // The next advert re-arms the timer from its arrival.
    let t2 = t1 + std::time::Duration::from_millis(100);
    r.handle(Input::Datagram(V3[2].0), t2);
    assert_eq!(r.counters().adverts_accepted, 2);
    assert_eq!(r.next_deadline(), Some(t2 + r.master_down_interval()));
    // Learned 10 cs from keepalived: 3 * 100 ms + (256 - 90) * 10 cs / 256.
    assert_eq!(
        r.master_down_interval(),
        std::time::Duration::from_nanos(300_000_000 + 64_843_750)
    );
}

#[test]
fn router_follows_a_keepalived_master_v2() {
    let mut r = keepalived_peer(Version::V2);
    r.handle(Input::Startup, Instant::ZERO);
    r.handle(Input::Datagram(V2[0].0), Instant::ZERO);
    assert_eq!(r.counters().adverts_accepted, 1);
    // A router with another password drops it.
    let mut c = r.config().clone();
    c.auth = Auth::pass("43").expect("short");
    let mut other = Router::new(c).expect("valid");
    other.handle(Input::Startup, Instant::ZERO);
    other.handle(Input::Datagram(V2[0].0), Instant::ZERO);
    assert_eq!(other.counters().auth_mismatch, 1);
    assert_eq!(other.counters().adverts_accepted, 0);
}

#[test]
fn our_v3_adverts_match_keepalived_bytes_when_configured_alike() {
    // Configure ourselves as keepalived was (.11, prio 100, 10 cs, peers .12 and .13) and
    // compare what we would send with what keepalived sent.
    let mut c = Config::new(51, 100, SENDER, vec![VIP]);
    c.advert_interval_cs = 10;
    c.unicast_peers = vec![PEER_12, PEER_13];
    let mut r = Router::new(c).expect("valid");
    r.handle(Input::Startup, Instant::ZERO);
    let deadline = r.next_deadline().expect("backup timer");
    let sent: Vec<(Ipv4Addr, Vec<u8>)> = r
        .handle(Input::Timeout, deadline)
        .into_iter()
        .filter_map(|a| match a {
            Action::SendAdvert { dst, payload, .. } => Some((dst, payload)),
            _ => None,
        })
        .collect();
    assert_eq!(
        sent,
        vec![
            (PEER_12, V3[0].0[20..].to_vec()),
            (PEER_13, V3[1].0[20..].to_vec()),
        ]
    );
}
