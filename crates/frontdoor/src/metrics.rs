//! Front-door metrics: plain atomic counters and gauges (the `prometheus-client` types are
//! an `Arc` around one atomic each), a Prometheus/OpenMetrics text rendering, and a tiny
//! `GET /metrics` HTTP server.
//!
//! Every per-backend handle is resolved once when the [`Metrics`] value is built, so the
//! data path only ever touches an atomic, never a label map.
//!
//! Names (all prefixed `kubeha_frontdoor_`):
//!
//! | name | type | labels |
//! |---|---|---|
//! | `connections_total` | counter | |
//! | `connections_active` | gauge | |
//! | `bytes_in_total` (client to backend) | counter | |
//! | `bytes_out_total` (backend to client) | counter | |
//! | `no_backend_total` (client closed: no backend reachable) | counter | |
//! | `idle_timeouts_total` | counter | |
//! | `sessions_closed_backend_down_total` (open sessions closed when their backend left rotation) | counter | |
//! | `sessions_closed_vip_lost_total` (sessions on the VIP closed when this node lost it) | counter | |
//! | `backends_healthy` | gauge | |
//! | `backend_up` | gauge | `backend` |
//! | `backend_connections_active` | gauge | `backend` |
//! | `backend_connections_total` | counter | `backend` |
//! | `backend_connect_errors_total` | counter | `backend` |
//! | `backend_ejections_total` | counter | `backend` |
//! | `health_checks_total` | counter | `backend`, `result` = `success` or `failure` |
//!
//! The byte counters are fed in batches: an open session adds its count every 64 KiB and
//! when it ends, so they may lag by less than 64 KiB per open session.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Default address of the metrics endpoint: localhost only (the config's default).
pub use frontdoor_config::DEFAULT_METRICS_ADDR;

/// Content type of [`Metrics::render`] output (OpenMetrics 1.0 text, which Prometheus
/// scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;

/// Handles for one backend (index-aligned with the pool's backends).
#[derive(Debug, Clone, Default)]
pub struct BackendMetrics {
    /// 1 while the backend is in rotation, 0 otherwise. This is also the state the balancer
    /// reads, so the metric can never disagree with the data path.
    pub up: Gauge,
    /// Proxied connections currently open to this backend (least-connections reads it).
    pub active: Gauge,
    /// Proxied connections established to this backend.
    pub connections: Counter,
    /// Connect attempts that failed or timed out.
    pub connect_errors: Counter,
    /// Times the backend was taken out of rotation (passive ejection or failed checks).
    pub ejections: Counter,
    /// Successful active health checks.
    pub checks_ok: Counter,
    /// Failed active health checks.
    pub checks_failed: Counter,
}

/// All front-door metrics plus the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Client connections accepted.
    pub connections: Counter,
    /// Client connections currently open (including those still looking for a backend).
    pub active: Gauge,
    /// Bytes read from clients and forwarded to backends.
    pub bytes_in: Counter,
    /// Bytes read from backends and forwarded to clients.
    pub bytes_out: Counter,
    /// Client connections closed because no healthy backend accepted a connect.
    pub no_backend: Counter,
    /// Sessions closed by the idle timeout.
    pub idle_timeouts: Counter,
    /// Open sessions closed because their backend left rotation (`close_sessions_on_down`).
    pub closed_backend_down: Counter,
    /// Sessions that came in on the VIP, closed when this node lost it.
    pub closed_vip_lost: Counter,
    /// Backends currently in rotation.
    pub healthy: Gauge,
    /// Per-backend handles, index-aligned with the backend list.
    pub backends: Vec<BackendMetrics>,
}

