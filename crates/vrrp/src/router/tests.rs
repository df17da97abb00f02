//! State machine unit tests: one scenario per RFC 9568 §6.4 rule, on a virtual clock.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;
use crate::timers::skew_time_v3;

const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const LOWER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const HIGHER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const T0: Instant = Instant::ZERO;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(priority: u8) -> Config {
    Config::new(7, priority, ME, vec![VIP])
}

fn router(priority: u8) -> Router {
    Router::new(config(priority)).expect("valid config")
}

fn started(c: Config) -> Router {
    let mut r = Router::new(c).expect("valid config");
    r.handle(Input::Startup, T0);
    r
}

fn advert_from(c: &Config, priority: u8, interval_cs: u16) -> Vec<u8> {
    let timing = match c.version {
        Version::V3 => Timing::V3 {
            max_advert_interval: interval_cs,
        },
        Version::V2 => Timing::V2 {
            advert_int: u8::try_from(interval_cs / 100).expect("whole seconds"),
            auth: c.auth,
        },
    };
    Advert {
        vrid: c.vrid,
        priority,
        timing,
        addresses: c.virtual_addresses.clone(),
    }
    .encode(ChecksumMode::Rfc9568, Ipv4Addr::UNSPECIFIED, VRRP_MULTICAST)
}

fn rx(r: &mut Router, src: Ipv4Addr, priority: u8, interval_cs: u16, now: Instant) -> Vec<Action> {
    let payload = advert_from(&r.config().clone(), priority, interval_cs);
    r.handle(
        Input::Packet {
            ip: IpContext {
                src,
                dst: VRRP_MULTICAST,
                ttl: 255,
            },
            payload: &payload,
        },
        now,
    )
}

fn sent_priorities(actions: &[Action]) -> Vec<u8> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendAdvert { priority, .. } => Some(*priority),
            _ => None,
        })
        .collect()
}

fn fire(r: &mut Router) -> (Instant, Vec<Action>) {
    let at = r.next_deadline().expect("a deadline");
    (at, r.handle(Input::Timeout, at))
}

#[test]
fn config_validation() {
    let mut c = config(100);
    assert!(c.validate().is_ok());
    c.vrid = 0;
    assert_eq!(c.validate(), Err(ConfigError::Vrid));
    let mut c = config(0);
    assert_eq!(c.validate(), Err(ConfigError::Priority));
    c = config(100);
    c.virtual_addresses.clear();
    assert_eq!(c.validate(), Err(ConfigError::AddressCount(0)));
    c = config(100);
    c.advert_interval_cs = 4096;
    assert_eq!(c.validate(), Err(ConfigError::Interval(4096)));
    c.version = Version::V2;
    c.advert_interval_cs = 150;
    assert_eq!(c.validate(), Err(ConfigError::Interval(150)));
    c.advert_interval_cs = 200;
    assert!(c.validate().is_ok());
    c.version = Version::V3;
    c.auth = Auth::pass("x").expect("short");
    assert_eq!(c.validate(), Err(ConfigError::AuthWithV3));
}

#[test]
fn startup_goes_to_backup_with_master_down_timer() {
    let mut r = router(100);
    assert_eq!(r.state(), State::Initialize);
    assert_eq!(r.next_deadline(), None);
    let a = r.handle(Input::Startup, T0);
    assert_eq!(
        a,
        vec![Action::StateChanged {
            from: State::Initialize,
            to: State::Backup
        }]
    );
    // 3 s + (156/256) s.
    assert_eq!(
        r.next_deadline(),
        Some(T0 + ms(3609) + Duration::from_nanos(375_000))
    );
    // A second Startup is a no-op.
    assert!(r.handle(Input::Startup, T0).is_empty());
}

#[test]
fn owner_starts_as_master() {
    let mut r = router(255);
    let a = r.handle(Input::Startup, T0);
    assert_eq!(
        a[0],
        Action::StateChanged {
            from: State::Initialize,
            to: State::Master
        }
    );
    assert!(a.contains(&Action::AddVip(VIP)));
    assert!(a.contains(&Action::SendGratuitousArp(VIP)));
    assert_eq!(sent_priorities(&a), vec![255]);
    assert_eq!(r.next_deadline(), Some(T0 + ms(1000)));
}

