//! What the executor itself costs at scale: a plan of N nodes (default 5,000: 5 control-plane,
//! the rest workers) run against `transport::fake`, whose nodes answer every script at once.
//! A first `up`, a re-run that changes nothing, then `status`, each with its wall time, the
//! process's peak memory, the most file descriptors open at once, the transport calls per
//! node and the per-node logs. Run by bench/up-scale.sh (release build); never a timed test.
//!
//!     cargo run --release -p kubeha-deploy --features fake --example up_scale -- [NODES] [CONCURRENCY]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use deploy::executor::{Connections, Event, Observer, Options, execute};
use deploy::transport::fake::Cluster;
use plan::Artifact;

fn inventory(n: usize) -> inventory::Inventory {
    let mut y = String::from(
        "cluster: { name: big, kubernetes_version: 1.31.4 }\nendpoint: { vip: 198.18.0.10/15 }\nnodes:\n",
    );
    for i in 1..=5 {
        y.push_str(&format!(
            "  - {{ name: cp{i}, address: 198.18.0.{}/15, roles: [control-plane] }}\n",
            10 + i
        ));
    }
    for i in 1..=n.saturating_sub(5) {
        y.push_str(&format!(
            "  - {{ name: w{i}, address: 198.19.{}.{}/15, roles: [worker] }}\n",
            i / 250,
            i % 250 + 1
        ));
    }
    inventory::parse_str(&y, "big.yaml")
        .expect("generated inventory")
        .inventory
}

/// Certificates of the size kubeha's PKI issues (no keys are made: only their bytes count),
/// and a kubeha binary of 30 MB on the control-plane nodes, so hashing costs what it does.
fn inputs(inv: &inventory::Inventory) -> plan::Inputs {
    let pem = |seed: &str| Artifact::secret(seed, "bench", vec![b'A'; 1400]);
    let mut pki = BTreeMap::new();
    for n in &inv.nodes {
        let files = if n.roles.control_plane {
            (0..22)
                .map(|i| pem(&format!("/etc/kubernetes/pki/f{i}.crt")))
                .collect()
        } else {
            vec![pem("/etc/kubernetes/pki/ca.crt")]
        };
        pki.insert(n.name.clone(), files);
    }
    let mut inputs = plan::Inputs::placeholder();
    inputs.pki = Some(pki);
    inputs.kubeha_binary = Some(Arc::from(vec![0x7fu8; 30 << 20]));
    inputs
}

fn proc_status(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mb(kb: u64) -> String {
    format!("{:.0} MB", kb as f64 / 1024.0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Counts /proc/self/fd every 2 ms; `max` is the most seen since the last `reset`.
struct FdSampler {
    max: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl FdSampler {
    fn start() -> Self {
        let max = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (max.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                m.fetch_max(open_fds(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        FdSampler { max, stop }
    }
    fn reset(&self) {
        self.max.store(open_fds(), Ordering::Relaxed);
    }
    fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }
}

impl Drop for FdSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Counts what a progress display would be told.
#[derive(Default)]
struct Counting(AtomicUsize);

impl Observer for Counting {
    fn event(&self, _: Event<'_>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn logs(dir: &Path) -> (usize, u64) {
    std::fs::read_dir(dir).map_or((0, 0), |d| {
        d.flatten().fold((0, 0), |(n, b), e| {
            (n + 1, b + e.metadata().map_or(0, |m| m.len()))
        })
    })
}

fn calls_per_node(cluster: &Cluster) -> (f64, usize) {
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for (node, _) in cluster.calls() {
        *per.entry(node).or_default() += 1;
    }
    let total: usize = per.values().sum();
    let max = per.values().copied().max().unwrap_or(0);
    (total as f64 / per.len().max(1) as f64, max)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5000);
    let concurrency: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let fds = FdSampler::start();
    println!(
        "up_scale: {n} fake nodes (5 control-plane), --concurrency {concurrency}, {} fds open at start",
        open_fds()
    );

    let t = Instant::now();
    let inv = inventory(n);
    let inputs = inputs(&inv);
    let plan = plan::build(&inv, &inputs);
    let steps: usize = plan.nodes.iter().map(|p| p.steps.len()).sum();
    println!(
        "plan built (not the executor's cost): {:.2} s, {steps} steps, RSS {}",
        t.elapsed().as_secs_f64(),
        mb(proc_status("VmRSS:"))
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cluster = Cluster::new();
    cluster.hold_vip("cp1");
    let base = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    std::fs::create_dir_all(&base).expect("tmp dir");
    let tmp = tempfile::tempdir_in(base).expect("tmp dir");
    let connect = |cluster: &Cluster| -> Connections {
        plan.nodes
            .iter()
            .map(|p| (p.name.clone(), Ok(cluster.node(&p.name))))
            .collect()
    };
    for (i, what) in ["first up", "re-run, nothing changed"].iter().enumerate() {
        let log_dir = tmp.path().join(format!("run{i}"));
        let opts = Options {
            concurrency,
            from: None,
            only: Vec::new(),
            dry_run: false,
            step_timeout: Duration::from_secs(60),
            masked: vec![inputs.render.bootstrap_token.clone()],
            log_dir: log_dir.clone(),
            kubeconfig: None,
            skip_checks: Vec::new(),
        };
        cluster.clear_journal();
        let events = Counting::default();
        let conns = connect(&cluster);
        fds.reset();
        let t = Instant::now();
        let report = rt.block_on(execute(&plan, conns, &opts, &events));
        let wall = t.elapsed();
        let (mean, max) = calls_per_node(&cluster);
        let (files, bytes) = logs(&log_dir);
        assert!(report.ok(), "{:?}", report.stopped);
        println!(
            "{what}: {:.2} s wall, {} step(s) changed, peak RSS {} (now {}), max fds {}, \
             transport calls per node {mean:.1} (max {max}), {} progress events, {files} log files ({:.1} MB)",
            wall.as_secs_f64(),
            report.changed(),
            mb(proc_status("VmHWM:")),
            mb(proc_status("VmRSS:")),
            fds.max(),
            events.0.load(Ordering::Relaxed),
            bytes as f64 / 1e6
        );
    }

    cluster.clear_journal();
    fds.reset();
    let t = Instant::now();
    let st = rt.block_on(deploy::status::status(
        &inv,
        async |_: &[String]| connect(&cluster),
        &tmp.path().join("no-pki"),
        concurrency,
    ));
    let (mean, _) = calls_per_node(&cluster);
    println!(
        "status: {:.2} s wall, {} nodes, peak RSS {}, max fds {}, transport calls per node {mean:.1}",
        t.elapsed().as_secs_f64(),
        st.nodes.len(),
        mb(proc_status("VmHWM:")),
        fds.max(),
    );
}
