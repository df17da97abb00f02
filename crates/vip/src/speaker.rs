//! The VRRP speaker: owns one pure `vrrp::Router` and carries out what it asks for with the
//! raw socket, netlink and gratuitous ARP. The router's epoch-relative `Instant` is the
//! monotonic clock since the speaker started; its deadlines wait on a nanosecond timer
//! ([`DeadlineTimer`]), so adjacent priorities take over in their order.

use std::net::Ipv4Addr;
use std::time::Duration;

use futures_util::StreamExt;
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::LinkFlags;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vrrp::{Action, Input, Router, State};

use crate::address::{Link, Netlink};
use crate::arp::{self, ArpPacket, Mac};
use crate::socket::VrrpSocket;
use crate::timer::DeadlineTimer;
use crate::{VipError, conflict, garp};

#[derive(Debug, Clone)]
pub struct SpeakerConfig {
    pub interface: String,
    /// Prefix length the VIP is added with.
    pub prefix: u8,
    pub router: vrrp::Config,
    /// Valid lifetime of the VIP on the holder; refreshed every quarter of it.
    pub vip_lifetime: Duration,
    /// After the priority-0 advert on shutdown, how long to keep the VIP (and serve) while
    /// waiting for the new master's first advert.
    pub handover_timeout: Duration,
}

/// What the speaker is doing, for metrics, status and tests.
#[derive(Debug, Clone)]
pub struct Status {
    pub state: State,
    pub effective_priority: u8,
    pub holds_vip: bool,
    /// Source of the last accepted advert (the master, when Backup).
    pub master: Option<Ipv4Addr>,
    pub transitions: u64,
    pub adverts_sent: u64,
    pub gratuitous_arps: u64,
    pub counters: vrrp::Counters,
    /// A device outside the group answers ARP for the VIP: its MAC. While set, this node is in
    /// Fault and does not claim the VIP.
    pub conflict: Option<Mac>,
    /// ARP probes that found such a device.
    pub conflicts_found: u64,
    /// Times the interface came back up (each followed by a probe, and a re-announce when
    /// this node still holds the VIP).
    pub link_ups: u64,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            state: State::Initialize,
            effective_priority: 0,
            holds_vip: false,
            master: None,
            transitions: 0,
            adverts_sent: 0,
            gratuitous_arps: 0,
            counters: vrrp::Counters::default(),
            conflict: None,
            conflicts_found: 0,
            link_ups: 0,
        }
    }
}

struct Speaker {
    cfg: SpeakerConfig,
    nl: Netlink,
    link: Link,
    sock: VrrpSocket,
    router: Router,
    /// The router's clock and deadline timer.
    timer: DeadlineTimer,
    status: Status,
    /// Remove the VIP only after a new master is heard (make-before-break).
    defer_remove: bool,
    /// Repeats of the takeover gratuitous ARP still to send.
    garp_repeats: Vec<Instant>,
    /// The daemon's health, before a VIP conflict is folded in.
    health_in: vrrp::Health,
    /// ARP probes under way, and why each was started.
    probes: JoinSet<(Probe, std::io::Result<Vec<ArpPacket>>)>,
    /// Whether the interface was running at the last link event.
    link_running: Option<bool>,
}

/// Why the segment is probed for the VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// This node just claimed the VIP (or is about to, at start): is another device using it?
    Claim,
    /// The interface came back up: probe, then re-announce if this node still holds the VIP.
    LinkUp,
    /// A conflict stands: is the other device gone yet?
    Recheck,
}

/// How long a probe listens for answers: a reply on a LAN takes well under a millisecond; a
/// loaded node's kernel may take longer to deliver it.
const PROBE_WAIT: Duration = Duration::from_millis(200);
/// While a conflict stands, probe again this often.
const RECHECK_EVERY: Duration = Duration::from_secs(2);

