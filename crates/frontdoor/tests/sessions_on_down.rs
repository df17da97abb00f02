//! A backend that leaves rotation takes its open sessions with it (issue 15, item 2): a
//! long-lived connection (a Kubernetes watch) through the proxy to backend B; B starts failing
//! its health check but keeps its TCP sockets open. The session is closed within
//! fall × interval + 1 s, and the client's next connection lands on a healthy backend. With
//! `close_sessions_on_down: false` the session stays. Real loopback sockets: the two backends
//! sit on 127.0.0.2 and 127.0.0.3 so each has its own check server on the same check port.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use frontdoor::health::{CheckKind, HealthCheck, run_health_checks};
use frontdoor::pool::{Balance, Pool};
use frontdoor::proxy::ProxyConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const INTERVAL: Duration = Duration::from_millis(30);
const FALL: u32 = 2;

struct Bed {
    proxy: Running,
    /// Backend B's check server: set its status to fail B's checks.
    b_check: HttpServer,
    stop: CancellationToken,
}

/// A port free on both 127.0.0.2 and 127.0.0.3 (bounded tries).
async fn shared_port() -> u16 {
    for _ in 0..50 {
        let l = TcpListener::bind("127.0.0.2:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.3", port)).await.is_ok() {
            return port;
        }
    }
    panic!("no port free on both 127.0.0.2 and 127.0.0.3");
}

async fn bed(close_sessions_on_down: bool) -> Bed {
    let stop = CancellationToken::new();
    let (data, check) = (shared_port().await, shared_port().await);
    let at = |ip: &str, port| SocketAddr::new(ip.parse().unwrap(), port);
    let a = id_server_on(at("127.0.0.2", data), b'A', stop.clone()).await;
    let b = id_server_on(at("127.0.0.3", data), b'B', stop.clone()).await;
    http_server(at("127.0.0.2", check), 200, stop.clone()).await;
    let b_check = http_server(at("127.0.0.3", check), 200, stop.clone()).await;
    let pool = Arc::new(Pool::new(vec![a, b], Balance::RoundRobin));
    let mut rx = pool.subscribe();
    tokio::spawn(run_health_checks(
        HealthCheck {
            kind: CheckKind::Http {
                path: "/readyz".into(),
            },
            interval: INTERVAL,
            timeout: Duration::from_secs(1),
            fall: FALL,
            rise: 2,
            check_port: Some(check),
        },
        pool.clone(),
        stop.clone(),
    ));
    // Both confirmed by a check before the client comes.
    wait_until(|| (0..2).all(|i| pool.metrics().backends[i].checks_ok.get() >= 1)).await;
    assert_eq!(rx.borrow_and_update().healthy, 2);
    let cfg = ProxyConfig {
        close_sessions_on_down,
        ..test_config()
    };
    Bed {
        proxy: start_proxy_with(pool, cfg),
        b_check,
        stop,
    }
}

/// A client whose session goes to backend B (round robin: at most two tries).
async fn session_on_b(addr: SocketAddr) -> (TcpStream, Vec<TcpStream>) {
    let mut others = Vec::new();
    for _ in 0..2 {
        let (s, id) = connect_id(addr).await;
        if id == b'B' {
            return (s, others);
        }
        others.push(s);
    }
    panic!("no session landed on B in two connects");
}

async fn echoes(s: &mut TcpStream) -> bool {
    if s.write_all(b"x").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 1];
    matches!(
        tokio::time::timeout(SOON, s.read(&mut buf)).await,
        Ok(Ok(1))
    )
}

#[tokio::test]
async fn sessions_on_a_backend_marked_down_are_closed() {
    let bed = bed(true).await;
    let (mut watch, mut others) = session_on_b(bed.proxy.addr).await;
    assert!(echoes(&mut watch).await);

    // B fails its checks; its TCP sockets stay open (the id server keeps echoing).
    bed.b_check.status.store(503, Ordering::SeqCst);
    let bound = INTERVAL * FALL + Duration::from_secs(1);
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(bound, watch.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the session to B is still open {bound:?} after B started failing: {closed:?}"
    );
    assert!(!bed.proxy.pool.is_up(1));
    assert_eq!(bed.proxy.pool.metrics().closed_backend_down.get(), 1);

    // The client reconnects and lands on A; the session already on A was left alone.
    for _ in 0..3 {
        let (_s, id) = connect_id(bed.proxy.addr).await;
        assert_eq!(
            id, b'A',
            "a new connection went to the backend out of rotation"
        );
    }
    for s in &mut others {
        assert!(
            echoes(s).await,
            "a session on the healthy backend was closed"
        );
    }
    bed.stop.cancel();
    bed.proxy.shutdown.cancel();
}

#[tokio::test]
async fn sessions_stay_when_told_to() {
    let bed = bed(false).await;
    let (mut watch, _others) = session_on_b(bed.proxy.addr).await;
    bed.b_check.status.store(503, Ordering::SeqCst);
    let pool = bed.proxy.pool.clone();
    wait_until(|| !pool.is_up(1)).await;
    // Well past the bound the other test holds the proxy to: still open, still relaying.
    tokio::time::sleep(INTERVAL * FALL + Duration::from_millis(1500)).await;
    assert!(
        echoes(&mut watch).await,
        "close_sessions_on_down: false closed a session"
    );
    assert_eq!(bed.proxy.pool.metrics().closed_backend_down.get(), 0);
    bed.stop.cancel();
    bed.proxy.shutdown.cancel();
}

/// A front door that loses the VIP ends the sessions that came in on it (their clients now
/// reach the new holder, which resets them) and counts them; sessions addressed to another of
/// its addresses stay.
#[tokio::test]
async fn sessions_on_the_vip_end_when_the_vip_is_lost() {
    use frontdoor::proxy::{VipSessions, bind, serve_with_vip};
    let stop = CancellationToken::new();
    let backend = id_server(b'A', stop.clone()).await;
    let pool = Arc::new(Pool::new(vec![backend], Balance::RoundRobin));
    let (held_tx, held_rx) = tokio::sync::watch::channel(true);
    // Two listeners of one front door: 127.0.0.1 plays the VIP, 127.0.0.2 the node's address.
    let mut addrs = Vec::new();
    for ip in ["127.0.0.1", "127.0.0.2"] {
        let l = bind(SocketAddr::new(ip.parse().unwrap(), 0), 128).unwrap();
        addrs.push(l.local_addr().unwrap());
        tokio::spawn(serve_with_vip(
            l,
            test_config(),
            pool.clone(),
            stop.clone(),
            Some(VipSessions {
                address: "127.0.0.1".parse().unwrap(),
                held: held_rx.clone(),
            }),
        ));
    }
    let (mut on_vip, _) = connect_id(addrs[0]).await;
    let (mut on_node, _) = connect_id(addrs[1]).await;
    assert!(echoes(&mut on_vip).await && echoes(&mut on_node).await);

    held_tx.send(false).unwrap();
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(1), on_vip.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "a session on the VIP outlived the VIP by 1 s: {closed:?}"
    );
    assert_eq!(pool.metrics().closed_vip_lost.get(), 1);
    assert!(
        echoes(&mut on_node).await,
        "a session on the node's own address was closed"
    );
    stop.cancel();
}
