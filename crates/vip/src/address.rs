//! The VIP on the interface, through rtnetlink. The holder adds it with a finite valid
//! lifetime and keeps refreshing it, so a holder that is killed outright loses the VIP by
//! itself once the lifetime runs out (keepalived leaves it behind).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures_util::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, CacheInfo};
use netlink_packet_route::link::LinkAttribute;

use crate::VipError;

#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub mac: [u8; 6],
}

impl Netlink {
    /// Opens a netlink connection in the current network namespace.
    pub fn connect() -> Result<Netlink, VipError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(VipError::Netlink)?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    pub async fn link(&self, name: &str) -> Result<Link, VipError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        let msg = links
            .try_next()
            .await
            .map_err(|e| VipError::Interface(name.to_string(), e.to_string()))?
            .ok_or_else(|| VipError::Interface(name.to_string(), "not found".into()))?;
        let mac = msg
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Address(b) if b.len() == 6 => {
                    let mut m = [0u8; 6];
                    m.copy_from_slice(b);
                    Some(m)
                }
                _ => None,
            })
            .unwrap_or([0; 6]);
        Ok(Link {
            index: msg.header.index,
            mac,
        })
    }

    /// Adds or refreshes `addr/prefix` with the given valid (and preferred) lifetime.
    /// `None` adds it permanently.
    pub async fn add(
        &self,
        index: u32,
        addr: Ipv4Addr,
        prefix: u8,
        lifetime: Option<Duration>,
    ) -> Result<(), VipError> {
        let mut req = self
            .handle
            .address()
            .add(index, IpAddr::V4(addr), prefix)
            .replace();
        if let Some(l) = lifetime {
            let secs = l.as_secs().clamp(1, u64::from(u32::MAX - 1)) as u32;
            let mut ci = CacheInfo::default();
            ci.ifa_valid = secs;
            ci.ifa_preferred = secs;
            req.message_mut()
                .attributes
                .push(AddressAttribute::CacheInfo(ci));
        }
        req.execute()
            .await
            .map_err(|e| VipError::Address(addr, e.to_string()))
    }

    /// Removes `addr` from the interface; absent is fine.
    pub async fn remove(&self, index: u32, addr: Ipv4Addr) -> Result<bool, VipError> {
        let mut found = false;
        let mut list = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(IpAddr::V4(addr))
            .execute();
        while let Some(msg) = list
            .try_next()
            .await
            .map_err(|e| VipError::Address(addr, e.to_string()))?
        {
            found = true;
            self.handle
                .address()
                .del(msg)
                .execute()
                .await
                .map_err(|e| VipError::Address(addr, e.to_string()))?;
        }
        Ok(found)
    }

    /// The interface's IPv4 addresses in kernel order (the primary first), with prefixes.
    pub async fn v4_addresses(&self, index: u32) -> Result<Vec<(Ipv4Addr, u8)>, VipError> {
        let mut out = Vec::new();
        let mut list = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        while let Some(msg) = list
            .try_next()
            .await
            .map_err(|e| VipError::Interface(index.to_string(), e.to_string()))?
        {
            for a in &msg.attributes {
                if let AddressAttribute::Local(IpAddr::V4(v4)) = a {
                    out.push((*v4, msg.header.prefix_len));
                }
            }
        }
        Ok(out)
    }

    pub async fn has(&self, index: u32, addr: Ipv4Addr) -> Result<bool, VipError> {
        let mut list = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(IpAddr::V4(addr))
            .execute();
        Ok(list
            .try_next()
            .await
            .map_err(|e| VipError::Address(addr, e.to_string()))?
            .is_some())
    }
}
