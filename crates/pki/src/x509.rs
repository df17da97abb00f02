//! Keys, certificate templates, signing, parsing and checking (rcgen + x509-parser + aws-lc-rs).

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, PublicKeyData,
    SanType, SerialNumber,
};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{OID_PKCS1_SHA256WITHRSA, OID_SIG_ECDSA_WITH_SHA256};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::PkiError;
use crate::spec::KeyType;

/// New certificates start 5 minutes in the past, to tolerate clock skew between nodes
/// (kubeadm's `CertificateBackdate`).
pub const BACKDATE: time::Duration = time::Duration::minutes(5);

/// A subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum San {
    /// dNSName.
    Dns(String),
    /// iPAddress.
    Ip(IpAddr),
}

impl San {
    /// An IP if it parses as one, else a DNS name.
    pub fn parse(s: &str) -> San {
        match s.parse::<IpAddr>() {
            Ok(ip) => San::Ip(ip),
            Err(_) => San::Dns(s.to_string()),
        }
    }
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Dns(d) => write!(f, "DNS:{d}"),
            San::Ip(a) => write!(f, "IP:{a}"),
        }
    }
}

/// Extended key usage profile of a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// serverAuth.
    Server,
    /// clientAuth.
    Client,
    /// serverAuth + clientAuth (etcd server and peer, as kubeadm).
    ServerClient,
}

/// What a leaf certificate must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafTemplate {
    /// Subject CN.
    pub cn: String,
    /// Subject O (at most one in the kubeadm layout).
    pub org: Option<String>,
    /// SANs (empty for client certificates).
    pub sans: BTreeSet<San>,
    /// EKU profile.
    pub usage: Usage,
}

impl LeafTemplate {
    /// A client certificate template.
    pub fn client(cn: &str, org: Option<&str>) -> Self {
        LeafTemplate {
            cn: cn.into(),
            org: org.map(Into::into),
            sans: BTreeSet::new(),
            usage: Usage::Client,
        }
    }
}

/// Generates a key of the given type.
pub(crate) fn generate_key(kt: KeyType) -> Result<KeyPair, PkiError> {
    let alg = match kt {
        KeyType::Rsa2048 => &PKCS_RSA_SHA256,
        KeyType::EcdsaP256 => &PKCS_ECDSA_P256_SHA256,
    };
    KeyPair::generate_for(alg).map_err(|e| PkiError::generate(format!("{kt} key"), e))
}

/// The [`KeyType`] of a key, if it is one we issue.
pub(crate) fn key_type_of(key: &KeyPair) -> Option<KeyType> {
    let alg = key.algorithm();
    if alg == &PKCS_RSA_SHA256 {
        Some(KeyType::Rsa2048)
    } else if alg == &PKCS_ECDSA_P256_SHA256 {
        Some(KeyType::EcdsaP256)
    } else {
        None
    }
}

/// Parses a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn parse_key(pem_bytes: &[u8]) -> Result<KeyPair, String> {
    let text = std::str::from_utf8(pem_bytes).map_err(|_| "key is not PEM text".to_string())?;
    KeyPair::from_pem(text).map_err(|e| format!("not a usable private key: {e}"))
}

fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b)
        .map_err(|_| PkiError::generate("serial number", "CSPRNG failure"))?;
    // A positive INTEGER with no leading zero byte.
    b[0] = (b[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&b))
}

fn add(now: OffsetDateTime, d: Duration) -> Result<OffsetDateTime, PkiError> {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| now.checked_add(d))
        .ok_or_else(|| PkiError::generate("certificate", "validity out of range"))
}

/// A loaded or freshly generated CA: certificate plus signing key.
pub(crate) struct Ca {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub key_pem: String,
    pub not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ca(not_after {})", self.not_after)
    }
}

impl Ca {
    /// A new self-signed CA (CN = `cn`).
    pub fn generate(
        cn: &str,
        kt: KeyType,
        validity: Duration,
        now: OffsetDateTime,
    ) -> Result<Ca, PkiError> {
        let key = generate_key(kt)?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyCertSign,
        ];
        p.serial_number = Some(random_serial()?);
        p.not_before = now - BACKDATE;
        p.not_after = add(now, validity)?;
        let cert = p.self_signed(&key).map_err(|e| PkiError::generate(cn, e))?;
        Ca::load(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
            .map_err(|e| PkiError::generate(cn, e))
    }

