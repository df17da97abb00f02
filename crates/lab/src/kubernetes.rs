//! `kubeha lab up --kubernetes`: a real HA Kubernetes on this machine. Node namespaces
//! (`netns::node`: own mount, UTS and network namespace, cgroup root, overlays over /etc and
//! /var/lib) each run a real sshd; the lab writes an inventory for them and runs `kubeha up`
//! with it from the client namespace, so the cluster is made by the same Plan and executor as
//! on real hosts (no second installer). Every Kubernetes binary is upstream's, from
//! scripts/k8s-binaries.sh, shipped to the nodes in a kubeha bundle.
//!
//! The state file (`kubernetes.json`) is written before anything is made, so `down` removes it
//! all, also after a crashed `up`. Nodes are detached: they outlive the CLI, as hosts would.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::LabError;
use crate::netns::node::{Node, NodeSpec, power_off};
use crate::netns::{Netns, list};
use crate::topology::{SUBNET_PREFIX, Topology, VIP, node_address};

/// The port the VIP serves the API on (the seeds' 16443).
pub const API_PORT: u16 = 16443;
/// The Kubernetes release scripts/k8s-binaries.sh builds by default.
pub const DEFAULT_VERSION: &str = "v1.34.4";
/// scripts/k8s-binaries.sh, run when the binaries are not cached yet.
const BUILD_SCRIPT: &str = include_str!("../../../scripts/k8s-binaries.sh");

/// What node namespaces on a machine like this one need, as inventory settings a user's host
/// could need too: no CAP_SYS_RESOURCE (no negative oom_score_adj), cgroup v1 hybrid
/// (kubeadm's SystemVerification, kubelet failCgroupV1), Debian's CNI plugin path,
/// overlay-backed disks the kubelet cannot size (no eviction on them), a slow machine
/// running several nodes (timeouts), and a clock and global kernel parameters (`fs.*`) that
/// are the host's, not the node's (containers share them too: no time sync, no sysctls).
pub const NODE_NAMESPACE_SETTINGS: &str = "\
runtime: { systemd_cgroup: false, restrict_oom_score_adj: true, cni_bin_dir: /usr/lib/cni }
kubelet:
  fail_cgroup_v1: false
  extra_args: { oom-score-adj: \"0\" }
  extra_config:
    failSwapOn: false
    imageGCHighThresholdPercent: 100
    localStorageCapacityIsolation: false
    evictionHard: { memory.available: \"0%\", nodefs.available: \"0%\", nodefs.inodesFree: \"0%\", imagefs.available: \"0%\" }
host:
  time_sync: none
  sysctls: {}
kubeadm:
  ignore_preflight_errors: [SystemVerification]
  timeouts: { control_plane_health_check: 10m, kubelet_health_check: 6m, tls_bootstrap: 5m, discovery: 10m }
";

pub const CONTROL_PLANES: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Frontdoor {
    /// kubeha's own (VRRP + L4 proxy in one daemon).
    Builtin,
    /// The seeds' keepalived + haproxy.
    KeepalivedHaproxy,
}

impl Frontdoor {
    pub fn name(self) -> &'static str {
        match self {
            Frontdoor::Builtin => "builtin",
            Frontdoor::KeepalivedHaproxy => "keepalived-haproxy",
        }
    }

    /// The units whose logs say what a front door did.
    pub fn units(self) -> &'static [&'static str] {
        match self {
            Frontdoor::Builtin => &["kubeha-frontdoor"],
            Frontdoor::KeepalivedHaproxy => &["keepalived", "haproxy"],
        }
    }
}

#[derive(Debug, Clone)]
pub struct KubeLabSpec {
    /// 1-8 lowercase letters or digits (namespaces are NAME-n0…, NAME-client, NAME-hub).
    pub name: String,
    pub dir: PathBuf,
    pub frontdoor: Frontdoor,
    pub external_etcd: bool,
    pub workers: usize,
    /// scripts/k8s-binaries.sh's output directory.
    pub binaries: PathBuf,
}

/// One node namespace, with what it takes to start it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabNode {
    pub name: String,
    pub namespace: String,
    pub address: Ipv4Addr,
    /// As the inventory gives them: `control-plane`, `etcd`, `worker`.
    pub roles: Vec<String>,
    pub state_dir: PathBuf,
    pub cgroup_root: String,
    pub machine_id: String,
    pub product_uuid: String,
    pub sshd_config: PathBuf,
    pub log: PathBuf,
    /// The node's first process (sshd), while it runs.
    pub pid: Option<i32>,
}

