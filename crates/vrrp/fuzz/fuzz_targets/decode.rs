//! Fuzz the VRRP decoder: raw payloads with fuzzer-chosen IP fields, whole IPv4 datagrams,
//! and the router fed the same bytes. Whatever decodes must re-encode to the same advert.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use vrrp::{Config, Input, Instant, IpContext, Router, Version, decode, decode_ipv4, parse};

fuzz_target!(|data: &[u8]| {
    // Whole datagram, as a raw socket delivers it.
    if let Ok((_, d)) = decode_ipv4(data) {
        let _ = d.advert.encoded_len();
    }
    let _ = parse(data);

    // First 9 bytes: IP source, destination, TTL; the rest is the VRRP payload.
    if let Some((head, payload)) = data.split_first_chunk::<9>() {
        let ip = IpContext {
            src: Ipv4Addr::new(head[0], head[1], head[2], head[3]),
            dst: Ipv4Addr::new(head[4], head[5], head[6], head[7]),
            ttl: head[8],
        };
        if let Ok(d) = decode(payload, &ip) {
            let again = d.advert.encode(d.checksum, ip.src, ip.dst);
            let back = decode(&again, &ip).expect("re-encoded advert decodes");
            assert_eq!(back.advert, d.advert);
        }
        for version in [Version::V2, Version::V3] {
            let mut c = Config::new(
                1,
                100,
                Ipv4Addr::new(10, 0, 0, 1),
                vec![Ipv4Addr::new(10, 0, 0, 100)],
            );
            c.version = version;
            let mut r = Router::new(c).expect("valid config");
            let t = Instant::ZERO;
            r.handle(Input::Startup, t);
            r.handle(Input::Packet { ip, payload }, t);
            r.handle(Input::Datagram(data), t);
        }
    }
});