    /// Loads a CA from PEM; checks it is a CA certificate and the key is its key.
    pub fn load(cert_pem: &[u8], key_pem: &[u8]) -> Result<Ca, String> {
        let ders = pem_certs(cert_pem)?;
        let der = ders.into_iter().next().ok_or("no CERTIFICATE block")?;
        let info = parse_cert(&der)?;
        if !info.is_ca {
            return Err("not a CA certificate (basicConstraints CA:FALSE or missing)".into());
        }
        let key = parse_key(key_pem)?;
        if key.der_bytes() != info.public_key.as_slice() {
            return Err("the private key does not belong to the certificate".into());
        }
        let key_pem = key.serialize_pem();
        let issuer =
            Issuer::from_ca_cert_der(&der.clone().into(), key).map_err(|e| e.to_string())?;
        Ok(Ca {
            cert_pem: pem::encode_config(
                &pem::Pem::new("CERTIFICATE", der.clone()),
                pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
            ),
            cert_der: der,
            key_pem,
            not_after: info.not_after,
            issuer,
        })
    }

    /// Signs a leaf for `key`. Validity is capped at the CA's own expiry; the bool says
    /// whether that happened.
    pub fn sign(
        &self,
        t: &LeafTemplate,
        key: &KeyPair,
        validity: Duration,
        now: OffsetDateTime,
    ) -> Result<(String, bool), PkiError> {
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        if let Some(o) = &t.org {
            dn.push(DnType::OrganizationName, o.as_str());
        }
        dn.push(DnType::CommonName, t.cn.as_str());
        p.distinguished_name = dn;
        p.subject_alt_names = t
            .sans
            .iter()
            .map(|s| match s {
                San::Dns(d) => d
                    .clone()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(|e| PkiError::generate(&t.cn, format!("SAN {d:?}: {e}"))),
                San::Ip(a) => Ok(SanType::IpAddress(*a)),
            })
            .collect::<Result<_, _>>()?;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = match key_type_of(key) {
            Some(KeyType::Rsa2048) | None => vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ],
            Some(KeyType::EcdsaP256) => vec![KeyUsagePurpose::DigitalSignature],
        };
        p.extended_key_usages = match t.usage {
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::ServerClient => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        };
        p.use_authority_key_identifier_extension = true;
        p.serial_number = Some(random_serial()?);
        p.not_before = now - BACKDATE;
        let wanted = add(now, validity)?;
        let capped = wanted > self.not_after;
        p.not_after = if capped { self.not_after } else { wanted };
        let cert = p
            .signed_by(key, &self.issuer)
            .map_err(|e| PkiError::generate(&t.cn, e))?;
        Ok((cert.pem(), capped))
    }
}

/// What we read back from a certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// The DER bytes.
    pub der: Vec<u8>,
    /// Subject, RFC 4514-ish (`CN=..., O=...`).
    pub subject: String,
    /// Issuer, same format.
    pub issuer: String,
    /// Subject CN.
    pub cn: Option<String>,
    /// Subject O values.
    pub orgs: Vec<String>,
    /// SANs (DNS and IP only).
    pub sans: BTreeSet<San>,
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
    /// basicConstraints CA:TRUE.
    pub is_ca: bool,
    /// EKU profile, if the certificate has serverAuth and/or clientAuth.
    pub usage: Option<Usage>,
    /// The raw public key (subjectPublicKey bits).
    pub public_key: Vec<u8>,
    /// The whole DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
}

impl CertInfo {
    /// The key type of the certificate's public key, if one we issue.
    pub fn key_type(&self) -> Option<KeyType> {
        let (_, c) = X509Certificate::from_der(&self.der).ok()?;
        let alg = &c.public_key().algorithm.algorithm;
        if *alg == x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
            Some(KeyType::Rsa2048)
        } else if *alg == x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY {
            Some(KeyType::EcdsaP256)
        } else {
            None
        }
    }

    /// The template this certificate satisfies (used to renew it unchanged).
    pub fn template(&self) -> Option<LeafTemplate> {
        Some(LeafTemplate {
            cn: self.cn.clone()?,
            org: self.orgs.first().cloned(),
            sans: self.sans.clone(),
            usage: self.usage?,
        })
    }
}

