//! Shared by the root namespace tests: a front door lab (nginx backends, kubeha frontdoor per
//! node, a client that keeps connecting through the VIP) built on the lab crate's guards.
#![allow(dead_code, unused_imports)]

pub mod nodes;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lab::topology::{VIP, node_address};
use lab::{Proc, Topology};

pub const LB_PORT: u16 = 16443;
pub const BACKEND_PORT: u16 = 6443;

pub use lab::netns::in_netns;

/// nginx answering `GET /` with the node's name and `/healthz` with 200.
pub fn nginx(t: &Topology, i: usize, dir: &Path) -> Proc {
    testkit::probe::nginx(
        &t.nodes[i].ns,
        SocketAddr::from((node_address(i), BACKEND_PORT)),
        i,
        dir,
    )
    .expect("nginx-light is installed (scripts/test.sh)")
}

pub struct FdOptions {
    pub advert: &'static str,
    pub priority: u8,
    pub local_weight: u8,
}

pub fn frontdoor_config(t: &Topology, i: usize, o: &FdOptions) -> String {
    use frontdoor::config::{AdvertInterval, HealthConfig, HealthKind, Priority};
    let mut health = HealthConfig::new(HealthKind::Http, Duration::from_millis(100), 2, 2);
    health.path = Some("/healthz".into());
    let priority = Priority::new(o.priority).unwrap();
    let mut cfg = lab::cluster::node_frontdoor(t.nodes.len(), i, priority, BACKEND_PORT, health);
    cfg.advert_interval = Some(o.advert.parse::<AdvertInterval>().unwrap());
    cfg.local_weight = Some(o.local_weight);
    cfg.vip_lifetime = Some(Duration::from_secs(2));
    cfg.handover_timeout = Some(Duration::from_secs(2));
    cfg.drain_timeout = Some(Duration::from_secs(2));
    cfg.connect_timeout = Some(Duration::from_millis(300));
    cfg.to_yaml().unwrap()
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

/// The node's metrics page, fetched inside its namespace (metrics listen on localhost only).
pub fn metrics(t: &Topology, i: usize) -> String {
    lab::cluster::metrics_in(t.nodes[i].ns.name())
}

pub use lab::cluster::metric;

pub use testkit::probe::{Sample, failure_kinds, failures, longest_gap, recovery, within};

/// Keeps making fresh connections to VIP:16443 from the client namespace.
pub struct Client(testkit::probe::Client);

impl Client {
    pub fn start(t: &Topology) -> Client {
        Client(testkit::probe::Client::start(
            t.client.ns.name(),
            SocketAddr::from((VIP, LB_PORT)),
        ))
    }

    pub fn started(&self) -> Instant {
        self.0.start
    }

    pub fn stop(self) -> Vec<Sample> {
        self.0.stop()
    }
}

pub fn vip_str() -> String {
    VIP.to_string()
}

pub fn addr(i: usize) -> Ipv4Addr {
    node_address(i)
}
