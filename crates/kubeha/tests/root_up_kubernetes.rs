//! `kubeha up` over SSH installs a real HA Kubernetes: 3 control-plane nodes behind a front
//! door on the VIP, and 2 workers, each a node namespace with its own sshd, containerd and
//! kubelet. Two bring-ups cover both front doors and both etcd topologies: kubeha's builtin
//! front door with stacked etcd, and the seeds' keepalived + haproxy with external etcd 3.6
//! (from the bundle) on the control-plane nodes. Every Kubernetes binary is upstream's, built by
//! scripts/k8s-binaries.sh and shipped to the nodes in a kubeha bundle (no registry, no
//! internet); the only stand-in is the systemctl shim (netns/files/systemctl), because the
//! nodes have no systemd. What the nodes need that a host could need too is an inventory
//! setting (NODE_SETTINGS below), never a test-only path in kubeha.

mod k8s;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use k8s::{assert_ok, binaries, kubeha, version};
use netns::Topology;
use netns::node::{Node, NodeSpec};
use netns::topology::node_address;
use serde_json::Value;

/// One bring-up at a time: five nodes already share the machine's two cores.
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Which of the four combinations (front door x etcd topology) a bring-up uses.
#[derive(Clone, Copy)]
struct Variant {
    lab: &'static str,
    keepalived_haproxy: bool,
    external_etcd: bool,
}
const CONTROL_PLANES: usize = 3;
const WORKERS: usize = 2;

/// Settings for node namespaces on this machine: no CAP_SYS_RESOURCE (no negative
/// oom_score_adj), cgroup v1 hybrid (kubeadm's SystemVerification, kubelet failCgroupV1),
/// Debian's CNI plugin path, overlay-backed disks the kubelet cannot size (no eviction on
/// them), a slow 2-core machine running five nodes (timeouts).
const NODE_SETTINGS: &str = "\
runtime: { systemd_cgroup: false, restrict_oom_score_adj: true, cni_bin_dir: /usr/lib/cni }
kubelet:
  fail_cgroup_v1: false
  extra_args: { oom-score-adj: \"0\" }
  extra_config:
    failSwapOn: false
    imageGCHighThresholdPercent: 100
    localStorageCapacityIsolation: false
    evictionHard: { memory.available: \"0%\", nodefs.available: \"0%\", nodefs.inodesFree: \"0%\", imagefs.available: \"0%\" }
kubeadm:
  ignore_preflight_errors: [SystemVerification]
  timeouts: { control_plane_health_check: 10m, kubelet_health_check: 6m, tls_bootstrap: 5m, discovery: 10m }
";

fn name(i: usize) -> String {
    if i < CONTROL_PLANES {
        format!("master{}", i + 1)
    } else {
        format!("worker{}", i + 1 - CONTROL_PLANES)
    }
}

/// The nodes, then the topology: fields drop in order, so every process in a node is killed
/// (and its cgroups removed) before the namespaces go.
struct Cluster {
    nodes: Vec<Node>,
    topo: Topology,
    variant: Variant,
    dir: tempfile::TempDir,
    inventory: PathBuf,
    known_hosts: PathBuf,
}

fn keygen(path: &Path) {
    k8s::ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path),
    );
}

