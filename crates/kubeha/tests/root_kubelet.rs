//! A real kubelet in a node namespace (root): kubeha's bundle imported into the node's own
//! containerd, kubeadm's own `init phase etcd local` and `init phase control-plane apiserver`
//! manifests run as static pods, and the apiserver's /readyz answered through kubeha's front
//! door on the VIP; real kubectl with kubeha's admin kubeconfig lists namespaces through it.
//! Every Kubernetes binary is upstream's, built by scripts/k8s-binaries.sh; the one stand-in
//! is the systemctl shim (netns/files/systemctl), because the node has no systemd.

mod k8s;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s::{assert_ok, binaries, kubeha, version};
use netns::Topology;
use netns::node::{Node, NodeSpec};

const LAB: &str = "kl11";

/// containerd 1.6 in a node namespace: this sandbox lacks CAP_SYS_RESOURCE, so sandboxes must
/// not ask for a negative oom_score_adj; cgroupfs (no systemd); Debian's CNI plugin path.
fn containerd_config(pause: &str) -> String {
    format!(
        r#"version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
"#
    )
}

/// A standalone kubelet (static pods only, no API server to register with yet).
fn kubelet_config(cgroup_root: &str) -> String {
    format!(
        "apiVersion: kubelet.config.k8s.io/v1beta1\n\
         kind: KubeletConfiguration\n\
         staticPodPath: /etc/kubernetes/manifests\n\
         containerRuntimeEndpoint: unix:///run/containerd/containerd.sock\n\
         cgroupDriver: cgroupfs\n\
         cgroupRoot: /{cgroup_root}\n\
         failSwapOn: false\n\
         failCgroupV1: false\n\
         readOnlyPort: 0\n\
         address: 127.0.0.1\n\
         authentication: {{ anonymous: {{ enabled: false }}, webhook: {{ enabled: false }} }}\n\
         authorization: {{ mode: AlwaysAllow }}\n\
         evictionHard: {{ memory.available: \"0%\", nodefs.available: \"0%\", nodefs.inodesFree: \"0%\", imagefs.available: \"0%\" }}\n\
         imageGCHighThresholdPercent: 100\n\
         localStorageCapacityIsolation: false\n"
    )
}

const KUBELET_UNIT: &str = "[Service]\n\
ExecStart=/usr/local/bin/kubelet --config=/var/lib/kubelet/config.yaml --hostname-override=cp1 --node-ip=198.18.0.11 --oom-score-adj=0\n\
Restart=always\n\
RestartSec=2\n";

