//! Wire format: VRRPv3 for IPv4 (RFC 9568), VRRPv2 (RFC 3768) and the IPv4 header a raw
//! `IPPROTO_VRRP` socket hands us.
//!
//! Everything here is pure: bytes in, values out (and back). Nothing panics on any input.

use std::net::Ipv4Addr;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// The only IP TTL a VRRP packet may arrive with (RFC 9568 §7.1, RFC 3768 §7.1).
pub const VRRP_TTL: u8 = 255;
/// The VRRP IPv4 multicast group, 224.0.0.18.
pub const VRRP_MULTICAST: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// Type field value of an ADVERTISEMENT, the only VRRP message type.
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// Length of the fixed VRRP header (both versions).
pub const HEADER_LEN: usize = 8;
/// Length of the VRRPv2 Authentication Data trailer.
pub const V2_AUTH_LEN: usize = 8;
/// Largest Max Advertise Interval VRRPv3 can carry (12 bits), in centiseconds.
pub const V3_MAX_INTERVAL_CS: u16 = 0x0fff;

/// Why a received packet was rejected. One variant per reason so the caller can count them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the fixed 8-byte VRRP header.
    #[error("truncated VRRP packet: {len} bytes, the fixed header needs 8")]
    Truncated { len: usize },
    /// IP TTL was not 255, so the packet may have crossed a router (RFC 9568 §7.1).
    #[error("IP TTL is {0}, VRRP requires 255")]
    BadTtl(u8),
    /// Version nibble is neither 2 nor 3.
    #[error("unsupported VRRP version {0}")]
    BadVersion(u8),
    /// Type nibble is not ADVERTISEMENT (1).
    #[error("unknown VRRP message type {0}")]
    BadType(u8),
    /// VRID 0 is not a valid virtual router id.
    #[error("VRID 0 is invalid")]
    BadVrid,
    /// Count IPvX Addr is zero; the minimum is 1 (RFC 9568 §5.2.5).
    #[error("advertisement carries no addresses")]
    NoAddresses,
    /// The address count needs more bytes than the packet holds.
    #[error("address count {count} needs {needed} bytes, packet has {len}")]
    AddressCountTooLarge {
        count: u8,
        needed: usize,
        len: usize,
    },
    /// The packet holds more bytes than the address count accounts for.
    #[error("packet is {len} bytes, the address count accounts for {expected}")]
    LengthMismatch { expected: usize, len: usize },
    /// Max Advertise Interval (v3) or Adver Int (v2) is zero (RFC 9568 erratum 8301).
    #[error("advertisement interval is zero")]
    ZeroInterval,
    /// Neither checksum form matches.
    #[error("bad VRRP checksum {received:#06x}")]
    BadChecksum { received: u16 },
    /// IPv4 header: version nibble is not 4.
    #[error("not an IPv4 packet (version {0})")]
    NotIpv4(u8),
    /// IPv4 header: shorter than its own header, or IHL below 5.
    #[error("bad IPv4 header length")]
    BadIpHeaderLength,
    /// IPv4 header: total length disagrees with the buffer.
    #[error("IPv4 total length {total} does not fit the {len} bytes received")]
    BadIpTotalLength { total: u16, len: usize },
    /// IPv4 header: protocol is not 112.
    #[error("IP protocol {0} is not VRRP (112)")]
    NotVrrp(u8),
    /// IPv4 header: a fragment (VRRP is never fragmented).
    #[error("fragmented IPv4 packet")]
    Fragmented,
    /// IPv4 header checksum does not verify.
    #[error("bad IPv4 header checksum")]
    BadIpChecksum,
}

/// VRRP version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// RFC 3768, keepalived's default (`vrrp_version 2`).
    V2,
    /// RFC 9568 (obsoletes RFC 5798).
    V3,
}

impl Version {
    /// The version nibble on the wire.
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// Which checksum form a VRRPv3 IPv4 packet uses.
///
/// VRRPv2 always uses the plain form (no pseudo-header); it is reported as `Rfc9568`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ChecksumMode {
    /// Over the VRRP message only, no pseudo-header (RFC 9568 §5.2.8; keepalived's
    /// `v3_checksum_as_v2`).
    Rfc9568,
    /// Over an IPv4 pseudo-header (source, destination, zero, protocol 112, VRRP length)
    /// followed by the VRRP message: keepalived's default for v3, which reads RFC 5798 that
    /// way. In unicast mode the destination is the peer, so the checksum differs per peer.
    #[default]
    Keepalived,
}

