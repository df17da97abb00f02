//! The writer: from the client namespace, a new write through the VIP every 10 ms (open
//! loop: a write that hangs does not hold back the next one), each on a fresh TCP + TLS
//! connection bounded by 1 s, keys `drill/<run>/<seq:08>`. A fresh connection per write shows
//! a failover as it is: a kept-alive connection to a paused holder would hide the moment the
//! VIP moved, and one write stuck in its timeout would hide when later writes worked again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::LabError;
use crate::drill::account::Sample;
use crate::drill::client::EtcdClient;
use crate::netns::in_netns;

/// Bound of one write: connect, TLS, request and answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// A write starts every PACE.
pub const PACE: Duration = Duration::from_millis(10);
/// At most this many writes in flight (a full second of them at PACE, plus room).
pub const IN_FLIGHT: usize = 150;

#[derive(Debug)]
pub struct Writer {
    samples: Arc<Mutex<Vec<Sample>>>,
    /// Writes acknowledged in a row, in the order they finished.
    streak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<Result<(), String>, LabError>>>,
}

pub fn key(prefix: &str, seq: u64) -> String {
    format!("{prefix}{seq:08}")
}

impl Writer {
    /// Starts writing to `target` from namespace `ns`; stops by itself after `limit` or
    /// `max_writes` writes.
    pub fn start(
        client: EtcdClient,
        ns: &str,
        target: SocketAddr,
        prefix: String,
        t0: Instant,
        limit: Duration,
        max_writes: u64,
    ) -> Writer {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let streak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (sa, sk, st) = (samples.clone(), streak.clone(), stop.clone());
        let handle = in_netns(ns, move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("tokio runtime: {e}"))?;
            rt.block_on(async move {
                let started = Instant::now();
                let mut tasks = tokio::task::JoinSet::new();
                let mut tick = tokio::time::interval(PACE);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                for seq in 1..=max_writes {
                    tick.tick().await;
                    if st.load(Ordering::Relaxed) || started.elapsed() > limit {
                        break;
                    }
                    while tasks.len() >= IN_FLIGHT {
                        tasks.join_next().await;
                    }
                    while tasks.try_join_next().is_some() {}
                    let (client, sa, sk) = (client.clone(), sa.clone(), sk.clone());
                    let k = key(&prefix, seq);
                    tasks.spawn(async move {
                        let begin = Instant::now();
                        let ok = client
                            .put(target, &k, &format!("{seq}"), WRITE_TIMEOUT)
                            .await
                            .is_ok();
                        let end = Instant::now();
                        if ok {
                            sk.fetch_add(1, Ordering::Relaxed);
                        } else {
                            sk.store(0, Ordering::Relaxed);
                        }
                        sa.lock().unwrap().push(Sample {
                            seq,
                            start_ms: ms(begin.duration_since(t0)),
                            end_ms: ms(end.duration_since(t0)),
                            ok,
                        });
                    });
                }
                // Every write in flight ends within WRITE_TIMEOUT.
                while tasks.join_next().await.is_some() {}
                Ok(())
            })
        });
        Writer {
            samples,
            streak,
            stop,
            handle: Some(handle),
        }
    }

    /// The last `n` writes to finish, in the order they finished.
    pub fn tail(&self, n: usize) -> Vec<Sample> {
        let g = self.samples.lock().unwrap();
        g[g.len().saturating_sub(n)..].to_vec()
    }

    /// How many writes in a row were acknowledged (in the order they finished).
    pub fn streak(&self) -> u64 {
        self.streak.load(Ordering::Relaxed)
    }

    /// Whether the writer thread is still writing.
    pub fn running(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Stops the writer (it lets the writes in flight finish) and returns every sample, in
    /// the order the writes started.
    pub fn finish(mut self) -> Result<Vec<Sample>, LabError> {
        self.stop.store(true, Ordering::Relaxed);
        let joined = self.handle.take().map(|h| h.join());
        let mut samples = std::mem::take(&mut *self.samples.lock().unwrap());
        samples.sort_by_key(|s| s.seq);
        match joined {
            Some(Ok(Ok(Ok(())))) | None => Ok(samples),
            Some(Ok(Ok(Err(e)))) => Err(LabError::Invalid(format!("writer: {e}"))),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(LabError::Invalid("writer thread panicked".into())),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