#[test]
fn backup_becomes_master_exactly_at_master_down_interval() {
    let mut r = started(config(100));
    let deadline = r.next_deadline().expect("timer");
    // Early timeouts do nothing.
    let just_before = Instant::from_epoch(deadline.since_epoch() - Duration::from_nanos(1));
    assert!(r.handle(Input::Timeout, just_before).is_empty());
    assert_eq!(r.state(), State::Backup);
    let a = r.handle(Input::Timeout, deadline);
    assert_eq!(
        a,
        vec![
            Action::StateChanged {
                from: State::Backup,
                to: State::Master
            },
            // The advert before the address: a lower backup must hear it first.
            Action::SendAdvert {
                dst: VRRP_MULTICAST,
                priority: 100,
                payload: Advert {
                    vrid: 7,
                    priority: 100,
                    timing: Timing::V3 {
                        max_advert_interval: 100
                    },
                    addresses: vec![VIP],
                }
                .encode(ChecksumMode::Keepalived, ME, VRRP_MULTICAST),
            },
            Action::AddVip(VIP),
            Action::SendGratuitousArp(VIP),
        ]
    );
    assert_eq!(r.counters().became_master, 1);
}

#[test]
fn master_advertises_every_interval() {
    let mut r = router(255);
    r.handle(Input::Startup, T0);
    for k in 1..=5u64 {
        let (at, a) = fire(&mut r);
        assert_eq!(at, T0 + ms(1000 * k));
        assert_eq!(sent_priorities(&a), vec![255]);
    }
    assert_eq!(r.counters().adverts_sent, 6);
}

#[test]
fn backup_learns_the_masters_interval_v3() {
    let mut r = started(config(100));
    let t = T0 + ms(500);
    assert!(rx(&mut r, HIGHER_IP, 200, 10, t).is_empty());
    assert_eq!(r.master_adver_interval_cs(), 10);
    // 300 ms + 156 * 10 cs / 256.
    assert_eq!(r.next_deadline(), Some(t + ms(300) + skew_time_v3(100, 10)));
    assert_eq!(r.last_master(), Some(HIGHER_IP));
}

#[test]
fn v2_interval_mismatch_is_dropped_and_counted() {
    let mut c = config(100);
    c.version = Version::V2;
    let mut r = started(c);
    let before = r.next_deadline();
    rx(&mut r, HIGHER_IP, 200, 200, T0 + ms(10));
    assert_eq!(r.counters().interval_mismatch, 1);
    assert_eq!(r.next_deadline(), before);
    rx(&mut r, HIGHER_IP, 200, 100, T0 + ms(10));
    assert_eq!(r.counters().adverts_accepted, 1);
    // v2 skew is (256 - 100) / 256 s whatever the interval.
    assert_eq!(
        r.next_deadline(),
        Some(T0 + ms(10) + ms(3000) + Duration::from_nanos(609_375_000))
    );
}

#[test]
fn preempting_backup_ignores_a_lower_master_and_takes_over() {
    let mut r = started(config(150));
    let first = r.next_deadline().expect("timer");
    rx(&mut r, HIGHER_IP, 100, 100, T0 + ms(900));
    assert_eq!(r.next_deadline(), Some(first), "lower advert discarded");
    let (_, a) = fire(&mut r);
    assert_eq!(r.state(), State::Master);
    assert_eq!(sent_priorities(&a), vec![150]);
}

#[test]
fn nopreempt_backup_follows_a_lower_master() {
    let mut c = config(150);
    c.preempt = false;
    let mut r = started(c);
    let t = T0 + ms(900);
    rx(&mut r, HIGHER_IP, 100, 100, t);
    assert_eq!(r.next_deadline(), Some(t + r.master_down_interval()));
}

/// A front door with no ready backend (every apiserver down, as in an etcd outage) preempts
/// nobody: the VIP stays with the master. It still takes over when the master goes silent,
/// and preempts again once it can serve.
#[test]
fn a_backup_that_cannot_serve_follows_a_lower_master() {
    let mut r = started(config(150));
    let cannot = Health {
        weight: -20,
        fault: false,
        cannot_serve: true,
    };
    r.handle(Input::Health(cannot), T0 + ms(100));
    assert_eq!(r.effective_priority(), 130);
    let t = T0 + ms(900);
    rx(&mut r, HIGHER_IP, 100, 100, t);
    assert_eq!(
        r.next_deadline(),
        Some(t + r.master_down_interval()),
        "the lower master is followed"
    );
    assert_eq!(r.last_master(), Some(HIGHER_IP));
    // Silence: it takes over all the same.
    let (_, _) = fire(&mut r);
    assert_eq!(r.state(), State::Master);
    // Able to serve again, a backup preempts as before.
    let mut r = started(config(150));
    r.handle(Input::Health(cannot), T0 + ms(100));
    r.handle(Input::Health(Health::default()), T0 + ms(200));
    let first = r.next_deadline().expect("timer");
    rx(&mut r, HIGHER_IP, 100, 100, T0 + ms(900));
    assert_eq!(r.next_deadline(), Some(first), "lower advert discarded");
}

