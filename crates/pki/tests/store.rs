//! The store: idempotence, reissue reasons, modes, CA protection, renew, per-node artifacts,
//! check.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{fixed_now, spec};
use pki::x509::{parse_cert, pem_certs, verify_signed_by};
use pki::{
    Action, CaKind, IssueOptions, KeyType, NodeId, PkiError, RenewOptions, Store,
    inspect_node_tree, inspect_store,
};
use time::Duration;

/// Every file under `dir`, relative path -> bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn changed(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let mut v: Vec<String> = b
        .iter()
        .filter(|(k, v)| a.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect();
    v.extend(a.keys().filter(|k| !b.contains_key(*k)).cloned());
    v.sort();
    v
}

fn cert_der(path: &Path) -> Vec<u8> {
    pem_certs(&fs::read(path).unwrap()).unwrap().remove(0)
}

fn opts() -> IssueOptions {
    IssueOptions::default()
}

#[test]
fn issuing_twice_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path());
    let s = spec(KeyType::Rsa2048);
    let first = store.issue(&s, fixed_now(), &opts()).unwrap();
    assert!(
        first.entries.iter().all(|e| e.action == Action::Created),
        "{first}"
    );
    // 3 CAs + sa + 5 shared leaves + 6 member leaves + 4 kubeconfigs.
    assert_eq!(first.entries.len(), 19, "{first}");
    let before = snapshot(d.path());
    let second = store
        .issue(&s, fixed_now() + Duration::hours(1), &opts())
        .unwrap();
    assert_eq!(second.changed().count(), 0, "{second}");
    assert!(
        second.node_files_written.values().all(|n| *n == 0),
        "{second}"
    );
    assert!(second.warnings.is_empty(), "{second}");
    let after = snapshot(d.path());
    assert_eq!(changed(&before, &after), Vec::<String>::new());
    assert_eq!(before["cluster/pki/ca.crt"], after["cluster/pki/ca.crt"]);
}

#[test]
fn vip_change_reissues_only_the_apiserver_certificate() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path());
    let mut s = spec(KeyType::EcdsaP256);
    store.issue(&s, fixed_now(), &opts()).unwrap();
    let before = snapshot(d.path());
    s.endpoint.vip = "198.18.0.200".parse().unwrap();
    let r = store.issue(&s, fixed_now(), &opts()).unwrap();

    let reissued: Vec<&str> = r
        .entries
        .iter()
        .filter(|e| matches!(e.action, Action::Reissued(_)))
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(reissued, ["apiserver"], "{r}");
    let Action::Reissued(why) = &r.get("apiserver").unwrap().action else {
        unreachable!()
    };
    assert!(
        why.contains("added IP:198.18.0.200") && why.contains("removed IP:198.18.0.100"),
        "{why}"
    );
    // Kubeconfigs keep their credentials; only the server line changes.
    for k in [
        "admin.conf",
        "super-admin.conf",
        "controller-manager.conf",
        "scheduler.conf",
    ] {
        match &r.get(k).unwrap().action {
            Action::Rewritten(w) => assert!(w.contains("https://198.18.0.200:16443"), "{w}"),
            a => panic!("{k}: {a}"),
        }
    }
    let after = snapshot(d.path());
    let mut expected = vec![
        "cluster/pki/apiserver.crt".to_string(),
        "cluster/pki/apiserver.key".into(),
    ];
    for k in [
        "admin.conf",
        "controller-manager.conf",
        "scheduler.conf",
        "super-admin.conf",
    ] {
        expected.push(format!("cluster/{k}"));
    }
    for n in ["m1", "m2", "m3"] {
        for f in [
            "admin.conf",
            "controller-manager.conf",
            "pki/apiserver.crt",
            "pki/apiserver.key",
            "scheduler.conf",
        ] {
            expected.push(format!("nodes/{n}/{f}"));
        }
    }
    expected.push("nodes/m1/super-admin.conf".into());
    expected.sort();
    assert_eq!(changed(&before, &after), expected);
    let old = String::from_utf8(before["cluster/admin.conf"].clone()).unwrap();
    let new = String::from_utf8(after["cluster/admin.conf"].clone()).unwrap();
    assert_eq!(old.replace("198.18.0.100", "198.18.0.200"), new);
    let info = parse_cert(&cert_der(&d.path().join("cluster/pki/apiserver.crt"))).unwrap();
    assert!(
        info.sans
            .contains(&pki::San::Ip("198.18.0.200".parse().unwrap()))
    );
}

