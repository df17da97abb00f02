//! Shared by the root namespace tests: a front door lab (nginx backends, kubeha frontdoor per
//! node, a client that keeps connecting through the VIP) built on the lab crate's guards.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lab::topology::{VIP, node_address};
use lab::{Proc, Topology};

pub const LB_PORT: u16 = 16443;
pub const BACKEND_PORT: u16 = 6443;

/// Runs `f` on a new thread inside network namespace `ns`.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: setns affects only this thread; the fd is valid for the call.
        assert_eq!(
            unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
            0,
            "setns {path}"
        );
        f()
    })
}

/// nginx answering `GET /` with the node's name and `/healthz` with 200.
pub fn nginx(t: &Topology, i: usize, dir: &Path) -> Proc {
    let d = dir.join(format!("nginx{i}"));
    std::fs::create_dir_all(&d).unwrap();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;\n\
         events {{ worker_connections 4096; }}\n\
         http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
         \x20 server {{ listen {a}:{BACKEND_PORT} reuseport backlog=4096; keepalive_requests 100000;\n\
         \x20   location = /healthz {{ return 200 \"ok\\n\"; }}\n\
         \x20   location / {{ return 200 \"node{i}\\n\"; }} }} }}\n",
        d = d.display(),
        a = node_address(i)
    );
    let path = d.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    t.nodes[i]
        .ns
        .spawn(
            &["nginx", "-c", path.to_str().unwrap()],
            Some(&d.join("stderr.log")),
        )
        .expect("nginx-light is installed (scripts/test.sh)")
}

pub struct FdOptions {
    pub advert: &'static str,
    pub priority: u8,
    pub local_weight: u8,
}

pub fn frontdoor_config(t: &Topology, i: usize, o: &FdOptions) -> String {
    let n = t.nodes.len();
    let peers: Vec<String> = (0..n)
        .filter(|&j| j != i)
        .map(|j| node_address(j).to_string())
        .collect();
    let backends: Vec<String> = (0..n)
        .map(|j| format!("{}:{BACKEND_PORT}", node_address(j)))
        .collect();
    format!(
        "interface: eth0\nvip: {VIP}/24\nvrid: 51\npriority: {prio}\nadvert_interval: {adv}\n\
         unicast_peers: [{peers}]\nsource: {me}\nchecksum: keepalived\nlisten: 0.0.0.0:{LB_PORT}\n\
         backends: [{backends}]\nhealth:\n  kind: http\n  path: /healthz\n  interval: 100ms\n  fall: 2\n  rise: 2\n\
         metrics: 127.0.0.1:9100\nlocal_weight: {w}\nvip_lifetime: 2s\nhandover_timeout: 2s\ndrain_timeout: 2s\nconnect_timeout: 300ms\n",
        prio = o.priority,
        adv = o.advert,
        peers = peers.join(", "),
        me = node_address(i),
        backends = backends.join(", "),
        w = o.local_weight,
    )
}

pub fn frontdoor(t: &Topology, i: usize, dir: &Path, o: &FdOptions) -> Proc {
    let cfg = dir.join(format!("frontdoor{i}.yaml"));
    std::fs::write(&cfg, frontdoor_config(t, i, o)).unwrap();
    t.nodes[i]
        .ns
        .spawn(
            &[
                env!("CARGO_BIN_EXE_kubeha"),
                "frontdoor",
                "run",
                "-c",
                cfg.to_str().unwrap(),
            ],
            Some(&log_path(dir, i)),
        )
        .unwrap()
}

pub fn log_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("frontdoor{i}.log"))
}

pub fn holds_vip(t: &Topology, i: usize) -> bool {
    t.nodes[i]
        .ns
        .exec(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        .map(|s| s.contains(&format!("{VIP}/24")))
        .unwrap_or(false)
}

pub fn holders(t: &Topology) -> Vec<usize> {
    (0..t.nodes.len()).filter(|&i| holds_vip(t, i)).collect()
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

/// The node's metrics page, fetched inside its namespace (metrics listen on localhost only).
pub fn metrics(t: &Topology, i: usize) -> String {
    let ns = t.nodes[i].ns.name().to_string();
    in_netns(&ns, || {
        let mut s =
            TcpStream::connect_timeout(&"127.0.0.1:9100".parse().unwrap(), Duration::from_secs(1))
                .ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        Some(body)
    })
    .join()
    .unwrap()
    .unwrap_or_default()
}

/// The value of one sample line (`name{labels} value`) on a metrics page.
pub fn metric(page: &str, sample: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|v| v.trim().parse().ok()))
}

/// One request through the VIP: which node answered, or why it failed.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Duration,
    pub result: Result<usize, String>,
}

/// Keeps making fresh connections to VIP:16443 from the client namespace until stopped.
pub struct Client {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Vec<Sample>>>,
    pub start: Instant,
}

impl Client {
    pub fn start(t: &Topology) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let start = Instant::now();
        let handle = in_netns(t.client.ns.name(), move || {
            let mut out = Vec::new();
            let target = SocketAddr::from((VIP, LB_PORT));
            // bounded: at most 100k requests or 120 s
            while !flag.load(Ordering::Relaxed)
                && out.len() < 100_000
                && start.elapsed() < Duration::from_secs(120)
            {
                let at = start.elapsed();
                out.push(Sample {
                    at,
                    result: request(target),
                });
                std::thread::sleep(Duration::from_millis(2));
            }
            out
        });
        Client {
            stop,
            handle: Some(handle),
            start,
        }
    }

    pub fn stop(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn request(target: SocketAddr) -> Result<usize, String> {
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

pub fn failures(samples: &[Sample]) -> Vec<&Sample> {
    samples.iter().filter(|s| s.result.is_err()).collect()
}

/// Longest stretch without a successful request, from the samples.
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

pub fn vip_str() -> String {
    VIP.to_string()
}

pub fn addr(i: usize) -> Ipv4Addr {
    node_address(i)
}
