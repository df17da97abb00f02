//! Backend pool: balancing and the health state machine.
//!
//! The decisions are pure functions over plain values ([`HealthState::observe`],
//! [`HealthState::eject`], [`choose`]) and are unit-tested without sockets or clocks. [`Pool`]
//! wraps them for concurrent use: the data path reads one atomic per backend (its `up`
//! gauge and `active` gauge) and never takes a lock; health transitions are serialized by a
//! mutex and published at once on a [`tokio::sync::watch`] channel ([`HealthSummary`]).
//!
//! Health semantics (pingora / haproxy style):
//! - a backend starts *up but unconfirmed*, so the proxy serves at once; the first active
//!   check result decides (one failure takes an unconfirmed backend down, one success
//!   confirms it);
//! - a confirmed up backend goes down after `fall` consecutive failed checks;
//! - a down backend comes back after `rise` consecutive successful checks;
//! - passive ejection (a refused or timed-out connect on the data path) takes it down at
//!   once and resets its success streak, so it re-enters only through `rise` checks.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

use crate::metrics::Metrics;

/// Balancing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// Each new connection goes to the next healthy backend in turn.
    #[default]
    RoundRobin,
    /// Each new connection goes to the healthy backend with the fewest open connections
    /// (ties broken in round-robin order).
    LeastConnections,
}

impl std::str::FromStr for Balance {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "roundrobin" | "round-robin" | "round_robin" => Ok(Balance::RoundRobin),
            "leastconn" | "least-connections" | "least_connections" => {
                Ok(Balance::LeastConnections)
            }
            other => Err(format!(
                "unknown balance {other:?} (expected round-robin or least-connections)"
            )),
        }
    }
}

/// A change of a backend's in-rotation state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The backend entered rotation.
    Up,
    /// The backend left rotation.
    Down,
}

/// Health state of one backend: pure, no clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthState {
    up: bool,
    confirmed: bool,
    ok_streak: u32,
    fail_streak: u32,
}

impl Default for HealthState {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthState {
    /// Initial state: up (in rotation) but not yet confirmed by a check.
    pub const fn new() -> Self {
        HealthState {
            up: true,
            confirmed: false,
            ok_streak: 0,
            fail_streak: 0,
        }
    }

    /// In rotation.
    pub const fn is_up(&self) -> bool {
        self.up
    }

    /// Up and confirmed by at least one successful active check since it last came up.
    pub const fn is_ready(&self) -> bool {
        self.up && self.confirmed
    }

    /// Feeds one active check result. `fall` and `rise` are clamped to at least 1.
    pub fn observe(&mut self, ok: bool, fall: u32, rise: u32) -> Option<Transition> {
        let (fall, rise) = (fall.max(1), rise.max(1));
        if ok {
            self.fail_streak = 0;
            self.ok_streak = self.ok_streak.saturating_add(1);
            if self.up {
                self.confirmed = true;
                None
            } else if self.ok_streak >= rise {
                self.up = true;
                self.confirmed = true;
                Some(Transition::Up)
            } else {
                None
            }
        } else {
            self.ok_streak = 0;
            self.fail_streak = self.fail_streak.saturating_add(1);
            if self.up && (!self.confirmed || self.fail_streak >= fall) {
                self.up = false;
                self.confirmed = false;
                Some(Transition::Down)
            } else {
                None
            }
        }
    }

    /// Passive ejection: out of rotation now; back only after `rise` successful checks.
    pub fn eject(&mut self) -> Option<Transition> {
        self.ok_streak = 0;
        self.fail_streak = self.fail_streak.saturating_add(1);
        if self.up {
            self.up = false;
            self.confirmed = false;
            Some(Transition::Down)
        } else {
            None
        }
    }
}

/// Picks a backend index among `n`: the candidates are those for which `healthy(i)` holds
/// and `i` is not in `skip`. Round robin takes the first candidate at or after `start`
/// (mod `n`); least-connections takes the candidate with the smallest `active(i)`, ties going
/// to the first one at or after `start`. Pure: no atomics, no clock.
pub fn choose(
    balance: Balance,
    n: usize,
    start: usize,
    skip: &[usize],
    healthy: impl Fn(usize) -> bool,
    active: impl Fn(usize) -> u64,
) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let mut candidates = (0..n)
        .map(|k| (start + k) % n)
        .filter(|i| healthy(*i) && !skip.contains(i));
    match balance {
        Balance::RoundRobin => candidates.next(),
        Balance::LeastConnections => {
            let mut best: Option<(usize, u64)> = None;
            for i in candidates {
                let a = active(i);
                if best.is_none_or(|(_, b)| a < b) {
                    best = Some((i, a));
                }
            }
            best.map(|(i, _)| i)
        }
    }
}

