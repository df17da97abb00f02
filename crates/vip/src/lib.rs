//! Owning a virtual IP on Linux: the adapters around the pure `vrrp` router (raw VRRP socket,
//! the VIP through rtnetlink with a finite lifetime, gratuitous ARP) and the speaker task that
//! drives the router with them. Everything OS-facing in kubeha's VRRP lives here.

pub mod address;
pub mod garp;
pub mod socket;
pub mod speaker;

pub use speaker::{SpeakerConfig, Status, run};

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
    #[error("VRRP configuration: {0}")]
    Config(#[from] vrrp::ConfigError),
}
