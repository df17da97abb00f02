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

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use prometheus_client::encoding::text::encode_registry;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::DaemonConfig;
use crate::pool::{HealthSummary, Pool};
use crate::vrrp_metrics::VrrpCollector;

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
/// would leave and nobody would hold the VIP; sunk, and preempting nobody (`cannot_serve`),
/// the VIP stays where it is, and still moves at once to any node that can serve.
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
        cannot_serve: s.healthy == 0,
    }
}

/// Prometheus/OpenMetrics text for the VRRP side alone (the daemon registers
/// [`VrrpCollector`] beside the proxy's metrics; this renders one status the same way).
pub fn render_vrrp(out: &mut String, st: &vip::Status) {
    let mut registry = Registry::with_prefix("kubeha_frontdoor");
    registry.register_collector(Box::new(VrrpCollector::new(watch::channel(st.clone()).1)));
    // Writing into a String cannot fail.
    let _ = encode_registry(out, &registry);
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
    // The speaker's status, also read by the VRRP metrics at each scrape.
    let (status_tx, status_rx) = watch::channel(vip::Status::default());
    let status_rx_proxy = status_rx.clone();
    let pool = Arc::new(
        Pool::new(cfg.backends.clone(), cfg.balance)
            .with_local_ip(IpAddr::V4(source))
            .with_collector(Box::new(VrrpCollector::new(status_rx))),
    );

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
    // Whether this node holds the VIP, for the proxy to end the VIP's sessions when it goes.
    let (held_tx, held_rx) = watch::channel(false);
    let mut statuses = status_rx_proxy;
    let held_forward = tokio::spawn(async move {
        while statuses.changed().await.is_ok() {
            let held = statuses.borrow_and_update().holds_vip;
            held_tx.send_if_modified(|h| std::mem::replace(h, held) != held);
        }
    });
    let proxy = tokio::spawn(crate::proxy::serve_with_vip(
        listener,
        cfg.proxy.clone(),
        pool.clone(),
        proxy_stop.clone(),
        Some(crate::proxy::VipSessions {
            address: IpAddr::V4(cfg.vip),
            held: held_rx,
        }),
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

    let metrics_stop = CancellationToken::new();
    let metrics = metrics_listener.map(|(_, l)| {
        let pool = pool.clone();
        let render: Arc<dyn Fn() -> String + Send + Sync> =
            Arc::new(move || pool.metrics().render());
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
    router.preempt_delay = cfg.preempt_delay;
    let speaker_cfg = vip::SpeakerConfig {
        interface: cfg.interface.clone(),
        prefix: cfg.vip_prefix,
        router,
        vip_lifetime: cfg.vip_lifetime,
        handover_timeout: cfg.handover_timeout,
    };
    tracing::info!(%source, vip = %cfg.vip, priority = cfg.priority.get(), backends = cfg.backends.len(), "front door starting");
    // Its own thread, real-time where allowed: adverts and deadlines on time on a busy node.
    let mut speaker = vip::spawn(
        speaker_cfg,
        health_rx,
        vrrp_stop.clone(),
        status_tx,
        cfg.scheduling,
    )
    .map_err(|e| DaemonError::Vip(vip::VipError::Thread(e)))?;

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
    held_forward.abort();
    let _ = checks.await;
    if let Some(m) = metrics {
        let _ = m.await;
    }
    tracing::info!("front door stopped");
    match speaker_result {
        Ok(r) => r.map_err(DaemonError::from),
        Err(_) => Err(DaemonError::Vip(vip::VipError::Thread(
            std::io::Error::other(
                "the VRRP thread ended without a result (a bug: see the log above)",
            ),
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
            cannot_serve: false,
        };
        let sunk = vrrp::Health {
            weight: -60,
            fault: false,
            cannot_serve: true,
        };
        // every node without backends sinks alike and preempts nobody, so the holder keeps
        // the VIP (no Fault)
        assert_eq!(vrrp_health(&s(0, Some(false)), 30), sunk);
        assert_eq!(vrrp_health(&s(0, None), 30), sunk);
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
