//! Is the VIP already in use on the segment by a device outside the VRRP group? Before the
//! first claim and again after the link comes back up, the speaker sends an RFC 5227 probe for
//! the VIP and asks each peer for its own address on one `AF_PACKET` socket, reads the answers
//! for a short while, and judges them with [`crate::arp::stranger`]. Users of kube-vip and
//! keepalived report duplicate VIPs after a cable is reconnected (kube-vip#1385,
//! keepalived#2649); the group must not claim over another device's address.

use std::net::Ipv4Addr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::address::Link;
use crate::arp::{self, ArpPacket, ETH_P_ARP};
use crate::garp::broadcast_on;

/// Sends the probe and the peer look-ups out of `link`, then collects every ARP packet that
/// speaks for the VIP or for a peer until `wait` has passed.
pub async fn probe(
    link: Link,
    own: Ipv4Addr,
    vip: Ipv4Addr,
    peers: &[Ipv4Addr],
    wait: Duration,
) -> std::io::Result<Vec<ArpPacket>> {
    let s = Socket::new(
        Domain::PACKET,
        Type::RAW,
        Some(Protocol::from(i32::from(ETH_P_ARP.to_be()))),
    )?;
    // Only this interface's ARP frames.
    s.bind(&broadcast_on(link.index))?;
    s.set_nonblocking(true)?;
    let to = broadcast_on(link.index);
    s.send_to(&arp::request(link.mac, Ipv4Addr::UNSPECIFIED, vip), &to)?;
    for &p in peers {
        s.send_to(&arp::request(link.mac, own, p), &to)?;
    }
    // SAFETY: the Socket owns its descriptor, which stays open and unchanged until the
    // AsyncFd (its only owner) is dropped at the end of this function.
    let fd = unsafe { AsyncFd::register_with_interest(s, Interest::READABLE) }
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut heard = Vec::new();
    let mut buf = [0u8; 1600];
    // Bounded by the deadline; a flood of frames is bounded by it too.
    while let Ok(ready) = tokio::time::timeout_at(deadline, fd.readable()).await {
        let mut guard = ready?;
        match guard.try_io(|inner| {
            let mut sock: &Socket = inner.get_ref();
            std::io::Read::read(&mut sock, &mut buf)
        }) {
            Ok(Ok(n)) => {
                if let Some(p) = arp::parse(&buf[..n])
                    && p.sender_mac != link.mac
                    && (p.sender_ip == vip || peers.contains(&p.sender_ip))
                {
                    heard.push(p);
                }
            }
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(heard)
}
