//! The file as written (every value with its place), and its checks into [`FrontdoorConfig`].
//! The first problem is returned; its place is the value's, from serde-saphyr's spans.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;
use vrrp::{AdvertInterval, ParamError, Priority, Vrid};

use crate::{
    Balance, Checksum, ConfigError, FrontdoorConfig, HealthConfig, HealthKind, Metrics, VipCidr,
};

type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    interface: S<String>,
    vip: S<String>,
    vrid: S<u8>,
    priority: S<u8>,
    #[serde(default)]
    advert_interval: Option<S<String>>,
    #[serde(default)]
    unicast_peers: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    source: Option<S<String>>,
    checksum: S<String>,
    #[serde(default)]
    preempt: Option<S<bool>>,
    listen: S<String>,
    backends: S<Vec<S<String>>>,
    #[serde(default)]
    balance: Option<S<String>>,
    health: S<RawHealth>,
    metrics: S<String>,
    #[serde(default)]
    local_weight: Option<S<u8>>,
    #[serde(default)]
    vip_lifetime: Option<S<String>>,
    #[serde(default)]
    handover_timeout: Option<S<String>>,
    #[serde(default)]
    preempt_delay: Option<S<String>>,
    #[serde(default)]
    drain_timeout: Option<S<String>>,
    #[serde(default)]
    connect_timeout: Option<S<String>>,
    #[serde(default)]
    idle_timeout: Option<S<String>>,
    #[serde(default)]
    max_connections: Option<S<usize>>,
    #[serde(default)]
    close_sessions_on_down: Option<S<bool>>,
    #[serde(default)]
    realtime_priority: Option<S<u8>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    kind: S<String>,
    #[serde(default)]
    path: Option<S<String>>,
    #[serde(default)]
    ca: Option<S<String>>,
    interval: S<String>,
    fall: S<u32>,
    rise: S<u32>,
    #[serde(default)]
    port: Option<S<u16>>,
    #[serde(default)]
    client_cert: Option<S<String>>,
    #[serde(default)]
    client_key: Option<S<String>>,
    #[serde(default)]
    timeout: Option<S<String>>,
}

/// A place in the file: 1-based line and column (0 = unknown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl<T> From<&Spanned<T>> for Pos {
    fn from(s: &Spanned<T>) -> Pos {
        Pos {
            line: s.referenced.line(),
            column: s.referenced.column(),
        }
    }
}

/// A parsed file: the config, and where each value stood, for errors found later (the
/// daemon reading the CA file, say).
#[derive(Debug, Clone)]
pub struct Parsed {
    pub config: FrontdoorConfig,
    pub file: String,
    places: BTreeMap<&'static str, Pos>,
}

impl Parsed {
    /// Where `field` (dotted, e.g. `health.ca`) stood; unknown (0:0) if the file left it out.
    pub fn place(&self, field: &str) -> Pos {
        self.places.get(field).copied().unwrap_or_default()
    }

    /// An error about `field`, at its place.
    pub fn error(&self, field: &str, message: impl Into<String>, hint: &str) -> ConfigError {
        error_at(&self.file, self.place(field), field, message.into(), hint)
    }
}

fn error_at(file: &str, at: Pos, field: &str, message: String, hint: &str) -> ConfigError {
    ConfigError {
        file: file.to_string(),
        line: at.line,
        column: at.column,
        field: field.to_string(),
        message,
        hint: hint.to_string(),
    }
}

/// Parses and checks config text; `file` is the name used in errors.
pub fn parse(text: &str, file: &str) -> Result<Parsed, ConfigError> {
    let raw: Raw = serde_saphyr::from_str(text).map_err(|e| yaml_error(file, &e))?;
    let mut c = Checker {
        file,
        places: BTreeMap::new(),
    };
    let config = c.check(raw)?;
    Ok(Parsed {
        config,
        file: file.to_string(),
        places: c.places,
    })
}

/// serde-saphyr's error, one line, its place first: `file:line:column: error: yaml: …`.
fn yaml_error(file: &str, e: &serde_saphyr::Error) -> ConfigError {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    let msg = e.without_snippet().to_string();
    let msg = msg.lines().next().unwrap_or_default();
    let msg = msg
        .split_once(": ")
        .filter(|(a, _)| a.contains("line"))
        .map_or(msg, |(_, b)| b);
    let msg = msg.rsplit_once(" at line ").map_or(msg, |(a, _)| a);
    error_at(
        file,
        Pos { line, column },
        "yaml",
        msg.to_string(),
        "see docs/frontdoor.md for every field",
    )
}

struct Checker<'a> {
    file: &'a str,
    places: BTreeMap<&'static str, Pos>,
}