impl Cluster {
    fn start(bin: &Path, v: &str, variant: Variant) -> Cluster {
        let lab = variant.lab;
        let topo = Topology::build(lab, CONTROL_PLANES + WORKERS).expect("topology");
        let dir = tempfile::Builder::new()
            .prefix("kubeha-up-k8s-")
            .tempdir()
            .unwrap();
        let d = dir.path().to_path_buf();
        keygen(&d.join("id_ed25519"));
        std::fs::copy(d.join("id_ed25519.pub"), d.join("authorized_keys")).unwrap();
        let mut known = String::new();
        let mut nodes = Vec::new();
        for (i, host) in topo.nodes.iter().enumerate() {
            let n = name(i);
            let nd = d.join(&n);
            std::fs::create_dir_all(&nd).unwrap();
            let key = nd.join("host_ed25519");
            keygen(&key);
            let pubkey = std::fs::read_to_string(nd.join("host_ed25519.pub")).unwrap();
            let mut parts = pubkey.split_whitespace();
            known.push_str(&format!(
                "{} {} {}\n",
                host.address,
                parts.next().unwrap(),
                parts.next().unwrap()
            ));
            let cfg = nd.join("sshd_config");
            std::fs::write(
                &cfg,
                format!(
                    "ListenAddress {addr}\nPort 22\nHostKey {key}\nAuthorizedKeysFile {ak}\n\
                     PermitRootLogin prohibit-password\nPasswordAuthentication no\nUsePAM no\n\
                     StrictModes no\nPidFile /run/sshd.pid\nMaxSessions 64\nMaxStartups 64\n",
                    addr = host.address,
                    key = key.display(),
                    ak = d.join("authorized_keys").display(),
                ),
            )
            .unwrap();
            let node = Node::start(NodeSpec {
                name: n.clone(),
                netns: host.ns.name().into(),
                state_dir: nd.join("state"),
                machine_id: format!("{:032x}", 0x13_0000 + i),
                cgroup_root: format!("kubeha-{lab}-{n}"),
                product_uuid: Some(format!("4c4c4544-0013-1000-8000-{:012x}", i + 1)),
                init: vec![
                    "sh".into(),
                    "-c".into(),
                    format!(
                        "mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e -f {}",
                        cfg.display()
                    ),
                ],
                log: Some(nd.join("node.log")),
            })
            .unwrap_or_else(|e| panic!("node {n}: {e}"));
            nodes.push(node);
        }
        let known_hosts = d.join("known_hosts");
        std::fs::write(&known_hosts, known).unwrap();
        let cluster = Cluster {
            nodes,
            topo,
            variant,
            inventory: d.join("cluster.yaml"),
            known_hosts,
            dir,
        };
        cluster.write_inventory(v);
        let out = kubeha(&[
            "bundle",
            "build",
            "-f",
            cluster.inventory.to_str().unwrap(),
            "--binaries",
            bin.to_str().unwrap(),
            "-o",
            d.join("bundle").to_str().unwrap(),
        ]);
        assert_ok(&out, "kubeha bundle build");
        cluster.wait_sshd();
        cluster
    }

    fn write_inventory(&self, v: &str) {
        let nodes: String = (0..CONTROL_PLANES + WORKERS)
            .map(|i| {
                let roles = if i >= CONTROL_PLANES {
                    "[worker]"
                } else if self.variant.external_etcd {
                    "[control-plane, etcd]"
                } else {
                    "[control-plane]"
                };
                format!(
                    "  - {{ name: {n}, address: {a}/24, roles: {roles}, kubelet_extra_args: {{ cgroup-root: /kubeha-{lab}-{n} }} }}\n",
                    lab = self.variant.lab,
                    n = name(i),
                    a = node_address(i),
                )
            })
            .collect();
        let etcd = if self.variant.external_etcd {
            "etcd: { topology: external }"
        } else {
            "etcd: { topology: stacked }"
        };
        // keepalived + haproxy as the seeds run them; haproxy sizes its open files from
        // maxconn (2 per connection) and this sandbox's hard limit is 20000, which no process
        // here may raise: max_connections is the inventory's answer, as on any such host.
        let frontdoor = if self.variant.keepalived_haproxy {
            "frontdoor: { kind: keepalived-haproxy, max_connections: 5000, health: { kind: https, path: /readyz } }"
        } else {
            "frontdoor: { kind: builtin, advert_interval: 100ms, health: { kind: https, path: /readyz, interval: 500ms } }"
        };
        let text = format!(
            "cluster: {{ name: {lab}, kubernetes_version: {v} }}\n\
             endpoint: {{ vip: 198.18.0.10/24, port: 16443, apiserver_port: 6443 }}\n\
             ssh: {{ user: root, key: {key} }}\n\
             nodes:\n{nodes}\
             {etcd}\n\
             networking: {{ pod_cidr: 198.19.0.0/16, service_cidr: 198.18.128.0/20, cni: bridge, kube_proxy_mode: iptables }}\n\
             packages: {{ source: bundle, bundle: bundle }}\n\
             pki: {{ key_type: ecdsa-p256 }}\n\
             {frontdoor}\n\
             {NODE_SETTINGS}",
            lab = self.variant.lab,
            v = v.trim_start_matches('v'),
            key = self.dir.path().join("id_ed25519").display(),
        );
        std::fs::write(&self.inventory, text).unwrap();
    }

