//! The plain input of the crate: what to issue. It does not depend on the inventory crate;
//! the CLI converts an inventory into a [`PkiSpec`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::error::PkiError;
use crate::token::parse_duration;

/// A node: its name (used in certificate SANs and as a directory name) and address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeId {
    /// Host name, a DNS-1123 subdomain (`[a-z0-9]([-a-z0-9.]*[a-z0-9])?`).
    pub name: String,
    /// The node's address (etcd listens here; the apiserver advertises it).
    pub address: IpAddr,
}

impl NodeId {
    /// Convenience constructor.
    pub fn new(name: impl Into<String>, address: IpAddr) -> Self {
        NodeId {
            name: name.into(),
            address,
        }
    }
}

/// Key algorithm for every key the crate generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum KeyType {
    /// RSA 2048 with SHA-256 signatures (kubeadm's default).
    #[default]
    #[serde(rename = "rsa2048", alias = "RSA-2048")]
    Rsa2048,
    /// ECDSA P-256 with SHA-256 signatures (kubeadm `ECDSA-P256`).
    #[serde(rename = "ecdsa-p256", alias = "ECDSA-P256")]
    EcdsaP256,
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyType::Rsa2048 => "RSA-2048",
            KeyType::EcdsaP256 => "ECDSA-P256",
        })
    }
}

/// Kubernetes `major.minor`; decides super-admin.conf and the admin group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubeVersion {
    /// Major version (1).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl KubeVersion {
    /// `KubeVersion { major, minor }`.
    pub const fn new(major: u32, minor: u32) -> Self {
        KubeVersion { major, minor }
    }

    /// Kubernetes 1.29 split admin.conf (group `kubeadm:cluster-admins`) from
    /// super-admin.conf (group `system:masters`).
    pub fn has_super_admin(self) -> bool {
        self >= KubeVersion::new(1, 29)
    }

    /// Parses `1.30`, `v1.30`, `v1.30.2`.
    pub fn parse(s: &str) -> Result<Self, PkiError> {
        let t = s.trim().trim_start_matches('v');
        let mut it = t.split('.');
        let bad = || PkiError::InvalidSpec(format!("kubernetes version {s:?} is not MAJOR.MINOR"));
        let major = it.next().and_then(|m| m.parse().ok()).ok_or_else(bad)?;
        let minor = it.next().and_then(|m| m.parse().ok()).ok_or_else(bad)?;
        Ok(KubeVersion { major, minor })
    }
}

/// The control-plane endpoint clients use (the VIP served by the front door).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// The virtual IP.
    pub vip: IpAddr,
    /// Its port (16443 in the guides).
    pub port: u16,
}

impl Endpoint {
    /// `https://VIP:PORT` (IPv6 in brackets).
    pub fn url(&self) -> String {
        match self.vip {
            IpAddr::V4(a) => format!("https://{a}:{}", self.port),
            IpAddr::V6(a) => format!("https://[{a}]:{}", self.port),
        }
    }
}

/// One year, as kubeadm counts it for leaf certificates.
pub const ONE_YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
/// Ten years, kubeadm's CA validity.
pub const TEN_YEARS: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Everything the crate needs to issue a cluster's PKI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiSpec {
    /// Cluster name used in kubeconfigs (kubeadm: `kubernetes`).
    pub cluster_name: String,
    /// DNS domain of the cluster (`cluster.local`).
    pub cluster_domain: String,
    /// Service CIDR (`10.96.0.0/12`); for dual stack `v4cidr,v6cidr` (the first one gives the
    /// apiserver's service IP, as in kubeadm).
    pub service_cidr: String,
    /// The VIP endpoint every kubeconfig points at.
    pub endpoint: Endpoint,
    /// Kubernetes version (for super-admin.conf and the admin group).
    pub kubernetes_version: KubeVersion,
    /// Control-plane nodes.
    pub control_plane: Vec<NodeId>,
    /// etcd members (the same names as `control_plane` for stacked etcd).
    pub etcd: Vec<NodeId>,
    /// Extra apiserver SANs (DNS names or IP addresses).
    pub extra_sans: Vec<String>,
    /// Extra SANs on every etcd server certificate, for clients that reach etcd through a
    /// shared address (the lab puts its VIP here).
    pub etcd_extra_sans: Vec<String>,
    /// Key algorithm.
    pub key_type: KeyType,
    /// Validity of new CAs.
    pub ca_validity: Duration,
    /// Validity of new leaf certificates.
    pub leaf_validity: Duration,
}

