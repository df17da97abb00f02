//! The offline bundle: everything a node needs to install Kubernetes without internet access
//! (seed 000: "servers without internet access must download the images beforehand and import
//! them on every node"), made from the binaries `scripts/k8s-binaries.sh` builds.
//!
//! Layout of a bundle directory:
//!
//! ```text
//! bundle.json     the manifest: version, every file with size and SHA-256, image names
//! SHA256SUMS      the same digests for `sha256sum -c` on nodes (which have no kubeha)
//! bin/            kubeadm kubelet kubectl crictl [etcd etcdctl etcdutl]
//! images/         one docker-archive per image kubeadm names, e.g. kube-apiserver_v1.34.4.tar
//! ```
//!
//! `image` is pure (bytes in, archive out); this module reads and writes the directory.

pub mod image;

use std::fs;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use image::{ImageRef, ImageRefError, ImageSpec, LayerFile};

pub const MANIFEST: &str = "bundle.json";
pub const SUMS: &str = "SHA256SUMS";
/// The file `scripts/k8s-binaries.sh` writes beside the binaries: `kubernetes v1.34.4`, ….
pub const BINARIES_VERSIONS: &str = "VERSIONS";

/// Binaries and image components only control-plane (and etcd) nodes run; workers get the
/// kubelet, kubeadm, kubectl, crictl, pause, kube-proxy and CoreDNS.
pub const CONTROL_PLANE_ONLY: [&str; 6] = [
    "etcd",
    "etcdctl",
    "etcdutl",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// Binaries installed on nodes (the others only run inside images).
/// etcdctl takes snapshots (`kubeha etcd snapshot`), etcdutl restores them.
pub const NODE_BINARIES: [&str; 7] = [
    "kubeadm", "kubelet", "kubectl", "crictl", "etcd", "etcdctl", "etcdutl",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub kubernetes_version: String,
    pub files: Vec<FileEntry>,
    pub images: Vec<ImageEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the bundle directory: `bin/kubeadm`, `images/etcd_3.6.4-0.tar`.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageEntry {
    /// The name CRI lists after import.
    pub name: String,
    pub path: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{dir}: binaries of Kubernetes {have}, the inventory says {want}; build them with scripts/k8s-binaries.sh {want}"
    )]
    WrongVersion {
        dir: PathBuf,
        have: String,
        want: String,
    },
    #[error(
        "image {image} needs the binary `{binary}`, which {dir} lacks; build it with scripts/k8s-binaries.sh"
    )]
    MissingBinary {
        image: String,
        binary: String,
        dir: PathBuf,
    },
    #[error(
        "{file}: checksum mismatch (the bundle is damaged or was changed); rebuild it with `kubeha bundle build`"
    )]
    Checksum { file: PathBuf },
    #[error("{file}: {reason}")]
    Manifest { file: PathBuf, reason: String },
    #[error(transparent)]
    Image(#[from] image::ImageError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a binary goes inside its image, and the image's entrypoint. pause and coredns are
/// run by their entrypoint (as upstream's images are); the control-plane images are run by
/// the command in kubeadm's manifests, found on PATH.
fn image_layout(component: &str) -> Option<(String, Vec<String>)> {
    match component {
        "pause" | "coredns" => Some((format!("/{component}"), vec![format!("/{component}")])),
        "kube-apiserver" | "kube-controller-manager" | "kube-scheduler" | "kube-proxy" | "etcd" => {
            Some((format!("/usr/local/bin/{component}"), Vec::new()))
        }
        _ => None,
    }
}

/// The Kubernetes version the binaries directory says it holds (`VERSIONS`).
pub fn binaries_version(binaries: &Path) -> Result<String, BundleError> {
    let path = binaries.join(BINARIES_VERSIONS);
    let text = fs::read_to_string(&path).map_err(io_err(&path))?;
    text.lines()
        .find_map(|l| l.strip_prefix("kubernetes "))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| BundleError::Manifest {
            file: path,
            reason: "no `kubernetes vX.Y.Z` line; rebuild with scripts/k8s-binaries.sh".into(),
        })
}

fn sha256_file(path: &Path) -> Result<(u64, String), BundleError> {
    let mut f = fs::File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((size, hex::encode(h.finalize())))
}

