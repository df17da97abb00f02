//! Everything issued is checked with the openssl command line tool, not only our parser.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine;
use common::{assert_verifies, run, spec, x509_text};
use pki::kubeconfig::Kubeconfig;
use pki::{IssueOptions, KeyType, Store, discovery_hash};
use time::OffsetDateTime;

fn issue(kt: KeyType) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("pki"));
    store
        .issue(
            &spec(kt),
            OffsetDateTime::now_utc(),
            &IssueOptions::default(),
        )
        .unwrap();
    (dir, store)
}

/// Every leaf verifies against its CA for its purpose, and the text output shows the SANs,
/// key usages and subjects kubeadm would write.
fn check_layout(kt: KeyType) {
    let (_d, store) = issue(kt);
    let p = |rel: &str| store.root().join(rel);
    let ca = p("cluster/pki/ca.crt");
    let fp = p("cluster/pki/front-proxy-ca.crt");
    let eca = p("cluster/pki/etcd/ca.crt");
    let key_usage_leaf = match kt {
        KeyType::Rsa2048 => "Digital Signature, Key Encipherment\n",
        KeyType::EcdsaP256 => "Digital Signature\n",
    };
    let key_line = match kt {
        KeyType::Rsa2048 => "Public-Key: (2048 bit)",
        KeyType::EcdsaP256 => "NIST CURVE: P-256",
    };

    for (c, cn) in [
        (&ca, "kubernetes"),
        (&fp, "front-proxy-ca"),
        (&eca, "etcd-ca"),
    ] {
        let t = x509_text(c);
        assert!(t.contains("CA:TRUE"), "{t}");
        assert!(
            t.contains("Digital Signature, Key Encipherment, Certificate Sign"),
            "{t}"
        );
        assert!(t.contains(&format!("Subject: CN = {cn}\n")), "{t}");
        assert!(t.contains(key_line), "{t}");
        // CA validity: 10 years.
        let (_, end, _) = run(
            "openssl",
            &["x509", "-noout", "-enddate", "-in", c.to_str().unwrap()],
        );
        let year: i32 = end.trim().rsplit(' ').nth(1).unwrap().parse().unwrap();
        assert!(year >= OffsetDateTime::now_utc().year() + 9, "{end}");
    }

    // apiserver
    let api = p("cluster/pki/apiserver.crt");
    assert_verifies(&ca, &api, "sslserver");
    let t = x509_text(&api);
    for san in [
        "DNS:kubernetes,",
        "DNS:kubernetes.default,",
        "DNS:kubernetes.default.svc,",
        "DNS:kubernetes.default.svc.cluster.local",
        "IP Address:10.96.0.1",
        "IP Address:198.18.0.100",
        "DNS:m1",
        "DNS:m2",
        "DNS:m3",
        "IP Address:198.18.0.11",
        "IP Address:198.18.0.12",
        "IP Address:198.18.0.13",
        "DNS:api.example.com",
    ] {
        assert!(t.contains(san), "apiserver lacks {san}:\n{t}");
    }
    assert!(t.contains("TLS Web Server Authentication\n"), "{t}");
    assert!(!t.contains("TLS Web Client Authentication"), "{t}");
    assert!(t.contains(key_usage_leaf), "{t}");
    assert!(t.contains("CA:FALSE"), "{t}");
    assert!(t.contains("Subject: CN = kube-apiserver\n"), "{t}");
    assert!(t.contains("Issuer: CN = kubernetes\n"), "{t}");
    // Leaf validity: one year.
    let (_, end, _) = run(
        "openssl",
        &[
            "x509",
            "-noout",
            "-checkend",
            &(364 * 86400).to_string(),
            "-in",
            api.to_str().unwrap(),
        ],
    );
    assert!(end.contains("will not expire"), "{end}");
    let (ok, _, _) = run(
        "openssl",
        &[
            "x509",
            "-noout",
            "-checkend",
            &(366 * 86400).to_string(),
            "-in",
            api.to_str().unwrap(),
        ],
    );
    assert!(!ok, "apiserver valid for more than a year");

    // Clients.
    for (cert, signer, subject) in [
        (
            "cluster/pki/apiserver-kubelet-client.crt",
            &ca,
            "Subject: O = kubeadm:cluster-admins, CN = kube-apiserver-kubelet-client\n",
        ),
        (
            "cluster/pki/front-proxy-client.crt",
            &fp,
            "Subject: CN = front-proxy-client\n",
        ),
        (
            "cluster/pki/apiserver-etcd-client.crt",
            &eca,
            "Subject: CN = kube-apiserver-etcd-client\n",
        ),
        (
            "cluster/pki/etcd/healthcheck-client.crt",
            &eca,
            "Subject: CN = kube-etcd-healthcheck-client\n",
        ),
    ] {
        let c = p(cert);
        assert_verifies(signer, &c, "sslclient");
        let t = x509_text(&c);
        assert!(t.contains(subject), "{cert}:\n{t}");
        assert!(
            t.contains("TLS Web Client Authentication\n"),
            "{cert}:\n{t}"
        );
        assert!(!t.contains("TLS Web Server Authentication"), "{cert}:\n{t}");
        assert!(!t.contains("Subject Alternative Name"), "{cert}:\n{t}");
        assert!(t.contains(key_usage_leaf), "{cert}:\n{t}");
        // A client certificate is not a server certificate.
        let (ok, _, _) = run(
            "openssl",
            &[
                "verify",
                "-purpose",
                "sslserver",
                "-CAfile",
                signer.to_str().unwrap(),
                c.to_str().unwrap(),
            ],
        );
        assert!(!ok, "{cert} verified as a server certificate");
    }
    // Signed by the wrong CA: refused.
    let (ok, _, _) = run(
        "openssl",
        &[
            "verify",
            "-CAfile",
            ca.to_str().unwrap(),
            p("cluster/pki/front-proxy-client.crt").to_str().unwrap(),
        ],
    );
    assert!(!ok);

    // etcd members: server and peer, both usages, kubeadm's SANs.
    for (i, node) in ["m1", "m2", "m3"].iter().enumerate() {
        for kind in ["server", "peer"] {
            let c = p(&format!("members/{node}/pki/etcd/{kind}.crt"));
            assert_verifies(&eca, &c, "sslserver");
            assert_verifies(&eca, &c, "sslclient");
            let t = x509_text(&c);
            for san in [
                format!("DNS:{node}"),
                "DNS:localhost".into(),
                format!("IP Address:198.18.0.{}", 11 + i),
                "IP Address:127.0.0.1".into(),
                "IP Address:0:0:0:0:0:0:0:1".into(),
            ] {
                assert!(t.contains(&san), "{kind} of {node} lacks {san}:\n{t}");
            }
            assert!(
                t.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
                "{t}"
            );
            assert!(t.contains(&format!("Subject: CN = {node}\n")), "{t}");
        }
    }

    // Kubeconfigs: embedded CA is ca.crt, client certs verify and carry kubeadm's subjects,
    // and the key in the file belongs to the certificate.
    let ca_pem = fs::read(&ca).unwrap();
    for (file, subject, user) in [
        (
            "admin.conf",
            "Subject: O = kubeadm:cluster-admins, CN = kubernetes-admin\n",
            "kubernetes-admin",
        ),
        (
            "super-admin.conf",
            "Subject: O = system:masters, CN = kubernetes-super-admin\n",
            "kubernetes-super-admin",
        ),
        (
            "controller-manager.conf",
            "Subject: CN = system:kube-controller-manager\n",
            "system:kube-controller-manager",
        ),
        (
            "scheduler.conf",
            "Subject: CN = system:kube-scheduler\n",
            "system:kube-scheduler",
        ),
    ] {
        let kc =
            Kubeconfig::parse(&fs::read_to_string(p(&format!("cluster/{file}"))).unwrap()).unwrap();
        assert_eq!(kc.clusters[0].cluster.server, "https://198.18.0.100:16443");
        assert_eq!(kc.current_context, format!("{user}@kubernetes"));
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(
            b64.decode(
                kc.clusters[0]
                    .cluster
                    .certificate_authority_data
                    .as_ref()
                    .unwrap()
            )
            .unwrap(),
            ca_pem
        );
        let u = &kc.users[0];
        assert_eq!(u.name, user);
        let cert = store.root().join(format!("{file}.client.crt"));
        let key = store.root().join(format!("{file}.client.key"));
        fs::write(
            &cert,
            b64.decode(u.user.client_certificate_data.as_ref().unwrap())
                .unwrap(),
        )
        .unwrap();
        fs::write(
            &key,
            b64.decode(u.user.client_key_data.as_ref().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_verifies(&ca, &cert, "sslclient");
        let t = x509_text(&cert);
        assert!(t.contains(subject), "{file}:\n{t}");
        let (_, a, _) = run(
            "openssl",
            &["x509", "-noout", "-pubkey", "-in", cert.to_str().unwrap()],
        );
        let (_, b, _) = run(
            "openssl",
            &["pkey", "-pubout", "-in", key.to_str().unwrap()],
        );
        assert_eq!(a, b, "{file}: key does not match certificate");
    }

    // sa.pub is the public half of sa.key.
    let (_, a, _) = run(
        "openssl",
        &[
            "pkey",
            "-pubout",
            "-in",
            p("cluster/pki/sa.key").to_str().unwrap(),
        ],
    );
    assert_eq!(a.as_bytes(), fs::read(p("cluster/pki/sa.pub")).unwrap());
    // Every private key parses with openssl.
    for k in [
        "cluster/pki/ca.key",
        "cluster/pki/apiserver.key",
        "members/m2/pki/etcd/peer.key",
    ] {
        let (ok, _, err) = run(
            "openssl",
            &["pkey", "-noout", "-in", p(k).to_str().unwrap()],
        );
        assert!(ok, "{k}: {err}");
    }
}

#[test]
fn rsa_layout_verifies_with_openssl() {
    check_layout(KeyType::Rsa2048);
}

#[test]
fn ecdsa_layout_verifies_with_openssl() {
    check_layout(KeyType::EcdsaP256);
}

/// The seed's pipeline, run by sh, piping openssl into openssl.
fn pipeline(ca: &Path, pkey_cmd: &str) -> String {
    let script = format!(
        "openssl x509 -pubkey -in '{}' | {pkey_cmd} -pubin -outform der 2>/dev/null | openssl dgst -sha256 -hex | sed 's/^.* //'",
        ca.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .stderr(Stdio::inherit())
        .output()
        .expect("sh");
    assert!(out.status.success());
    let h = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(h.len(), 64, "openssl pipeline output {h:?}");
    h
}

#[test]
fn discovery_hash_matches_the_seed_openssl_pipeline() {
    for (kt, cmds) in [
        (KeyType::Rsa2048, &["openssl rsa", "openssl pkey"][..]),
        (KeyType::EcdsaP256, &["openssl ec", "openssl pkey"][..]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        store
            .issue(
                &spec(kt),
                OffsetDateTime::now_utc(),
                &IssueOptions::default(),
            )
            .unwrap();
        let ca = dir.path().join("cluster/pki/ca.crt");
        let ours = discovery_hash(&fs::read(&ca).unwrap()).unwrap();
        for cmd in cmds {
            assert_eq!(
                ours,
                format!("sha256:{}", pipeline(&ca, cmd)),
                "{kt} with {cmd}"
            );
        }
        // A different CA gives a different hash.
        let other = dir.path().join("cluster/pki/front-proxy-ca.crt");
        assert_ne!(ours, format!("sha256:{}", pipeline(&other, cmds[1])));
    }
}
