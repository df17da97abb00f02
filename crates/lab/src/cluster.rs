//! The HA lab: N node namespaces, each with a real TLS etcd member and kubeha's front door in
//! front of every member, plus a client namespace. `up` records everything it makes in a state
//! file before making it, so `down` can remove it all, also after `up` crashed half-way.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use frontdoor::config::{
    AdvertInterval, FrontdoorConfig, HealthConfig, HealthKind, Priority, VipCidr, Vrid,
};

use crate::LabError;
use crate::netns::{Netns, in_netns, list};
use crate::topology::{self, CLIENT, SUBNET_PREFIX, Topology, VIP};

/// Port the front door listens on (clients use VIP:LB_PORT), as the seeds' 16443.
pub const LB_PORT: u16 = 16443;
pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;
/// etcd's plain-HTTP metrics listener, with /health (kubeadm puts it on 2381 too).
pub const ETCD_METRICS_PORT: u16 = 2381;
/// Where each node's front door serves metrics (inside its namespace).
pub const METRICS: SocketAddr = frontdoor::config::DEFAULT_METRICS_ADDR;

#[derive(Debug, Clone)]
pub struct LabSpec {
    pub name: String,
    pub nodes: usize,
    /// Where state, PKI, data and logs go.
    pub dir: PathBuf,
    /// The `kubeha` binary that runs the front door.
    pub kubeha: PathBuf,
    pub advert_interval: String,
}

impl LabSpec {
    pub fn default_dir(name: &str) -> PathBuf {
        PathBuf::from("/var/lib/kubeha/lab").join(name)
    }
}

/// A process the lab started, with what it takes to start it again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Service {
    pub namespace: String,
    pub argv: Vec<String>,
    pub log: PathBuf,
    pub pid: Option<i32>,
}

impl Service {
    /// Whether `pid` is alive and still runs our program (a reused PID is not ours).
    pub fn running(&self) -> bool {
        let Some(pid) = self.pid else { return false };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.contains(") Z ") {
            return false;
        }
        let want = self.argv.first().map(|p| {
            Path::new(p)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        });
        let first = cmdline
            .split(|b| *b == 0)
            .next()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .unwrap_or_default();
        want.is_some_and(|w| first.ends_with(&w))
    }

    /// Starts the process in its namespace, detached from us (it outlives `lab up`).
    pub fn start(&mut self) -> Result<i32, LabError> {
        let ns = Netns::existing(&self.namespace);
        let argv: Vec<&str> = self.argv.iter().map(String::as_str).collect();
        let pid = ns.spawn(&argv, Some(&self.log))?.detach();
        self.pid = Some(pid);
        Ok(pid)
    }

    pub fn signal(&self, sig: i32) -> bool {
        match self.pid {
            // A PID whose command line we just checked is ours.
            Some(pid) if self.running() => crate::netns::signal(pid, sig),
            _ => false,
        }
    }