#[test]
fn adding_a_member_creates_its_certificates_and_extends_the_apiserver_sans() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path());
    let mut s = spec(KeyType::EcdsaP256);
    store.issue(&s, fixed_now(), &opts()).unwrap();
    let m4 = NodeId::new("m4", "198.18.0.14".parse().unwrap());
    s.control_plane.push(m4.clone());
    s.etcd.push(m4);
    let r = store.issue(&s, fixed_now(), &opts()).unwrap();
    let changed: Vec<String> = r
        .changed()
        .map(|e| format!("{} {}", e.name, e.action))
        .collect();
    assert_eq!(
        changed,
        [
            "apiserver reissued: SANs changed: added DNS:m4, IP:198.18.0.14",
            "etcd/server[m4] created",
            "etcd/peer[m4] created"
        ],
        "{r}"
    );
    assert!(d.path().join("nodes/m4/pki/etcd/peer.key").exists());
}

#[test]
fn keys_and_kubeconfigs_are_0600_certificates_0644() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path());
    store
        .issue(&spec(KeyType::EcdsaP256), fixed_now(), &opts())
        .unwrap();
    let files = snapshot(d.path());
    let mut keys = 0;
    for f in files.keys() {
        let mode = fs::metadata(d.path().join(f)).unwrap().permissions().mode() & 0o7777;
        let want = if f.ends_with(".key") || f.ends_with(".conf") {
            0o600
        } else {
            0o644
        };
        assert_eq!(mode, want, "{f} has mode {mode:o}");
        keys += usize::from(f.ends_with(".key"));
    }
    assert!(keys > 40, "{keys}");

    // A key found with a wider mode is narrowed and reported.
    let k = d.path().join("cluster/pki/apiserver.key");
    fs::set_permissions(&k, fs::Permissions::from_mode(0o644)).unwrap();
    let r = store
        .issue(&spec(KeyType::EcdsaP256), fixed_now(), &opts())
        .unwrap();
    assert_eq!(
        fs::metadata(&k).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("apiserver.key had mode 644")),
        "{r}"
    );
}

