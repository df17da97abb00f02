//! Just the data path, with TCP health checks: for benchmarking against haproxy.
//!
//! ```text
//! proxy_only LISTEN BACKEND... [--balance round-robin|least-connections]
//!            [--threads N] [--acceptors N] [--buffer BYTES] [--metrics ADDR] [--per-core] [--no-splice]
//! ```
//! `--per-core`: `--threads` single-threaded runtimes, each with its own `SO_REUSEPORT`
//! listener (thread per core, no work stealing); otherwise one multi-threaded runtime.
//! `--no-splice`: always copy through user space (by default bulk transfers are spliced).
//! Runs until Ctrl-C or SIGTERM, then drains (5 s).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use frontdoor::health::{HealthCheck, run_health_checks};
use frontdoor::metrics::serve_metrics;
use frontdoor::pool::{Balance, Pool};
use frontdoor::proxy::{self, ProxyConfig};
use tokio_util::sync::CancellationToken;

struct Args {
    listen: SocketAddr,
    backends: Vec<SocketAddr>,
    balance: Balance,
    threads: usize,
    acceptors: usize,
    buffer: usize,
    metrics: Option<SocketAddr>,
    per_core: bool,
    splice: bool,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut pos = Vec::new();
    let mut balance = Balance::RoundRobin;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut acceptors = 1;
    let mut buffer = ProxyConfig::default().buffer_size;
    let mut metrics = None;
    let mut per_core = false;
    let mut splice = ProxyConfig::default().splice;
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--balance" => balance = val("--balance")?.parse()?,
            "--threads" => threads = val("--threads")?.parse().map_err(|e| format!("{e}"))?,
            "--acceptors" => acceptors = val("--acceptors")?.parse().map_err(|e| format!("{e}"))?,
            "--buffer" => buffer = val("--buffer")?.parse().map_err(|e| format!("{e}"))?,
            "--metrics" => metrics = Some(val("--metrics")?.parse().map_err(|e| format!("{e}"))?),
            "--per-core" => per_core = true,
            "--splice" => splice = true,
            "--no-splice" => splice = false,
            "-h" | "--help" => return Err(String::new()),
            _ => pos.push(a),
        }
    }
    let mut addrs = pos
        .iter()
        .map(|s| s.parse::<SocketAddr>().map_err(|e| format!("{s}: {e}")));
    let listen = addrs.next().ok_or("missing LISTEN")??;
    let backends = addrs.collect::<Result<Vec<_>, _>>()?;
    if backends.is_empty() {
        return Err("missing BACKEND".into());
    }
    Ok(Args {
        listen,
        backends,
        balance,
        threads,
        acceptors: acceptors.max(1),
        buffer,
        metrics,
        per_core,
        splice,
    })
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "{e}\nusage: proxy_only LISTEN BACKEND... [--balance round-robin|least-connections] \
                 [--threads N] [--acceptors N] [--buffer BYTES] [--metrics ADDR] [--per-core] [--no-splice]"
            );
            return ExitCode::from(2);
        }
    };
    let workers = if args.per_core {
        1
    } else {
        args.threads.max(1)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime");
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proxy_only: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> std::io::Result<()> {
    let pool = Arc::new(Pool::new(args.backends, args.balance));
    let shutdown = CancellationToken::new();
    let cfg = ProxyConfig {
        listen: args.listen,
        buffer_size: args.buffer,
        splice: args.splice,
        drain_timeout: Duration::from_secs(5),
        ..ProxyConfig::default()
    };
    let mut tasks = tokio::task::JoinSet::new();
    let mut threads = Vec::new();
    if args.per_core {
        for _ in 0..args.threads.max(1) {
            // Registered with this runtime by `bind`; moved to the core's own runtime below.
            let std_listener = proxy::bind_reuseport(cfg.listen, cfg.backlog)?.into_std()?;
            let (cfg, pool, shutdown) = (cfg.clone(), pool.clone(), shutdown.clone());
            threads.push(std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let l = tokio::net::TcpListener::from_std(std_listener)?;
                    proxy::serve(l, cfg, pool, shutdown).await
                })
            }));
        }
    }
    // More than one acceptor: one SO_REUSEPORT listener each (the kernel spreads connects).
    for _ in 0..if args.per_core { 0 } else { args.acceptors } {
        let listener = if args.acceptors == 1 {
            proxy::bind(cfg.listen, cfg.backlog)?
        } else {
            proxy::bind_reuseport(cfg.listen, cfg.backlog)?
        };
        tasks.spawn(proxy::serve(
            listener,
            cfg.clone(),
            pool.clone(),
            shutdown.clone(),
        ));
    }
    let check = HealthCheck::default();
    let (p, s) = (pool.clone(), shutdown.clone());
    tokio::spawn(async move {
        if let Err(e) = run_health_checks(check, p, s).await {
            eprintln!("health checks: {e}");
        }
    });
    if let Some(addr) = args.metrics {
        let p = pool.clone();
        let render: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(move || p.metrics().render());
        tokio::spawn(serve_metrics(addr, render, shutdown.clone()));
    }
    eprintln!("proxy_only: listening on {}", cfg.listen);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    shutdown.cancel();
    while let Some(r) = tasks.join_next().await {
        if let Ok(Err(e)) = r {
            eprintln!("proxy: {e}");
        }
    }
    for t in threads {
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || t.join())
            .await
            .expect("join")
        {
            eprintln!("proxy: {e}");
        }
    }
    Ok(())
}