    /// SIGKILL and wait (bounded) until it is gone.
    pub fn stop(&mut self) {
        if self.signal(libc::SIGCONT) {
            self.signal(libc::SIGKILL);
            let deadline = Instant::now() + Duration::from_secs(3);
            while self.running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.pid = None;
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub namespace: String,
    pub address: Ipv4Addr,
    pub etcd: Service,
    pub frontdoor: Service,
}

/// Everything a lab is, written to `state.json` before each thing is made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    pub name: String,
    pub dir: PathBuf,
    pub vip: Ipv4Addr,
    pub lb_port: u16,
    pub namespaces: Vec<String>,
    pub hub: String,
    pub client: String,
    pub members: Vec<Member>,
    /// Client credentials for etcd through the VIP (apiserver-etcd-client).
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl LabState {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    pub fn load(dir: &Path) -> Result<Option<LabState>, LabError> {
        crate::state_file::load(&Self::path(dir))
    }

    pub fn save(&self) -> Result<(), LabError> {
        crate::state_file::save(&Self::path(&self.dir), self)
    }

    /// The etcdctl command line that works from the client namespace.
    pub fn etcdctl(&self) -> String {
        format!(
            "ip netns exec {} etcdctl --endpoints=https://{}:{} --cacert={} --cert={} --key={}",
            self.client,
            self.vip,
            self.lb_port,
            self.ca.display(),
            self.cert.display(),
            self.key.display()
        )
    }
}

/// Whether an executable can be found on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

fn preflight(spec: &LabSpec) -> Result<(), LabError> {
    if !crate::is_root() {
        return Err(LabError::Invalid(
            "kubeha lab needs root (network namespaces, raw sockets); run it with sudo".into(),
        ));
    }
    if !on_path("etcd") {
        return Err(LabError::Invalid("etcd is not installed; install Debian's etcd-server (apt-get install etcd-server etcd-client)".into()));
    }
    if !(1..=9).contains(&spec.nodes) {
        return Err(LabError::Invalid(format!(
            "--nodes {}: use 1 to 9",
            spec.nodes
        )));
    }
    crate::state_file::check_name(&spec.name)
}

fn namespace_names(name: &str, nodes: usize) -> (String, Vec<String>, String) {
    (
        format!("{name}-hub"),
        (0..nodes).map(|i| format!("{name}-n{i}")).collect(),
        format!("{name}-client"),
    )
}

/// The VRID every lab (and the benches and root tests on its topology) uses.
pub const LAB_VRID: Vrid = match Vrid::new(51) {
    Ok(v) => v,
    Err(_) => panic!("51 is a VRID"),
};

/// Node `i` of `n` on the lab topology: the VIP on eth0, VRID 51, unicast to the other
/// nodes from its own address, listening on `LB_PORT`, every node's `backend_port` as the
/// backends. Optional fields are left out for the caller to set.
pub fn node_frontdoor(
    n: usize,
    i: usize,
    priority: Priority,
    backend_port: u16,
    health: HealthConfig,
) -> FrontdoorConfig {
    let mut cfg = FrontdoorConfig::new(
        "eth0",
        VipCidr {
            address: VIP,
            prefix: SUBNET_PREFIX,
        },
        LAB_VRID,
        priority,
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, LB_PORT)),
        (0..n)
            .map(|j| SocketAddr::from((topology::node_address(j), backend_port)))
            .collect(),
        health,
    );
    cfg.unicast_peers = (0..n)
        .filter(|&j| j != i)
        .map(topology::node_address)
        .collect();
    cfg.source = Some(topology::node_address(i));
    cfg
}

fn frontdoor_config(
    spec: &LabSpec,
    advert_interval: AdvertInterval,
    i: usize,
    n: usize,
) -> Result<String, LabError> {
    let mut health = HealthConfig::new(HealthKind::Http, Duration::from_millis(100), 2, 2);
    health.path = Some("/health".into());
    health.port = Some(ETCD_METRICS_PORT);
    let priority = Priority::try_from(150 - 10 * i as i64)
        .map_err(|e| LabError::Invalid(format!("node {i}: {e}")))?;
    let mut cfg = node_frontdoor(n, i, priority, ETCD_CLIENT_PORT, health);
    cfg.advert_interval = Some(advert_interval);
    cfg.local_weight = Some(10 * n as u8 + 10);
    cfg.vip_lifetime = Some(Duration::from_secs(2));
    cfg.handover_timeout = Some(Duration::from_secs(2));
    cfg.drain_timeout = Some(Duration::from_secs(2));
    cfg.connect_timeout = Some(Duration::from_millis(300));
    let body = cfg
        .to_yaml()
        .map_err(|e| LabError::Invalid(e.to_string()))?;
    Ok(format!(
        "# kubeha lab {} front door on n{i}\n{body}",
        spec.name
    ))
}