/// The IP header fields a receiver needs: the TTL rule and the pseudo-header checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpContext {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
}

/// VRRPv2 authentication (RFC 3768 keeps only type 0; keepalived still sends type 1, PASS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Auth {
    /// Type 0. Authentication Data is zero on send and ignored on receive.
    None,
    /// Type 1, a clear-text password of up to 8 bytes, zero padded.
    Pass([u8; V2_AUTH_LEN]),
    /// Any other type (2 was IP AH), kept verbatim so it can be counted and re-encoded.
    Other {
        auth_type: u8,
        data: [u8; V2_AUTH_LEN],
    },
}

impl Auth {
    /// Build a PASS authentication from a password of at most 8 bytes.
    pub fn pass(password: &str) -> Option<Auth> {
        let bytes = password.as_bytes();
        if bytes.is_empty() || bytes.len() > V2_AUTH_LEN {
            return None;
        }
        let mut data = [0u8; V2_AUTH_LEN];
        data[..bytes.len()].copy_from_slice(bytes);
        Some(Auth::Pass(data))
    }

    /// The Auth Type byte.
    pub fn auth_type(&self) -> u8 {
        match self {
            Auth::None => 0,
            Auth::Pass(_) => 1,
            Auth::Other { auth_type, .. } => *auth_type,
        }
    }

    fn data(&self) -> [u8; V2_AUTH_LEN] {
        match self {
            Auth::None => [0; V2_AUTH_LEN],
            Auth::Pass(data) | Auth::Other { data, .. } => *data,
        }
    }

    fn from_wire(auth_type: u8, data: [u8; V2_AUTH_LEN]) -> Auth {
        match auth_type {
            0 => Auth::None,
            1 => Auth::Pass(data),
            _ => Auth::Other { auth_type, data },
        }
    }
}

/// The version-specific part of an advertisement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timing {
    /// VRRPv3: Max Advertise Interval in centiseconds (12 bits; the top 4 bits of the
    /// 16-bit field are reserved, sent as zero and ignored on receive).
    V3 { max_advert_interval: u16 },
    /// VRRPv2: Adver Int in whole seconds, plus authentication.
    V2 { advert_int: u8, auth: Auth },
}

/// One VRRP ADVERTISEMENT (the only message type), v2 or v3.
///
/// VRRPv3 (RFC 9568 §5.1), after the IPv4 header:
/// ```text
///     0                   1                   2                   3
///     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |(rsvd) |     Max Adver Int     |          Checksum             |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                       IPv4 Address(es)                        |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
/// VRRPv2 (RFC 3768 §5.1):
/// ```text
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |   Auth Type   |   Adver Int   |          Checksum             |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                       IP Address(es)                          |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                     Authentication Data (1)                   |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                     Authentication Data (2)                   |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Advert {
    pub vrid: u8,
    pub priority: u8,
    pub timing: Timing,
    /// At most 255 are encoded (the count is one byte).
    pub addresses: Vec<Ipv4Addr>,
}

/// A successfully received advertisement and the checksum form it used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub advert: Advert,
    pub checksum: ChecksumMode,
}

impl Advert {
    pub fn version(&self) -> Version {
        match self.timing {
            Timing::V3 { .. } => Version::V3,
            Timing::V2 { .. } => Version::V2,
        }
    }

    /// The advertisement interval in centiseconds, whatever the version.
    pub fn interval_cs(&self) -> u32 {
        match self.timing {
            Timing::V3 {
                max_advert_interval,
            } => u32::from(max_advert_interval & 0x0fff),
            Timing::V2 { advert_int, .. } => u32::from(advert_int) * 100,
        }
    }