#[test]
fn a_ca_is_never_replaced_silently() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path());
    let s = spec(KeyType::EcdsaP256);
    store.issue(&s, fixed_now(), &opts()).unwrap();
    let before = snapshot(d.path());

    // Key missing.
    fs::remove_file(d.path().join("cluster/pki/ca.key")).unwrap();
    let err = store.issue(&s, fixed_now(), &opts()).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, PkiError::CaNeedsReplacement { ref ca, .. } if ca == "ca"),
        "{msg}"
    );
    assert!(
        msg.contains("ca.key is missing")
            && msg.contains("discovery hash")
            && msg.contains("--replace-ca ca"),
        "{msg}"
    );
    let mut now_files = snapshot(d.path());
    now_files.insert(
        "cluster/pki/ca.key".into(),
        before["cluster/pki/ca.key"].clone(),
    );
    assert_eq!(
        changed(&before, &now_files),
        Vec::<String>::new(),
        "nothing written on refusal"
    );

    // Garbage certificate: an error, not a panic.
    fs::write(
        d.path().join("cluster/pki/ca.key"),
        &before["cluster/pki/ca.key"],
    )
    .unwrap();
    fs::write(
        d.path().join("cluster/pki/etcd/ca.crt"),
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let msg = store
        .issue(&s, fixed_now(), &opts())
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("etcd-ca") && msg.contains("quorum"),
        "{msg}"
    );
    fs::write(
        d.path().join("cluster/pki/etcd/ca.crt"),
        &before["cluster/pki/etcd/ca.crt"],
    )
    .unwrap();

    // Expired (eleven years later).
    let later = fixed_now() + Duration::days(11 * 365);
    assert!(
        store
            .issue(&s, later, &opts())
            .unwrap_err()
            .to_string()
            .contains("expired")
    );

    // Explicit replacement of the cluster CA: old files kept, dependants reissued, etcd untouched.
    let o = IssueOptions {
        replace_ca: [CaKind::Ca].into(),
        ..opts()
    };
    let r = store.issue(&s, fixed_now(), &o).unwrap();
    assert!(
        matches!(r.get("ca").unwrap().action, Action::Replaced(_)),
        "{r}"
    );
    let kept = d.path().join(format!(
        "replaced/{}/cluster/pki/ca.crt",
        fixed_now().unix_timestamp()
    ));
    assert_eq!(fs::read(kept).unwrap(), before["cluster/pki/ca.crt"]);
    assert_ne!(
        fs::read(d.path().join("cluster/pki/ca.crt")).unwrap(),
        before["cluster/pki/ca.crt"]
    );
    for n in [
        "apiserver",
        "apiserver-kubelet-client",
        "admin.conf",
        "scheduler.conf",
    ] {
        assert_eq!(
            r.get(n).unwrap().action,
            Action::Reissued("not signed by the current CA".into()),
            "{n}: {r}"
        );
    }
    for n in [
        "front-proxy-ca",
        "etcd-ca",
        "sa",
        "front-proxy-client",
        "etcd/server[m2]",
        "apiserver-etcd-client",
    ] {
        assert_eq!(r.get(n).unwrap().action, Action::Reused, "{n}: {r}");
    }
    // Replacing again in the same second keeps the first backup too.
    let second_ca = fs::read(d.path().join("cluster/pki/ca.crt")).unwrap();
    let r = store.issue(&s, fixed_now(), &o).unwrap();
    assert!(
        matches!(&r.get("ca").unwrap().action, Action::Replaced(w) if w.contains(&format!("replaced/{}-1/", fixed_now().unix_timestamp()))),
        "{r}"
    );
    let kept2 = d.path().join(format!(
        "replaced/{}-1/cluster/pki/ca.crt",
        fixed_now().unix_timestamp()
    ));
    assert_eq!(fs::read(kept2).unwrap(), second_ca);
    let ca = cert_der(&d.path().join("cluster/pki/ca.crt"));
    assert!(verify_signed_by(
        &cert_der(&d.path().join("nodes/m3/pki/apiserver.crt")),
        &ca
    ));
}

#[test]
fn the_service_account_key_is_kept_and_its_public_half_derived_again() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path());
    let s = spec(KeyType::EcdsaP256);
    store.issue(&s, fixed_now(), &opts()).unwrap();
    let pubkey = fs::read(d.path().join("cluster/pki/sa.pub")).unwrap();
    fs::remove_file(d.path().join("cluster/pki/sa.pub")).unwrap();
    let r = store.issue(&s, fixed_now(), &opts()).unwrap();
    assert!(
        matches!(r.get("sa").unwrap().action, Action::Rewritten(_)),
        "{r}"
    );
    assert_eq!(
        fs::read(d.path().join("cluster/pki/sa.pub")).unwrap(),
        pubkey
    );
    fs::remove_file(d.path().join("cluster/pki/sa.key")).unwrap();
    let msg = store
        .issue(&s, fixed_now(), &opts())
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("sa ") && msg.contains("service-account token"),
        "{msg}"
    );
}

