//! Helpers shared by the root namespace tests: speakers on threads inside node namespaces.
#![allow(dead_code)]

use std::time::Duration;

use testkit::netns::Topology;
use testkit::netns::topology::{VIP, node_address};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use vip::{SpeakerConfig, Status};

pub const INTERVAL_CS: u16 = 5; // 50 ms adverts: Master_Down_Interval ≈ 170 ms

pub struct Running {
    pub stop: CancellationToken,
    /// Dropping the runtime without cancelling is a crash: no priority-0, VIP left behind.
    pub crash: std::sync::mpsc::Sender<()>,
    pub status: watch::Receiver<Status>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn state(&self) -> vrrp::State {
        self.status.borrow().state
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = self.crash.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn config(i: usize, n: usize, priority: u8) -> SpeakerConfig {
    let me = node_address(i);
    let mut r = vrrp::Config::new(51, priority, me, vec![VIP]);
    r.advert_interval_cs = INTERVAL_CS;
    r.unicast_peers = (0..n).filter(|&j| j != i).map(node_address).collect();
    SpeakerConfig {
        interface: "eth0".into(),
        prefix: 24,
        router: r,
        vip_lifetime: Duration::from_secs(2),
        handover_timeout: Duration::from_secs(2),
    }
}

pub fn start(ns: &str, cfg: SpeakerConfig) -> Running {
    start_scheduled(ns, cfg, vip::Scheduling::Normal)
}

/// [`start`] with the speaker's thread scheduled as the daemon schedules it.
pub fn start_scheduled(ns: &str, cfg: SpeakerConfig, scheduling: vip::Scheduling) -> Running {
    let stop = CancellationToken::new();
    let (crash, crashed) = std::sync::mpsc::channel::<()>();
    let (status_tx, status) = watch::channel(Status::default());
    let ns_path = format!("/run/netns/{ns}");
    let token = stop.clone();
    let thread = std::thread::spawn(move || {
        testkit::netns::enter_netns(&ns_path).unwrap();
        let _ = vip::realtime::apply(scheduling);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (health_tx, health) = watch::channel(vrrp::Health::default());
        rt.block_on(async move {
            let _keep = health_tx;
            let speaker = vip::run(cfg, health, token, status_tx);
            let crash = tokio::task::spawn_blocking(move || {
                let _ = crashed.recv();
            });
            tokio::select! {
                r = speaker => r.unwrap(),
                _ = crash => {} // abandon the speaker mid-flight
            }
        });
        drop(rt);
    });
    Running {
        stop,
        crash,
        status,
        thread: Some(thread),
    }
}

pub fn holds_vip(t: &Topology, i: usize) -> bool {
    t.nodes[i]
        .ns
        .exec(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        .unwrap()
        .contains(&format!("{VIP}/24"))
}

pub fn holders(t: &Topology) -> Vec<usize> {
    (0..t.nodes.len()).filter(|&i| holds_vip(t, i)).collect()
}

pub use testkit::within;

pub fn client_reaches_vip(t: &Topology) -> bool {
    t.client
        .ns
        .exec(&["ping", "-c", "1", "-W", "1", &VIP.to_string()])
        .is_ok()
}
