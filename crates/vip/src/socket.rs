//! The VRRP raw socket (IP protocol 112): TTL 255, DSCP CS6, bound to one interface, joined
//! to 224.0.0.18 in multicast mode. Receives whole IPv4 datagrams (the kernel keeps the IP
//! header on raw sockets); sends payloads and lets the kernel build the IP header.

use std::io::IoSliceMut;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrIn, recvmsg, setsockopt, sockopt::ReceiveTimestampns,
};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::VipError;

/// DSCP CS6 (network control) in the TOS byte, as RFC 9568 recommends for adverts.
pub const TOS_CS6: u32 = 0xc0;

pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    cmsg: Vec<u8>,
}

/// One received datagram and how long ago the kernel received it.
pub struct Received<'b> {
    pub datagram: &'b [u8],
    /// Time since the kernel took the packet in (`SO_TIMESTAMPNS`), so a timer started from
    /// an advert does not start late by however long this thread took to wake up. Zero when
    /// the kernel gave no stamp.
    pub age: Duration,
}

/// How long ago `stamp` (wall clock) was, bounded: a wall clock stepped between the stamp and
/// now must not move a VRRP timer by more than an advert or so.
fn age_of(stamp: SystemTime) -> Duration {
    SystemTime::now()
        .duration_since(stamp)
        .unwrap_or_default()
        .min(Duration::from_millis(100))
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
        // Receive timestamps: see `Received::age`.
        setsockopt(&s, ReceiveTimestampns, &true).map_err(|e| io(e.into()))?;
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
        Ok(VrrpSocket {
            fd,
            cmsg: nix::cmsg_space!(nix::sys::time::TimeSpec),
        })
    }

    /// One `recvmsg`: the datagram into `buf`; its length and age.
    fn read_stamped(
        fd: &Socket,
        cmsg: &mut [u8],
        buf: &mut [u8],
    ) -> std::io::Result<(usize, Duration)> {
        let (n, stamp) = {
            let mut iov = [IoSliceMut::new(buf)];
            let msg =
                recvmsg::<SockaddrIn>(fd.as_raw_fd(), &mut iov, Some(cmsg), MsgFlags::empty())
                    .map_err(std::io::Error::from)?;
            let stamp = msg.cmsgs().ok().and_then(|mut c| {
                c.find_map(|m| match m {
                    ControlMessageOwned::ScmTimestampns(ts) => Some(
                        SystemTime::UNIX_EPOCH
                            + Duration::new(ts.tv_sec().max(0) as u64, ts.tv_nsec() as u32),
                    ),
                    _ => None,
                })
            });
            (msg.bytes, stamp)
        };
        Ok((n, stamp.map(age_of).unwrap_or_default()))
    }

    /// Waits for the next datagram (IPv4 header included) and copies it into `buf`.
    pub async fn recv<'b>(&mut self, buf: &'b mut [u8]) -> std::io::Result<Received<'b>> {
        loop {
            let mut guard = self.fd.readable().await?;
            let cmsg = &mut self.cmsg;
            let res = guard.try_io(|inner| Self::read_stamped(inner.get_ref(), cmsg, buf));
            match res {
                Ok(Ok((n, age))) => {
                    return Ok(Received {
                        datagram: &buf[..n],
                        age,
                    });
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// The next datagram if one is already waiting, without waiting.
    pub fn try_recv<'b>(&mut self, buf: &'b mut [u8]) -> std::io::Result<Option<Received<'b>>> {
        match Self::read_stamped(self.fd.get_ref(), &mut self.cmsg, buf) {
            Ok((n, age)) => Ok(Some(Received {
                datagram: &buf[..n],
                age,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
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
