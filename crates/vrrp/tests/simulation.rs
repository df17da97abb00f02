//! Deterministic simulation: N routers on a virtual network with loss, delay and partitions,
//! driven by a virtual clock. Packets travel as encoded bytes, so the codec is exercised on
//! every hop.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::Ipv4Addr;
use std::time::Duration;

use proptest::prelude::*;
use vrrp::timers::{master_down_interval, skew_time};
use vrrp::{Action, Config, Health, Input, Instant, IpContext, Router, State, Version};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

fn addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 11 + i as u8)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn at(d: Duration) -> Instant {
    Instant::from_epoch(d)
}

/// splitmix64: small, deterministic, good enough for loss and jitter.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Crash(usize),
    Restart(usize),
    Shutdown(usize),
    /// Bit i set: node i is on side 1; packets cross only between nodes on the same side.
    Partition(u8),
    Heal,
    Weight(usize, i32),
    /// Loss in per-mille.
    Loss(u32),
}

enum Event {
    Deliver {
        to: usize,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload: Vec<u8>,
    },
    Op(Op),
}

struct Node {
    config: Config,
    router: Router,
    alive: bool,
    holds_vip: bool,
    last_advert_sent: Option<Instant>,
    /// The current deadline and how late this node's timer wakes for it.
    wake: Option<(Instant, Duration)>,
}

struct Net {
    now: Instant,
    nodes: Vec<Node>,
    queue: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    events: Vec<Option<Event>>,
    seq: u64,
    rng: Rng,
    loss_permille: u32,
    delay_min: Duration,
    delay_max: Duration,
    partition: u8,
    /// A timer wakes up to this late (scheduling, timer resolution); packets count from their
    /// arrival, as the daemon's kernel receive timestamps make them.
    timer_jitter: Duration,
    /// (time, node, new state) for every transition.
    transitions: Vec<(Instant, usize, State)>,
    /// (time, number of live Masters, number of live VIP holders) after every event.
    samples: Vec<(Instant, usize, usize)>,
}

impl Net {
    fn new(configs: Vec<Config>, seed: u64, delay_min: Duration, delay_max: Duration) -> Net {
        let nodes = configs
            .into_iter()
            .map(|config| Node {
                router: Router::new(config.clone()).expect("valid config"),
                config,
                alive: false,
                holds_vip: false,
                last_advert_sent: None,
                wake: None,
            })
            .collect();
        Net {
            now: Instant::ZERO,
            nodes,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            seq: 0,
            rng: Rng(seed),
            loss_permille: 0,
            delay_min,
            delay_max,
            partition: 0,
            timer_jitter: Duration::ZERO,
            transitions: Vec::new(),
            samples: Vec::new(),
        }
    }

