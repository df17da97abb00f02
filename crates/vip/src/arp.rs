//! ARP frames, pure: the requests the speaker sends (gratuitous, RFC 5227 probes, peer
//! look-ups), the frames it reads back, and the judgement whether a device outside the VRRP
//! group answers for the VIP (a duplicate address the group must not claim over).

use std::net::Ipv4Addr;

pub const ETH_P_ARP: u16 = 0x0806;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

pub type Mac = [u8; 6];

/// The 42-byte Ethernet frame of a broadcast ARP request from `mac` asking for `target`, with
/// `sender` as the sender protocol address: the VIP itself for a gratuitous ARP, 0.0.0.0 for an
/// RFC 5227 probe (it updates nobody's cache), this node's own address for a look-up.
pub fn request(mac: Mac, sender: Ipv4Addr, target: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]); // broadcast
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&OP_REQUEST.to_be_bytes());
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&sender.octets());
    // target hardware address stays zero
    f[38..42].copy_from_slice(&target.octets());
    f
}

/// One Ethernet/IPv4 ARP packet as read from an `AF_PACKET` socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket {
    pub op: u16,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

/// Reads an Ethernet frame; `None` unless it is an Ethernet/IPv4 ARP request or reply.
pub fn parse(frame: &[u8]) -> Option<ArpPacket> {
    if frame.len() < 42 || frame[12..14] != ETH_P_ARP.to_be_bytes() {
        return None;
    }
    let a = &frame[14..];
    if a[0..2] != 1u16.to_be_bytes() || a[2..4] != 0x0800u16.to_be_bytes() || a[4] != 6 || a[5] != 4
    {
        return None;
    }
    let op = u16::from_be_bytes([a[6], a[7]]);
    if op != OP_REQUEST && op != OP_REPLY {
        return None;
    }
    let ip = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    let mut sender_mac = [0u8; 6];
    sender_mac.copy_from_slice(&a[8..14]);
    Some(ArpPacket {
        op,
        sender_mac,
        sender_ip: ip(&a[14..18]),
        target_ip: ip(&a[24..28]),
    })
}

/// The MAC of a device outside the group that speaks for `vip` in `heard`, if any. The group
/// is this node (`own`) and the devices that answered for one of `peers` in the same probe: a
/// peer that still holds the VIP (a crashed holder, until its lifetime ends) is not a conflict.
/// A probe from another prober (sender 0.0.0.0) claims nothing.
pub fn stranger(heard: &[ArpPacket], vip: Ipv4Addr, own: Mac, peers: &[Ipv4Addr]) -> Option<Mac> {
    let group: Vec<Mac> = heard
        .iter()
        .filter(|p| peers.contains(&p.sender_ip))
        .map(|p| p.sender_mac)
        .chain(std::iter::once(own))
        .collect();
    heard
        .iter()
        .find(|p| p.sender_ip == vip && !group.contains(&p.sender_mac))
        .map(|p| p.sender_mac)
}

/// `aa:bb:cc:dd:ee:ff`, for logs and metrics.
pub fn mac_string(m: Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const ME: Mac = [2, 0, 0, 0, 0, 1];
    const PEER: Mac = [2, 0, 0, 0, 0, 2];
    const OTHER: Mac = [2, 0, 0, 0, 0, 9];
    const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);

    fn reply(mac: Mac, ip: Ipv4Addr) -> ArpPacket {
        ArpPacket {
            op: OP_REPLY,
            sender_mac: mac,
            sender_ip: ip,
            target_ip: Ipv4Addr::new(198, 18, 0, 11),
        }
    }

    #[test]
    fn a_probe_asks_for_the_vip_from_no_address() {
        let f = request(ME, Ipv4Addr::UNSPECIFIED, VIP);
        let p = parse(&f).unwrap();
        assert_eq!(p.op, OP_REQUEST);
        assert_eq!(p.sender_mac, ME);
        assert_eq!(p.sender_ip, Ipv4Addr::UNSPECIFIED);
        assert_eq!(p.target_ip, VIP);
        assert_eq!(&f[0..6], &[0xff; 6]);
    }

    #[test]
    fn parse_reads_a_reply_and_refuses_other_frames() {
        // A reply as a Linux kernel sends it: 42 bytes, or padded to 60 on the wire.
        let mut f = request(PEER, VIP, Ipv4Addr::new(198, 18, 0, 11)).to_vec();
        f[20..22].copy_from_slice(&OP_REPLY.to_be_bytes());
        f.resize(60, 0);
        assert_eq!(
            parse(&f),
            Some(ArpPacket {
                op: OP_REPLY,
                sender_mac: PEER,
                sender_ip: VIP,
                target_ip: Ipv4Addr::new(198, 18, 0, 11),
            })
        );
        let mut ipv4 = f.clone();
        ipv4[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        assert_eq!(parse(&ipv4), None, "not ARP");
        let mut rarp = f.clone();
        rarp[20..22].copy_from_slice(&3u16.to_be_bytes());
        assert_eq!(parse(&rarp), None, "not a request or reply");
        assert_eq!(parse(&f[..41]), None, "short");
    }

    #[test]
    fn a_device_outside_the_group_answering_for_the_vip_is_a_stranger() {
        assert_eq!(
            stranger(&[reply(OTHER, VIP)], VIP, ME, &[PEER_IP]),
            Some(OTHER)
        );
        // A peer (it answered for its own address too) that still holds the VIP is not.
        let heard = [reply(PEER, VIP), reply(PEER, PEER_IP)];
        assert_eq!(stranger(&heard, VIP, ME, &[PEER_IP]), None);
        // Nor are this node, silence, or a peer's own address alone.
        assert_eq!(stranger(&[reply(ME, VIP)], VIP, ME, &[PEER_IP]), None);
        assert_eq!(stranger(&[], VIP, ME, &[PEER_IP]), None);
        assert_eq!(stranger(&[reply(PEER, PEER_IP)], VIP, ME, &[PEER_IP]), None);
        // A peer's MAC is only known when it answered in this probe.
        assert_eq!(
            stranger(&[reply(PEER, VIP)], VIP, ME, &[PEER_IP]),
            Some(PEER)
        );
        // Another device's RFC 5227 probe claims nothing.
        let probe = ArpPacket {
            op: OP_REQUEST,
            sender_mac: OTHER,
            sender_ip: Ipv4Addr::UNSPECIFIED,
            target_ip: VIP,
        };
        assert_eq!(stranger(&[probe], VIP, ME, &[PEER_IP]), None);
    }

    #[test]
    fn macs_print_as_colon_hex() {
        assert_eq!(mac_string([0x02, 0, 0xab, 0, 0, 0x0f]), "02:00:ab:00:00:0f");
    }
}
