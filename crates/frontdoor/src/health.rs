//! Active health checks: TCP connect, or HTTP / HTTPS `GET <path>` where only status 200 is
//! healthy. HTTPS trusts only the given CA and verifies the certificate against the
//! backend's IP address (apiserver and etcd certificates carry their IPs as SANs);
//! verification is never disabled.
//!
//! Results feed [`Pool::report_check`], which applies `fall` / `rise` (see [`crate::pool`]).
//! The probe itself ([`Prober::probe`]) is a thin adapter over sockets with no state.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use crate::pool::Pool;

/// A client certificate and key (PEM) for backends that require mutual TLS.
#[derive(Clone)]
pub struct ClientIdentity {
    /// Certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// Private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity").finish_non_exhaustive()
    }
}

/// What a check does.
#[derive(Debug, Clone)]
pub enum CheckKind {
    /// Healthy if a TCP connect succeeds.
    Tcp,
    /// Healthy if `GET path` over plain HTTP/1.1 answers 200.
    Http {
        /// Request path, e.g. `/health`.
        path: String,
    },
    /// Healthy if `GET path` over HTTPS answers 200, with only `ca_pem` trusted.
    Https {
        /// Request path, e.g. `/readyz`.
        path: String,
        /// PEM bundle of the only trusted CA(s).
        ca_pem: Vec<u8>,
        /// Optional client certificate for mutual TLS.
        client: Option<ClientIdentity>,
    },
}

/// Active check settings.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// Probe type.
    pub kind: CheckKind,
    /// Time between the starts of two checks of one backend.
    pub interval: Duration,
    /// Bound on one check (connect, TLS handshake, request and response head).
    pub timeout: Duration,
    /// Consecutive failures that take a confirmed backend out of rotation.
    pub fall: u32,
    /// Consecutive successes that bring a down backend back.
    pub rise: u32,
    /// Port to check instead of the backend's port (e.g. etcd's metrics port 2381 while
    /// proxying to 2379). The IP is always the backend's.
    pub check_port: Option<u16>,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            kind: CheckKind::Tcp,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            fall: 3,
            rise: 2,
            check_port: None,
        }
    }
}

/// A check that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The CA PEM holds no certificate.
    #[error("CA PEM contains no certificate")]
    NoCa,
    /// PEM parsing failed.
    #[error("PEM: {0}")]
    Pem(#[from] rustls_pki_types::pem::Error),
    /// rustls rejected the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The path is not a valid request target.
    #[error("invalid check path {0:?}")]
    Path(String),
}

/// Why one probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The probe exceeded its timeout.
    #[error("timed out")]
    Timeout,
    /// TCP connect failed.
    #[error("connect: {0}")]
    Connect(io::Error),
    /// TLS handshake failed (including certificate verification).
    #[error("TLS: {0}")]
    Tls(io::Error),
    /// HTTP exchange failed.
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// The server answered something other than 200.
    #[error("status {0}")]
    Status(StatusCode),
}

/// A prepared check (the TLS configuration is built once).
#[derive(Debug, Clone)]
pub struct Prober {
    kind: Prepared,
}

#[derive(Clone)]
enum Prepared {
    Tcp,
    Http(hyper::Uri),
    Https(hyper::Uri, TlsConnector),
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Prepared::Tcp => f.write_str("Tcp"),
            Prepared::Http(uri) => write!(f, "Http({uri})"),
            Prepared::Https(uri, _) => write!(f, "Https({uri})"),
        }
    }
}

fn parse_path(path: &str) -> Result<hyper::Uri, HealthError> {
    let uri: hyper::Uri = path
        .parse()
        .map_err(|_| HealthError::Path(path.to_owned()))?;
    if uri.scheme().is_some() || !path.starts_with('/') {
        return Err(HealthError::Path(path.to_owned()));
    }
    Ok(uri)
}

