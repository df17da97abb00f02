//! The preflight step's port check, run for real with `sh`: a port held by a process that is
//! not one of Kubernetes' or kubeha's stops preflight and names the port; a free port does not.

use std::net::TcpListener;
use std::process::Command;

fn preflight_script(ports: &str) -> String {
    let src = "cluster: { name: c, kubernetes_version: 1.34.4 }\n\
               endpoint: { vip: 198.18.0.10/24 }\n\
               nodes:\n  - { name: w1, address: 198.18.0.21/24, roles: [control-plane] }\n";
    let loaded = inventory::parse_str(src, "cluster.yaml").unwrap();
    let plan = plan::build(&loaded.inventory, &plan::Inputs::placeholder());
    let run = plan.nodes[0]
        .step(plan::StepId::PreflightHost)
        .unwrap()
        .run
        .clone()
        .unwrap();
    let (first, rest) = run.split_once('\n').unwrap();
    assert!(first.starts_with("PORTS="), "{first}");
    format!("PORTS='{ports}'\n{rest}")
}

fn run(script: &str) -> std::process::Output {
    Command::new("sh")
        .args(["-eu", "-c", script])
        .output()
        .unwrap()
}

#[test]
fn a_port_held_by_another_program_stops_preflight() {
    if Command::new("ss").arg("-V").output().is_err() {
        eprintln!("skipped: no ss (iproute2)");
        return;
    }
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let out = run(&preflight_script(&port.to_string()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "preflight passed with port {port} held"
    );
    assert!(err.contains(&format!("port {port} is in use by")), "{err}");

    // Released: the same port gets past the check.
    drop(held);
    let out = run(&preflight_script(&port.to_string()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("is in use by"), "{err}");
}
