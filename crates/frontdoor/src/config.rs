//! The daemon's config file (`kubeha frontdoor run -c frontdoor.yaml`): the format that
//! `kubeha plan` renders (`render::frontdoor::FrontdoorConfig`), parsed with positions and
//! turned into typed settings. Errors name file:line:column and the field.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use render::frontdoor::FrontdoorConfig;

use crate::health::{CheckKind, ClientIdentity, HealthCheck};
use crate::pool::Balance;
use crate::proxy::ProxyConfig;

/// Everything the daemon needs, validated.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub interface: String,
    pub vip: Ipv4Addr,
    pub vip_prefix: u8,
    pub vrid: u8,
    pub priority: u8,
    pub advert_interval_cs: u16,
    pub unicast_peers: Vec<Ipv4Addr>,
    /// This node's address; `None` = the interface's primary IPv4 address.
    pub source: Option<Ipv4Addr>,
    pub checksum: vrrp::ChecksumMode,
    pub preempt: bool,
    pub backends: Vec<SocketAddr>,
    pub balance: Balance,
    pub check: HealthCheck,
    pub proxy: ProxyConfig,
    pub metrics: Option<SocketAddr>,
    pub local_weight: u8,
    pub vip_lifetime: Duration,
    pub handover_timeout: Duration,
}

/// A config problem, printed as `file:line:column: error: field: message (hint)`.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: error: {field}: {message} ({hint})")]
pub struct ConfigError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub field: String,
    pub message: String,
    pub hint: String,
}

pub fn load(path: &Path) -> Result<DaemonConfig, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 0,
        column: 0,
        field: "-c".into(),
        message: format!("cannot read the file: {e}"),
        hint: "give the path of a front door config; `kubeha plan -o DIR` writes one per control-plane node".into(),
    })?;
    parse(&text, &file)
}

/// Finds the line and column of `key:` in the text, for errors about a parsed value.
fn place(text: &str, key: &str) -> (u64, u64) {
    let leaf = key.rsplit('.').next().unwrap_or(key);
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with(&format!("{leaf}:")) {
            let col = line.len() - trimmed.len() + leaf.len() + 2;
            let value_col = line[col.min(line.len())..]
                .find(|c: char| !c.is_whitespace())
                .map_or(col, |o| col + o);
            return (i as u64 + 1, value_col as u64 + 1);
        }
    }
    (0, 0)
}