    /// Start every node at `now`.
    fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
    }

    fn start(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.router = Router::new(n.config.clone()).expect("valid config");
        n.alive = true;
        n.holds_vip = false;
        let actions = n.router.handle(Input::Startup, self.now);
        self.apply(i, actions);
    }

    fn schedule(&mut self, t: Instant, e: Event) {
        self.events.push(Some(e));
        self.seq += 1;
        self.queue
            .push(Reverse((t, self.seq, self.events.len() - 1)));
    }

    fn op_at(&mut self, t: Instant, op: Op) {
        self.schedule(t, Event::Op(op));
    }

    fn same_side(&self, a: usize, b: usize) -> bool {
        (self.partition >> a) & 1 == (self.partition >> b) & 1
    }

    fn apply(&mut self, from: usize, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::SendAdvert { dst, payload, .. } => {
                    self.nodes[from].last_advert_sent = Some(self.now);
                    for to in 0..self.nodes.len() {
                        if to == from {
                            continue;
                        }
                        let addressed = dst == vrrp::packet::VRRP_MULTICAST || dst == addr(to);
                        if !addressed || !self.same_side(from, to) {
                            continue;
                        }
                        if self.rng.below(1000) < u64::from(self.loss_permille) {
                            continue;
                        }
                        let span = (self.delay_max - self.delay_min).as_nanos() as u64;
                        let delay = self.delay_min + Duration::from_nanos(self.rng.below(span + 1));
                        let src = addr(from);
                        self.schedule(
                            self.now + delay,
                            Event::Deliver {
                                to,
                                src,
                                dst,
                                payload: payload.clone(),
                            },
                        );
                    }
                }
                Action::AddVip(_) => self.nodes[from].holds_vip = true,
                Action::RemoveVip(_) => self.nodes[from].holds_vip = false,
                Action::SendGratuitousArp(_) => {}
                Action::StateChanged { to, .. } => self.transitions.push((self.now, from, to)),
            }
        }
    }

    fn do_op(&mut self, op: Op) {
        match op {
            Op::Crash(i) => self.nodes[i].alive = false,
            Op::Restart(i) => {
                if !self.nodes[i].alive {
                    self.start(i);
                }
            }
            Op::Shutdown(i) => {
                if self.nodes[i].alive {
                    let a = self.nodes[i].router.handle(Input::Shutdown, self.now);
                    self.apply(i, a);
                    self.nodes[i].alive = false;
                }
            }
            Op::Partition(mask) => self.partition = mask,
            Op::Heal => self.partition = 0,
            Op::Weight(i, weight) => {
                if self.nodes[i].alive {
                    let h = Health {
                        weight,
                        fault: false,
                        cannot_serve: false,
                    };
                    let a = self.nodes[i].router.handle(Input::Health(h), self.now);
                    self.apply(i, a);
                }
            }
            Op::Loss(p) => self.loss_permille = p,
        }
    }

    /// The next timer to wake: a node's deadline plus its wake-up lateness for that deadline.
    fn next_timer(&mut self) -> Option<(Instant, usize)> {
        let mut next: Option<(Instant, usize)> = None;
        for i in 0..self.nodes.len() {
            if !self.nodes[i].alive {
                continue;
            }
            let Some(d) = self.nodes[i].router.next_deadline() else {
                continue;
            };
            let late = match self.nodes[i].wake {
                Some((deadline, late)) if deadline == d => late,
                _ => {
                    let span = self.timer_jitter.as_nanos() as u64;
                    let late = Duration::from_nanos(self.rng.below(span + 1));
                    self.nodes[i].wake = Some((d, late));
                    late
                }
            };
            let wake = (d + late, i);
            if next.is_none_or(|n| wake < n) {
                next = Some(wake);
            }
        }
        next
    }

    fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive && self.nodes[i].router.state() == State::Master)
            .collect()
    }

    fn vip_holders(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive && self.nodes[i].holds_vip)
            .collect()
    }

    /// Process every event up to and including `end`, then set the clock to `end`.
    fn run_until(&mut self, end: Instant) {
        for step in 0..=1_000_000u32 {
            assert!(
                step < 1_000_000,
                "event storm: a million events without reaching {end:?}"
            );
            let next_event = self.queue.peek().map(|Reverse((t, _, _))| *t);
            let next_timer = self.next_timer();
            let t = match (next_event, next_timer) {
                (None, None) => break,
                (Some(e), None) => e,
                (None, Some((t, _))) => t,
                (Some(e), Some((t, _))) => e.min(t),
            };
            if t > end {
                break;
            }
            assert!(t >= self.now, "time went backwards");
            self.now = t;
            if next_event == Some(t) {
                let Some(Reverse((_, _, idx))) = self.queue.pop() else {
                    unreachable!()
                };
                match self.events[idx].take() {
                    Some(Event::Deliver {
                        to,
                        src,
                        dst,
                        payload,
                    }) if self.nodes[to].alive => {
                        let ip = IpContext { src, dst, ttl: 255 };
                        let a = self.nodes[to].router.handle(
                            Input::Packet {
                                ip,
                                payload: &payload,
                            },
                            t,
                        );
                        self.apply(to, a);
                    }
                    Some(Event::Op(op)) => self.do_op(op),
                    Some(Event::Deliver { .. }) | None => {}
                }
            } else if let Some((_, i)) = next_timer {
                let a = self.nodes[i].router.handle(Input::Timeout, t);
                self.apply(i, a);
            }
            self.samples
                .push((t, self.masters().len(), self.vip_holders().len()));
        }
        self.now = end;
    }

    /// First time at or after `from` when exactly one Master (and one VIP holder) exists,
    /// and it stays so until the end of the recorded samples.
    fn settled_since(&self, from: Instant) -> Option<Instant> {
        let mut since = None;
        for &(t, m, v) in &self.samples {
            if t < from {
                continue;
            }
            if m == 1 && v == 1 {
                since.get_or_insert(t);
            } else {
                since = None;
            }
        }
        since
    }

    fn became_master_after(&self, node: usize, after: Instant) -> Option<Instant> {
        self.transitions
            .iter()
            .find(|&&(t, i, s)| i == node && s == State::Master && t >= after)
            .map(|&(t, _, _)| t)
    }

    fn assert_no_drops(&self) {
        for (i, n) in self.nodes.iter().enumerate() {
            assert_eq!(
                n.router.counters().dropped(),
                0,
                "node {i} dropped packets: {:?}",
                n.router.counters()
            );
        }
    }
}

