//! Gratuitous ARP: tells the segment that the VIP now lives at this node's MAC, so clients
//! and switches move their entries at once instead of when their caches expire.

use std::net::Ipv4Addr;

use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, Socket, Type, socklen_t};

use crate::VipError;

const ETH_P_ARP: u16 = 0x0806;

/// The 42-byte Ethernet frame of a gratuitous ARP request for `ip` from `mac`
/// (sender and target protocol address both `ip`, target hardware address zero).
pub fn frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]); // broadcast
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip.octets());
    // target hardware address stays zero
    f[38..42].copy_from_slice(&ip.octets());
    f
}

/// The link-layer broadcast address on interface `ifindex`, for an `AF_PACKET` send.
fn broadcast_on(ifindex: u32) -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: `sockaddr_ll` is one of this platform's `sockaddr_*` types and smaller than the
    // zeroed storage it views (socket2 asserts the size); zero is a valid value of every field.
    let sll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ARP.to_be();
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    let len = std::mem::size_of::<libc::sockaddr_ll>() as socklen_t;
    // SAFETY: the storage holds an initialised `sockaddr_ll` (family AF_PACKET) of `len` bytes.
    unsafe { SockAddr::new(storage, len) }
}

/// Sends one gratuitous ARP for `ip` out of interface `ifindex`.
pub fn send(ifindex: u32, mac: [u8; 6], ip: Ipv4Addr) -> Result<(), VipError> {
    let socket = Socket::new(
        Domain::PACKET,
        Type::RAW,
        Some(Protocol::from(i32::from(ETH_P_ARP.to_be()))),
    )
    .map_err(VipError::Arp)?;
    socket
        .send_to(&frame(mac, ip), &broadcast_on(ifindex))
        .map_err(VipError::Arp)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_layout_matches_a_gratuitous_arp_request() {
        let f = frame([2, 0, 0, 0, 0, 1], Ipv4Addr::new(198, 18, 0, 10));
        assert_eq!(
            f.to_vec(),
            [
                &[0xff; 6][..],
                &[2, 0, 0, 0, 0, 1],
                &[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1],
                &[2, 0, 0, 0, 0, 1, 198, 18, 0, 10],
                &[0; 6],
                &[198, 18, 0, 10],
            ]
            .concat()
        );
    }
}