/// All `CERTIFICATE` blocks of a PEM file, as DER.
pub fn pem_certs(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let blocks = pem::parse_many(bytes).map_err(|e| format!("not PEM: {e}"))?;
    let certs: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.into_contents())
        .collect();
    if certs.is_empty() {
        return Err("no CERTIFICATE block".into());
    }
    Ok(certs)
}

/// Parses one DER certificate.
pub fn parse_cert(der: &[u8]) -> Result<CertInfo, String> {
    let (rest, c) =
        X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    if !rest.is_empty() {
        return Err("trailing bytes after the certificate".into());
    }
    let mut sans = BTreeSet::new();
    if let Ok(Some(ext)) = c.subject_alternative_name() {
        for g in &ext.value.general_names {
            match g {
                GeneralName::DNSName(d) => {
                    sans.insert(San::Dns(d.to_string()));
                }
                GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*b).ok().map(IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        sans.insert(San::Ip(ip));
                    }
                }
                _ => {}
            }
        }
    }
    let usage = match c.extended_key_usage() {
        Ok(Some(e)) => match (e.value.server_auth, e.value.client_auth) {
            (true, true) => Some(Usage::ServerClient),
            (true, false) => Some(Usage::Server),
            (false, true) => Some(Usage::Client),
            (false, false) => None,
        },
        _ => None,
    };
    let is_ca = matches!(c.basic_constraints(), Ok(Some(b)) if b.value.ca);
    Ok(CertInfo {
        der: der.to_vec(),
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        cn: c
            .subject()
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .map(Into::into),
        orgs: c
            .subject()
            .iter_organization()
            .filter_map(|a| a.as_str().ok().map(String::from))
            .collect(),
        sans,
        not_before: c.validity().not_before.to_datetime(),
        not_after: c.validity().not_after.to_datetime(),
        is_ca,
        usage,
        public_key: c.public_key().subject_public_key.data.to_vec(),
        spki: c.public_key().raw.to_vec(),
    })
}

/// True if `cert_der` names `ca_der`'s subject as issuer and carries a valid signature by
/// its key (RSA PKCS#1 SHA-256 or ECDSA P-256 SHA-256).
pub fn verify_signed_by(cert_der: &[u8], ca_der: &[u8]) -> bool {
    let (Ok((_, c)), Ok((_, ca))) = (
        X509Certificate::from_der(cert_der),
        X509Certificate::from_der(ca_der),
    ) else {
        return false;
    };
    if c.issuer().as_raw() != ca.subject().as_raw() {
        return false;
    }
    let oid = &c.signature_algorithm.algorithm;
    let alg: &'static dyn VerificationAlgorithm = if *oid == OID_PKCS1_SHA256WITHRSA {
        &signature::RSA_PKCS1_2048_8192_SHA256
    } else if *oid == OID_SIG_ECDSA_WITH_SHA256 {
        &signature::ECDSA_P256_SHA256_ASN1
    } else {
        return false;
    };
    UnparsedPublicKey::new(alg, &ca.public_key().subject_public_key.data)
        .verify(c.tbs_certificate.as_ref(), &c.signature_value.data)
        .is_ok()
}

/// kubeadm's discovery hash of a CA certificate (PEM): `sha256:<hex of sha256(DER SPKI)>`.
pub fn discovery_hash(ca_pem: &[u8]) -> Result<String, PkiError> {
    let der = pem_certs(ca_pem)
        .map_err(|m| PkiError::bad("CA certificate", m))?
        .remove(0);
    let info = parse_cert(&der).map_err(|m| PkiError::bad("CA certificate", m))?;
    Ok(spki_hash(&info.spki))
}

/// `sha256:<hex>` of DER SubjectPublicKeyInfo bytes.
pub fn spki_hash(spki_der: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki_der);
    format!("sha256:{}", hex::encode(d.as_ref()))
}

