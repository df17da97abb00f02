//! The VRRP raw socket (IP protocol 112): TTL 255, DSCP CS6, bound to one interface, joined
//! to 224.0.0.18 in multicast mode. Receives whole IPv4 datagrams (the kernel keeps the IP
//! header on raw sockets); sends payloads and lets the kernel build the IP header.

use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddrV4};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::VipError;

/// DSCP CS6 (network control) in the TOS byte, as RFC 9568 recommends for adverts.
pub const TOS_CS6: u32 = 0xc0;

pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
}

impl VrrpSocket {
    pub fn open(
        ifname: &str,
        ifindex: u32,
        source: Ipv4Addr,
        multicast: bool,
    ) -> Result<Self, VipError> {
        let io = |e| VipError::Socket(ifname.to_string(), e);
        let s = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(i32::from(vrrp::packet::IPPROTO_VRRP))),
        )
        .map_err(io)?;
        s.set_nonblocking(true).map_err(io)?;
        s.bind_device(Some(ifname.as_bytes())).map_err(io)?;
        s.set_ttl_v4(u32::from(vrrp::packet::VRRP_TTL))
            .map_err(io)?;
        s.set_tos_v4(TOS_CS6).map_err(io)?;
        s.set_multicast_ttl_v4(u32::from(vrrp::packet::VRRP_TTL))
            .map_err(io)?;
        s.set_multicast_loop_v4(false).map_err(io)?;
        s.set_multicast_if_v4(&source).map_err(io)?;
        if multicast {
            s.join_multicast_v4_n(
                &vrrp::packet::VRRP_MULTICAST,
                &InterfaceIndexOrAddress::Index(ifindex),
            )
            .map_err(io)?;
        }
        // SAFETY: the Socket owns its fd, which stays open and unchanged until the AsyncFd
        // (its only owner) is dropped. (tokio has no safe constructor left: `with_interest`
        // is deprecated as unsound.)
        let fd = unsafe { AsyncFd::register_with_interest(s, Interest::READABLE) }
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        Ok(VrrpSocket { fd })
    }

    /// Waits for the next datagram (IPv4 header included) and copies it into `buf`.
    pub async fn recv<'b>(&self, buf: &'b mut [u8]) -> std::io::Result<&'b [u8]> {
        loop {
            let mut guard = self.fd.readable().await?;
            let res = guard.try_io(|inner| {
                let mut socket: &Socket = inner.get_ref();
                socket.read(buf)
            });
            match res {
                Ok(Ok(n)) => return Ok(&buf[..n]),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends one advert payload to `dst`. A full socket buffer drops the advert, as the
    /// network would; VRRP's timers tolerate a lost advert.
    pub fn send(&self, dst: Ipv4Addr, payload: &[u8]) -> std::io::Result<()> {
        let addr = SocketAddrV4::new(dst, 0).into();
        match self.fd.get_ref().send_to(payload, &addr) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }
}
