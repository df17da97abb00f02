//! Parsing: defaults, error places (block and flow style, repeated keys), round trips.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::*;
use crate::{DEFAULT_METRICS_ADDR, defaults};

/// Only the fields without a default.
const MINIMAL: &str = "interface: eth0
vip: 198.18.0.10/24
vrid: 51
priority: 100
checksum: keepalived
listen: 0.0.0.0:16443
backends: [198.18.0.11:6443]
health:
  kind: tcp
  interval: 200ms
  fall: 2
  rise: 2
metrics: 127.0.0.1:9100
";

fn err(text: &str) -> String {
    parse(text, "f.yaml").unwrap_err().to_string()
}

#[test]
fn every_optional_field_has_its_default() {
    let c = parse(MINIMAL, "f.yaml").unwrap().config;
    assert_eq!(c.advert_interval, None);
    assert_eq!(c.advert_interval(), AdvertInterval::DEFAULT);
    assert_eq!(c.advert_interval().as_duration(), Duration::from_secs(1));
    assert!(c.unicast_peers.is_empty());
    assert_eq!(c.source, None);
    assert!(c.preempt);
    assert_eq!(c.balance, Balance::RoundRobin);
    assert_eq!(c.local_weight(), 50);
    assert_eq!(c.vip_lifetime(), Duration::from_secs(2));
    assert_eq!(c.handover_timeout(), Duration::from_secs(3));
    assert_eq!(c.drain_timeout(), Duration::from_secs(10));
    assert_eq!(c.connect_timeout(), Duration::from_secs(1));
    assert_eq!(c.idle_timeout(), Duration::from_secs(3600));
    assert_eq!(c.max_connections(), 20_000);
    assert!(c.close_sessions_on_down(), "on by default");
    assert_eq!(c.realtime_priority(), 10);
    // (fall 2 + 1) x interval 200 ms
    assert_eq!(c.preempt_delay(), Duration::from_millis(600));
    assert_eq!(c.health.port, None);
    assert_eq!(c.health.timeout(), Duration::from_millis(200));
    assert_eq!(c.health.path(), defaults::HTTP_PATH);
    assert_eq!(c.metrics.address(), Some(DEFAULT_METRICS_ADDR));
    let slow = MINIMAL.replace("interval: 200ms", "interval: 5s");
    assert_eq!(
        parse(&slow, "f.yaml").unwrap().config.health.timeout(),
        Duration::from_secs(1)
    );
    let vip32 = MINIMAL.replace("198.18.0.10/24", "198.18.0.10");
    assert_eq!(parse(&vip32, "f.yaml").unwrap().config.vip.prefix, 32);
    let off = MINIMAL.replace("metrics: 127.0.0.1:9100", "metrics: off");
    assert_eq!(parse(&off, "f.yaml").unwrap().config.metrics, Metrics::Off);
}