/// Health summary published on every transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSummary {
    /// Number of backends.
    pub total: usize,
    /// Backends in rotation (including up-but-unconfirmed ones at startup).
    pub healthy: usize,
    /// Whether the local backend (see [`Pool::with_local_ip`]) is up *and* confirmed by a
    /// successful active check; `None` when no backend is local.
    pub local_ready: Option<bool>,
}

/// The shared backend set. Wrap in an `Arc`; all methods take `&self`.
#[derive(Debug)]
pub struct Pool {
    addrs: Vec<SocketAddr>,
    balance: Balance,
    cursor: AtomicUsize,
    states: Mutex<Vec<HealthState>>,
    local: Option<usize>,
    summary: watch::Sender<HealthSummary>,
    /// Per backend, how many times it left rotation: open sessions to it watch this to close
    /// themselves (haproxy's `on-marked-down shutdown-sessions`).
    downs: Vec<watch::Sender<u64>>,
    metrics: Metrics,
}

/// Decrements a backend's active-connection gauge when dropped.
#[derive(Debug)]
pub struct ActiveGuard<'a> {
    pool: &'a Pool,
    idx: usize,
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.pool.metrics.backends[self.idx].active.dec();
    }
}

impl Pool {
    /// A pool over `addrs` (all initially up but unconfirmed), with no local backend.
    pub fn new(addrs: Vec<SocketAddr>, balance: Balance) -> Self {
        let metrics = Metrics::new(&addrs);
        for b in &metrics.backends {
            b.up.set(1);
        }
        metrics.healthy.set(addrs.len() as i64);
        let states = vec![HealthState::new(); addrs.len()];
        let downs = (0..addrs.len()).map(|_| watch::Sender::new(0)).collect();
        let summary = HealthSummary {
            total: addrs.len(),
            healthy: addrs.len(),
            local_ready: None,
        };
        Pool {
            addrs,
            balance,
            cursor: AtomicUsize::new(0),
            states: Mutex::new(states),
            local: None,
            summary: watch::Sender::new(summary),
            downs,
            metrics,
        }
    }

    /// Marks the first backend whose IP is `ip` (this node's address) as the local one,
    /// reported in [`HealthSummary::local_ready`].
    pub fn with_local_ip(mut self, ip: IpAddr) -> Self {
        self.local = self.addrs.iter().position(|a| a.ip() == ip);
        let local_ready = self.local.map(|_| false);
        self.summary.send_modify(|s| s.local_ready = local_ready);
        self
    }

    /// Registers more metrics (the VRRP side's) in the pool's registry, so one scrape
    /// renders both.
    pub fn with_collector(mut self, c: Box<dyn prometheus_client::collector::Collector>) -> Self {
        self.metrics.register_collector(c);
        self
    }

    /// Backend addresses, in index order.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The balancing algorithm.
    pub fn balance(&self) -> Balance {
        self.balance
    }

    /// Metrics (counters are updated by the proxy and health checks).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Whether backend `idx` is in rotation.
    pub fn is_up(&self, idx: usize) -> bool {
        self.metrics.backends[idx].up.get() == 1
    }

    /// Open proxied connections to backend `idx`.
    pub fn active(&self, idx: usize) -> u64 {
        self.metrics.backends[idx].active.get().max(0) as u64
    }

    /// Backends in rotation now.
    pub fn healthy_count(&self) -> usize {
        (0..self.addrs.len()).filter(|i| self.is_up(*i)).count()
    }

    /// Current summary.
    pub fn summary(&self) -> HealthSummary {
        *self.summary.borrow()
    }

    /// A receiver that is notified at once on every change of the summary.
    pub fn subscribe(&self) -> watch::Receiver<HealthSummary> {
        self.summary.subscribe()
    }

    /// Notified each time backend `idx` leaves rotation from now on (marked down by its
    /// checks or ejected after a failed connect).
    pub fn down_events(&self, idx: usize) -> watch::Receiver<u64> {
        self.downs[idx].subscribe()
    }

