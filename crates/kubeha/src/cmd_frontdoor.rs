//! `kubeha frontdoor run|check`: the VIP + load-balancer daemon on a control-plane node.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::EXIT_INVALID;

#[derive(Args)]
pub struct FrontdoorArgs {
    #[command(subcommand)]
    pub command: FrontdoorCommand,
}

#[derive(Subcommand)]
pub enum FrontdoorCommand {
    /// Run the daemon: VRRP VIP + health-checked TCP load balancer (needs CAP_NET_ADMIN, CAP_NET_RAW)
    Run {
        /// Config file (kubeha plan renders one per control-plane node)
        #[arg(
            short = 'c',
            long = "config",
            value_name = "FILE",
            default_value = "/etc/kubeha/frontdoor.yaml"
        )]
        config: PathBuf,
        /// Log format
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Listen for VRRP adverts on a VRID and report routers other than the given ones
    /// (exit 1 if any): `kubeha up` runs this before the front door starts, so it never
    /// fights a keepalived or router that already uses the VRID.
    Listen {
        /// Interface to listen on
        #[arg(long, value_name = "NAME")]
        interface: String,
        /// Virtual router ID
        #[arg(long)]
        vrid: u8,
        /// How long to listen
        #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// Routers that may speak on this VRID (the cluster's control-plane nodes)
        #[arg(long, value_name = "ADDR", value_delimiter = ',')]
        ignore: Vec<std::net::Ipv4Addr>,
    },
    /// Validate a config file and exit
    Check {
        #[arg(
            short = 'c',
            long = "config",
            value_name = "FILE",
            default_value = "/etc/kubeha/frontdoor.yaml"
        )]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn run(args: FrontdoorArgs) -> u8 {
    match args.command {
        FrontdoorCommand::Listen {
            interface,
            vrid,
            duration,
            ignore,
        } => listen(&interface, vrid, duration, &ignore),
        FrontdoorCommand::Check { config } => match frontdoor::config::load(&config) {
            Ok(c) => {
                println!(
                    "{}: ok (VIP {}/{} VRID {} priority {}, {} backends)",
                    config.display(),
                    c.vip,
                    c.vip_prefix,
                    c.vrid,
                    c.priority,
                    c.backends.len()
                );
                0
            }
            Err(e) => {
                eprintln!("{e}");
                EXIT_INVALID
            }
        },
        FrontdoorCommand::Run { config, log_format } => {
            let cfg = match frontdoor::config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return EXIT_INVALID;
                }
            };
            init_logs(log_format);
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("kubeha: cannot start the runtime: {e}");
                    return 1;
                }
            };
            rt.block_on(async move {
                let stop = CancellationToken::new();
                let signals = stop.clone();
                tokio::spawn(async move {
                    use tokio::signal::unix::{SignalKind, signal};
                    let (Ok(mut term), Ok(mut int)) = (
                        signal(SignalKind::terminate()),
                        signal(SignalKind::interrupt()),
                    ) else {
                        return;
                    };
                    tokio::select! {
                        _ = term.recv() => tracing::info!("SIGTERM"),
                        _ = int.recv() => tracing::info!("SIGINT"),
                    }
                    signals.cancel();
                });
                match frontdoor::daemon::run(cfg, stop).await {
                    Ok(()) => 0,
                    Err(e) => {
                        tracing::error!(error = %e, "front door failed");
                        eprintln!("kubeha frontdoor: {e}");
                        1
                    }
                }
            })
        }
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBEHA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

/// Routers heard on `vrid` that are not in `ignore`, each once with the priority it sent.
fn listen(
    interface: &str,
    vrid: u8,
    duration: std::time::Duration,
    ignore: &[std::net::Ipv4Addr],
) -> u8 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kubeha frontdoor listen: {e}");
            return 1;
        }
    };
    let heard = rt.block_on(vip::listen::listen(interface, vrid, duration, ignore));
    match heard {
        Err(e) => {
            eprintln!("kubeha frontdoor listen: {interface}: {e}");
            1
        }
        Ok(h) if h.is_empty() => {
            println!("VRID {vrid} on {interface}: no other router in {duration:?}");
            0
        }
        Ok(h) => {
            for vip::listen::Heard { source, priority } in &h {
                eprintln!(
                    "VRID {vrid} on {interface} is already used by {source} (priority {priority}): give frontdoor.vrid another value, or stop that router first"
                );
            }
            1
        }
    }
}
