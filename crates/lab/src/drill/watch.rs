//! The VIP watcher: one thread that, every ~10 ms, steps into each node's namespace (setns on
//! an fd opened once) and tries to bind a UDP socket to the VIP. The bind succeeds exactly
//! when the VIP is a local address there (the lab leaves `ip_nonlocal_bind` at 0), which is
//! what `cluster::vip_on` reads from `ip addr`, at a few microseconds instead of a process.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::LabError;
use crate::drill::account::HolderChange;

/// How often the holders are sampled.
pub const POLL: Duration = Duration::from_millis(10);

#[derive(Debug, Default)]
struct Shared {
    changes: Vec<HolderChange>,
    /// The latest sample: holders and since when they have not changed.
    current: Vec<usize>,
    since: Option<Instant>,
    polls: u64,
    error: Option<String>,
}

#[derive(Debug)]
pub struct Watcher {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// Whether the calling thread's namespace has `vip` as a local address.
fn holds(vip: Ipv4Addr) -> bool {
    UdpSocket::bind(SocketAddr::from((vip, 0))).is_ok()
}

impl Watcher {
    /// Starts watching `namespaces` (node i = namespaces[i]) for `vip`; times are relative to
    /// `t0`. Stops by itself after `limit`.
    pub fn start(
        namespaces: &[String],
        vip: Ipv4Addr,
        t0: Instant,
        limit: Duration,
    ) -> Result<Watcher, LabError> {
        let files = namespaces
            .iter()
            .map(|ns| {
                let path = format!("/run/netns/{ns}");
                std::fs::File::open(&path).map_err(|e| LabError::Spawn(path, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sh, st) = (shared.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("drill-watch".into())
            .spawn(move || {
                let started = Instant::now();
                while !st.load(Ordering::Relaxed) && started.elapsed() < limit {
                    let mut now_holding = Vec::new();
                    for (i, f) in files.iter().enumerate() {
                        // Moves only this thread; the file stays open meanwhile.
                        if let Err(e) = crate::netns::enter_netns_file(f) {
                            sh.lock().unwrap().error = Some(format!("setns: {e}"));
                            return;
                        }
                        if holds(vip) {
                            now_holding.push(i);
                        }
                    }
                    let now = Instant::now();
                    let mut g = sh.lock().unwrap();
                    g.polls += 1;
                    if g.since.is_none() || g.current != now_holding {
                        g.changes.push(HolderChange {
                            t_ms: now.duration_since(t0).as_millis() as u64,
                            holders: now_holding.clone(),
                        });
                        g.current = now_holding;
                        g.since = Some(now);
                    }
                    drop(g);
                    std::thread::sleep(POLL);
                }
            })
            .map_err(|e| LabError::Spawn("VIP watcher thread".into(), e))?;
        Ok(Watcher {
            shared,
            stop,
            handle: Some(handle),
        })
    }

    /// The holders now and how long they have been the holders (None before the first poll).
    pub fn current(&self) -> Option<(Vec<usize>, Duration)> {
        let g = self.shared.lock().unwrap();
        g.since.map(|s| (g.current.clone(), s.elapsed()))
    }

    /// Polls done so far (one poll samples every node).
    pub fn polls(&self) -> u64 {
        self.shared.lock().unwrap().polls
    }

    pub fn error(&self) -> Option<String> {
        self.shared.lock().unwrap().error.clone()
    }

    /// Stops the thread and returns every change seen.
    pub fn finish(mut self) -> (Vec<HolderChange>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let g = self.shared.lock().unwrap();
        (g.changes.clone(), g.polls)
    }

    /// Blocks (bounded by `limit`) until the first poll is done.
    pub fn wait_first(&self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.polls() > 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