/// After a takeover, gratuitous ARP again at these offsets: a crashed holder keeps the VIP
/// until its lifetime ends, and Linux clients ignore an ARP update that changes the address
/// within `locktime` (1 s) of the entry's last update, so one repeat lands just past it.
const GARP_REPEATS: [Duration; 5] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_millis(1050),
    Duration::from_millis(1600),
    Duration::from_millis(3000),
];

/// On a graceful handover, how long the old holder keeps the VIP after the new master is
/// heard: past the new master's netlink add and first gratuitous ARP, with room for a loaded
/// node; both hold it meanwhile and both serve.
const RELEASE_AFTER_HEARD: Duration = Duration::from_millis(150);

/// Datagrams taken from the socket before acting on a due deadline (a flood cannot hold the
/// timeout off for longer than this many).
const PENDING_MAX: usize = 16;

impl Speaker {
    fn now(&self) -> vrrp::Instant {
        vrrp::Instant::from_epoch(self.timer.elapsed())
    }

    /// The router's deadline is due: first take the adverts already waiting in the socket
    /// (bounded), so a master's advert that arrived as the timer fired still counts, then
    /// time out if the deadline still stands.
    async fn timeout(&mut self, buf: &mut [u8]) -> Result<(), VipError> {
        for _ in 0..PENDING_MAX {
            let (dg, age) = match self.sock.try_recv(buf) {
                Ok(Some(r)) => (r.datagram.to_vec(), r.age),
                Ok(None) => break,
                Err(e) => return Err(VipError::Socket(self.cfg.interface.clone(), e)),
            };
            self.datagram(&dg, age).await?;
        }
        self.apply(Input::Timeout).await
    }

    /// The health the router sees: the daemon's, in Fault while another device holds the VIP.
    async fn apply_health(&mut self) -> Result<(), VipError> {
        let h = vrrp::Health {
            fault: self.health_in.fault || self.status.conflict.is_some(),
            ..self.health_in
        };
        self.apply(Input::Health(h)).await
    }

    /// Starts an ARP probe for the VIP (and the peers' own addresses, so a peer that still
    /// holds the VIP is known for one), read back in the main loop. False when none can be
    /// made.
    fn start_probe(&mut self, why: Probe) -> bool {
        // Multicast lists no peers, so a peer could not be told from a stranger (a backup
        // restarting beside the holder would take the holder for one): unicast groups only.
        let peers = self.cfg.router.unicast_peers.clone();
        if peers.is_empty() {
            return false;
        }
        let (link, own) = (self.link, self.cfg.router.primary_address);
        let vips = self.cfg.router.virtual_addresses.clone();
        self.probes.spawn(async move {
            let mut heard = Vec::new();
            for vip in vips {
                match conflict::probe(link, own, vip, &peers, PROBE_WAIT).await {
                    Ok(h) => heard.extend(h),
                    Err(e) => return (why, Err(e)),
                }
            }
            (why, Ok(heard))
        });
        true
    }

    /// Gratuitous ARP again, with the takeover's repeats, if this node holds the VIP.
    fn reannounce(&mut self) {
        if self.status.holds_vip && self.router.state() == State::Master {
            tracing::info!("link up while holding the VIP: announcing it again");
            for addr in self.cfg.router.virtual_addresses.clone() {
                self.garp(addr);
            }
            self.schedule_garp_repeats();
        }
    }

    /// The repeats of [`GARP_REPEATS`], counted from now.
    fn schedule_garp_repeats(&mut self) {
        let now = Instant::now();
        self.garp_repeats = GARP_REPEATS.iter().map(|d| now + *d).collect();
    }

