//! Real kubeadm (built from upstream source by scripts/k8s-binaries.sh) against what kubeha
//! renders and issues. No kubelet and no root needed.

mod k8s;

use std::path::Path;
use std::process::Command;

use k8s::{assert_ok, binaries, example_at, kubeha, ok, snapshot, version};

/// Writes `text` as cluster.yaml in a new directory and renders it with `kubeha plan -o`.
fn plan_out(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("cluster.yaml");
    std::fs::write(&inv, text).unwrap();
    let out = dir.path().join("out");
    assert_ok(
        &kubeha(&[
            "plan",
            "-f",
            inv.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]),
        "kubeha plan -o",
    );
    (dir, out)
}

/// Every kubeadm configuration file the plan wrote, by node.
fn kubeadm_configs(out: &Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for node in std::fs::read_dir(out).unwrap().flatten() {
        for name in ["kubeadm-init.yaml", "kubeadm-join.yaml"] {
            let p = node.path().join("etc/kubeha").join(name);
            if p.is_file() {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

/// What kubeha's lab sets for node namespaces on this machine (cgroup v1 hybrid, no
/// CAP_SYS_RESOURCE, Debian's CNI plugins, 2 slow cores).
const NODE_NAMESPACE_SETTINGS: &str = "\
runtime: { systemd_cgroup: false, restrict_oom_score_adj: true, cni_bin_dir: /usr/lib/cni }
kubelet:
  fail_cgroup_v1: false
  extra_args: { oom-score-adj: \"0\" }
  extra_config: { failSwapOn: false, imageGCHighThresholdPercent: 100, evictionHard: { memory.available: \"0%\", nodefs.available: \"0%\" } }
kubeadm:
  ignore_preflight_errors: [SystemVerification]
  timeouts: { control_plane_health_check: 10m, kubelet_health_check: 6m, tls_bootstrap: 5m }
";

#[test]
fn kubeadm_validates_every_configuration_kubeha_renders() {
    let Some(bin) = binaries("kubeadm_validates_every_configuration_kubeha_renders") else {
        return;
    };
    let v = version(&bin);
    let minor: u32 = v.split('.').nth(1).unwrap().parse().unwrap();
    let older = format!("1.{}.0", minor - 1);
    let keep = |s: String| s;
    let cases: Vec<(&str, String)> = vec![
        (
            "example (v1beta4, stacked etcd, builtin front door)",
            example_at("cluster.yaml", &v, &keep),
        ),
        ("minimal", example_at("minimal.yaml", &v, &keep)),
        (
            "keepalived-haproxy front door",
            example_at("cluster.yaml", &v, &|s| {
                s.replace("kind: builtin ", "kind: keepalived-haproxy ")
            }),
        ),
        (
            "external etcd",
            example_at("cluster.yaml", &v, &|s| {
                s.replace("topology: stacked ", "topology: external ").replace(
                    "  - name: worker1\n",
                    "  - name: etcd1\n    address: 198.18.0.31/24\n    roles: [etcd]\n  - name: etcd2\n    address: 198.18.0.32/24\n    roles: [etcd]\n  - name: etcd3\n    address: 198.18.0.33/24\n    roles: [etcd]\n  - name: worker1\n",
                )
            }),
        ),
        (
            "settings a node namespace needs (kubelet, kubeadm, runtime)",
            example_at("minimal.yaml", &v, &|s| {
                s.replace(
                    "  - { name: cp1, address: 198.18.0.11/24, roles: [control-plane] }",
                    "  - { name: cp1, address: 198.18.0.11/24, roles: [control-plane], kubelet_extra_args: { cgroup-root: /kubeha-lab-cp1 } }",
                ) + NODE_NAMESPACE_SETTINGS
            }),
        ),
        (
            "the previous minor (oldest control plane this kubeadm deploys)",
            example_at("minimal.yaml", &older, &keep),
        ),
    ];
    let mut validated = 0;
    for (what, text) in cases {
        let (_dir, out) = plan_out(&text);
        let configs = kubeadm_configs(&out);
        assert!(
            configs.len() >= 2,
            "{what}: no init and join configs in {}",
            out.display()
        );
        assert!(
            configs.iter().any(|p| p.ends_with("kubeadm-init.yaml")),
            "{what}: no init config"
        );
        // containerd's sandbox image must be the pause image kubeadm itself lists, or an
        // offline node (images from the bundle only) cannot start a pod. (kubeadm lists its own
        // pause version whatever the control plane's, so only its own minor is compared.)
        let same_minor = text.contains(&format!(
            "kubernetes_version: {}",
            v.trim_start_matches('v')
        ));
        let init = configs
            .iter()
            .find(|p| p.ends_with("kubeadm-init.yaml"))
            .unwrap();
        let images = ok(Command::new(bin.join("kubeadm"))
            .args(["config", "images", "list", "--config"])
            .arg(init));
        let containerd = std::fs::read_to_string(
            init.parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("containerd/config.toml"),
        )
        .unwrap();
        let sandbox = containerd
            .lines()
            .find_map(|l| l.trim().strip_prefix("sandbox_image = "))
            .expect("sandbox_image in containerd's config")
            .trim_matches('"');
        assert!(
            !same_minor || images.lines().any(|l| l.trim() == sandbox),
            "{what}: containerd's sandbox_image {sandbox} is not among kubeadm's images:\n{images}"
        );
        if what.starts_with("settings") {
            let init_text = std::fs::read_to_string(init).unwrap();
            for want in [
                "ignorePreflightErrors:\n  - SystemVerification",
                "controlPlaneComponentHealthCheck: 600s",
                "name: cgroup-root\n    value: /kubeha-lab-cp1",
                "name: oom-score-adj\n    value: \"0\"",
                "failCgroupV1: false",
                "failSwapOn: false",
            ] {
                assert!(
                    init_text.contains(want),
                    "{what}: `{want}` not in\n{init_text}"
                );
            }
            assert!(
                containerd.contains("restrict_oom_score_adj = true"),
                "{containerd}"
            );
            assert!(
                containerd.contains("bin_dir = \"/usr/lib/cni\""),
                "{containerd}"
            );
        }
        for c in &configs {
            let text = ok(Command::new(bin.join("kubeadm"))
                .args(["config", "validate", "--config"])
                .arg(c));
            assert!(text.contains("ok"), "{what}: {}: {text}", c.display());
            validated += 1;
        }
    }
    assert!(validated >= 12, "only {validated} configurations validated");
}

#[test]
fn kubeadm_uses_kubehas_pki_and_kubeconfigs_and_changes_none() {
    let Some(bin) = binaries("kubeadm_uses_kubehas_pki_and_kubeconfigs_and_changes_none") else {
        return;
    };
    let v = version(&bin);
    // Not kubeadm's defaults (RSA-2048, 1 year), so its own renewals below show whose they use.
    let text = example_at("cluster.yaml", &v, &|s| {
        s.replace("key_type: rsa-2048", "key_type: ecdsa-p256")
            .replace("leaf_validity: 365d", "leaf_validity: 100d")
    });
    assert!(
        text.contains("ecdsa-p256") && text.contains("100d"),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("cluster.yaml");
    std::fs::write(&inv, &text).unwrap();
    let inv_s = inv.to_str().unwrap();
    assert_ok(&kubeha(&["pki", "issue", "-f", inv_s]), "kubeha pki issue");
    let out = dir.path().join("out");
    assert_ok(
        &kubeha(&["plan", "-f", inv_s, "-o", out.to_str().unwrap()]),
        "kubeha plan -o",
    );
    // The first control-plane node's /etc/kubernetes as kubeha would write it.
    let k8s_dir = out.join("master1/etc/kubernetes");
    assert!(
        k8s_dir.join("pki/ca.key").is_file(),
        "no PKI in the plan output"
    );
    let before = snapshot(&k8s_dir);
    // kubeadm's default certificatesDir is the host's /etc/kubernetes/pki: point it at the copy.
    let config = std::fs::read_to_string(out.join("master1/etc/kubeha/kubeadm-init.yaml"))
        .unwrap()
        .replace(
            "kind: ClusterConfiguration\n",
            &format!(
                "kind: ClusterConfiguration\ncertificatesDir: {}\n",
                k8s_dir.join("pki").display()
            ),
        );
    assert!(
        config.contains("certificatesDir: /"),
        "no ClusterConfiguration in the init config"
    );
    let cfg = dir.path().join("kubeadm.yaml");
    std::fs::write(&cfg, config).unwrap();

    let certs = ok(Command::new(bin.join("kubeadm"))
        .args(["init", "phase", "certs", "all", "--config"])
        .arg(&cfg));
    let kubeconfigs = ok(Command::new(bin.join("kubeadm"))
        .args(["init", "phase", "kubeconfig", "all", "--config"])
        .arg(&cfg)
        .arg("--kubeconfig-dir")
        .arg(&k8s_dir));
    // kubelet.conf is the one file kubeadm makes itself: kubeha leaves the node's own kubelet
    // credential to kubeadm (init writes it, joins get it through TLS bootstrap).
    const KUBEADMS_OWN: &str = "kubelet.conf";
    for (phase, text) in [("certs", &certs), ("kubeconfig", &kubeconfigs)] {
        assert!(text.contains("Using existing"), "{phase}: {text}");
        for line in text.lines() {
            let made = line.contains("Generating") || line.contains("Writing");
            assert!(
                !made || line.contains(KUBEADMS_OWN),
                "kubeadm init phase {phase} made a file of its own: {line}\n{text}"
            );
        }
    }
    for what in [
        "existing ca certificate authority",
        "existing apiserver certificate",
        "existing etcd/ca certificate authority",
        "existing front-proxy-ca certificate authority",
        "existing apiserver-etcd-client certificate",
        "existing \"sa\" key",
    ] {
        assert!(
            certs.contains(what),
            "certs phase did not use {what}:\n{certs}"
        );
    }
    for conf in [
        "admin.conf",
        "super-admin.conf",
        "controller-manager.conf",
        "scheduler.conf",
    ] {
        assert!(
            kubeconfigs
                .lines()
                .any(|l| l.contains("Using existing") && l.contains(conf)),
            "kubeconfig phase did not use kubeha's {conf}:\n{kubeconfigs}"
        );
    }
    let mut after = snapshot(&k8s_dir);
    after.remove(Path::new(KUBEADMS_OWN));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "kubeadm added or removed files"
    );
    for (p, bytes) in &before {
        assert!(after[p] == *bytes, "kubeadm changed {}", p.display());
    }

    // check-expiration reads the kubeconfigs from /etc/kubernetes only (root_kubelet checks
    // those inside a node); here, every certificate of kubeha's tree.
    let expiry = ok(Command::new(bin.join("kubeadm"))
        .args(["certs", "check-expiration", "--config"])
        .arg(&cfg));
    for want in [
        "apiserver ",
        "apiserver-etcd-client",
        "apiserver-kubelet-client",
        "etcd-server",
        "etcd-peer",
        "front-proxy-client",
        "etcd-ca",
        "front-proxy-ca",
    ] {
        assert!(
            expiry
                .lines()
                .any(|l| l.starts_with(want) && l.contains(" UTC ")),
            "check-expiration lacks {want}:\n{expiry}"
        );
    }

    // kubeadm renews certificates itself (`certs renew`, `upgrade apply`): with the rendered
    // ClusterConfiguration it issues the inventory's key type and validity, not its own.
    let cert = k8s_dir.join("pki/apiserver.crt");
    let old = std::fs::read(&cert).unwrap();
    ok(Command::new(bin.join("kubeadm"))
        .args(["certs", "renew", "apiserver", "--config"])
        .arg(&cfg));
    assert_ne!(
        std::fs::read(&cert).unwrap(),
        old,
        "kubeadm renewed nothing"
    );
    let x509 = |args: &[&str]| {
        Command::new("openssl")
            .args(["x509", "-noout", "-in"])
            .arg(&cert)
            .args(args)
            .output()
            .unwrap()
    };
    let text = String::from_utf8_lossy(&x509(&["-text"]).stdout).into_owned();
    assert!(
        text.contains("id-ecPublicKey") && text.contains("P-256"),
        "kubeadm's renewal is not ECDSA-P256:\n{text}"
    );
    let day = 86_400;
    assert!(
        x509(&["-checkend", &(99 * day).to_string()])
            .status
            .success(),
        "the renewed certificate expires within 99 days"
    );
    assert!(
        !x509(&["-checkend", &(101 * day).to_string()])
            .status
            .success(),
        "the renewed certificate outlives the inventory's 100 days:\n{text}"
    );
}
