//! The daemon's config file (`kubeha frontdoor run -c frontdoor.yaml`). The format and its
//! checks live in crate `frontdoor-config` (re-exported here, so `render` can build the file
//! without depending on the daemon); this module turns a parsed file into what the daemon
//! runs with, reading the files it names (CA, client certificate). Errors name
//! file:line:column and the field.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

pub use frontdoor_config::{
    AdvertInterval, Checksum, ConfigError, DEFAULT_METRICS_ADDR, FrontdoorConfig, HealthConfig,
    HealthKind, Metrics, Parsed, Pos, Priority, VipCidr, Vrid, defaults,
};

use crate::health::{CheckKind, ClientIdentity, HealthCheck};
use crate::pool::Balance;
use crate::proxy::ProxyConfig;

/// Everything the daemon needs, validated, defaults applied.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub interface: String,
    pub vip: Ipv4Addr,
    pub vip_prefix: u8,
    pub vrid: Vrid,
    pub priority: Priority,
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
    /// A backup follows a lower-priority master this long before preempting it.
    pub preempt_delay: Duration,
    /// How the VRRP thread is scheduled (`realtime_priority`).
    pub scheduling: vip::Scheduling,
}

/// Reads, parses and resolves a config file.
pub fn load(path: &Path) -> Result<DaemonConfig, ConfigError> {
    resolve(&frontdoor_config::load(path)?)
}

/// Parses and resolves config text; `file` is the name used in errors.
pub fn parse(text: &str, file: &str) -> Result<DaemonConfig, ConfigError> {
    resolve(&frontdoor_config::parse(text, file)?)
}

/// A parsed file with its defaults applied and the files it names read.
pub fn resolve(p: &Parsed) -> Result<DaemonConfig, ConfigError> {
    let c = &p.config;
    let read = |field: &str, path: &Path| {
        std::fs::read(path).map_err(|e| {
            p.error(
                field,
                format!("cannot read {}: {e}", path.display()),
                "the file must exist on this node",
            )
        })
    };
    let h = &c.health;
    let kind = match h.kind {
        HealthKind::Tcp => CheckKind::Tcp,
        HealthKind::Http => CheckKind::Http {
            path: h.path().to_string(),
        },
        HealthKind::Https => {
            let Some(ca) = &h.ca else {
                return Err(p.error(
                    "health.kind",
                    "https checks need `ca:`",
                    "give the cluster CA, e.g. /etc/kubernetes/pki/ca.crt",
                ));
            };
            let client = match (&h.client_cert, &h.client_key) {
                (Some(cert), Some(key)) => Some(ClientIdentity {
                    cert_pem: read("health.client_cert", cert)?,
                    key_pem: read("health.client_key", key)?,
                }),
                _ => None,
            };
            CheckKind::Https {
                path: h.path().to_string(),
                ca_pem: read("health.ca", ca)?,
                client,
            }
        }
    };
    let check = HealthCheck {
        kind,
        interval: h.interval,
        timeout: h.timeout(),
        fall: h.fall,
        rise: h.rise,
        check_port: h.port,
    };
    let proxy = ProxyConfig {
        listen: c.listen,
        connect_timeout: c.connect_timeout(),
        idle_timeout: c.idle_timeout(),
        max_connections: c.max_connections(),
        drain_timeout: c.drain_timeout(),
        close_sessions_on_down: c.close_sessions_on_down(),
        ..ProxyConfig::default()
    };
    Ok(DaemonConfig {
        interface: c.interface.clone(),
        vip: c.vip.address,
        vip_prefix: c.vip.prefix,
        vrid: c.vrid,
        priority: c.priority,
        advert_interval_cs: c.advert_interval().centis(),
        unicast_peers: c.unicast_peers.clone(),
        source: c.source,
        checksum: c.checksum.into(),
        preempt: c.preempt,
        backends: c.backends.clone(),
        balance: match c.balance {
            frontdoor_config::Balance::RoundRobin => Balance::RoundRobin,
            frontdoor_config::Balance::LeastConnections => Balance::LeastConnections,
        },
        check,
        proxy,
        metrics: c.metrics.address(),
        local_weight: c.local_weight(),
        vip_lifetime: c.vip_lifetime(),
        handover_timeout: c.handover_timeout(),
        preempt_delay: c.preempt_delay(),
        scheduling: match c.realtime_priority() {
            0 => vip::Scheduling::Normal,
            p => vip::Scheduling::RealTime(p),
        },
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
    fn a_file_without_optional_fields_gets_the_defaults() {
        let text: String = ISSUE_EXAMPLE
            .lines()
            .filter(|l| !l.starts_with("advert_interval") && !l.starts_with("unicast_peers"))
            .map(|l| format!("{l}\n"))
            .collect();
        let c = parse(&text, "f.yaml").unwrap();
        assert_eq!(c.advert_interval_cs, 100);
        assert!(c.unicast_peers.is_empty());
        assert!(c.preempt);
        assert_eq!(c.balance, Balance::RoundRobin);
        assert_eq!(c.local_weight, 50);
        assert_eq!(c.scheduling, vip::Scheduling::RealTime(10));
        assert_eq!(c.vip_lifetime, Duration::from_secs(2));
        assert_eq!(c.handover_timeout, Duration::from_secs(3));
        assert_eq!(c.proxy.drain_timeout, Duration::from_secs(10));
        assert_eq!(c.proxy.connect_timeout, Duration::from_secs(1));
        assert_eq!(c.proxy.idle_timeout, Duration::from_secs(3600));
        assert_eq!(c.proxy.max_connections, 20_000);
        assert_eq!(c.check.timeout, Duration::from_millis(200));
        assert_eq!(c.metrics, Some(DEFAULT_METRICS_ADDR));
        assert!(matches!(c.check.kind, CheckKind::Tcp));
    }

    #[test]
    fn a_missing_ca_file_is_named_at_its_place() {
        let bad = ISSUE_EXAMPLE.replace("kind: tcp", "kind: https\n  ca: /nonexistent/ca.crt");
        let e = parse(&bad, "f.yaml").unwrap_err().to_string();
        assert!(
            e.starts_with("f.yaml:12:7: error: health.ca: cannot read /nonexistent/ca.crt"),
            "{e}"
        );
        let http = ISSUE_EXAMPLE.replace("kind: tcp", "kind: http");
        let c = parse(&http, "f.yaml").unwrap();
        assert!(matches!(c.check.kind, CheckKind::Http { ref path } if path == "/readyz"));
    }
}