impl PkiSpec {
    /// A spec with kubeadm's defaults and stacked etcd (`etcd = control_plane`).
    pub fn new(
        cluster_name: impl Into<String>,
        endpoint: Endpoint,
        control_plane: Vec<NodeId>,
    ) -> Self {
        PkiSpec {
            cluster_name: cluster_name.into(),
            cluster_domain: "cluster.local".into(),
            service_cidr: "10.96.0.0/12".into(),
            endpoint,
            kubernetes_version: KubeVersion::new(1, 33),
            etcd: control_plane.clone(),
            control_plane,
            extra_sans: Vec::new(),
            etcd_extra_sans: Vec::new(),
            key_type: KeyType::Rsa2048,
            ca_validity: TEN_YEARS,
            leaf_validity: ONE_YEAR,
        }
    }

    /// The first address of the (primary) service CIDR: the `kubernetes` service IP.
    pub fn first_service_ip(&self) -> Result<IpAddr, PkiError> {
        let primary = self.service_cidr.split(',').next().unwrap_or("").trim();
        first_ip_of_cidr(primary)
    }

    /// Control-plane and etcd nodes merged by name, sorted by name, each with its roles.
    pub fn nodes(&self) -> Vec<(NodeId, Roles)> {
        let mut map: BTreeMap<&str, (NodeId, Roles)> = BTreeMap::new();
        for n in &self.control_plane {
            map.entry(&n.name)
                .or_insert_with(|| (n.clone(), Roles::default()))
                .1
                .control_plane = true;
        }
        for n in &self.etcd {
            map.entry(&n.name)
                .or_insert_with(|| (n.clone(), Roles::default()))
                .1
                .etcd = true;
        }
        map.into_values().collect()
    }

    /// Checks names, duplicates, the CIDR, SANs and validity periods.
    pub fn validate(&self) -> Result<(), PkiError> {
        let err = |m: String| Err(PkiError::InvalidSpec(m));
        if !is_dns_name(&self.cluster_name) {
            return err(format!(
                "cluster name {:?} is not a DNS-1123 name",
                self.cluster_name
            ));
        }
        if !is_dns_name(&self.cluster_domain) {
            return err(format!(
                "cluster domain {:?} is not a DNS name",
                self.cluster_domain
            ));
        }
        self.first_service_ip()?;
        if self.control_plane.is_empty() {
            return err("no control-plane node".into());
        }
        if self.etcd.is_empty() {
            return err("no etcd member".into());
        }
        for (list, what) in [(&self.control_plane, "control-plane"), (&self.etcd, "etcd")] {
            let mut seen = std::collections::BTreeSet::new();
            for n in list.iter() {
                if !is_dns_name(&n.name) {
                    return err(format!(
                        "{what} node name {:?} is not a DNS-1123 name",
                        n.name
                    ));
                }
                if !seen.insert(n.name.as_str()) {
                    return err(format!("{what} node {:?} listed twice", n.name));
                }
            }
        }
        for e in &self.etcd {
            if let Some(c) = self.control_plane.iter().find(|c| c.name == e.name)
                && c.address != e.address
            {
                return err(format!(
                    "node {:?} has address {} as control plane but {} as etcd member",
                    e.name, c.address, e.address
                ));
            }
        }
        for s in self.extra_sans.iter().chain(&self.etcd_extra_sans) {
            if s.parse::<IpAddr>().is_err() && !is_dns_name(s.strip_prefix("*.").unwrap_or(s)) {
                return err(format!(
                    "extra SAN {s:?} is neither an IP address nor a DNS name"
                ));
            }
        }
        if self.ca_validity.as_secs() < 24 * 3600 || self.leaf_validity.as_secs() < 3600 {
            return err(
                "CA validity must be at least 1 day and leaf validity at least 1 hour".into(),
            );
        }
        if self.ca_validity.as_secs() > 100 * 365 * 24 * 3600 {
            return err("CA validity over 100 years".into());
        }
        Ok(())
    }

