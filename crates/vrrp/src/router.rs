//! The VRRP state machine (RFC 9568 §6, RFC 3768 §6) as a sans-IO object.
//!
//! The caller feeds [`Input`]s with the current [`Instant`] and carries out the returned
//! [`Action`]s; it calls [`Router::handle`] with [`Input::Timeout`] at (or after)
//! [`Router::next_deadline`]. The router never reads a clock and never touches a socket.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::counters::Counters;
use crate::packet::{
    self, Advert, Auth, ChecksumMode, Decoded, IpContext, Ipv4Header, Timing, VRRP_MULTICAST,
    Version,
};
use crate::params::{AdvertInterval, Priority, Vrid};
use crate::timers::{Instant, centis, master_down_interval, skew_time};

/// Configuration of one virtual router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Virtual Router ID, 1–255.
    pub vrid: u8,
    /// Configured priority, 1–255; 255 means this router owns the addresses.
    pub priority: u8,
    /// Advertisement interval in centiseconds: 1–4095 for v3; a whole number of seconds
    /// (100–25500) for v2.
    pub advert_interval_cs: u16,
    /// The virtual addresses (1–255).
    pub virtual_addresses: Vec<Ipv4Addr>,
    /// This router's primary address on the interface: the advert source and the tie-breaker.
    pub primary_address: Ipv4Addr,
    /// Preempt a lower-priority master (keepalived `nopreempt` is `false`).
    pub preempt: bool,
    /// keepalived `preempt_delay`: after first seeing a lower-priority master, keep accepting
    /// it this long before preempting. Zero preempts at once.
    pub preempt_delay: Duration,
    pub version: Version,
    /// VRRPv2 authentication; must be `Auth::None` for v3.
    pub auth: Auth,
    /// Checksum form for sent v3 adverts (receive accepts both).
    pub send_checksum: ChecksumMode,
    /// Unicast peers. Empty: multicast to 224.0.0.18 and accept any source.
    pub unicast_peers: Vec<Ipv4Addr>,
    /// Drop adverts whose address list differs from ours unless sent by an owner
    /// (RFC 9568 §7.1 MAY).
    pub check_addresses: bool,
}

impl Config {
    /// A v3 multicast router with keepalived-compatible defaults: interval 1 s, preempt,
    /// no preempt delay, keepalived's checksum, address check on.
    pub fn new(
        vrid: u8,
        priority: u8,
        primary_address: Ipv4Addr,
        virtual_addresses: Vec<Ipv4Addr>,
    ) -> Config {
        Config {
            vrid,
            priority,
            advert_interval_cs: 100,
            virtual_addresses,
            primary_address,
            preempt: true,
            preempt_delay: Duration::ZERO,
            version: Version::V3,
            auth: Auth::None,
            send_checksum: ChecksumMode::Keepalived,
            unicast_peers: Vec::new(),
            check_addresses: true,
        }
    }

    /// A v3 router from checked parameters (non-owner), otherwise like [`Config::new`].
    pub fn v3(
        vrid: Vrid,
        priority: Priority,
        interval: AdvertInterval,
        primary_address: Ipv4Addr,
        virtual_addresses: Vec<Ipv4Addr>,
    ) -> Config {
        let mut c = Config::new(
            vrid.get(),
            priority.get(),
            primary_address,
            virtual_addresses,
        );
        c.advert_interval_cs = interval.centis();
        c
    }

    /// The rules of [`Vrid`], [`Priority`] (or the owner's 255) and, for v3,
    /// [`AdvertInterval`]; v2 intervals are whole seconds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Vrid::new(self.vrid).map_err(|_| ConfigError::Vrid)?;
        if self.priority != Priority::OWNER {
            Priority::new(self.priority).map_err(|_| ConfigError::Priority)?;
        }
        if self.virtual_addresses.is_empty() || self.virtual_addresses.len() > 255 {
            return Err(ConfigError::AddressCount(self.virtual_addresses.len()));
        }
        let i = self.advert_interval_cs;
        match self.version {
            Version::V3 => {
                AdvertInterval::from_centis(i).map_err(|_| ConfigError::Interval(i))?;
                if self.auth != Auth::None {
                    return Err(ConfigError::AuthWithV3);
                }
            }
            Version::V2 => {
                if i == 0 || i % 100 != 0 || i / 100 > 255 {
                    return Err(ConfigError::Interval(i));
                }
            }
        }
        Ok(())
    }
}

