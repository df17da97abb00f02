//! `kubeha lab up|status|drill|down`: a real HA control-plane lab on this machine.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use lab::cluster::{LabSpec, LabState};
use lab::kubernetes::{Frontdoor, KubeLabSpec, KubeLabState};

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
    /// Create the lab. With --kubernetes: a real HA Kubernetes (3 control-plane nodes behind
    /// the VIP, workers) made by `kubeha up` over SSH into node namespaces. Without: (or repair)
    /// a TLS etcd member and the front door per node
    Up {
        #[command(flatten)]
        which: Which,
        /// Number of nodes (etcd lab)
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// VRRP advert interval of the front doors (etcd lab)
        #[arg(long, default_value = "40ms")]
        advert_interval: String,
        /// A real Kubernetes cluster instead of the etcd lab
        #[arg(long)]
        kubernetes: bool,
        /// Front door of the Kubernetes lab: kubeha's own, or the seeds' keepalived + haproxy
        #[arg(long, value_enum, default_value_t = FrontdoorArg::Builtin, requires = "kubernetes")]
        frontdoor: FrontdoorArg,
        /// Worker nodes of the Kubernetes lab
        #[arg(long, default_value_t = 1, requires = "kubernetes")]
        workers: usize,
        /// External etcd 3.6 (from the bundle) on the control-plane nodes instead of stacked
        #[arg(long, requires = "kubernetes")]
        external_etcd: bool,
        /// Kubernetes binaries (scripts/k8s-binaries.sh's output); default: its cache, built
        /// from upstream source when missing
        #[arg(long, value_name = "DIR", requires = "kubernetes")]
        binaries: Option<PathBuf>,
    },
    /// Stop every process of a Kubernetes lab node at once, as pulling its power would
    Poweroff {
        #[command(flatten)]
        which: Which,
        /// The node (master1, worker1, ...)
        node: String,
    },
    /// Start a Kubernetes lab node again: the units kubeha enabled, then sshd
    Poweron {
        #[command(flatten)]
        which: Which,
        node: String,
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
        /// Faults applied in turn to the current VIP holder. etcd lab: kill, term, cable, pause,
        /// backend (default: all). Kubernetes lab: kill, term, apiserver, etcd, pause, cable,
        /// poweroff (default: all)
        #[arg(long, value_delimiter = ',')]
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
pub enum FrontdoorArg {
    Builtin,
    KeepalivedHaproxy,
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
            kubernetes: true,
            frontdoor,
            workers,
            external_etcd,
            binaries,
            ..
        } => kubernetes_up(which, frontdoor, workers, external_etcd, binaries),
        LabCommand::Poweroff { which, node } => power(&which, &node, false),
        LabCommand::Poweron { which, node } => power(&which, &node, true),
        LabCommand::Status { which, output } if kube_state(&which).is_some() => {
            let Some(state) = kube_state(&which) else {
                return 1;
            };
            kubernetes_status(&state, output)
        }
        LabCommand::Drill {
            which,
            cycles,
            faults,
            hold,
            json,
            svg,
        } if kube_state(&which).is_some() => {
            kubernetes_drill(&which, cycles, &faults, &hold, json, svg)
        }
        LabCommand::Down { which } if kube_state(&which).is_some() => {
            match lab::kubernetes::down(&which.dir(), &mut |s| say(s)) {
                Ok(_) => 0,
                Err(e) => {
                    eprintln!("kubeha lab down: {e}");
                    1
                }
            }
        }
        LabCommand::Up {
            which,
            nodes,
            advert_interval,
            ..
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
            let faults = if faults.is_empty() {
                lab::drill::Fault::ALL
                    .iter()
                    .map(|f| f.name().to_string())
                    .collect()
            } else {
                faults
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

/// The Kubernetes lab in `which`'s directory, if that is what is there.
fn kube_state(which: &Which) -> Option<KubeLabState> {
    KubeLabState::load(&which.dir()).ok().flatten()
}

fn kubernetes_up(
    which: Which,
    frontdoor: FrontdoorArg,
    workers: usize,
    external_etcd: bool,
    binaries: Option<PathBuf>,
) -> u8 {
    let kubeha = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("kubeha"));
    let binaries = match lab::kubernetes::binaries(binaries.as_deref(), &mut |s| say(s)) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("kubeha lab up: {e}");
            return 1;
        }
    };
    let spec = KubeLabSpec {
        name: which.name.clone(),
        dir: which.dir(),
        frontdoor: match frontdoor {
            FrontdoorArg::Builtin => Frontdoor::Builtin,
            FrontdoorArg::KeepalivedHaproxy => Frontdoor::KeepalivedHaproxy,
        },
        external_etcd,
        workers,
        binaries,
    };
    match lab::kubernetes::up(&spec, &kubeha, &mut |s| say(s)) {
        Ok(state) => {
            println!(
                "lab {} is up: real Kubernetes, {} front door, {} etcd",
                state.name,
                state.frontdoor.name(),
                if state.external_etcd {
                    "external"
                } else {
                    "stacked"
                }
            );
            println!("  VIP         https://{}:{}", state.vip, state.port);
            for n in &state.nodes {
                println!(
                    "  {:<8} {:<12} {:<20} namespace {}",
                    n.name,
                    n.address,
                    n.roles.join(","),
                    n.namespace
                );
            }
            println!("  kubeconfig  {}", state.kubeconfig.display());
            println!("  kubectl     {} get nodes", state.kubectl_hint());
            println!("  inventory   {}", state.inventory.display());
            println!(
                "  kubeha      ip netns exec {} kubeha status -f {} --known-hosts {}   (up, etcd, … the same way)",
                state.client,
                state.inventory.display(),
                state.known_hosts.display()
            );
            println!("  remove it   kubeha lab down --name {}", state.name);
            0
        }
        Err(e) => {
            eprintln!("kubeha lab up: {e}");
            1
        }
    }
}