    /// Encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        let n = self.addresses.len().min(255);
        HEADER_LEN
            + 4 * n
            + match self.timing {
                Timing::V3 { .. } => 0,
                Timing::V2 { .. } => V2_AUTH_LEN,
            }
    }

    /// Encode the VRRP payload (the kernel adds the IPv4 header: TTL 255, protocol 112).
    ///
    /// `mode` picks the v3 checksum form; `src` and `dst` (the IP addresses the packet will
    /// carry) only matter for [`ChecksumMode::Keepalived`]. VRRPv2 ignores all three.
    pub fn encode(&self, mode: ChecksumMode, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let addrs = &self.addresses[..self.addresses.len().min(255)];
        let mut buf = Vec::with_capacity(self.encoded_len());
        buf.push((self.version().number() << 4) | TYPE_ADVERTISEMENT);
        buf.push(self.vrid);
        buf.push(self.priority);
        // Lossless: addrs has at most 255 entries.
        buf.push(u8::try_from(addrs.len()).unwrap_or(u8::MAX));
        match self.timing {
            Timing::V3 {
                max_advert_interval,
            } => {
                buf.extend_from_slice(&(max_advert_interval & V3_MAX_INTERVAL_CS).to_be_bytes());
            }
            Timing::V2 { advert_int, auth } => {
                buf.push(auth.auth_type());
                buf.push(advert_int);
            }
        }
        buf.extend_from_slice(&[0, 0]);
        for a in addrs {
            buf.extend_from_slice(&a.octets());
        }
        if let Timing::V2 { auth, .. } = self.timing {
            buf.extend_from_slice(&auth.data());
        }
        let pseudo = match (self.version(), mode) {
            (Version::V3, ChecksumMode::Keepalived) => pseudo_header_sum(src, dst, buf.len()),
            _ => 0,
        };
        let csum = !fold(ones_sum(pseudo, &buf));
        buf[6..8].copy_from_slice(&csum.to_be_bytes());
        buf
    }
}

/// Structural parse of a VRRP payload: version, type, VRID, address count against length,
/// non-zero interval. Does not look at the checksum or the TTL; see [`decode`].
pub fn parse(payload: &[u8]) -> Result<Advert, DecodeError> {
    let Some(header) = payload.first_chunk::<HEADER_LEN>() else {
        return Err(DecodeError::Truncated { len: payload.len() });
    };
    let version = header[0] >> 4;
    let msg_type = header[0] & 0x0f;
    let version = match version {
        2 => Version::V2,
        3 => Version::V3,
        v => return Err(DecodeError::BadVersion(v)),
    };
    if msg_type != TYPE_ADVERTISEMENT {
        return Err(DecodeError::BadType(msg_type));
    }
    let vrid = header[1];
    if vrid == 0 {
        return Err(DecodeError::BadVrid);
    }
    let priority = header[2];
    let count = header[3];
    if count == 0 {
        return Err(DecodeError::NoAddresses);
    }
    let trailer = match version {
        Version::V2 => V2_AUTH_LEN,
        Version::V3 => 0,
    };
    let expected = HEADER_LEN + 4 * usize::from(count) + trailer;
    if payload.len() < expected {
        return Err(DecodeError::AddressCountTooLarge {
            count,
            needed: expected,
            len: payload.len(),
        });
    }
    if payload.len() > expected {
        return Err(DecodeError::LengthMismatch {
            expected,
            len: payload.len(),
        });
    }
    let addr_bytes = &payload[HEADER_LEN..HEADER_LEN + 4 * usize::from(count)];
    let addresses = addr_bytes
        .chunks_exact(4)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect();
    let timing = match version {
        Version::V3 => {
            let max_advert_interval = u16::from_be_bytes([header[4], header[5]]) & 0x0fff;
            if max_advert_interval == 0 {
                return Err(DecodeError::ZeroInterval);
            }
            Timing::V3 {
                max_advert_interval,
            }
        }
        Version::V2 => {
            let advert_int = header[5];
            if advert_int == 0 {
                return Err(DecodeError::ZeroInterval);
            }
            let mut data = [0u8; V2_AUTH_LEN];
            data.copy_from_slice(&payload[expected - V2_AUTH_LEN..expected]);
            Timing::V2 {
                advert_int,
                auth: Auth::from_wire(header[4], data),
            }
        }
    };
    Ok(Advert {
        vrid,
        priority,
        timing,
        addresses,
    })
}