fn etcd_argv(lab: &str, dir: &Path, i: usize, n: usize, initial: bool) -> Vec<String> {
    let name = format!("n{i}");
    let a = topology::node_address(i);
    let pki = dir.join("pki/nodes").join(&name).join("pki/etcd");
    let cluster: Vec<String> = (0..n)
        .map(|j| {
            format!(
                "n{j}=https://{}:{ETCD_PEER_PORT}",
                topology::node_address(j)
            )
        })
        .collect();
    let p = |f: &str| pki.join(f).display().to_string();
    vec![
        "etcd".into(),
        format!("--name={name}"),
        format!("--data-dir={}", dir.join("data").join(&name).display()),
        format!("--listen-client-urls=https://{a}:{ETCD_CLIENT_PORT}"),
        format!("--advertise-client-urls=https://{a}:{ETCD_CLIENT_PORT}"),
        format!("--listen-peer-urls=https://{a}:{ETCD_PEER_PORT}"),
        format!("--initial-advertise-peer-urls=https://{a}:{ETCD_PEER_PORT}"),
        format!("--initial-cluster={}", cluster.join(",")),
        format!(
            "--initial-cluster-state={}",
            if initial { "new" } else { "existing" }
        ),
        format!("--initial-cluster-token=kubeha-lab-{lab}"),
        format!("--listen-metrics-urls=http://{a}:{ETCD_METRICS_PORT}"),
        "--client-cert-auth=true".into(),
        format!("--trusted-ca-file={}", p("ca.crt")),
        format!("--cert-file={}", p("server.crt")),
        format!("--key-file={}", p("server.key")),
        "--peer-client-cert-auth=true".into(),
        format!("--peer-trusted-ca-file={}", p("ca.crt")),
        format!("--peer-cert-file={}", p("peer.crt")),
        format!("--peer-key-file={}", p("peer.key")),
        "--heartbeat-interval=100".into(),
        "--election-timeout=1000".into(),
        // a member that was cut off must not force an election when it returns (etcd 3.4
        // defaults to off; 3.5 to on): without it, a healed cable costs the cluster its leader
        "--pre-vote=true".into(),
        "--snapshot-count=10000".into(),
        "--log-level=warn".into(),
    ]
}

/// Starts member `i`'s etcd as `up` does: with a data dir it joins as "existing", else as
/// part of a "new" cluster. Saves the state with the new PID.
pub fn start_etcd(state: &mut LabState, i: usize) -> Result<i32, LabError> {
    let n = state.members.len();
    let has_data = state
        .dir
        .join("data")
        .join(&state.members[i].name)
        .join("member")
        .exists();
    state.members[i].etcd.argv = etcd_argv(&state.name, &state.dir, i, n, !has_data);
    let pid = state.members[i].etcd.start()?;
    state.save()?;
    Ok(pid)
}

/// `GET path` over HTTP/1.0 to `addr` from inside `ns`: the status code and the whole
/// response text, if an answer came (connect 500 ms, read 1 s).
pub fn http_get(ns: &str, addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let path = path.to_string();
    in_netns(ns, move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
        s.set_read_timeout(Some(Duration::from_millis(1000))).ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let status = text.get(9..12)?.parse().ok()?;
        Some((status, text))
    })
    .join()
    .ok()?
    .ok()
    .flatten()
}

/// GET `http://addr/path` from inside `ns`; the status code, if any answer came.
pub fn http_status(ns: &str, addr: SocketAddr, path: &str) -> Option<u16> {
    http_get(ns, addr, path).map(|(status, _)| status)
}

/// The front door's metrics page of member `m` (localhost-only, so fetched inside its namespace).
pub fn metrics_page(m: &Member) -> String {
    metrics_in(&m.namespace)
}

/// The metrics page at [`METRICS`] inside namespace `ns` (empty if none answers).
pub fn metrics_in(ns: &str) -> String {
    http_get(ns, METRICS, "/metrics")
        .map(|(_, text)| text)
        .unwrap_or_default()
}

pub fn metric(page: &str, sample: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|v| v.trim().parse().ok()))
}

/// Indices of the members holding the VIP.
pub fn holders(state: &LabState) -> Vec<usize> {
    state
        .members
        .iter()
        .enumerate()
        .filter(|(_, m)| vip_on(&m.namespace))
        .map(|(i, _)| i)
        .collect()
}

