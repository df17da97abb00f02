//! kubeadm-style kubeconfig files (one cluster, one user, one context, data embedded).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The kubeconfig document (only the fields kubeadm writes; others are ignored on read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kubeconfig {
    /// `v1`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    /// Clusters.
    #[serde(default)]
    pub clusters: Vec<NamedCluster>,
    /// Contexts.
    #[serde(default)]
    pub contexts: Vec<NamedContext>,
    /// Current context name.
    #[serde(rename = "current-context", default)]
    pub current_context: String,
    /// `Config`.
    #[serde(default)]
    pub kind: String,
    /// Always empty.
    #[serde(default)]
    pub preferences: BTreeMap<String, String>,
    /// Users.
    #[serde(default)]
    pub users: Vec<NamedUser>,
}

/// `clusters[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedCluster {
    /// The cluster.
    pub cluster: Cluster,
    /// Its name.
    pub name: String,
}

/// A cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// Base64 PEM of the CA.
    #[serde(
        rename = "certificate-authority-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority_data: Option<String>,
    /// Path of the CA file.
    #[serde(
        rename = "certificate-authority",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority: Option<String>,
    /// `https://VIP:PORT`.
    #[serde(default)]
    pub server: String,
}

/// `contexts[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedContext {
    /// The context.
    pub context: Context,
    /// Its name.
    pub name: String,
}

/// A context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// Cluster name.
    pub cluster: String,
    /// User name.
    pub user: String,
}

/// `users[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedUser {
    /// Its name.
    pub name: String,
    /// The credentials.
    pub user: User,
}

/// Credentials.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct User {
    /// Base64 PEM client certificate.
    #[serde(
        rename = "client-certificate-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_certificate_data: Option<String>,
    /// Base64 PEM client key.
    #[serde(
        rename = "client-key-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_key_data: Option<String>,
    /// Client certificate file (kubelet.conf).
    #[serde(
        rename = "client-certificate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_certificate: Option<String>,
    /// Client key file.
    #[serde(
        rename = "client-key",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_key: Option<String>,
}

impl Kubeconfig {
    /// The kubeadm shape: cluster `cluster_name`, user `user`, context `user@cluster_name`.
    pub fn new(
        cluster_name: &str,
        server: &str,
        user: &str,
        ca_pem: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> Self {
        let ctx = format!("{user}@{cluster_name}");
        Kubeconfig {
            api_version: "v1".into(),
            clusters: vec![NamedCluster {
                cluster: Cluster {
                    certificate_authority_data: Some(B64.encode(ca_pem)),
                    certificate_authority: None,
                    server: server.into(),
                },
                name: cluster_name.into(),
            }],
            contexts: vec![NamedContext {
                context: Context {
                    cluster: cluster_name.into(),
                    user: user.into(),
                },
                name: ctx.clone(),
            }],
            current_context: ctx,
            kind: "Config".into(),
            preferences: BTreeMap::new(),
            users: vec![NamedUser {
                name: user.into(),
                user: User {
                    client_certificate_data: Some(B64.encode(cert_pem)),
                    client_key_data: Some(B64.encode(key_pem)),
                    ..User::default()
                },
            }],
        }
    }

    /// Parses YAML.
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    }

    /// Renders YAML the way kubeadm does (plain scalars, no folded blocks).
    pub fn to_yaml(&self) -> Result<String, String> {
        let mut opts = serde_saphyr::SerializerOptions::default();
        opts.prefer_block_scalars = false;
        serde_saphyr::to_string_with_options(self, opts).map_err(|e| e.to_string())
    }

    /// The user of the current context (or the only user).
    pub fn current_user(&self) -> Option<&NamedUser> {
        let ctx = self
            .contexts
            .iter()
            .find(|c| c.name == self.current_context);
        match ctx {
            Some(c) => self.users.iter().find(|u| u.name == c.context.user),
            None if self.users.len() == 1 => self.users.first(),
            None => None,
        }
    }

    /// The cluster of the current context (or the only cluster).
    pub fn current_cluster(&self) -> Option<&NamedCluster> {
        let ctx = self
            .contexts
            .iter()
            .find(|c| c.name == self.current_context);
        match ctx {
            Some(c) => self.clusters.iter().find(|k| k.name == c.context.cluster),
            None if self.clusters.len() == 1 => self.clusters.first(),
            None => None,
        }
    }
}

/// Decodes a `*-data` field.
pub fn decode_data(s: &str) -> Result<Vec<u8>, String> {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    B64.decode(compact).map_err(|e| format!("bad base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_shape() {
        let k = Kubeconfig::new(
            "kubernetes",
            "https://198.18.0.100:16443",
            "kubernetes-admin",
            "CA",
            "CERT",
            "KEY",
        );
        let y = k.to_yaml().unwrap();
        assert!(
            y.contains("current-context: kubernetes-admin@kubernetes"),
            "{y}"
        );
        assert!(y.contains("client-certificate-data: Q0VSVA=="), "{y}");
        assert!(y.contains("server: https://198.18.0.100:16443"), "{y}");
        let back = Kubeconfig::parse(&y).unwrap();
        assert_eq!(back, k);
        assert_eq!(back.current_user().unwrap().name, "kubernetes-admin");
        assert_eq!(
            decode_data(
                back.current_user()
                    .unwrap()
                    .user
                    .client_key_data
                    .as_deref()
                    .unwrap()
            )
            .unwrap(),
            b"KEY"
        );
        assert!(Kubeconfig::parse("clusters: 3").is_err());
        // Long base64 values stay plain one-line scalars, as kubeadm writes them.
        let long = "A".repeat(3000);
        let y = Kubeconfig::new(
            "kubernetes",
            "https://198.18.0.100:16443",
            "u",
            &long,
            "c",
            "k",
        )
        .to_yaml()
        .unwrap();
        assert!(
            y.contains(&format!(
                "certificate-authority-data: {}\n",
                base64::engine::general_purpose::STANDARD.encode(&long)
            )),
            "{y}"
        );
    }

    #[test]
    fn reads_a_kubelet_style_config_with_file_references() {
        let y = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: Q0E=\n    server: https://198.18.0.1:6443\n  name: default-cluster\ncontexts:\n- context:\n    cluster: default-cluster\n    namespace: default\n    user: default-auth\n  name: default-context\ncurrent-context: default-context\nkind: Config\npreferences: {}\nusers:\n- name: default-auth\n  user:\n    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem\n    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem\n";
        let k = Kubeconfig::parse(y).unwrap();
        assert_eq!(
            k.current_user().unwrap().user.client_certificate.as_deref(),
            Some("/var/lib/kubelet/pki/kubelet-client-current.pem")
        );
    }
}