    /// A probe's answers: a device outside the group on the VIP puts this node in Fault until
    /// a later probe finds it gone; a clean probe after link-up re-announces a held VIP.
    async fn probed(
        &mut self,
        why: Probe,
        heard: std::io::Result<Vec<ArpPacket>>,
    ) -> Result<(), VipError> {
        let heard = match heard {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "ARP probe for the VIP not sent; VIP conflicts go undetected");
                return Ok(());
            }
        };
        let peers = &self.cfg.router.unicast_peers;
        let found =
            self.cfg.router.virtual_addresses.iter().find_map(|&vip| {
                arp::stranger(&heard, vip, self.link.mac, peers).map(|m| (vip, m))
            });
        match (found, self.status.conflict) {
            (Some((vip, mac)), _) => {
                self.status.conflicts_found += 1;
                if self.status.conflict.is_none() {
                    tracing::error!(%vip, mac = %arp::mac_string(mac), "a device outside the VRRP group answers ARP for the VIP: not claiming it until it is gone (checked every 2 s)");
                    self.status.conflict = Some(mac);
                    self.apply_health().await?;
                }
            }
            (None, Some(mac)) => {
                tracing::info!(mac = %arp::mac_string(mac), "the other device no longer answers for the VIP; back in service");
                self.status.conflict = None;
                self.apply_health().await?;
            }
            (None, None) => {
                if why == Probe::LinkUp {
                    self.reannounce();
                }
            }
        }
        Ok(())
    }

    /// A link notification for this interface: running again after it was not starts a probe.
    fn link_event(&mut self, running: bool) {
        let was = self.link_running.replace(running);
        if running && was == Some(false) {
            self.status.link_ups += 1;
            tracing::info!(interface = %self.cfg.interface, "link up");
            if !self.start_probe(Probe::LinkUp) {
                self.reannounce();
            }
        } else if !running && was != Some(false) {
            tracing::warn!(interface = %self.cfg.interface, "link down");
        }
    }

    async fn apply(&mut self, input: Input<'_>) -> Result<(), VipError> {
        let now = self.now();
        self.apply_at(input, now).await
    }

    /// A datagram counts from when the kernel received it.
    async fn datagram(&mut self, dg: &[u8], age: Duration) -> Result<(), VipError> {
        let at = vrrp::Instant::from_epoch(self.timer.elapsed().saturating_sub(age));
        self.apply_at(Input::Datagram(dg), at).await
    }

    async fn apply_at(&mut self, input: Input<'_>, now: vrrp::Instant) -> Result<(), VipError> {
        let actions = self.router.handle(input, now);
        for a in actions {
            match a {
                Action::SendAdvert { dst, payload, .. } => {
                    if let Err(e) = self.sock.send(dst, &payload) {
                        tracing::warn!(%dst, error = %e, "advert not sent");
                    } else {
                        self.status.adverts_sent += 1;
                    }
                }
                Action::AddVip(addr) => {
                    self.add_vip(addr).await?;
                    self.status.holds_vip = true;
                    tracing::info!(%addr, "VIP added");
                }
                Action::RemoveVip(addr) => {
                    if self.defer_remove {
                        continue;
                    }
                    self.nl.remove(self.link.index, addr).await?;
                    self.status.holds_vip = false;
                    tracing::info!(%addr, "VIP removed");
                }
                Action::SendGratuitousArp(addr) => {
                    self.garp(addr);
                    self.schedule_garp_repeats();
                }
                Action::StateChanged { from, to } => {
                    self.status.transitions += 1;
                    if to == State::Master {
                        // Claimed already (failover stays immediate); a device outside the
                        // group found on the VIP sends this node to Fault.
                        let _ = self.start_probe(Probe::Claim);
                    }
                    tracing::info!(
                        ?from,
                        ?to,
                        priority = self.router.effective_priority(),
                        "VRRP state"
                    );
                }
            }
        }
        self.status.state = self.router.state();
        self.status.effective_priority = self.router.effective_priority();
        self.status.master = self.router.last_master();
        self.status.counters = *self.router.counters();
        Ok(())
    }

    fn garp(&mut self, addr: Ipv4Addr) {
        match garp::send(self.link.index, self.link.mac, addr) {
            Ok(()) => self.status.gratuitous_arps += 1,
            Err(e) => tracing::warn!(%addr, error = %e, "gratuitous ARP not sent"),
        }
    }

    /// Sends the repeats that are due, while this node still holds the VIP.
    fn garp_repeat(&mut self) {
        let now = Instant::now();
        self.garp_repeats.retain(|t| *t > now);
        if self.status.holds_vip && self.router.state() == State::Master {
            for addr in self.cfg.router.virtual_addresses.clone() {
                self.garp(addr);
            }
        } else {
            self.garp_repeats.clear();
        }
    }

    /// Adds the VIP, or renews its lifetime when it is already there.
    async fn add_vip(&self, addr: Ipv4Addr) -> Result<(), VipError> {
        self.nl
            .add(
                self.link.index,
                addr,
                self.cfg.prefix,
                Some(self.cfg.vip_lifetime),
            )
            .await
    }

    async fn refresh_vip(&mut self) -> Result<(), VipError> {
        for addr in self.cfg.router.virtual_addresses.clone() {
            self.add_vip(addr).await?;
        }
        Ok(())
    }
}