#[test]
fn bad_or_expiring_leaves_are_reissued_with_a_reason() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path());
    let s = spec(KeyType::EcdsaP256);
    store.issue(&s, fixed_now(), &opts()).unwrap();
    // Someone else's key.
    let other = d.path().join("members/m2/pki/etcd/peer.key");
    fs::copy(d.path().join("members/m1/pki/etcd/peer.key"), &other).unwrap();
    // Garbage certificate.
    fs::write(d.path().join("cluster/pki/front-proxy-client.crt"), b"junk").unwrap();
    // Same issuer name, same key, but one bit of the signature flipped: the signature check
    // is real, not a comparison of names.
    let api = d.path().join("cluster/pki/apiserver.crt");
    let mut der = cert_der(&api);
    let last = der.len() - 1;
    der[last] ^= 1;
    fs::write(&api, pem::encode(&pem::Pem::new("CERTIFICATE", der))).unwrap();
    let r = store.issue(&s, fixed_now(), &opts()).unwrap();
    assert_eq!(
        r.get("etcd/peer[m2]").unwrap().action,
        Action::Reissued("key does not match the certificate".into())
    );
    assert!(
        matches!(&r.get("front-proxy-client").unwrap().action, Action::Reissued(w) if w.contains("unreadable")),
        "{r}"
    );
    assert_eq!(
        r.get("apiserver").unwrap().action,
        Action::Reissued("not signed by the current CA".into())
    );
    assert_eq!(r.changed().count(), 3, "{r}");

    // 340 days later every leaf is within 30 days of expiry; the CAs are kept.
    let r = store
        .issue(&s, fixed_now() + Duration::days(340), &opts())
        .unwrap();
    assert!(
        matches!(&r.get("apiserver").unwrap().action, Action::Reissued(w) if w.starts_with("expires in")),
        "{r}"
    );
    assert!(
        matches!(&r.get("admin.conf").unwrap().action, Action::Reissued(w) if w.starts_with("expires in")),
        "{r}"
    );
    for ca in ["ca", "front-proxy-ca", "etcd-ca", "sa"] {
        assert_eq!(r.get(ca).unwrap().action, Action::Reused);
    }

    // Key type change in the spec: leaves follow, the CA stays and a warning says so.
    let mut rsa = s.clone();
    rsa.key_type = KeyType::Rsa2048;
    let r = store.issue(&rsa, fixed_now(), &opts()).unwrap();
    assert!(
        matches!(&r.get("scheduler.conf").unwrap().action, Action::Reissued(w) if w.contains("key type")),
        "{r}"
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("ca has a ECDSA-P256 key")),
        "{r}"
    );
}