/// Builds a bundle in `out` from a binaries directory, with one image per name in `images`
/// (the names `kubeadm config images list` gives for the rendered configuration). The bundle
/// is written beside `out` and renamed into place, so a failed build leaves no half bundle.
pub fn build(
    binaries: &Path,
    kubernetes_version: &str,
    images: &[ImageRef],
    out: &Path,
) -> Result<Manifest, BundleError> {
    let want = format!("v{}", kubernetes_version.trim_start_matches('v'));
    let have = binaries_version(binaries)?;
    if have != want {
        return Err(BundleError::WrongVersion {
            dir: binaries.to_path_buf(),
            have,
            want,
        });
    }
    let partial = out.with_extension("partial");
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(io_err(&partial))?;
    }
    for sub in ["bin", "images"] {
        let d = partial.join(sub);
        fs::create_dir_all(&d).map_err(io_err(&d))?;
    }
    let mut files = Vec::new();
    for name in NODE_BINARIES {
        let src = binaries.join(name);
        if !src.exists() {
            return Err(BundleError::MissingBinary {
                image: "(node binaries)".into(),
                binary: name.into(),
                dir: binaries.to_path_buf(),
            });
        }
        let rel = format!("bin/{name}");
        let dst = partial.join(&rel);
        fs::copy(&src, &dst).map_err(io_err(&dst))?;
        files.push(rel);
    }
    let mut entries = Vec::new();
    for reference in images {
        let component = reference.component();
        let missing = || BundleError::MissingBinary {
            image: reference.to_string(),
            binary: component.to_string(),
            dir: binaries.to_path_buf(),
        };
        let (path, entrypoint) = image_layout(component).ok_or_else(missing)?;
        let src = binaries.join(component);
        let contents = fs::read(&src).map_err(|_| missing())?;
        let spec = ImageSpec {
            reference: reference.clone(),
            files: vec![LayerFile {
                path: &path,
                mode: 0o755,
                contents: &contents,
            }],
            entrypoint,
        };
        let rel = format!("images/{}", reference.file_name());
        let dst = partial.join(&rel);
        let f = fs::File::create(&dst).map_err(io_err(&dst))?;
        image::write_docker_archive(&spec, BufWriter::new(f))?;
        entries.push(ImageEntry {
            name: reference.to_string(),
            path: rel.clone(),
        });
        files.push(rel);
    }
    let mut manifest = Manifest {
        format: 1,
        kubernetes_version: want,
        files: Vec::new(),
        images: entries,
    };
    let mut sums = String::new();
    for rel in files {
        let (size, sha256) = sha256_file(&partial.join(&rel))?;
        sums.push_str(&format!("{sha256}  {rel}\n"));
        manifest.files.push(FileEntry {
            path: rel,
            size,
            sha256,
        });
    }
    let mpath = partial.join(MANIFEST);
    let json = serde_json::to_vec_pretty(&manifest).expect("plain structs serialize");
    fs::write(&mpath, json).map_err(io_err(&mpath))?;
    let spath = partial.join(SUMS);
    fs::write(&spath, sums).map_err(io_err(&spath))?;
    if out.exists() {
        fs::remove_dir_all(out).map_err(io_err(out))?;
    }
    fs::rename(&partial, out).map_err(io_err(out))?;
    Ok(manifest)
}

/// Reads a bundle's manifest and checks every file's size and digest; the first damaged file
/// is named in the error.
pub fn verify(dir: &Path) -> Result<Manifest, BundleError> {
    let manifest = read_manifest(dir)?;
    for f in &manifest.files {
        let path = dir.join(&f.path);
        let (size, sha) = sha256_file(&path)?;
        if size != f.size || sha != f.sha256 {
            return Err(BundleError::Checksum { file: path });
        }
    }
    Ok(manifest)
}

/// The manifest alone, without reading the files.
pub fn read_manifest(dir: &Path) -> Result<Manifest, BundleError> {
    let path = dir.join(MANIFEST);
    let text = fs::read(&path).map_err(io_err(&path))?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| BundleError::Manifest {
        file: path.clone(),
        reason: format!("not a kubeha bundle manifest: {e}"),
    })?;
    for f in &manifest.files {
        let plain =
            !f.path.starts_with('/') && f.path.split('/').all(|c| c != ".." && !c.is_empty());
        if !plain {
            return Err(BundleError::Manifest {
                file: path,
                reason: format!("file path `{}` leaves the bundle", f.path),
            });
        }
    }
    Ok(manifest)
}

