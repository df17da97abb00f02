//! `pki check`: every certificate of a store or of a node's /etc/kubernetes, including
//! those embedded in (or referenced by) kubeconfigs, with days left.

use std::fs;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::PkiError;
use crate::kubeconfig::{Kubeconfig, decode_data};
use crate::x509::{parse_cert, pem_certs};

/// One certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRow {
    /// File (relative to the inspected root), with `#ca` / `#client` for kubeconfig data.
    pub source: String,
    /// Subject.
    pub subject: String,
    /// SANs (`DNS:x`, `IP:y`).
    pub sans: Vec<String>,
    /// notAfter.
    pub not_after: OffsetDateTime,
    /// Whole days from `now` to notAfter (negative once expired).
    pub days_left: i64,
    /// Issuer.
    pub issuer: String,
    /// A CA certificate.
    pub is_ca: bool,
}

/// Result of an inspection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Certificates found, sorted by source.
    pub rows: Vec<CertRow>,
    /// Files that should hold certificates but could not be read.
    pub errors: Vec<(PathBuf, String)>,
}

impl CheckReport {
    /// Rows expiring in fewer than `warn_days` days (or already expired).
    pub fn expiring(&self, warn_days: i64) -> Vec<&CertRow> {
        self.rows
            .iter()
            .filter(|r| r.days_left < warn_days)
            .collect()
    }

    /// True when nothing expires within `warn_days` and every file was readable.
    pub fn ok(&self, warn_days: i64) -> bool {
        self.errors.is_empty() && self.expiring(warn_days).is_empty()
    }

    /// A text table: source, subject, SANs, not-after, days left, issuer.
    pub fn table(&self) -> String {
        let head = ["SOURCE", "SUBJECT", "SANS", "NOT AFTER", "DAYS", "ISSUER"];
        let rows: Vec<[String; 6]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.source.clone(),
                    r.subject.clone(),
                    if r.sans.is_empty() {
                        "-".into()
                    } else {
                        r.sans.join(",")
                    },
                    r.not_after
                        .format(&Rfc3339)
                        .unwrap_or_else(|_| r.not_after.to_string()),
                    r.days_left.to_string(),
                    r.issuer.clone(),
                ]
            })
            .collect();
        let mut w = head.map(str::len);
        for r in &rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.len());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    s.push_str(c);
                } else {
                    s.push_str(&format!("{c:<width$}  ", width = w[i]));
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = line(&head.map(String::from));
        for r in &rows {
            out.push_str(&line(r));
        }
        for (p, e) in &self.errors {
            out.push_str(&format!("ERROR {}: {e}\n", p.display()));
        }
        out
    }
}

/// Inspects a store made by [`crate::Store`] (its `cluster/` and `members/` trees; the
/// `nodes/` copies are not listed twice).
pub fn inspect_store(dir: &Path, now: OffsetDateTime) -> Result<CheckReport, PkiError> {
    let mut report = CheckReport::default();
    let cluster = dir.join("cluster");
    if !cluster.is_dir() {
        return Err(PkiError::NotIssued(cluster));
    }
    for sub in ["cluster", "members"] {
        let base = dir.join(sub);
        if base.is_dir() {
            inspect_into(dir, &base, now, &mut report)?;
        }
    }
    report.rows.sort_by(|a, b| a.source.cmp(&b.source));
    Ok(report)
}

/// Inspects a node's /etc/kubernetes (or any directory): `*.crt`, `*.pem` and kubeconfigs
/// (`*.conf`), following `client-certificate` file references.
pub fn inspect_node_tree(root: &Path, now: OffsetDateTime) -> Result<CheckReport, PkiError> {
    let meta = fs::metadata(root).map_err(|e| PkiError::io(root, e))?;
    if !meta.is_dir() {
        return Err(PkiError::bad(root, "not a directory"));
    }
    let mut report = CheckReport::default();
    inspect_into(root, root, now, &mut report)?;
    report.rows.sort_by(|a, b| a.source.cmp(&b.source));
    Ok(report)
}