#[test]
fn per_node_artifacts_follow_the_roles() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path());
    // Two control-plane nodes, external etcd on three other nodes.
    let mut s = spec(KeyType::EcdsaP256);
    s.control_plane.truncate(2);
    s.etcd = (1..=3)
        .map(|i| NodeId::new(format!("e{i}"), format!("10.0.1.{i}").parse().unwrap()))
        .collect();
    store.issue(&s, fixed_now(), &opts()).unwrap();
    let arts = store.node_artifacts(&s).unwrap();
    assert_eq!(
        arts.keys().collect::<Vec<_>>(),
        ["e1", "e2", "e3", "m1", "m2"]
    );
    let names = |n: &str| -> Vec<String> {
        arts[n]
            .iter()
            .map(|a| a.path.display().to_string())
            .collect()
    };
    let m1 = names("m1");
    let expected_cp: Vec<String> = [
        "admin.conf",
        "controller-manager.conf",
        "pki/apiserver-etcd-client.crt",
        "pki/apiserver-etcd-client.key",
        "pki/apiserver-kubelet-client.crt",
        "pki/apiserver-kubelet-client.key",
        "pki/apiserver.crt",
        "pki/apiserver.key",
        "pki/ca.crt",
        "pki/ca.key",
        "pki/etcd/ca.crt",
        "pki/front-proxy-ca.crt",
        "pki/front-proxy-ca.key",
        "pki/front-proxy-client.crt",
        "pki/front-proxy-client.key",
        "pki/sa.key",
        "pki/sa.pub",
        "scheduler.conf",
        "super-admin.conf",
    ]
    .iter()
    .map(|p| format!("/etc/kubernetes/{p}"))
    .collect();
    assert_eq!(m1, expected_cp);
    let m2 = names("m2");
    assert_eq!(m2.len(), expected_cp.len() - 1);
    assert!(
        !m2.iter().any(|p| p.ends_with("super-admin.conf")),
        "super-admin.conf only on the first node"
    );
    let e2 = names("e2");
    assert_eq!(
        e2,
        [
            "pki/etcd/ca.crt",
            "pki/etcd/healthcheck-client.crt",
            "pki/etcd/healthcheck-client.key",
            "pki/etcd/peer.crt",
            "pki/etcd/peer.key",
            "pki/etcd/server.crt",
            "pki/etcd/server.key"
        ]
        .map(|p| format!("/etc/kubernetes/{p}"))
    );
    for (node, files) in &arts {
        for a in files {
            let p = a.path.display().to_string();
            let want = if p.ends_with(".key") || p.ends_with(".conf") {
                0o600
            } else {
                0o644
            };
            assert_eq!(a.mode, want, "{node} {p}");
            // The node tree holds the same bytes.
            let rel = a.path.strip_prefix("/etc/kubernetes").unwrap();
            assert_eq!(
                fs::read(store.node_dir(node).join(rel)).unwrap(),
                a.bytes,
                "{node} {p}"
            );
        }
    }
    let e2_server = arts["e2"]
        .iter()
        .find(|a| a.path.ends_with("pki/etcd/server.crt"))
        .unwrap();
    let info = parse_cert(&pem_certs(&e2_server.bytes).unwrap()[0]).unwrap();
    assert_eq!(info.cn.as_deref(), Some("e2"));

    // Stacked: a control-plane node that is an etcd member also gets etcd/ca.key (as
    // kubeadm --upload-certs shares it) and its own member certificates.
    let stacked = spec(KeyType::EcdsaP256);
    let d2 = tempfile::tempdir().unwrap();
    let store2 = Store::open(d2.path());
    store2.issue(&stacked, fixed_now(), &opts()).unwrap();
    let arts = store2.node_artifacts(&stacked).unwrap();
    let m3: Vec<String> = arts["m3"]
        .iter()
        .map(|a| a.path.display().to_string())
        .collect();
    for f in [
        "pki/etcd/ca.key",
        "pki/etcd/server.key",
        "pki/etcd/peer.crt",
        "pki/etcd/healthcheck-client.crt",
        "pki/apiserver.crt",
    ] {
        assert!(
            m3.contains(&format!("/etc/kubernetes/{f}")),
            "{f} missing: {m3:?}"
        );
    }
    assert_eq!(m3.len(), 18 + 7);

    // Before `issue`, there is nothing to hand out.
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        Store::open(empty.path()).node_artifacts(&stacked),
        Err(PkiError::NotIssued(_))
    ));
}

#[test]
fn kubernetes_before_1_29_has_no_super_admin_and_admin_is_system_masters() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path());
    let mut s = spec(KeyType::EcdsaP256);
    s.kubernetes_version = pki::KubeVersion::new(1, 28);
    let r = store.issue(&s, fixed_now(), &opts()).unwrap();
    assert!(r.get("super-admin.conf").is_none());
    let rows = inspect_store(d.path(), fixed_now()).unwrap().rows;
    let admin = rows
        .iter()
        .find(|r| r.source == "cluster/admin.conf#client[kubernetes-admin]")
        .unwrap();
    assert_eq!(admin.subject, "O=system:masters, CN=kubernetes-admin");
    let kc = rows
        .iter()
        .find(|r| r.source == "cluster/pki/apiserver-kubelet-client.crt")
        .unwrap();
    assert_eq!(
        kc.subject,
        "O=system:masters, CN=kube-apiserver-kubelet-client"
    );
}

