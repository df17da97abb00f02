//! Container images without a registry: a docker-archive tarball (the format `docker save`
//! writes and `ctr images import` reads) with one layer holding static binaries.
//!
//! Everything here is pure over bytes: the same inputs give the same archive, byte for byte
//! (mtime 0, uid/gid 0, sorted entries), so a bundle's checksums are reproducible.

use std::fmt;
use std::io::Write;
use std::str::FromStr;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// PATH in every image, as in upstream's distroless bases.
pub const IMAGE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An image name as CRI lists it: `registry.k8s.io/coredns/coredns:v1.12.1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageRef {
    repository: String,
    tag: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageRefError {
    #[error("image name `{0}` has no tag (want repository:tag, e.g. registry.k8s.io/pause:3.10.1)")]
    NoTag(String),
    #[error("image name `{0}` is not a repository:tag name")]
    Malformed(String),
}

impl FromStr for ImageRef {
    type Err = ImageRefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() || s.contains(char::is_whitespace) || s.contains('@') {
            return Err(ImageRefError::Malformed(s.to_string()));
        }
        // The tag follows the last ':' after the last '/' (a registry may carry a port).
        let slash = s.rfind('/').map_or(0, |i| i + 1);
        let Some(colon) = s[slash..].rfind(':').map(|i| slash + i) else {
            return Err(ImageRefError::NoTag(s.to_string()));
        };
        let (repository, tag) = (&s[..colon], &s[colon + 1..]);
        if repository.is_empty() || tag.is_empty() || repository.ends_with('/') {
            return Err(ImageRefError::Malformed(s.to_string()));
        }
        Ok(ImageRef {
            repository: repository.to_string(),
            tag: tag.to_string(),
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

impl ImageRef {
    pub fn repository(&self) -> &str {
        &self.repository
    }
    pub fn tag(&self) -> &str {
        &self.tag
    }
    /// The last path element of the repository: `kube-apiserver`, `etcd`, `pause`, `coredns`.
    pub fn component(&self) -> &str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository)
    }
    /// A file name for the archive: `kube-apiserver_v1.34.4.tar`.
    pub fn file_name(&self) -> String {
        format!("{}_{}.tar", self.component(), self.tag)
    }
}

/// One file of the image's single layer.
#[derive(Debug, Clone)]
pub struct LayerFile<'a> {
    /// Absolute path inside the image, e.g. `/usr/local/bin/etcd`.
    pub path: &'a str,
    pub mode: u32,
    pub contents: &'a [u8],
}

/// What goes into one image.
#[derive(Debug, Clone)]
pub struct ImageSpec<'a> {
    pub reference: ImageRef,
    pub files: Vec<LayerFile<'a>>,
    /// Empty: no entrypoint (Kubernetes' manifests name the command, as for kube-apiserver).
    pub entrypoint: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image {image}: file path `{path}` must be absolute and plain")]
    BadPath { image: String, path: String },
    #[error("image {image}: writing the archive: {source}")]
    Io {
        image: String,
        #[source]
        source: std::io::Error,
    },
}

/// The layer as an uncompressed tar: parent directories first, then the files, sorted.
pub fn layer_tar(spec: &ImageSpec<'_>) -> Result<Vec<u8>, ImageError> {
    let image = spec.reference.to_string();
    let io = |source| ImageError::Io {
        image: image.clone(),
        source,
    };
    let mut files: Vec<&LayerFile<'_>> = spec.files.iter().collect();
    files.sort_by_key(|f| f.path);
    let mut dirs = std::collections::BTreeSet::new();
    for f in &files {
        let rel = f.path.strip_prefix('/').unwrap_or("");
        let plain = !rel.is_empty()
            && rel
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..");
        if !f.path.starts_with('/') || !plain {
            return Err(ImageError::BadPath {
                image: image.clone(),
                path: f.path.to_string(),
            });
        }
        let mut prefix = String::new();
        let parts: Vec<&str> = rel.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            prefix.push_str(part);
            prefix.push('/');
            dirs.insert(prefix.clone());
        }
    }
    let mut b = tar::Builder::new(Vec::new());
    b.mode(tar::HeaderMode::Deterministic);
    for d in &dirs {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        b.append_data(&mut h, d, std::io::empty()).map_err(io)?;
    }
    for f in files {
        let mut h = header(tar::EntryType::Regular, f.mode, f.contents.len() as u64);
        let rel = &f.path[1..];
        b.append_data(&mut h, rel, f.contents).map_err(io)?;
    }
    b.into_inner().map_err(io)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

#[derive(Serialize)]
struct Config<'a> {
    architecture: &'static str,
    os: &'static str,
    config: ContainerConfig<'a>,
    rootfs: RootFs,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerConfig<'a> {
    env: Vec<String>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    entrypoint: &'a [String],
    working_dir: &'static str,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes the docker-archive for `spec` to `out`; returns the image id (`sha256:<config>`).
pub fn write_docker_archive(spec: &ImageSpec<'_>, out: impl Write) -> Result<String, ImageError> {
    let image = spec.reference.to_string();
    let io = |source| ImageError::Io {
        image: image.clone(),
        source,
    };
    let layer = layer_tar(spec)?;
    let layer_id = sha256_hex(&layer);
    let config = serde_json::to_vec(&Config {
        architecture: "amd64",
        os: "linux",
        config: ContainerConfig {
            env: vec![format!("PATH={IMAGE_PATH}")],
            entrypoint: &spec.entrypoint,
            working_dir: "/",
        },
        rootfs: RootFs {
            kind: "layers",
            diff_ids: vec![format!("sha256:{layer_id}")],
        },
    })
    .expect("plain structs serialize");
    let config_id = sha256_hex(&config);
    let manifest = serde_json::to_vec(&[ManifestEntry {
        config: format!("{config_id}.json"),
        repo_tags: vec![image.clone()],
        layers: vec![format!("{layer_id}/layer.tar")],
    }])
    .expect("plain structs serialize");

    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Deterministic);
    let entries: [(&str, &[u8]); 3] = [
        (&format!("{layer_id}/layer.tar"), &layer),
        (&format!("{config_id}.json"), &config),
        ("manifest.json", &manifest),
    ];
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    b.append_data(&mut h, format!("{layer_id}/"), std::io::empty())
        .map_err(io)?;
    for (name, data) in entries {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        b.append_data(&mut h, name, data).map_err(io)?;
    }
    b.into_inner().map_err(io)?.flush().map_err(io)?;
    Ok(format!("sha256:{config_id}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn parses_names_with_registry_ports_and_nested_paths() {
        let r: ImageRef = "registry.k8s.io/coredns/coredns:v1.12.1".parse().unwrap();
        assert_eq!(r.repository(), "registry.k8s.io/coredns/coredns");
        assert_eq!(r.tag(), "v1.12.1");
        assert_eq!(r.component(), "coredns");
        assert_eq!(r.file_name(), "coredns_v1.12.1.tar");
        let r: ImageRef = "mirror.example:5000/pause:3.10.1".parse().unwrap();
        assert_eq!(r.repository(), "mirror.example:5000/pause");
        assert_eq!(r.to_string(), "mirror.example:5000/pause:3.10.1");
        assert_eq!(
            "mirror.example:5000/pause".parse::<ImageRef>(),
            Err(ImageRefError::NoTag("mirror.example:5000/pause".into()))
        );
        assert!("a b:1".parse::<ImageRef>().is_err());
        assert!(":1".parse::<ImageRef>().is_err());
        assert!("x@sha256:00".parse::<ImageRef>().is_err());
    }

    fn spec<'a>(contents: &'a [u8]) -> ImageSpec<'a> {
        ImageSpec {
            reference: "registry.k8s.io/etcd:3.6.4-0".parse().unwrap(),
            files: vec![LayerFile {
                path: "/usr/local/bin/etcd",
                mode: 0o755,
                contents,
            }],
            entrypoint: vec![],
        }
    }

    fn entries(tar_bytes: &[u8]) -> Vec<(String, Vec<u8>, u32)> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let mode = e.header().mode().unwrap();
                let mut v = Vec::new();
                e.read_to_end(&mut v).unwrap();
                (path, v, mode)
            })
            .collect()
    }

    #[test]
    fn archive_has_manifest_config_and_layer_that_agree() {
        let mut out = Vec::new();
        let id = write_docker_archive(&spec(b"\x7fELF binary"), &mut out).unwrap();
        let e = entries(&out);
        let get = |name: &str| e.iter().find(|(p, _, _)| p == name).map(|x| x.1.clone());
        let manifest: serde_json::Value =
            serde_json::from_slice(&get("manifest.json").unwrap()).unwrap();
        assert_eq!(manifest[0]["RepoTags"][0], "registry.k8s.io/etcd:3.6.4-0");
        let config_name = manifest[0]["Config"].as_str().unwrap();
        let config = get(config_name).unwrap();
        assert_eq!(
            format!("sha256:{}.json", sha256_hex(&config)),
            format!("{id}.json")
        );
        let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(config["config"]["Env"][0], format!("PATH={IMAGE_PATH}"));
        assert!(config["config"].get("Entrypoint").is_none());
        let layer_name = manifest[0]["Layers"][0].as_str().unwrap();
        let layer = get(layer_name).unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            format!("sha256:{}", sha256_hex(&layer))
        );
        let files = entries(&layer);
        let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(
            names,
            ["usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/etcd"]
        );
        assert_eq!(files[3].1, b"\x7fELF binary");
        assert_eq!(files[3].2, 0o755);
    }

    #[test]
    fn archives_are_reproducible_and_depend_on_contents() {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        write_docker_archive(&spec(b"one"), &mut a).unwrap();
        write_docker_archive(&spec(b"one"), &mut b).unwrap();
        write_docker_archive(&spec(b"two"), &mut c).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn entrypoint_is_written_when_given() {
        let mut s = spec(b"p");
        s.files[0].path = "/pause";
        s.entrypoint = vec!["/pause".into()];
        let mut out = Vec::new();
        write_docker_archive(&s, &mut out).unwrap();
        let e = entries(&out);
        let cfg = e
            .iter()
            .find(|(p, _, _)| p.ends_with(".json") && p != "manifest.json")
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&cfg.1).unwrap();
        assert_eq!(v["config"]["Entrypoint"][0], "/pause");
    }

    #[test]
    fn relative_or_dotted_paths_are_refused() {
        for bad in ["usr/bin/x", "/usr/../etc/x", "/", "/a//b"] {
            let mut s = spec(b"x");
            s.files[0].path = bad;
            assert!(
                matches!(layer_tar(&s), Err(ImageError::BadPath { .. })),
                "{bad} accepted"
            );
        }
    }
}
