//! Test helpers: loopback servers and a proxy runner. Every loop is bounded.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use frontdoor::pool::{Balance, Pool};
use frontdoor::proxy::{self, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Generous bound for anything that should happen "soon".
pub const SOON: Duration = Duration::from_secs(10);

pub async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(SOON, f).await.expect("timed out")
}

/// A server that writes its one-byte id, then echoes until EOF, then closes.
pub async fn id_server(id: u8, shutdown: CancellationToken) -> SocketAddr {
    id_server_on("127.0.0.1:0".parse().unwrap(), id, shutdown).await
}

/// [`id_server`] on a given address (another loopback address, a fixed port).
pub async fn id_server_on(bind: SocketAddr, id: u8, shutdown: CancellationToken) -> SocketAddr {
    let l = TcpListener::bind(bind).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = tokio::select! {
                () = shutdown.cancelled() => return,
                r = l.accept() => match r { Ok(a) => a, Err(_) => return },
            };
            tokio::spawn(async move {
                if s.write_all(&[id]).await.is_err() {
                    return;
                }
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// An address on which nothing listens (bound, then released).
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

/// A minimal HTTP server answering every request with `status` (changeable at run time).
pub struct HttpServer {
    pub addr: SocketAddr,
    pub status: Arc<AtomicU16>,
}

pub async fn http_server(bind: SocketAddr, status: u16, shutdown: CancellationToken) -> HttpServer {
    let l = TcpListener::bind(bind).await.unwrap();
    let addr = l.local_addr().unwrap();
    let st = Arc::new(AtomicU16::new(status));
    let status = st.clone();
    tokio::spawn(async move {
        loop {
            let (s, _) = tokio::select! {
                () = shutdown.cancelled() => return,
                r = l.accept() => match r { Ok(a) => a, Err(_) => return },
            };
            let code = st.load(Ordering::SeqCst);
            tokio::spawn(answer_http(s, code));
        }
    });
    HttpServer { addr, status }
}

/// Reads a request head, answers `code`, closes.
pub async fn answer_http<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    code: u16,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let resp = format!("HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    let _ = s.write_all(resp.as_bytes()).await;
    let _ = s.shutdown().await;
}

pub struct Running {
    pub addr: SocketAddr,
    pub pool: Arc<Pool>,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<std::io::Result<()>>,
}

pub fn test_config() -> ProxyConfig {
    ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        connect_timeout: Duration::from_secs(2),
        ..ProxyConfig::default()
    }
}

pub fn start_proxy(backends: Vec<SocketAddr>, balance: Balance, cfg: ProxyConfig) -> Running {
    let pool = Arc::new(Pool::new(backends, balance));
    start_proxy_with(pool, cfg)
}

pub fn start_proxy_with(pool: Arc<Pool>, cfg: ProxyConfig) -> Running {
    let listener = proxy::bind(cfg.listen, cfg.backlog).unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(proxy::serve(listener, cfg, pool.clone(), shutdown.clone()));
    Running {
        addr,
        pool,
        shutdown,
        task,
    }
}

/// Connects through the proxy and reads the backend's id byte.
pub async fn connect_id(addr: SocketAddr) -> (TcpStream, u8) {
    let mut s = bounded(TcpStream::connect(addr)).await.unwrap();
    let mut id = [0u8; 1];
    bounded(s.read_exact(&mut id)).await.expect("backend id");
    (s, id[0])
}

/// Waits (bounded) until `cond` holds, polling every 10 ms.
pub async fn wait_until(mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 10 s");
}