/// Whether the namespace's eth0 carries the VIP.
pub fn vip_on(namespace: &str) -> bool {
    Netns::existing(namespace)
        .exec(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        .map(|s| s.contains(&format!("{VIP}/")))
        .unwrap_or(false)
}

fn wait_for(
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> bool,
) -> Result<Duration, LabError> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Ok(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(LabError::Invalid(format!(
        "{what} did not happen within {limit:?}; see the logs"
    )))
}

pub fn etcd_healthy(m: &Member) -> bool {
    http_status(
        &m.namespace,
        SocketAddr::from((m.address, ETCD_METRICS_PORT)),
        "/health",
    ) == Some(200)
}

/// Brings the lab up, or repairs it: whatever is missing (namespace, etcd, front door) is made
/// again; what runs is left alone. Prints nothing; returns the state.
pub fn up(spec: &LabSpec, log: &mut dyn FnMut(&str)) -> Result<LabState, LabError> {
    preflight(spec)?;
    let advert_interval: AdvertInterval = spec.advert_interval.parse().map_err(|e| {
        LabError::Invalid(format!("--advert-interval {}: {e}", spec.advert_interval))
    })?;
    let (hub, node_ns, client) = namespace_names(&spec.name, spec.nodes);
    let existing = LabState::load(&spec.dir)?;
    let present = list()?;
    let mut all: Vec<String> = vec![hub.clone()];
    all.extend(node_ns.iter().cloned());
    all.push(client.clone());
    if existing.is_none()
        && let Some(taken) = all.iter().find(|n| present.contains(n))
    {
        return Err(LabError::Exists(taken.clone()));
    }
    std::fs::create_dir_all(&spec.dir)
        .map_err(|e| LabError::Spawn(spec.dir.display().to_string(), e))?;
    if let Some(s) = &existing
        && s.members.len() != spec.nodes
    {
        return Err(LabError::Invalid(format!(
            "lab {} exists with {} nodes; run `kubeha lab down --name {}` first to change the size",
            spec.name,
            s.members.len(),
            spec.name
        )));
    }
    let pki_dir = spec.dir.join("pki");
    let n0 = pki_dir.join("nodes/n0/pki");
    let mut state = existing.unwrap_or_else(|| LabState {
        name: spec.name.clone(),
        dir: spec.dir.clone(),
        vip: VIP,
        lb_port: LB_PORT,
        namespaces: all.clone(),
        hub: hub.clone(),
        client: client.clone(),
        members: (0..spec.nodes)
            .map(|i| {
                let name = format!("n{i}");
                Member {
                    namespace: node_ns[i].clone(),
                    address: topology::node_address(i),
                    etcd: Service {
                        namespace: node_ns[i].clone(),
                        argv: etcd_argv(&spec.name, &spec.dir, i, spec.nodes, true),
                        log: spec.dir.join(format!("logs/etcd-{name}.log")),
                        pid: None,
                    },
                    frontdoor: Service {
                        namespace: node_ns[i].clone(),
                        argv: vec![
                            spec.kubeha.display().to_string(),
                            "frontdoor".into(),
                            "run".into(),
                            "-c".into(),
                            spec.dir
                                .join(format!("frontdoor-{name}.yaml"))
                                .display()
                                .to_string(),
                        ],
                        log: spec.dir.join(format!("logs/frontdoor-{name}.log")),
                        pid: None,
                    },
                    name,
                }
            })
            .collect(),
        ca: n0.join("etcd/ca.crt"),
        cert: n0.join("apiserver-etcd-client.crt"),
        key: n0.join("apiserver-etcd-client.key"),
    });
    state.save()?;
    std::fs::create_dir_all(spec.dir.join("logs"))
        .map_err(|e| LabError::Spawn("logs".into(), e))?;

    // Network: build what is missing. A partly present topology is rebuilt from scratch.
    let present = list()?;
    if !all.iter().all(|n| present.contains(n)) {
        for n in all.iter().filter(|n| present.contains(n)) {
            Netns::adopt(n).destroy()?;
        }
        for m in &mut state.members {
            m.etcd.pid = None;
            m.frontdoor.pid = None;
        }
        state.save()?;
        log(&format!(
            "network: {} node namespaces and {client} on a bridge in {hub}, 198.18.0.0/24",
            spec.nodes
        ));
        let t = Topology::build(&spec.name, spec.nodes)?;
        let Topology {
            nodes,
            client: c,
            hub: h,
            ..
        } = t;
        for host in nodes {
            let _ = host.ns.keep();
        }
        let _ = c.ns.keep();
        let _ = h.keep();
    }

    // PKI: the pki crate's store, reused on re-runs; etcd server certs also carry the VIP.
    let nodes: Vec<pki::NodeId> = state
        .members
        .iter()
        .map(|m| pki::NodeId {
            name: m.name.clone(),
            address: m.address.into(),
        })
        .collect();
    let mut pspec = pki::PkiSpec::new(
        format!("lab-{}", spec.name),
        pki::Endpoint {
            vip: VIP.into(),
            port: LB_PORT,
        },
        nodes,
    );
    pspec.key_type = pki::KeyType::EcdsaP256;
    pspec.etcd_extra_sans = vec![VIP.to_string()];
    let report = pki::Store::open(&pki_dir)
        .issue(
            &pspec,
            pki::time::OffsetDateTime::now_utc(),
            &pki::IssueOptions::default(),
        )
        .map_err(|e| LabError::Invalid(format!("PKI: {e}")))?;
    let created = report
        .entries
        .iter()
        .filter(|e| !matches!(e.action, pki::Action::Reused))
        .count();
    log(&format!(
        "pki: {} certificates ({} new) in {}",
        report.entries.len(),
        created,
        pki_dir.display()
    ));

    // etcd: a member per node; a cluster that already has data restarts as "existing".
    let n = state.members.len();
    for i in 0..n {
        if state.members[i].etcd.running() {
            continue;
        }
        let pid = start_etcd(&mut state, i)?;
        log(&format!(
            "etcd {} started (pid {pid})",
            state.members[i].name
        ));
    }
    wait_for(
        Duration::from_secs(30),
        "etcd becoming healthy on every member",
        || state.members.iter().all(etcd_healthy),
    )?;

    // The front door on every node, etcd's client port as the backends.
    for i in 0..n {
        let cfg = frontdoor_config(spec, advert_interval, i, n)?;
        std::fs::write(
            spec.dir
                .join(format!("frontdoor-{}.yaml", state.members[i].name)),
            cfg,
        )
        .map_err(|e| LabError::Spawn("frontdoor config".into(), e))?;
        if state.members[i].frontdoor.running() {
            continue;
        }
        let pid = state.members[i].frontdoor.start()?;
        state.save()?;
        log(&format!(
            "front door {} started (pid {pid})",
            state.members[i].name
        ));
    }
    wait_for(Duration::from_secs(10), "exactly one VIP holder", || {
        holders(&state).len() == 1
    })?;
    Ok(state)
}

/// Removes everything the lab made: processes (by PID, checked against their command line),
/// namespaces, and the lab directory. Works from the state file alone.
pub fn down(dir: &Path, log: &mut dyn FnMut(&str)) -> Result<bool, LabError> {
    let Some(mut state) = LabState::load(dir)? else {
        return Ok(false);
    };
    for m in &mut state.members {
        for s in [&mut m.frontdoor, &mut m.etcd] {
            if s.running() {
                log(&format!(
                    "stopping {} (pid {})",
                    s.argv[0],
                    s.pid.unwrap_or(0)
                ));
            }
            s.stop();
        }
    }
    state.save()?;
    crate::state_file::remove_namespaces_and_dir(&state.namespaces, dir, log)?;
    Ok(true)
}

/// One node's view for `lab status`.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub address: Ipv4Addr,
    pub holds_vip: bool,
    pub vrrp_state: String,
    pub priority: Option<u32>,
    pub backends_healthy: Option<u32>,
    pub etcd_healthy: bool,
    pub frontdoor_running: bool,
    pub etcd_running: bool,
}

pub fn status(state: &LabState) -> Vec<NodeStatus> {
    state
        .members
        .iter()
        .map(|m| {
            let page = metrics_page(m);
            let vrrp_state = ["master", "backup", "fault", "initialize"]
                .into_iter()
                .find(|s| {
                    metric(
                        &page,
                        &format!("kubeha_frontdoor_vrrp_state{{state=\"{s}\"}}"),
                    ) == Some(1.0)
                })
                .unwrap_or("down")
                .to_string();
            NodeStatus {
                name: m.name.clone(),
                address: m.address,
                holds_vip: vip_on(&m.namespace),
                vrrp_state,
                priority: metric(&page, "kubeha_frontdoor_vrrp_priority").map(|v| v as u32),
                backends_healthy: metric(&page, "kubeha_frontdoor_backends_healthy")
                    .map(|v| v as u32),
                etcd_healthy: etcd_healthy(m),
                frontdoor_running: m.frontdoor.running(),
                etcd_running: m.etcd.running(),
            }
        })
        .collect()
}

/// The client namespace's address (where `lab drill` writes from).
pub fn client_address() -> Ipv4Addr {
    CLIENT
}
