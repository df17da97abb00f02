//! Data-path tests on real loopback sockets.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use frontdoor::pool::Balance;
use frontdoor::proxy::ProxyConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

fn mode(splice: bool) -> ProxyConfig {
    ProxyConfig {
        splice,
        ..test_config()
    }
}

#[tokio::test]
async fn round_robin_spreads_connections() {
    let stop = CancellationToken::new();
    let mut backends = Vec::new();
    for id in 0..3 {
        backends.push(id_server(id, stop.clone()).await);
    }
    let p = start_proxy(backends, Balance::RoundRobin, test_config());
    let mut counts: HashMap<u8, usize> = HashMap::new();
    for _ in 0..30 {
        let (_s, id) = connect_id(p.addr).await;
        *counts.entry(id).or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|c| *c == 10), "{counts:?}");
    p.shutdown.cancel();
    stop.cancel();
}

#[tokio::test]
async fn least_connections_picks_least_loaded() {
    let stop = CancellationToken::new();
    let mut backends = Vec::new();
    for id in 0..3 {
        backends.push(id_server(id, stop.clone()).await);
    }
    let p = start_proxy(backends, Balance::LeastConnections, test_config());
    let (s1, a) = connect_id(p.addr).await;
    let (s2, b) = connect_id(p.addr).await;
    let (_s3, c) = connect_id(p.addr).await;
    let mut ids = vec![a, b, c];
    ids.sort();
    assert_eq!(
        ids,
        [0, 1, 2],
        "each held connection went to an idle backend"
    );

    // Close a's connection: a drops to 0 while b and c hold 1 each.
    drop(s1);
    let pool = p.pool.clone();
    wait_until(|| pool.active(a as usize) == 0).await;
    for _ in 0..3 {
        let (s4, d) = connect_id(p.addr).await;
        assert_eq!(d, a, "least loaded backend (0 connections) chosen");
        drop(s4);
        let pool = p.pool.clone();
        wait_until(|| pool.active(a as usize) == 0).await;
    }
    let (_s4, d) = connect_id(p.addr).await;
    assert_eq!(d, a);
    drop(s2);
    let pool = p.pool.clone();
    wait_until(|| pool.active(b as usize) == 0).await;
    let (_s5, e) = connect_id(p.addr).await;
    assert_eq!(e, b, "b is now the only backend with 0 connections");
    p.shutdown.cancel();
    stop.cancel();
}

#[tokio::test]
async fn down_backend_is_skipped_without_refusing_clients() {
    let stop = CancellationToken::new();
    let live0 = id_server(0, stop.clone()).await;
    let dead = closed_port().await;
    let live2 = id_server(2, stop.clone()).await;
    let p = start_proxy(vec![live0, dead, live2], Balance::RoundRobin, test_config());
    for i in 0..100 {
        let (_s, id) = connect_id(p.addr).await;
        assert!(id == 0 || id == 2, "connection {i} reached {id}");
    }
    assert!(!p.pool.is_up(1), "the closed backend is out of rotation");
    let m = &p.pool.metrics().backends[1];
    assert_eq!(m.ejections.get(), 1, "ejected once, then skipped");
    assert_eq!(m.connect_errors.get(), 1);
    assert_eq!(p.pool.metrics().no_backend.get(), 0);
    p.shutdown.cancel();
    stop.cancel();
}

#[tokio::test]
async fn passive_ejection_is_immediate_and_published() {
    let dead = closed_port().await;
    let p = start_proxy(vec![dead], Balance::RoundRobin, test_config());
    let mut rx = p.pool.subscribe();
    assert_eq!(rx.borrow_and_update().healthy, 1);
    let mut s = bounded(TcpStream::connect(p.addr)).await.unwrap();
    let mut buf = [0u8; 8];
    // No backend: the proxy closes the client (EOF or reset, never data).
    let n = bounded(s.read(&mut buf)).await.unwrap_or(0);
    assert_eq!(n, 0);
    assert!(!p.pool.is_up(0));
    bounded(rx.changed()).await.unwrap();
    assert_eq!(rx.borrow().healthy, 0);
    assert_eq!(p.pool.metrics().no_backend.get(), 1);
    p.shutdown.cancel();
}