/// Why a [`Config`] was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("VRID must be 1-255")]
    Vrid,
    #[error("priority must be 1-255")]
    Priority,
    #[error("need 1-255 virtual addresses, got {0}")]
    AddressCount(usize),
    #[error("advert interval {0} cs is invalid (v3: 1-4095 cs; v2: whole seconds, 1-255 s, in cs)")]
    Interval(u16),
    #[error("authentication is VRRPv2 only")]
    AuthWithV3,
}

/// Public view of the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Initialize,
    Backup,
    Master,
    /// A tracked object put the router out of service (keepalived FAULT).
    Fault,
}

/// Health as reported by the daemon's trackers (keepalived semantics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Health {
    /// Sum of the weights that currently apply: a tracker with weight w > 0 adds w while it
    /// succeeds, one with w < 0 adds w while it fails. The effective priority is
    /// `priority + weight` clamped to 1–254; an owner (255) ignores weights.
    pub weight: i32,
    /// A weight-0 tracker failed: leave service (Fault), sending priority 0 if Master.
    pub fault: bool,
    /// This node can serve no better than any master (a front door with no ready backend):
    /// as a Backup it accepts a lower-priority master instead of preempting it, so an outage
    /// of every backend leaves the VIP where it is. It still takes over when no master speaks.
    pub cannot_serve: bool,
}