    /// Picks a healthy backend not in `skip` (lock-free: atomics only).
    pub fn pick(&self, skip: &[usize]) -> Option<usize> {
        let n = self.addrs.len();
        let start = if n == 0 {
            0
        } else {
            self.cursor.fetch_add(1, Ordering::Relaxed) % n
        };
        choose(
            self.balance,
            n,
            start,
            skip,
            |i| self.is_up(i),
            |i| self.active(i),
        )
    }

    /// Counts a new proxied connection to `idx`; the guard undoes the active count.
    pub fn acquire(&self, idx: usize) -> ActiveGuard<'_> {
        let m = &self.metrics.backends[idx];
        m.active.inc();
        m.connections.inc();
        ActiveGuard { pool: self, idx }
    }

    /// Feeds an active check result for backend `idx`.
    pub fn report_check(&self, idx: usize, ok: bool, fall: u32, rise: u32) -> Option<Transition> {
        let m = &self.metrics.backends[idx];
        if ok {
            m.checks_ok.inc()
        } else {
            m.checks_failed.inc()
        };
        self.update(idx, |s| s.observe(ok, fall, rise))
    }

    /// Passive ejection after a failed connect on the data path.
    pub fn eject(&self, idx: usize) -> Option<Transition> {
        self.metrics.backends[idx].connect_errors.inc();
        self.update(idx, HealthState::eject)
    }

    fn update(
        &self,
        idx: usize,
        f: impl FnOnce(&mut HealthState) -> Option<Transition>,
    ) -> Option<Transition> {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let t = f(&mut states[idx]);
        let m = &self.metrics.backends[idx];
        match t {
            Some(Transition::Up) => {
                m.up.set(1);
                tracing::info!(backend = %self.addrs[idx], "backend up");
            }
            Some(Transition::Down) => {
                m.up.set(0);
                m.ejections.inc();
                self.downs[idx].send_modify(|n| *n += 1);
                tracing::warn!(backend = %self.addrs[idx], "backend down");
            }
            None => {}
        }
        let healthy = states.iter().filter(|s| s.is_up()).count();
        self.metrics.healthy.set(healthy as i64);
        let next = HealthSummary {
            total: states.len(),
            healthy,
            local_ready: self.local.map(|l| states[l].is_ready()),
        };
        // Sent while holding the lock so concurrent updates publish in order.
        self.summary.send_if_modified(|s| {
            let changed = *s != next;
            *s = next;
            changed
        });
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_up_unconfirmed_first_failure_takes_down() {
        let mut s = HealthState::new();
        assert!(s.is_up() && !s.is_ready());
        assert_eq!(s.observe(false, 3, 2), Some(Transition::Down));
        assert!(!s.is_up());
    }

    #[test]
    fn first_success_confirms() {
        let mut s = HealthState::new();
        assert_eq!(s.observe(true, 3, 2), None);
        assert!(s.is_ready());
        // Confirmed: now needs `fall` failures.
        assert_eq!(s.observe(false, 3, 2), None);
        assert_eq!(s.observe(false, 3, 2), None);
        assert!(s.is_up());
        assert_eq!(s.observe(false, 3, 2), Some(Transition::Down));
    }

    #[test]
    fn fall_needs_consecutive_failures() {
        let mut s = HealthState::new();
        s.observe(true, 2, 2);
        assert_eq!(s.observe(false, 2, 2), None);
        assert_eq!(s.observe(true, 2, 2), None); // streak broken
        assert_eq!(s.observe(false, 2, 2), None);
        assert_eq!(s.observe(false, 2, 2), Some(Transition::Down));
    }

    #[test]
    fn rise_needs_consecutive_successes() {
        let mut s = HealthState::new();
        s.observe(false, 1, 3);
        assert_eq!(s.observe(true, 1, 3), None);
        assert_eq!(s.observe(true, 1, 3), None);
        assert_eq!(s.observe(false, 1, 3), None); // streak broken
        assert_eq!(s.observe(true, 1, 3), None);
        assert_eq!(s.observe(true, 1, 3), None);
        assert_eq!(s.observe(true, 1, 3), Some(Transition::Up));
        assert!(s.is_ready());
    }

    #[test]
    fn eject_at_once_and_resets_rise() {
        let mut s = HealthState::new();
        s.observe(true, 3, 2);
        assert_eq!(s.eject(), Some(Transition::Down));
        assert_eq!(s.eject(), None);
        assert_eq!(s.observe(true, 3, 2), None);
        assert_eq!(s.eject(), None); // a passive failure while rising restarts the count
        assert_eq!(s.observe(true, 3, 2), None);
        assert_eq!(s.observe(true, 3, 2), Some(Transition::Up));
    }

    #[test]
    fn zero_thresholds_clamped() {
        let mut s = HealthState::new();
        s.observe(true, 0, 0);
        assert_eq!(s.observe(false, 0, 0), Some(Transition::Down));
        assert_eq!(s.observe(true, 0, 0), Some(Transition::Up));
    }

    #[test]
    fn round_robin_order_and_skip() {
        let all = |_| true;
        let zero = |_| 0;
        let picks: Vec<_> = (0..6)
            .map(|c| choose(Balance::RoundRobin, 3, c % 3, &[], all, zero).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        assert_eq!(choose(Balance::RoundRobin, 3, 0, &[0], all, zero), Some(1));
        assert_eq!(choose(Balance::RoundRobin, 3, 2, &[2], all, zero), Some(0));
        assert_eq!(
            choose(Balance::RoundRobin, 3, 0, &[0, 1, 2], all, zero),
            None
        );
        assert_eq!(choose(Balance::RoundRobin, 0, 0, &[], all, zero), None);
    }

    #[test]
    fn round_robin_skips_down() {
        let h = |i| i != 1;
        let picks: Vec<_> = (0..3)
            .map(|c| choose(Balance::RoundRobin, 3, c, &[], h, |_| 0).unwrap())
            .collect();
        assert_eq!(picks, [0, 2, 2]);
        assert_eq!(
            choose(Balance::RoundRobin, 3, 0, &[], |_| false, |_| 0),
            None
        );
    }

    #[test]
    fn least_connections_picks_least_loaded() {
        let load = [5u64, 1, 3];
        let lc = |start, skip: &[usize], h: &dyn Fn(usize) -> bool| {
            choose(Balance::LeastConnections, 3, start, skip, h, |i| load[i])
        };
        assert_eq!(lc(0, &[], &|_| true), Some(1));
        assert_eq!(lc(2, &[], &|_| true), Some(1));
        assert_eq!(lc(0, &[1], &|_| true), Some(2));
        assert_eq!(lc(0, &[], &|i| i != 1), Some(2));
        // Ties rotate with start.
        let even = |_| 2u64;
        assert_eq!(
            choose(Balance::LeastConnections, 3, 1, &[], |_| true, even),
            Some(1)
        );
        assert_eq!(
            choose(Balance::LeastConnections, 3, 2, &[], |_| true, even),
            Some(2)
        );
    }

    #[test]
    fn pool_summary_watch_and_local() {
        let addrs: Vec<SocketAddr> = vec![
            "198.18.0.1:6443".parse().unwrap(),
            "198.18.0.2:6443".parse().unwrap(),
        ];
        let pool =
            Pool::new(addrs, Balance::RoundRobin).with_local_ip("198.18.0.2".parse().unwrap());
        let mut rx = pool.subscribe();
        assert_eq!(
            *rx.borrow_and_update(),
            HealthSummary {
                total: 2,
                healthy: 2,
                local_ready: Some(false)
            }
        );
        pool.report_check(1, true, 2, 2);
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().local_ready, Some(true));
        pool.eject(0);
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().healthy, 1);
        assert_eq!(pool.pick(&[]), Some(1));
        assert_eq!(pool.pick(&[1]), None);
        pool.eject(1);
        assert_eq!(
            *rx.borrow_and_update(),
            HealthSummary {
                total: 2,
                healthy: 0,
                local_ready: Some(false)
            }
        );
        assert_eq!(pool.metrics().backends[0].ejections.get(), 1);
        assert_eq!(pool.metrics().backends[0].connect_errors.get(), 1);
        assert_eq!(pool.metrics().healthy.get(), 0);
        // No change, no notification.
        pool.report_check(0, false, 2, 2);
        assert!(!rx.has_changed().unwrap());
    }

    #[test]
    fn active_guard_counts() {
        let pool = Pool::new(
            vec!["198.18.0.1:1".parse().unwrap()],
            Balance::LeastConnections,
        );
        {
            let _a = pool.acquire(0);
            let _b = pool.acquire(0);
            assert_eq!(pool.active(0), 2);
        }
        assert_eq!(pool.active(0), 0);
        assert_eq!(pool.metrics().backends[0].connections.get(), 2);
    }
}
