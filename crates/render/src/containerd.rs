//! containerd config.toml (typed, serialized with `toml`), registry mirror hosts.toml files,
//! and the proxy drop-in.

use std::collections::BTreeMap;

use inventory::Inventory;
use serde::Serialize;

use crate::Artifact;

pub const CERTS_D: &str = "/etc/containerd/certs.d";

#[derive(Serialize)]
struct Config {
    version: u32,
    plugins: BTreeMap<&'static str, CriPlugin>,
}

#[derive(Serialize)]
struct CriPlugin {
    sandbox_image: String,
    max_container_log_line_size: u32,
    /// Only written when set: hosts without CAP_SYS_RESOURCE (containers, sandboxes).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    restrict_oom_score_adj: bool,
    containerd: CriContainerd,
    #[serde(skip_serializing_if = "Option::is_none")]
    cni: Option<Cni>,
    registry: Registry,
}

/// Only written when the plugins are not at containerd's default /opt/cni/bin.
#[derive(Serialize)]
struct Cni {
    bin_dir: String,
}

#[derive(Serialize)]
struct CriContainerd {
    default_runtime_name: &'static str,
    runtimes: BTreeMap<&'static str, Runtime>,
}

#[derive(Serialize)]
struct Runtime {
    runtime_type: &'static str,
    options: RuncOptions,
}

#[derive(Serialize)]
struct RuncOptions {
    #[serde(rename = "SystemdCgroup")]
    systemd_cgroup: bool,
}

#[derive(Serialize)]
struct Registry {
    config_path: &'static str,
}

/// The pause image each Kubernetes minor expects (kubeadm's `PauseVersion`): containerd's
/// sandbox image must be exactly the one kubeadm lists, or an offline node has no sandbox.
pub fn pause_tag(minor: u32) -> &'static str {
    match minor {
        34.. => "3.10.1",
        31..=33 => "3.10",
        _ => "3.9",
    }
}

/// The sandbox image of the inventory's Kubernetes minor, from its image repository.
pub fn sandbox_image(inv: &Inventory) -> String {
    format!(
        "{}/pause:{}",
        inv.images.repository,
        pause_tag(inv.cluster.kubernetes_version.minor)
    )
}

pub fn config(inv: &Inventory) -> Artifact {
    let cfg = Config {
        version: 2,
        plugins: BTreeMap::from([(
            "io.containerd.grpc.v1.cri",
            CriPlugin {
                sandbox_image: sandbox_image(inv),
                max_container_log_line_size: 16384,
                restrict_oom_score_adj: inv.runtime.restrict_oom_score_adj,
                cni: (inv.runtime.cni_bin_dir != "/opt/cni/bin").then(|| Cni {
                    bin_dir: inv.runtime.cni_bin_dir.clone(),
                }),
                containerd: CriContainerd {
                    default_runtime_name: "runc",
                    runtimes: BTreeMap::from([(
                        "runc",
                        Runtime {
                            runtime_type: "io.containerd.runc.v2",
                            options: RuncOptions {
                                systemd_cgroup: inv.runtime.systemd_cgroup,
                            },
                        },
                    )]),
                },
                registry: Registry {
                    config_path: CERTS_D,
                },
            },
        )]),
    };
    let body = toml::to_string(&cfg).expect("containerd config is plain data");
    Artifact::text(
        "/etc/containerd/config.toml",
        0o644,
        "containerd: systemd cgroups, sandbox image, registry mirrors",
        format!(
            "# kubeha: containerd config (version 2 schema; containerd 2.x migrates it)\n{body}"
        ),
    )
}

/// One hosts.toml per mirrored registry; containerd tries mirrors in file order, then `server`.
/// Written by hand because the order of `[host."…"]` tables matters and maps would sort it.
pub fn mirror_hosts(inv: &Inventory) -> Vec<Artifact> {
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    inv.images
        .mirrors
        .iter()
        .map(|(registry, urls)| {
            let server = if registry == "docker.io" {
                "https://registry-1.docker.io".to_string()
            } else {
                format!("https://{registry}")
            };
            let mut s = format!(
                "# kubeha: mirrors for {registry}, tried in this order\nserver = {}\n",
                quote(&server)
            );
            for u in urls {
                s.push_str(&format!(
                    "\n[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n",
                    quote(u)
                ));
            }
            Artifact::text(
                &format!("{CERTS_D}/{registry}/hosts.toml"),
                0o644,
                "registry mirror",
                s,
            )
        })
        .collect()
}

/// NO_PROXY must cover every cluster-internal destination, or image pulls work and the
/// cluster's own traffic goes to the proxy.
pub fn no_proxy(inv: &Inventory) -> Vec<String> {
    let mut v: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
    v.push(inv.endpoint.vip.to_string());
    if let Some(n) = &inv.endpoint.dns_name {
        v.push(n.clone());
    }
    for n in &inv.nodes {
        v.push(n.address.to_string());
        v.push(n.name.clone());
    }
    v.push(inv.networking.pod_cidr.to_string());
    v.push(inv.networking.service_cidr.to_string());
    v.push(format!(".svc.{}", inv.cluster.domain));
    if let Some(p) = &inv.images.proxy {
        v.extend(p.no_proxy.iter().cloned());
    }
    v
}

pub fn proxy_dropin(inv: &Inventory) -> Option<Artifact> {
    let p = inv.images.proxy.as_ref()?;
    let mut s = String::from("# kubeha: containerd pulls through the proxy\n[Service]\n");
    if let Some(h) = &p.http {
        s.push_str(&format!("Environment=\"HTTP_PROXY={h}\"\n"));
    }
    if let Some(h) = &p.https {
        s.push_str(&format!("Environment=\"HTTPS_PROXY={h}\"\n"));
    }
    s.push_str(&format!(
        "Environment=\"NO_PROXY={}\"\n",
        no_proxy(inv).join(",")
    ));
    Some(Artifact::text(
        "/etc/systemd/system/containerd.service.d/http-proxy.conf",
        0o644,
        "containerd proxy settings",
        s,
    ))
}
