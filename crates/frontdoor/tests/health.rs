//! Active health checks on real loopback sockets.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use frontdoor::health::{CheckKind, HealthCheck, ProbeError, Prober, run_health_checks};
use frontdoor::pool::{Balance, Pool};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

fn fast(kind: CheckKind, fall: u32, rise: u32) -> HealthCheck {
    HealthCheck {
        kind,
        interval: Duration::from_millis(30),
        timeout: Duration::from_secs(1),
        fall,
        rise,
        check_port: None,
    }
}

fn http(path: &str) -> CheckKind {
    CheckKind::Http {
        path: path.to_owned(),
    }
}

#[tokio::test]
async fn ejected_backend_returns_through_rise_http_checks() {
    let stop = CancellationToken::new();
    // The backend is down: the proxy ejects it on the first client connect.
    let port = closed_port().await;
    let p = start_proxy(vec![port], Balance::RoundRobin, test_config());
    let mut rx = p.pool.subscribe();
    let s = bounded(TcpStream::connect(p.addr)).await.unwrap();
    bounded(rx.changed()).await.unwrap();
    assert_eq!(rx.borrow_and_update().healthy, 0);
    assert!(!p.pool.is_up(0));
    drop(s);

    // Checks run against a dead port: it stays down.
    let checks = tokio::spawn(run_health_checks(
        fast(http("/health"), 2, 3),
        p.pool.clone(),
        stop.clone(),
    ));
    let pool = p.pool.clone();
    wait_until(|| pool.metrics().backends[0].checks_failed.get() >= 2).await;
    assert!(!p.pool.is_up(0));

    // The server comes back on the same port and answers 200: back after `rise` successes.
    let srv = http_server(port, 200, stop.clone()).await;
    bounded(rx.wait_for(|s| s.healthy == 1)).await.unwrap();
    assert!(
        p.pool.metrics().backends[0].checks_ok.get() >= 3,
        "needs rise=3 successes"
    );

    // It now answers 503: out again after `fall` failures.
    srv.status.store(503, Ordering::SeqCst);
    bounded(rx.wait_for(|s| s.healthy == 0)).await.unwrap();
    assert_eq!(p.pool.metrics().backends[0].ejections.get(), 2);

    stop.cancel();
    bounded(checks).await.unwrap().unwrap();
    p.shutdown.cancel();
}

#[tokio::test]
async fn check_port_differs_from_proxied_port_and_local_ready() {
    let stop = CancellationToken::new();
    // Nothing listens on the proxied port; the check port answers 200.
    let data = closed_port().await;
    let srv = http_server("127.0.0.1:0".parse().unwrap(), 200, stop.clone()).await;
    let pool = Arc::new(
        Pool::new(vec![data], Balance::RoundRobin).with_local_ip("127.0.0.1".parse().unwrap()),
    );
    let mut rx = pool.subscribe();
    assert_eq!(rx.borrow_and_update().local_ready, Some(false));
    let check = HealthCheck {
        check_port: Some(srv.addr.port()),
        ..fast(http("/health"), 1, 1)
    };
    let checks = tokio::spawn(run_health_checks(check, pool.clone(), stop.clone()));
    bounded(rx.wait_for(|s| s.local_ready == Some(true)))
        .await
        .unwrap();
    srv.status.store(500, Ordering::SeqCst);
    bounded(rx.wait_for(|s| s.local_ready == Some(false) && s.healthy == 0))
        .await
        .unwrap();
    stop.cancel();
    bounded(checks).await.unwrap().unwrap();
}

#[tokio::test]
async fn tcp_check() {
    let prober = Prober::new(&CheckKind::Tcp).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    assert!(
        prober
            .probe(l.local_addr().unwrap(), Duration::from_secs(5))
            .await
            .is_ok()
    );
    let dead = closed_port().await;
    let r = prober.probe(dead, Duration::from_secs(5)).await;
    assert!(matches!(r, Err(ProbeError::Connect(_))), "{r:?}");
}

#[tokio::test]
async fn http_check_status() {
    let stop = CancellationToken::new();
    let srv = http_server("127.0.0.1:0".parse().unwrap(), 200, stop.clone()).await;
    let prober = Prober::new(&http("/readyz")).unwrap();
    assert!(prober.probe(srv.addr, Duration::from_secs(5)).await.is_ok());
    srv.status.store(204, Ordering::SeqCst);
    let r = prober.probe(srv.addr, Duration::from_secs(5)).await;
    assert!(
        matches!(r, Err(ProbeError::Status(s)) if s.as_u16() == 204),
        "{r:?}"
    );
    stop.cancel();
}

#[tokio::test]
async fn http_check_times_out_on_silent_server() {
    // Accepts but never answers.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..4 {
            if let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        }
    });
    let prober = Prober::new(&http("/readyz")).unwrap();
    let r = prober.probe(addr, Duration::from_millis(200)).await;
    assert!(matches!(r, Err(ProbeError::Timeout)), "{r:?}");
    hold.abort();
}

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// An HTTPS server (certificate for `sans`, issued by `ca`) answering 200.
async fn https_server(ca: &Ca, sans: &[&str], stop: CancellationToken) -> SocketAddr {
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = tokio::select! {
                () = stop.cancelled() => return,
                r = l.accept() => match r { Ok(a) => a, Err(_) => return },
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(s).await {
                    answer_http(tls, 200).await;
                }
            });
        }
    });
    addr
}

fn https(ca_pem: &str) -> CheckKind {
    CheckKind::Https {
        path: "/readyz".into(),
        ca_pem: ca_pem.as_bytes().to_vec(),
        client: None,
    }
}

#[tokio::test]
async fn https_check_trusts_only_the_given_ca() {
    let stop = CancellationToken::new();
    let ours = ca("ours");
    let other = ca("other");
    let good = https_server(&ours, &["127.0.0.1"], stop.clone()).await;
    let foreign = https_server(&other, &["127.0.0.1"], stop.clone()).await;
    let wrong_name = https_server(&ours, &["apiserver.example"], stop.clone()).await;

    let prober = Prober::new(&https(&ours.pem)).unwrap();
    let t = Duration::from_secs(5);
    assert!(prober.probe(good, t).await.is_ok());
    let r = prober.probe(foreign, t).await;
    assert!(
        matches!(r, Err(ProbeError::Tls(_))),
        "cert from another CA: {r:?}"
    );
    let r = prober.probe(wrong_name, t).await;
    assert!(
        matches!(r, Err(ProbeError::Tls(_))),
        "cert without the backend IP: {r:?}"
    );

    // Through the pool: the foreign-CA backend goes down, the good one stays up.
    let pool = Arc::new(Pool::new(vec![good, foreign], Balance::RoundRobin));
    let checks = tokio::spawn(run_health_checks(
        fast(https(&ours.pem), 1, 1),
        pool.clone(),
        stop.clone(),
    ));
    let mut rx = pool.subscribe();
    bounded(rx.wait_for(|s| s.healthy == 1)).await.unwrap();
    let p = pool.clone();
    wait_until(|| p.metrics().backends[0].checks_ok.get() >= 2).await;
    assert!(pool.is_up(0) && !pool.is_up(1));
    stop.cancel();
    bounded(checks).await.unwrap().unwrap();
}