impl Metrics {
    /// Builds the registry for the given backends (labelled by their `ip:port`).
    pub fn new(backends: &[SocketAddr]) -> Self {
        let mut registry = Registry::with_prefix("kubeha_frontdoor");
        let connections = Counter::default();
        let active = Gauge::default();
        let bytes_in = Counter::default();
        let bytes_out = Counter::default();
        let no_backend = Counter::default();
        let idle_timeouts = Counter::default();
        let closed_backend_down = Counter::default();
        let closed_vip_lost = Counter::default();
        let healthy = Gauge::default();
        registry.register(
            "connections",
            "Client connections accepted",
            connections.clone(),
        );
        registry.register(
            "connections_active",
            "Client connections open",
            active.clone(),
        );
        registry.register(
            "bytes_in",
            "Bytes from clients to backends",
            bytes_in.clone(),
        );
        registry.register(
            "bytes_out",
            "Bytes from backends to clients",
            bytes_out.clone(),
        );
        registry.register(
            "no_backend",
            "Client connections closed because no backend accepted a connect",
            no_backend.clone(),
        );
        registry.register(
            "idle_timeouts",
            "Sessions closed by the idle timeout",
            idle_timeouts.clone(),
        );
        registry.register(
            "sessions_closed_backend_down",
            "Open sessions closed because their backend left rotation",
            closed_backend_down.clone(),
        );
        registry.register(
            "sessions_closed_vip_lost",
            "Sessions that came in on the VIP, closed when this node lost it",
            closed_vip_lost.clone(),
        );
        registry.register("backends_healthy", "Backends in rotation", healthy.clone());

        let up = Family::<Labels, Gauge>::default();
        let b_active = Family::<Labels, Gauge>::default();
        let b_conns = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        let ejections = Family::<Labels, Counter>::default();
        let checks = Family::<Labels, Counter>::default();
        let per = backends
            .iter()
            .map(|addr| {
                let l = vec![("backend".to_owned(), addr.to_string())];
                let result = |r: &str| {
                    let mut l = l.clone();
                    l.push(("result".to_owned(), r.to_owned()));
                    l
                };
                BackendMetrics {
                    up: up.get_or_create_owned(&l),
                    active: b_active.get_or_create_owned(&l),
                    connections: b_conns.get_or_create_owned(&l),
                    connect_errors: errors.get_or_create_owned(&l),
                    ejections: ejections.get_or_create_owned(&l),
                    checks_ok: checks.get_or_create_owned(&result("success")),
                    checks_failed: checks.get_or_create_owned(&result("failure")),
                }
            })
            .collect();
        registry.register("backend_up", "1 if the backend is in rotation", up);
        registry.register(
            "backend_connections_active",
            "Proxied connections open to the backend",
            b_active,
        );
        registry.register(
            "backend_connections",
            "Proxied connections established to the backend",
            b_conns,
        );
        registry.register(
            "backend_connect_errors",
            "Failed or timed-out connects to the backend",
            errors,
        );
        registry.register(
            "backend_ejections",
            "Times the backend was taken out of rotation",
            ejections,
        );
        registry.register("health_checks", "Active health check results", checks);
        Metrics {
            registry,
            connections,
            active,
            bytes_in,
            bytes_out,
            no_backend,
            idle_timeouts,
            closed_backend_down,
            closed_vip_lost,
            healthy,
            backends: per,
        }
    }

    /// Adds a collector (e.g. the VRRP side's) to the registry.
    pub fn register_collector(&mut self, c: Box<dyn prometheus_client::collector::Collector>) {
        self.registry.register_collector(c);
    }

    /// Appends the metric families without the final `# EOF` line, so a caller can
    /// concatenate its own families and then call [`finish_render`].
    pub fn encode_into(&self, out: &mut String) {
        // Writing into a String cannot fail.
        let _ = encode_registry(out, &self.registry);
    }

    /// The complete OpenMetrics text exposition (ends with `# EOF`).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.encode_into(&mut out);
        finish_render(&mut out);
        out
    }
}

/// Appends the OpenMetrics `# EOF` terminator.
pub fn finish_render(out: &mut String) {
    let _ = encode_eof(out);
}

/// Serves `GET /metrics` (the body is `render()`, content type [`CONTENT_TYPE`]) on `addr`
/// until `shutdown` is cancelled; other paths get 404, other methods 405. Open scrape
/// connections are dropped at shutdown.
pub async fn serve_metrics(
    addr: SocketAddr,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    serve_metrics_on(listener, render, shutdown).await
}

/// [`serve_metrics`] on an already-bound listener (tests bind port 0).
pub async fn serve_metrics_on(
    listener: TcpListener,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        while conns.try_join_next().is_some() {}
        let (stream, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let render = render.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let render = render.clone();
                async move { Ok::<_, Infallible>(respond(&req, &*render)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
    Ok(())
}

fn respond(
    req: &Request<Incoming>,
    render: &(dyn Fn() -> String + Send + Sync),
) -> Response<Full<Bytes>> {
    let (status, ctype, body) = if req.uri().path() != "/metrics" {
        (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        )
    } else if req.method() != Method::GET && req.method() != Method::HEAD {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n".to_owned(),
        )
    } else {
        (StatusCode::OK, CONTENT_TYPE, render())
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_names_and_labels() {
        let addrs: Vec<SocketAddr> = vec!["198.18.0.1:6443".parse().unwrap()];
        let m = Metrics::new(&addrs);
        m.connections.inc();
        m.bytes_in.inc_by(42);
        m.backends[0].up.set(1);
        m.backends[0].checks_failed.inc();
        let text = m.render();
        assert!(
            text.contains("kubeha_frontdoor_connections_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("kubeha_frontdoor_bytes_in_total 42\n"),
            "{text}"
        );
        assert!(
            text.contains("kubeha_frontdoor_backend_up{backend=\"198.18.0.1:6443\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "kubeha_frontdoor_health_checks_total{backend=\"198.18.0.1:6443\",result=\"failure\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE kubeha_frontdoor_backend_connect_errors counter"));
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
