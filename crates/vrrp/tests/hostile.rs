//! Hostile input: every malformed packet is a specific `DecodeError`, never a panic.

use std::net::Ipv4Addr;

use proptest::prelude::*;
use vrrp::{
    Advert, Auth, ChecksumMode, DecodeError, IpContext, Ipv4Header, Timing, Version, decode,
    decode_ipv4,
};

const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const DST: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

fn ip(ttl: u8) -> IpContext {
    IpContext {
        src: SRC,
        dst: DST,
        ttl,
    }
}

fn v3_bytes() -> Vec<u8> {
    Advert {
        vrid: 9,
        priority: 120,
        timing: Timing::V3 {
            max_advert_interval: 100,
        },
        addresses: vec![Ipv4Addr::new(192, 0, 2, 100), Ipv4Addr::new(192, 0, 2, 101)],
    }
    .encode(ChecksumMode::Rfc9568, SRC, DST)
}

fn v2_bytes() -> Vec<u8> {
    Advert {
        vrid: 9,
        priority: 120,
        timing: Timing::V2 {
            advert_int: 1,
            auth: Auth::None,
        },
        addresses: vec![Ipv4Addr::new(192, 0, 2, 100)],
    }
    .encode(ChecksumMode::Rfc9568, SRC, DST)
}

/// Recompute the plain checksum after editing a packet, so that only the edit is wrong.
fn fix_checksum(b: &mut [u8]) {
    b[6] = 0;
    b[7] = 0;
    let mut sum: u32 = b
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    b[6..8].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn valid_baselines_decode() {
    assert!(decode(&v3_bytes(), &ip(255)).is_ok());
    assert!(decode(&v2_bytes(), &ip(255)).is_ok());
}

#[test]
fn wrong_ttl_is_bad_ttl() {
    for ttl in [0, 1, 64, 254] {
        assert_eq!(decode(&v3_bytes(), &ip(ttl)), Err(DecodeError::BadTtl(ttl)));
        assert_eq!(decode(&v2_bytes(), &ip(ttl)), Err(DecodeError::BadTtl(ttl)));
    }
}

#[test]
fn corrupted_byte_is_bad_checksum() {
    let mut b = v3_bytes();
    b[9] ^= 0x01; // inside the first address
    let received = u16::from_be_bytes([b[6], b[7]]);
    assert_eq!(
        decode(&b, &ip(255)),
        Err(DecodeError::BadChecksum { received })
    );
    let mut b = v2_bytes();
    b[2] = 121; // priority
    assert!(matches!(
        decode(&b, &ip(255)),
        Err(DecodeError::BadChecksum { .. })
    ));
    // A keepalived-form checksum from another source does not pass either form.
    let mut b = v3_bytes();
    let a = vrrp::parse(&b).expect("valid");
    b = a.encode(ChecksumMode::Keepalived, Ipv4Addr::new(192, 0, 2, 7), DST);
    assert!(matches!(
        decode(&b, &ip(255)),
        Err(DecodeError::BadChecksum { .. })
    ));
}

#[test]
fn truncated_packets_are_specific_errors() {
    for (full, version) in [(v3_bytes(), 3), (v2_bytes(), 2)] {
        for len in 0..full.len() {
            let got = decode(&full[..len], &ip(255));
            if len < 8 {
                assert_eq!(
                    got,
                    Err(DecodeError::Truncated { len }),
                    "v{version} len {len}"
                );
            } else {
                assert!(
                    matches!(got, Err(DecodeError::AddressCountTooLarge { len: l, .. }) if l == len),
                    "v{version} len {len}: {got:?}"
                );
            }
        }
    }
}

#[test]
fn address_count_too_large() {
    let mut b = v3_bytes();
    b[3] = 200;
    fix_checksum(&mut b);
    assert_eq!(
        decode(&b, &ip(255)),
        Err(DecodeError::AddressCountTooLarge {
            count: 200,
            needed: 8 + 800,
            len: 16
        })
    );
    let mut b = v2_bytes();
    b[3] = 255;
    assert_eq!(
        decode(&b, &ip(255)),
        Err(DecodeError::AddressCountTooLarge {
            count: 255,
            needed: 8 + 1020 + 8,
            len: 20
        })
    );
}

#[test]
fn trailing_bytes_and_zero_count_are_length_errors() {
    let mut b = v3_bytes();
    b.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(
        decode(&b, &ip(255)),
        Err(DecodeError::LengthMismatch {
            expected: 16,
            len: 20
        })
    );
    let mut b = v3_bytes();
    b[3] = 0;
    assert_eq!(decode(&b, &ip(255)), Err(DecodeError::NoAddresses));
}

#[test]
fn wrong_version_type_vrid_interval() {
    for v in [0u8, 1, 4, 15] {
        let mut b = v3_bytes();
        b[0] = (v << 4) | 1;
        fix_checksum(&mut b);
        assert_eq!(decode(&b, &ip(255)), Err(DecodeError::BadVersion(v)));
    }
    let mut b = v3_bytes();
    b[0] = 0x32;
    fix_checksum(&mut b);
    assert_eq!(decode(&b, &ip(255)), Err(DecodeError::BadType(2)));
    let mut b = v3_bytes();
    b[1] = 0;
    fix_checksum(&mut b);
    assert_eq!(decode(&b, &ip(255)), Err(DecodeError::BadVrid));
    let mut b = v3_bytes();
    b[4] = 0xf0; // reserved bits set, interval 0
    b[5] = 0;
    fix_checksum(&mut b);
    assert_eq!(decode(&b, &ip(255)), Err(DecodeError::ZeroInterval));
    let mut b = v2_bytes();
    b[5] = 0;
    fix_checksum(&mut b);
    assert_eq!(decode(&b, &ip(255)), Err(DecodeError::ZeroInterval));
}

fn datagram(payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = vec![0x45, 0xc0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 1, 0, 0, 255, 112, 0, 0]);
    h.extend_from_slice(&SRC.octets());
    h.extend_from_slice(&DST.octets());
    fix_ip_checksum(&mut h);
    h.extend_from_slice(payload);
    h
}

