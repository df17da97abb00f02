//! Node namespaces that look enough like a host for containerd, a kubelet and kubeadm: a
//! network namespace (from the topology) plus a mount and UTS namespace of the node's own, each
//! entered with `nsenter` (never `ip netns exec`, which remounts /sys and so hides the cgroup
//! mounts), and a cgroup root of the node's own under every hierarchy.
//!
//! Inside a node:
//! - /etc, /usr/local, /var/lib and /var/log are overlays whose writes land in the node's state
//!   directory, so kubeadm and kubeha write "their" host's files and the real host's stay
//!   untouched;
//! - /var/lib/containerd, /var/lib/kubelet and /var/lib/etcd are plain directories (overlayfs
//!   snapshots cannot live on an overlay);
//! - /run is a private tmpfs (each node's containerd socket is at the usual path);
//! - /sys is this network namespace's sysfs with the host's cgroup mounts bound back in;
//! - /etc/machine-id and the hostname are the node's;
//! - `systemctl` is the shim in `files/systemctl` (namespaces have no systemd).
//!
//! Every process the node runs is in its cgroup root (`Node::command` puts it there), so
//! `Drop` finds and kills them all by PID, containers included, then removes the cgroups.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Proc, run, signal};

/// Spawns `cmd` with output to `log` (or nowhere) under a guard that kills it by PID.
fn spawn_command(mut cmd: Command, what: String, log: Option<&Path>) -> Result<Proc, Error> {
    let (out, err) = match log {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| Error::Spawn(path.display().to_string(), e))?;
            let f2 = f
                .try_clone()
                .map_err(|e| Error::Spawn(path.display().to_string(), e))?;
            (Stdio::from(f), Stdio::from(f2))
        }
        None => (Stdio::null(), Stdio::null()),
    };
    let child = cmd
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| Error::Spawn(what.clone(), e))?;
    Ok(Proc {
        child: Some(child),
        what,
    })
}

/// The shim, installed over /usr/bin/systemctl inside nodes.
pub const SYSTEMCTL_SHIM: &str = include_str!("../files/systemctl");

#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Hostname inside the node.
    pub name: String,
    /// The network namespace (must exist, e.g. a `Topology` host).
    pub netns: String,
    /// Per-node state on a real filesystem: overlay layers, containerd, kubelet, etcd.
    pub state_dir: PathBuf,
    /// 32 hex digits, unique per node (kubelet and kubeadm read /etc/machine-id).
    pub machine_id: String,
    /// The cgroup directory made under every hierarchy, e.g. `kubeha-lab-n0`; the kubelet's
    /// `cgroupRoot` is `/` + this.
    pub cgroup_root: String,
    /// `/sys/class/dmi/id/product_uuid` inside the node (this machine has no DMI).
    pub product_uuid: Option<String>,
    /// What the node's first process becomes after setup; `sleep infinity` when empty.
    pub init: Vec<String>,
    /// Log of the first process (setup errors land here).
    pub log: Option<PathBuf>,
}

/// The cgroup directories of one node, one per mounted hierarchy.
#[derive(Debug)]
pub struct CgroupRoot {
    name: String,
    dirs: Vec<PathBuf>,
}

/// Mount points of every cgroup hierarchy (v1 controllers, named ones and the v2 unified one).
pub fn cgroup_mounts() -> Result<Vec<PathBuf>, Error> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::Spawn("/proc/self/mountinfo".into(), e))?;
    Ok(parse_cgroup_mounts(&text))
}

/// The cgroup mount points in a mountinfo text (pure: tested on a capture).
pub fn parse_cgroup_mounts(mountinfo: &str) -> Vec<PathBuf> {
    let mut seen = BTreeSet::new();
    mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let mount_point = left.split_whitespace().nth(4)?;
            matches!(fstype, "cgroup" | "cgroup2").then(|| PathBuf::from(mount_point))
        })
        .filter(|p| seen.insert(p.clone()))
        .collect()
}

