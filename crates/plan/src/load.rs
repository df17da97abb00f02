//! The Plan's run-time inputs, read from disk: a freshly minted bootstrap token (never a
//! well-known one), the PKI store's files and CA hash once issued, the offline bundle. The one
//! module of this crate that does I/O; `build` stays pure.

use std::path::{Path, PathBuf};

use inventory::{Inventory, PackageSource};

use crate::{Artifact, Bundle, BundleFile, BundleImage, Inputs, KubehaBundle};

#[derive(Debug, thiserror::Error)]
pub enum InputsError {
    #[error("cannot mint a bootstrap token: {0}")]
    Token(#[source] pki::PkiError),
    #[error("PKI store {}: {source} (run `kubeha pki issue -f FILE --dir {}`)", dir.display(), dir.display())]
    Pki {
        dir: PathBuf,
        #[source]
        source: pki::PkiError,
    },
    #[error("packages.bundle {}: {source} (give a directory of .deb files, relative to the inventory)", dir.display())]
    Bundle {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("packages.bundle {}: {source}", dir.display())]
    KubehaBundle {
        dir: PathBuf,
        #[source]
        source: ::bundle::BundleError,
    },
    #[error("packages.bundle {}: a bundle of Kubernetes {have}, the inventory says {want}: build one with `kubeha bundle build` for {want}", dir.display())]
    BundleVersion {
        dir: PathBuf,
        have: String,
        want: String,
    },
    #[error("packages.bundle {}: no .deb files there (kubelet, kubeadm, kubectl, containerd and their dependencies)", dir.display())]
    EmptyBundle { dir: PathBuf },
}

/// Where the PKI store of an inventory lives unless told otherwise: beside the file.
/// Builds the offline bundle an inventory needs (`kubeha bundle build`): the binaries in
/// `binaries` (scripts/k8s-binaries.sh's output) and one image per name `kubeadm config images
/// list` gives for the inventory's init configuration, into `out`.
pub fn build_bundle(
    inv: &Inventory,
    binaries: &Path,
    out: &Path,
) -> Result<bundle::Manifest, bundle::BundleError> {
    let config = render::kubeadm::init_config(
        inv,
        inv.first_control_plane(),
        &render::Inputs::placeholder(),
    );
    let text = String::from_utf8_lossy(&config.contents);
    let images = bundle::kubeadm_images(&binaries.join("kubeadm"), &text)?;
    bundle::build(
        binaries,
        &inv.cluster.kubernetes_version.to_string(),
        &images,
        out,
    )
}

pub fn default_pki_dir(inventory: &Path) -> PathBuf {
    inventory_dir(inventory).join("pki")
}

/// The directory of the inventory file (relative paths in it are relative to that).
pub fn inventory_dir(inventory: &Path) -> &Path {
    inventory
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Everything `build` needs besides the inventory. `kubeha_binary` stays `None`: only `up`
/// carries the running binary.
pub fn inputs(
    inv: &Inventory,
    inventory_path: &Path,
    pki_dir: &Path,
) -> Result<Inputs, InputsError> {
    let now = pki::time::OffsetDateTime::now_utc();
    let token = pki::generate_token(std::time::Duration::from_secs(2 * 3600), now)
        .map_err(InputsError::Token)?;
    let issued = pki_dir.join(pki::CaKind::Ca.cert_rel()).exists();
    let pki_files = if issued {
        Some(
            crate::pki::artifacts(&pki::Store::open(pki_dir), inv).map_err(|source| {
                InputsError::Pki {
                    dir: pki_dir.to_path_buf(),
                    source,
                }
            })?,
        )
    } else {
        None
    };
    let bundle = bundle(inv, inventory_path)?;
    let etcd_binary = match bundle {
        Bundle::Kubeha(_) => render::paths::ETCD_BUNDLE_BINARY,
        Bundle::None | Bundle::Debs(_) => render::paths::ETCD_PACKAGE_BINARY,
    };
    Ok(Inputs {
        render: render::Inputs {
            bootstrap_token: token.token.to_string(),
            ca_cert_hash: crate::pki::ca_hash(pki_dir),
            etcd_binary: etcd_binary.to_string(),
        },
        pki: pki_files,
        kubeha_binary: None,
        bundle,
    })
}

/// What `packages.bundle` (relative to the inventory) holds, as files for the nodes: a kubeha
/// bundle (its manifest's files, sizes checked here, digests on the nodes) or .deb files.
fn bundle(inv: &Inventory, inventory_path: &Path) -> Result<Bundle, InputsError> {
    let Some(dir) = inv
        .packages
        .bundle
        .as_ref()
        .filter(|_| inv.packages.source == PackageSource::Bundle)
    else {
        return Ok(Bundle::None);
    };
    let dir = inventory_dir(inventory_path).join(dir);
    if ::bundle::is_bundle(&dir) {
        return kubeha_bundle(&format!("v{}", inv.cluster.kubernetes_version), &dir)
            .map(Bundle::Kubeha);
    }
    let cannot = |source| InputsError::Bundle {
        dir: dir.clone(),
        source,
    };
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(cannot)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort();
    if debs.is_empty() {
        return Err(InputsError::EmptyBundle { dir });
    }
    debs.iter()
        .map(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            Ok(Artifact {
                path: format!("{}/{name}", render::paths::BUNDLE_DIR),
                mode: 0o644,
                owner: "root:root".to_string(),
                contents: std::fs::read(p).map_err(cannot)?.into(),
                sensitive: false,
                purpose: "offline package from packages.bundle".to_string(),
            })
        })
        .collect::<Result<_, _>>()
        .map(Bundle::Debs)
}

/// The kubeha bundle in `dir`, which must hold Kubernetes `want` (`v1.34.4`).
fn kubeha_bundle(want: &str, dir: &Path) -> Result<KubehaBundle, InputsError> {
    let bad = |source: ::bundle::BundleError| InputsError::KubehaBundle {
        dir: dir.to_path_buf(),
        source,
    };
    let manifest = ::bundle::read_manifest(dir).map_err(bad)?;
    if manifest.kubernetes_version != want {
        return Err(InputsError::BundleVersion {
            dir: dir.to_path_buf(),
            have: manifest.kubernetes_version,
            want: want.to_string(),
        });
    }
    // Bundle paths (`bin/etcd`, `images/kube-apiserver_v1.34.4.tar`) of what only control-plane
    // and etcd nodes run, by binary name and by image component.
    let only_control_plane = |name: &str| ::bundle::CONTROL_PLANE_ONLY.contains(&name);
    let control_plane_only: std::collections::BTreeSet<&str> = manifest
        .images
        .iter()
        .filter(|i| {
            i.name
                .parse::<::bundle::ImageRef>()
                .is_ok_and(|r| only_control_plane(r.component()))
        })
        .map(|i| i.path.as_str())
        .chain(
            manifest
                .files
                .iter()
                .map(|f| f.path.as_str())
                .filter(|p| p.strip_prefix("bin/").is_some_and(only_control_plane)),
        )
        .collect();
    let read = |rel: &str| {
        let path = dir.join(rel);
        std::fs::read(&path).map_err(|source| InputsError::Bundle { dir: path, source })
    };
    let on_node = |rel: &str| format!("{}/{rel}", render::paths::BUNDLE_DIR);
    let mut files = Vec::new();
    for f in &manifest.files {
        let contents = read(&f.path)?;
        // Sizes here (a truncated copy fails early); digests on the nodes, after the upload.
        if contents.len() as u64 != f.size {
            return Err(bad(::bundle::BundleError::Checksum {
                file: dir.join(&f.path),
            }));
        }
        let binary = f.path.starts_with("bin/");
        files.push(BundleFile {
            artifact: Artifact {
                path: on_node(&f.path),
                mode: if binary { 0o755 } else { 0o644 },
                owner: "root:root".to_string(),
                contents: contents.into(),
                sensitive: false,
                purpose: if binary {
                    "binary from the kubeha bundle".to_string()
                } else {
                    "image archive from the kubeha bundle".to_string()
                },
            },
            control_plane_only: control_plane_only.contains(f.path.as_str()),
        });
    }
    let sums = Artifact {
        path: on_node(::bundle::SUMS),
        mode: 0o644,
        owner: "root:root".to_string(),
        contents: read(::bundle::SUMS)?.into(),
        sensitive: false,
        purpose: "the kubeha bundle's SHA-256 list, checked on the node".to_string(),
    };
    let images = manifest
        .images
        .iter()
        .map(|i| BundleImage {
            name: i.name.clone(),
            path: on_node(&i.path),
            control_plane_only: control_plane_only.contains(i.path.as_str()),
        })
        .collect();
    Ok(KubehaBundle {
        files,
        sums,
        images,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bundle directory with these files (contents: their own path) and images.
    fn bundle_dir(files: &[&str], images: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut entries = Vec::new();
        for rel in files {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, rel).unwrap();
            entries.push(serde_json::json!({ "path": rel, "size": rel.len(), "sha256": "-" }));
        }
        let images: Vec<_> = images
            .iter()
            .map(|(name, path)| serde_json::json!({ "name": name, "path": path }))
            .collect();
        let manifest = serde_json::json!({
            "format": 1, "kubernetes_version": "v1.34.4", "files": entries, "images": images,
        });
        std::fs::write(dir.path().join(::bundle::MANIFEST), manifest.to_string()).unwrap();
        std::fs::write(dir.path().join(::bundle::SUMS), "").unwrap();
        dir
    }

    #[test]
    fn workers_get_no_control_plane_binaries_or_images() {
        let images = [
            (
                "registry.k8s.io/kube-apiserver:v1.34.4",
                "images/kube-apiserver_v1.34.4.tar",
            ),
            ("registry.k8s.io/etcd:3.6.5-0", "images/etcd_3.6.5-0.tar"),
            (
                "registry.k8s.io/kube-proxy:v1.34.4",
                "images/kube-proxy_v1.34.4.tar",
            ),
            ("registry.k8s.io/pause:3.10.1", "images/pause_3.10.1.tar"),
        ];
        let mut files = vec!["bin/kubeadm", "bin/kubelet", "bin/etcd", "bin/etcdctl"];
        files.extend(images.iter().map(|(_, p)| *p));
        let dir = bundle_dir(&files, &images);
        let b = kubeha_bundle("v1.34.4", dir.path()).unwrap();
        let on_node = |rel: &str| format!("{}/{rel}", render::paths::BUNDLE_DIR);
        let worker = inventory::Roles {
            worker: true,
            ..Default::default()
        };
        let etcd_only = inventory::Roles {
            etcd: true,
            ..Default::default()
        };
        let cp = inventory::Roles {
            control_plane: true,
            ..Default::default()
        };
        let paths = |roles| -> Vec<String> { b.files_for(roles).map(|a| a.path.clone()).collect() };
        let sums = on_node(::bundle::SUMS);
        let mut want_worker: Vec<String> = [
            "bin/kubeadm",
            "bin/kubelet",
            "images/kube-proxy_v1.34.4.tar",
            "images/pause_3.10.1.tar",
        ]
        .iter()
        .map(|r| on_node(r))
        .collect();
        want_worker.push(sums.clone());
        assert_eq!(paths(worker), want_worker);
        let mut everything: Vec<String> = files.iter().map(|r| on_node(r)).collect();
        everything.push(sums);
        assert_eq!(paths(cp), everything);
        assert_eq!(paths(etcd_only), everything);
        let names =
            |roles| -> Vec<String> { b.images_for(roles).map(|i| i.name.clone()).collect() };
        assert_eq!(
            names(worker),
            [
                "registry.k8s.io/kube-proxy:v1.34.4",
                "registry.k8s.io/pause:3.10.1"
            ]
        );
        assert_eq!(names(cp).len(), 4);
    }

    #[test]
    fn a_bundle_of_another_version_or_a_short_file_is_refused() {
        let dir = bundle_dir(&["bin/kubeadm"], &[]);
        let e = kubeha_bundle("v1.35.0", dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a bundle of Kubernetes v1.34.4, the inventory says v1.35.0"),
            "{e}"
        );
        std::fs::write(dir.path().join("bin/kubeadm"), "short").unwrap();
        let e = kubeha_bundle("v1.34.4", dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("bin/kubeadm: checksum mismatch"), "{e}");
    }
}
