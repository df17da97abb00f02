//! bench/failover: the same 3-node namespace lab (nginx as the apiservers on :6443) runs
//! keepalived + haproxy (kubeadm HA docs' settings) and then kubeha's front door, and the same
//! faults are measured from a client that keeps connecting to VIP:16443. Prints medians side
//! by side with ratios. Run through bench/failover.sh (root; addresses 198.18.0.0/24 only).
//!
//! usage: failover_bench KUBEHA_BIN [--runs N] [--interval 100ms] [--wrk-secs 10] [--soak-secs 0]
//!        failover_bench KUBEHA_BIN --stress-secs 120 [--stress-workers N]   (issue 15 item 3)

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lab::netns::Netns;
use lab::topology::{VIP, node_address};
use lab::{Proc, Topology};
use testkit::probe::{self, Client, within};

const LB_PORT: u16 = 16443;
const BACKEND_PORT: u16 = 6443;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Keepalived,
    Kubeha,
}

#[derive(Clone, Debug)]
struct Stack {
    kind: Kind,
    interval_ms: u64,
    label: String,
    /// kubeha's `realtime_priority` (None: the default); keepalived runs at its own settings.
    realtime_priority: Option<u8>,
}

/// One node's running stack: keepalived + haproxy, or the kubeha daemon.
struct NodeStack {
    vrrp: Option<Proc>,
    haproxy: Option<Proc>,
    /// keepalived's VRRP child, read from its pid file (killing only the parent makes the child
    /// hand over gracefully, which is not a crash).
    vrrp_child_pidfile: Option<PathBuf>,
}

struct Lab {
    t: Topology,
    dir: tempfile::TempDir,
    nginx: Vec<Option<Proc>>,
    nodes: Vec<NodeStack>,
    stack: Stack,
    kubeha: PathBuf,
    starts: usize,
}

