//! The front door daemon: one process per control-plane node that owns the VIP (VRRP) and
//! balances TCP to the apiservers. Wiring only: the parts are `vip::run`, the pool, the
//! proxy, the health checks and the metrics server.
//!
//! Priority follows health: while this node's own backend is not ready its priority drops by
//! `local_weight`, and with no healthy backend at all by twice that, so the VIP moves at once
//! to a node that can serve, and stays somewhere when none can.
//!
//! Shutdown (SIGTERM/SIGINT) is make-before-break: priority 0, keep the VIP and keep serving
//! until the new master is heard, release the VIP, then drain open connections.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::DaemonConfig;
use crate::pool::{HealthSummary, Pool};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Vip(#[from] vip::VipError),
    #[error("cannot listen on {0}: {1}")]
    Listen(std::net::SocketAddr, #[source] std::io::Error),
    #[error("metrics on {0}: {1}")]
    Metrics(std::net::SocketAddr, #[source] std::io::Error),
    #[error("health checks: {0}")]
    Health(#[from] crate::health::HealthError),
    #[error("interface {0} has no IPv4 address; give `source:` in the config")]
    NoSource(String),
}

/// The VRRP health input for a pool summary (pure; see the module docs).
///
/// No healthy backend sinks the priority by twice `local_weight` rather than leaving VRRP
/// (Fault): when every backend is down at once, as while etcd elects a leader, every node
/// would leave and nobody would hold the VIP; sunk, the VIP stays where it is and still moves
/// at once to any node that can serve.
pub fn vrrp_health(s: &HealthSummary, local_weight: u8) -> vrrp::Health {
    let weight = if s.healthy == 0 {
        -2 * i32::from(local_weight)
    } else if s.local_ready == Some(false) {
        -i32::from(local_weight)
    } else {
        0
    };
    vrrp::Health {
        weight,
        fault: false,
    }
}

/// Prometheus/OpenMetrics text for the VRRP side, appended to the proxy's families.
pub fn render_vrrp(out: &mut String, st: &vip::Status) {
    let state = match st.state {
        vrrp::State::Initialize => "initialize",
        vrrp::State::Backup => "backup",
        vrrp::State::Master => "master",
        vrrp::State::Fault => "fault",
    };
    let _ = writeln!(
        out,
        "# HELP kubeha_frontdoor_vrrp_state Current VRRP state (1 = this state)."
    );
    let _ = writeln!(out, "# TYPE kubeha_frontdoor_vrrp_state gauge");
    for s in ["initialize", "backup", "master", "fault"] {
        let _ = writeln!(
            out,
            "kubeha_frontdoor_vrrp_state{{state=\"{s}\"}} {}",
            u8::from(s == state)
        );
    }
    let _ = writeln!(
        out,
        "# HELP kubeha_frontdoor_vrrp_priority Effective VRRP priority."
    );
    let _ = writeln!(out, "# TYPE kubeha_frontdoor_vrrp_priority gauge");
    let _ = writeln!(
        out,
        "kubeha_frontdoor_vrrp_priority {}",
        st.effective_priority
    );
    let _ = writeln!(
        out,
        "# HELP kubeha_frontdoor_vip_held Whether this node holds the VIP."
    );
    let _ = writeln!(out, "# TYPE kubeha_frontdoor_vip_held gauge");
    let _ = writeln!(out, "kubeha_frontdoor_vip_held {}", u8::from(st.holds_vip));
    for (name, help, v) in [
        (
            "vrrp_transitions",
            "VRRP state transitions.",
            st.transitions,
        ),
        ("vrrp_adverts_sent", "VRRP adverts sent.", st.adverts_sent),
        (
            "vrrp_adverts_received",
            "VRRP adverts accepted.",
            st.counters.adverts_accepted,
        ),
        (
            "vrrp_gratuitous_arps",
            "Gratuitous ARPs sent.",
            st.gratuitous_arps,
        ),
    ] {
        let _ = writeln!(out, "# HELP kubeha_frontdoor_{name} {help}");
        let _ = writeln!(out, "# TYPE kubeha_frontdoor_{name} counter");
        let _ = writeln!(out, "kubeha_frontdoor_{name}_total {v}");
    }
    let _ = writeln!(
        out,
        "# HELP kubeha_frontdoor_vrrp_dropped VRRP packets dropped, by reason."
    );
    let _ = writeln!(out, "# TYPE kubeha_frontdoor_vrrp_dropped counter");
    for (reason, v) in st.counters.iter() {
        if reason.starts_with("bad_")
            || matches!(
                reason,
                "vrid_mismatch"
                    | "foreign_source"
                    | "interval_mismatch"
                    | "auth_mismatch"
                    | "address_mismatch"
                    | "owner_conflict"
            )
        {
            let _ = writeln!(
                out,
                "kubeha_frontdoor_vrrp_dropped_total{{reason=\"{reason}\"}} {v}"
            );
        }
    }
    if let Some(m) = st.master {
        let _ = writeln!(
            out,
            "# HELP kubeha_frontdoor_vrrp_master Source of the last accepted advert."
        );
        let _ = writeln!(out, "# TYPE kubeha_frontdoor_vrrp_master gauge");
        let _ = writeln!(out, "kubeha_frontdoor_vrrp_master{{address=\"{m}\"}} 1");
    }
}

async fn resolve_source(cfg: &DaemonConfig) -> Result<Ipv4Addr, DaemonError> {
    if let Some(s) = cfg.source {
        return Ok(s);
    }
    let nl = vip::address::Netlink::connect()?;
    let link = nl.link(&cfg.interface).await?;
    nl.v4_addresses(link.index)
        .await?
        .into_iter()
        .map(|(a, _)| a)
        .find(|a| *a != cfg.vip)
        .ok_or_else(|| DaemonError::NoSource(cfg.interface.clone()))
}

/// Runs the daemon until `stop` is cancelled, then hands over and drains.
pub async fn run(cfg: DaemonConfig, stop: CancellationToken) -> Result<(), DaemonError> {
    let source = resolve_source(&cfg).await?;
    let pool =
        Arc::new(Pool::new(cfg.backends.clone(), cfg.balance).with_local_ip(IpAddr::V4(source)));

    // Bind first: a port already taken is a configuration error, reported before any VRRP.
    let listener = crate::proxy::bind(cfg.proxy.listen, cfg.proxy.backlog)
        .map_err(|e| DaemonError::Listen(cfg.proxy.listen, e))?;
    let metrics_listener = match cfg.metrics {
        Some(a) => Some((
            a,
            tokio::net::TcpListener::bind(a)
                .await
                .map_err(|e| DaemonError::Metrics(a, e))?,
        )),
        None => None,
    };

    let proxy_stop = CancellationToken::new();
    let checks_stop = CancellationToken::new();
    let vrrp_stop = CancellationToken::new();

    let checks = tokio::spawn(crate::health::run_health_checks(
        cfg.check.clone(),
        pool.clone(),
        checks_stop.clone(),
    ));
    let proxy = tokio::spawn(crate::proxy::serve(
        listener,
        cfg.proxy.clone(),
        pool.clone(),
        proxy_stop.clone(),
    ));

    // Pool summary -> VRRP health, at once on every change.
    let (health_tx, health_rx) = watch::channel(vrrp_health(&pool.summary(), cfg.local_weight));
    let mut summaries = pool.subscribe();
    let weight = cfg.local_weight;
    let forward = tokio::spawn(async move {
        while summaries.changed().await.is_ok() {
            let s = *summaries.borrow_and_update();
            health_tx.send_if_modified(|h| {
                let new = vrrp_health(&s, weight);
                let changed = *h != new;
                *h = new;
                changed
            });
        }
    });

    let (status_tx, status_rx) = watch::channel(vip::Status::default());
    let metrics_stop = CancellationToken::new();
    let metrics = metrics_listener.map(|(_, l)| {
        let pool = pool.clone();
        let status = status_rx.clone();
        let render: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(move || {
            let mut out = String::with_capacity(8192);
            pool.metrics().encode_into(&mut out);
            render_vrrp(&mut out, &status.borrow());
            crate::metrics::finish_render(&mut out);
            out
        });
        tokio::spawn(crate::metrics::serve_metrics_on(
            l,
            render,
            metrics_stop.clone(),
        ))
    });

    let mut router = vrrp::Config::new(cfg.vrid.get(), cfg.priority.get(), source, vec![cfg.vip]);
    router.advert_interval_cs = cfg.advert_interval_cs;
    router.unicast_peers = cfg.unicast_peers.clone();
    router.send_checksum = cfg.checksum;
    router.preempt = cfg.preempt;
    let speaker_cfg = vip::SpeakerConfig {
        interface: cfg.interface.clone(),
        prefix: cfg.vip_prefix,
        router,
        vip_lifetime: cfg.vip_lifetime,
        handover_timeout: cfg.handover_timeout,
    };
    tracing::info!(%source, vip = %cfg.vip, priority = cfg.priority.get(), backends = cfg.backends.len(), "front door starting");
    let mut speaker = tokio::spawn(vip::run(
        speaker_cfg,
        health_rx,
        vrrp_stop.clone(),
        status_tx,
    ));

    // Run until asked to stop, or until the VRRP side fails.
    let early = tokio::select! {
        _ = stop.cancelled() => None,
        r = &mut speaker => Some(r),
    };
    let speaker_result = match early {
        Some(r) => r,
        None => {
            tracing::info!("stopping: handing the VIP over before draining");
            vrrp_stop.cancel();
            // returns once the VIP is released: new master heard, or the handover timeout
            speaker.await
        }
    };
    proxy_stop.cancel();
    let _ = proxy.await;
    checks_stop.cancel();
    metrics_stop.cancel();
    forward.abort();
    let _ = checks.await;
    if let Some(m) = metrics {
        let _ = m.await;
    }
    tracing::info!("front door stopped");
    match speaker_result {
        Ok(r) => r.map_err(DaemonError::from),
        Err(join) => Err(DaemonError::Vip(vip::VipError::Netlink(
            std::io::Error::other(join.to_string()),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_healthy_backend_sinks_priority_below_a_node_that_can_serve() {
        let s = |healthy, local_ready| HealthSummary {
            total: 3,
            healthy,
            local_ready,
        };
        let w = |weight| vrrp::Health {
            weight,
            fault: false,
        };
        // every node without backends sinks alike, so the holder keeps the VIP (no Fault)
        assert_eq!(vrrp_health(&s(0, Some(false)), 30), w(-60));
        assert_eq!(vrrp_health(&s(0, None), 30), w(-60));
        // a node that can serve through others still outranks one that cannot serve at all
        assert_eq!(vrrp_health(&s(2, Some(false)), 30), w(-30));
        assert_eq!(vrrp_health(&s(3, Some(true)), 30), w(0));
        assert_eq!(vrrp_health(&s(3, None), 30), w(0));
    }

    #[test]
    fn vrrp_metrics_name_the_state_and_drops() {
        let mut st = vip::Status {
            holds_vip: true,
            effective_priority: 140,
            ..Default::default()
        };
        st.state = vrrp::State::Master;
        st.counters.bad_ttl = 3;
        let mut out = String::new();
        render_vrrp(&mut out, &st);
        assert!(out.contains("kubeha_frontdoor_vrrp_state{state=\"master\"} 1"));
        assert!(out.contains("kubeha_frontdoor_vrrp_state{state=\"backup\"} 0"));
        assert!(out.contains("kubeha_frontdoor_vip_held 1"));
        assert!(out.contains("kubeha_frontdoor_vrrp_dropped_total{reason=\"bad_ttl\"} 3"));
    }
}