fn inspect_into(
    root: &Path,
    dir: &Path,
    now: OffsetDateTime,
    report: &mut CheckReport,
) -> Result<(), PkiError> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = fs::read_dir(&d).map_err(|e| PkiError::io(&d, e))?;
        for e in rd.flatten() {
            let p = e.path();
            let Ok(lmeta) = fs::symlink_metadata(&p) else {
                continue;
            };
            if lmeta.is_dir() {
                stack.push(p);
                continue;
            }
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
            if name.starts_with('.') {
                continue;
            }
            if name.ends_with(".crt") || name.ends_with(".pem") {
                match fs::read(&p) {
                    Ok(b) => add_pem(&rel, &p, &b, now, report),
                    Err(e) => report.errors.push((p.clone(), e.to_string())),
                }
            } else if name.ends_with(".conf") {
                inspect_kubeconfig(&rel, &p, now, report);
            }
        }
    }
    Ok(())
}

fn add_pem(source: &str, path: &Path, bytes: &[u8], now: OffsetDateTime, report: &mut CheckReport) {
    let ders = match pem_certs(bytes) {
        Ok(d) => d,
        Err(e) => {
            // A key-only .pem is fine.
            if !String::from_utf8_lossy(bytes).contains("PRIVATE KEY-----") {
                report.errors.push((path.to_path_buf(), e));
            }
            return;
        }
    };
    let many = ders.len() > 1;
    for (i, der) in ders.iter().enumerate() {
        match parse_cert(der) {
            Ok(info) => {
                let secs = (info.not_after - now).whole_seconds();
                report.rows.push(CertRow {
                    source: if many {
                        format!("{source}[{i}]")
                    } else {
                        source.to_string()
                    },
                    subject: info.subject.clone(),
                    sans: info.sans.iter().map(|s| s.to_string()).collect(),
                    not_after: info.not_after,
                    days_left: secs.div_euclid(86400),
                    issuer: info.issuer.clone(),
                    is_ca: info.is_ca,
                });
            }
            Err(e) => report.errors.push((path.to_path_buf(), e)),
        }
    }
}

fn inspect_kubeconfig(rel: &str, path: &Path, now: OffsetDateTime, report: &mut CheckReport) {
    let text =
        match fs::read(path).map(|b| String::from_utf8(b).map_err(|_| "not UTF-8".to_string())) {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return report.errors.push((path.to_path_buf(), e)),
            Err(e) => return report.errors.push((path.to_path_buf(), e.to_string())),
        };
    let kc = match Kubeconfig::parse(&text) {
        Ok(k) => k,
        Err(e) => {
            return report
                .errors
                .push((path.to_path_buf(), format!("not a kubeconfig: {e}")));
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    for c in &kc.clusters {
        if let Some(d) = &c.cluster.certificate_authority_data {
            match decode_data(d) {
                Ok(b) => add_pem(&format!("{rel}#ca[{}]", c.name), path, &b, now, report),
                Err(e) => report.errors.push((path.to_path_buf(), e)),
            }
        }
    }
    for u in &kc.users {
        if let Some(d) = &u.user.client_certificate_data {
            match decode_data(d) {
                Ok(b) => add_pem(&format!("{rel}#client[{}]", u.name), path, &b, now, report),
                Err(e) => report.errors.push((path.to_path_buf(), e)),
            }
        } else if let Some(f) = &u.user.client_certificate {
            let p = dir.join(f);
            match fs::read(&p) {
                Ok(b) => add_pem(
                    &format!("{rel}#client[{}] -> {}", u.name, p.display()),
                    &p,
                    &b,
                    now,
                    report,
                ),
                Err(e) => report.errors.push((p, format!("referenced by {rel}: {e}"))),
            }
        }
    }
}
