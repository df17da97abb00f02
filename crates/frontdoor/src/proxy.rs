//! The L4 (TCP) data path.
//!
//! Life of a client connection:
//! 1. **Admission.** At most `max_connections` sessions are open. When the limit is reached
//!    the proxy stops calling `accept()` until a session ends, so excess clients *wait* in
//!    the kernel's listen backlog (haproxy's `maxconn` behaviour) rather than being refused;
//!    if the backlog overflows, the kernel drops SYNs and clients retransmit.
//! 2. **Connect.** The accepted client socket is kept while backends are tried:
//!    [`Pool::pick`] chooses a healthy backend not tried yet; a connect that fails or exceeds
//!    `connect_timeout` ejects that backend from rotation at once ([`Pool::eject`]) and the
//!    next one is tried. A connect that has not completed after a fifth of `connect_timeout`
//!    gets company: the next backend is tried alongside it, and the first to accept wins (on a
//!    LAN a connect takes well under a millisecond, so a silent backend, such as a node that
//!    lost its power, costs a client that much instead of the whole timeout; the slow attempt
//!    runs on and ejects its backend if it times out). Only when no healthy untried backend
//!    remains and every attempt failed is the client closed (counted in `no_backend_total`).
//!    So a client never sees a refused connect while any backend is healthy and accepting.
//! 3. **Relay.** Bytes are copied both ways, with `tokio::io::copy_bidirectional_with_sizes`,
//!    or on Linux with `splice` ([`ProxyConfig::splice`]) once a direction carries bulk data.
//!    Half-close passes through: EOF from one side becomes `shutdown(Write)` on the other
//!    and the other direction keeps flowing; the session ends when both directions are done.
//!    A session with no bytes in either direction for `idle_timeout` is closed. With
//!    `close_sessions_on_down` (the default), a session is closed as soon as its backend
//!    leaves rotation (failed checks or a failed connect): a Kubernetes watch on an apiserver
//!    that went unready then reconnects, through the proxy, to a healthy one instead of
//!    waiting on a backend that no longer serves (haproxy's `on-marked-down
//!    shutdown-sessions`).
//! 4. **Drain.** When `shutdown` is cancelled the listener is closed at once (new connects
//!    are refused), open sessions continue for up to `drain_timeout`, then are closed.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::pool::Pool;

/// Proxy settings.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Address to listen on (e.g. the VIP and port 16443).
    pub listen: SocketAddr,
    /// Bound on one backend connect attempt; on expiry the backend is ejected and the next
    /// one is tried.
    pub connect_timeout: Duration,
    /// A session with no traffic either way for this long is closed. Kubernetes watches
    /// idle for minutes, so keep this long (default 1 h, as in the rendered haproxy.cfg).
    pub idle_timeout: Duration,
    /// Open sessions at most; further clients wait in the listen backlog. 0 = no limit.
    pub max_connections: usize,
    /// After shutdown, how long open sessions may continue before they are closed.
    pub drain_timeout: Duration,
    /// Relay buffer size per direction.
    pub buffer_size: usize,
    /// Listen backlog passed to `listen(2)`.
    pub backlog: u32,
    /// Linux only: relay bulk transfers with `splice(2)` (zero-copy through a pipe). Each
    /// direction copies through user space until a read fills the whole buffer, then
    /// switches to splice. Default on (Linux): in `bench/proxy.sh` it cut proxy CPU per
    /// 256 KiB response by about 40 % and left small request/response traffic unchanged.
    /// Ignored on other systems.
    pub splice: bool,
    /// Close a backend's open sessions when it leaves rotation.
    pub close_sessions_on_down: bool,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 16443)),
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(3600),
            max_connections: 20_000,
            drain_timeout: Duration::from_secs(30),
            buffer_size: 64 * 1024,
            backlog: 1024,
            splice: cfg!(target_os = "linux"),
            close_sessions_on_down: true,
        }
    }
}

/// Binds a listening socket with `SO_REUSEADDR` and `IP_FREEBIND` / `IPV6_FREEBIND`, so a
/// backup node can listen on the VIP before it holds it (no `ip_nonlocal_bind` sysctl).
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    bind_opts(addr, backlog, false)
}

fn bind_opts(addr: SocketAddr, backlog: u32, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    let _ = if addr.is_ipv4() {
        socket.set_freebind_v4(true)
    } else {
        socket.set_freebind_v6(true)
    };
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    TcpListener::from_std(socket.into())
}

/// Like [`bind`], plus `SO_REUSEPORT`, so several listeners (one acceptor each) can share
/// the address and the kernel spreads new connections across them.
pub fn bind_reuseport(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    bind_opts(addr, backlog, true)
}