#[tokio::test]
async fn connect_timeout_tries_next_backend() {
    // A listener with a full accept queue drops SYNs, so connects to it time out.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    socket.set_nonblocking(true).unwrap();
    let full = TcpListener::from_std(socket.into()).unwrap();
    let full_addr = full.local_addr().unwrap();
    let mut fillers = Vec::new();
    let mut filled = false;
    for _ in 0..16 {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(full_addr)).await
        {
            Ok(Ok(s)) => fillers.push(s),
            _ => {
                filled = true;
                break;
            }
        }
    }
    assert!(filled, "could not fill the accept queue");

    let stop = CancellationToken::new();
    let live = id_server(7, stop.clone()).await;
    let cfg = ProxyConfig {
        connect_timeout: Duration::from_secs(5),
        ..test_config()
    };
    let p = start_proxy(vec![full_addr, live], Balance::RoundRobin, cfg);
    for _ in 0..4 {
        let started = std::time::Instant::now();
        let (_s, id) = connect_id(p.addr).await;
        assert_eq!(id, 7);
        // The live backend was tried alongside the silent one after a fifth of the connect
        // timeout (1 s), not after all of it (5 s).
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    }
    // The silent backend's own attempt ejects it once its connect timeout ends.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while p.pool.is_up(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "backend 0 never ejected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(p.pool.metrics().backends[0].ejections.get(), 1);
    p.shutdown.cancel();
    stop.cancel();
    drop(full);
}

/// Backend: reads to EOF, then echoes everything back, then closes.
async fn read_all_then_echo_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((mut s, _)) = l.accept().await else {
            return;
        };
        let mut data = Vec::new();
        if s.read_to_end(&mut data).await.is_ok() {
            let _ = s.write_all(&data).await;
        }
        let _ = s.shutdown().await;
    });
    addr
}

#[tokio::test]
async fn half_close_client_side() {
    half_close_client_side_with(false).await;
}

#[tokio::test]
async fn half_close_client_side_splice() {
    half_close_client_side_with(true).await;
}

async fn half_close_client_side_with(splice: bool) {
    let backend = read_all_then_echo_server().await;
    let p = start_proxy(vec![backend], Balance::RoundRobin, mode(splice));
    let mut s = bounded(TcpStream::connect(p.addr)).await.unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    bounded(s.write_all(&data)).await.unwrap();
    s.shutdown().await.unwrap(); // our EOF must reach the backend
    let mut back = Vec::new();
    bounded(s.read_to_end(&mut back)).await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data);
    let pool = p.pool.clone();
    wait_until(|| pool.metrics().active.get() == 0).await;
    assert_eq!(p.pool.metrics().bytes_in.get(), data.len() as u64);
    assert_eq!(p.pool.metrics().bytes_out.get(), data.len() as u64);
    p.shutdown.cancel();
}

#[tokio::test]
async fn half_close_backend_side() {
    half_close_backend_side_with(false).await;
}

#[tokio::test]
async fn half_close_backend_side_splice() {
    half_close_backend_side_with(true).await;
}

async fn half_close_backend_side_with(splice: bool) {
    // Backend says hello, shuts down its write side, then keeps reading what the client sends.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut s, _)) = l.accept().await else {
            return;
        };
        s.write_all(b"hello").await.unwrap();
        s.shutdown().await.unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got).await;
        let _ = tx.send(got);
    });
    let p = start_proxy(vec![backend], Balance::RoundRobin, mode(splice));
    let mut s = bounded(TcpStream::connect(p.addr)).await.unwrap();
    let mut hello = Vec::new();
    bounded(s.read_to_end(&mut hello)).await.unwrap(); // EOF propagated to the client
    assert_eq!(hello, b"hello");
    let data = vec![42u8; 100_000];
    bounded(s.write_all(&data)).await.unwrap(); // the other direction still flows
    s.shutdown().await.unwrap();
    let got = bounded(rx).await.unwrap();
    assert_eq!(got.len(), data.len());
    p.shutdown.cancel();
}

async fn echo(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).await.unwrap();
    let mut buf = vec![0u8; msg.len()];
    bounded(s.read_exact(&mut buf)).await.unwrap();
    assert_eq!(buf, msg);
}

#[tokio::test]
async fn drain_refuses_new_and_keeps_open_sessions() {
    drain_refuses_new_and_keeps_open_sessions_with(false).await;
}