#[test]
fn preempt_delay_follows_the_lower_master_until_it_expires() {
    let mut c = config(150);
    c.preempt_delay = Duration::from_secs(10);
    let mut r = started(c);
    // First lower advert at 1 s starts the delay (until 11 s); adverts keep arriving.
    let mut t = T0 + ms(1000);
    while t < T0 + ms(11_000) {
        rx(&mut r, HIGHER_IP, 100, 100, t);
        assert_eq!(r.next_deadline(), Some(t + r.master_down_interval()));
        assert!(r.handle(Input::Timeout, t).is_empty());
        t = t + ms(1000);
    }
    // From 11 s on the lower adverts are discarded: the last reset was at 10 s.
    let last_reset = T0 + ms(10_000);
    rx(&mut r, HIGHER_IP, 100, 100, t);
    assert_eq!(
        r.next_deadline(),
        Some(last_reset + r.master_down_interval())
    );
    let (at, _) = fire(&mut r);
    assert_eq!(r.state(), State::Master);
    assert!(at >= T0 + ms(11_000));
}

#[test]
fn priority_zero_makes_backup_take_over_after_skew_time() {
    let mut r = started(config(100));
    let t = T0 + ms(700);
    rx(&mut r, HIGHER_IP, 200, 100, t);
    let t2 = T0 + ms(900);
    rx(&mut r, HIGHER_IP, 0, 100, t2);
    assert_eq!(r.counters().priority_zero_received, 1);
    assert_eq!(r.next_deadline(), Some(t2 + skew_time_v3(100, 100)));
    let (at, _) = fire(&mut r);
    assert_eq!(at.saturating_since(t2), Duration::from_nanos(609_375_000));
    assert_eq!(r.state(), State::Master);
}

fn master(priority: u8) -> Router {
    let mut r = started(config(priority));
    fire(&mut r);
    assert_eq!(r.state(), State::Master);
    r
}

#[test]
fn master_yields_to_higher_priority() {
    let mut r = master(100);
    let t = T0 + ms(5000);
    let a = rx(&mut r, LOWER_IP, 101, 50, t);
    assert_eq!(
        a,
        vec![
            Action::StateChanged {
                from: State::Master,
                to: State::Backup
            },
            Action::RemoveVip(VIP)
        ]
    );
    assert_eq!(r.master_adver_interval_cs(), 50);
    assert_eq!(
        r.next_deadline(),
        Some(t + ms(1500) + skew_time_v3(100, 50))
    );
}

#[test]
fn equal_priority_is_broken_by_the_higher_primary_address() {
    let mut r = master(100);
    let t = T0 + ms(5000);
    // Lower address, same priority: we stay Master and answer at once.
    let a = rx(&mut r, LOWER_IP, 100, 100, t);
    assert_eq!(sent_priorities(&a), vec![100]);
    assert_eq!(r.state(), State::Master);
    // Higher address, same priority: we yield.
    rx(&mut r, HIGHER_IP, 100, 100, t);
    assert_eq!(r.state(), State::Backup);
}

#[test]
fn master_answers_a_lower_priority_advert_at_once_rfc9568() {
    let mut r = master(100);
    let deadline = r.next_deadline();
    let a = rx(&mut r, HIGHER_IP, 99, 100, T0 + ms(4000));
    assert_eq!(sent_priorities(&a), vec![100]);
    assert_eq!(r.state(), State::Master);
    assert_eq!(r.next_deadline(), deadline, "the regular schedule is kept");
    // the other router may have drawn clients to itself: claim the VIP again
    assert!(a.contains(&Action::SendGratuitousArp(VIP)), "{a:?}");
}

#[test]
fn master_answers_priority_zero_and_resets_its_timer() {
    let mut r = master(100);
    let t = T0 + ms(4200);
    let a = rx(&mut r, HIGHER_IP, 0, 100, t);
    assert_eq!(sent_priorities(&a), vec![100]);
    assert_eq!(r.next_deadline(), Some(t + ms(1000)));
}