#[test]
fn typed_values() {
    let text = format!(
        "{MINIMAL}advert_interval: 40ms\nunicast_peers: [198.18.0.12]\nsource: 198.18.0.11\n\
         balance: least-connections\nvip_lifetime: 3s\nmax_connections: 7\n\
         close_sessions_on_down: false\nrealtime_priority: 0\npreempt_delay: 0s\n"
    );
    let c = parse(&text, "f.yaml").unwrap().config;
    assert_eq!(c.vip.address, Ipv4Addr::new(198, 18, 0, 10));
    assert_eq!(c.vrid, 51);
    assert_eq!(c.priority, 100);
    assert_eq!(c.advert_interval().centis(), 4);
    assert_eq!(c.unicast_peers, vec![Ipv4Addr::new(198, 18, 0, 12)]);
    assert_eq!(c.source, Some(Ipv4Addr::new(198, 18, 0, 11)));
    assert_eq!(c.balance, Balance::LeastConnections);
    assert_eq!(
        c.backends,
        vec!["198.18.0.11:6443".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(c.vip_lifetime(), Duration::from_secs(3));
    assert_eq!(c.max_connections(), 7);
    assert!(!c.close_sessions_on_down());
    assert_eq!(c.realtime_priority(), 0, "0: ordinary scheduling");
    assert_eq!(c.preempt_delay(), Duration::ZERO);
}

#[test]
fn written_yaml_reads_back_the_same() {
    let mut c = parse(MINIMAL, "f.yaml").unwrap().config;
    c.advert_interval = Some(AdvertInterval::from_centis(150).unwrap());
    c.unicast_peers = vec![Ipv4Addr::new(198, 18, 0, 12)];
    c.health.kind = HealthKind::Https;
    c.health.ca = Some("/ca.crt".into());
    c.health.timeout = Some(Duration::from_millis(150));
    c.drain_timeout = Some(Duration::from_secs(2));
    c.metrics = Metrics::Off;
    let text = c.to_yaml().unwrap();
    assert!(text.contains("advert_interval: 1s500ms\n"), "{text}");
    assert!(!text.contains("vip_lifetime"), "{text}");
    assert_eq!(parse(&text, "w.yaml").unwrap().config, c);
}

#[test]
fn errors_point_at_the_value() {
    let bad = MINIMAL.replace("vrid: 51", "vrid: 0");
    assert_eq!(
        err(&bad),
        "f.yaml:3:7: error: vrid: VRID 0 is outside 1-255 (use 1-255)"
    );
    let bad = MINIMAL.replace("priority: 100", "priority: 255");
    assert!(
        err(&bad).starts_with("f.yaml:4:11: error: priority: VRRP priority 255 is outside 1-254"),
        "{}",
        err(&bad)
    );
    let bad = format!("{MINIMAL}advert_interval: 45ms\n");
    assert!(
        err(&bad).starts_with(
            "f.yaml:14:18: error: advert_interval: 45ms is not a whole number of centiseconds"
        ),
        "{}",
        err(&bad)
    );
    let bad = format!("{MINIMAL}advert_interval: 41s\n");
    assert!(err(&bad).contains("14:18: error: advert_interval: 41s is outside 10ms-40.95s"));
    let bad = MINIMAL.replace("[198.18.0.11:6443]", "[198.18.0.11:6443, 198.18.0.12]");
    assert!(
        err(&bad).starts_with("f.yaml:7:30: error: backends: `198.18.0.12` is not address:port"),
        "{}",
        err(&bad)
    );
    let bad = MINIMAL.replace("  fall: 2", "  fall: 0");
    assert!(
        err(&bad).starts_with("f.yaml:11:9: error: health.fall:"),
        "{}",
        err(&bad)
    );
    let bad = MINIMAL.replace("  rise: 2", "  rise: 0");
    assert!(
        err(&bad).starts_with("f.yaml:12:9: error: health.rise:"),
        "{}",
        err(&bad)
    );
    let bad = format!("{MINIMAL}realtime_priority: 100\n");
    assert_eq!(
        err(&bad),
        "f.yaml:14:20: error: realtime_priority: 100 is not a real-time priority (give 1-99 (SCHED_FIFO), or 0 for ordinary scheduling)"
    );
    let bad = MINIMAL.replace("metrics: 127.0.0.1:9100", "metrics: localhost");
    assert!(
        err(&bad).starts_with("f.yaml:13:10: error: metrics:"),
        "{}",
        err(&bad)
    );
}

#[test]
fn errors_in_a_flow_mapping_point_into_it() {
    let flow = MINIMAL.replace(
        "health:\n  kind: tcp\n  interval: 200ms\n  fall: 2\n  rise: 2\n",
        "health: { kind: https, path: /readyz, interval: 200ms, fall: 2, rise: 2 }\n",
    );
    assert_eq!(
        err(&flow),
        "f.yaml:8:17: error: health.kind: https checks need `ca:` \
         (give the cluster CA, e.g. /etc/kubernetes/pki/ca.crt)"
    );
    let flow = flow
        .replace("kind: https", "kind: tcp")
        .replace("interval: 200ms", "interval: 1ms");
    assert!(
        err(&flow).starts_with("f.yaml:8:47: error: health.interval: 1ms is shorter than 10ms"),
        "{}",
        err(&flow)
    );
    let flow = flow.replace("interval: 1ms", "interval: soon");
    assert!(
        err(&flow).starts_with("f.yaml:8:47: error: health.interval: `soon` is not a duration")
    );
}

/// The old text search found the first line starting with the key; a key that appears
/// twice (here `path`, in a comment-free file) must point at the one that is wrong.
#[test]
fn a_repeated_key_points_at_the_right_one() {
    let text = MINIMAL.replace(
        "health:\n  kind: tcp\n",
        "health:\n  kind: https\n  path: /readyz\n  path: /livez\n  ca: /ca.crt\n",
    );
    let e = err(&text);
    assert!(e.starts_with("f.yaml:11:3: error: yaml:"), "{e}");
    assert!(e.contains("path"), "{e}");
    // Two `client_key` entries would be the same; one without its certificate is named
    // at its own line.
    let text = MINIMAL.replace(
        "  kind: tcp\n",
        "  kind: https\n  ca: /ca.crt\n  path: /readyz\n  client_key: /k.pem\n",
    );
    let e = err(&text);
    assert!(
        e.starts_with("f.yaml:12:15: error: health.client_cert:"),
        "{e}"
    );
}

#[test]
fn places_are_kept_for_later_errors() {
    let text = MINIMAL.replace("kind: tcp", "kind: https\n  ca: /nowhere/ca.crt");
    let p = parse(&text, "f.yaml").unwrap();
    assert_eq!(
        p.place("health.ca"),
        Pos {
            line: 10,
            column: 7
        }
    );
    assert_eq!(
        p.error("health.ca", "cannot read it", "fix it").to_string(),
        "f.yaml:10:7: error: health.ca: cannot read it (fix it)"
    );
    assert_eq!(p.place("source"), Pos::default());
}

#[test]
fn yaml_errors_are_one_line_with_their_place() {
    let e = err(&MINIMAL.replace("vrid: 51", "vrid: 300"));
    assert!(e.starts_with("f.yaml:3:7: error: yaml:"), "{e}");
    assert_eq!(e.lines().count(), 1);
    let e = err(&MINIMAL.replace("metrics:", "metrix:"));
    assert!(
        e.contains("f.yaml:13:1") && e.contains("unknown field `metrix`"),
        "{e}"
    );
    let e = err(&MINIMAL.replace("checksum: keepalived\n", ""));
    assert!(e.contains("missing field `checksum`"), "{e}");
}
