//! Nodes for `kubeha up` tests: one network namespace per node on the lab bridge, each with a
//! real sshd in its own mount and UTS namespace. /etc, /usr/local and /var/lib are overlays
//! (with /var/log) whose writes land in a per-node directory, so kubeha writes "its" node's files and the
//! host's stay untouched; /run is a private tmpfs (pid files and sockets of each node's own
//! containerd, etcd, haproxy, keepalived). Test
//! stand-ins (tests/standins: systemctl, optionally kubeadm/kubectl) go in /usr/local/sbin.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lab::Topology;
use lab::topology::node_address;

pub struct NodeSpec {
    pub name: String,
    pub roles: &'static str,
    pub product_uuid: String,
    /// An extra (veth) interface with this MAC (to fake a cloned machine).
    pub extra_mac: Option<String>,
    pub kubeadm_standin: bool,
}

pub struct Bed {
    pub dir: tempfile::TempDir,
    pub inventory: PathBuf,
    pub known_hosts: PathBuf,
    pub calls: PathBuf,
    pub specs: Vec<NodeSpec>,
    sshd: Vec<lab::Proc>,
    // Dropped last: kills everything left in the namespaces, then deletes them.
    pub topo: Topology,
}

fn standins() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standins")
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn specs(cps: usize, workers: usize, kubeadm: bool) -> Vec<NodeSpec> {
    let mut v = Vec::new();
    for i in 0..cps {
        v.push(NodeSpec {
            name: format!("master{}", i + 1),
            roles: "[control-plane, etcd]",
            product_uuid: format!("4c4c4544-0000-1000-8000-{:012x}", i + 1),
            extra_mac: None,
            kubeadm_standin: kubeadm,
        });
    }
    for i in 0..workers {
        v.push(NodeSpec {
            name: format!("worker{}", i + 1),
            roles: "[worker]",
            product_uuid: format!("4c4c4544-0000-1000-8000-{:012x}", 100 + i),
            extra_mac: None,
            kubeadm_standin: kubeadm,
        });
    }
    v
}

impl Bed {
    /// Builds the namespaces and starts every sshd; `lab_name` must be unique per test.
    pub fn start(lab_name: &str, specs: Vec<NodeSpec>) -> Bed {
        let topo = Topology::build(lab_name, specs.len()).expect("topology");
        let dir = tempfile::Builder::new()
            .prefix("kubeha-up-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        sh(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(d.join("id_ed25519")));
        std::fs::copy(d.join("id_ed25519.pub"), d.join("authorized_keys")).unwrap();
        let calls = d.join("calls.log");
        std::fs::write(&calls, "").unwrap();
        let mut known = String::new();
        let mut sshd = Vec::new();
        for (i, s) in specs.iter().enumerate() {
            let nd = d.join(&s.name);
            for sub in [
                "etc.up",
                "etc.work",
                "usrlocal.up",
                "usrlocal.work",
                "varlib.up",
                "varlib.work",
                "varlog.up",
                "varlog.work",
            ] {
                std::fs::create_dir_all(nd.join(sub)).unwrap();
            }
            let key = nd.join("host_ed25519");
            sh(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&key));
            let pubkey = std::fs::read_to_string(nd.join("host_ed25519.pub")).unwrap();
            let addr = node_address(i);
            let mut parts = pubkey.split_whitespace();
            known.push_str(&format!(
                "{addr} {} {}\n",
                parts.next().unwrap(),
                parts.next().unwrap()
            ));
            std::fs::write(
                nd.join("sshd_config"),
                format!(
                    "ListenAddress {addr}\nPort 22\nHostKey {key}\nAuthorizedKeysFile {ak}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nUsePAM no\nStrictModes no\nPidFile {pid}\nMaxSessions 64\nMaxStartups 64\nSubsystem sftp internal-sftp\n",
                    key = key.display(),
                    ak = d.join("authorized_keys").display(),
                    pid = nd.join("sshd.pid").display(),
                ),
            )
            .unwrap();
            if let Some(mac) = &s.extra_mac {
                topo.nodes[i]
                    .ns
                    .exec(&[
                        "ip", "link", "add", "dum0", "type", "veth", "peer", "name", "dum1",
                    ])
                    .unwrap();
                topo.nodes[i]
                    .ns
                    .exec(&["ip", "link", "set", "dum0", "address", mac])
                    .unwrap();
            }
            let mut tools = vec!["systemctl"];
            if s.kubeadm_standin {
                tools.extend(["kubeadm", "kubectl"]);
            }
            let copies: Vec<String> = tools
                .iter()
                .map(|t| format!("cp {}/{t} /usr/local/sbin/{t}", standins().display()))
                .collect();
            let script = format!(
                "set -e\n\
                 hostname {name}\n\
                 mount -t overlay overlay -o lowerdir=/etc,upperdir={nd}/etc.up,workdir={nd}/etc.work /etc\n\
                 mount -t overlay overlay -o lowerdir=/usr/local,upperdir={nd}/usrlocal.up,workdir={nd}/usrlocal.work /usr/local\n\
                 mount -t overlay overlay -o lowerdir=/var/lib,upperdir={nd}/varlib.up,workdir={nd}/varlib.work /var/lib\n\
                 mount -t overlay overlay -o lowerdir=/var/log,upperdir={nd}/varlog.up,workdir={nd}/varlog.work /var/log\n\
                 mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/sshd /run/containerd /run/kubeha-standin\n\
                 mount -t tmpfs -o mode=755 tmpfs /sys/class && mkdir -p /sys/class/dmi/id && echo {uuid} > /sys/class/dmi/id/product_uuid\n\
                 mkdir -p /usr/local/sbin\n{copies}\n\
                 echo {mid:032x} > /etc/machine-id\n\
                 echo {name} > /etc/kubeha-test-node\n\
                 echo {calls} > /etc/kubeha-test-calls\n\
                 echo 1.31.4 > /etc/kubeha-test-version\n\
                 echo {count} > /etc/kubeha-test-nodes\n\
                 exec /usr/sbin/sshd -D -e -f {nd}/sshd_config",
                name = s.name,
                nd = nd.display(),
                uuid = s.product_uuid,
                copies = copies.join("\n"),
                mid = 0xabc0_0000u64 + i as u64,
                calls = calls.display(),
                count = specs.len(),
            );
            let p = topo.nodes[i]
                .ns
                .spawn(
                    &[
                        "unshare",
                        "--mount",
                        "--uts",
                        "--propagation",
                        "private",
                        "sh",
                        "-c",
                        &script,
                    ],
                    Some(&nd.join("sshd.log")),
                )
                .expect("sshd");
            sshd.push(p);
        }
        let known_hosts = d.join("known_hosts");
        std::fs::write(&known_hosts, known).unwrap();
        let bed = Bed {
            inventory: d.join("cluster.yaml"),
            known_hosts,
            calls,
            dir,
            specs,
            sshd,
            topo,
        };
        bed.write_inventory("");
        bed.wait_sshd();
        bed
    }