    /// Reads a spec from YAML (the `kubeha pki issue --spec` format):
    ///
    /// ```yaml
    /// cluster_name: kubernetes          # optional
    /// cluster_domain: cluster.local     # optional
    /// service_cidr: 10.96.0.0/12        # optional
    /// endpoint: {vip: 198.18.0.200, port: 16443}
    /// kubernetes_version: "1.33"        # optional
    /// control_plane: [{name: m1, address: 198.18.0.11}]
    /// etcd: [...]                       # optional, default = control_plane (stacked)
    /// extra_sans: [api.example.com]     # optional
    /// key_type: rsa2048 | ecdsa-p256    # optional
    /// ca_validity: 87600h               # optional
    /// leaf_validity: 8760h              # optional
    /// ```
    pub fn from_yaml(text: &str) -> Result<Self, PkiError> {
        let f: SpecFile =
            serde_saphyr::from_str(text).map_err(|e| PkiError::InvalidSpec(e.to_string()))?;
        let endpoint = Endpoint {
            vip: f.endpoint.vip,
            port: f.endpoint.port.unwrap_or(16443),
        };
        let mut spec = PkiSpec::new(
            f.cluster_name.unwrap_or_else(|| "kubernetes".into()),
            endpoint,
            f.control_plane,
        );
        if let Some(d) = f.cluster_domain {
            spec.cluster_domain = d;
        }
        if let Some(c) = f.service_cidr {
            spec.service_cidr = c;
        }
        if let Some(v) = f.kubernetes_version {
            spec.kubernetes_version = KubeVersion::parse(&v)?;
        }
        if let Some(e) = f.etcd {
            spec.etcd = e;
        }
        spec.extra_sans = f.extra_sans;
        spec.etcd_extra_sans = f.etcd_extra_sans;
        if let Some(k) = f.key_type {
            spec.key_type = k;
        }
        if let Some(v) = f.ca_validity {
            spec.ca_validity = parse_duration(&v)?;
        }
        if let Some(v) = f.leaf_validity {
            spec.leaf_validity = parse_duration(&v)?;
        }
        spec.validate()?;
        Ok(spec)
    }
}

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Roles {
    /// Runs kube-apiserver, controller-manager, scheduler.
    pub control_plane: bool,
    /// Runs an etcd member.
    pub etcd: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    cluster_name: Option<String>,
    cluster_domain: Option<String>,
    service_cidr: Option<String>,
    endpoint: EndpointFile,
    kubernetes_version: Option<String>,
    control_plane: Vec<NodeId>,
    etcd: Option<Vec<NodeId>>,
    #[serde(default)]
    extra_sans: Vec<String>,
    #[serde(default)]
    etcd_extra_sans: Vec<String>,
    key_type: Option<KeyType>,
    ca_validity: Option<String>,
    leaf_validity: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointFile {
    vip: IpAddr,
    port: Option<u16>,
}

/// DNS-1123 subdomain: lowercase alphanumerics, `-` and `.`, each label starting and ending
/// with an alphanumeric, at most 253 characters. Such a name is also a safe directory name.
pub(crate) fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// First usable address of a CIDR (network address + 1).
pub fn first_ip_of_cidr(cidr: &str) -> Result<IpAddr, PkiError> {
    let bad = |m: &str| PkiError::InvalidSpec(format!("service CIDR {cidr:?}: {m}"));
    let (addr, len) = cidr.split_once('/').ok_or_else(|| bad("missing /prefix"))?;
    let addr: IpAddr = addr.trim().parse().map_err(|_| bad("bad address"))?;
    let len: u32 = len.trim().parse().map_err(|_| bad("bad prefix length"))?;
    match addr {
        IpAddr::V4(a) => {
            if len > 30 {
                return Err(bad("prefix too long (at most /30)"));
            }
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            Ok(IpAddr::V4(((u32::from(a) & mask) + 1).into()))
        }
        IpAddr::V6(a) => {
            if len > 126 {
                return Err(bad("prefix too long (at most /126)"));
            }
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            Ok(IpAddr::V6(((u128::from(a) & mask) + 1).into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PkiSpec {
        PkiSpec::new(
            "kubernetes",
            Endpoint {
                vip: "198.18.0.200".parse().unwrap(),
                port: 16443,
            },
            vec![NodeId::new("m1", "198.18.0.11".parse().unwrap())],
        )
    }

    #[test]
    fn service_ip_is_network_plus_one() {
        assert_eq!(
            first_ip_of_cidr("10.96.0.0/12").unwrap().to_string(),
            "10.96.0.1"
        );
        assert_eq!(
            first_ip_of_cidr("10.100.7.9/16").unwrap().to_string(),
            "10.100.0.1"
        );
        assert_eq!(
            first_ip_of_cidr("fd00:10:96::/108").unwrap().to_string(),
            "fd00:10:96::1"
        );
        assert!(first_ip_of_cidr("10.96.0.0").is_err());
        assert!(first_ip_of_cidr("10.96.0.0/32").is_err());
        assert!(first_ip_of_cidr("banana/12").is_err());
        let mut s = spec();
        s.service_cidr = "10.96.0.0/12,fd00::/108".into();
        assert_eq!(s.first_service_ip().unwrap().to_string(), "10.96.0.1");
    }

    #[test]
    fn validate_rejects_bad_names_and_conflicts() {
        assert!(spec().validate().is_ok());
        let mut s = spec();
        s.control_plane[0].name = "../etc".into();
        assert!(s.validate().is_err());
        let mut s = spec();
        s.etcd[0].address = "198.18.0.99".parse().unwrap();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("as etcd member")
        );
        let mut s = spec();
        s.control_plane.push(s.control_plane[0].clone());
        assert!(s.validate().unwrap_err().to_string().contains("twice"));
        let mut s = spec();
        s.extra_sans = vec!["not a name".into()];
        assert!(s.validate().is_err());
        let mut s = spec();
        s.extra_sans = vec!["*.api.example.com".into(), "2001:db8::1".into()];
        assert!(s.validate().is_ok());
    }

    #[test]
    fn versions() {
        assert!(KubeVersion::parse("v1.29.3").unwrap().has_super_admin());
        assert!(!KubeVersion::parse("1.28").unwrap().has_super_admin());
        assert!(KubeVersion::parse("1").is_err());
    }

    #[test]
    fn yaml_spec_with_defaults() {
        let s = PkiSpec::from_yaml(
            "endpoint: {vip: 198.18.0.100}\ncontrol_plane:\n  - {name: m1, address: 198.18.0.1}\nkey_type: ecdsa-p256\nleaf_validity: 48h\n",
        )
        .unwrap();
        assert_eq!(s.endpoint.port, 16443);
        assert_eq!(s.etcd, s.control_plane);
        assert_eq!(s.key_type, KeyType::EcdsaP256);
        assert_eq!(s.leaf_validity, Duration::from_secs(48 * 3600));
        assert!(PkiSpec::from_yaml("endpoint: {vip: 198.18.0.100}\ncontrol_plane: []\n").is_err());
        assert!(PkiSpec::from_yaml("bogus: 1\n").is_err());
    }
}
