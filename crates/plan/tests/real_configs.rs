//! Rendered keepalived.conf and haproxy.cfg checked by the real binaries (Debian packages,
//! installed by scripts/test.sh): `keepalived -t` and `haproxy -c`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn plan_keepalived_haproxy() -> plan::Plan {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cluster.yaml"),
    )
    .unwrap()
    .replace("kind: builtin ", "kind: keepalived-haproxy ");
    let loaded = inventory::parse_str(&src, "cluster.yaml").unwrap();
    plan::build(&loaded.inventory, &plan::Inputs::placeholder())
}

/// keepalived refuses scripts under world-writable directories (/tmp), so work below target/.
fn workdir() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}; scripts/test.sh installs it"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn keepalived_check(conf: &str, dir: &Path) -> (bool, String) {
    let script = dir.join("check_apiserver.sh");
    let conf = conf.replace(render::paths::KEEPALIVED_CHECK, script.to_str().unwrap());
    let path = dir.join("keepalived.conf");
    std::fs::write(&path, conf).unwrap();
    run(Command::new("keepalived")
        .arg("-t")
        .arg("-l")
        .arg("-f")
        .arg(&path))
}

#[test]
fn keepalived_accepts_every_rendered_config() {
    let plan = plan_keepalived_haproxy();
    for node in ["master1", "master2", "master3"] {
        let dir = workdir();
        let n = plan.node(node).unwrap();
        let script = n.artifact(render::paths::KEEPALIVED_CHECK).unwrap();
        let sp = dir.path().join("check_apiserver.sh");
        std::fs::write(&sp, &script.contents).unwrap();
        std::fs::set_permissions(
            &sp,
            std::os::unix::fs::PermissionsExt::from_mode(script.mode),
        )
        .unwrap();
        let conf = String::from_utf8(
            n.artifact(render::paths::KEEPALIVED_CONF)
                .unwrap()
                .contents
                .to_vec(),
        )
        .unwrap();
        let (ok, text) = keepalived_check(&conf, dir.path());
        assert!(ok, "{node}: keepalived -t failed:\n{text}\n{conf}");
        assert!(!text.contains("Disabling track script"), "{node}: {text}");
        // one unicast peer per line: the other two control-plane nodes
        let peers: Vec<&str> = conf
            .lines()
            .skip_while(|l| !l.contains("unicast_peer {"))
            .skip(1)
            .take_while(|l| !l.contains('}'))
            .collect();
        assert_eq!(peers.len(), 2, "{node}: {peers:?}");
        // and the check really gates: the same file with an invalid VRID is refused
        let (ok, _) = keepalived_check(
            &conf.replace("virtual_router_id 51", "virtual_router_id 351"),
            dir.path(),
        );
        assert!(!ok, "keepalived -t must reject VRID 351");
    }
}

#[test]
fn haproxy_accepts_the_rendered_config() {
    let plan = plan_keepalived_haproxy();
    let dir = workdir();
    let ca = dir.path().join("ca.crt");
    let key = dir.path().join("ca.key");
    let (ok, text) = run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=kubernetes",
            "-days",
            "1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&ca));
    assert!(ok, "{text}");
    let cfg = String::from_utf8(
        plan.node("master1")
            .unwrap()
            .artifact(render::paths::HAPROXY_CFG)
            .unwrap()
            .contents
            .to_vec(),
    )
    .unwrap();
    assert!(
        cfg.contains("option httpchk GET /readyz") && cfg.contains("check-ssl verify required")
    );
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(
        &path,
        cfg.replace(render::paths::CA_CERT, ca.to_str().unwrap()),
    )
    .unwrap();
    let (ok, text) = run(Command::new("haproxy").arg("-c").arg("-f").arg(&path));
    assert!(ok, "haproxy -c failed:\n{text}");
    std::fs::write(
        &path,
        cfg.replace(render::paths::CA_CERT, ca.to_str().unwrap())
            .replace("balance roundrobin", "balance nonsense"),
    )
    .unwrap();
    let (ok, _) = run(Command::new("haproxy").arg("-c").arg("-f").arg(&path));
    assert!(!ok, "haproxy -c must reject a bad balance algorithm");
}

#[test]
fn failing_check_moves_the_vip_below_every_healthy_node() {
    let plan = plan_keepalived_haproxy();
    let prio = |n: &str| -> i32 {
        let c = String::from_utf8(
            plan.node(n)
                .unwrap()
                .artifact(render::paths::KEEPALIVED_CONF)
                .unwrap()
                .contents
                .to_vec(),
        )
        .unwrap();
        c.lines()
            .find_map(|l| l.trim().strip_prefix("priority "))
            .unwrap()
            .parse()
            .unwrap()
    };
    let c = String::from_utf8(
        plan.node("master1")
            .unwrap()
            .artifact(render::paths::KEEPALIVED_CONF)
            .unwrap()
            .contents
            .to_vec(),
    )
    .unwrap();
    let weight: i32 = c
        .lines()
        .find_map(|l| l.trim().strip_prefix("weight "))
        .unwrap()
        .parse()
        .unwrap();
    let (p1, p2, p3) = (prio("master1"), prio("master2"), prio("master3"));
    assert!(p1 > p2 && p2 > p3);
    assert!(
        p1 + weight < p3,
        "a failing master1 ({p1}{weight}) must fall below master3 ({p3})"
    );
}