fn configs(priorities: &[u8], interval_cs: u16, unicast: bool, version: Version) -> Vec<Config> {
    let n = priorities.len();
    priorities
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let mut c = Config::new(51, p, addr(i), vec![VIP]);
            c.advert_interval_cs = interval_cs;
            c.version = version;
            if unicast {
                c.unicast_peers = (0..n).filter(|&j| j != i).map(addr).collect();
            }
            c
        })
        .collect()
}

fn mdi(version: Version, p: u8, interval_cs: u16) -> Duration {
    master_down_interval(version, p, u32::from(interval_cs))
}

#[test]
fn steady_state_has_exactly_one_master_the_highest() {
    for (version, unicast) in [
        (Version::V3, false),
        (Version::V3, true),
        (Version::V2, false),
    ] {
        let mut net = Net::new(
            configs(&[100, 200, 150], 100, unicast, version),
            1,
            ms(0),
            ms(5),
        );
        net.start_all();
        net.run_until(at(ms(120_000)));
        // The highest priority fires first, exactly at its Master_Down_Interval.
        let first = net.became_master_after(1, Instant::ZERO);
        assert_eq!(first, Some(at(mdi(version, 200, 100))));
        assert_eq!(
            net.transitions
                .iter()
                .filter(|t| t.2 == State::Master)
                .count(),
            1
        );
        let settled = net.settled_since(Instant::ZERO).expect("one master");
        assert_eq!(settled, at(mdi(version, 200, 100)));
        assert_eq!(net.masters(), vec![1]);
        assert_eq!(net.vip_holders(), vec![1]);
        net.assert_no_drops();
    }
}

#[test]
fn equal_priority_is_won_by_the_highest_address() {
    // A fixed 1 ms delay: all three time out at the same instant, before any advert
    // arrives, so all three become Master; the two lower addresses yield on hearing .13.
    let mut net = Net::new(
        configs(&[100, 100, 100], 100, false, Version::V3),
        2,
        ms(1),
        ms(1),
    );
    net.start_all();
    net.run_until(at(ms(30_000)));
    let down = mdi(Version::V3, 100, 100);
    assert_eq!(
        net.transitions
            .iter()
            .filter(|t| t.2 == State::Master)
            .count(),
        3
    );
    assert_eq!(net.masters(), vec![2]);
    assert_eq!(net.settled_since(Instant::ZERO), Some(at(down + ms(1))));
}

