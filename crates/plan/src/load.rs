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
        return kubeha_bundle(inv, &dir).map(Bundle::Kubeha);
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

/// Images and binaries only control-plane (and etcd) nodes run.
fn control_plane_only(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    ["etcd", "etcdctl"].contains(&name)
        || [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "etcd_",
        ]
        .iter()
        .any(|c| rel.starts_with("images/") && name.starts_with(c))
}

fn kubeha_bundle(inv: &Inventory, dir: &Path) -> Result<KubehaBundle, InputsError> {
    let bad = |source: ::bundle::BundleError| InputsError::KubehaBundle {
        dir: dir.to_path_buf(),
        source,
    };
    let manifest = ::bundle::read_manifest(dir).map_err(bad)?;
    let want = format!("v{}", inv.cluster.kubernetes_version);
    if manifest.kubernetes_version != want {
        return Err(InputsError::BundleVersion {
            dir: dir.to_path_buf(),
            have: manifest.kubernetes_version,
            want,
        });
    }
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
            control_plane_only: control_plane_only(&f.path),
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
            control_plane_only: control_plane_only(&i.path),
        })
        .collect();
    Ok(KubehaBundle {
        kubernetes_version: manifest.kubernetes_version,
        files,
        sums,
        images,
    })
}
