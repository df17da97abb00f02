//! `kubeha lab up|status|drill|down`: a real HA control-plane lab on this machine.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use lab::cluster::{LabSpec, LabState};

#[derive(Args)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(Args, Clone)]
pub struct Which {
    /// Lab name (namespaces are NAME-n0…, NAME-client, NAME-hub)
    #[arg(long, default_value = "lab")]
    pub name: String,
    /// Lab directory (state, PKI, etcd data, logs); default /var/lib/kubeha/lab/NAME
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

impl Which {
    fn dir(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| LabSpec::default_dir(&self.name))
    }
}

#[derive(Subcommand)]
pub enum LabCommand {
    /// Create (or repair) the lab: namespaces, PKI, a TLS etcd member and the front door per node
    Up {
        #[command(flatten)]
        which: Which,
        /// Number of nodes
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// VRRP advert interval of the front doors
        #[arg(long, default_value = "40ms")]
        advert_interval: String,
    },
    /// VIP holder, VRRP state per node, backend health, etcd member health
    Status {
        #[command(flatten)]
        which: Which,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Write keys through the VIP while faults hit the VIP holder; report failover and lost writes
    Drill {
        #[command(flatten)]
        which: Which,
        /// Number of fault cycles
        #[arg(long, default_value_t = 5)]
        cycles: usize,
        /// Faults applied in turn to the current VIP holder
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "kill,term,cable,pause,backend"
        )]
        faults: Vec<String>,
        /// How long a cable stays pulled or a front door stays stopped
        #[arg(long, default_value = "1s")]
        hold: String,
        /// Write the report as JSON here
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Draw the timeline (VIP holder, request results, faults) as SVG here
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// Remove everything the lab made (also after a crashed `lab up`)
    Down {
        #[command(flatten)]
        which: Which,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

fn say(s: &str) {
    eprintln!("==> {s}");
}

pub fn run(args: LabArgs) -> u8 {
    match args.command {
        LabCommand::Up {
            which,
            nodes,
            advert_interval,
        } => {
            let kubeha = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("kubeha"));
            let spec = LabSpec {
                name: which.name.clone(),
                nodes,
                dir: which.dir(),
                kubeha,
                advert_interval,
            };
            match lab::cluster::up(&spec, &mut |s| say(s)) {
                Ok(state) => {
                    print_summary(&state);
                    0
                }
                Err(e) => {
                    eprintln!("kubeha lab up: {e}");
                    if LabState::load(&spec.dir).ok().flatten().is_some() {
                        eprintln!(
                            "kubeha lab up: fix the cause and run `kubeha lab up` again (it repairs), or `kubeha lab down --name {}`",
                            spec.name
                        );
                    }
                    1
                }
            }
        }
        LabCommand::Status { which, output } => {
            let state = match load(&which) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let rows = lab::cluster::status(&state);
            if output == Output::Json {
                println!(
                    "{}",
                    serde_json::json!({ "name": state.name, "vip": state.vip.to_string(), "nodes": rows })
                );
            } else {
                println!("lab {} · VIP {}:{}", state.name, state.vip, state.lb_port);
                println!("NODE  ADDRESS      VIP  VRRP        PRIO  BACKENDS  ETCD");
                for r in &rows {
                    println!(
                        "{:<5} {:<12} {:<4} {:<11} {:<5} {:<9} {}",
                        r.name,
                        r.address,
                        if r.holds_vip { "yes" } else { "-" },
                        r.vrrp_state,
                        r.priority.map_or("-".into(), |p| p.to_string()),
                        r.backends_healthy
                            .map_or("-".into(), |b| format!("{b}/{}", rows.len())),
                        if r.etcd_healthy {
                            "healthy"
                        } else if r.etcd_running {
                            "unhealthy"
                        } else {
                            "down"
                        }
                    );
                }
            }
            let holders = rows.iter().filter(|r| r.holds_vip).count();
            u8::from(holders != 1 || rows.iter().any(|r| !r.etcd_healthy))
        }
        LabCommand::Drill {
            which,
            cycles,
            faults,
            hold,
            json,
            svg,
        } => {
            let mut state = match load(&which) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let mut parsed = Vec::new();
            for f in &faults {
                match lab::drill::Fault::parse(f) {
                    Some(x) => parsed.push(x),
                    None => {
                        eprintln!(
                            "kubeha lab drill: --faults {f}: use kill, term, cable, pause or backend"
                        );
                        return crate::EXIT_INVALID;
                    }
                }
            }
            let Ok(hold) = humantime::parse_duration(&hold) else {
                eprintln!("kubeha lab drill: --hold {hold}: write it like 1s or 500ms");
                return crate::EXIT_INVALID;
            };
            let opts = lab::drill::DrillOptions {
                cycles,
                faults: parsed,
                hold,
            };
            match lab::drill::run(&mut state, &opts, &mut |s| say(s)) {
                Ok(report) => {
                    print!("{}", lab::drill::table(&report));
                    if let Some(path) = json
                        && let Err(e) = std::fs::write(
                            &path,
                            serde_json::to_vec_pretty(&report).expect("plain data"),
                        )
                    {
                        eprintln!("kubeha lab drill: {}: {e}", path.display());
                        return 1;
                    }
                    if let Some(path) = svg
                        && let Err(e) = std::fs::write(&path, lab::drill::svg(&report))
                    {
                        eprintln!("kubeha lab drill: {}: {e}", path.display());
                        return 1;
                    }
                    u8::from(report.writes_lost > 0)
                }
                Err(e) => {
                    eprintln!("kubeha lab drill: {e}");
                    1
                }
            }
        }
        LabCommand::Down { which } => match lab::cluster::down(&which.dir(), &mut |s| say(s)) {
            Ok(true) => 0,
            Ok(false) => {
                eprintln!(
                    "kubeha lab down: no lab state in {}; nothing to remove",
                    which.dir().display()
                );
                0
            }
            Err(e) => {
                eprintln!("kubeha lab down: {e}");
                1
            }
        },
    }
}

fn load(which: &Which) -> Result<LabState, u8> {
    match LabState::load(&which.dir()) {
        Ok(Some(s)) => Ok(s),
        Ok(None) => {
            eprintln!(
                "kubeha lab: no lab {} (no state in {}); run `kubeha lab up` first",
                which.name,
                which.dir().display()
            );
            Err(crate::EXIT_INVALID)
        }
        Err(e) => {
            eprintln!("kubeha lab: {e}");
            Err(1)
        }
    }
}

fn print_summary(s: &LabState) {
    println!("lab {} is up", s.name);
    println!(
        "  VIP        {}:{} (kubeha front door on every node, etcd client port behind it)",
        s.vip, s.lb_port
    );
    for m in &s.members {
        println!(
            "  {:<4} {:<12} namespace {:<10} etcd https://{}:2379  health http://{}:2381/health",
            m.name, m.address, m.namespace, m.address, m.address
        );
    }
    println!("  client     namespace {} (198.18.0.100)", s.client);
    println!("  logs       {}", s.dir.join("logs").display());
    println!("  etcdctl    {} endpoint health", s.etcdctl());
}