/// Runs until `shutdown` is cancelled, then hands over: priority 0, keep the VIP until another
/// router's advert is heard (or `handover_timeout`), then remove it.
pub async fn run(
    cfg: SpeakerConfig,
    mut health: watch::Receiver<vrrp::Health>,
    shutdown: CancellationToken,
    status_tx: watch::Sender<Status>,
) -> Result<(), VipError> {
    let nl = Netlink::connect()?;
    let link = nl.link(&cfg.interface).await?;
    for addr in &cfg.router.virtual_addresses {
        if nl.remove(link.index, *addr).await? {
            tracing::warn!(%addr, "removed a stale VIP left from an earlier run");
        }
    }
    match crate::arp_announce(&cfg.interface) {
        Ok(Some(old)) => {
            tracing::info!(interface = %cfg.interface, old, "set arp_announce=2 so ARP never uses the VIP as its source (a stale holder would pull clients back)")
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(interface = %cfg.interface, error = %e, "cannot set arp_announce=2; set net.ipv4.conf.<if>.arp_announce=2 by hand")
        }
    }
    let multicast = cfg.router.unicast_peers.is_empty();
    let sock = VrrpSocket::open(
        &cfg.interface,
        link.index,
        cfg.router.primary_address,
        multicast,
    )?;
    let router = Router::new(cfg.router.clone()).map_err(VipError::Config)?;
    let refresh_every = (cfg.vip_lifetime / 4).max(Duration::from_millis(100));
    let timer = DeadlineTimer::new().map_err(VipError::Thread)?;
    let mut sp = Speaker {
        cfg,
        nl,
        link,
        sock,
        router,
        timer,
        status: Status::default(),
        defer_remove: false,
        garp_repeats: Vec::new(),
        health_in: *health.borrow_and_update(),
        probes: JoinSet::new(),
        link_running: None,
    };
    // Link notifications: a link that comes back up is probed and the VIP re-announced.
    let mut link_events = match rtnetlink::new_multicast_connection(&[
        rtnetlink::MulticastGroup::Link,
    ]) {
        Ok((conn, _handle, events)) => {
            tokio::spawn(conn);
            Some(events)
        }
        Err(e) => {
            tracing::warn!(error = %e, "no link notifications; the VIP is not re-announced when the link comes back up");
            None
        }
    };
    sp.apply_health().await?;
    // Before the first claim: is another device on the segment already using the VIP?
    let _ = sp.start_probe(Probe::Claim);
    if let Some(Ok((why, heard))) = sp.probes.join_next().await {
        sp.probed(why, heard).await?;
    }
    sp.apply(Input::Startup).await?;
    status_tx.send_replace(sp.status.clone());
    let mut buf = vec![0u8; 2048];
    let mut refresh = tokio::time::interval(refresh_every);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut recheck = tokio::time::interval(RECHECK_EVERY);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let index = sp.link.index;
    loop {
        let deadline = sp.router.next_deadline().map(|d| d.since_epoch());
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            r = sp.timer.sleep_until(deadline.unwrap_or_default()), if deadline.is_some() => {
                r.map_err(VipError::Thread)?;
                sp.timeout(&mut buf).await?;
            }
            r = sp.sock.recv(&mut buf) => {
                let r = r.map_err(|e| VipError::Socket(sp.cfg.interface.clone(), e))?;
                let (dg, age) = (r.datagram.to_vec(), r.age);
                sp.datagram(&dg, age).await?;
            }
            changed = health.changed() => {
                if changed.is_err() {
                    break;
                }
                sp.health_in = *health.borrow_and_update();
                sp.apply_health().await?;
            }
            Some(done) = sp.probes.join_next(), if !sp.probes.is_empty() => {
                if let Ok((why, heard)) = done {
                    sp.probed(why, heard).await?;
                }
            }
            _ = recheck.tick(), if sp.status.conflict.is_some() && sp.probes.is_empty() => {
                let _ = sp.start_probe(Probe::Recheck);
            }
            Some((msg, _)) = async { match link_events.as_mut() { Some(e) => e.next().await, None => std::future::pending().await } } => {
                if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) = msg.payload
                    && l.header.index == index
                {
                    sp.link_event(l.header.flags.contains(LinkFlags::Running));
                }
            }
            _ = refresh.tick(), if sp.status.holds_vip => {
                sp.refresh_vip().await?;
            }
            _ = async { tokio::time::sleep_until(*sp.garp_repeats.iter().min().unwrap_or(&Instant::now())).await }, if !sp.garp_repeats.is_empty() => {
                sp.garp_repeat();
            }
        }
        status_tx.send_replace(sp.status.clone());
    }
    handover(&mut sp, &mut buf).await?;
    status_tx.send_replace(sp.status.clone());
    Ok(())
}