#[test]
fn crashed_master_is_replaced_within_master_down_interval() {
    for (version, interval, unicast, dmax) in [
        (Version::V3, 100, false, 0),
        (Version::V3, 100, true, 5),
        (Version::V3, 10, true, 2),
        (Version::V2, 100, false, 5),
    ] {
        let mut net = Net::new(
            configs(&[100, 200, 150], interval, unicast, version),
            3,
            ms(0),
            ms(dmax),
        );
        net.start_all();
        let crash = at(ms(20_300));
        net.op_at(crash, Op::Crash(1));
        net.run_until(at(ms(40_000)));
        let last_advert = net.nodes[1].last_advert_sent.expect("master advertised");
        let takeover = net.became_master_after(2, crash).expect("backup took over");
        let down = mdi(version, 150, interval);
        // The backup's timer was last re-armed by the master's last advert (sent at
        // `last_advert`, delivered up to dmax later): takeover = arrival + Master_Down_Interval.
        assert!(takeover >= last_advert + down, "{version:?}: too early");
        assert!(
            takeover <= last_advert + down + ms(dmax),
            "{version:?}: too late"
        );
        assert!(takeover.saturating_since(crash) <= down + ms(dmax));
        if dmax == 0 {
            assert_eq!(takeover, last_advert + down);
        }
        // The lowest priority never became Master, and one master remains.
        assert_eq!(net.became_master_after(0, Instant::ZERO), None);
        assert_eq!(net.masters(), vec![2]);
        assert_eq!(net.vip_holders(), vec![2]);
        net.assert_no_drops();
    }
}

/// Issue 15 item 0 in virtual time: a master at 100 crashes, backups at 99 and 98 (100 ms
/// adverts, their deadlines 0.39 ms apart). Packets take 20-50 µs. A timer that wakes up to
/// 100 µs late (a nanosecond timer on a real-time thread) never lets the 98 take over; one that
/// wakes up to 1 ms late (a millisecond timer wheel) does, and then two nodes hold the VIP.
#[test]
fn adjacent_priorities_take_over_in_order_when_timers_are_fine_grained() {
    let double_takeovers = |jitter: Duration| {
        (0..200u64)
            .filter(|&seed| {
                let mut net = Net::new(
                    configs(&[100, 99, 98], 10, true, Version::V3),
                    seed,
                    Duration::from_micros(20),
                    Duration::from_micros(50),
                );
                net.timer_jitter = jitter;
                net.start_all();
                // The crash lands anywhere within an advert interval.
                let crash = at(ms(5_000) + Duration::from_micros(seed * 499 % 100_000));
                net.op_at(crash, Op::Crash(0));
                net.run_until(crash + ms(2_000));
                assert_eq!(net.masters(), vec![1], "seed {seed}: the 99 ends as master");
                net.became_master_after(2, crash).is_some()
            })
            .count()
    };
    assert_eq!(double_takeovers(Duration::from_micros(100)), 0);
    let coarse = double_takeovers(ms(1));
    assert!(coarse > 20, "a 1 ms timer lets the 98 in: {coarse} of 200");
}

#[test]
fn priority_zero_handover_happens_within_skew_time() {
    for (version, interval, dmax) in [
        (Version::V3, 100, 0),
        (Version::V3, 100, 3),
        (Version::V3, 10, 0),
        (Version::V2, 100, 3),
    ] {
        let mut net = Net::new(
            configs(&[100, 200, 150], interval, true, version),
            4,
            ms(0),
            ms(dmax),
        );
        net.start_all();
        let stop = at(ms(20_500));
        net.op_at(stop, Op::Shutdown(1));
        net.run_until(at(ms(40_000)));
        let takeover = net.became_master_after(2, stop).expect("backup took over");
        let skew = skew_time(version, 150, u32::from(interval));
        assert!(takeover >= stop + skew);
        assert!(takeover <= stop + skew + ms(dmax), "{version:?} {interval}");
        if dmax == 0 {
            assert_eq!(takeover, stop + skew);
        }
        // Far sooner than a crash would take.
        assert!(takeover.saturating_since(stop) < mdi(version, 150, interval));
        assert_eq!(net.became_master_after(0, Instant::ZERO), None);
        assert_eq!(net.masters(), vec![2]);
    }
}

