//! `kubeha status`: per node reachability, services, etcd, VIP holder and VRRP state, and
//! the certificate expiry summary of the PKI store.

use clap::Args;
use deploy::status;

use crate::cluster_args::{Format, InventoryArgs, load_inventory};
use crate::remote::{SshArgs, connect_all};

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub inventory: InventoryArgs,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    #[command(flatten)]
    pub ssh: SshArgs,
}

pub fn run(args: StatusArgs) -> u8 {
    let loaded = match load_inventory(&args.inventory.file) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let inv = &loaded.inventory;
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kubeha status: cannot start the runtime: {e}");
            return 1;
        }
    };
    let pki_dir = args.inventory.pki_dir();
    let st = rt.block_on(status::status(
        inv,
        async |names: &[String]| connect_all(inv, &args.inventory.file, names, &args.ssh).await,
        &pki_dir,
        args.ssh.concurrency,
    ));
    let vip = &st.vip;
    let nodes = &st.nodes;
    let holders = &st.vip_holders;
    let (etcd_healthy, etcd_members) = (st.etcd_healthy, st.etcd_members);
    match args.output {
        Format::Json => {
            println!("{}", serde_json::to_string_pretty(&st).unwrap_or_default());
        }
        Format::Text => {
            let w = nodes.iter().map(|n| n.name.len()).max().unwrap_or(4).max(4);
            println!(
                "{:<w$}  {:>7}  {:<10}  {:<4}  {:<8}  services",
                "node", "ssh ms", "vrrp", "vip", "etcd"
            );
            for n in nodes {
                let lat = n
                    .latency_ms
                    .map_or_else(|| "-".to_string(), |l| l.to_string());
                let etcd = match &n.etcd {
                    None => "-",
                    Some(e) if e.healthy && e.is_leader => "leader",
                    Some(e) if e.healthy => "healthy",
                    Some(_) => "DOWN",
                };
                let svcs: Vec<String> = n
                    .services
                    .iter()
                    .map(|(s, st)| format!("{s}={st}"))
                    .collect();
                println!(
                    "{:<w$}  {:>7}  {:<10}  {:<4}  {:<8}  {}",
                    n.name,
                    if n.reachable { lat } else { "DOWN".into() },
                    n.vrrp_state.as_deref().unwrap_or("-"),
                    if n.vip_held { "yes" } else { "-" },
                    etcd,
                    svcs.join(" ")
                );
                if let Some(e) = &n.error {
                    println!("  {}: {e}", n.name);
                }
            }
            println!(
                "VIP {vip}: {} | etcd: {etcd_healthy}/{} healthy",
                match holders.as_slice() {
                    [] => "held by no node".to_string(),
                    [one] => format!("held by {one}"),
                    many => format!("held by {} nodes at once: {}", many.len(), many.join(", ")),
                },
                etcd_members
            );
            if let Some(k) = &st.kubernetes {
                println!("kubernetes through {}: {}", k.server, k.summary);
                for a in &k.apiservers {
                    println!(
                        "  apiserver {} ({}): /readyz {}",
                        a.name, a.server, a.readyz
                    );
                }
            }
            let nc = &st.node_certificates;
            if nc.certificates > 0 {
                println!(
                    "certificates on the nodes: {} on {} node(s), soonest expiry {} in {} days, {} within 30 days",
                    nc.certificates,
                    nc.nodes,
                    nc.soonest.as_deref().unwrap_or("-"),
                    nc.soonest_days_left
                        .map_or_else(|| "null".to_string(), |d| d.to_string()),
                    nc.expiring_within_30_days
                );
            }
            if let Some(c) = &st.certificates {
                println!(
                    "certificates: {} in {}, soonest expiry {} in {} days",
                    c.certificates,
                    c.store,
                    c.soonest.as_deref().unwrap_or("-"),
                    c.soonest_days_left
                        .map_or_else(|| "null".to_string(), |d| d.to_string())
                );
            }
        }
    }
    if st.healthy { 0 } else { 1 }
}
