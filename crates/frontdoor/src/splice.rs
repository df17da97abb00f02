//! Linux zero-copy relay: `splice(2)` socket -> pipe -> socket, so bulk payload bytes never
//! enter user space. Same semantics as the copying relay (half-close passes through, the
//! session ends when both directions are done). Used when [`ProxyConfig::splice`] is set.
//!
//! [`ProxyConfig::splice`]: crate::proxy::ProxyConfig::splice

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::metrics::counter::Counter;
use rustix::pipe::{PipeFlags, SpliceFlags, pipe_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};

/// Bytes moved per `splice` call (the default pipe capacity).
const CHUNK: usize = 64 * 1024;
const FLUSH_BYTES: u64 = 64 * 1024;

struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (r, w) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        Ok(Pipe { r, w })
    }
}

/// One non-blocking `splice(2)` between two streams (no offsets).
fn splice(from: impl AsFd, to: impl AsFd, len: usize) -> io::Result<usize> {
    let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
    Ok(rustix::pipe::splice(from, None, to, None, len, flags)?)
}

/// Relays both directions until both have seen EOF (or one fails). Each direction starts
/// by copying through a `buf_size` buffer and switches to splice once a read fills the
/// whole buffer (bulk transfer): small request/response traffic keeps the cheaper
/// read/write path, bulk bodies skip the user-space copy (haproxy's `splice-auto` idea).
pub(crate) async fn relay(
    client: &mut TcpStream,
    backend: &mut TcpStream,
    buf_size: usize,
    bytes_in: &Counter,
    bytes_out: &Counter,
    activity: &AtomicBool,
) -> io::Result<()> {
    let (cr, cw) = client.split();
    let (br, bw) = backend.split();
    tokio::try_join!(
        one_way(cr, bw, buf_size, bytes_in, activity),
        one_way(br, cw, buf_size, bytes_out, activity),
    )?;
    Ok(())
}

async fn one_way(
    mut src: ReadHalf<'_>,
    mut dst: WriteHalf<'_>,
    buf_size: usize,
    counter: &Counter,
    activity: &AtomicBool,
) -> io::Result<()> {
    let mut pending = 0u64;
    let mut buf = vec![0u8; buf_size.max(1024)];
    let mut pipe: Option<Pipe> = None;
    let result = async {
        loop {
            let n = match &pipe {
                None => {
                    let n = src.read(&mut buf).await?;
                    dst.write_all(&buf[..n]).await?;
                    if n == buf.len() {
                        // Bulk: switch to splice. Without a pipe (fd limit), keep copying.
                        match Pipe::new() {
                            Ok(p) => {
                                pipe = Some(p);
                                buf = Vec::new();
                            }
                            Err(e) => tracing::debug!(error = %e, "no pipe, copying"),
                        }
                    }
                    n
                }
                Some(p) => splice_once(src.as_ref(), dst.as_ref(), p).await?,
            };
            if n == 0 {
                // EOF: pass the half-close on.
                return match dst.shutdown().await {
                    Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
                    _ => Ok(()),
                };
            }
            pending += n as u64;
            if pending >= FLUSH_BYTES {
                counter.inc_by(std::mem::take(&mut pending));
            }
            activity.store(true, Ordering::Relaxed);
        }
    }
    .await;
    counter.inc_by(pending);
    result
}

/// Moves one chunk socket -> pipe -> socket; returns its size (0 at EOF).
async fn splice_once(src: &TcpStream, dst: &TcpStream, pipe: &Pipe) -> io::Result<usize> {
    // Socket -> pipe (the pipe is empty here, so only the socket can block).
    let n = loop {
        src.readable().await?;
        match src.try_io(Interest::READABLE, || splice(src, &pipe.w, CHUNK)) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    };
    // Pipe -> socket.
    let mut in_pipe = n;
    while in_pipe > 0 {
        dst.writable().await?;
        match dst.try_io(Interest::WRITABLE, || splice(&pipe.r, dst, in_pipe)) {
            Ok(k) => in_pipe -= k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