#[test]
fn shutdown_of_master_sends_priority_zero_and_removes_vips() {
    let mut r = master(100);
    let a = r.handle(Input::Shutdown, T0 + ms(5000));
    assert_eq!(
        a[0],
        Action::StateChanged {
            from: State::Master,
            to: State::Initialize
        }
    );
    assert_eq!(sent_priorities(&a), vec![0]);
    assert!(a.contains(&Action::RemoveVip(VIP)));
    assert_eq!(r.next_deadline(), None);
    assert_eq!(r.counters().priority_zero_sent, 1);
    // Adverts are ignored while stopped.
    assert!(rx(&mut r, HIGHER_IP, 0, 100, T0 + ms(5100)).is_empty());
    assert_eq!(r.state(), State::Initialize);
}

#[test]
fn shutdown_of_backup_is_silent() {
    let mut r = started(config(100));
    let a = r.handle(Input::Shutdown, T0);
    assert_eq!(
        a,
        vec![Action::StateChanged {
            from: State::Backup,
            to: State::Initialize
        }]
    );
}

#[test]
fn tracking_weight_lowers_priority_clamped_and_master_readvertises() {
    let mut r = master(100);
    let a = r.handle(
        Input::Health(Health {
            weight: -30,
            fault: false,
            cannot_serve: false,
        }),
        T0 + ms(5000),
    );
    assert_eq!(r.effective_priority(), 70);
    assert_eq!(sent_priorities(&a), vec![70]);
    r.handle(
        Input::Health(Health {
            weight: -500,
            fault: false,
            cannot_serve: false,
        }),
        T0 + ms(5000),
    );
    assert_eq!(r.effective_priority(), 1);
    r.handle(
        Input::Health(Health {
            weight: 500,
            fault: false,
            cannot_serve: false,
        }),
        T0 + ms(5000),
    );
    assert_eq!(r.effective_priority(), 254);
    // The owner ignores weights.
    let mut o = router(255);
    o.handle(
        Input::Health(Health {
            weight: -100,
            fault: false,
            cannot_serve: false,
        }),
        T0,
    );
    assert_eq!(o.effective_priority(), 255);
}

#[test]
fn lowered_master_loses_to_a_preempting_backup() {
    // Backup at 100 follows master at 120; master drops to 90; backup discards its adverts
    // and takes over after Master_Down_Interval.
    let mut b = started(config(100));
    rx(&mut b, HIGHER_IP, 120, 100, T0 + ms(100));
    let t = T0 + ms(1100);
    rx(&mut b, HIGHER_IP, 90, 100, t);
    assert_eq!(
        b.next_deadline(),
        Some(T0 + ms(100) + b.master_down_interval())
    );
    fire(&mut b);
    assert_eq!(b.state(), State::Master);
}

#[test]
fn fault_from_master_sends_priority_zero_and_recovery_goes_to_backup() {
    let mut r = master(100);
    let t = T0 + ms(5000);
    let a = r.handle(
        Input::Health(Health {
            weight: 0,
            fault: true,
            cannot_serve: false,
        }),
        t,
    );
    assert_eq!(
        a[0],
        Action::StateChanged {
            from: State::Master,
            to: State::Fault
        }
    );
    assert_eq!(sent_priorities(&a), vec![0]);
    assert!(a.contains(&Action::RemoveVip(VIP)));
    assert_eq!(r.next_deadline(), None);
    assert!(rx(&mut r, HIGHER_IP, 50, 100, t).is_empty());
    assert_eq!(r.state(), State::Fault);
    let a = r.handle(Input::Health(Health::default()), t);
    assert_eq!(
        a,
        vec![Action::StateChanged {
            from: State::Fault,
            to: State::Backup
        }]
    );
    assert_eq!(r.next_deadline(), Some(t + r.master_down_interval()));
}

#[test]
fn fault_before_startup_starts_in_fault() {
    let mut r = router(100);
    assert!(
        r.handle(
            Input::Health(Health {
                weight: 0,
                fault: true,
                cannot_serve: false,
            }),
            T0
        )
        .is_empty()
    );
    r.handle(Input::Startup, T0);
    assert_eq!(r.state(), State::Fault);
}

