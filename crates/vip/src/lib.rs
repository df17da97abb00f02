//! Owning a virtual IP on Linux: the adapters around the pure `vrrp` router (raw VRRP socket,
//! the VIP through rtnetlink with a finite lifetime, gratuitous ARP) and the speaker task that
//! drives the router with them. Everything OS-facing in kubeha's VRRP lives here.

pub mod address;
pub mod arp;
pub mod conflict;
pub mod garp;
pub mod listen;
pub mod realtime;
pub mod socket;
pub mod speaker;
pub mod timer;

pub use realtime::{Scheduling, spawn};
pub use speaker::{SpeakerConfig, Status, run};

/// Makes the kernel pick the interface's primary address, never the VIP, as the source of
/// ARP requests (`arp_announce=2`, as LVS-DR setups do). Otherwise a holder that died with the
/// VIP still assigned answers or probes clients "from" the VIP and pulls them back to itself.
/// Returns the old value when it changed something.
pub fn arp_announce(interface: &str) -> std::io::Result<Option<u8>> {
    let path = format!("/proc/sys/net/ipv4/conf/{interface}/arp_announce");
    let old: u8 = std::fs::read_to_string(&path)?.trim().parse().unwrap_or(0);
    if old >= 2 {
        return Ok(None);
    }
    std::fs::write(&path, "2\n")?;
    Ok(Some(old))
}

#[derive(Debug, thiserror::Error)]
pub enum VipError {
    #[error("netlink: {0} (is this process allowed CAP_NET_ADMIN?)")]
    Netlink(#[source] std::io::Error),
    #[error("interface {0}: {1}; check `interface:` in the front door config")]
    Interface(String, String),
    #[error("address {0}: {1}")]
    Address(std::net::Ipv4Addr, String),
    #[error("VRRP socket on {0}: {1} (needs CAP_NET_RAW)")]
    Socket(String, #[source] std::io::Error),
    #[error("gratuitous ARP: {0}")]
    Arp(#[source] std::io::Error),
    #[error("VRRP thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("VRRP configuration: {0}")]
    Config(#[from] vrrp::ConfigError),
}