    fn wait_sshd(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        for (i, host) in self.topo.nodes.iter().enumerate() {
            while !host
                .ns
                .exec(&["ss", "-Hltn", "sport = :22"])
                .is_ok_and(|s| !s.trim().is_empty())
            {
                assert!(
                    Instant::now() < deadline,
                    "sshd on {} did not start: {}",
                    name(i),
                    std::fs::read_to_string(self.dir.path().join(name(i)).join("node.log"))
                        .unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// `kubeha <args> -f inventory --known-hosts …` from the client namespace.
    fn kubeha(&self, args: &[&str]) -> Output {
        let bin = assert_cmd::cargo::cargo_bin("kubeha");
        self.topo
            .client
            .ns
            .command(bin.to_str().unwrap())
            .args(args)
            .arg("-f")
            .arg(&self.inventory)
            .arg("--known-hosts")
            .arg(&self.known_hosts)
            .output()
            .expect("kubeha runs")
    }

    /// The last lines of a unit's log on node `i` (the systemctl shim keeps them).
    fn unit_log(&self, i: usize, unit: &str) -> String {
        let text =
            std::fs::read_to_string(self.nodes[i].path(&format!("/run/systemctl-shim/{unit}.log")))
                .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn diagnostics(&self) -> String {
        let units: &[&str] = if self.variant.keepalived_haproxy {
            &["kubelet", "haproxy", "keepalived"]
        } else {
            &["kubelet", "kubeha-frontdoor"]
        };
        let mut out = String::new();
        for i in 0..self.nodes.len() {
            let addrs = self.nodes[i]
                .exec(&["ip", "-br", "addr"])
                .unwrap_or_default();
            out.push_str(&format!("--- {} addresses:\n{addrs}", name(i)));
            for unit in units {
                out.push_str(&format!(
                    "--- {} {unit}:\n{}\n",
                    name(i),
                    self.unit_log(i, unit)
                ));
            }
        }
        out
    }

    /// kubectl (the real one, from the bundle) on master1 with the admin kubeconfig, which
    /// names the VIP endpoint: every call goes through the front door.
    fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        let mut argv = vec!["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"];
        argv.extend(args);
        self.nodes[0].exec(&argv).map_err(|e| e.to_string())
    }
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}): stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn count(r: &Value, outcome: &str) -> usize {
    r["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| n["steps"].as_array().unwrap())
        .filter(|s| s["outcome"] == outcome)
        .count()
}

/// Each node's failure as the report gives it: step, command, exit, stderr tail, hint.
fn failures(r: &Value) -> String {
    r["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| !n["failure"].is_null())
        .map(|n| format!("{}: {:#}\n", n["name"], n["failure"]))
        .collect::<String>()
        + &format!("stopped: {}\n", r["stopped"])
}

#[test]
fn root_up_builtin_front_door_stacked_etcd() {
    up_real_ha_kubernetes(Variant {
        lab: "ku13",
        keepalived_haproxy: false,
        external_etcd: false,
    });
}

#[test]
fn root_up_keepalived_haproxy_external_etcd() {
    up_real_ha_kubernetes(Variant {
        lab: "ku13k",
        keepalived_haproxy: true,
        external_etcd: true,
    });
}

fn up_real_ha_kubernetes(variant: Variant) {
    if testkit::skip_without_root("root_up_kubernetes") {
        return;
    }
    let Some(bin) = binaries("root_up_kubernetes") else {
        return;
    };
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let v = version(&bin);
    let cluster = Cluster::start(&bin, &v, variant);
    let what = variant.lab;

    let started = Instant::now();
    let out = cluster.kubeha(&["up", "--output", "json"]);
    let first_up = started.elapsed();
    let r = report(&out);
    assert!(
        out.status.success() && count(&r, "failed") == 0,
        "kubeha up failed:\n{}\nstderr: {}\n{}",
        failures(&r),
        String::from_utf8_lossy(&out.stderr),
        cluster.diagnostics()
    );
    eprintln!("{what}: first kubeha up (3 control-plane + 2 workers, real kubeadm): {first_up:?}");
    // up's verify phase read the cluster through its API (kube-rs, from the client
    // namespace, through the VIP) and ran the bundle's pause image on both workers.
    let api_check = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .find(|c| c.starts_with("kubernetes through https://198.18.0.10:16443"))
        .unwrap_or_else(|| panic!("no Kubernetes API check in {}", r["checks"]))
        .to_string();
    eprintln!("{what}: {api_check}");
    assert!(api_check.contains("5 of 5 nodes Ready"), "{api_check}");
    assert!(
        api_check.contains("Running on worker1") && api_check.contains("worker2 ("),
        "{api_check}"
    );
    for n in r["nodes"].as_array().unwrap() {
        for s in n["steps"].as_array().unwrap() {
            let id = s["id"].as_str().unwrap_or_default();
            if id.starts_with("init/kubeadm") || id.contains("kubeadm-join") {
                eprintln!("{what}: {} {id}: {} ms", n["name"], s["millis"]);
            }
        }
    }

    // Every node registered and Ready, read through the VIP.
    let deadline = Instant::now() + Duration::from_secs(300);
    let nodes = loop {
        let listed = cluster
            .kubectl(&["get", "nodes", "-o", "json"])
            .unwrap_or_default();
        let ready: Vec<String> = serde_json::from_str::<Value>(&listed)
            .ok()
            .and_then(|j| j["items"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter(|n| {
                n["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .map(|n| {
                n["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        if ready.len() == CONTROL_PLANES + WORKERS {
            break ready;
        }
        assert!(
            Instant::now() < deadline,
            "not every node Ready within 300 s (ready: {ready:?})\n{}\n{}",
            cluster
                .kubectl(&["get", "nodes", "-o", "wide"])
                .unwrap_or_else(|e| e),
            cluster.diagnostics()
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    for i in 0..CONTROL_PLANES + WORKERS {
        assert!(nodes.contains(&name(i)), "{nodes:?}");
    }
    let admin =
        std::fs::read_to_string(cluster.nodes[0].path("/etc/kubernetes/admin.conf")).unwrap();
    assert!(
        admin.contains("server: https://198.18.0.10:16443"),
        "admin.conf must use the VIP:\n{admin}"
    );
    // Three apiservers as static pods kubeadm made; etcd as static pods too (stacked), or as
    // kubeha's units running the bundle's etcd 3.6 (external), three members either way.
    let pods = cluster
        .kubectl(&["-n", "kube-system", "get", "pods", "-o", "name"])
        .unwrap();
    let static_pods = |c: &str| {
        pods.lines()
            .filter(|l| l.starts_with(&format!("pod/{c}-master")))
            .count()
    };
    assert_eq!(static_pods("kube-apiserver"), CONTROL_PLANES, "{pods}");
    let members = cluster.nodes[0]
        .exec(&[
            "etcdctl",
            "--endpoints=https://127.0.0.1:2379",
            "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
            "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
            "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key",
            "member",
            "list",
        ])
        .expect("etcdctl member list");
    assert_eq!(members.lines().count(), CONTROL_PLANES, "{members}");
    if cluster.variant.external_etcd {
        assert_eq!(static_pods("etcd"), 0, "{pods}");
        let version = cluster.nodes[0].exec(&["etcd", "--version"]).unwrap();
        assert!(version.contains("3.6."), "{version}");
    } else {
        assert_eq!(static_pods("etcd"), CONTROL_PLANES, "{pods}");
    }

    // The pod network (cni: bridge) across nodes: CoreDNS pods (from the bundle's image) get
    // addresses from their node's /24, and every other node reaches their health endpoint
    // through kubeha's routes. (Their readiness waits for Services, which need kube-proxy's
    // iptables; /health does not.)
    let deadline = Instant::now() + Duration::from_secs(180);
    let coredns: Vec<(String, String)> = loop {
        let listed = cluster
            .kubectl(&[
                "-n",
                "kube-system",
                "get",
                "pods",
                "-l",
                "k8s-app=kube-dns",
                "-o",
                "jsonpath={range .items[*]}{.spec.nodeName} {.status.podIP} {.status.phase}{\"\\n\"}{end}",
            ])
            .unwrap_or_default();
        let running: Vec<(String, String)> = listed
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 3 && f[2] == "Running").then(|| (f[0].to_string(), f[1].to_string()))
            })
            .collect();
        if !running.is_empty() && running.len() == listed.lines().count() {
            break running;
        }
        assert!(
            Instant::now() < deadline,
            "CoreDNS pods not Running within 180 s:\n{listed}\n{}",
            cluster.diagnostics()
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    for (pod_node, ip) in &coredns {
        assert!(
            ip.starts_with("198.19."),
            "pod IP {ip} is not in the pod range"
        );
        for (i, node) in cluster.nodes.iter().enumerate() {
            if &name(i) == pod_node {
                continue;
            }
            let url = format!("http://{ip}:8080/health");
            let got = node
                .exec(&["curl", "-sS", "--max-time", "3", &url])
                .unwrap_or_else(|e| {
                    panic!(
                        "{} cannot reach CoreDNS on {pod_node} at {url}: {e}",
                        name(i)
                    )
                });
            assert_eq!(got.trim(), "OK", "{} -> {url}", name(i));
        }
    }

    // The front door meets a real apiserver that stops: the holder's kubelet removes its
    // kube-apiserver (manifest moved away). kubeha's front door checks its own node's
    // /readyz: the priority drops and the VIP and the traffic leave the node. The seeds'
    // keepalived checks /readyz through the local haproxy, which still reaches the other
    // apiservers, so there the VIP may stay and the traffic goes on through haproxy. Either
    // way the VIP answers. Then the apiserver comes back.
    let holder = || -> Vec<usize> {
        (0..CONTROL_PLANES)
            .filter(|&i| {
                cluster.nodes[i]
                    .exec(&["ip", "-br", "addr"])
                    .is_ok_and(|a| a.contains("198.18.0.10/"))
            })
            .collect()
    };
    let before = holder();
    assert_eq!(before.len(), 1, "one VIP holder: {before:?}");
    let h = before[0];
    let manifest = "/etc/kubernetes/manifests/kube-apiserver.yaml";
    let parked = "/etc/kubernetes/kube-apiserver.yaml.parked";
    cluster.nodes[h].exec(&["mv", manifest, parked]).unwrap();
    let stopped = Instant::now();
    let deadline = stopped + Duration::from_secs(90);
    let moved_to = loop {
        let now = holder();
        if now.len() == 1 && (now[0] != h || cluster.variant.keepalived_haproxy) {
            break now[0];
        }
        assert!(
            Instant::now() < deadline,
            "the VIP did not leave {} within 90 s of its apiserver stopping (holders {now:?})\n{}",
            name(h),
            cluster.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let left_after = stopped.elapsed();
    // Through the VIP (kubectl on a node that still has an apiserver).
    let ask = (0..CONTROL_PLANES).find(|&i| i != h).unwrap();
    let mut argv = vec!["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"];
    argv.extend(["get", "--raw", "/readyz"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cluster.nodes[ask]
        .exec(&argv)
        .is_ok_and(|o| o.trim() == "ok")
    {
        assert!(
            Instant::now() < deadline,
            "the VIP does not answer after the move"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "{what}: apiserver on {} stopped; VIP on {} after {left_after:?}",
        name(h),
        name(moved_to)
    );
    cluster.nodes[h].exec(&["mv", parked, manifest]).unwrap();
    let direct = format!("https://{}:6443", node_address(h));
    let mut argv = vec!["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"];
    argv.extend(["--server", &direct, "get", "--raw", "/readyz"]);
    let deadline = Instant::now() + Duration::from_secs(180);
    while !cluster.nodes[ask]
        .exec(&argv)
        .is_ok_and(|o| o.trim() == "ok")
    {
        assert!(
            Instant::now() < deadline,
            "the apiserver on {} did not come back within 180 s",
            name(h)
        );
        std::thread::sleep(Duration::from_secs(1));
    }

    // A second run changes nothing.
    let started = Instant::now();
    let out = cluster.kubeha(&["up", "--output", "json"]);
    let rerun = started.elapsed();
    let r = report(&out);
    assert!(out.status.success(), "re-run failed:\n{}", failures(&r));
    assert_eq!(count(&r, "changed"), 0, "a re-run changed steps: {r}");
    eprintln!("{what}: re-run: {rerun:?}");

    // kubeha status: the API's view next to the nodes' own.
    let out = cluster.kubeha(&["status", "--output", "json"]);
    let st = report(&out);
    let k = &st["kubernetes"];
    assert_eq!(k["healthy"], true, "{st:#}");
    let api_nodes = k["nodes"].as_array().unwrap();
    assert_eq!(api_nodes.len(), CONTROL_PLANES + WORKERS, "{k:#}");
    assert!(api_nodes.iter().all(|n| n["ready"] == true), "{k:#}");
    let control_planes = api_nodes
        .iter()
        .filter(|n| {
            n["roles"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "control-plane")
        })
        .count();
    assert_eq!(control_planes, CONTROL_PLANES, "{k:#}");
    assert!(
        k["apiservers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["readyz"] == "ok"),
        "{k:#}"
    );
    assert_eq!(st["healthy"], true, "{st:#}");
}