/// A rustls client configuration (aws-lc-rs provider) that trusts only the CA(s) in
/// `ca_pem`, optionally presenting a client certificate.
pub fn tls_client_config(
    ca_pem: &[u8],
    client: Option<&ClientIdentity>,
) -> Result<Arc<ClientConfig>, HealthError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert?)?;
    }
    if roots.is_empty() {
        return Err(HealthError::NoCa);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let chain =
                CertificateDer::pem_slice_iter(&id.cert_pem).collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_slice(&id.key_pem)?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl Prober {
    /// Prepares a check (parses the path, builds the TLS configuration).
    pub fn new(kind: &CheckKind) -> Result<Self, HealthError> {
        let kind = match kind {
            CheckKind::Tcp => Prepared::Tcp,
            CheckKind::Http { path } => Prepared::Http(parse_path(path)?),
            CheckKind::Https {
                path,
                ca_pem,
                client,
            } => Prepared::Https(
                parse_path(path)?,
                TlsConnector::from(tls_client_config(ca_pem, client.as_ref())?),
            ),
        };
        Ok(Prober { kind })
    }

    /// One probe of `addr`, bounded by `timeout`.
    pub async fn probe(&self, addr: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
        match tokio::time::timeout(timeout, self.probe_unbounded(addr)).await {
            Ok(r) => r,
            Err(_) => Err(ProbeError::Timeout),
        }
    }

    async fn probe_unbounded(&self, addr: SocketAddr) -> Result<(), ProbeError> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(ProbeError::Connect)?;
        let _ = tcp.set_nodelay(true);
        match &self.kind {
            Prepared::Tcp => Ok(()),
            Prepared::Http(uri) => http_get(tcp, addr, uri).await,
            Prepared::Https(uri, tls) => {
                let name = ServerName::from(addr.ip());
                let stream = tls.connect(name, tcp).await.map_err(ProbeError::Tls)?;
                http_get(stream, addr, uri).await
            }
        }
    }
}

async fn http_get<S>(io: S, addr: SocketAddr, uri: &hyper::Uri) -> Result<(), ProbeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let req = Request::get(uri.clone())
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::USER_AGENT, "kubeha-frontdoor")
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|_| ProbeError::Status(StatusCode::BAD_REQUEST))?;
    let exchange = sender.send_request(req);
    tokio::pin!(conn, exchange);
    let status = tokio::select! {
        r = &mut exchange => r?.status(),
        r = &mut conn => {
            // With `Connection: close` the connection may finish first while the response
            // waits in the channel; a connection error means there is none.
            r?;
            exchange.await?.status()
        }
    };
    if status == StatusCode::OK {
        Ok(())
    } else {
        Err(ProbeError::Status(status))
    }
}

/// Checks every backend of `pool` every `check.interval` (the first check at once) until
/// `shutdown` is cancelled. Fails only if the check cannot be set up (bad CA or path).
pub async fn run_health_checks(
    check: HealthCheck,
    pool: Arc<Pool>,
    shutdown: CancellationToken,
) -> Result<(), HealthError> {
    let prober = Arc::new(Prober::new(&check.kind)?);
    let check = Arc::new(check);
    let mut tasks = JoinSet::new();
    for (idx, backend) in pool.addrs().iter().enumerate() {
        let target = SocketAddr::new(backend.ip(), check.check_port.unwrap_or(backend.port()));
        let (pool, prober, check, shutdown) = (
            pool.clone(),
            prober.clone(),
            check.clone(),
            shutdown.clone(),
        );
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(check.interval.max(Duration::from_millis(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let result = tokio::select! {
                    () = shutdown.cancelled() => return,
                    r = prober.probe(target, check.timeout) => r,
                };
                if let Err(e) = &result {
                    tracing::debug!(backend = %pool.addrs()[idx], %target, error = %e, "check failed");
                }
                pool.report_check(idx, result.is_ok(), check.fall, check.rise);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_validation() {
        assert!(parse_path("/readyz").is_ok());
        assert!(parse_path("/health?x=1").is_ok());
        assert!(parse_path("readyz").is_err());
        assert!(parse_path("http://x/readyz").is_err());
    }

    #[test]
    fn ca_required() {
        assert!(matches!(
            tls_client_config(b"", None),
            Err(HealthError::NoCa)
        ));
        assert!(matches!(
            tls_client_config(b"not pem", None),
            Err(HealthError::NoCa)
        ));
    }
}