impl Checker<'_> {
    /// Records where `field` stands and hands the value on.
    fn at<'v, T>(&mut self, field: &'static str, s: &'v S<T>) -> &'v T {
        self.places.insert(field, Pos::from(s));
        &s.value
    }

    fn err<T>(
        &self,
        field: &str,
        at: impl Into<Pos>,
        message: String,
        hint: &str,
    ) -> Result<T, ConfigError> {
        Err(error_at(self.file, at.into(), field, message, hint))
    }

    /// Parses a string value with `FromStr`; the message says what it is not.
    fn value<T: FromStr>(
        &mut self,
        field: &'static str,
        s: &S<String>,
        what: &str,
        hint: &str,
    ) -> Result<T, ConfigError> {
        let v = self.at(field, s);
        match v.trim().parse() {
            Ok(t) => Ok(t),
            Err(_) => self.err(field, s, format!("`{v}` is not {what}"), hint),
        }
    }

    fn list<T: FromStr>(
        &mut self,
        field: &'static str,
        s: &S<Vec<S<String>>>,
        what: &str,
        hint: &str,
    ) -> Result<Vec<T>, ConfigError> {
        self.at(field, s);
        s.value
            .iter()
            .map(|item| match item.value.trim().parse() {
                Ok(t) => Ok(t),
                Err(_) => self.err(field, item, format!("`{}` is not {what}", item.value), hint),
            })
            .collect()
    }

    fn duration(&mut self, field: &'static str, s: &S<String>) -> Result<Duration, ConfigError> {
        let v = self.at(field, s);
        humantime::parse_duration(v.trim()).or_else(|e| {
            self.err(
                field,
                s,
                format!("`{v}` is not a duration: {e}"),
                "write it like 100ms or 2s",
            )
        })
    }

    fn opt_duration(
        &mut self,
        field: &'static str,
        s: &Option<S<String>>,
    ) -> Result<Option<Duration>, ConfigError> {
        s.as_ref().map(|s| self.duration(field, s)).transpose()
    }

    fn one_of<T: Copy>(
        &mut self,
        field: &'static str,
        s: &S<String>,
        what: &str,
        choices: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        let v = self.at(field, s);
        match choices.iter().find(|(name, _)| name == v) {
            Some((_, t)) => Ok(*t),
            None => {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                self.err(
                    field,
                    s,
                    format!("`{v}` is not {what}"),
                    &format!("use {}", names.join(" or ")),
                )
            }
        }
    }

    fn check(&mut self, raw: Raw) -> Result<FrontdoorConfig, ConfigError> {
        let interface = self.at("interface", &raw.interface).clone();
        let vip = self.vip(&raw.vip)?;
        let vrid = *self.at("vrid", &raw.vrid);
        let vrid =
            Vrid::new(vrid).or_else(|e| self.err("vrid", &raw.vrid, e.to_string(), "use 1-255"))?;
        let priority = *self.at("priority", &raw.priority);
        let priority = Priority::new(priority).or_else(|e| {
            self.err(
                "priority",
                &raw.priority,
                e.to_string(),
                "0 and 255 are reserved; use 1-254",
            )
        })?;
        let advert_interval = match &raw.advert_interval {
            None => None,
            Some(s) => {
                let d = self.duration("advert_interval", s)?;
                Some(AdvertInterval::try_from(d).or_else(|e: ParamError| {
                    self.err(
                        "advert_interval",
                        s,
                        e.to_string(),
                        "VRRPv3 counts in 10 ms steps, 10ms to 40.95s, e.g. 40ms",
                    )
                })?)
            }
        };
        let unicast_peers = match &raw.unicast_peers {
            Some(p) => self.list(
                "unicast_peers",
                p,
                "an IPv4 address",
                "list the other nodes' addresses",
            )?,
            None => Vec::new(),
        };
        let source = match &raw.source {
            Some(s) => Some(self.value::<Ipv4Addr>(
                "source",
                s,
                "an IPv4 address",
                "this node's own address",
            )?),
            None => None,
        };
        let checksum = self.one_of(
            "checksum",
            &raw.checksum,
            "a checksum mode",
            &[
                ("keepalived", Checksum::Keepalived),
                ("rfc9568", Checksum::Rfc9568),
            ],
        )?;
        let preempt = raw
            .preempt
            .as_ref()
            .map_or(crate::defaults::PREEMPT, |p| *self.at("preempt", p));
        let listen =
            self.value::<SocketAddr>("listen", &raw.listen, "address:port", "like 0.0.0.0:16443")?;
        let backends: Vec<SocketAddr> = self.list(
            "backends",
            &raw.backends,
            "address:port",
            "like 198.18.0.11:6443",
        )?;
        if backends.is_empty() {
            return self.err(
                "backends",
                &raw.backends,
                "no backends".into(),
                "list every apiserver as address:port",
            );
        }
        let balance = match &raw.balance {
            Some(b) => self.one_of(
                "balance",
                b,
                "a balancing mode",
                &[
                    ("round-robin", Balance::RoundRobin),
                    ("least-connections", Balance::LeastConnections),
                ],
            )?,
            None => Balance::RoundRobin,
        };
        self.at("health", &raw.health);
        let health = self.health(&raw.health.value)?;
        let metrics = self.at("metrics", &raw.metrics).trim();
        let metrics = if metrics.is_empty() || metrics == "off" {
            Metrics::Off
        } else {
            Metrics::Listen(self.value(
                "metrics",
                &raw.metrics,
                "address:port",
                "like 127.0.0.1:9100, or off",
            )?)
        };
        let local_weight = raw
            .local_weight
            .as_ref()
            .map(|w| *self.at("local_weight", w));
        let realtime_priority = match &raw.realtime_priority {
            Some(s) if *self.at("realtime_priority", s) > 99 => {
                return self.err(
                    "realtime_priority",
                    s,
                    format!("{} is not a real-time priority", s.value),
                    "give 1-99 (SCHED_FIFO), or 0 for ordinary scheduling",
                );
            }
            Some(s) => Some(s.value),
            None => None,
        };
        let vip_lifetime = self.opt_duration("vip_lifetime", &raw.vip_lifetime)?;
        if let (Some(d), Some(s)) = (vip_lifetime, &raw.vip_lifetime)
            && d < Duration::from_secs(1)
        {
            return self.err(
                "vip_lifetime",
                s,
                "the kernel counts address lifetimes in whole seconds".into(),
                "use 1s or more; 2s is the default",
            );
        }
        Ok(FrontdoorConfig {
            interface,
            vip,
            vrid,
            priority,
            advert_interval,
            unicast_peers,
            source,
            checksum,
            preempt,
            listen,
            backends,
            balance,
            health,
            metrics,
            local_weight,
            vip_lifetime,
            handover_timeout: self.opt_duration("handover_timeout", &raw.handover_timeout)?,
            preempt_delay: self.opt_duration("preempt_delay", &raw.preempt_delay)?,
            drain_timeout: self.opt_duration("drain_timeout", &raw.drain_timeout)?,
            connect_timeout: self.opt_duration("connect_timeout", &raw.connect_timeout)?,
            idle_timeout: self.opt_duration("idle_timeout", &raw.idle_timeout)?,
            max_connections: raw
                .max_connections
                .as_ref()
                .map(|m| *self.at("max_connections", m)),
            close_sessions_on_down: raw
                .close_sessions_on_down
                .as_ref()
                .map(|c| *self.at("close_sessions_on_down", c)),
            realtime_priority,
        })
    }

    fn vip(&mut self, s: &S<String>) -> Result<VipCidr, ConfigError> {
        let v = self.at("vip", s).trim();
        let (a, prefix) = v.split_once('/').unwrap_or((v, "32"));
        let Ok(address) = a.parse::<Ipv4Addr>() else {
            return self.err(
                "vip",
                s,
                format!("`{a}` is not an IPv4 address"),
                "write it like 198.18.0.10/24",
            );
        };
        match prefix.parse::<u8>() {
            Ok(prefix) if prefix <= 32 => Ok(VipCidr { address, prefix }),
            _ => self.err(
                "vip",
                s,
                format!("`/{prefix}` is not a prefix length"),
                "use 0-32",
            ),
        }
    }

    fn health(&mut self, h: &RawHealth) -> Result<HealthConfig, ConfigError> {
        let kind = self.one_of(
            "health.kind",
            &h.kind,
            "a check kind",
            &[
                ("https", HealthKind::Https),
                ("http", HealthKind::Http),
                ("tcp", HealthKind::Tcp),
            ],
        )?;
        let path = h.path.as_ref().map(|p| self.at("health.path", p).clone());
        let ca =
            h.ca.as_ref()
                .map(|p| PathBuf::from(self.at("health.ca", p)));
        if kind == HealthKind::Https && ca.is_none() {
            return self.err(
                "health.kind",
                &h.kind,
                "https checks need `ca:`".into(),
                "give the cluster CA, e.g. /etc/kubernetes/pki/ca.crt",
            );
        }
        let interval = self.duration("health.interval", &h.interval)?;
        if interval < Duration::from_millis(10) {
            return self.err(
                "health.interval",
                &h.interval,
                format!("{} is shorter than 10ms", h.interval.value),
                "use 100ms or more",
            );
        }
        let (fall, rise) = (
            *self.at("health.fall", &h.fall),
            *self.at("health.rise", &h.rise),
        );
        for (field, s) in [("health.fall", &h.fall), ("health.rise", &h.rise)] {
            if s.value == 0 {
                return self.err(
                    field,
                    s,
                    "fall and rise must be at least 1".into(),
                    "2 is usual",
                );
            }
        }
        let client_cert = h
            .client_cert
            .as_ref()
            .map(|p| PathBuf::from(self.at("health.client_cert", p)));
        let client_key = h
            .client_key
            .as_ref()
            .map(|p| PathBuf::from(self.at("health.client_key", p)));
        // Only https uses them (as before: other kinds ignore them).
        if let (HealthKind::Https, Some(s)) = (
            kind,
            match (&h.client_cert, &h.client_key) {
                (Some(c), None) => Some(c),
                (None, Some(k)) => Some(k),
                _ => None,
            },
        ) {
            return self.err(
                "health.client_cert",
                s,
                "client_cert and client_key go together".into(),
                "give both or neither",
            );
        }
        Ok(HealthConfig {
            kind,
            path,
            ca,
            interval,
            fall,
            rise,
            port: h.port.as_ref().map(|p| *self.at("health.port", p)),
            client_cert,
            client_key,
            timeout: self.opt_duration("health.timeout", &h.timeout)?,
        })
    }
}

#[cfg(test)]
mod tests;