impl LabNode {
    pub fn is_control_plane(&self) -> bool {
        self.roles.iter().any(|r| r == "control-plane")
    }

    fn spec(&self) -> NodeSpec {
        // A boot: the units kubeha enabled start (systemctl default), then sshd.
        let init = format!(
            "systemctl default >/dev/null 2>&1; mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e -f {}",
            self.sshd_config.display()
        );
        NodeSpec {
            name: self.name.clone(),
            netns: self.namespace.clone(),
            state_dir: self.state_dir.clone(),
            machine_id: self.machine_id.clone(),
            cgroup_root: self.cgroup_root.clone(),
            product_uuid: Some(self.product_uuid.clone()),
            init: vec!["sh".into(), "-c".into(), init],
            log: Some(self.log.clone()),
        }
    }

    /// A command inside the running node (its namespaces and cgroup), by nsenter on its first
    /// process.
    pub fn command(&self, argv: &[&str]) -> Result<Command, LabError> {
        let pid = self
            .pid
            .filter(|p| Path::new(&format!("/proc/{p}")).exists())
            .ok_or_else(|| LabError::Invalid(format!("node {} is not running", self.name)))?;
        let mut c = Command::new("nsenter");
        c.args(["-t", &pid.to_string(), "-m", "-u", "-n", "--"])
            .args(argv);
        Ok(c)
    }
}

/// Everything the lab is, written before each thing is made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KubeLabState {
    pub name: String,
    pub dir: PathBuf,
    pub vip: Ipv4Addr,
    pub port: u16,
    pub frontdoor: Frontdoor,
    pub external_etcd: bool,
    pub hub: String,
    pub client: String,
    pub namespaces: Vec<String>,
    pub nodes: Vec<LabNode>,
    pub inventory: PathBuf,
    pub known_hosts: PathBuf,
    /// The admin kubeconfig (server: the VIP), usable from the client namespace.
    pub kubeconfig: PathBuf,
    pub binaries: PathBuf,
}

impl KubeLabState {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("kubernetes.json")
    }

    pub fn load(dir: &Path) -> Result<Option<KubeLabState>, LabError> {
        crate::state_file::load(&Self::path(dir))
    }

    pub fn save(&self) -> Result<(), LabError> {
        crate::state_file::save(&Self::path(&self.dir), self)
    }

    pub fn node(&self, name: &str) -> Result<&LabNode, LabError> {
        self.nodes.iter().find(|n| n.name == name).ok_or_else(|| {
            LabError::Invalid(format!(
                "no node {name} in lab {} (nodes: {})",
                self.name,
                self.names().join(", ")
            ))
        })
    }

    fn names(&self) -> Vec<&str> {
        self.nodes.iter().map(|n| n.name.as_str()).collect()
    }

    /// `kubeha <args> -f inventory --known-hosts …`, run from the client namespace.
    pub fn kubeha(&self, kubeha: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.client))
            .arg("--")
            .arg(kubeha)
            .args(args)
            .arg("-f")
            .arg(&self.inventory)
            .arg("--known-hosts")
            .arg(&self.known_hosts);
        c
    }

    /// kubectl from the binaries, from the client namespace, with the admin kubeconfig.
    pub fn kubectl_hint(&self) -> String {
        format!(
            "ip netns exec {} {}/kubectl --kubeconfig {}",
            self.client,
            self.binaries.display(),
            self.kubeconfig.display()
        )
    }

    /// The nodes that hold the VIP now (one, unless something is wrong).
    pub fn vip_holders(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.is_control_plane())
            .filter(|n| crate::cluster::vip_on(&n.namespace))
            .map(|n| n.name.clone())
            .collect()
    }
}

fn node_name(i: usize) -> String {
    if i < CONTROL_PLANES {
        format!("master{}", i + 1)
    } else {
        format!("worker{}", i + 1 - CONTROL_PLANES)
    }
}