/// Validate and decode a received VRRP payload per RFC 9568 §7.1 / RFC 3768 §7.1: TTL 255,
/// version, type, VRID, address count against length, checksum, non-zero interval.
///
/// VRRPv3 accepts both checksum forms and reports which one matched. Checks that need the
/// router's configuration (VRID configured, auth, v2 interval, unicast source) are the
/// router's job.
pub fn decode(payload: &[u8], ip: &IpContext) -> Result<Decoded, DecodeError> {
    if ip.ttl != VRRP_TTL {
        return Err(DecodeError::BadTtl(ip.ttl));
    }
    let advert = parse(payload)?;
    let received = u16::from_be_bytes([payload[6], payload[7]]);
    let plain_ok = fold(ones_sum(0, payload)) == 0xffff;
    let checksum = match advert.version() {
        Version::V2 if plain_ok => ChecksumMode::Rfc9568,
        Version::V3 if plain_ok => ChecksumMode::Rfc9568,
        Version::V3
            if fold(ones_sum(
                pseudo_header_sum(ip.src, ip.dst, payload.len()),
                payload,
            )) == 0xffff =>
        {
            ChecksumMode::Keepalived
        }
        _ => return Err(DecodeError::BadChecksum { received }),
    };
    Ok(Decoded { advert, checksum })
}

/// The fixed part of an IPv4 header, as a raw `IPPROTO_VRRP` socket delivers it.
///
/// ```text
///     0                   1                   2                   3
///     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |Version|  IHL  |Type of Service|          Total Length         |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |         Identification        |Flags|      Fragment Offset    |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |  Time to Live |    Protocol   |         Header Checksum       |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                       Source Address                          |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                    Destination Address                        |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                    Options (IHL > 5)                          |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Header {
    /// Header length in bytes (IHL × 4).
    pub header_len: usize,
    pub tos: u8,
    pub total_len: u16,
    pub identification: u16,
    /// Flags and fragment offset as on the wire.
    pub flags_fragment: u16,
    pub ttl: u8,
    pub protocol: u8,
    pub checksum: u16,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
}

impl Ipv4Header {
    /// Decode and check an IPv4 header carrying VRRP: version 4, sane IHL and total length,
    /// protocol 112, not a fragment, header checksum. The TTL is checked by [`decode`].
    pub fn decode(buf: &[u8]) -> Result<Ipv4Header, DecodeError> {
        let Some(h) = buf.first_chunk::<20>() else {
            return Err(DecodeError::BadIpHeaderLength);
        };
        let version = h[0] >> 4;
        if version != 4 {
            return Err(DecodeError::NotIpv4(version));
        }
        let header_len = usize::from(h[0] & 0x0f) * 4;
        if header_len < 20 || buf.len() < header_len {
            return Err(DecodeError::BadIpHeaderLength);
        }
        let total_len = u16::from_be_bytes([h[2], h[3]]);
        if usize::from(total_len) < header_len || usize::from(total_len) > buf.len() {
            return Err(DecodeError::BadIpTotalLength {
                total: total_len,
                len: buf.len(),
            });
        }
        let flags_fragment = u16::from_be_bytes([h[6], h[7]]);
        // More-fragments flag or a non-zero offset.
        if flags_fragment & 0x3fff != 0 {
            return Err(DecodeError::Fragmented);
        }
        let protocol = h[9];
        if protocol != IPPROTO_VRRP {
            return Err(DecodeError::NotVrrp(protocol));
        }
        if fold(ones_sum(0, &buf[..header_len])) != 0xffff {
            return Err(DecodeError::BadIpChecksum);
        }
        Ok(Ipv4Header {
            header_len,
            tos: h[1],
            total_len,
            identification: u16::from_be_bytes([h[4], h[5]]),
            flags_fragment,
            ttl: h[8],
            protocol,
            checksum: u16::from_be_bytes([h[10], h[11]]),
            src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
            dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
        })
    }

    /// The fields VRRP validation needs.
    pub fn context(&self) -> IpContext {
        IpContext {
            src: self.src,
            dst: self.dst,
            ttl: self.ttl,
        }
    }

    /// Split a datagram into its header and the VRRP payload (bytes past the IPv4 total
    /// length, such as Ethernet padding, are dropped).
    pub fn split(buf: &[u8]) -> Result<(Ipv4Header, &[u8]), DecodeError> {
        let header = Ipv4Header::decode(buf)?;
        let payload = buf
            .get(header.header_len..usize::from(header.total_len))
            .ok_or(DecodeError::BadIpHeaderLength)?;
        Ok((header, payload))
    }
}

/// Decode a whole IPv4 datagram as read from a raw VRRP socket.
pub fn decode_ipv4(datagram: &[u8]) -> Result<(Ipv4Header, Decoded), DecodeError> {
    let (header, payload) = Ipv4Header::split(datagram)?;
    let decoded = decode(payload, &header.context())?;
    Ok((header, decoded))
}