#[test]
fn partition_heal_leaves_one_master_within_one_down_interval() {
    for unicast in [false, true] {
        let mut net = Net::new(
            configs(&[200, 150, 100], 100, unicast, Version::V3),
            5,
            ms(0),
            ms(5),
        );
        net.start_all();
        net.op_at(at(ms(10_000)), Op::Partition(0b110));
        let heal = at(ms(30_000));
        net.op_at(heal, Op::Heal);
        net.run_until(at(ms(29_999)));
        // Both sides elected a Master.
        assert_eq!(net.masters(), vec![0, 1]);
        net.run_until(at(ms(60_000)));
        let settled = net.settled_since(heal).expect("one master after heal");
        assert!(settled.saturating_since(heal) <= mdi(Version::V3, 100, 100));
        assert_eq!(net.masters(), vec![0]);
        assert_eq!(net.vip_holders(), vec![0]);
        net.assert_no_drops();
    }
}

#[test]
fn nopreempt_higher_router_does_not_take_over_on_return() {
    let mut cs = configs(&[200, 150], 100, false, Version::V3);
    cs[0].preempt = false;
    let mut net = Net::new(cs, 6, ms(0), ms(2));
    net.start_all();
    net.op_at(at(ms(10_000)), Op::Crash(0));
    net.op_at(at(ms(20_000)), Op::Restart(0));
    net.run_until(at(ms(60_000)));
    assert_eq!(net.masters(), vec![1]);
    // With preempt it would have.
    let mut net = Net::new(
        configs(&[200, 150], 100, false, Version::V3),
        6,
        ms(0),
        ms(2),
    );
    net.start_all();
    net.op_at(at(ms(10_000)), Op::Crash(0));
    net.op_at(at(ms(20_000)), Op::Restart(0));
    net.run_until(at(ms(60_000)));
    assert_eq!(net.masters(), vec![0]);
}

#[test]
fn tracking_moves_the_vip_to_the_healthy_router() {
    let mut net = Net::new(
        configs(&[200, 150], 100, true, Version::V3),
        7,
        ms(0),
        ms(2),
    );
    net.start_all();
    let drop = at(ms(10_000));
    net.op_at(drop, Op::Weight(0, -100));
    net.run_until(at(ms(30_000)));
    assert_eq!(net.masters(), vec![1]);
    assert_eq!(net.vip_holders(), vec![1]);
    let takeover = net.became_master_after(1, drop).expect("took over");
    // The master re-advertised 100 at once; the backup (150) discards it and its timer,
    // last re-armed by the advert before the drop, fires at most one down interval later.
    assert!(takeover.saturating_since(drop) <= mdi(Version::V3, 150, 100));
}

// ---- property tests over random schedules ---------------------------------------------

fn arb_op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..n).prop_map(Op::Crash),
        (0..n).prop_map(Op::Restart),
        (0..n).prop_map(Op::Shutdown),
        any::<u8>().prop_map(Op::Partition),
        Just(Op::Heal),
        ((0..n), -150..150i32).prop_map(|(i, w)| Op::Weight(i, w)),
        (0..300u32).prop_map(Op::Loss),
    ]
}

#[derive(Debug, Clone)]
struct Scenario {
    seed: u64,
    priorities: Vec<u8>,
    interval_cs: u16,
    unicast: bool,
    version: Version,
    dmax_us: u64,
    ops: Vec<(u64, Op)>,
}