fn preflight(spec: &KubeLabSpec) -> Result<(), LabError> {
    if !crate::is_root() {
        return Err(LabError::Invalid(
            "kubeha lab needs root (namespaces, cgroups, mounts); run it with sudo".into(),
        ));
    }
    crate::state_file::check_name(&spec.name)?;
    if spec.workers > 6 {
        return Err(LabError::Invalid(format!(
            "--workers {}: use 0 to 6 (every node is a kubelet and a containerd on this machine)",
            spec.workers
        )));
    }
    for (program, package) in [
        ("/usr/sbin/sshd", "openssh-server"),
        ("/usr/bin/ssh-keygen", "openssh-client"),
        ("/usr/bin/containerd", "containerd"),
        ("/usr/sbin/runc", "runc"),
    ] {
        if !Path::new(program).exists() {
            return Err(LabError::Invalid(format!(
                "{program} is missing: apt-get install {package}"
            )));
        }
    }
    if spec.frontdoor == Frontdoor::KeepalivedHaproxy {
        for p in ["/usr/sbin/keepalived", "/usr/sbin/haproxy"] {
            if !Path::new(p).exists() {
                return Err(LabError::Invalid(format!(
                    "{p} is missing: apt-get install keepalived haproxy"
                )));
            }
        }
    }
    Ok(())
}

/// The binaries directory: `binaries` if given, else scripts/k8s-binaries.sh's cache, built
/// now (its progress on stderr; about 15 minutes on 2 cores) when it is not complete.
pub fn binaries(given: Option<&Path>, log: &mut dyn FnMut(&str)) -> Result<PathBuf, LabError> {
    if let Some(b) = given {
        if !b.join("kubeadm").is_file() {
            return Err(LabError::Invalid(format!(
                "--binaries {}: no kubeadm there; give scripts/k8s-binaries.sh's output directory",
                b.display()
            )));
        }
        return Ok(b.to_path_buf());
    }
    log(&format!(
        "Kubernetes {DEFAULT_VERSION} binaries: reusing the cache or building them from upstream source (Go module proxy; ~15 min on 2 cores the first time)"
    ));
    let started = Instant::now();
    let out = Command::new("bash")
        .args(["-c", BUILD_SCRIPT, "k8s-binaries", DEFAULT_VERSION])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| LabError::Spawn("bash (scripts/k8s-binaries.sh)".into(), e))?;
    if !out.status.success() {
        return Err(LabError::Invalid(
            "building the Kubernetes binaries failed (its last lines are above); without the Go module proxy use the etcd lab: kubeha lab up".into(),
        ));
    }
    let dir = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    log(&format!(
        "binaries in {dir} ({:.0} s)",
        started.elapsed().as_secs_f64()
    ));
    Ok(PathBuf::from(dir))
}

/// The lab's inventory: the seeds' topology (3 control-plane nodes behind the VIP, stacked or
/// external etcd, workers), the chosen front door, the bundle, and the node-namespace settings.
pub fn inventory(state: &KubeLabState, version: &str, ssh_key: &Path) -> String {
    let nodes: String = state
        .nodes
        .iter()
        .map(|n| {
            format!(
                "  - {{ name: {}, address: {}/{SUBNET_PREFIX}, roles: [{}], kubelet_extra_args: {{ cgroup-root: /{} }} }}\n",
                n.name,
                n.address,
                n.roles.join(", "),
                n.cgroup_root
            )
        })
        .collect();
    let etcd = if state.external_etcd {
        "external"
    } else {
        "stacked"
    };
    // keepalived as seed 002 sets it up (advert_int 1). haproxy sizes its open files from
    // maxconn (2 per connection); a host whose hard limit is low (20000 here) needs
    // max_connections below it, as any such host would.
    let frontdoor = match state.frontdoor {
        Frontdoor::KeepalivedHaproxy => {
            "frontdoor: { kind: keepalived-haproxy, advert_interval: 1s, max_connections: 5000, health: { kind: https, path: /readyz } }"
        }
        Frontdoor::Builtin => {
            "frontdoor: { kind: builtin, advert_interval: 100ms, health: { kind: https, path: /readyz, interval: 500ms } }"
        }
    };
    format!(
        "# kubeha lab {name}: written by `kubeha lab up --kubernetes`; `kubeha up -f` this file\n\
         # from the client namespace ({client}) does what the lab did.\n\
         cluster: {{ name: {name}, kubernetes_version: {version} }}\n\
         endpoint: {{ vip: {VIP}/{SUBNET_PREFIX}, port: {API_PORT}, apiserver_port: 6443 }}\n\
         ssh: {{ user: root, key: {key} }}\n\
         nodes:\n{nodes}\
         etcd: {{ topology: {etcd} }}\n\
         networking: {{ pod_cidr: 198.19.0.0/16, service_cidr: 198.18.128.0/20, cni: bridge, kube_proxy_mode: iptables }}\n\
         packages: {{ source: bundle, bundle: bundle }}\n\
         pki: {{ key_type: ecdsa-p256 }}\n\
         {frontdoor}\n\
         {NODE_NAMESPACE_SETTINGS}",
        name = state.name,
        client = state.client,
        version = version.trim_start_matches('v'),
        key = ssh_key.display(),
    )
}