/// Binds `cfg.listen` and serves until `shutdown` is cancelled and the drain is over.
pub async fn run_proxy(
    cfg: ProxyConfig,
    pool: Arc<Pool>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let listener = bind(cfg.listen, cfg.backlog)?;
    serve(listener, cfg, pool, shutdown).await
}

/// Serves on an already-bound listener (`cfg.listen` is ignored). Returns after the drain.
pub async fn serve(
    listener: TcpListener,
    cfg: ProxyConfig,
    pool: Arc<Pool>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    serve_with_vip(listener, cfg, pool, shutdown, None).await
}

/// The VIP this proxy serves on, and whether this node holds it now.
#[derive(Debug, Clone)]
pub struct VipSessions {
    pub address: std::net::IpAddr,
    pub held: tokio::sync::watch::Receiver<bool>,
}

/// [`serve`], and sessions that came in on `vip.address` end when this node loses the VIP:
/// their clients' packets now reach the new holder, which resets them, so all they still hold
/// here is an apiserver connection (a watch) that nobody reads (counted in
/// `sessions_closed_vip_lost_total`).
pub async fn serve_with_vip(
    listener: TcpListener,
    cfg: ProxyConfig,
    pool: Arc<Pool>,
    shutdown: CancellationToken,
    vip: Option<VipSessions>,
) -> io::Result<()> {
    let cfg = Arc::new(cfg);
    let limit = if cfg.max_connections == 0 {
        Semaphore::MAX_PERMITS
    } else {
        cfg.max_connections
    };
    let permits = Arc::new(Semaphore::new(limit));
    let mut sessions = JoinSet::new();
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // the semaphore is never closed
            },
        };
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        while sessions.try_join_next().is_some() {}
        let (client, _peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE / ENFILE / ENOBUFS: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let (pool, cfg) = (pool.clone(), cfg.clone());
        // Only sessions addressed to the VIP end with it.
        let vip_held = vip.as_ref().and_then(|v| {
            let to_vip = client.local_addr().is_ok_and(|a| a.ip() == v.address);
            to_vip.then(|| v.held.clone())
        });
        sessions.spawn(async move {
            match vip_held {
                None => session(client, &pool, &cfg).await,
                Some(held) => {
                    tokio::select! {
                        () = session(client, &pool, &cfg) => {}
                        () = vip_lost(held) => {
                            pool.metrics().closed_vip_lost.inc();
                            tracing::debug!("VIP lost, closing a session that came in on it");
                        }
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(open = sessions.len(), "proxy draining");
    let drained = tokio::time::timeout(cfg.drain_timeout, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(open = sessions.len(), "drain timeout, closing sessions");
        sessions.abort_all();
        while sessions.join_next().await.is_some() {}
    }
    Ok(())
}

/// Resolves when the VIP, held at some point since the call, is no longer held.
async fn vip_lost(mut held: tokio::sync::watch::Receiver<bool>) {
    if held.wait_for(|h| *h).await.is_err() || held.wait_for(|h| !*h).await.is_err() {
        std::future::pending::<()>().await;
    }
}

struct ActiveClient<'a>(&'a Pool);

impl Drop for ActiveClient<'_> {
    fn drop(&mut self) {
        self.0.metrics().active.dec();
    }
}

async fn session(client: TcpStream, pool: &Arc<Pool>, cfg: &ProxyConfig) {
    let m = pool.metrics();
    m.connections.inc();
    m.active.inc();
    let _active = ActiveClient(pool);
    tune(&client);

    let Some((idx, backend)) = connect_any(pool, cfg.connect_timeout).await else {
        m.no_backend.inc();
        tracing::debug!("no backend accepted a connect, closing client");
        return;
    };
    let _guard = pool.acquire(idx);
    // Subscribed before the first byte: a backend that leaves rotation from now on ends it.
    let mut downs = pool.down_events(idx);
    let marked_down = async {
        if !cfg.close_sessions_on_down || downs.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tune(&backend);
    tokio::select! {
        () = relay(client, backend, pool, cfg) => {}
        () = marked_down => {
            m.closed_backend_down.inc();
            tracing::debug!(backend = %pool.addrs()[idx], "backend left rotation, closing session");
        }
    }
}

/// Tries healthy backends in pick order until one accepts, staggered: the next one starts when
/// the last failed, or a fifth of `timeout` after it started. Each that fails or times out is
/// ejected by its own attempt, also after another one won.
async fn connect_any(pool: &Arc<Pool>, timeout: Duration) -> Option<(usize, TcpStream)> {
    let stagger = timeout / 5;
    let mut tried = Vec::new();
    let mut racing = JoinSet::new();
    let mut exhausted = false;
    // Each turn starts the next attempt: first, after a failure, or after `stagger`.
    loop {
        if !exhausted {
            match pool.pick(&tried) {
                Some(idx) => {
                    tried.push(idx);
                    racing.spawn(attempt(pool.clone(), idx, timeout));
                }
                None => exhausted = true,
            }
        }
        if racing.is_empty() {
            return None;
        }
        tokio::select! {
            done = racing.join_next() => {
                if let Some(Ok((idx, Some(stream)))) = done {
                    // The others finish on their own: a late connect is closed, a failure ejects.
                    racing.detach_all();
                    return Some((idx, stream));
                }
            }
            () = tokio::time::sleep(stagger), if !exhausted => {}
        }
    }
}

/// One connect; ejects the backend when it fails or exceeds `timeout`.
async fn attempt(pool: Arc<Pool>, idx: usize, timeout: Duration) -> (usize, Option<TcpStream>) {
    let addr = pool.addrs()[idx];
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => return (idx, Some(s)),
        Ok(Err(e)) => tracing::info!(backend = %addr, error = %e, "connect failed, ejecting"),
        Err(_) => tracing::info!(backend = %addr, "connect timed out, ejecting"),
    }
    pool.eject(idx);
    (idx, None)
}

fn tune(s: &TcpStream) {
    let _ = s.set_nodelay(true);
    let ka = TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(10))
        .with_retries(6);
    let _ = SockRef::from(s).set_tcp_keepalive(&ka);
}

async fn relay(mut client: TcpStream, mut backend: TcpStream, pool: &Pool, cfg: &ProxyConfig) {
    let m = pool.metrics();
    let activity = AtomicBool::new(false);
    #[cfg(target_os = "linux")]
    if cfg.splice {
        let size = cfg.buffer_size;
        let copy = crate::splice::relay(
            &mut client,
            &mut backend,
            size,
            &m.bytes_in,
            &m.bytes_out,
            &activity,
        );
        until_idle(copy, &activity, cfg.idle_timeout, m).await;
        return;
    }
    let mut c = Metered::new(&mut client, &m.bytes_in, &activity);
    let mut b = Metered::new(&mut backend, &m.bytes_out, &activity);
    let size = cfg.buffer_size.max(1024);
    let copy = tokio::io::copy_bidirectional_with_sizes(&mut c, &mut b, size, size);
    until_idle(copy, &activity, cfg.idle_timeout, m).await;
}

/// Resolves after `timeout` without activity (checked in quarter steps, so the actual
/// idle time is between `timeout` and 1.25 × `timeout`). Reading the flag instead of a
/// clock keeps the relay's per-read cost to one relaxed store.
/// Runs one session's relay (copy or splice) until it ends, or closes it after `timeout`
/// without traffic either way.
async fn until_idle<T>(
    copy: impl std::future::Future<Output = io::Result<T>>,
    activity: &AtomicBool,
    timeout: Duration,
    m: &crate::metrics::Metrics,
) {
    tokio::select! {
        r = copy => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "session ended with error");
            }
        }
        () = idle(activity, timeout) => {
            m.idle_timeouts.inc();
            tracing::debug!("session idle timeout");
        }
    }
}

