//! Measuring a front door from the outside: nginx backends in node namespaces and a client
//! that keeps making fresh connections through the VIP and records what happened when. Used by
//! the integration tests and bench/failover (crates/lab/examples/failover_bench.rs).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use netns::{Error, Netns, Proc, in_netns};

/// nginx listening on `addr`, answering `GET /` with `node<index>` and `/healthz` with 200.
pub fn nginx(ns: &Netns, addr: SocketAddr, index: usize, dir: &Path) -> Result<Proc, Error> {
    let d = dir.join(format!("nginx{index}"));
    std::fs::create_dir_all(&d).map_err(|e| Error::Spawn(d.display().to_string(), e))?;
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;\n\
         events {{ worker_connections 4096; }}\n\
         http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
         \x20 server {{ listen {addr} reuseport backlog=4096; keepalive_requests 100000;\n\
         \x20   location = /healthz {{ return 200 \"ok\\n\"; }}\n\
         \x20   location / {{ return 200 \"node{index}\\n\"; }} }} }}\n",
        d = d.display(),
    );
    let path = d.join("nginx.conf");
    std::fs::write(&path, conf).map_err(|e| Error::Spawn(path.display().to_string(), e))?;
    ns.spawn(
        &["nginx", "-c", path.to_str().unwrap_or_default()],
        Some(&d.join("stderr.log")),
    )
}

/// keepalived in the foreground (VRRP only) inside `ns`, with its own pid files so instances
/// never collide: `pidfile` for the parent, `vrrp_pidfile` for the VRRP child.
pub fn keepalived(
    ns: &Netns,
    conf: &Path,
    pidfile: &Path,
    vrrp_pidfile: &Path,
    log: &Path,
) -> Result<Proc, Error> {
    let arg = |p: &Path| p.to_str().unwrap_or_default().to_string();
    let (c, p, r) = (arg(conf), arg(pidfile), arg(vrrp_pidfile));
    ns.spawn(
        &[
            "keepalived",
            "--dont-fork",
            "--log-console",
            "--vrrp",
            "-f",
            &c,
            "-p",
            &p,
            "-r",
            &r,
        ],
        Some(log),
    )
}

/// A hard crash of keepalived: SIGKILL to its VRRP child (the PID in the file given with
/// `-r`) and to the parent at once. Killing only the parent makes the child hand over
/// gracefully with priority 0, which is not a crash. Returns whether the child was found.
pub fn kill_keepalived(parent: &Proc, vrrp_pidfile: &Path) -> bool {
    let child = std::fs::read_to_string(vrrp_pidfile)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    if let Some(pid) = child {
        netns::signal(pid, libc::SIGKILL);
    }
    parent.signal(libc::SIGKILL);
    child.is_some()
}

/// One request through the VIP: which backend answered, or why it failed.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Duration,
    pub result: Result<usize, String>,
}

/// Keeps making fresh connections to `target` from namespace `ns` until stopped, from
/// `WORKERS` threads at once, so one request stuck in a dying server (1 s timeout) does not
/// hide when the others are served again (bounded: at most 100 000 requests or 10 minutes per
/// worker).
pub struct Client {
    stop: Arc<AtomicBool>,
    handles: Vec<std::thread::JoinHandle<Result<Vec<Sample>, Error>>>,
    pub start: Instant,
}

/// Concurrent request loops per client.
pub const WORKERS: usize = 4;

impl Client {
    pub fn start(ns: &str, target: SocketAddr) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let handles = (0..WORKERS)
            .map(|w| {
                let flag = stop.clone();
                in_netns(ns, move || {
                    let mut out = Vec::new();
                    // stagger the workers so their requests interleave
                    std::thread::sleep(Duration::from_micros(500 * w as u64));
                    while !flag.load(Ordering::Relaxed)
                        && out.len() < 100_000
                        && start.elapsed() < Duration::from_secs(600)
                    {
                        let at = start.elapsed();
                        out.push(Sample {
                            at,
                            result: request(target),
                        });
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    out
                })
            })
            .collect();
        Client {
            stop,
            handles,
            start,
        }
    }

    /// Stops the workers and returns every sample in order of start time.
    pub fn stop(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all: Vec<Sample> = self
            .handles
            .drain(..)
            .filter_map(|h| h.join().ok().and_then(Result::ok))
            .flatten()
            .collect();
        all.sort_by_key(|s| s.at);
        all
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// A fresh connection, `GET /`, and the backend index from the answer.
pub fn request(target: SocketAddr) -> Result<usize, String> {
    let mut s = TcpStream::connect_timeout(&target, Duration::from_millis(1000))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_millis(1000))).ok();
    s.write_all(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut body = String::new();
    s.read_to_string(&mut body)
        .map_err(|e| format!("read: {e}"))?;
    body.lines()
        .last()
        .and_then(|l| l.strip_prefix("node"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("bad answer: {body:?}"))
}

pub fn failures(samples: &[Sample]) -> Vec<&Sample> {
    samples.iter().filter(|s| s.result.is_err()).collect()
}

/// Failed samples whose TCP connect itself failed.
pub fn failed_connects(samples: &[Sample]) -> usize {
    samples
        .iter()
        .filter(|s| s.result.as_ref().is_err_and(|e| e.starts_with("connect")))
        .count()
}

/// Failure kinds with counts, e.g. `connect: Connection refused x12`.
pub fn failure_kinds(samples: &[Sample]) -> String {
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for s in samples {
        if let Err(e) = &s.result {
            *kinds.entry(e.chars().take(60).collect()).or_default() += 1;
        }
    }
    kinds
        .iter()
        .map(|(k, n)| format!("{k} x{n}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Longest stretch without a successful request.
pub fn longest_gap(samples: &[Sample]) -> Duration {
    let mut last_ok = samples.first().map_or(Duration::ZERO, |s| s.at);
    let mut gap = Duration::ZERO;
    for s in samples {
        if s.result.is_ok() {
            gap = gap.max(s.at.saturating_sub(last_ok));
            last_ok = s.at;
        }
    }
    gap
}

/// Failover as clients see it: from `t0` to the first success after failures began (zero if
/// nothing failed; `Duration::MAX` if nothing succeeded again), and how many requests still
/// failed after that first recovery.
pub fn recovery(samples: &[Sample], t0: Duration) -> (Duration, usize) {
    let Some(first_fail) = samples.iter().position(|s| s.at >= t0 && s.result.is_err()) else {
        return (Duration::ZERO, 0);
    };
    match samples[first_fail..].iter().position(|s| s.result.is_ok()) {
        None => (Duration::MAX, 0),
        Some(k) => {
            let back = first_fail + k;
            let late = samples[back..].iter().filter(|s| s.result.is_err()).count();
            (samples[back].at - t0, late)
        }
    }
}

/// Polls `f` every 10 ms for at most `limit`; returns how long it took.
pub fn within(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ms: u64, ok: bool) -> Sample {
        Sample {
            at: Duration::from_millis(ms),
            result: if ok {
                Ok(0)
            } else {
                Err("connect: refused".into())
            },
        }
    }

    #[test]
    fn recovery_is_first_success_after_failures_began() {
        let v = [
            s(0, true),
            s(10, true),
            s(20, false),
            s(30, false),
            s(40, true),
            s(50, false),
            s(60, true),
        ];
        assert_eq!(
            recovery(&v, Duration::from_millis(15)),
            (Duration::from_millis(25), 1)
        );
        assert_eq!(recovery(&v[..2], Duration::ZERO), (Duration::ZERO, 0));
        assert_eq!(recovery(&v[..4], Duration::ZERO).0, Duration::MAX);
        assert_eq!(longest_gap(&v), Duration::from_millis(30));
        assert_eq!(failed_connects(&v), 3);
    }
}