/// The `sa.pub` PEM (`PUBLIC KEY`, DER SubjectPublicKeyInfo) of a key.
pub(crate) fn public_key_pem(key: &KeyPair) -> String {
    key.public_key_pem()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap()
    }

    #[test]
    fn ca_signs_leaf_and_verification_tells_cas_apart() {
        for kt in [KeyType::EcdsaP256, KeyType::Rsa2048] {
            let ca = Ca::generate("test-ca", kt, Duration::from_secs(86400 * 10), now()).unwrap();
            let other =
                Ca::generate("test-ca", kt, Duration::from_secs(86400 * 10), now()).unwrap();
            let key = generate_key(kt).unwrap();
            let mut t = LeafTemplate::client("leaf", Some("grp"));
            t.usage = Usage::ServerClient;
            t.sans.insert(San::parse("198.18.0.1"));
            t.sans.insert(San::parse("node-a"));
            let (pem, capped) = ca
                .sign(&t, &key, Duration::from_secs(86400), now())
                .unwrap();
            assert!(!capped);
            let der = pem_certs(pem.as_bytes()).unwrap().remove(0);
            assert!(verify_signed_by(&der, &ca.cert_der));
            assert!(
                !verify_signed_by(&der, &other.cert_der),
                "same subject, other key"
            );
            let info = parse_cert(&der).unwrap();
            assert_eq!(info.template().unwrap(), t);
            assert_eq!(info.key_type(), Some(kt));
            assert_eq!(info.public_key, key.der_bytes());
            assert_eq!(info.not_before, now() - BACKDATE);
            assert_eq!(info.not_after, now() + time::Duration::days(1));
            assert!(!info.is_ca);
            assert!(
                !ca.cert_pem.contains('\r')
                    && !pem.contains('\r')
                    && !key.serialize_pem().contains('\r')
            );
        }
    }

    #[test]
    fn leaf_validity_is_capped_at_ca_expiry() {
        let ca = Ca::generate("c", KeyType::EcdsaP256, Duration::from_secs(86400), now()).unwrap();
        let key = generate_key(KeyType::EcdsaP256).unwrap();
        let (pem, capped) = ca
            .sign(
                &LeafTemplate::client("x", None),
                &key,
                Duration::from_secs(86400 * 30),
                now(),
            )
            .unwrap();
        assert!(capped);
        let info = parse_cert(&pem_certs(pem.as_bytes()).unwrap()[0]).unwrap();
        assert_eq!(info.not_after, ca.not_after);
    }

    #[test]
    fn damaged_certificates_are_errors_not_panics() {
        let ca = Ca::generate("c", KeyType::EcdsaP256, Duration::from_secs(86400), now()).unwrap();
        let der = ca.cert_der.clone();
        for cut in (0..der.len()).step_by(13) {
            let _ = parse_cert(&der[..cut]);
            assert!(!verify_signed_by(&der[..cut], &ca.cert_der));
        }
        let mut flipped = 0;
        for i in (0..der.len()).step_by(3) {
            let mut d = der.clone();
            d[i] ^= 0x5a;
            let _ = parse_cert(&d);
            flipped += usize::from(!verify_signed_by(&d, &ca.cert_der));
        }
        // Every mutation either fails to parse or breaks the signature.
        assert_eq!(flipped, der.len().div_ceil(3));
        assert!(verify_signed_by(&der, &ca.cert_der));
    }

    #[test]
    fn load_rejects_mismatched_key_and_garbage() {
        let a = Ca::generate("a", KeyType::EcdsaP256, Duration::from_secs(86400), now()).unwrap();
        let b = Ca::generate("b", KeyType::EcdsaP256, Duration::from_secs(86400), now()).unwrap();
        assert!(Ca::load(a.cert_pem.as_bytes(), a.key_pem.as_bytes()).is_ok());
        assert!(
            Ca::load(a.cert_pem.as_bytes(), b.key_pem.as_bytes())
                .unwrap_err()
                .contains("does not belong")
        );
        assert!(Ca::load(b"garbage", a.key_pem.as_bytes()).is_err());
        assert!(
            Ca::load(
                a.cert_pem.as_bytes(),
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            )
            .is_err()
        );
        assert!(discovery_hash(b"not pem").is_err());
    }
}