impl CgroupRoot {
    /// Makes `name` under every hierarchy; cpuset's cpus and mems are copied from the parent,
    /// without which adding a task fails with ENOSPC (kind#1969).
    pub fn create(name: &str) -> Result<CgroupRoot, Error> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(Error::Invalid(format!(
                "cgroup root `{name}`: use a plain name"
            )));
        }
        let mut root = CgroupRoot {
            name: name.to_string(),
            dirs: Vec::new(),
        };
        for mount in cgroup_mounts()? {
            let dir = mount.join(name);
            if !dir.exists() {
                std::fs::create_dir(&dir)
                    .map_err(|e| Error::Spawn(dir.display().to_string(), e))?;
            }
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(v) = std::fs::read_to_string(mount.join(f)) {
                    std::fs::write(dir.join(f), v.trim())
                        .map_err(|e| Error::Spawn(dir.join(f).display().to_string(), e))?;
                }
            }
            root.dirs.push(dir);
        }
        if root.dirs.is_empty() {
            return Err(Error::Invalid("no cgroup hierarchy is mounted".into()));
        }
        Ok(root)
    }

    /// The directories that exist now for `name` (for `lab down` after a crash).
    pub fn existing(name: &str) -> CgroupRoot {
        let dirs = cgroup_mounts()
            .unwrap_or_default()
            .into_iter()
            .map(|m| m.join(name))
            .filter(|d| d.is_dir())
            .collect();
        CgroupRoot {
            name: name.to_string(),
            dirs,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every `cgroup.procs` file of the root itself, to put a process into the node.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// PIDs in the root or any cgroup below it, in every hierarchy.
    pub fn pids(&self) -> BTreeSet<i32> {
        let mut pids = BTreeSet::new();
        for d in &self.dirs {
            walk(d, &mut |dir| {
                if let Ok(t) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                    pids.extend(t.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
                }
            });
        }
        pids
    }

    /// Thaws (a drill may have frozen the node), kills everything inside, and removes the
    /// directories deepest first. Bounded: gives up after 10 s.
    pub fn remove(&self) {
        for d in &self.dirs {
            let _ = std::fs::write(d.join("freezer.state"), "THAWED");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            kill_all(&pids);
            std::thread::sleep(Duration::from_millis(50));
        }
        for d in &self.dirs {
            let mut all = Vec::new();
            walk(d, &mut |dir| all.push(dir.to_path_buf()));
            // Deepest first: a cgroup with children cannot be removed.
            all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for dir in all {
                let until = Instant::now() + Duration::from_secs(2);
                while std::fs::remove_dir(&dir).is_err() && dir.exists() && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    f(dir);
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), f);
            }
        }
    }
}

fn kill_all(pids: &BTreeSet<i32>) {
    for &pid in pids {
        signal(pid, libc::SIGCONT);
        signal(pid, libc::SIGKILL);
    }
}

/// A running node. Dropping it kills every process in it and removes its cgroups; its state
/// directory stays (logs to read after a failure) unless `remove_state` is set.
#[derive(Debug)]
pub struct Node {
    spec: NodeSpec,
    holder: Option<Proc>,
    cgroup: CgroupRoot,
    mnt_ns: Option<std::fs::Metadata>,
    pub remove_state: bool,
    /// Set by `detach`: the node outlives this value (a lab that `kubeha lab down` removes).
    detached: bool,
}

/// The setup the node's first process runs before it becomes `init` (kept in one place so the
/// mount layout the module doc describes is the one made).
fn setup_script(spec: &NodeSpec, shim: &Path) -> String {
    // The state directory is reached through a bind mount on the node's /run made first: it
    // may itself lie under /etc, /usr/local or /var/lib (the lab's default does), which the
    // overlays below shadow, and an overlay's upper directory cannot be on an overlay.
    let d = "/run/kubeha-node/state";
    let mut s = format!(
        "set -eu\n\
         hostname {name}\n\
         mount -t tmpfs -o mode=755 tmpfs /run\n\
         mkdir -p {d}\n\
         mount --bind {state} {d}\n\
         for o in etc:/etc usrlocal:/usr/local varlib:/var/lib varlog:/var/log; do\n\
         \x20 n=${{o%%:*}}; p=${{o#*:}}\n\
         \x20 mkdir -p {d}/$n.up {d}/$n.work\n\
         \x20 mount -t overlay overlay -o lowerdir=$p,upperdir={d}/$n.up,workdir={d}/$n.work $p\n\
         done\n\
         for b in containerd kubelet etcd; do\n\
         \x20 mkdir -p {d}/$b /var/lib/$b\n\
         \x20 mount --bind {d}/$b /var/lib/$b\n\
         done\n\
         mkdir -p /run/containerd /run/netns /run/systemctl-shim /run/kubeha-node/cgroup /run/lock\n\
         mount --rbind /sys/fs/cgroup /run/kubeha-node/cgroup\n\
         mount -t sysfs sysfs /sys\n\
         mount --rbind /run/kubeha-node/cgroup /sys/fs/cgroup\n\
         [ -d /sys/fs/cgroup/memory ] || [ -f /sys/fs/cgroup/cgroup.controllers ] || {{ echo 'node: the cgroup mounts did not survive' >&2; exit 1; }}\n\
         echo {mid} > /etc/machine-id\n\
         mount --bind {d}/{shim} /usr/bin/systemctl\n",
        state = spec.state_dir.display(),
        name = spec.name,
        mid = spec.machine_id,
        shim = shim.display(),
    );
    if let Some(uuid) = &spec.product_uuid {
        s.push_str(&format!(
            "mkdir -p /run/kubeha-node/sysclass\n\
             mount --bind /sys/class /run/kubeha-node/sysclass\n\
             mount -t tmpfs -o mode=755 tmpfs /sys/class\n\
             for e in /run/kubeha-node/sysclass/*; do n=${{e##*/}}; mkdir -p /sys/class/$n; mount --bind $e /sys/class/$n; done\n\
             mkdir -p /sys/class/dmi/id && echo {uuid} > /sys/class/dmi/id/product_uuid\n"
        ));
    }
    s.push_str("echo node-ready\n");
    s
}