#[test]
fn unicast_sends_to_every_peer_and_drops_foreign_sources() {
    let mut c = config(255);
    c.unicast_peers = vec![LOWER_IP, HIGHER_IP];
    let mut r = Router::new(c).expect("valid");
    let a = r.handle(Input::Startup, T0);
    let dsts: Vec<Ipv4Addr> = a
        .iter()
        .filter_map(|a| match a {
            Action::SendAdvert { dst, .. } => Some(*dst),
            _ => None,
        })
        .collect();
    assert_eq!(dsts, vec![LOWER_IP, HIGHER_IP]);
    rx(&mut r, Ipv4Addr::new(10, 0, 0, 9), 100, 100, T0);
    assert_eq!(r.counters().foreign_source, 1);
    rx(&mut r, LOWER_IP, 100, 100, T0);
    assert_eq!(r.counters().adverts_accepted, 1);
    assert_eq!(r.counters().owner_conflict, 1, "owner logs but processes");
}

#[test]
fn drops_are_counted_by_reason() {
    let mut r = started(config(100));
    let deadline = r.next_deadline();
    rx(&mut r, ME, 200, 100, T0);
    assert_eq!(r.counters().own_advert, 1);
    // Other VRID.
    let mut other = config(100);
    other.vrid = 8;
    let p = advert_from(&other, 200, 100);
    let ip = IpContext {
        src: HIGHER_IP,
        dst: VRRP_MULTICAST,
        ttl: 255,
    };
    r.handle(Input::Packet { ip, payload: &p }, T0);
    assert_eq!(r.counters().vrid_mismatch, 1);
    // Other version.
    let mut v2 = config(100);
    v2.version = Version::V2;
    let p = advert_from(&v2, 200, 100);
    r.handle(Input::Packet { ip, payload: &p }, T0);
    assert_eq!(r.counters().bad_version, 1);
    // Other address list, from a non-owner.
    let mut addrs = config(100);
    addrs.virtual_addresses = vec![Ipv4Addr::new(10, 0, 0, 200)];
    let p = advert_from(&addrs, 200, 100);
    r.handle(Input::Packet { ip, payload: &p }, T0);
    assert_eq!(r.counters().address_mismatch, 1);
    // ... but an owner's is processed.
    let p = advert_from(&addrs, 255, 100);
    r.handle(Input::Packet { ip, payload: &p }, T0 + ms(1));
    assert_eq!(r.counters().adverts_accepted, 1);
    // TTL and checksum.
    let p = advert_from(&config(100), 200, 100);
    r.handle(
        Input::Packet {
            ip: IpContext { ttl: 1, ..ip },
            payload: &p,
        },
        T0,
    );
    assert_eq!(r.counters().bad_ttl, 1);
    let mut bad = p.clone();
    bad[2] ^= 1;
    r.handle(Input::Packet { ip, payload: &bad }, T0);
    assert_eq!(r.counters().bad_checksum, 1);
    r.handle(
        Input::Packet {
            ip,
            payload: &p[..5],
        },
        T0,
    );
    assert_eq!(r.counters().bad_length, 1);
    r.handle(Input::Datagram(&[0x45, 0, 0]), T0);
    assert_eq!(r.counters().bad_ip_header, 1);
    assert_eq!(r.counters().dropped(), 8);
    assert_eq!(r.counters().packets_received, 9);
    assert_ne!(
        r.next_deadline(),
        deadline,
        "only the owner advert re-armed the timer"
    );
    let named: u64 = r
        .counters()
        .iter()
        .filter(|(n, _)| *n == "bad_ttl")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(named, 1);
}

#[test]
fn send_checksum_mode_is_configurable() {
    for mode in [ChecksumMode::Rfc9568, ChecksumMode::Keepalived] {
        let mut c = config(255);
        c.send_checksum = mode;
        c.unicast_peers = vec![HIGHER_IP];
        let mut r = Router::new(c).expect("valid");
        let a = r.handle(Input::Startup, T0);
        let payload = a
            .iter()
            .find_map(|a| match a {
                Action::SendAdvert { payload, .. } => Some(payload.clone()),
                _ => None,
            })
            .expect("an advert");
        let ip = IpContext {
            src: ME,
            dst: HIGHER_IP,
            ttl: 255,
        };
        assert_eq!(packet::decode(&payload, &ip).map(|d| d.checksum), Ok(mode));
    }
}

#[test]
fn counter_names_are_unique_and_complete() {
    let c = Counters {
        bad_ttl: 1,
        foreign_source: 2,
        ..Counters::default()
    };
    let names: Vec<&str> = c.iter().map(|(n, _)| n).collect();
    let mut dedup = names.clone();
    dedup.sort_unstable();
    dedup.dedup();
    assert_eq!(dedup.len(), names.len());
    assert_eq!(names.len(), 20);
    assert_eq!(c.iter().map(|(_, v)| v).sum::<u64>(), 3);
    assert_eq!(c.dropped(), 3);
}