pub fn parse(text: &str, file: &str) -> Result<DaemonConfig, ConfigError> {
    let raw: FrontdoorConfig = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        let msg = e.without_snippet().to_string();
        let msg = msg
            .split_once(": ")
            .filter(|(a, _)| a.contains("line"))
            .map_or(msg.as_str(), |(_, b)| b);
        let msg = msg.rsplit_once(" at line ").map_or(msg, |(a, _)| a);
        ConfigError {
            file: file.to_string(),
            line,
            column,
            field: "yaml".into(),
            message: msg.to_string(),
            hint: "see docs/frontdoor.md for every field".into(),
        }
    })?;
    let err = |field: &str, message: String, hint: &str| {
        let (line, column) = place(text, field);
        ConfigError {
            file: file.to_string(),
            line,
            column,
            field: field.to_string(),
            message,
            hint: hint.to_string(),
        }
    };
    let dur = |field: &str, v: &str| {
        humantime::parse_duration(v.trim()).map_err(|e| {
            err(
                field,
                format!("`{v}` is not a duration: {e}"),
                "write it like 100ms or 2s",
            )
        })
    };
    let dur_or = |field: &str, v: &Option<String>, default: Duration| match v {
        Some(v) => dur(field, v),
        None => Ok(default),
    };

    let (vip, vip_prefix) = match raw.vip.split_once('/') {
        Some((a, p)) => (
            a.parse::<Ipv4Addr>().map_err(|_| {
                err(
                    "vip",
                    format!("`{a}` is not an IPv4 address"),
                    "write it like 198.18.0.10/24",
                )
            })?,
            p.parse::<u8>()
                .ok()
                .filter(|p| *p <= 32)
                .ok_or_else(|| err("vip", format!("`/{p}` is not a prefix length"), "use 0-32"))?,
        ),
        None => (
            raw.vip.parse().map_err(|_| {
                err(
                    "vip",
                    format!("`{}` is not an IPv4 address", raw.vip),
                    "write it like 198.18.0.10/24",
                )
            })?,
            32,
        ),
    };
    if raw.vrid == 0 {
        return Err(err("vrid", "VRID 0 is not allowed".into(), "use 1-255"));
    }
    if raw.priority == 0 || raw.priority == 255 {
        return Err(err(
            "priority",
            format!("priority {} is reserved", raw.priority),
            "use 1-254",
        ));
    }
    let advert = dur("advert_interval", &raw.advert_interval)?;
    if advert < Duration::from_millis(10)
        || advert > Duration::from_millis(40_950)
        || advert.as_nanos() % 10_000_000 != 0
    {
        return Err(err(
            "advert_interval",
            format!(
                "{} is not 10ms-40.95s in whole centiseconds",
                raw.advert_interval
            ),
            "VRRPv3 counts in 10 ms steps, e.g. 40ms",
        ));
    }
    let mut peers = Vec::new();
    for p in &raw.unicast_peers {
        peers.push(p.parse::<Ipv4Addr>().map_err(|_| {
            err(
                "unicast_peers",
                format!("`{p}` is not an IPv4 address"),
                "list the other nodes' addresses",
            )
        })?);
    }
    let source = match &raw.source {
        Some(s) => Some(s.parse::<Ipv4Addr>().map_err(|_| {
            err(
                "source",
                format!("`{s}` is not an IPv4 address"),
                "this node's own address",
            )
        })?),
        None => None,
    };
    let checksum = match raw.checksum.as_str() {
        "keepalived" => vrrp::ChecksumMode::Keepalived,
        "rfc9568" => vrrp::ChecksumMode::Rfc9568,
        other => {
            return Err(err(
                "checksum",
                format!("`{other}` is not a checksum mode"),
                "use keepalived or rfc9568",
            ));
        }
    };
    let listen: SocketAddr = raw.listen.parse().map_err(|_| {
        err(
            "listen",
            format!("`{}` is not address:port", raw.listen),
            "like 0.0.0.0:16443",
        )
    })?;
    let mut backends = Vec::new();
    for b in &raw.backends {
        backends.push(b.parse::<SocketAddr>().map_err(|_| {
            err(
                "backends",
                format!("`{b}` is not address:port"),
                "like 198.18.0.11:6443",
            )
        })?);
    }
    if backends.is_empty() {
        return Err(err(
            "backends",
            "no backends".into(),
            "list every apiserver as address:port",
        ));
    }
    let balance = match raw.balance.as_str() {
        "round-robin" => Balance::RoundRobin,
        "least-connections" => Balance::LeastConnections,
        other => {
            return Err(err(
                "balance",
                format!("`{other}` is not a balancing mode"),
                "use round-robin or least-connections",
            ));
        }
    };
    let h = &raw.health;
    let interval = dur("health.interval", &h.interval)?;
    if interval < Duration::from_millis(10) {
        return Err(err(
            "health.interval",
            format!("{} is shorter than 10ms", h.interval),
            "use 100ms or more",
        ));
    }
    let read = |field: &str, p: &str| {
        std::fs::read(p).map_err(|e| {
            err(
                field,
                format!("cannot read {p}: {e}"),
                "the file must exist on this node",
            )
        })
    };
    let kind = match h.kind.as_str() {
        "tcp" => CheckKind::Tcp,
        "http" => CheckKind::Http {
            path: h.path.clone().unwrap_or_else(|| "/healthz".into()),
        },
        "https" => {
            let ca = h.ca.as_deref().ok_or_else(|| {
                err(
                    "health.kind",
                    "https checks need `ca:`".into(),
                    "give the cluster CA, e.g. /etc/kubernetes/pki/ca.crt",
                )
            })?;
            let client = match (&h.client_cert, &h.client_key) {
                (Some(c), Some(k)) => Some(ClientIdentity {
                    cert_pem: read("health.client_cert", c)?,
                    key_pem: read("health.client_key", k)?,
                }),
                (None, None) => None,
                _ => {
                    return Err(err(
                        "health.client_cert",
                        "client_cert and client_key go together".into(),
                        "give both or neither",
                    ));
                }
            };
            CheckKind::Https {
                path: h.path.clone().unwrap_or_else(|| "/readyz".into()),
                ca_pem: read("health.ca", ca)?,
                client,
            }
        }
        other => {
            return Err(err(
                "health.kind",
                format!("`{other}` is not a check kind"),
                "use https, http or tcp",
            ));
        }
    };
    if h.fall == 0 || h.rise == 0 {
        return Err(err(
            "health.fall",
            "fall and rise must be at least 1".into(),
            "2 is usual",
        ));
    }
    let check = HealthCheck {
        kind,
        interval,
        timeout: dur_or(
            "health.timeout",
            &h.timeout,
            interval.min(Duration::from_secs(1)),
        )?,
        fall: h.fall,
        rise: h.rise,
        check_port: h.port,
    };
    let metrics = if raw.metrics.is_empty() || raw.metrics == "off" {
        None
    } else {
        Some(raw.metrics.parse::<SocketAddr>().map_err(|_| {
            err(
                "metrics",
                format!("`{}` is not address:port", raw.metrics),
                "like 127.0.0.1:9100, or off",
            )
        })?)
    };
    let proxy = ProxyConfig {
        listen,
        connect_timeout: dur_or(
            "connect_timeout",
            &raw.connect_timeout,
            Duration::from_secs(1),
        )?,
        idle_timeout: dur_or("idle_timeout", &raw.idle_timeout, Duration::from_secs(3600))?,
        max_connections: raw.max_connections.unwrap_or(20_000),
        drain_timeout: dur_or("drain_timeout", &raw.drain_timeout, Duration::from_secs(10))?,
        ..ProxyConfig::default()
    };
    let vip_lifetime = dur_or("vip_lifetime", &raw.vip_lifetime, Duration::from_secs(2))?;
    if vip_lifetime < Duration::from_secs(1) {
        return Err(err(
            "vip_lifetime",
            "the kernel counts address lifetimes in whole seconds".into(),
            "use 1s or more; 2s is the default",
        ));
    }
    Ok(DaemonConfig {
        interface: raw.interface.clone(),
        vip,
        vip_prefix,
        vrid: raw.vrid,
        priority: raw.priority,
        advert_interval_cs: (advert.as_millis() / 10) as u16,
        unicast_peers: peers,
        source,
        checksum,
        preempt: raw.preempt,
        backends,
        balance,
        check,
        proxy,
        metrics,
        local_weight: raw.local_weight.unwrap_or(50),
        vip_lifetime,
        handover_timeout: dur_or(
            "handover_timeout",
            &raw.handover_timeout,
            Duration::from_secs(3),
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config from the issue, verbatim except the CA path and tcp checks.
    const ISSUE_EXAMPLE: &str = "interface: eth0
vip: 198.18.0.10/24
vrid: 51
priority: 100            # per node
advert_interval: 100ms   # optional
unicast_peers: [198.18.0.12, 198.18.0.13]
checksum: keepalived     # or rfc9568
listen: 0.0.0.0:16443
backends: [198.18.0.11:6443, 198.18.0.12:6443, 198.18.0.13:6443]
health:
  kind: tcp
  path: /readyz
  interval: 200ms
  fall: 2
  rise: 2
metrics: 127.0.0.1:9100
";

    #[test]
    fn accepts_the_issue_example() {
        let c = parse(ISSUE_EXAMPLE, "f.yaml").unwrap();
        assert_eq!(c.vip, Ipv4Addr::new(198, 18, 0, 10));
        assert_eq!(c.vip_prefix, 24);
        assert_eq!(c.advert_interval_cs, 10);
        assert_eq!(c.unicast_peers.len(), 2);
        assert_eq!(c.backends.len(), 3);
        assert_eq!(c.check.interval, Duration::from_millis(200));
        assert_eq!(c.source, None);
    }

    #[test]
    fn errors_name_the_place_and_field() {
        let bad = ISSUE_EXAMPLE.replace("advert_interval: 100ms", "advert_interval: 105ms");
        let e = parse(&bad, "f.yaml").unwrap_err().to_string();
        assert!(
            e.starts_with("f.yaml:5:18: error: advert_interval: 105ms"),
            "{e}"
        );
        let bad = ISSUE_EXAMPLE.replace("vrid: 51", "vrid: 300");
        let e = parse(&bad, "f.yaml").unwrap_err().to_string();
        assert!(e.starts_with("f.yaml:3:7: error: yaml:"), "{e}");
        let bad = ISSUE_EXAMPLE.replace("metrics:", "metrix:");
        let e = parse(&bad, "f.yaml").unwrap_err().to_string();
        assert!(
            e.contains("f.yaml:16:1") && e.contains("unknown field `metrix`"),
            "{e}"
        );
        let bad = ISSUE_EXAMPLE.replace("kind: tcp", "kind: https");
        let e = parse(&bad, "f.yaml").unwrap_err().to_string();
        assert!(e.contains("health.kind: https checks need `ca:`"), "{e}");
    }

    #[test]
    fn the_rendered_config_parses() {
        let src = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/cluster.yaml"
        ))
        .unwrap();
        let inv = inventory::parse_str(&src, "cluster.yaml")
            .unwrap()
            .inventory;
        let node = inv.node("master2").unwrap();
        let mut cfg = render::frontdoor::for_node(&inv, node);
        cfg.health.kind = "tcp".into(); // the CA file does not exist here
        let text = serde_saphyr::to_string(&cfg).unwrap();
        let c = parse(&text, "frontdoor.yaml").unwrap();
        assert_eq!(c.priority, 140);
        assert_eq!(c.advert_interval_cs, 4);
        assert_eq!(c.source, Some(Ipv4Addr::new(198, 18, 0, 12)));
        assert_eq!(
            c.unicast_peers,
            vec![Ipv4Addr::new(198, 18, 0, 11), Ipv4Addr::new(198, 18, 0, 13)]
        );
        assert_eq!(c.local_weight, 30);
    }
}
