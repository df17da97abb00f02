//! `kubeha status`: per node reachability, services, etcd, VIP holder and VRRP state, and
//! the certificate expiry summary of the PKI store.

use std::time::{Duration, Instant};

use clap::Args;
use deploy::status::{self, NodeStatus, Probe};
use deploy::transport::Exec;

use crate::cmd_plan::{Format, InventoryArgs, load_inventory};
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
    let vip = inv.endpoint.vip.to_string();
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
    let nodes: Vec<NodeStatus> = rt.block_on(async {
        let conns = connect_all(inv, &args.inventory.file, &[], &args.ssh).await;
        let probes = inv.nodes.iter().map(|n| {
            let conn = conns.get(&n.name);
            let vip = &vip;
            async move {
                let t = match conn {
                    Some(Ok(t)) => t,
                    Some(Err(e)) => {
                        return NodeStatus {
                            name: n.name.clone(),
                            error: Some(e.clone()),
                            ..NodeStatus::default()
                        };
                    }
                    None => {
                        return NodeStatus {
                            name: n.name.clone(),
                            ..NodeStatus::default()
                        };
                    }
                };
                let address = n.address.to_string();
                let script = status::script(&Probe {
                    vip,
                    address: &address,
                    metrics: "127.0.0.1:9100",
                    etcd_member: inv.etcd_members().any(|m| m.name == n.name),
                });
                let t0 = Instant::now();
                match t.run(&Exec::new(script, Duration::from_secs(20))).await {
                    Ok(o) => {
                        let mut s = status::parse(&n.name, &o.stdout_str());
                        s.latency_ms = Some(t0.elapsed().as_millis() as u64);
                        s
                    }
                    Err(e) => NodeStatus {
                        name: n.name.clone(),
                        error: Some(e.to_string()),
                        ..NodeStatus::default()
                    },
                }
            }
        });
        futures_util::future::join_all(probes).await
    });
    let pki_dir = args.inventory.pki_dir();
    let now = pki::time::OffsetDateTime::now_utc();
    let certs = pki::inspect_store(&pki_dir, now).ok().map(|r| {
        let soonest = r.rows.iter().min_by_key(|row| row.days_left);
        serde_json::json!({
            "store": pki_dir.display().to_string(),
            "certificates": r.rows.len(),
            "soonest": soonest.map(|s| s.source.clone()),
            "soonest_days_left": soonest.map(|s| s.days_left),
            "expiring_within_30_days": r.expiring(30).len(),
        })
    });
    let holders: Vec<&str> = nodes
        .iter()
        .filter(|n| n.vip_held)
        .map(|n| n.name.as_str())
        .collect();
    let etcd_members: Vec<&NodeStatus> = nodes.iter().filter(|n| n.etcd.is_some()).collect();
    let etcd_healthy = etcd_members
        .iter()
        .filter(|n| n.etcd.as_ref().is_some_and(|e| e.healthy))
        .count();
    let healthy = holders.len() == 1
        && nodes.iter().all(|n| n.reachable)
        && etcd_healthy == etcd_members.len();
    match args.output {
        Format::Json => {
            let v = serde_json::json!({
                "cluster": inv.cluster.name,
                "vip": vip,
                "vip_holders": holders,
                "etcd_members": etcd_members.len(),
                "etcd_healthy": etcd_healthy,
                "healthy": healthy,
                "nodes": nodes,
                "certificates": certs,
            });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Format::Text => {
            let w = nodes.iter().map(|n| n.name.len()).max().unwrap_or(4).max(4);
            println!(
                "{:<w$}  {:>7}  {:<10}  {:<4}  {:<8}  services",
                "node", "ssh ms", "vrrp", "vip", "etcd"
            );
            for n in &nodes {
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
                etcd_members.len()
            );
            if let Some(c) = &certs {
                println!(
                    "certificates: {} in {}, soonest expiry {} in {} days",
                    c["certificates"],
                    c["store"].as_str().unwrap_or(""),
                    c["soonest"].as_str().unwrap_or("-"),
                    c["soonest_days_left"]
                );
            }
        }
    }
    if healthy { 0 } else { 1 }
}
