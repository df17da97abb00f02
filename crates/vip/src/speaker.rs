//! The VRRP speaker: owns one pure `vrrp::Router` and carries out what it asks for with the
//! raw socket, netlink and gratuitous ARP. Time comes from tokio's monotonic clock, mapped onto
//! the router's epoch-relative `Instant`.

use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vrrp::{Action, Input, Router, State};

use crate::address::{Link, Netlink};
use crate::socket::VrrpSocket;
use crate::{VipError, garp};

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
        }
    }
}

struct Speaker {
    cfg: SpeakerConfig,
    nl: Netlink,
    link: Link,
    sock: VrrpSocket,
    router: Router,
    start: Instant,
    status: Status,
    /// Remove the VIP only after a new master is heard (make-before-break).
    defer_remove: bool,
    /// Repeats of the takeover gratuitous ARP still to send.
    garp_repeats: Vec<Instant>,
}

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

impl Speaker {
    fn now(&self) -> vrrp::Instant {
        vrrp::Instant::from_epoch(self.start.elapsed())
    }

    async fn apply(&mut self, input: Input<'_>) -> Result<(), VipError> {
        let now = self.now();
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
                    let now = Instant::now();
                    self.garp_repeats = GARP_REPEATS.iter().map(|d| now + *d).collect();
                }
                Action::StateChanged { from, to } => {
                    self.status.transitions += 1;
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
    let mut sp = Speaker {
        cfg,
        nl,
        link,
        sock,
        router,
        start: Instant::now(),
        status: Status::default(),
        defer_remove: false,
        garp_repeats: Vec::new(),
    };
    let h = *health.borrow_and_update();
    sp.apply(Input::Health(h)).await?;
    sp.apply(Input::Startup).await?;
    status_tx.send_replace(sp.status.clone());
    let mut buf = vec![0u8; 2048];
    let mut refresh = tokio::time::interval(refresh_every);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let deadline = sp
            .router
            .next_deadline()
            .map(|d| sp.start + d.since_epoch());
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)).await }, if deadline.is_some() => {
                sp.apply(Input::Timeout).await?;
            }
            r = sp.sock.recv(&mut buf) => {
                let dg = r.map_err(|e| VipError::Socket(sp.cfg.interface.clone(), e))?;
                let dg = dg.to_vec();
                sp.apply(Input::Datagram(&dg)).await?;
            }
            changed = health.changed() => {
                if changed.is_err() {
                    break;
                }
                let h = *health.borrow_and_update();
                sp.apply(Input::Health(h)).await?;
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
        let dg = r.map_err(|e| VipError::Socket(sp.cfg.interface.clone(), e))?;
        if let Ok((ip, d)) = vrrp::decode_ipv4(dg)
            && ip.src != me
            && d.advert.vrid == vrid
            && d.advert.priority > 0
        {
            tracing::info!(new_master = %ip.src, "new master heard; releasing the VIP");
            break true;
        }
    };
    if !heard {
        tracing::warn!("no new master within the handover timeout; releasing the VIP anyway");
    }
    for addr in sp.cfg.router.virtual_addresses.clone() {
        sp.nl.remove(sp.link.index, addr).await?;
    }
    sp.status.holds_vip = false;
    Ok(())
}