/// The images kubeadm itself names for a configuration (`kubeadm config images list`), so a
/// bundle holds exactly what `kubeadm init` and `join` will ask the runtime for.
pub fn kubeadm_images(kubeadm: &Path, config_yaml: &str) -> Result<Vec<ImageRef>, BundleError> {
    let dir = std::env::temp_dir().join(format!("kubeha-images-{}", std::process::id()));
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let config = dir.join("kubeadm.yaml");
    fs::write(&config, config_yaml).map_err(io_err(&config))?;
    let out = std::process::Command::new(kubeadm)
        .args(["config", "images", "list", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .output();
    let _ = fs::remove_dir_all(&dir);
    let out = out.map_err(io_err(kubeadm))?;
    if !out.status.success() {
        return Err(BundleError::Manifest {
            file: kubeadm.to_path_buf(),
            reason: format!(
                "`kubeadm config images list` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.parse().map_err(|e: ImageRefError| BundleError::Manifest {
                file: kubeadm.to_path_buf(),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// Whether `dir` is a kubeha bundle (has a manifest), as opposed to a plain directory of .debs.
pub fn is_bundle(dir: &Path) -> bool {
    dir.join(MANIFEST).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binaries(dir: &Path, version: &str) {
        fs::write(
            dir.join(BINARIES_VERSIONS),
            format!("kubernetes {version}\netcd v3.6.16\n"),
        )
        .unwrap();
        for b in NODE_BINARIES.iter().chain(&["kube-apiserver", "pause"]) {
            fs::write(dir.join(b), format!("binary {b}")).unwrap();
        }
    }

    fn names(list: &[&str]) -> Vec<ImageRef> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn builds_verifies_and_names_a_damaged_file() {
        let t = tempfile::tempdir().unwrap();
        let (bin, out) = (t.path().join("bin"), t.path().join("bundle"));
        fs::create_dir(&bin).unwrap();
        binaries(&bin, "v1.34.4");
        let images = names(&[
            "registry.k8s.io/kube-apiserver:v1.34.4",
            "registry.k8s.io/pause:3.10.1",
        ]);
        let m = build(&bin, "1.34.4", &images, &out).unwrap();
        assert_eq!(m.kubernetes_version, "v1.34.4");
        assert_eq!(m.images.len(), 2);
        assert_eq!(m.images[1].path, "images/pause_3.10.1.tar");
        assert_eq!(m.files.len(), NODE_BINARIES.len() + 2);
        assert_eq!(verify(&out).unwrap(), m);
        let sums = fs::read_to_string(out.join(SUMS)).unwrap();
        assert!(sums.contains("  bin/kubeadm\n"), "{sums}");
        assert!(!t.path().join("bundle.partial").exists());

        fs::write(out.join("images/pause_3.10.1.tar"), "tampered").unwrap();
        match verify(&out) {
            Err(BundleError::Checksum { file }) => {
                assert!(file.ends_with("images/pause_3.10.1.tar"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_other_versions_and_images_without_a_binary() {
        let t = tempfile::tempdir().unwrap();
        binaries(t.path(), "v1.34.4");
        let out = t.path().join("b");
        let e = build(t.path(), "1.33.1", &[], &out).unwrap_err();
        assert!(
            e.to_string()
                .contains("v1.34.4, the inventory says v1.33.1"),
            "{e}"
        );
        let e = build(
            t.path(),
            "1.34.4",
            &names(&["registry.k8s.io/coredns/coredns:v1.12.1"]),
            &out,
        )
        .unwrap_err();
        assert!(
            matches!(e, BundleError::MissingBinary { ref binary, .. } if binary == "coredns"),
            "{e}"
        );
        let e = build(t.path(), "1.34.4", &names(&["example.org/unknown:1"]), &out).unwrap_err();
        assert!(matches!(e, BundleError::MissingBinary { .. }), "{e}");
        assert!(!out.exists());
    }

    #[test]
    fn a_manifest_that_points_outside_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let m = Manifest {
            format: 1,
            kubernetes_version: "v1.34.4".into(),
            files: vec![FileEntry {
                path: "../etc/passwd".into(),
                size: 0,
                sha256: String::new(),
            }],
            images: vec![],
        };
        fs::write(t.path().join(MANIFEST), serde_json::to_vec(&m).unwrap()).unwrap();
        assert!(matches!(
            verify(t.path()),
            Err(BundleError::Manifest { .. })
        ));
        fs::write(t.path().join(MANIFEST), "not json").unwrap();
        assert!(
            verify(t.path())
                .unwrap_err()
                .to_string()
                .contains("not a kubeha bundle")
        );
        assert!(is_bundle(t.path()));
    }
}