/// One's-complement sum of the IPv4 pseudo-header keepalived puts under the v3 checksum.
fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> u32 {
    let mut ph = [0u8; 12];
    ph[0..4].copy_from_slice(&src.octets());
    ph[4..8].copy_from_slice(&dst.octets());
    ph[9] = IPPROTO_VRRP;
    // A VRRP payload is at most 8 + 4 * 255 + 8 bytes, so this never saturates.
    let len = u16::try_from(len).unwrap_or(u16::MAX);
    ph[10..12].copy_from_slice(&len.to_be_bytes());
    ones_sum(0, &ph)
}

/// Add `data` as big-endian 16-bit words (odd length padded with zero) to `acc`.
fn ones_sum(acc: u32, data: &[u8]) -> u32 {
    let mut sum = u64::from(acc);
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    while sum > 0xffff_ffff {
        sum = (sum & 0xffff_ffff) + (sum >> 32);
    }
    // The loop above leaves at most 32 bits.
    u32::try_from(sum).unwrap_or(u32::MAX)
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop leaves at most 16 bits.
    u16::try_from(sum).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);

    fn ctx() -> IpContext {
        IpContext {
            src: SRC,
            dst: DST,
            ttl: 255,
        }
    }

    fn v3(interval: u16) -> Advert {
        Advert {
            vrid: 51,
            priority: 100,
            timing: Timing::V3 {
                max_advert_interval: interval,
            },
            addresses: vec![Ipv4Addr::new(198, 18, 0, 10)],
        }
    }

    #[test]
    fn v3_roundtrips_in_both_checksum_modes_and_reports_the_mode() {
        for mode in [ChecksumMode::Rfc9568, ChecksumMode::Keepalived] {
            let bytes = v3(100).encode(mode, SRC, DST);
            let d = decode(&bytes, &ctx()).expect("decodes");
            assert_eq!(d.advert, v3(100));
            assert_eq!(d.checksum, mode);
        }
    }

    #[test]
    fn keepalived_checksum_depends_on_destination() {
        let a = v3(10).encode(ChecksumMode::Keepalived, SRC, DST);
        let b = v3(10).encode(ChecksumMode::Keepalived, SRC, Ipv4Addr::new(198, 18, 0, 13));
        assert_ne!(a[6..8], b[6..8]);
        // The packet for .13 does not verify as if it were sent to .12.
        assert_eq!(
            decode(&b, &ctx()),
            Err(DecodeError::BadChecksum {
                received: u16::from_be_bytes([b[6], b[7]])
            })
        );
    }

    #[test]
    fn reserved_bits_are_ignored_on_receive_and_zero_on_send() {
        let mut bytes = v3(100).encode(ChecksumMode::Rfc9568, SRC, DST);
        bytes[4] |= 0xf0;
        // Fix the checksum for the changed word: recompute over the edited bytes.
        bytes[6..8].copy_from_slice(&[0, 0]);
        let c = !fold(ones_sum(0, &bytes));
        bytes[6..8].copy_from_slice(&c.to_be_bytes());
        let d = decode(&bytes, &ctx()).expect("decodes");
        assert_eq!(d.advert.interval_cs(), 100);
        assert_eq!(
            d.advert.encode(ChecksumMode::Rfc9568, SRC, DST)[4] & 0xf0,
            0
        );
    }

    #[test]
    fn v2_pass_roundtrips() {
        let a = Advert {
            vrid: 7,
            priority: 1,
            timing: Timing::V2 {
                advert_int: 3,
                auth: Auth::pass("secret").expect("short"),
            },
            addresses: vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)],
        };
        let bytes = a.encode(ChecksumMode::Keepalived, SRC, DST);
        assert_eq!(bytes.len(), 8 + 8 + 8);
        assert_eq!(&bytes[16..22], b"secret");
        let d = decode(&bytes, &ctx()).expect("decodes");
        assert_eq!(d.advert, a);
        assert_eq!(d.advert.interval_cs(), 300);
    }

    #[test]
    fn auth_pass_rejects_empty_and_long_passwords() {
        assert_eq!(Auth::pass(""), None);
        assert_eq!(Auth::pass("123456789"), None);
        assert!(Auth::pass("12345678").is_some());
    }

    #[test]
    fn odd_length_checksum_pads_with_zero() {
        assert_eq!(ones_sum(0, &[0x12]), 0x1200);
        assert_eq!(fold(ones_sum(0, &[0xff, 0xff, 0x00, 0x01])), 0x0001);
    }
}