#[test]
fn renew_reissues_leaves_with_the_same_ca() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path());
    let s = spec(KeyType::EcdsaP256);
    store.issue(&s, fixed_now(), &opts()).unwrap();
    let before = snapshot(d.path());
    let later = fixed_now() + Duration::days(200);

    let r = store
        .renew(later, Some("apiserver"), &RenewOptions::default())
        .unwrap();
    assert_eq!(r.entries.len(), 1);
    let mut expected = vec![
        "cluster/pki/apiserver.crt".to_string(),
        "cluster/pki/apiserver.key".into(),
    ];
    for n in ["m1", "m2", "m3"] {
        expected.push(format!("nodes/{n}/pki/apiserver.crt"));
        expected.push(format!("nodes/{n}/pki/apiserver.key"));
    }
    expected.sort();
    let mid = snapshot(d.path());
    assert_eq!(changed(&before, &mid), expected);
    let old = parse_cert(&pem_certs(&before["cluster/pki/apiserver.crt"]).unwrap()[0]).unwrap();
    let new = parse_cert(&cert_der(&d.path().join("cluster/pki/apiserver.crt"))).unwrap();
    assert_eq!(old.sans, new.sans);
    assert_eq!(old.subject, new.subject);
    assert_ne!(old.public_key, new.public_key, "new key");
    assert_eq!(
        new.not_after - new.not_before,
        old.not_after - old.not_before,
        "same validity period"
    );
    assert_eq!(new.not_after, later + Duration::days(365));
    assert!(verify_signed_by(
        &new.der,
        &pem_certs(&before["cluster/pki/ca.crt"]).unwrap()[0]
    ));

    // Base name: every member.
    let r = store
        .renew(later, Some("etcd/server"), &RenewOptions::default())
        .unwrap();
    assert_eq!(
        r.entries
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>(),
        ["etcd/server[m1]", "etcd/server[m2]", "etcd/server[m3]"]
    );

    // Everything: CAs untouched, every leaf and kubeconfig new; a following issue reuses all.
    let r = store
        .renew(
            later,
            None,
            &RenewOptions {
                leaf_validity: Some(std::time::Duration::from_secs(90 * 86400)),
            },
        )
        .unwrap();
    assert_eq!(r.entries.len(), 15, "{r}");
    let after = snapshot(d.path());
    for ca in [
        "cluster/pki/ca.crt",
        "cluster/pki/ca.key",
        "cluster/pki/etcd/ca.crt",
        "cluster/pki/front-proxy-ca.key",
        "cluster/pki/sa.key",
    ] {
        assert_eq!(before[ca], after[ca], "{ca}");
    }
    for f in [
        "cluster/admin.conf",
        "members/m2/pki/etcd/peer.crt",
        "nodes/m1/super-admin.conf",
        "nodes/m3/pki/etcd/healthcheck-client.key",
    ] {
        assert_ne!(before[f], after[f], "{f}");
    }
    let check = inspect_store(d.path(), later).unwrap();
    let admin = check
        .rows
        .iter()
        .find(|r| r.source.starts_with("cluster/admin.conf#client"))
        .unwrap();
    assert_eq!(admin.days_left, 90);
    let again = store
        .issue(
            &s,
            later,
            &IssueOptions {
                renew_before: std::time::Duration::from_secs(86400),
                ..opts()
            },
        )
        .unwrap();
    assert_eq!(again.changed().count(), 0, "{again}");

    let err = store
        .renew(later, Some("bogus"), &RenewOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bogus") && err.contains("etcd/peer[m1]"),
        "{err}"
    );
    assert!(matches!(
        Store::open(d.path().join("none")).renew(later, None, &RenewOptions::default()),
        Err(PkiError::NotIssued(_))
    ));
}