/// Milliseconds; "never" (no recovery within the window) is infinite.
fn ms(d: Duration) -> f64 {
    if d == Duration::MAX {
        f64::INFINITY
    } else {
        d.as_secs_f64() * 1000.0
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn vip_on(ns: &Netns) -> bool {
    ns.exec(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        .map(|s| s.contains(&format!("{VIP}/")))
        .unwrap_or(false)
}

impl Lab {
    fn holders(&self) -> Vec<usize> {
        (0..3).filter(|&i| vip_on(&self.t.nodes[i].ns)).collect()
    }

    fn write(&self, name: &str, body: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    fn start_node(&mut self, i: usize) {
        self.starts += 1;
        let n = self.starts;
        let me = node_address(i);
        let peers: Vec<String> = (0..3)
            .filter(|&j| j != i)
            .map(|j| node_address(j).to_string())
            .collect();
        let prio = 150 - 10 * i as u32;
        let ns = &self.t.nodes[i].ns;
        let log = self.dir.path().join(format!("node{i}.log"));
        match self.stack.kind {
            Kind::Keepalived => {
                // kubeadm HA docs: check script every 3 s, fall 10, rise 2, weight -2 (here
                // -30 so the drop can move the VIP at all with these priorities)
                let script = self.write(
                    &format!("check{i}.sh"),
                    &format!("#!/bin/sh\nexec curl -sf --max-time 2 -o /dev/null http://127.0.0.1:{LB_PORT}/healthz\n"),
                );
                std::fs::set_permissions(
                    &script,
                    std::os::unix::fs::PermissionsExt::from_mode(0o755),
                )
                .unwrap();
                let adv = format!(
                    "{}.{:02}",
                    self.stack.interval_ms / 1000,
                    (self.stack.interval_ms % 1000) / 10
                );
                let conf = format!(
                    "global_defs {{\n  router_id n{i}\n  vrrp_version 3\n  enable_script_security\n  script_user root\n}}\n\
                     vrrp_script check_apiserver {{\n  script \"{script}\"\n  interval 3\n  weight -30\n  fall 10\n  rise 2\n}}\n\
                     vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority {prio}\n  advert_int {adv}\n\
                     \x20 unicast_src_ip {me}\n  unicast_peer {{\n    {p0}\n    {p1}\n  }}\n  virtual_ipaddress {{\n    {VIP}/24 dev eth0\n  }}\n\
                     \x20 track_script {{\n    check_apiserver\n  }}\n}}\n",
                    script = script.display(),
                    p0 = peers[0],
                    p1 = peers[1],
                );
                let kc = self.write(&format!("keepalived{i}-{n}.conf"), &conf);
                let (pp, vp) = (
                    self.dir.path().join(format!("k{i}-{n}.pid")),
                    self.dir.path().join(format!("v{i}-{n}.pid")),
                );
                let backends: Vec<String> = (0..3)
                    .map(|j| format!("    server n{j} {}:{BACKEND_PORT} check", node_address(j)))
                    .collect();
                // kubeadm HA docs' haproxy: tcp mode, round robin, httpchk GET /healthz, default
                // check timing (inter 2s, fall 3, rise 2)
                let hc = self.write(
                    &format!("haproxy{i}-{n}.cfg"),
                    &format!(
                        "global\n  maxconn 8000\n  pidfile {d}/haproxy{i}-{n}.pid\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\n  retries 1\n\
                         frontend fe\n  bind *:{LB_PORT}\n  default_backend be\nbackend be\n  option httpchk GET /healthz\n  http-check expect status 200\n  balance roundrobin\n{b}\n",
                        d = self.dir.path().display(),
                        b = backends.join("\n")
                    ),
                );
                let haproxy = ns
                    .spawn(&["haproxy", "-db", "-f", hc.to_str().unwrap()], Some(&log))
                    .unwrap();
                let vrrp = probe::keepalived(ns, &kc, &pp, &vp, &log).unwrap();
                self.nodes[i] = NodeStack {
                    vrrp: Some(vrrp),
                    haproxy: Some(haproxy),
                    vrrp_child_pidfile: Some(vp),
                };
            }
            Kind::Kubeha => {
                let cfg = self.write(
                    &format!("frontdoor{i}.yaml"),
                    &kubeha_config(
                        i,
                        prio,
                        self.stack.interval_ms,
                        self.stack.realtime_priority,
                    ),
                );
                let vrrp = ns
                    .spawn(
                        &[
                            self.kubeha.to_str().unwrap(),
                            "frontdoor",
                            "run",
                            "-c",
                            cfg.to_str().unwrap(),
                        ],
                        Some(&log),
                    )
                    .unwrap();
                self.nodes[i] = NodeStack {
                    vrrp: Some(vrrp),
                    haproxy: None,
                    vrrp_child_pidfile: None,
                };
            }
        }
    }

    /// Stops node `i`'s stack hard and removes any VIP it left behind.
    fn reset_node(&mut self, i: usize) {
        self.crash_vrrp(i);
        if let Some(mut h) = self.nodes[i].haproxy.take() {
            h.signal(libc::SIGKILL);
            h.wait_timeout(Duration::from_secs(2));
        }
        let _ =
            self.t.nodes[i]
                .ns
                .exec(&["ip", "addr", "del", &format!("{VIP}/24"), "dev", "eth0"]);
    }

    /// kill -9 of node `i`'s VRRP side: keepalived's parent and VRRP child at once, or the
    /// kubeha daemon.
    fn kill_vrrp(&self, i: usize) {
        let node = &self.nodes[i];
        match (node.vrrp.as_ref(), node.vrrp_child_pidfile.as_ref()) {
            (Some(p), Some(pidfile)) => {
                probe::kill_keepalived(p, pidfile);
            }
            (Some(p), None) => p.signal(libc::SIGKILL),
            (None, _) => {}
        }
    }

    /// The holder's whole front door dies hard: VRRP and the proxy (keepalived and haproxy,
    /// or the one kubeha process), as when the node's front-door software crashes.
    fn kill_front_door(&self, i: usize) {
        self.kill_vrrp(i);
        if let Some(h) = self.nodes[i].haproxy.as_ref() {
            h.signal(libc::SIGKILL);
        }
    }

    fn crash_vrrp(&mut self, i: usize) {
        self.kill_vrrp(i);
        if let Some(mut p) = self.nodes[i].vrrp.take() {
            p.wait_timeout(Duration::from_secs(2));
        }
    }

    /// Restarts everything and waits for node 0 to hold the VIP with every backend up.
    fn steady(&mut self) -> bool {
        for i in 0..3 {
            if self.nginx[i].is_none() {
                self.nginx[i] = Some(
                    probe::nginx(
                        &self.t.nodes[i].ns,
                        SocketAddr::from((node_address(i), BACKEND_PORT)),
                        i,
                        self.dir.path(),
                    )
                    .unwrap(),
                );
            }
        }
        for i in 0..3 {
            self.reset_node(i);
        }
        for i in 0..3 {
            self.start_node(i);
        }
        let target = SocketAddr::from((VIP, LB_PORT));
        let client = self.t.client.ns.name().to_string();
        within(Duration::from_secs(20), || {
            self.holders() == vec![0]
                && lab::netns::in_netns(&client, move || {
                    (0..6).all(|_| probe::request(target).is_ok())
                })
                .join()
                .ok()
                .and_then(Result::ok)
                .unwrap_or(false)
        })
        .is_some()
    }
}

/// One row of the report: a number from a stack's results.
type Metric = fn(&Results) -> f64;

struct Results {
    crash_ms: Vec<f64>,
    crash_vip_ms: Vec<f64>,
    cable_vip_ms: Vec<f64>,
    vip_left_behind: usize,
    cable_ms: Vec<f64>,
    graceful_failed: Vec<f64>,
    proxy_death_ms: Vec<f64>,
    backend_failed: Vec<f64>,
    backend_stop_ms: Vec<f64>,
    wrk_rps: f64,
    wrk_p99_ms: f64,
    direct_rps: f64,
    direct_p99_ms: f64,
    soak_false_failovers: Option<u64>,
}

/// Runs `f` (the fault) while a client measures; returns the samples and the fault's offset.
fn measured(
    lab: &Lab,
    settle: Duration,
    after: Duration,
    f: impl FnOnce(),
) -> (Vec<probe::Sample>, Duration) {
    let (s, t0, _) = measured_move(lab, settle, after, f);
    (s, t0)
}

/// Like `measured`, and how long until node 1 held the VIP (polled every 10 ms).
fn measured_move(
    lab: &Lab,
    settle: Duration,
    after: Duration,
    f: impl FnOnce(),
) -> (Vec<probe::Sample>, Duration, Option<Duration>) {
    let client = Client::start(lab.t.client.ns.name(), SocketAddr::from((VIP, LB_PORT)));
    std::thread::sleep(settle);
    let t0 = client.start.elapsed();
    let fault = Instant::now();
    f();
    let moved = within(after, || vip_on(&lab.t.nodes[1].ns));
    std::thread::sleep(after.saturating_sub(fault.elapsed()));
    (client.stop(), t0, moved)
}

fn wrk(ns: &Netns, url: &str, secs: u64) -> (f64, f64) {
    let out = ns
        .exec(&[
            "wrk",
            "-t2",
            "-c50",
            &format!("-d{secs}s"),
            "--latency",
            url,
        ])
        .unwrap_or_default();
    let rps = out
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN);
    let p99 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| {
            let v = v.trim();
            let (num, unit) = v.split_at(v.find(|c: char| c.is_alphabetic()).unwrap_or(v.len()));
            let n: f64 = num.parse().unwrap_or(f64::NAN);
            match unit {
                "us" => n / 1000.0,
                "s" => n * 1000.0,
                _ => n,
            }
        })
        .unwrap_or(f64::NAN);
    (rps, p99)
}

impl Lab {
    /// Three node namespaces and a client; nothing started yet.
    fn new(stack: &Stack, kubeha: &Path) -> Lab {
        let t = Topology::build(&format!("khb{}", std::process::id() % 10000), 3).unwrap();
        Lab {
            t,
            // keepalived refuses check scripts below world-writable directories such as /tmp
            dir: {
                std::fs::create_dir_all("target/bench-tmp").unwrap();
                tempfile::tempdir_in("target/bench-tmp").unwrap()
            },
            nginx: vec![None, None, None],
            nodes: (0..3)
                .map(|_| NodeStack {
                    vrrp: None,
                    haproxy: None,
                    vrrp_child_pidfile: None,
                })
                .collect(),
            stack: stack.clone(),
            kubeha: kubeha.to_path_buf(),
            starts: 0,
        }
    }
}

/// Issue 15 item 3: VRRP under CPU starvation. While stress-ng keeps more busy workers than
/// there are cores, a healthy group must not move the VIP.
struct Stress {
    /// Transitions into Master on any node (from the nodes' own logs).
    became_master: usize,
    /// Samples (every 100 ms) in which node 0 was not the only holder.
    off_samples: usize,
    samples: usize,
}

fn log_lines_since(path: &Path, offset: u64) -> Vec<String> {
    let text = std::fs::read(path).unwrap_or_default();
    let from = (offset as usize).min(text.len());
    String::from_utf8_lossy(&text[from..])
        .lines()
        .map(str::to_string)
        .collect()
}

fn stress_run(stack: &Stack, kubeha: &Path, secs: u64, workers: usize) -> Stress {
    let mut lab = Lab::new(stack, kubeha);
    assert!(
        lab.steady(),
        "[{}] no steady state before the stress",
        stack.label
    );
    // A few seconds of quiet first, so start-up transitions are not counted.
    std::thread::sleep(Duration::from_secs(3));
    let logs: Vec<PathBuf> = (0..3)
        .map(|i| lab.dir.path().join(format!("node{i}.log")))
        .collect();
    let offsets: Vec<u64> = logs
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .collect();
    eprintln!("[{}] stress-ng --cpu {workers} for {secs} s", stack.label);
    let mut load = std::process::Command::new("stress-ng")
        .args([
            "--cpu",
            &workers.to_string(),
            "--timeout",
            &format!("{secs}s"),
            "--quiet",
        ])
        .spawn()
        .expect("stress-ng is installed (bench/failover.sh)");
    let started = Instant::now();
    let (mut samples, mut off_samples) = (0, 0);
    // Bounded by the stress window.
    while started.elapsed() < Duration::from_secs(secs) {
        samples += 1;
        if lab.holders() != vec![0] {
            off_samples += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while load.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = load.kill();
    let _ = load.wait();
    let became_master = logs
        .iter()
        .zip(&offsets)
        .map(|(p, &o)| {
            log_lines_since(p, o)
                .iter()
                .filter(|l| match stack.kind {
                    Kind::Keepalived => l.contains("Entering MASTER STATE"),
                    Kind::Kubeha => l.contains("VRRP state") && l.contains("to=Master"),
                })
                .count()
        })
        .sum();
    for i in 0..3 {
        lab.reset_node(i);
    }
    Stress {
        became_master,
        off_samples,
        samples,
    }
}

fn run_stack(stack: Stack, kubeha: &Path, runs: usize, wrk_secs: u64, soak_secs: u64) -> Results {
    let mut lab = Lab::new(&stack, kubeha);
    let mut r = Results {
        crash_ms: vec![],
        crash_vip_ms: vec![],
        cable_vip_ms: vec![],
        vip_left_behind: 0,
        cable_ms: vec![],
        graceful_failed: vec![],
        proxy_death_ms: vec![],
        backend_failed: vec![],
        backend_stop_ms: vec![],
        wrk_rps: f64::NAN,
        wrk_p99_ms: f64::NAN,
        direct_rps: f64::NAN,
        direct_p99_ms: f64::NAN,
        soak_false_failovers: None,
    };
    let window = Duration::from_millis(stack.interval_ms * 4 + 4000);
    for run in 0..runs {
        eprintln!("[{}] run {}/{runs}", stack.label, run + 1);
        // crash: kill -9 the holder's VRRP process
        if !lab.steady() {
            let logs: Vec<String> = (0..3)
                .map(|i| {
                    std::fs::read_to_string(lab.dir.path().join(format!("node{i}.log")))
                        .unwrap_or_default()
                })
                .collect();
            panic!(
                "{}: no steady state; holders {:?}\n{}",
                stack.label,
                lab.holders(),
                logs.join("\n---\n")
            );
        }
        let (s, t0, moved) = measured_move(&lab, Duration::from_millis(300), window, || {
            lab.kill_front_door(0)
        });
        r.crash_ms.push(ms(probe::recovery(&s, t0).0));
        r.crash_vip_ms.push(moved.map_or(f64::INFINITY, ms));
        if vip_on(&lab.t.nodes[0].ns) {
            r.vip_left_behind += 1;
        }
        // cable pull on the holder
        assert!(lab.steady());
        let (s, t0, moved) = measured_move(&lab, Duration::from_millis(300), window, || {
            lab.t.cable(0, false).unwrap()
        });
        lab.t.cable(0, true).unwrap();
        r.cable_ms.push(ms(probe::recovery(&s, t0).0));
        r.cable_vip_ms.push(moved.map_or(f64::INFINITY, ms));
        // graceful stop: SIGTERM (keepalived: then haproxy, as an operator stops a node)
        assert!(lab.steady());
        let (s, _) = measured(
            &lab,
            Duration::from_millis(300),
            Duration::from_secs(3),
            || {
                if let Some(p) = lab.nodes[0].vrrp.as_ref() {
                    p.signal(libc::SIGTERM);
                }
            },
        );
        r.graceful_failed.push(probe::failures(&s).len() as f64);
        // proxy death on the holder: haproxy killed (kubeha: the proxy is the daemon: kill -9)
        assert!(lab.steady());
        let (s, t0) = measured(
            &lab,
            Duration::from_millis(300),
            Duration::from_secs(if stack.kind == Kind::Keepalived {
                40
            } else {
                4
            }),
            || match stack.kind {
                Kind::Keepalived => {
                    if let Some(h) = lab.nodes[0].haproxy.as_ref() {
                        h.signal(libc::SIGKILL);
                    }
                }
                Kind::Kubeha => {
                    if let Some(p) = lab.nodes[0].vrrp.as_ref() {
                        p.signal(libc::SIGKILL);
                    }
                }
            },
        );
        r.proxy_death_ms.push(ms(probe::recovery(&s, t0).0));
        // backend kill (a non-holder's nginx): failed requests and how long they kept failing
        assert!(lab.steady());
        let (s, t0) = measured(
            &lab,
            Duration::from_millis(300),
            Duration::from_secs(8),
            || {
                lab_kill_nginx(&lab, 2);
            },
        );
        lab.nginx[2] = None;
        r.backend_failed.push(probe::failures(&s).len() as f64);
        let last_fail = s
            .iter()
            .filter(|x| x.result.is_err())
            .map(|x| x.at)
            .next_back();
        r.backend_stop_ms
            .push(last_fail.map_or(0.0, |l| ms(l.saturating_sub(t0))));
    }
    // throughput through the VIP, and directly against one backend (the limit)
    assert!(lab.steady());
    let (rps, p99) = wrk(
        &lab.t.client.ns,
        &format!("http://{VIP}:{LB_PORT}/"),
        wrk_secs,
    );
    r.wrk_rps = rps;
    r.wrk_p99_ms = p99;
    let (rps, p99) = wrk(
        &lab.t.client.ns,
        &format!("http://{}:{BACKEND_PORT}/", node_address(1)),
        wrk_secs,
    );
    r.direct_rps = rps;
    r.direct_p99_ms = p99;
    if soak_secs > 0 {
        // no false failover under load: transitions on node 0 before and after a wrk soak
        let before = lab.holders();
        let started = Instant::now();
        let mut flips = 0u64;
        let client_ns = lab.t.client.ns.name().to_string();
        let url = format!("http://{VIP}:{LB_PORT}/");
        let load = std::thread::spawn(move || {
            Netns::existing(&client_ns)
                .exec(&["wrk", "-t2", "-c50", &format!("-d{soak_secs}s"), &url])
                .map(|_| ())
        });
        while started.elapsed() < Duration::from_secs(soak_secs) {
            if lab.holders() != before {
                flips += 1;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = load.join();
        r.soak_false_failovers = Some(flips);
    }
    r
}

fn lab_kill_nginx(lab: &Lab, i: usize) {
    if let Some(p) = lab.nginx[i].as_ref() {
        p.signal(libc::SIGKILL);
    }
}

/// Node `i`'s front door config: unicast to the other two, HTTP checks of /healthz.
fn kubeha_config(i: usize, prio: u32, interval_ms: u64, realtime_priority: Option<u8>) -> String {
    use frontdoor::config::{AdvertInterval, HealthConfig, HealthKind, Priority};
    let mut health = HealthConfig::new(HealthKind::Http, Duration::from_millis(100), 2, 2);
    health.path = Some("/healthz".into());
    let priority = Priority::try_from(i64::from(prio)).expect("a priority");
    let mut cfg = lab::cluster::node_frontdoor(3, i, priority, BACKEND_PORT, health);
    cfg.advert_interval =
        Some(AdvertInterval::try_from(Duration::from_millis(interval_ms)).expect("--interval-ms"));
    cfg.local_weight = Some(30);
    cfg.connect_timeout = Some(Duration::from_millis(300));
    cfg.realtime_priority = realtime_priority;
    cfg.to_yaml().expect("plain data")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kubeha = PathBuf::from(args.get(1).expect("usage: failover_bench KUBEHA_BIN [--runs N] [--interval 100ms] [--wrk-secs 10] [--soak-secs 0] [--stress-secs 0 [--stress-workers N]]"));
    let opt = |name: &str, default: &str| -> String {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    let runs: usize = opt("--runs", "3").parse().unwrap();
    let interval: u64 = opt("--interval", "100ms")
        .trim_end_matches("ms")
        .parse()
        .unwrap();
    let wrk_secs: u64 = opt("--wrk-secs", "10").parse().unwrap();
    let soak: u64 = opt("--soak-secs", "0").parse().unwrap();
    let stress_secs: u64 = opt("--stress-secs", "0").parse().unwrap();
    if stress_secs > 0 {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let workers: usize = opt("--stress-workers", &(4 * cores).to_string())
            .parse()
            .unwrap();
        stress_comparison(&kubeha, stress_secs, workers, cores);
        return;
    }
    let stacks = [
        Stack {
            kind: Kind::Keepalived,
            interval_ms: interval,
            label: format!("keepalived+haproxy @{interval}ms"),
            realtime_priority: None,
        },
        Stack {
            kind: Kind::Kubeha,
            interval_ms: interval,
            label: format!("kubeha @{interval}ms"),
            realtime_priority: None,
        },
        Stack {
            kind: Kind::Kubeha,
            interval_ms: 40,
            label: "kubeha @40ms (default)".into(),
            realtime_priority: None,
        },
    ];
    let results: Vec<(Stack, Results)> = stacks
        .into_iter()
        .map(|s| {
            let soak_here = if s.kind == Kind::Kubeha && s.interval_ms == 40 {
                soak
            } else {
                0
            };
            let r = run_stack(s.clone(), &kubeha, runs, wrk_secs, soak_here);
            (s, r)
        })
        .collect();
    let base = &results[0].1;
    let ratio = |v: f64, b: f64| {
        if b > 0.0 && v.is_finite() && b.is_finite() {
            format!("{:.2}x", v / b)
        } else {
            "-".into()
        }
    };
    println!(
        "\nfailover bench: 3 nodes in network namespaces, client in its own namespace, {runs} run(s) each, medians"
    );
    println!(
        "{:<38} {:>24} {:>24} {:>24}",
        "", results[0].0.label, results[1].0.label, results[2].0.label
    );
    let rows: Vec<(&str, Metric)> = vec![
        ("crash: VIP moved after (ms)", |r| {
            median(r.crash_vip_ms.clone())
        }),
        ("crash: clients served again (ms)", |r| {
            median(r.crash_ms.clone())
        }),
        ("cable pull: VIP moved after (ms)", |r| {
            median(r.cable_vip_ms.clone())
        }),
        ("cable pull: clients served again (ms)", |r| {
            median(r.cable_ms.clone())
        }),
        ("graceful stop, failed requests", |r| {
            median(r.graceful_failed.clone())
        }),
        ("proxy death failover (ms)", |r| {
            median(r.proxy_death_ms.clone())
        }),
        ("backend kill, failed requests", |r| {
            median(r.backend_failed.clone())
        }),
        ("backend kill, failing for (ms)", |r| {
            median(r.backend_stop_ms.clone())
        }),
        ("VIP left on crashed node (runs)", |r| {
            r.vip_left_behind as f64
        }),
        ("wrk -t2 -c50 req/s via VIP", |r| r.wrk_rps),
        ("wrk p99 via VIP (ms)", |r| r.wrk_p99_ms),
        ("wrk req/s direct to a backend", |r| r.direct_rps),
        ("wrk p99 direct (ms)", |r| r.direct_p99_ms),
    ];
    for (name, f) in &rows {
        let b = f(base);
        let cells: Vec<String> = results
            .iter()
            .enumerate()
            .map(|(i, (_, r))| {
                let v = f(r);
                if i == 0 {
                    format!("{v:.1}")
                } else {
                    format!("{v:.1} ({})", ratio(v, b))
                }
            })
            .collect();
        println!(
            "{name:<38} {:>24} {:>24} {:>24}",
            cells[0], cells[1], cells[2]
        );
    }
    if let Some(f) = results[2].1.soak_false_failovers {
        println!("soak under wrk load at 40ms adverts: {f} VIP moves (false failovers)");
    }
    for (s, r) in &results {
        println!(
            "raw {}: crash clients {:?} crash VIP {:?} cable clients {:?} cable VIP {:?} proxy death {:?}",
            s.label, r.crash_ms, r.crash_vip_ms, r.cable_ms, r.cable_vip_ms, r.proxy_death_ms
        );
    }
}

/// keepalived at its own settings and kubeha at its defaults (`SCHED_FIFO` VRRP thread), then
/// kubeha with ordinary scheduling, all at 40 ms adverts, each under the same stress.
fn stress_comparison(kubeha: &Path, secs: u64, workers: usize, cores: usize) {
    let stacks = [
        Stack {
            kind: Kind::Keepalived,
            interval_ms: 40,
            label: "keepalived+haproxy @40ms".into(),
            realtime_priority: None,
        },
        Stack {
            kind: Kind::Kubeha,
            interval_ms: 40,
            label: "kubeha @40ms (SCHED_FIFO)".into(),
            realtime_priority: None,
        },
        Stack {
            kind: Kind::Kubeha,
            interval_ms: 40,
            label: "kubeha @40ms, realtime_priority 0".into(),
            realtime_priority: Some(0),
        },
    ];
    let results: Vec<(String, Stress)> = stacks
        .iter()
        .map(|s| (s.label.clone(), stress_run(s, kubeha, secs, workers)))
        .collect();
    println!(
        "\nstress bench: stress-ng --cpu {workers} on {cores} cores for {secs} s, 3 nodes, 40 ms adverts, holder sampled every 100 ms"
    );
    println!(
        "{:<36} {:>22} {:>30}",
        "", "transitions to Master", "samples not held by node 0 alone"
    );
    for (label, r) in &results {
        println!(
            "{label:<36} {:>22} {:>30}",
            r.became_master,
            format!("{} of {}", r.off_samples, r.samples)
        );
    }
}
