//! Listening on a VRID before taking part in it: which other routers already speak there.
//! `kubeha up` runs this on each control-plane node before the front door starts, so it never
//! fights a keepalived or router that already uses the VRID.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::VipError;
use crate::address::Netlink;
use crate::socket::VrrpSocket;

/// A router heard on the VRID: its address and the priority it sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    pub source: Ipv4Addr,
    pub priority: u8,
}

/// Routers heard on `vrid` at `interface` within `duration`, other than this node's own
/// addresses and `ignore` (the cluster's control-plane nodes), each once.
pub async fn listen(
    interface: &str,
    vrid: u8,
    duration: Duration,
    ignore: &[Ipv4Addr],
) -> Result<Vec<Heard>, VipError> {
    let nl = Netlink::connect()?;
    let link = nl.link(interface).await?;
    let own = nl.v4_addresses(link.index).await?;
    let source = own.first().map_or(Ipv4Addr::UNSPECIFIED, |(a, _)| *a);
    let mut sock = VrrpSocket::open(interface, link.index, source, true)?;
    let mut heard: Vec<Heard> = Vec::new();
    let deadline = tokio::time::Instant::now() + duration;
    let mut buf = vec![0u8; 2048];
    // Bounded by the deadline; each receive is cut off by it too.
    while let Ok(Ok(r)) = tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
        let Ok((ip, d)) = vrrp::packet::decode_ipv4(r.datagram) else {
            continue;
        };
        let src = ip.context().src;
        if d.advert.vrid == vrid
            && !ignore.contains(&src)
            && !own.iter().any(|(a, _)| *a == src)
            && !heard.iter().any(|h| h.source == src)
        {
            heard.push(Heard {
                source: src,
                priority: d.advert.priority,
            });
        }
    }
    Ok(heard)
}