fn fix_ip_checksum(h: &mut [u8]) {
    h[10] = 0;
    h[11] = 0;
    let mut sum: u32 = h[..20]
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    h[10..12].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn ipv4_header_errors() {
    let good = datagram(&v3_bytes());
    assert!(decode_ipv4(&good).is_ok());
    // Ethernet padding past the total length is ignored.
    let mut padded = good.clone();
    padded.extend_from_slice(&[0; 10]);
    assert!(decode_ipv4(&padded).is_ok());

    for len in 0..20 {
        assert_eq!(
            Ipv4Header::decode(&good[..len]),
            Err(DecodeError::BadIpHeaderLength)
        );
    }
    let mut b = good.clone();
    b[0] = 0x65;
    assert_eq!(Ipv4Header::decode(&b), Err(DecodeError::NotIpv4(6)));
    let mut b = good.clone();
    b[0] = 0x44;
    assert_eq!(Ipv4Header::decode(&b), Err(DecodeError::BadIpHeaderLength));
    let mut b = good.clone();
    b[0] = 0x4f; // 60-byte header, longer than the datagram
    assert_eq!(Ipv4Header::decode(&b), Err(DecodeError::BadIpHeaderLength));
    // Total length beyond the buffer.
    let mut b = good.clone();
    b[3] += 1;
    fix_ip_checksum(&mut b);
    assert_eq!(
        Ipv4Header::decode(&b),
        Err(DecodeError::BadIpTotalLength {
            total: good.len() as u16 + 1,
            len: good.len()
        })
    );
    // Total length shorter than the header.
    let mut b = good.clone();
    b[2] = 0;
    b[3] = 19;
    fix_ip_checksum(&mut b);
    assert!(matches!(
        Ipv4Header::decode(&b),
        Err(DecodeError::BadIpTotalLength { total: 19, .. })
    ));
    let mut b = good.clone();
    b[6] = 0x20; // more fragments
    fix_ip_checksum(&mut b);
    assert_eq!(Ipv4Header::decode(&b), Err(DecodeError::Fragmented));
    let mut b = good.clone();
    b[9] = 6;
    fix_ip_checksum(&mut b);
    assert_eq!(Ipv4Header::decode(&b), Err(DecodeError::NotVrrp(6)));
    let mut b = good.clone();
    b[15] ^= 1;
    assert_eq!(Ipv4Header::decode(&b), Err(DecodeError::BadIpChecksum));
    // TTL is checked on the VRRP decode.
    let mut b = good.clone();
    b[8] = 64;
    fix_ip_checksum(&mut b);
    assert_eq!(decode_ipv4(&b).map(|_| ()), Err(DecodeError::BadTtl(64)));
}

fn arb_advert() -> impl Strategy<Value = Advert> {
    let v3 = (1..=0x0fffu16).prop_map(|i| Timing::V3 {
        max_advert_interval: i,
    });
    let v2 = (1..=255u8, any::<[u8; 8]>(), 0..4u8).prop_map(|(i, data, t)| Timing::V2 {
        advert_int: i,
        auth: match t {
            0 => Auth::None,
            1 => Auth::Pass(data),
            t => Auth::Other { auth_type: t, data },
        },
    });
    (
        1..=255u8,
        any::<u8>(),
        prop_oneof![v3, v2],
        prop::collection::vec(any::<u32>().prop_map(Ipv4Addr::from), 1..=255),
    )
        .prop_map(|(vrid, priority, timing, addresses)| Advert {
            vrid,
            priority,
            timing,
            addresses,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes and IP fields: decode returns, never panics; whatever decodes
    /// re-encodes to a packet that decodes to the same advert.
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..1100),
        src in any::<u32>(), dst in any::<u32>(), ttl in any::<u8>(),
    ) {
        let ctx = IpContext { src: src.into(), dst: dst.into(), ttl };
        if let Ok(d) = decode(&bytes, &ctx) {
            let again = d.advert.encode(d.checksum, ctx.src, ctx.dst);
            prop_assert_eq!(decode(&again, &ctx).map(|x| x.advert), Ok(d.advert));
        }
        let _ = decode_ipv4(&bytes);
        let _ = vrrp::parse(&bytes);
    }

    /// Arbitrary bytes behind a valid VRRP header prefix reach the deeper checks.
    #[test]
    fn plausible_headers_never_panic(
        version in 2u8..=3, count in any::<u8>(),
        rest in prop::collection::vec(any::<u8>(), 0..1100),
    ) {
        let mut b = vec![(version << 4) | 1, 1, 100, count];
        b.extend_from_slice(&rest);
        let _ = decode(&b, &ip(255));
    }

    /// Every valid advert round-trips in both checksum modes.
    #[test]
    fn adverts_roundtrip(a in arb_advert(), src in any::<u32>(), dst in any::<u32>()) {
        let ctx = IpContext { src: src.into(), dst: dst.into(), ttl: 255 };
        for mode in [ChecksumMode::Rfc9568, ChecksumMode::Keepalived] {
            let b = a.encode(mode, ctx.src, ctx.dst);
            prop_assert_eq!(b.len(), a.encoded_len());
            let d = decode(&b, &ctx).expect("own encoding decodes");
            prop_assert_eq!(&d.advert, &a);
            let expect_mode = if a.version() == Version::V2 { ChecksumMode::Rfc9568 } else { mode };
            // Both forms can verify when the pseudo-header sums to zero; then Rfc9568 wins.
            prop_assert!(d.checksum == expect_mode || d.checksum == ChecksumMode::Rfc9568);
        }
    }

    /// A single corrupted byte is never accepted under the checksum form it was sent with.
    #[test]
    fn single_byte_corruption_is_detected(
        a in arb_advert(), pos in any::<prop::sample::Index>(), flip in 1..=255u8,
    ) {
        let ctx = ip(255);
        let mode = ChecksumMode::Keepalived;
        let mut b = a.encode(mode, ctx.src, ctx.dst);
        let i = pos.index(b.len());
        b[i] ^= flip;
        if let Ok(d) = decode(&b, &ctx) {
            // Only possible for v3 if the other form happens to verify.
            prop_assert_eq!(a.version(), Version::V3);
            prop_assert_ne!(d.checksum, mode);
        }
    }
}