#[test]
fn check_lists_every_certificate_including_kubeconfig_ones() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path());
    store
        .issue(&spec(KeyType::EcdsaP256), fixed_now(), &opts())
        .unwrap();
    let r = inspect_store(d.path(), fixed_now()).unwrap();
    // 3 CAs + 5 shared leaves + 6 member leaves + 4 kubeconfigs x (CA + client).
    assert_eq!(r.rows.len(), 22, "{}", r.table());
    assert!(r.errors.is_empty());
    assert!(r.ok(30));
    let expiring: Vec<&str> = r.expiring(366).iter().map(|x| x.source.as_str()).collect();
    assert_eq!(
        expiring.len(),
        22 - 3 - 4,
        "leaves expire in 365 days, CAs in 10 years: {expiring:?}"
    );
    let api = r
        .rows
        .iter()
        .find(|x| x.source == "cluster/pki/apiserver.crt")
        .unwrap();
    assert_eq!(api.days_left, 365);
    assert_eq!(api.issuer, "CN=kubernetes");
    assert!(api.sans.contains(&"IP:198.18.0.100".to_string()));
    let table = r.table();
    assert!(table.starts_with("SOURCE"), "{table}");
    assert!(
        table.contains("cluster/super-admin.conf#client[kubernetes-super-admin]"),
        "{table}"
    );

    // A node tree, with a kubelet.conf that references a client certificate file, and a
    // broken file that becomes an error row.
    let node = d.path().join("nodes/m1");
    fs::write(
        node.join("kubelet.conf"),
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\ncurrent-context: ''\nusers:\n- name: default-auth\n  user:\n    client-certificate: pki/apiserver-kubelet-client.crt\n",
    )
    .unwrap();
    let r = inspect_node_tree(&node, fixed_now() + Duration::days(400)).unwrap();
    assert!(
        r.rows.iter().any(|x| x
            .source
            .starts_with("kubelet.conf#client[default-auth] -> ")),
        "{}",
        r.table()
    );
    assert!(
        r.rows
            .iter()
            .any(|x| x.source == "admin.conf#client[kubernetes-admin]" && x.days_left == -35)
    );
    assert!(!r.ok(0));
    fs::write(node.join("pki/broken.crt"), "nope").unwrap();
    let r = inspect_node_tree(&node, fixed_now()).unwrap();
    assert_eq!(r.errors.len(), 1);
    assert!(!r.ok(0));
    assert!(inspect_node_tree(&d.path().join("missing"), fixed_now()).is_err());
}

#[test]
fn a_store_belongs_to_one_cluster() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path());
    let prod = spec(KeyType::EcdsaP256);
    store.issue(&prod, fixed_now(), &opts()).unwrap();
    assert_eq!(
        fs::read_to_string(d.path().join(pki::store::CLUSTER_MARKER)).unwrap(),
        "kubernetes\n"
    );
    let before = snapshot(d.path());

    // Another inventory beside the first one: another cluster name, other nodes.
    let mut lab = spec(KeyType::EcdsaP256);
    lab.cluster_name = "lab".into();
    lab.control_plane.truncate(1);
    lab.control_plane[0].name = "cp1".into();
    lab.etcd = lab.control_plane.clone();
    for err in [
        store.node_artifacts(&lab).unwrap_err(),
        store.issue(&lab, fixed_now(), &opts()).unwrap_err(),
    ] {
        assert!(matches!(err, PkiError::OtherCluster { .. }), "{err}");
        let msg = err.to_string();
        assert!(!msg.contains('\n'), "one line: {msg}");
        assert!(
            msg.contains("belongs to cluster \"kubernetes\", not \"lab\""),
            "{msg}"
        );
        assert!(msg.contains("--pki-dir"), "says what to do: {msg}");
    }
    assert_eq!(changed(&before, &snapshot(d.path())), Vec::<String>::new());
    // Its own cluster still works.
    assert_eq!(store.node_artifacts(&prod).unwrap().len(), 3);
}

#[test]
fn a_store_without_a_cluster_name_is_adopted() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path());
    let s = spec(KeyType::EcdsaP256);
    store.issue(&s, fixed_now(), &opts()).unwrap();
    // As written before stores named their cluster.
    fs::remove_file(d.path().join(pki::store::CLUSTER_MARKER)).unwrap();
    let before = snapshot(d.path());
    assert_eq!(store.node_artifacts(&s).unwrap().len(), 3);
    let again = store.issue(&s, fixed_now(), &opts()).unwrap();
    assert_eq!(again.changed().count(), 0, "{again}");
    assert_eq!(
        changed(&before, &snapshot(d.path())),
        vec![pki::store::CLUSTER_MARKER.to_string()]
    );
    let mut other = s.clone();
    other.cluster_name = "other".into();
    assert!(matches!(
        store.node_artifacts(&other),
        Err(PkiError::OtherCluster { .. })
    ));
}