/// Make-before-break: the priority-0 advert goes out now; the VIP stays until a new master
/// speaks (it has then added the VIP and sent gratuitous ARP), so no client finds nobody home.
async fn handover(sp: &mut Speaker, buf: &mut [u8]) -> Result<(), VipError> {
    let held = sp.status.holds_vip;
    sp.defer_remove = held;
    sp.apply(Input::Shutdown).await?;
    sp.defer_remove = false;
    if !held {
        return Ok(());
    }
    let me = sp.cfg.router.primary_address;
    let vrid = sp.cfg.router.vrid;
    let deadline = Instant::now() + sp.cfg.handover_timeout;
    let heard = loop {
        let r = tokio::time::timeout_at(deadline, sp.sock.recv(buf)).await;
        let Ok(r) = r else { break false };
        let r = r.map_err(|e| VipError::Socket(sp.cfg.interface.clone(), e))?;
        if let Ok((ip, d)) = vrrp::decode_ipv4(r.datagram)
            && ip.src != me
            && d.advert.vrid == vrid
            && d.advert.priority > 0
        {
            tracing::info!(new_master = %ip.src, "new master heard; releasing the VIP");
            break true;
        }
    };
    if heard {
        // The new master's first advert goes out before it adds the VIP and sends gratuitous
        // ARP (so a lower backup hears it in time); clients move with that ARP. Released at
        // the advert, the VIP had no holder for that moment and SYNs were dropped.
        tokio::time::sleep(RELEASE_AFTER_HEARD).await;
    } else {
        tracing::warn!("no new master within the handover timeout; releasing the VIP anyway");
    }
    for addr in sp.cfg.router.virtual_addresses.clone() {
        sp.nl.remove(sp.link.index, addr).await?;
    }
    sp.status.holds_vip = false;
    Ok(())
}