    /// The inventory for these nodes: external etcd on the control plane, the builtin front
    /// door. kube-apiserver cannot run here, so the front door's backends are the etcd
    /// members' client port (a real TLS service, as in `kubeha lab`): apiserver_port 2379.
    pub fn write_inventory(&self, extra: &str) {
        self.write_inventory_with("{ source: preinstalled }", extra);
    }

    /// The inventory with its `packages:` section given.
    pub fn write_inventory_with(&self, packages: &str, extra: &str) {
        let nodes: String = self
            .specs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    "  - {{ name: {}, address: {}/24, roles: {} }}\n",
                    s.name,
                    node_address(i),
                    s.roles
                )
            })
            .collect();
        let text = format!(
            "cluster: {{ name: uptest, kubernetes_version: 1.31.4 }}\n\
             endpoint: {{ vip: 198.18.0.10/24, port: 16443, apiserver_port: 2379 }}\n\
             ssh: {{ user: root, key: {key} }}\n\
             nodes:\n{nodes}\
             etcd: {{ topology: external, heartbeat_interval: 100ms, election_timeout: 1000ms }}\n\
             networking: {{ cni: none, kube_proxy_mode: iptables }}\n\
             packages: {packages}\n\
             pki: {{ key_type: ecdsa-p256 }}\n\
             host: {{ time_sync: none, sysctls: {{}} }}\n\
             frontdoor: {{ kind: builtin, advert_interval: 100ms, health: {{ kind: tcp, interval: 200ms }} }}\n{extra}",
            key = self.dir.path().join("id_ed25519").display(),
        );
        std::fs::write(&self.inventory, text).unwrap();
    }

    fn wait_sshd(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for i in 0..self.specs.len() {
            loop {
                let ok = self.sshd_listening(i);
                if ok {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "sshd on {} did not start: {}",
                    self.specs[i].name,
                    std::fs::read_to_string(
                        self.dir.path().join(&self.specs[i].name).join("sshd.log")
                    )
                    .unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn sshd_listening(&self, i: usize) -> bool {
        self.topo.nodes[i]
            .ns
            .exec(&["ss", "-Hltn", "sport = :22"])
            .is_ok_and(|s| !s.trim().is_empty())
    }

    /// `kubeha <args>` run from the client namespace (where the nodes are reachable).
    pub fn kubeha(&self, args: &[&str]) -> std::process::Output {
        let bin = assert_cmd::cargo::cargo_bin("kubeha");
        let mut c = self.topo.client.ns.command(bin.to_str().unwrap());
        c.args(args)
            .args(no_api_check(args))
            .arg("-f")
            .arg(&self.inventory)
            .arg("--known-hosts")
            .arg(&self.known_hosts);
        c.output().expect("kubeha runs")
    }

    /// `kubeha <args>` run on node `i` itself (inside its network, mount and UTS namespaces).
    pub fn kubeha_on_node(&self, i: usize, args: &[&str]) -> std::process::Output {
        let bin = assert_cmd::cargo::cargo_bin("kubeha");
        let pid = self.sshd[i].pid().to_string();
        Command::new("nsenter")
            .args(["-t", &pid, "-m", "-u", "-n"])
            .arg(bin)
            .args(args)
            .args(no_api_check(args))
            .arg("-f")
            .arg(&self.inventory)
            .arg("--known-hosts")
            .arg(&self.known_hosts)
            .output()
            .expect("kubeha runs")
    }

    /// Runs a shell command on node `i` inside its mount namespace (through its sshd's
    /// namespaces, entered with nsenter).
    pub fn on_node(&self, i: usize, script: &str) -> String {
        let pid = self.sshd[i].pid().to_string();
        sh(Command::new("nsenter").args(["-t", &pid, "-m", "-u", "-n", "sh", "-c", script]))
    }

    /// A file on node `i` as that node sees it.
    pub fn node_file(&self, i: usize, path: &str) -> Option<String> {
        let pid = self.sshd[i].pid();
        std::fs::read_to_string(format!("/proc/{pid}/root{path}")).ok()
    }
}

/// These nodes run recording stand-ins for kubeadm and kubectl: there is no Kubernetes API to
/// verify, so `up` leaves out its `kubernetes` check, as an operator whose machine cannot reach
/// the VIP would. The check runs for real in root_up_kubernetes.
fn no_api_check(args: &[&str]) -> &'static [&'static str] {
    if args.first() == Some(&"up") {
        &["--skip-check", "kubernetes"]
    } else {
        &[]
    }
}