fn keygen(path: &Path) -> Result<(), LabError> {
    if path.exists() {
        return Ok(());
    }
    crate::netns::run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "kubeha-lab", "-f"])
            .arg(path),
    )
    .map(|_| ())
}

/// Makes the lab's machines: namespaces on a bridge, one node namespace per node running sshd
/// with a host key of its own, the operator's key, known_hosts, the inventory, the bundle. The
/// cluster itself is `kubeha up`'s job (`up`).
pub fn machines(spec: &KubeLabSpec, log: &mut dyn FnMut(&str)) -> Result<KubeLabState, LabError> {
    preflight(spec)?;
    if KubeLabState::load(&spec.dir)?.is_some() {
        return Err(LabError::Invalid(format!(
            "a Kubernetes lab is already in {}: `kubeha lab down --name {}` first",
            spec.dir.display(),
            spec.name
        )));
    }
    let n = CONTROL_PLANES + spec.workers;
    let version = std::fs::read_to_string(spec.binaries.join("VERSIONS"))
        .ok()
        .and_then(|v| {
            v.lines()
                .find_map(|l| l.strip_prefix("kubernetes ").map(str::to_string))
        })
        .unwrap_or_else(|| DEFAULT_VERSION.to_string());
    let present = list()?;
    let (hub, client) = (
        format!("{}-hub", spec.name),
        format!("{}-client", spec.name),
    );
    let node_ns: Vec<String> = (0..n).map(|i| format!("{}-n{i}", spec.name)).collect();
    if let Some(taken) = node_ns
        .iter()
        .chain([&hub, &client])
        .find(|ns| present.contains(ns))
    {
        return Err(LabError::Exists(taken.clone()));
    }
    let dir = spec.dir.clone();
    let salt = spec
        .name
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    let mut state = KubeLabState {
        name: spec.name.clone(),
        dir: dir.clone(),
        vip: VIP,
        port: API_PORT,
        frontdoor: spec.frontdoor,
        external_etcd: spec.external_etcd,
        namespaces: node_ns
            .iter()
            .cloned()
            .chain([client.clone(), hub.clone()])
            .collect(),
        hub,
        client,
        nodes: (0..n)
            .map(|i| {
                let name = node_name(i);
                let nd = dir.join("nodes").join(&name);
                let mut roles = vec![if i < CONTROL_PLANES {
                    "control-plane"
                } else {
                    "worker"
                }];
                if i < CONTROL_PLANES && spec.external_etcd {
                    roles.push("etcd");
                }
                LabNode {
                    namespace: node_ns[i].clone(),
                    address: node_address(i),
                    roles: roles.into_iter().map(String::from).collect(),
                    state_dir: nd.join("state"),
                    cgroup_root: format!("kubeha-{}-{name}", spec.name),
                    machine_id: format!("{:016x}{:016x}", salt, i + 1),
                    product_uuid: format!(
                        "4c4c4544-0000-1000-8000-{:012x}",
                        (salt & 0xffff_ffff) * 64 + i as u64
                    ),
                    sshd_config: nd.join("sshd_config"),
                    log: nd.join("node.log"),
                    pid: None,
                    name,
                }
            })
            .collect(),
        inventory: dir.join("cluster.yaml"),
        known_hosts: dir.join("ssh/known_hosts"),
        kubeconfig: dir.join("pki/cluster/admin.conf"),
        binaries: spec.binaries.clone(),
    };
    state.save()?;
    log(&format!(
        "namespaces {}-n0…n{}, {}, {} on a bridge in 198.18.0.0/24",
        spec.name,
        n - 1,
        state.client,
        state.hub
    ));
    let topo = Topology::build(&spec.name, n)?;
    // From here the namespaces are the state file's to remove (`down`), not the guards'.
    let Topology {
        nodes: hosts,
        client: client_host,
        hub,
        ..
    } = topo;
    for h in hosts {
        h.ns.keep();
    }
    client_host.ns.keep();
    hub.keep();

    let ssh = dir.join("ssh");
    std::fs::create_dir_all(&ssh).map_err(|e| LabError::Spawn(ssh.display().to_string(), e))?;
    let key = ssh.join("id_ed25519");
    keygen(&key)?;
    let authorized = ssh.join("authorized_keys");
    std::fs::copy(key.with_extension("pub"), &authorized)
        .map_err(|e| LabError::Spawn(authorized.display().to_string(), e))?;
    let mut known = String::new();
    for node in &state.nodes {
        let nd = node.sshd_config.parent().expect("node dir");
        std::fs::create_dir_all(nd).map_err(|e| LabError::Spawn(nd.display().to_string(), e))?;
        let host_key = nd.join("host_ed25519");
        keygen(&host_key)?;
        let pubkey = std::fs::read_to_string(host_key.with_extension("pub"))
            .map_err(|e| LabError::Spawn(host_key.display().to_string(), e))?;
        let mut parts = pubkey.split_whitespace();
        known.push_str(&format!(
            "{} {} {}\n",
            node.address,
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default()
        ));
        std::fs::write(
            &node.sshd_config,
            format!(
                "ListenAddress {addr}\nPort 22\nHostKey {key}\nAuthorizedKeysFile {ak}\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\nUsePAM no\n\
                 StrictModes no\nPidFile /run/sshd.pid\nMaxSessions 64\nMaxStartups 64\n",
                addr = node.address,
                key = host_key.display(),
                ak = authorized.display(),
            ),
        )
        .map_err(|e| LabError::Spawn(node.sshd_config.display().to_string(), e))?;
    }
    std::fs::write(&state.known_hosts, known)
        .map_err(|e| LabError::Spawn(state.known_hosts.display().to_string(), e))?;
    std::fs::write(&state.inventory, inventory(&state, &version, &key))
        .map_err(|e| LabError::Spawn(state.inventory.display().to_string(), e))?;
    for i in 0..state.nodes.len() {
        power_on(&mut state, i)?;
    }
    log(&format!(
        "{} node namespaces running sshd ({} control-plane, {} workers)",
        n, CONTROL_PLANES, spec.workers
    ));
    Ok(state)
}