fn kubernetes_status(state: &KubeLabState, output: Output) -> u8 {
    let st = lab::kubernetes::status(state);
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&st).expect("plain data"));
    } else {
        println!(
            "lab {} · Kubernetes · VIP {} · front door {} · etcd {}",
            st.name,
            st.vip,
            st.frontdoor.name(),
            st.etcd
        );
        println!("NODE      ROLES                 READY  RUNNING  VIP");
        for n in &st.nodes {
            println!(
                "{:<9} {:<21} {:<6} {:<8} {}",
                n.name,
                n.roles.join(","),
                if n.ready { "yes" } else { "no" },
                if n.running { "yes" } else { "no" },
                if n.holds_vip { "yes" } else { "-" }
            );
        }
        if let Some(e) = &st.api_error {
            println!("API: {e}");
        }
        println!(
            "kubeconfig {} (from namespace {})",
            st.kubeconfig.display(),
            st.client_namespace
        );
    }
    u8::from(!st.healthy)
}

fn power(which: &Which, node: &str, on: bool) -> u8 {
    let Some(mut state) = kube_state(which) else {
        eprintln!(
            "kubeha lab: no Kubernetes lab {} (no {}); `kubeha lab up --kubernetes` makes one",
            which.name,
            KubeLabState::path(&which.dir()).display()
        );
        return crate::EXIT_INVALID;
    };
    let Some(i) = state.nodes.iter().position(|n| n.name == node) else {
        let names: Vec<&str> = state.nodes.iter().map(|n| n.name.as_str()).collect();
        eprintln!(
            "kubeha lab: no node {node} in lab {} (nodes: {})",
            state.name,
            names.join(", ")
        );
        return crate::EXIT_INVALID;
    };
    let done = if on {
        lab::kubernetes::power_on(&mut state, i)
    } else {
        lab::kubernetes::power_off_node(&mut state, i)
    };
    match done {
        Ok(()) => {
            say(&format!("{node} powered {}", if on { "on" } else { "off" }));
            0
        }
        Err(e) => {
            eprintln!("kubeha lab: {e}");
            1
        }
    }
}

fn kubernetes_drill(
    which: &Which,
    cycles: usize,
    faults: &[String],
    hold: &str,
    json: Option<PathBuf>,
    svg: Option<PathBuf>,
) -> u8 {
    use lab::kubedrill::{KubeDrillOptions, KubeFault};
    let Some(mut state) = kube_state(which) else {
        return 1;
    };
    let mut parsed = Vec::new();
    for f in faults {
        match KubeFault::parse(f) {
            Some(x) => parsed.push(x),
            None => {
                eprintln!(
                    "kubeha lab drill: --faults {f}: on a Kubernetes lab use kill, term, apiserver, etcd, pause, cable or poweroff"
                );
                return crate::EXIT_INVALID;
            }
        }
    }
    if parsed.is_empty() {
        parsed = KubeFault::ALL.to_vec();
    }
    let Ok(hold) = humantime::parse_duration(hold) else {
        eprintln!("kubeha lab drill: --hold {hold}: write it like 1s or 500ms");
        return crate::EXIT_INVALID;
    };
    let opts = KubeDrillOptions {
        cycles,
        faults: parsed,
        hold,
        kubeha: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("kubeha")),
    };
    match lab::kubedrill::run(&mut state, &opts, &mut |s| say(s)) {
        Ok(report) => {
            print!("{}", lab::kubedrill::table(&report));
            if let Some(path) = json
                && let Err(e) = lab::kubedrill::write_json(&path, &report)
            {
                eprintln!("kubeha lab drill: {e}");
                return 1;
            }
            if let Some(path) = svg
                && let Err(e) = std::fs::write(&path, lab::kubedrill::svg(&report))
            {
                eprintln!("kubeha lab drill: cannot write {}: {e}", path.display());
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