impl Node {
    /// Makes the cgroup root, starts the node's first process in it and waits (≤ 10 s) until
    /// its setup is done.
    pub fn start(spec: NodeSpec) -> Result<Node, Error> {
        let valid_id =
            spec.machine_id.len() == 32 && spec.machine_id.chars().all(|c| c.is_ascii_hexdigit());
        let plain =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid_id || !plain(&spec.name) || !plain(&spec.netns) {
            return Err(Error::Invalid(format!(
                "node {}: name, netns and a 32-hex machine-id are required",
                spec.name
            )));
        }
        std::fs::create_dir_all(&spec.state_dir)
            .map_err(|e| Error::Spawn(spec.state_dir.display().to_string(), e))?;
        let shim = spec.state_dir.join("systemctl");
        write_executable(&shim, SYSTEMCTL_SHIM)?;
        let cgroup = CgroupRoot::create(&spec.cgroup_root)?;
        let ready = spec.state_dir.join("node-ready");
        let _ = std::fs::remove_file(&ready);
        let mut script = setup_script(&spec, Path::new("systemctl"));
        // Through the node's bind of the state directory: the host path may be shadowed.
        script.push_str("touch /run/kubeha-node/state/node-ready\n");
        let init = if spec.init.is_empty() {
            vec!["sleep".to_string(), "infinity".to_string()]
        } else {
            spec.init.clone()
        };
        script.push_str("exec \"$@\"\n");
        let mut cmd = in_cgroup(&cgroup);
        cmd.args(["nsenter", &format!("--net=/run/netns/{}", spec.netns), "--"])
            .args(["unshare", "--mount", "--uts", "--propagation", "private"])
            .args(["sh", "-c", &script, "node-init"])
            .args(&init);
        let holder = spawn_command(cmd, format!("node {}", spec.name), spec.log.as_deref())?;
        let mut node = Node {
            spec,
            holder: Some(holder),
            cgroup,
            mnt_ns: None,
            remove_state: false,
            detached: false,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready.exists() {
            if let Some(status) = node.holder.as_mut().and_then(|h| h.exited()) {
                let log = node
                    .spec
                    .log
                    .as_ref()
                    .and_then(|l| std::fs::read_to_string(l).ok())
                    .unwrap_or_default();
                return Err(Error::Invalid(format!(
                    "node {}: setup failed ({status}): {}",
                    node.spec.name,
                    log.lines().rev().take(3).collect::<Vec<_>>().join(" | ")
                )));
            }
            if Instant::now() > deadline {
                return Err(Error::Invalid(format!(
                    "node {}: setup took over 10 s",
                    node.spec.name
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The holder is `sh` until setup ends, then execs `init` in the node's namespaces.
        node.mnt_ns = std::fs::metadata(format!("/proc/{}/ns/mnt", node.pid())).ok();
        Ok(node)
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    pub fn cgroup(&self) -> &CgroupRoot {
        &self.cgroup
    }

    /// The PID whose namespaces are the node's.
    pub fn pid(&self) -> i32 {
        self.holder.as_ref().map_or(0, Proc::pid)
    }

    /// A command that runs inside the node: its namespaces and its cgroup root.
    pub fn command(&self, program: &str) -> Command {
        let mut c = in_cgroup(&self.cgroup);
        c.args([
            "nsenter",
            "-t",
            &self.pid().to_string(),
            "-m",
            "-u",
            "-n",
            "--",
        ])
        .arg(program);
        c
    }

    /// Runs a command inside the node to completion; stdout, or an error with stderr.
    pub fn exec(&self, argv: &[&str]) -> Result<String, Error> {
        let mut c = self.command(argv[0]);
        c.args(&argv[1..]);
        run(&mut c)
    }

    /// Runs a shell script inside the node.
    pub fn sh(&self, script: &str) -> Result<String, Error> {
        self.exec(&["sh", "-c", script])
    }

    /// Starts a long-running process inside the node; its guard kills it by PID.
    pub fn spawn(&self, argv: &[&str], log: Option<&Path>) -> Result<Proc, Error> {
        let mut c = self.command(argv[0]);
        c.args(&argv[1..]);
        spawn_command(c, format!("{} on {}", argv.join(" "), self.spec.name), log)
    }

    /// Lets the node run on after this value is gone; returns the PID of its first process.
    /// Whoever detaches it stops it later: `power_off` with the cgroup root's name.
    pub fn detach(mut self) -> i32 {
        self.detached = true;
        self.holder.take().map_or(0, Proc::detach)
    }

    /// A path inside the node as the host sees it (through /proc/PID/root).
    pub fn path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{}", self.pid(), inside))
    }

    /// PIDs of processes in the node's mount namespace (those `nsenter` started outside the
    /// cgroup root, should a caller have done so).
    fn mount_ns_pids(&self) -> BTreeSet<i32> {
        use std::os::unix::fs::MetadataExt;
        let Some(ns) = &self.mnt_ns else {
            return BTreeSet::new();
        };
        let mut pids = BTreeSet::new();
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/mnt"))
                    && m.ino() == ns.ino()
                    && m.dev() == ns.dev()
                {
                    pids.insert(pid);
                }
            }
        }
        pids
    }

    fn stop_all(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut pids = self.mount_ns_pids();
            pids.extend(self.cgroup.pids());
            pids.remove(&(std::process::id() as i32));
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            kill_all(&pids);
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(self.holder.take());
        self.cgroup.remove();
    }
}

/// Stops every process of a (detached) node at once, as pulling its power would: its cgroup
/// root is thawed, emptied by SIGKILL and removed; its state directory (the disk) stays.
pub fn power_off(cgroup_root: &str) {
    CgroupRoot::existing(cgroup_root).remove();
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        self.stop_all();
        if self.remove_state {
            let _ = std::fs::remove_dir_all(&self.spec.state_dir);
        }
    }
}

/// `sh` that moves itself into the node's cgroups, then execs the rest of the command line.
fn in_cgroup(cgroup: &CgroupRoot) -> Command {
    let files: Vec<String> = cgroup
        .procs_files()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut c = Command::new("sh");
    c.args([
        "-c",
        &format!(
            "for f in {}; do echo $$ > \"$f\"; done; exec \"$@\"",
            files.join(" ")
        ),
        "in-cgroup",
    ])
    .stdin(Stdio::null());
    c
}

fn write_executable(path: &Path, text: &str) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).map_err(|e| Error::Spawn(path.display().to_string(), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::Spawn(path.display().to_string(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_cgroup_hierarchy_in_mountinfo() {
        // Captured on this kind of machine (v1 hybrid: 9 hierarchies plus cgroup2 unified).
        let text = "\
30 22 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:4 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,nosuid,nodev,noexec,relatime shared:5 - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:6 - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:7 - cgroup cgroup rw,name=systemd
34 30 0:30 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:8 - cgroup2 cgroup2 rw
35 22 0:31 / /proc rw - proc proc rw
36 30 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
        let m = parse_cgroup_mounts(text);
        let names: Vec<_> = m.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "/sys/fs/cgroup/cpu",
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/systemd",
                "/sys/fs/cgroup/unified"
            ]
        );
    }

    #[test]
    fn setup_mounts_what_the_module_promises() {
        let spec = NodeSpec {
            name: "cp1".into(),
            netns: "lab-n0".into(),
            state_dir: "/var/lib/kubeha/lab/x/cp1".into(),
            machine_id: "0".repeat(32),
            cgroup_root: "kubeha-x-cp1".into(),
            product_uuid: Some("4c4c4544-0000-1000-8000-000000000001".into()),
            init: vec![],
            log: None,
        };
        let s = setup_script(&spec, Path::new("systemctl"));
        for want in [
            "hostname cp1",
            "etc:/etc usrlocal:/usr/local varlib:/var/lib varlog:/var/log",
            "mount --bind /var/lib/kubeha/lab/x/cp1 /run/kubeha-node/state",
            "mount --bind /run/kubeha-node/state/$b /var/lib/$b",
            "mount -t sysfs sysfs /sys",
            "mount --rbind /run/kubeha-node/cgroup /sys/fs/cgroup",
            "mount --bind /run/kubeha-node/state/systemctl /usr/bin/systemctl",
            "echo 4c4c4544-0000-1000-8000-000000000001 > /sys/class/dmi/id/product_uuid",
        ] {
            assert!(s.contains(want), "missing `{want}` in\n{s}");
        }
    }
}
