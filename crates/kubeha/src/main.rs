//! kubeha: highly-available Kubernetes control planes from one inventory file.
//! This crate is the CLI only: arguments, output, exit codes.

mod cluster_args;
mod cmd_bundle;
mod cmd_completions;
mod cmd_etcd;
mod cmd_frontdoor;
mod cmd_lab;
mod cmd_pki;
mod cmd_plan;
mod cmd_remove;
mod cmd_schema;
mod cmd_status;
mod cmd_up;
mod remote;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status for bad input (inventory, arguments): nothing was changed.
pub const EXIT_INVALID: u8 = 2;

#[derive(Parser)]
#[command(
    name = "kubeha",
    version,
    about = "Highly-available Kubernetes control planes from one inventory file",
    long_about = "kubeha validates a cluster inventory (cluster.yaml), shows every file and command it \
would put on every node, and ships its own control-plane front door (VRRP VIP + health-checked \
TCP load balancer) in place of keepalived + haproxy.\n\nInventory reference: docs/inventory.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the inventory and show every file and step per node; changes nothing
    Plan(cmd_plan::PlanArgs),
    /// Do the plan on every node over SSH, in parallel; re-runs skip what is done
    Up(cmd_up::UpArgs),
    /// Nodes, services, etcd health, VIP holder and VRRP state, certificate expiry
    Status(cmd_status::StatusArgs),
    /// Issue, inspect and renew certificates; bootstrap tokens; the CA hash
    Pki(cmd_pki::PkiArgs),
    /// etcd snapshots: take one from a healthy member, restore one on every member
    Etcd(cmd_etcd::EtcdArgs),
    /// Take nodes out of the cluster: drain, etcd member, kubeadm reset, Node object, and the peers and backends of the nodes that stay
    Remove(cmd_remove::RemoveArgs),
    /// The front door daemon (VIP + apiserver load balancer) on a control-plane node
    Frontdoor(cmd_frontdoor::FrontdoorArgs),
    /// A real HA lab on this machine: namespaces, TLS etcd, the front door; failover drills
    Lab(cmd_lab::LabArgs),
    /// A shell completion script (bash, zsh, fish, elvish, powershell) on stdout
    Completions(cmd_completions::CompletionsArgs),
    /// The JSON Schema of cluster.yaml on stdout (the same as docs/cluster.schema.json)
    Schema,
    /// The offline bundle: Kubernetes binaries and images without a registry, with checksums
    Bundle(cmd_bundle::BundleArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Plan(args) => cmd_plan::run(args),
        Command::Pki(args) => match cmd_pki::run(args) {
            Ok(code) => code.clamp(0, 255) as u8,
            Err(msg) => {
                eprintln!("kubeha pki: {msg}");
                EXIT_INVALID
            }
        },
        Command::Up(args) => cmd_up::run(args),
        Command::Etcd(args) => cmd_etcd::run(args),
        Command::Remove(args) => cmd_remove::run(args),
        Command::Status(args) => cmd_status::run(args),
        Command::Frontdoor(args) => cmd_frontdoor::run(args),
        Command::Lab(args) => cmd_lab::run(args),
        Command::Completions(args) => cmd_completions::run(args),
        Command::Schema => cmd_schema::run(),
        Command::Bundle(args) => cmd_bundle::run(args),
    };
    ExitCode::from(code)
}