fn wait_for(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> Option<String>,
    diag: impl Fn() -> String,
) -> String {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {limit:?}: no\n{}",
            diag()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn root_kubelet_runs_kubeadms_static_pods_behind_the_front_door() {
    if testkit::skip_without_root("root_kubelet") {
        return;
    }
    let Some(bin) = binaries("root_kubelet") else {
        return;
    };
    let v = version(&bin);
    let dir = tempfile::Builder::new()
        .prefix("kubeha-kubelet-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    let inv = d.join("cluster.yaml");
    std::fs::write(
        &inv,
        format!(
            "cluster: {{ name: {LAB}, kubernetes_version: {v} }}\n\
             endpoint: {{ vip: 198.18.0.10/24, port: 16443, apiserver_port: 6443 }}\n\
             nodes:\n  - {{ name: cp1, address: 198.18.0.11/24, roles: [control-plane] }}\n\
             networking: {{ pod_cidr: 198.19.0.0/16, service_cidr: 198.18.128.0/20, cni: none, kube_proxy_mode: iptables }}\n\
             runtime: {{ systemd_cgroup: false }}\n\
             pki: {{ key_type: ecdsa-p256 }}\n\
             frontdoor: {{ kind: builtin, advert_interval: 100ms, health: {{ kind: https, path: /readyz, interval: 500ms }} }}\n"
        ),
    )
    .unwrap();
    let inv_s = inv.to_str().unwrap();
    let bundle_dir = d.join("bundle");
    let built = assert_ok(
        &kubeha(&[
            "bundle",
            "build",
            "-f",
            inv_s,
            "--binaries",
            bin.to_str().unwrap(),
            "-o",
            bundle_dir.to_str().unwrap(),
        ]),
        "kubeha bundle build",
    );
    let manifest = bundle::verify(&bundle_dir).expect("the bundle verifies");
    assert!(manifest.images.len() >= 6, "{built}");
    assert_ok(&kubeha(&["pki", "issue", "-f", inv_s]), "kubeha pki issue");
    let out = d.join("out");
    assert_ok(
        &kubeha(&["plan", "-f", inv_s, "-o", out.to_str().unwrap()]),
        "kubeha plan -o",
    );

    let topo = Topology::build(LAB, 1).expect("topology");
    let node = Node::start(NodeSpec {
        name: "cp1".into(),
        netns: topo.nodes[0].ns.name().into(),
        state_dir: d.join("cp1"),
        machine_id: format!("{:032x}", 0xc0ffee_u64),
        cgroup_root: format!("kubeha-{LAB}-cp1"),
        product_uuid: None,
        init: vec![],
        log: Some(d.join("cp1.log")),
    })
    .expect("node starts");
    let logs = |unit: &str| -> String {
        std::fs::read_to_string(node.path(&format!("/run/systemctl-shim/{unit}.log")))
            .map(|t| {
                t.lines()
                    .rev()
                    .take(25)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    };

    // The node gets what `kubeha plan` rendered for it (PKI, kubeadm and front door config,
    // units), the bundle's binaries and kubeha itself; then the node-namespace containerd
    // settings over the rendered config.
    let kubeha_bin = assert_cmd::cargo::cargo_bin("kubeha");
    node.sh(&format!(
        "set -e; cp -a {out}/cp1/. /; mkdir -p /usr/local/bin /etc/kubernetes/manifests; \
         cp {b}/bin/* /usr/local/bin/; cp {k} /usr/local/bin/kubeha",
        out = out.display(),
        b = bundle_dir.display(),
        k = kubeha_bin.display()
    ))
    .expect("install files");
    let pause = manifest
        .images
        .iter()
        .find(|i| i.name.contains("/pause:"))
        .expect("the bundle has pause")
        .name
        .clone();
    std::fs::write(
        node.path("/etc/containerd/config.toml"),
        containerd_config(&pause),
    )
    .unwrap();
    node.exec(&["systemctl", "start", "containerd"])
        .expect("containerd starts");
    wait_for(
        "containerd's socket",
        Duration::from_secs(30),
        || node.exec(&["ctr", "version"]).ok(),
        || logs("containerd"),
    );

    // Every image of the bundle, imported, listed by CRI under the name kubeadm asks for.
    for img in &manifest.images {
        node.exec(&[
            "ctr",
            "-n",
            "k8s.io",
            "images",
            "import",
            bundle_dir.join(&img.path).to_str().unwrap(),
        ])
        .unwrap_or_else(|e| panic!("import {}: {e}", img.name));
    }
    let listed = node
        .exec(&[
            "crictl",
            "--runtime-endpoint",
            "unix:///run/containerd/containerd.sock",
            "images",
        ])
        .expect("crictl images");
    for img in &manifest.images {
        let (repo, tag) = img.name.rsplit_once(':').unwrap();
        assert!(
            listed.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() >= 2 && f[0] == repo && f[1] == tag
            }),
            "CRI does not list {}:\n{listed}",
            img.name
        );
    }

    // kubeadm's own static pod manifests for this node, from kubeha's rendered config.
    let kubeadm = |phase: &[&str]| {
        let mut argv = vec!["kubeadm", "init", "phase"];
        argv.extend_from_slice(phase);
        argv.extend(["--config", "/etc/kubeha/kubeadm-init.yaml"]);
        node.exec(&argv)
            .unwrap_or_else(|e| panic!("kubeadm {phase:?}: {e}"))
    };
    kubeadm(&["etcd", "local"]);
    kubeadm(&["control-plane", "apiserver"]);
    let manifest_text =
        std::fs::read_to_string(node.path("/etc/kubernetes/manifests/kube-apiserver.yaml"))
            .unwrap();
    assert!(
        manifest_text.contains(&format!("kube-apiserver:{v}")),
        "{manifest_text}"
    );

    std::fs::write(
        node.path("/var/lib/kubelet/config.yaml"),
        kubelet_config(&format!("kubeha-{LAB}-cp1")),
    )
    .unwrap();
    std::fs::write(
        node.path("/etc/systemd/system/kubelet.service"),
        KUBELET_UNIT,
    )
    .unwrap();
    node.exec(&["systemctl", "start", "kubelet"])
        .expect("kubelet starts");

    let ca = d.join("pki/cluster/pki/ca.crt");
    let client = &topo.client.ns;
    let readyz = |url: &str| {
        client
            .exec(&[
                "curl",
                "-sS",
                "--max-time",
                "3",
                "--cacert",
                ca.to_str().unwrap(),
                url,
            ])
            .ok()
            .filter(|b| b.trim() == "ok")
    };
    let crictl_ps = || {
        node.exec(&[
            "crictl",
            "--runtime-endpoint",
            "unix:///run/containerd/containerd.sock",
            "ps",
            "-a",
        ])
        .unwrap_or_default()
    };
    let started = Instant::now();
    wait_for(
        "kube-apiserver /readyz on the node",
        Duration::from_secs(300),
        || readyz("https://198.18.0.11:6443/readyz"),
        || format!("{}\n--- kubelet:\n{}", crictl_ps(), logs("kubelet")),
    );
    let apiserver_ready = started.elapsed();
    let ps = crictl_ps();
    for c in ["kube-apiserver", "etcd"] {
        assert!(
            ps.lines().any(|l| l.contains(c) && l.contains("Running")),
            "{c} is not Running:\n{ps}"
        );
    }

    // kubeha's front door on the node: VIP, HTTPS /readyz trusting only the cluster CA.
    node.exec(&["systemctl", "start", "kubeha-frontdoor"])
        .expect("front door starts");
    wait_for(
        "/readyz through the front door on the VIP",
        Duration::from_secs(30),
        || readyz("https://198.18.0.10:16443/readyz"),
        || logs("kubeha-frontdoor"),
    );
    // Real kubectl through the VIP. admin.conf's group (kubeadm:cluster-admins) gets its
    // ClusterRoleBinding from a full `kubeadm init`, which this test does not run: here the
    // API server must authenticate it, and super-admin.conf (system:masters) lists namespaces.
    let kubectl = |conf: &str, args: &[&str]| {
        let conf = d.join("pki/cluster").join(conf);
        let mut argv = vec![
            bin.join("kubectl").to_str().unwrap().to_string(),
            "--kubeconfig".into(),
            conf.to_str().unwrap().to_string(),
        ];
        argv.extend(args.iter().map(|a| a.to_string()));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        client
            .exec(&argv)
            .unwrap_or_else(|e| panic!("kubectl {args:?} through the VIP: {e}"))
    };
    let who = kubectl(
        "admin.conf",
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
        ],
    );
    assert!(
        who.contains("kubernetes-admin") && who.contains("kubeadm:cluster-admins"),
        "{who}"
    );
    let namespaces = kubectl("super-admin.conf", &["get", "namespaces", "-o", "name"]);
    for ns in ["namespace/default", "namespace/kube-system"] {
        assert!(namespaces.contains(ns), "{namespaces}");
    }
    for conf in ["admin.conf", "super-admin.conf"] {
        let text = std::fs::read_to_string(d.join("pki/cluster").join(conf)).unwrap();
        assert!(
            text.contains("https://198.18.0.10:16443"),
            "{conf} does not use the VIP"
        );
    }
    // kubeadm reads kubeha's certificates and kubeconfigs where the node keeps them.
    let expiry = node
        .exec(&[
            "kubeadm",
            "certs",
            "check-expiration",
            "--config",
            "/etc/kubeha/kubeadm-init.yaml",
        ])
        .expect("kubeadm certs check-expiration");
    for want in [
        "admin.conf",
        "super-admin.conf",
        "controller-manager.conf",
        "scheduler.conf",
        "apiserver ",
    ] {
        assert!(
            expiry
                .lines()
                .any(|l| l.starts_with(want) && l.contains(" UTC ")),
            "{want}:\n{expiry}"
        );
    }
    assert!(!expiry.contains("MISSING"), "{expiry}");
    eprintln!("root_kubelet: apiserver ready {apiserver_ready:?} after the kubelet started");

    node.exec(&["systemctl", "stop", "kubelet", "kubeha-frontdoor"])
        .ok();
    drop(node);
    assert!(
        !Path::new(&format!("/sys/fs/cgroup/memory/kubeha-{LAB}-cp1")).exists(),
        "the node's cgroup root is left behind"
    );
    let _ = Command::new("true").status();
}