fn arb_scenario(only_partitions: bool) -> impl Strategy<Value = Scenario> {
    (
        2..=5usize,
        any::<u64>(),
        prop::sample::select(vec![10u16, 50, 100]),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(move |(n, seed, interval_cs, unicast, v2)| {
            let version = if v2 && interval_cs == 100 {
                Version::V2
            } else {
                Version::V3
            };
            // Delays stay well under the interval, as on a LAN.
            let dmax_us = u64::from(interval_cs) * 10_000 / 4;
            let op = if only_partitions {
                prop_oneof![
                    any::<u8>().prop_map(Op::Partition),
                    Just(Op::Heal),
                    (0..300u32).prop_map(Op::Loss),
                ]
                .boxed()
            } else {
                arb_op(n).boxed()
            };
            (
                prop::collection::vec(1..=254u8, n),
                0..=dmax_us,
                prop::collection::vec((0..20_000u64, op), 0..25),
            )
                .prop_map(move |(priorities, dmax_us, ops)| Scenario {
                    seed,
                    priorities,
                    interval_cs,
                    unicast,
                    version,
                    dmax_us,
                    ops,
                })
        })
}

/// Run the chaos phase (ops during the first 20 s), then make the network perfect at
/// 20 s: heal, no loss, every node running with full health. Returns the net and the
/// calm time.
fn run(s: &Scenario, end_after_calm: Duration) -> (Net, Instant) {
    let mut net = Net::new(
        configs(&s.priorities, s.interval_cs, s.unicast, s.version),
        s.seed,
        Duration::ZERO,
        Duration::from_micros(s.dmax_us),
    );
    net.start_all();
    for &(t, op) in &s.ops {
        net.op_at(at(ms(t)), op);
    }
    let calm = at(ms(20_000));
    net.run_until(calm);
    net.do_op(Op::Heal);
    net.do_op(Op::Loss(0));
    for i in 0..net.nodes.len() {
        if net.nodes[i].alive {
            net.do_op(Op::Weight(i, 0));
        } else {
            net.start(i);
        }
    }
    net.run_until(calm + end_after_calm);
    (net, calm)
}

fn max_mdi(s: &Scenario) -> Duration {
    s.priorities
        .iter()
        .map(|&p| mdi(s.version, p, s.interval_cs))
        .max()
        .unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// After any schedule of crashes, restarts, shutdowns, partitions, loss and priority
    /// changes, once the network is perfect the routers converge to exactly one Master that
    /// holds the VIP and has the highest priority, and then stay there.
    #[test]
    fn converges_to_one_master_with_highest_priority(s in arb_scenario(false)) {
        let down = max_mdi(&s);
        let (net, calm) = run(&s, down * 8);
        let dmax = Duration::from_micros(s.dmax_us);
        let settled = net.settled_since(calm);
        prop_assert!(settled.is_some(), "never settled: {:?}", net.samples.last());
        let settled = settled.unwrap_or(calm);
        // Restarted routers wait one down interval; then the one master is heard at once.
        prop_assert!(settled.saturating_since(calm) <= down * 2 + dmax * 2,
            "settled {:?} after calm, down interval {:?}", settled.saturating_since(calm), down);
        let m = net.masters();
        prop_assert_eq!(m.len(), 1);
        prop_assert_eq!(net.vip_holders(), m.clone());
        let top = s.priorities.iter().copied().max().unwrap_or(0);
        prop_assert_eq!(net.nodes[m[0]].router.effective_priority(), top);
        for (i, n) in net.nodes.iter().enumerate() {
            if i != m[0] {
                prop_assert_eq!(n.router.state(), State::Backup);
            }
        }
        net.assert_no_drops();
    }

    /// Partitions and loss only: once the partition heals (and loss stops), exactly one
    /// Master remains within one Master_Down_Interval (plus one network delay).
    #[test]
    fn partition_heal_converges_within_one_down_interval(s in arb_scenario(true)) {
        let down = max_mdi(&s);
        let (net, calm) = run(&s, down * 4);
        let dmax = Duration::from_micros(s.dmax_us);
        let settled = net.settled_since(calm);
        prop_assert!(settled.is_some());
        let settled = settled.unwrap_or(calm);
        prop_assert!(settled.saturating_since(calm) <= down + dmax,
            "settled {:?} after heal, down interval {:?}", settled.saturating_since(calm), down);
        net.assert_no_drops();
    }
}
