//! VRRP for kubeha's front door: a pure protocol core with no I/O and no clock.
//!
//! - [`packet`]: VRRPv3 for IPv4 (RFC 9568) and VRRPv2 (RFC 3768) codec, both checksum forms
//!   (RFC 9568 and keepalived's pseudo-header), the IPv4 header of raw-socket reads.
//! - [`timers`]: the caller-supplied [`Instant`] and exact Skew_Time / Master_Down_Interval.
//! - [`router`]: the Initialize / Backup / Master (/ Fault) state machine:
//!   `Router::handle(Input, now) -> Vec<Action>`.
//! - [`counters`]: one counter per drop reason.
//! - [`params`]: [`Vrid`], [`Priority`], [`AdvertInterval`]: the rules for a configured router,
//!   checked where the value is built (used by the inventory, the front door config, the router).
//!
//! The daemon owns sockets, netlink and the clock; this crate only decides.

pub mod counters;
pub mod packet;
pub mod params;
pub mod router;
pub mod timers;

pub use counters::Counters;
pub use packet::{
    Advert, Auth, ChecksumMode, DecodeError, Decoded, IpContext, Ipv4Header, Timing, Version,
    decode, decode_ipv4, parse,
};
pub use params::{AdvertInterval, IntervalParseError, ParamError, Priority, Vrid};
pub use router::{Action, Config, ConfigError, Health, Input, Router, State};
pub use timers::Instant;