/// Starts node `i` (again): its mounts over the state directory that stayed, the units kubeha
/// enabled, then sshd; waits (≤ 15 s) until sshd listens.
pub fn power_on(state: &mut KubeLabState, i: usize) -> Result<(), LabError> {
    let node = &state.nodes[i];
    power_off(&node.cgroup_root);
    cable(state, i, true)?;
    let pid = Node::start(node.spec())?.detach();
    state.nodes[i].pid = Some(pid);
    state.save()?;
    let ns = Netns::existing(&state.nodes[i].namespace);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ns
        .exec(&["ss", "-Hltn", "sport = :22"])
        .is_ok_and(|s| !s.trim().is_empty())
    {
        if Instant::now() > deadline {
            return Err(LabError::Invalid(format!(
                "sshd on {} did not start within 15 s: read {}",
                state.nodes[i].name,
                state.nodes[i].log.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Plugs node `i`'s cable in (`up`) or pulls it: its port on the lab's bridge (`Topology`
/// names them p0, p1, …) goes up or down.
pub fn cable(state: &KubeLabState, i: usize, up: bool) -> Result<(), LabError> {
    Netns::existing(&state.hub)
        .exec(&[
            "ip",
            "link",
            "set",
            &format!("p{i}"),
            if up { "up" } else { "down" },
        ])
        .map(|_| ())
}

/// Stops every process of node `i` at once and takes its link down, as pulling its power
/// would (the disk stays; an address it held no longer answers).
pub fn power_off_node(state: &mut KubeLabState, i: usize) -> Result<(), LabError> {
    cable(state, i, false)?;
    power_off(&state.nodes[i].cgroup_root);
    state.nodes[i].pid = None;
    state.save()
}

/// Builds the bundle for the lab's inventory from its binaries (reused when it is complete).
pub fn bundle(state: &KubeLabState, log: &mut dyn FnMut(&str)) -> Result<(), LabError> {
    let out = state.dir.join("bundle");
    if bundle::verify(&out).is_ok() {
        log(&format!("bundle {} reused", out.display()));
        return Ok(());
    }
    let loaded = inventory::load(&state.inventory).map_err(|e| {
        LabError::Invalid(format!(
            "the lab's inventory {}: {e:?}",
            state.inventory.display()
        ))
    })?;
    let started = Instant::now();
    let m = plan::load::build_bundle(&loaded.inventory, &state.binaries, &out)
        .map_err(|e| LabError::Invalid(format!("bundle: {e}")))?;
    log(&format!(
        "bundle {}: {} files, {} images ({:.1} s)",
        out.display(),
        m.files.len(),
        m.images.len(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// The whole `lab up --kubernetes`: machines, bundle, then `kubeha up` from the client
/// namespace with the lab's inventory (its progress on this terminal).
pub fn up(
    spec: &KubeLabSpec,
    kubeha: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<KubeLabState, LabError> {
    let state = machines(spec, log)?;
    bundle(&state, log)?;
    log(&format!("kubeha up -f {}", state.inventory.display()));
    let started = Instant::now();
    let status = state
        .kubeha(kubeha, &["up"])
        .status()
        .map_err(|e| LabError::Spawn("kubeha up".into(), e))?;
    if !status.success() {
        return Err(LabError::Invalid(format!(
            "kubeha up failed ({status}); its report is above. Fix the cause and run `{}` again (it resumes), or `kubeha lab down --name {}`",
            rerun_hint(&state, kubeha),
            state.name
        )));
    }
    log(&format!(
        "real HA Kubernetes up in {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(state)
}

fn rerun_hint(state: &KubeLabState, kubeha: &Path) -> String {
    format!(
        "ip netns exec {} {} up -f {} --known-hosts {}",
        state.client,
        kubeha.display(),
        state.inventory.display(),
        state.known_hosts.display()
    )
}

/// Removes a Kubernetes lab: every node's processes (by cgroup), the namespaces, the directory.
/// `Ok(false)` when there is no such lab.
pub fn down(dir: &Path, log: &mut dyn FnMut(&str)) -> Result<bool, LabError> {
    let Some(state) = KubeLabState::load(dir)? else {
        return Ok(false);
    };
    for n in &state.nodes {
        power_off(&n.cgroup_root);
        log(&format!(
            "stopped node {} (cgroup {})",
            n.name, n.cgroup_root
        ));
    }
    crate::state_file::remove_namespaces_and_dir(&state.namespaces, dir, log)?;
    Ok(true)
}

/// One node as `lab status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub roles: Vec<String>,
    /// The API's Ready condition (false when the API does not answer).
    pub ready: bool,
    pub running: bool,
    pub holds_vip: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct KubeLabStatus {
    pub name: String,
    pub vip: String,
    pub kubeconfig: PathBuf,
    pub frontdoor: Frontdoor,
    pub etcd: &'static str,
    pub client_namespace: String,
    /// A cluster.yaml that describes the lab: every command that takes `-f` (up, status,
    /// etcd, …) runs against the lab with it, from `client_namespace`, with `known_hosts`.
    pub inventory: PathBuf,
    pub known_hosts: PathBuf,
    pub nodes: Vec<NodeStatus>,
    pub vip_holders: Vec<String>,
    /// Set when the API could not be read through the VIP.
    pub api_error: Option<String>,
    /// The VIP held once and every node Ready.
    pub healthy: bool,
}

/// The lab as its API (kube-rs through the VIP, from the client namespace) and its namespaces
/// see it now.
pub fn status(state: &KubeLabState) -> KubeLabStatus {
    let kubeconfig = state.kubeconfig.clone();
    let server = format!("https://{}:{}", state.vip, state.port);
    let read = crate::netns::in_netns(&state.client, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let c = kubeapi::Cluster::connect(&kubeconfig, Some(&server), Duration::from_secs(5))
                .await
                .map_err(|e| e.to_string())?;
            c.nodes().await.map_err(|e| e.to_string())
        })
    })
    .join();
    let api = match read {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the status thread panicked".into()),
    };
    let holders = state.vip_holders();
    let nodes: Vec<NodeStatus> = state
        .nodes
        .iter()
        .map(|n| NodeStatus {
            name: n.name.clone(),
            roles: n.roles.clone(),
            ready: api
                .as_ref()
                .is_ok_and(|a| a.iter().any(|s| s.name == n.name && s.ready)),
            running: n
                .pid
                .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists()),
            holds_vip: holders.contains(&n.name),
        })
        .collect();
    KubeLabStatus {
        name: state.name.clone(),
        vip: format!("{}:{}", state.vip, state.port),
        kubeconfig: state.kubeconfig.clone(),
        frontdoor: state.frontdoor,
        etcd: if state.external_etcd {
            "external"
        } else {
            "stacked"
        },
        client_namespace: state.client.clone(),
        inventory: state.inventory.clone(),
        known_hosts: state.known_hosts.clone(),
        healthy: holders.len() == 1 && api.is_ok() && nodes.iter().all(|n| n.ready),
        vip_holders: holders,
        api_error: api.err(),
        nodes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(external: bool, frontdoor: Frontdoor) -> KubeLabState {
        let spec = KubeLabSpec {
            name: "t".into(),
            dir: "/var/lib/kubeha/lab/t".into(),
            frontdoor,
            external_etcd: external,
            workers: 1,
            binaries: "/b".into(),
        };
        KubeLabState {
            name: spec.name.clone(),
            dir: spec.dir.clone(),
            vip: VIP,
            port: API_PORT,
            frontdoor,
            external_etcd: external,
            hub: "t-hub".into(),
            client: "t-client".into(),
            namespaces: vec![],
            nodes: (0..4)
                .map(|i| LabNode {
                    name: node_name(i),
                    namespace: format!("t-n{i}"),
                    address: node_address(i),
                    roles: if i < 3 && external {
                        vec!["control-plane".into(), "etcd".into()]
                    } else if i < 3 {
                        vec!["control-plane".into()]
                    } else {
                        vec!["worker".into()]
                    },
                    state_dir: "/s".into(),
                    cgroup_root: format!("kubeha-t-{}", node_name(i)),
                    machine_id: "0".repeat(32),
                    product_uuid: String::new(),
                    sshd_config: "/c".into(),
                    log: "/l".into(),
                    pid: None,
                })
                .collect(),
            inventory: "/var/lib/kubeha/lab/t/cluster.yaml".into(),
            known_hosts: "/k".into(),
            kubeconfig: "/a".into(),
            binaries: spec.binaries,
        }
    }

    #[test]
    fn the_lab_inventory_is_one_kubeha_accepts() {
        for (external, fd) in [
            (false, Frontdoor::Builtin),
            (true, Frontdoor::KeepalivedHaproxy),
        ] {
            let text = inventory(&state(external, fd), "v1.34.4", Path::new("/k/id"));
            let loaded = inventory::parse_str(&text, "cluster.yaml")
                .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
            let inv = loaded.inventory;
            assert_eq!(inv.nodes.len(), 4);
            assert_eq!(inv.cluster.kubernetes_version.to_string(), "1.34.4");
            assert_eq!(inv.endpoint.host_port(), "198.18.0.10:16443");
            assert_eq!(
                inv.nodes[3]
                    .kubelet_extra_args
                    .get("cgroup-root")
                    .map(String::as_str),
                Some("/kubeha-t-worker1")
            );
            assert_eq!(inv.frontdoor.kind.to_string(), fd.name());
        }
    }

    #[test]
    fn nodes_boot_their_enabled_units_then_sshd() {
        let s = state(false, Frontdoor::Builtin);
        let spec = s.nodes[0].spec();
        assert_eq!(spec.netns, "t-n0");
        assert_eq!(spec.cgroup_root, "kubeha-t-master1");
        assert!(
            spec.init[2].starts_with("systemctl default"),
            "{:?}",
            spec.init
        );
        assert!(
            spec.init[2].contains("exec /usr/sbin/sshd -D"),
            "{:?}",
            spec.init
        );
    }
}