#[tokio::test]
async fn drain_refuses_new_and_keeps_open_sessions_splice() {
    drain_refuses_new_and_keeps_open_sessions_with(true).await;
}

async fn drain_refuses_new_and_keeps_open_sessions_with(splice: bool) {
    let stop = CancellationToken::new();
    let backend = id_server(1, stop.clone()).await;
    let cfg = ProxyConfig {
        drain_timeout: Duration::from_secs(30),
        ..mode(splice)
    };
    let p = start_proxy(vec![backend], Balance::RoundRobin, cfg);
    let (mut s, _) = connect_id(p.addr).await;
    echo(&mut s, b"before").await;

    p.shutdown.cancel();
    let mut refused = false;
    for _ in 0..500 {
        match TcpStream::connect(p.addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                refused = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    assert!(refused, "new connects are refused once draining");
    echo(&mut s, b"during drain").await;
    assert!(
        !p.task.is_finished(),
        "still draining while a session is open"
    );
    s.shutdown().await.unwrap();
    let mut rest = Vec::new();
    bounded(s.read_to_end(&mut rest)).await.unwrap();
    bounded(p.task).await.unwrap().unwrap(); // returns once the last session ended
    stop.cancel();
}

#[tokio::test]
async fn drain_timeout_closes_lingering_sessions() {
    drain_timeout_closes_lingering_sessions_with(false).await;
}

#[tokio::test]
async fn drain_timeout_closes_lingering_sessions_splice() {
    drain_timeout_closes_lingering_sessions_with(true).await;
}

async fn drain_timeout_closes_lingering_sessions_with(splice: bool) {
    let stop = CancellationToken::new();
    let backend = id_server(1, stop.clone()).await;
    let cfg = ProxyConfig {
        drain_timeout: Duration::from_millis(300),
        ..mode(splice)
    };
    let p = start_proxy(vec![backend], Balance::RoundRobin, cfg);
    let (mut s, _) = connect_id(p.addr).await;
    echo(&mut s, b"x").await;
    p.shutdown.cancel();
    bounded(p.task).await.unwrap().unwrap();
    // The session was closed by the proxy: EOF (or reset), never a hang.
    let mut buf = [0u8; 1];
    let r = bounded(s.read(&mut buf)).await;
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    stop.cancel();
}

#[tokio::test]
async fn idle_timeout_closes_quiet_sessions() {
    idle_timeout_closes_quiet_sessions_with(false).await;
}

#[tokio::test]
async fn idle_timeout_closes_quiet_sessions_splice() {
    idle_timeout_closes_quiet_sessions_with(true).await;
}

async fn idle_timeout_closes_quiet_sessions_with(splice: bool) {
    let stop = CancellationToken::new();
    let backend = id_server(1, stop.clone()).await;
    let cfg = ProxyConfig {
        idle_timeout: Duration::from_millis(200),
        ..mode(splice)
    };
    let p = start_proxy(vec![backend], Balance::RoundRobin, cfg);
    let (mut s, _) = connect_id(p.addr).await;
    let mut buf = [0u8; 1];
    let r = bounded(s.read(&mut buf)).await;
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    assert_eq!(p.pool.metrics().idle_timeouts.get(), 1);
    p.shutdown.cancel();
    stop.cancel();
}

#[tokio::test]
async fn connection_limit_makes_excess_clients_wait() {
    let stop = CancellationToken::new();
    let backend = id_server(1, stop.clone()).await;
    let cfg = ProxyConfig {
        max_connections: 1,
        ..test_config()
    };
    let p = start_proxy(vec![backend], Balance::RoundRobin, cfg);
    let (s1, _) = connect_id(p.addr).await;
    // The second client's TCP handshake completes (kernel backlog) but it is not served.
    let mut s2 = bounded(TcpStream::connect(p.addr)).await.unwrap();
    let mut id = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), s2.read_exact(&mut id)).await;
    assert!(early.is_err(), "served beyond the limit");
    assert_eq!(p.pool.metrics().active.get(), 1);
    drop(s1);
    bounded(s2.read_exact(&mut id)).await.unwrap(); // admitted once a slot frees
    echo(&mut s2, b"now").await;
    p.shutdown.cancel();
    stop.cancel();
}
