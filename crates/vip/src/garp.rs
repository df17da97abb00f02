//! Gratuitous ARP: tells the segment that the VIP now lives at this node's MAC, so clients
//! and switches move their entries at once instead of when their caches expire.

use std::net::Ipv4Addr;

use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, Socket, Type, socklen_t};

use crate::VipError;

use crate::arp::ETH_P_ARP;

/// The 42-byte Ethernet frame of a gratuitous ARP request for `ip` from `mac`
/// (sender and target protocol address both `ip`, target hardware address zero).
pub fn frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 42] {
    crate::arp::request(mac, ip, ip)
}

/// The link-layer broadcast address on interface `ifindex`, for an `AF_PACKET` send (and, as
/// a bind address, the interface and protocol an `AF_PACKET` socket receives).
pub(crate) fn broadcast_on(ifindex: u32) -> SockAddr {
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