async fn idle(activity: &AtomicBool, timeout: Duration) {
    const STEPS: u32 = 4;
    let tick = (timeout / STEPS).max(Duration::from_millis(1));
    let mut quiet = 0;
    loop {
        tokio::time::sleep(tick).await;
        if activity.swap(false, Ordering::Relaxed) {
            quiet = 0;
        } else {
            quiet += 1;
            if quiet >= STEPS {
                return;
            }
        }
    }
}

/// Counts bytes read and flags activity; writes pass through. Byte counts are added to the
/// shared counter in batches of [`FLUSH_BYTES`] (and when the session ends), so the data path
/// does not bounce one cache line between cores on every read.
struct Metered<'a, S> {
    inner: &'a mut S,
    bytes: &'a Counter,
    pending: u64,
    activity: &'a AtomicBool,
}

const FLUSH_BYTES: u64 = 64 * 1024;

impl<'a, S> Metered<'a, S> {
    fn new(inner: &'a mut S, bytes: &'a Counter, activity: &'a AtomicBool) -> Self {
        Metered {
            inner,
            bytes,
            pending: 0,
            activity,
        }
    }
}

impl<S> Drop for Metered<'_, S> {
    fn drop(&mut self) {
        if self.pending > 0 {
            self.bytes.inc_by(self.pending);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<'_, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut *this.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.pending += n as u64;
            if this.pending >= FLUSH_BYTES {
                this.bytes.inc_by(std::mem::take(&mut this.pending));
            }
            this.activity.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<'_, S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_shutdown(cx)
    }
}