/// Something that happened to the router.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// Administrative start (Initialize → Backup or Master).
    Startup,
    /// Administrative stop (→ Initialize; a Master sends priority 0 first).
    Shutdown,
    /// The deadline from [`Router::next_deadline`] has passed.
    Timeout,
    /// A VRRP payload and the IP header fields it came with.
    Packet { ip: IpContext, payload: &'a [u8] },
    /// A whole IPv4 datagram, as a raw `IPPROTO_VRRP` socket delivers it.
    Datagram(&'a [u8]),
    /// Tracked health changed.
    Health(Health),
}

/// Something the daemon must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send `payload` (an encoded advert) to `dst` from the primary address with IP TTL 255
    /// and protocol 112. One action per destination: with keepalived's checksum the bytes
    /// differ per unicast peer.
    SendAdvert {
        dst: Ipv4Addr,
        priority: u8,
        payload: Vec<u8>,
    },
    /// Add a virtual address to the interface.
    AddVip(Ipv4Addr),
    /// Remove a virtual address from the interface.
    RemoveVip(Ipv4Addr),
    /// Broadcast a gratuitous ARP for a virtual address.
    SendGratuitousArp(Ipv4Addr),
    StateChanged {
        from: State,
        to: State,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Inner {
    Initialize,
    Backup {
        master_down_at: Instant,
        /// Preempt delay: until when a lower-priority master is still accepted.
        preempt_holdoff_until: Option<Instant>,
    },
    Master {
        advert_at: Instant,
    },
    Fault,
}

/// One virtual router.
#[derive(Clone, Debug)]
pub struct Router {
    config: Config,
    inner: Inner,
    /// Master_Adver_Interval in centiseconds (learned from the master in v3).
    master_adver_interval_cs: u32,
    health: Health,
    /// Started administratively (Startup seen, no Shutdown since).
    running: bool,
    counters: Counters,
    /// Source of the last accepted advert, for status display.
    last_master: Option<Ipv4Addr>,
}

impl Router {
    pub fn new(config: Config) -> Result<Router, ConfigError> {
        config.validate()?;
        let interval = u32::from(config.advert_interval_cs);
        Ok(Router {
            config,
            inner: Inner::Initialize,
            master_adver_interval_cs: interval,
            health: Health::default(),
            running: false,
            counters: Counters::default(),
            last_master: None,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn state(&self) -> State {
        match self.inner {
            Inner::Initialize => State::Initialize,
            Inner::Backup { .. } => State::Backup,
            Inner::Master { .. } => State::Master,
            Inner::Fault => State::Fault,
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The priority in use: configured priority adjusted by tracking weights.
    pub fn effective_priority(&self) -> u8 {
        effective_priority(self.config.priority, self.health.weight)
    }

    /// Master_Adver_Interval in centiseconds (the master's, learned, in v3 Backup).
    pub fn master_adver_interval_cs(&self) -> u32 {
        self.master_adver_interval_cs
    }

    /// Skew_Time for the current effective priority and Master_Adver_Interval.
    pub fn skew_time(&self) -> Duration {
        skew_time(
            self.config.version,
            self.effective_priority(),
            self.master_adver_interval_cs,
        )
    }

    /// Master_Down_Interval for the current effective priority and Master_Adver_Interval.
    pub fn master_down_interval(&self) -> Duration {
        master_down_interval(
            self.config.version,
            self.effective_priority(),
            self.master_adver_interval_cs,
        )
    }

    /// Source address of the last accepted advert.
    pub fn last_master(&self) -> Option<Ipv4Addr> {
        self.last_master
    }

    /// When to call `handle(Input::Timeout, ..)` next, if anything is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.inner {
            Inner::Backup { master_down_at, .. } => Some(master_down_at),
            Inner::Master { advert_at } => Some(advert_at),
            Inner::Initialize | Inner::Fault => None,
        }
    }

    /// Feed one input at time `now`; returns what the daemon must do, in order.
    pub fn handle(&mut self, input: Input<'_>, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Startup => self.on_startup(now, &mut out),
            Input::Shutdown => self.on_shutdown(&mut out),
            Input::Timeout => self.on_timeout(now, &mut out),
            Input::Packet { ip, payload } => {
                self.counters.packets_received += 1;
                match packet::decode(payload, &ip) {
                    Ok(d) => self.on_advert(&ip, d, now, &mut out),
                    Err(e) => self.counters.count_decode_error(&e),
                }
            }
            Input::Datagram(bytes) => {
                self.counters.packets_received += 1;
                match Ipv4Header::split(bytes)
                    .and_then(|(h, p)| packet::decode(p, &h.context()).map(|d| (h, d)))
                {
                    Ok((h, d)) => self.on_advert(&h.context(), d, now, &mut out),
                    Err(e) => self.counters.count_decode_error(&e),
                }
            }
            Input::Health(h) => self.on_health(h, now, &mut out),
        }
        out
    }

    // ---- events -------------------------------------------------------------------------

    fn on_startup(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.running {
            return;
        }
        self.running = true;
        if self.health.fault {
            self.transition(Inner::Fault, out);
        } else {
            self.enter_service(now, out);
        }
    }

    /// RFC 9568 §6.4.1: owner goes straight to Master, everyone else to Backup.
    fn enter_service(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.config.priority == 255 {
            self.become_master(now, out);
        } else {
            self.master_adver_interval_cs = u32::from(self.config.advert_interval_cs);
            let master_down_at = now + self.master_down_interval();
            self.transition(
                Inner::Backup {
                    master_down_at,
                    preempt_holdoff_until: None,
                },
                out,
            );
        }
    }

    fn on_shutdown(&mut self, out: &mut Vec<Action>) {
        self.running = false;
        self.leave_service(Inner::Initialize, out);
    }

    /// Leave Backup/Master for `to` (Initialize or Fault). A Master sends priority 0 so the
    /// backups take over after Skew_Time (RFC 9568 §6.4.3).
    fn leave_service(&mut self, to: Inner, out: &mut Vec<Action>) {
        match self.inner {
            Inner::Master { .. } => {
                self.transition(to, out);
                self.send_adverts(0, out);
                self.remove_vips(out);
            }
            Inner::Backup { .. } => self.transition(to, out),
            Inner::Initialize | Inner::Fault => {
                if self.inner != to {
                    self.transition(to, out);
                }
            }
        }
    }

    fn on_timeout(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.inner {
            Inner::Backup { master_down_at, .. } if now >= master_down_at => {
                self.become_master(now, out);
            }
            Inner::Master { advert_at } if now >= advert_at => {
                self.send_adverts(self.effective_priority(), out);
                self.inner = Inner::Master {
                    advert_at: now + self.advert_interval(),
                };
            }
            _ => {}
        }
    }

    fn on_health(&mut self, health: Health, now: Instant, out: &mut Vec<Action>) {
        let old = self.health;
        self.health = health;
        if health.fault && !old.fault {
            if self.running {
                self.leave_service(Inner::Fault, out);
            }
            return;
        }
        if !health.fault && old.fault {
            if self.running && self.inner == Inner::Fault {
                self.enter_service(now, out);
            }
            return;
        }
        let (before, after) = (
            effective_priority(self.config.priority, old.weight),
            self.effective_priority(),
        );
        if before != after {
            if let Inner::Master { .. } = self.inner {
                // Tell the backups at once so a now-higher backup can preempt.
                self.send_adverts(after, out);
                self.inner = Inner::Master {
                    advert_at: now + self.advert_interval(),
                };
            }
        }
    }

    /// RFC 9568 §7.1 checks that need configuration, then §6.4.2 / §6.4.3.
    fn on_advert(&mut self, ip: &IpContext, decoded: Decoded, now: Instant, out: &mut Vec<Action>) {
        let adv = decoded.advert;
        let c = &mut self.counters;
        if adv.version() != self.config.version {
            c.bad_version += 1;
            return;
        }
        if adv.vrid != self.config.vrid {
            c.vrid_mismatch += 1;
            return;
        }
        if ip.src == self.config.primary_address {
            c.own_advert += 1;
            return;
        }
        if !self.config.unicast_peers.is_empty() && !self.config.unicast_peers.contains(&ip.src) {
            c.foreign_source += 1;
            return;
        }
        if let Timing::V2 { advert_int, auth } = adv.timing {
            if auth != self.config.auth {
                c.auth_mismatch += 1;
                return;
            }
            if u32::from(advert_int) * 100 != u32::from(self.config.advert_interval_cs) {
                c.interval_mismatch += 1;
                return;
            }
        }
        if self.config.check_addresses
            && adv.priority != 255
            && !same_addresses(&adv.addresses, &self.config.virtual_addresses)
        {
            c.address_mismatch += 1;
            return;
        }
        if self.config.priority == 255 {
            // Erratum 8298: an owner logs the conflict but still processes the advert.
            c.owner_conflict += 1;
        }
        c.adverts_accepted += 1;
        if adv.priority == 0 {
            c.priority_zero_received += 1;
        }

        let local = self.effective_priority();
        match self.inner {
            Inner::Initialize | Inner::Fault => {}
            Inner::Backup {
                master_down_at,
                preempt_holdoff_until,
            } => {
                if adv.priority == 0 {
                    // §6.4.2: the master is leaving; take over after Skew_Time.
                    self.last_master = Some(ip.src);
                    let at = now + self.skew_time();
                    self.inner = Inner::Backup {
                        master_down_at: at.min(master_down_at),
                        preempt_holdoff_until,
                    };
                    return;
                }
                // A node that cannot serve gains nothing by taking the VIP from a master.
                let may_preempt = self.config.preempt && !self.health.cannot_serve;
                let holdoff = if may_preempt && adv.priority < local {
                    // We outrank this master and may preempt it: discard the advert so the
                    // Master_Down_Timer fires, unless the preempt delay still holds us back.
                    if self.config.preempt_delay.is_zero() {
                        return;
                    }
                    let until = preempt_holdoff_until.unwrap_or(now + self.config.preempt_delay);
                    if now >= until {
                        return;
                    }
                    Some(until)
                } else {
                    None
                };
                self.last_master = Some(ip.src);
                self.learn_interval(&adv);
                self.inner = Inner::Backup {
                    master_down_at: now + self.master_down_interval(),
                    preempt_holdoff_until: holdoff,
                };
            }
            Inner::Master { .. } => {
                if adv.priority == 0 {
                    // §6.4.3: answer at once so the backups do not take over.
                    self.send_adverts(local, out);
                    self.inner = Inner::Master {
                        advert_at: now + self.advert_interval(),
                    };
                } else if adv.priority > local
                    || (adv.priority == local
                        && u32::from(ip.src) > u32::from(self.config.primary_address))
                {
                    self.last_master = Some(ip.src);
                    self.learn_interval(&adv);
                    let master_down_at = now + self.master_down_interval();
                    self.transition(
                        Inner::Backup {
                            master_down_at,
                            preempt_holdoff_until: None,
                        },
                        out,
                    );
                    self.remove_vips(out);
                } else {
                    // RFC 9568 §6.4.3: discard, but advertise immediately so the lower
                    // router (and learning bridges) hear the real master now.
                    // The regular Adver_Timer schedule is kept.
                    self.send_adverts(local, out);
                    // Another router believed it was master (we were paused, cut off, …):
                    // clients may have followed its gratuitous ARP, so claim the addresses
                    // again, or they keep sending to a router that is about to drop them.
                    for &vip in &self.config.virtual_addresses {
                        out.push(Action::SendGratuitousArp(vip));
                    }
                }
            }
        }
    }

    // ---- helpers ------------------------------------------------------------------------

    fn become_master(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.transition(
            Inner::Master {
                advert_at: now + self.advert_interval(),
            },
            out,
        );
        self.counters.became_master += 1;
        self.last_master = Some(self.config.primary_address);
        // The advert first (RFC 9568 §6.4.2 order): adding the address is a netlink round
        // trip, and a lower backup whose deadline is a fraction of a millisecond later must
        // hear this one before its own fires.
        self.send_adverts(self.effective_priority(), out);
        for &vip in &self.config.virtual_addresses {
            out.push(Action::AddVip(vip));
        }
        for &vip in &self.config.virtual_addresses {
            out.push(Action::SendGratuitousArp(vip));
        }
    }

    fn remove_vips(&self, out: &mut Vec<Action>) {
        for &vip in &self.config.virtual_addresses {
            out.push(Action::RemoveVip(vip));
        }
    }

    fn transition(&mut self, to: Inner, out: &mut Vec<Action>) {
        let from = self.state();
        self.inner = to;
        let to = self.state();
        if from != to {
            out.push(Action::StateChanged { from, to });
        }
    }

    /// v3 backups adopt the master's interval (§6.4.2); v2 intervals must match anyway.
    fn learn_interval(&mut self, adv: &Advert) {
        if let Timing::V3 {
            max_advert_interval,
        } = adv.timing
        {
            self.master_adver_interval_cs = u32::from(max_advert_interval);
        }
    }

    fn advert_interval(&self) -> Duration {
        centis(u32::from(self.config.advert_interval_cs))
    }

    fn send_adverts(&mut self, priority: u8, out: &mut Vec<Action>) {
        let timing = match self.config.version {
            Version::V3 => Timing::V3 {
                max_advert_interval: self.config.advert_interval_cs,
            },
            Version::V2 => Timing::V2 {
                advert_int: u8::try_from(self.config.advert_interval_cs / 100).unwrap_or(u8::MAX),
                auth: self.config.auth,
            },
        };
        let advert = Advert {
            vrid: self.config.vrid,
            priority,
            timing,
            addresses: self.config.virtual_addresses.clone(),
        };
        let src = self.config.primary_address;
        let single = [VRRP_MULTICAST];
        let dsts: &[Ipv4Addr] = if self.config.unicast_peers.is_empty() {
            &single
        } else {
            &self.config.unicast_peers
        };
        for &dst in dsts {
            out.push(Action::SendAdvert {
                dst,
                priority,
                payload: advert.encode(self.config.send_checksum, src, dst),
            });
            self.counters.adverts_sent += 1;
            if priority == 0 {
                self.counters.priority_zero_sent += 1;
            }
        }
    }
}

fn effective_priority(base: u8, weight: i32) -> u8 {
    if base == 255 {
        return 255;
    }
    let p = i64::from(base) + i64::from(weight);
    // Clamped into 1..=254, so the conversion cannot fail.
    u8::try_from(p.clamp(1, 254)).unwrap_or(1)
}

fn same_addresses(a: &[Ipv4Addr], b: &[Ipv4Addr]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
}

#[cfg(test)]
mod tests;
