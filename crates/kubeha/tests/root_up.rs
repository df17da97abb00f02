//! `kubeha up` against real sshd in network namespaces: real etcd forms a TLS cluster, the
//! front door holds the VIP and proxies to it, re-runs change nothing, failures stay on
//! their node, preflight catches cloned machines, a changed host key is refused.
//! kubeadm/kubectl are recording stand-ins (tests/standins); nothing else is faked.

mod common;

use std::time::{Duration, Instant};

use common::nodes::{Bed, specs};
use serde_json::Value;

fn report(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}): stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn outcomes(r: &Value, node: &str) -> Vec<(String, String)> {
    r["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == node)
        .unwrap()["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn count(r: &Value, outcome: &str) -> usize {
    r["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            n["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["outcome"] == outcome)
                .count()
        })
        .sum()
}

/// The bootstrap token the kubeadm stand-in on master1 made last: this run's (the first one
/// came with init).
fn latest_token(bed: &Bed) -> String {
    let tokens = bed.node_file(0, "/run/kubeha-standin/tokens").unwrap();
    let last = tokens.lines().last().unwrap_or_default();
    last.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// HTTPS GET /health through the VIP with the etcd client certificate, verified against the
/// etcd CA: proves the VIP answers and forwards to a healthy member.
fn etcd_health_via_vip(bed: &Bed) -> Result<(), String> {
    let pki = bed.dir.path().join("pki/cluster/pki");
    let out = bed
        .topo
        .client
        .ns
        .command("curl")
        .args([
            "-fsS",
            "--max-time",
            "3",
            "--resolve",
            "localhost:16443:198.18.0.10",
            "--cacert",
        ])
        .arg(pki.join("etcd/ca.crt"))
        .arg("--cert")
        .arg(pki.join("etcd/healthcheck-client.crt"))
        .arg("--key")
        .arg(pki.join("etcd/healthcheck-client.key"))
        .arg("https://localhost:16443/health")
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && body.contains("\"health\":\"true\"") {
        Ok(())
    } else {
        Err(format!("{body} {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// What the stand-in systemd kept of a unit's output on node `i`.
fn unit_log(bed: &Bed, i: usize, unit: &str) -> String {
    let log = bed
        .node_file(i, &format!("/run/kubeha-standin/{unit}.log"))
        .unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

#[test]
fn root_up_forms_etcd_behind_the_vip_stops_at_kubeadm_and_reruns_clean() {
    if testkit::skip_without_root("root_up") {
        return;
    }
    let bed = Bed::start("khup1", specs(3, 2, false));
    let t0 = Instant::now();
    let out = bed.kubeha(&["up", "--output", "json"]);
    let first = t0.elapsed();
    let r = report(&out);
    assert_eq!(
        out.status.code(),
        Some(3),
        "stops at the Kubernetes-binary boundary: {r:#} {}",
        stderr(&out)
    );
    assert_eq!(r["stopped"]["kind"], "kubernetes-binaries", "{r:#}");
    assert_eq!(r["stopped"]["phase"], "init");
    // The front door phase ended with the VIP on exactly one node.
    assert!(
        r["checks"][0]
            .as_str()
            .unwrap()
            .starts_with("VIP 198.18.0.10 held by master"),
        "{r:#}"
    );
    assert!(
        r["stopped"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "master1")
    );
    // Everything before the boundary ran on every node.
    for n in ["master1", "master2", "master3", "worker1", "worker2"] {
        let steps = outcomes(&r, n);
        for (id, outcome) in &steps {
            let before = ["preflight/", "prepare/", "pki/", "etcd/", "frontdoor/"]
                .iter()
                .any(|p| id.starts_with(p));
            if before {
                assert!(
                    outcome == "changed" || outcome == "checked",
                    "{n} {id}: {outcome}"
                );
            } else {
                assert_eq!(outcome, "not-run", "{n} {id}");
            }
        }
    }
    // The human message says what to do.
    let text = bed.kubeha(&["up"]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("kubeadm/kubectl are not installed on master1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("install kubelet, kubeadm and kubectl"),
        "{stdout}"
    );

    // A real etcd cluster formed, with TLS, on the control-plane nodes.
    let members = bed.on_node(
        0,
        "ETCDCTL_API=3 etcdctl --endpoints=https://198.18.0.11:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt \
         --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key \
         member list",
    );
    assert_eq!(
        members.lines().filter(|l| l.contains("started")).count(),
        3,
        "{members}"
    );
    // The VIP is held by exactly one node and forwards to etcd.
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = etcd_health_via_vip(&bed) {
        assert!(
            Instant::now() < deadline,
            "no healthy etcd answer through the VIP: {e}\n{}",
            (0..3)
                .map(|i| unit_log(&bed, i, "kubeha-frontdoor"))
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let holders: Vec<usize> = (0..3)
        .filter(|&i| {
            bed.on_node(i, "ip -o -4 addr show dev eth0")
                .contains("198.18.0.10/")
        })
        .collect();
    assert_eq!(holders.len(), 1, "{holders:?}");
    // Files landed with their modes, the hosts block was merged, swap and sysctl applied.
    let key_mode = bed.on_node(1, "stat -c %a /etc/kubernetes/pki/etcd/server.key");
    assert_eq!(key_mode.trim(), "600");
    let hosts = bed.node_file(3, "/etc/hosts").unwrap();
    assert!(
        hosts.contains("198.18.0.12") && hosts.contains("master2"),
        "{hosts}"
    );
    assert_eq!(bed.on_node(3, "sysctl -n net.ipv4.ip_forward").trim(), "1");
    // containerd runs with the rendered config on every node.
    for i in 0..5 {
        assert!(
            bed.on_node(i, "systemctl is-active containerd")
                .contains("active"),
            "containerd on node {i}"
        );
    }
    // The worker has no front door or etcd.
    assert!(bed.node_file(3, "/usr/local/bin/kubeha").is_none());

    // Re-run: converges with zero changed steps.
    let out = bed.kubeha(&["up", "--output", "json"]);
    let again = report(&out);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(count(&again, "changed"), 0, "{again:#}");
    assert!(count(&again, "unchanged") >= 20, "{again:#}");
    // --dry-run agrees: nothing would change.
    let out = bed.kubeha(&["up", "--dry-run", "--output", "json"]);
    let dry = report(&out);
    for n in dry["nodes"].as_array().unwrap() {
        for s in n["steps"].as_array().unwrap() {
            let id = s["id"].as_str().unwrap();
            let kube = ["init/", "cni/", "join-", "verify/"]
                .iter()
                .any(|p| id.starts_with(p));
            if s["outcome"] == "would-run" && !kube {
                assert_eq!(s["reason"], "check", "{s}");
            }
        }
    }
    // An edited file is put back, the edit kept aside and reported, only that step reruns.
    bed.on_node(
        0,
        "echo 'net.ipv4.ip_forward = 0' > /etc/sysctl.d/99-kubeha.conf",
    );
    let out = bed.kubeha(&["up", "--output", "json"]);
    let r = report(&out);
    assert_eq!(count(&r, "changed"), 1, "{r:#}");
    assert_eq!(
        outcomes(&r, "master1")
            .iter()
            .find(|(id, _)| id == "prepare/sysctl")
            .unwrap()
            .1,
        "changed"
    );
    let backups = r["nodes"][0]["backups"].as_array().unwrap();
    assert_eq!(backups[0], "/etc/sysctl.d/99-kubeha.conf.kubeha-bak");
    assert!(
        bed.node_file(0, "/etc/sysctl.d/99-kubeha.conf.kubeha-bak")
            .unwrap()
            .contains("= 0")
    );

    // kubeha status sees it all.
    let out = bed.kubeha(&["status", "--output", "json"]);
    let st = report(&out);
    assert_eq!(st["vip_holders"].as_array().unwrap().len(), 1, "{st:#}");
    assert_eq!(st["etcd_healthy"], 3, "{st:#}");
    let states: Vec<&str> = st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["vrrp_state"].as_str())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "master").count(),
        1,
        "{states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| **s == "backup").count(),
        2,
        "{states:?}"
    );

    // A host whose key changed is refused, naming the known_hosts line.
    let kh = std::fs::read_to_string(&bed.known_hosts).unwrap();
    let other = std::fs::read_to_string(bed.dir.path().join("master3/host_ed25519.pub")).unwrap();
    let other_key = other.split_whitespace().nth(1).unwrap();
    let line1 = kh.lines().next().unwrap().to_string();
    let forged = kh.replacen(line1.split_whitespace().nth(2).unwrap(), other_key, 1);
    std::fs::write(&bed.known_hosts, forged).unwrap();
    let out = bed.kubeha(&["up", "--accept-new-host-keys"]);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("host key of 198.18.0.11") && all.contains("does not match"),
        "{all}"
    );
    eprintln!(
        "up for 3+2 namespace nodes: first run {:.1} s",
        first.as_secs_f64()
    );
}

#[test]
fn root_up_runs_kubeadm_in_order_and_isolates_a_failing_worker() {
    if testkit::skip_without_root("root_up") {
        return;
    }
    let bed = Bed::start("khup2", specs(3, 2, true));
    bed.on_node(4, "touch /etc/kubeha-test-fail-join");
    let out = bed.kubeha(&["up", "--output", "json"]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(1), "{r:#} {}", stderr(&out));
    assert!(
        r.get("stopped").is_none(),
        "a worker failure does not stop the run: {r:#}"
    );
    let fail = &r["nodes"][4]["failure"];
    assert_eq!(fail["node"], "worker2");
    assert_eq!(fail["step"], "join-worker/kubeadm-join");
    assert_eq!(fail["exit_code"], 1);
    assert_eq!(
        fail["command"],
        "kubeadm join --config /etc/kubeha/kubeadm-join.yaml"
    );
    assert!(
        fail["stderr_tail"][0]
            .as_str()
            .unwrap()
            .contains("couldn't validate the identity"),
        "{fail}"
    );
    assert!(
        fail["hint"].as_str().unwrap().contains("--only worker2"),
        "{fail}"
    );
    for n in ["master1", "master2", "master3", "worker1"] {
        let node = r["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == n)
            .unwrap();
        assert!(node.get("failure").is_none(), "{n}: {}", node["failure"]);
        assert!(
            outcomes(&r, n).iter().all(|(_, o)| o != "not-run"),
            "{n}: {:?}",
            outcomes(&r, n)
        );
    }

    // Order across nodes, from the stand-in's log: init first, then control-plane joins, then
    // worker joins; init skipped kubeadm's certs phase.
    let calls = std::fs::read_to_string(&bed.calls).unwrap();
    let at = |pat: &str| -> Vec<u128> {
        calls
            .lines()
            .filter(|l| l.contains(pat))
            .map(|l| l.split_whitespace().nth(2).unwrap().parse().unwrap())
            .collect()
    };
    let init = at("kubeadm init --config /etc/kubeha/kubeadm-init.yaml --skip-phases=certs");
    assert_eq!(init.len(), 1, "{calls}");
    let cp_joins: Vec<u128> = calls
        .lines()
        .filter(|l| {
            (l.contains(" master2 ") || l.contains(" master3 ")) && l.contains("kubeadm join")
        })
        .map(|l| l.split_whitespace().nth(2).unwrap().parse().unwrap())
        .collect();
    let worker_joins: Vec<u128> = calls
        .lines()
        .filter(|l| l.contains(" worker") && l.contains("kubeadm join"))
        .map(|l| l.split_whitespace().nth(2).unwrap().parse().unwrap())
        .collect();
    assert_eq!(cp_joins.len(), 2, "{calls}");
    assert_eq!(worker_joins.len(), 2, "{calls}");
    assert!(cp_joins.iter().all(|t| *t > init[0]), "{calls}");
    assert!(
        worker_joins.iter().all(|w| cp_joins.iter().all(|c| w > c)),
        "{calls}"
    );
    assert_eq!(
        at("kubeadm token create").len(),
        0,
        "init's own token needs no create: {calls}"
    );

    // Fix the worker and re-run: only its join runs; the token step makes this run's token.
    bed.on_node(4, "rm /etc/kubeha-test-fail-join");
    let out = bed.kubeha(&["up", "--output", "json"]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r:#} {}", stderr(&out));
    assert_eq!(count(&r, "changed"), 1, "{r:#}");
    assert_eq!(
        outcomes(&r, "worker2")
            .iter()
            .find(|(id, _)| id == "join-worker/kubeadm-join")
            .unwrap()
            .1,
        "changed"
    );
    let calls = std::fs::read_to_string(&bed.calls).unwrap();
    assert_eq!(calls.matches("kubeadm token create").count(), 1, "{calls}");
    // The join config the worker got carries this run's token, which exists in the cluster.
    let join = bed.node_file(4, "/etc/kubeha/kubeadm-join.yaml").unwrap();
    let tok = latest_token(&bed);
    assert!(join.contains(&tok), "{join}");
    // Verify checked the cluster as a whole.
    let checks: Vec<&str> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(checks.contains(&"etcd: 3 member(s) healthy"), "{checks:?}");
    // The front doors were unchanged in this run: the VIP is checked once, by verify.
    assert_eq!(
        checks
            .iter()
            .filter(|c| c.starts_with("VIP 198.18.0.10 held by"))
            .count(),
        1,
        "after verify only: {checks:?}"
    );

    // Recovery on one node: --only and --from redo that step there; the first control-plane
    // node comes along only to make this run's join token.
    let out = bed.kubeha(&[
        "up",
        "--only",
        "worker1",
        "--from",
        "join-worker/kubeadm-join",
        "--output",
        "json",
    ]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r:#} {}", stderr(&out));
    assert_eq!(r["nodes"].as_array().unwrap().len(), 2, "{r:#}");
    let steps = outcomes(&r, "worker1");
    assert!(
        steps
            .iter()
            .all(|(id, o)| if id == "join-worker/kubeadm-join" {
                o == "changed"
            } else {
                o == "skipped"
            }),
        "{steps:?}"
    );
    let steps = outcomes(&r, "master1");
    assert!(
        steps.iter().all(|(id, o)| if id == "init/join-token" {
            o == "checked"
        } else {
            o == "skipped"
        }),
        "{steps:?}"
    );
    let join = bed.node_file(3, "/etc/kubeha/kubeadm-join.yaml").unwrap();
    let tok = latest_token(&bed);
    assert!(
        join.contains(&tok),
        "worker1 joined with a token that exists: {join}"
    );
    // The token never reaches a log.
    let master1 = r["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "master1")
        .unwrap();
    let log = std::fs::read_to_string(master1["log"].as_str().unwrap()).unwrap();
    assert!(
        !log.contains(&tok) && log.contains("init/join-token"),
        "{log}"
    );

    // A control-plane failure stops what depends on it: the worker joins do not run.
    bed.on_node(
        2,
        "rm -f /etc/kubernetes/kubelet.conf /etc/kubernetes/standin-cp-joined; touch /etc/kubeha-test-fail-join",
    );
    let out = bed.kubeha(&[
        "up",
        "--from",
        "join-control-plane/kubeadm-join",
        "--output",
        "json",
    ]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(r["stopped"]["kind"], "failed", "{r:#}");
    assert_eq!(r["stopped"]["node"], "master3");
    assert_eq!(r["stopped"]["step"], "join-control-plane/kubeadm-join");
    for w in ["worker1", "worker2"] {
        let o = outcomes(&r, w);
        let join = o
            .iter()
            .find(|(id, _)| id == "join-worker/kubeadm-join")
            .unwrap();
        assert_eq!(join.1, "not-run", "{w}");
    }

    // An init that stopped half-way (kubelet.conf written, the cluster not finished) is not
    // taken for done: the step fails and says how to get out.
    bed.on_node(0, "rm -f /etc/kubernetes/standin-init-complete");
    let out = bed.kubeha(&["up", "--from", "init/kubeadm-init", "--output", "json"]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    let fail = &r["nodes"][0]["failure"];
    assert_eq!(fail["step"], "init/kubeadm-init", "{r:#}");
    assert!(
        fail["stderr_tail"].to_string().contains("kubeadm reset -f"),
        "{fail}"
    );
}

#[test]
fn root_up_preflight_names_nodes_with_the_same_product_uuid_or_mac() {
    if testkit::skip_without_root("root_up") {
        return;
    }
    let mut s = specs(2, 2, false);
    s[3].product_uuid = s[0].product_uuid.clone();
    s[1].extra_mac = Some("02:00:5e:10:00:99".into());
    s[2].extra_mac = Some("02:00:5e:10:00:99".into());
    let bed = Bed::start("khup3", s);
    let out = bed.kubeha(&["up"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text} {}", stderr(&out));
    assert!(
        text.contains(
            "master1 and worker2 have the same product_uuid 4c4c4544-0000-1000-8000-000000000001"
        ),
        "{text}"
    );
    assert!(
        text.contains("master2 and worker1 have the same MAC address 02:00:5e:10:00:99"),
        "{text}"
    );
    assert!(text.contains("nothing was changed"), "{text}");
    // Nothing was changed: no step records, no files.
    for i in 0..4 {
        assert!(bed.node_file(i, "/etc/kubeha/hosts.block").is_none());
        assert_eq!(
            bed.on_node(i, "ls /var/lib/kubeha/state/steps 2>/dev/null | wc -l")
                .trim(),
            "0"
        );
    }
}

/// The whole procedure (kubeadm stand-ins) on 3 control-plane nodes and
/// KUBEHA_UP_WORKERS workers (default 5); bench/up.sh runs it for 5 and 20 nodes and prints
/// the wall times. Asserts success and a clean re-run at any size.
#[test]
fn root_up_many_nodes_then_a_clean_rerun() {
    if testkit::skip_without_root("root_up") {
        return;
    }
    let workers: usize = std::env::var("KUBEHA_UP_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let bed = Bed::start("khup4", specs(3, workers, true));
    let t0 = Instant::now();
    let out = bed.kubeha(&["up", "--output", "json"]);
    let first = t0.elapsed();
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r:#} {}", stderr(&out));
    let steps = slowest(&r);
    let t1 = Instant::now();
    let out = bed.kubeha(&["up", "--output", "json"]);
    let rerun = t1.elapsed();
    let again = report(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(count(&again, "changed"), 0, "{again:#}");
    let timings: Vec<String> = again["timings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("{} {}", t["what"].as_str().unwrap(), t["millis"]))
        .collect();
    eprintln!(
        "kubeha up, {} namespace nodes: first run {:.1} s, re-run {:.1} s; slowest steps: {:?}; of the re-run: {:?}; re-run ms: {}",
        3 + workers,
        first.as_secs_f64(),
        rerun.as_secs_f64(),
        steps,
        slowest(&again),
        timings.join(", ")
    );
}

/// Where the time went: the five slowest steps of a run (ms, node and step).
fn slowest(r: &Value) -> Vec<(u64, String)> {
    let mut steps: Vec<(u64, String)> = r["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| {
            n["steps"].as_array().unwrap().iter().map(move |s| {
                (
                    s["millis"].as_u64().unwrap(),
                    format!(
                        "{} {}",
                        n["name"].as_str().unwrap(),
                        s["id"].as_str().unwrap()
                    ),
                )
            })
        })
        .collect();
    steps.sort();
    steps.split_off(steps.len().saturating_sub(5))
}

/// A router that already speaks VRRP on the cluster's VRID (a real keepalived, multicast,
/// the default) is found before the front door starts; nothing fights over the VIP.
#[test]
fn root_up_refuses_a_vrid_another_router_uses() {
    if testkit::skip_without_root("root_up") {
        return;
    }
    let bed = Bed::start("khup5", specs(1, 0, false));
    let dir = bed.dir.path();
    let conf = dir.join("keepalived.conf");
    std::fs::write(
        &conf,
        "global_defs {\n  vrrp_version 3\n}\n\
         vrrp_instance OTHER {\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority 90\n  advert_int 1\n\
         \x20 virtual_ipaddress {\n    198.18.0.200/24 dev eth0\n  }\n}\n",
    )
    .unwrap();
    let (pid, vpid) = (dir.join("k.pid"), dir.join("kv.pid"));
    let log = dir.join("keepalived.log");
    let _keepalived = testkit::probe::keepalived(&bed.topo.client.ns, &conf, &pid, &vpid, &log)
        .expect("keepalived");
    let out = bed.kubeha(&["up", "--output", "json"]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    let fail = &r["nodes"][0]["failure"];
    assert_eq!(fail["step"], "frontdoor/builtin", "{r:#}");
    let said = fail["stderr_tail"].to_string();
    assert!(
        said.contains("VRID 51 on eth0 is already used by 198.18.0.100"),
        "{said}"
    );
    assert!(
        fail["command"]
            .as_str()
            .unwrap()
            .contains("frontdoor listen"),
        "{fail}"
    );
    // The front door never started.
    assert!(
        bed.node_file(0, "/run/kubeha-standin/kubeha-frontdoor.pid")
            .is_none()
    );
}

/// An offline bundle: .deb files (built here with dpkg-deb; they carry the kubeadm/kubectl
/// stand-ins) copied to every node and installed with the real dpkg, then held with apt-mark.
#[test]
fn root_up_installs_an_offline_bundle_with_dpkg() {
    if testkit::skip_without_root("root_up") {
        return;
    }
    let bed = Bed::start("khup6", specs(1, 1, false));
    let bundle = bed.dir.path().join("bundle");
    let standins = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standins");
    for (pkg, file) in [
        ("kubeadm", Some("kubeadm")),
        ("kubectl", Some("kubectl")),
        ("kubelet", None),
    ] {
        let root = bed.dir.path().join(format!("deb-{pkg}"));
        std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(root.join("usr/local/sbin")).unwrap();
        std::fs::write(
            root.join("DEBIAN/control"),
            format!("Package: {pkg}\nVersion: 1.31.4-1.1\nArchitecture: all\nMaintainer: kubeha tests <tests@invalid>\nDescription: kubeha test stand-in, never shipped\n"),
        )
        .unwrap();
        match file {
            Some(f) => {
                std::fs::copy(standins.join(f), root.join("usr/local/sbin").join(f)).unwrap();
            }
            None => std::fs::write(root.join("usr/local/sbin/kubelet-stand-in"), "").unwrap(),
        }
        std::fs::create_dir_all(&bundle).unwrap();
        let st = std::process::Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&root)
            .arg(bundle.join(format!("{pkg}_1.31.4-1.1_all.deb")))
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
    }
    bed.write_inventory_with("{ source: bundle, bundle: bundle }", "");
    let out = bed.kubeha(&["up", "--output", "json"]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r:#} {}", stderr(&out));
    for i in 0..2 {
        assert_eq!(
            bed.on_node(i, "dpkg-query -W -f '${Version}' kubeadm"),
            "1.31.4-1.1"
        );
        assert!(bed.on_node(i, "apt-mark showhold").contains("kubeadm"));
    }
    // The host's own dpkg database never saw them.
    assert!(
        std::process::Command::new("dpkg-query")
            .args(["-W", "kubeadm"])
            .output()
            .unwrap()
            .stdout
            .is_empty()
    );
    let calls = std::fs::read_to_string(&bed.calls).unwrap();
    assert!(calls.contains("kubeadm init --config"), "{calls}");
    assert!(
        calls.contains("worker1") && calls.contains("kubeadm join"),
        "{calls}"
    );
    let out = bed.kubeha(&["up", "--output", "json"]);
    let again = report(&out);
    assert_eq!(count(&again, "changed"), 0, "{again:#}");
}

/// kubeha running on a control-plane node itself: that node through the local shell
/// (`--local`), the others over SSH.
#[test]
fn root_up_runs_on_a_node_itself_with_the_local_transport() {
    if testkit::skip_without_root("root_up") {
        return;
    }
    let bed = Bed::start("khup7", specs(1, 1, true));
    let out = bed.kubeha_on_node(0, &["up", "--local", "master1", "--output", "json"]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r:#} {}", stderr(&out));
    assert!(r["nodes"][0]["log"].as_str().is_some());
    let log = std::fs::read_to_string(r["nodes"][0]["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("via local"), "{}", &log[..log.len().min(300)]);
    let log1 = std::fs::read_to_string(r["nodes"][1]["log"].as_str().unwrap()).unwrap();
    assert!(
        log1.contains("via ssh root@198.18.0.12:22"),
        "{}",
        &log1[..log1.len().min(300)]
    );
    // The local node got its files like any other.
    assert!(bed.node_file(0, "/etc/kubeha/frontdoor.yaml").is_some());
    assert!(bed.node_file(0, "/etc/kubernetes/kubelet.conf").is_some());
}

/// `frontdoor.kind: keepalived-haproxy`, the seeds' own front door: up writes both configs,
/// checks them with `haproxy -c` and `keepalived -t` on the node, starts the real daemons from
/// Debian's units, and the VIP then answers through haproxy.
#[test]
fn root_up_with_keepalived_and_haproxy() {
    if testkit::skip_without_root("root_up") {
        return;
    }
    let bed = Bed::start("khup8", specs(3, 0, false));
    let inv = std::fs::read_to_string(&bed.inventory).unwrap();
    // This sandbox caps open files at 20000; haproxy needs 2 per connection plus some.
    let inv = inv.replace(
        "frontdoor: { kind: builtin,",
        "frontdoor: { kind: keepalived-haproxy, max_connections: 5000,",
    );
    std::fs::write(&bed.inventory, inv).unwrap();
    let out = bed.kubeha(&["up", "--output", "json"]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(3), "{r:#} {}", stderr(&out));
    assert!(
        r["checks"][0]
            .as_str()
            .unwrap()
            .starts_with("VIP 198.18.0.10 held by master"),
        "{r:#}"
    );
    for i in 0..3 {
        let calls = bed.node_file(i, "/run/kubeha-standin/calls").unwrap();
        assert!(calls.contains("restart haproxy keepalived"), "{calls}");
        assert!(bed.node_file(i, "/usr/local/bin/kubeha").is_none());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = etcd_health_via_vip(&bed) {
        assert!(
            Instant::now() < deadline,
            "no healthy etcd answer through keepalived's VIP and haproxy: {e}\n{}\n{}",
            unit_log(&bed, 0, "haproxy"),
            unit_log(&bed, 0, "keepalived")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
