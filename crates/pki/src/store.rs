//! The on-disk store: `issue`, `renew`, per-node trees and per-node artifacts.
//!
//! Layout under the store directory:
//!
//! ```text
//! cluster/pki/...            shared material, laid out like /etc/kubernetes/pki
//! cluster/*.conf             admin.conf, super-admin.conf, controller-manager.conf, scheduler.conf
//! members/<node>/pki/etcd/   each etcd member's server.{crt,key} and peer.{crt,key}
//! nodes/<node>/...           per-node trees, ready to copy to /etc/kubernetes (copies)
//! replaced/<unix-time>/...   CAs moved aside by an explicit --replace-ca
//! cluster-name               the name of the cluster the store belongs to
//! ```
//!
//! A store belongs to one cluster: `issue` writes `cluster-name` (and adopts a store made
//! before that file existed), and `issue` and `node_artifacts` refuse a spec of another
//! cluster, so two inventories side by side never mix their certificates.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::KeyPair;
use time::OffsetDateTime;

use crate::error::PkiError;
use crate::fsutil::{CERT_MODE, KEY_MODE, create_dir, fix_mode, read_opt, write_atomic};
use crate::kubeconfig::{Kubeconfig, decode_data};
use crate::layout::{self, CaKind, KubeconfigDef, LeafDef};
use crate::spec::{KeyType, PkiSpec};
use crate::x509::{
    BACKDATE, Ca, LeafTemplate, generate_key, key_type_of, parse_cert, parse_key, pem_certs,
    public_key_pem, verify_signed_by,
};

/// The file in the store directory naming the cluster the store belongs to.
pub const CLUSTER_MARKER: &str = "cluster-name";

/// Where `/etc/kubernetes` artifacts are rooted on a node.
pub const NODE_ROOT: &str = "/etc/kubernetes";

/// Options of [`Store::issue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueOptions {
    /// CAs (or `sa`) to replace even though, or because, the existing one cannot be reused.
    /// Without this, an unusable CA is an error and a valid one is always kept.
    pub replace_ca: BTreeSet<CaKind>,
    /// Leaves expiring sooner than this are reissued (default 30 days).
    pub renew_before: Duration,
}

impl Default for IssueOptions {
    fn default() -> Self {
        IssueOptions {
            replace_ca: BTreeSet::new(),
            renew_before: Duration::from_secs(30 * 86400),
        }
    }
}

/// What happened to one file (or key/cert pair).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Did not exist; created.
    Created,
    /// Existed and was valid; left untouched.
    Reused,
    /// Existed but could not be kept; a new key and certificate were issued.
    Reissued(String),
    /// The same credentials, rewritten (kubeconfig server changed, sa.pub regenerated, ...).
    Rewritten(String),
    /// A CA (or sa) replaced on explicit request; the old files were moved aside.
    Replaced(String),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Created => f.write_str("created"),
            Action::Reused => f.write_str("reused"),
            Action::Reissued(r) => write!(f, "reissued: {r}"),
            Action::Rewritten(r) => write!(f, "rewritten: {r}"),
            Action::Replaced(r) => write!(f, "replaced: {r}"),
        }
    }
}

/// One line of a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportEntry {
    /// `ca`, `apiserver`, `etcd/server[m1]`, `admin.conf`, ...
    pub name: String,
    /// The certificate or kubeconfig, relative to the store.
    pub path: PathBuf,
    /// What happened.
    pub action: Action,
}

/// Result of [`Store::issue`] / [`Store::renew`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every CA, key pair, leaf and kubeconfig, in issue order.
    pub entries: Vec<ReportEntry>,
    /// Things worth telling (CA expiring, key modes fixed, stale node trees, ...).
    pub warnings: Vec<String>,
    /// Files written into `nodes/<node>/` per node.
    pub node_files_written: BTreeMap<String, usize>,
}

impl Report {
    /// The entry of `name`.
    pub fn get(&self, name: &str) -> Option<&ReportEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Entries whose action is not [`Action::Reused`].
    pub fn changed(&self) -> impl Iterator<Item = &ReportEntry> {
        self.entries.iter().filter(|e| e.action != Action::Reused)
    }

    fn push(&mut self, name: &str, path: &str, action: Action) {
        self.entries.push(ReportEntry {
            name: name.into(),
            path: path.into(),
            action,
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self
            .entries
            .iter()
            .map(|e| e.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        for e in &self.entries {
            writeln!(f, "{:<w$}  {}", e.name, e.action)?;
        }
        for (node, n) in &self.node_files_written {
            if *n > 0 {
                writeln!(f, "nodes/{node}: {n} file(s) written")?;
            }
        }
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        Ok(())
    }
}

/// A file for a node: absolute path on the node, mode, content.
#[derive(Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Absolute path on the node (under /etc/kubernetes).
    pub path: PathBuf,
    /// File mode (0600 for keys and kubeconfigs, 0644 otherwise).
    pub mode: u32,
    /// Content.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Artifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Artifact({} {:o} {} bytes)",
            self.path.display(),
            self.mode,
            self.bytes.len()
        )
    }
}

/// Options of [`Store::renew`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenewOptions {
    /// New validity; `None` keeps each certificate's previous validity period.
    pub leaf_validity: Option<Duration>,
}

/// The PKI store directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

enum Loaded<T> {
    Missing,
    Unusable(String),
    Ok(T),
}

impl Store {
    /// A store rooted at `dir` (created on first write, mode 0700).
    pub fn open(dir: impl Into<PathBuf>) -> Store {
        Store { root: dir.into() }
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The admin kubeconfig (`cluster/admin.conf`), whose server is the VIP endpoint.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.p("cluster/admin.conf")
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, PkiError> {
        read_opt(&self.p(rel))
    }

    /// Issues (or reuses) the whole layout for `spec`, then refreshes `nodes/<node>/`.
    ///
    /// Existing CAs are always reused; a CA that cannot be reused (expired, key missing or not
    /// matching, unreadable) is an error unless named in `opts.replace_ca`. Leaves are reused
    /// when valid for the spec and reissued (with the reason) otherwise.
    pub fn issue(
        &self,
        spec: &PkiSpec,
        now: OffsetDateTime,
        opts: &IssueOptions,
    ) -> Result<Report, PkiError> {
        spec.validate()?;
        let marked = self.check_cluster(spec)?;
        let mut report = Report::default();

        // Decide about every CA before writing anything.
        let mut states = Vec::new();
        for kind in CaKind::ALL {
            let st = self.load_ca(kind, now)?;
            if let Loaded::Unusable(reason) = &st
                && !opts.replace_ca.contains(&kind)
            {
                return Err(PkiError::CaNeedsReplacement {
                    ca: kind.name().into(),
                    path: self.p(kind.cert_rel()),
                    reason: reason.clone(),
                    breaks: kind.breaks().into(),
                });
            }
            states.push((kind, st));
        }
        create_dir(&self.root)?;
        if !marked {
            let name = format!("{}\n", spec.cluster_name);
            write_atomic(&self.p(CLUSTER_MARKER), name.as_bytes(), CERT_MODE)?;
        }

        let mut cas: BTreeMap<CaKind, Ca> = BTreeMap::new();
        for (kind, st) in states {
            let replace = opts.replace_ca.contains(&kind);
            let action = match st {
                Loaded::Ok(_) | Loaded::Unusable(_) if replace => {
                    let why = match &st {
                        Loaded::Unusable(r) => r.clone(),
                        _ => "requested with --replace-ca".into(),
                    };
                    let kept = self.move_aside(kind, now)?;
                    Action::Replaced(format!("{why}; old files in {kept}/"))
                }
                Loaded::Ok(existing) => {
                    self.check_key_mode(kind.key_rel(), &mut report)?;
                    match existing {
                        CaOrSa::Ca(ca) => {
                            let left = ca.not_after - now;
                            if left
                                < time::Duration::try_from(opts.renew_before)
                                    .unwrap_or(time::Duration::MAX)
                            {
                                report.warnings.push(format!(
                                    "{} expires on {} ({} days); plan a CA rotation (--replace-ca {})",
                                    kind.name(),
                                    ca.not_after.date(),
                                    left.whole_days(),
                                    kind.name()
                                ));
                            }
                            if let Some(kt) = ca_key_type(&ca)
                                && kt != spec.key_type
                            {
                                report.warnings.push(format!(
                                    "{} has a {kt} key while the spec asks for {}; it is kept (use --replace-ca {} to change it)",
                                    kind.name(),
                                    spec.key_type,
                                    kind.name()
                                ));
                            }
                            cas.insert(kind, *ca);
                        }
                        CaOrSa::Sa(key) => {
                            let pub_pem = public_key_pem(&key);
                            if self.read(kind.cert_rel())?.as_deref() != Some(pub_pem.as_bytes()) {
                                write_atomic(
                                    &self.p(kind.cert_rel()),
                                    pub_pem.as_bytes(),
                                    CERT_MODE,
                                )?;
                                report.push(
                                    kind.name(),
                                    kind.cert_rel(),
                                    Action::Rewritten("sa.pub derived again from sa.key".into()),
                                );
                                continue;
                            }
                        }
                    }
                    report.push(kind.name(), kind.cert_rel(), Action::Reused);
                    continue;
                }
                Loaded::Missing | Loaded::Unusable(_) => Action::Created,
            };
            // Create (or replace).
            if kind == CaKind::ServiceAccount {
                let key = generate_key(spec.key_type)?;
                write_atomic(
                    &self.p(kind.key_rel()),
                    key.serialize_pem().as_bytes(),
                    KEY_MODE,
                )?;
                write_atomic(
                    &self.p(kind.cert_rel()),
                    public_key_pem(&key).as_bytes(),
                    CERT_MODE,
                )?;
            } else {
                let ca = Ca::generate(kind.cn(), spec.key_type, spec.ca_validity, now)?;
                write_atomic(&self.p(kind.key_rel()), ca.key_pem.as_bytes(), KEY_MODE)?;
                write_atomic(&self.p(kind.cert_rel()), ca.cert_pem.as_bytes(), CERT_MODE)?;
                cas.insert(kind, ca);
            }
            report.push(kind.name(), kind.cert_rel(), action);
        }

        let defs = layout::leaves(spec)?;
        let results = parallel_map(&defs, |def| {
            let ca = &cas[&def.signer];
            self.ensure_leaf(def, ca, spec, now, opts)
        });
        for (def, r) in defs.iter().zip(results) {
            let (action, warning) = r?;
            report.warnings.extend(warning);
            self.check_key_mode(&def.key_rel, &mut report)?;
            report.push(&def.name, &def.cert_rel, action);
        }
        for k in layout::kubeconfigs(spec) {
            let (action, warning) =
                self.ensure_kubeconfig(&k, &cas[&CaKind::Ca], spec, now, opts)?;
            report.warnings.extend(warning);
            self.check_key_mode(&k.rel, &mut report)?;
            report.push(&k.name, &k.rel, action);
        }

        self.sync_nodes(spec, &mut report)?;
        Ok(report)
    }

    /// Per node, every file it needs, with its absolute path under /etc/kubernetes, its mode
    /// and its bytes, read from the store (run [`Store::issue`] first). Control-plane joins
    /// need no `--upload-certs` with these.
    pub fn node_artifacts(
        &self,
        spec: &PkiSpec,
    ) -> Result<BTreeMap<String, Vec<Artifact>>, PkiError> {
        spec.validate()?;
        self.check_cluster(spec)?;
        let mut out = BTreeMap::new();
        for (node, files) in layout::node_files(spec) {
            let mut v = Vec::with_capacity(files.len());
            for f in files {
                let bytes = self
                    .read(&f.source)?
                    .ok_or_else(|| PkiError::NotIssued(self.p(&f.source)))?;
                v.push(Artifact {
                    path: Path::new(NODE_ROOT).join(&f.dest),
                    mode: f.mode,
                    bytes,
                });
            }
            out.insert(node, v);
        }
        Ok(out)
    }

    /// Refuses a spec of another cluster than the one named in the store's `cluster-name`;
    /// returns whether that file exists (a store without it belongs to whoever issues next).
    fn check_cluster(&self, spec: &PkiSpec) -> Result<bool, PkiError> {
        let Some(bytes) = self.read(CLUSTER_MARKER)? else {
            return Ok(false);
        };
        let store = String::from_utf8_lossy(&bytes).trim().to_string();
        if store != spec.cluster_name {
            return Err(PkiError::OtherCluster {
                dir: self.root.clone(),
                store,
                wanted: spec.cluster_name.clone(),
            });
        }
        Ok(true)
    }

    /// The directory holding the tree of `node` (copy its content to /etc/kubernetes).
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.root.join("nodes").join(node)
    }

    fn sync_nodes(&self, spec: &PkiSpec, report: &mut Report) -> Result<(), PkiError> {
        let arts = self.node_artifacts(spec)?;
        for (node, files) in &arts {
            let mut n = 0;
            for a in files {
                let rel = a.path.strip_prefix(NODE_ROOT).unwrap_or(&a.path);
                let dest = self.node_dir(node).join(rel);
                if read_opt(&dest)?.as_deref() != Some(a.bytes.as_slice()) {
                    write_atomic(&dest, &a.bytes, a.mode)?;
                    n += 1;
                } else if let Some(old) = fix_mode(&dest, a.mode)? {
                    report.warnings.push(format!(
                        "{} had mode {old:o}; set to {:o}",
                        dest.display(),
                        a.mode
                    ));
                }
            }
            report.node_files_written.insert(node.clone(), n);
        }
        if let Ok(rd) = fs::read_dir(self.root.join("nodes")) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !arts.contains_key(&name) {
                    report.warnings.push(format!(
                        "nodes/{name} belongs to no node of the spec; it was left as it is"
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_key_mode(&self, rel: &str, report: &mut Report) -> Result<(), PkiError> {
        if let Some(old) = fix_mode(&self.p(rel), KEY_MODE)? {
            report
                .warnings
                .push(format!("{rel} had mode {old:o}; set to 600"));
        }
        Ok(())
    }

    fn load_ca(&self, kind: CaKind, now: OffsetDateTime) -> Result<Loaded<CaOrSa>, PkiError> {
        let cert = self.read(kind.cert_rel())?;
        let key = self.read(kind.key_rel())?;
        let file = |rel: &str| rel.strip_prefix("cluster/pki/").unwrap_or(rel).to_string();
        if kind == CaKind::ServiceAccount {
            return Ok(match (key, cert) {
                (None, None) => Loaded::Missing,
                (None, Some(_)) => Loaded::Unusable(format!("{} is missing", file(kind.key_rel()))),
                (Some(k), _) => match parse_key(&k) {
                    Ok(k) => Loaded::Ok(CaOrSa::Sa(k)),
                    Err(e) => Loaded::Unusable(format!("{}: {e}", file(kind.key_rel()))),
                },
            });
        }
        Ok(match (cert, key) {
            (None, None) => Loaded::Missing,
            (Some(_), None) => Loaded::Unusable(format!("{} is missing", file(kind.key_rel()))),
            (None, Some(_)) => Loaded::Unusable(format!("{} is missing", file(kind.cert_rel()))),
            (Some(c), Some(k)) => match Ca::load(&c, &k) {
                Err(e) => Loaded::Unusable(e),
                Ok(ca) if ca.not_after <= now => {
                    Loaded::Unusable(format!("expired on {}", ca.not_after))
                }
                Ok(ca) => Loaded::Ok(CaOrSa::Ca(Box::new(ca))),
            },
        })
    }

    /// Moves a CA's files to `replaced/<unix-time>[-n]/...` (never over an earlier backup).
    /// Returns the directory used, relative to the store.
    fn move_aside(&self, kind: CaKind, now: OffsetDateTime) -> Result<String, PkiError> {
        let ts = now.unix_timestamp();
        let mut rel_dir = format!("replaced/{ts}");
        let mut n = 0;
        while [kind.cert_rel(), kind.key_rel()]
            .iter()
            .any(|rel| self.root.join(&rel_dir).join(rel).exists())
        {
            n += 1;
            rel_dir = format!("replaced/{ts}-{n}");
        }
        let dir = self.root.join(&rel_dir);
        for rel in [kind.cert_rel(), kind.key_rel()] {
            let from = self.p(rel);
            if from.exists() {
                let to = dir.join(rel);
                create_dir(to.parent().unwrap_or(&dir))?;
                fs::rename(&from, &to).map_err(|e| PkiError::io(&from, e))?;
            }
        }
        Ok(rel_dir)
    }

    fn ensure_leaf(
        &self,
        def: &LeafDef,
        ca: &Ca,
        spec: &PkiSpec,
        now: OffsetDateTime,
        opts: &IssueOptions,
    ) -> Result<(Action, Option<String>), PkiError> {
        let cert = self.read(&def.cert_rel)?;
        let key = self.read(&def.key_rel)?;
        let action = if cert.is_none() && key.is_none() {
            Action::Created
        } else {
            match judge_leaf(
                cert.as_deref(),
                key.as_deref(),
                &def.template,
                ca,
                spec.key_type,
                now,
                opts.renew_before,
            ) {
                Ok(()) => return Ok((Action::Reused, None)),
                Err(reason) => Action::Reissued(reason),
            }
        };
        let key = generate_key(spec.key_type)?;
        let (pem, capped) = ca.sign(&def.template, &key, spec.leaf_validity, now)?;
        write_atomic(
            &self.p(&def.key_rel),
            key.serialize_pem().as_bytes(),
            KEY_MODE,
        )?;
        write_atomic(&self.p(&def.cert_rel), pem.as_bytes(), CERT_MODE)?;
        Ok((action, capped.then(|| capped_warning(&def.name))))
    }

    fn ensure_kubeconfig(
        &self,
        def: &KubeconfigDef,
        ca: &Ca,
        spec: &PkiSpec,
        now: OffsetDateTime,
        opts: &IssueOptions,
    ) -> Result<(Action, Option<String>), PkiError> {
        let path = self.p(&def.rel);
        let server = spec.endpoint.url();
        let render = |cert: &str, key: &str| {
            Kubeconfig::new(
                &spec.cluster_name,
                &server,
                &def.user,
                &ca.cert_pem,
                cert,
                key,
            )
            .to_yaml()
            .map_err(|msg| PkiError::Kubeconfig {
                path: path.clone(),
                msg,
            })
        };
        let action = match read_opt(&path)? {
            None => Action::Created,
            Some(bytes) => match existing_credentials(&bytes) {
                Err(reason) => Action::Reissued(reason),
                Ok((old, cert, key)) => {
                    match judge_leaf(
                        Some(cert.as_bytes()),
                        Some(key.as_bytes()),
                        &def.template,
                        ca,
                        spec.key_type,
                        now,
                        opts.renew_before,
                    ) {
                        Err(reason) => Action::Reissued(reason),
                        Ok(()) => {
                            let text = render(&cert, &key)?;
                            if text.as_bytes() == bytes.as_slice() {
                                return Ok((Action::Reused, None));
                            }
                            let old_server = old
                                .current_cluster()
                                .map(|c| c.cluster.server.clone())
                                .unwrap_or_default();
                            let why = if old_server != server {
                                format!("server changed from {old_server} to {server}")
                            } else {
                                "cluster name, user name or CA data changed".into()
                            };
                            write_atomic(&path, text.as_bytes(), KEY_MODE)?;
                            return Ok((Action::Rewritten(why), None));
                        }
                    }
                }
            },
        };
        let key = generate_key(spec.key_type)?;
        let (pem, capped) = ca.sign(&def.template, &key, spec.leaf_validity, now)?;
        let text = render(&pem, &key.serialize_pem())?;
        write_atomic(&path, text.as_bytes(), KEY_MODE)?;
        Ok((action, capped.then(|| capped_warning(&def.name))))
    }

    /// Names [`Store::renew`] accepts, from what exists in the store.
    pub fn leaf_names(&self) -> Result<Vec<String>, PkiError> {
        Ok(self
            .existing_leaves()?
            .into_iter()
            .map(|l| l.name)
            .collect())
    }

    fn existing_leaves(&self) -> Result<Vec<Existing>, PkiError> {
        let mut v = Vec::new();
        for name in layout::SHARED_LEAVES {
            let cert_rel = format!("cluster/pki/{name}.crt");
            if self.p(&cert_rel).exists() {
                v.push(Existing {
                    name: name.into(),
                    key_rel: format!("cluster/pki/{name}.key"),
                    cert_rel,
                    kubeconfig: false,
                });
            }
        }
        for member in list_dir(&self.root.join("members"))? {
            for kind in ["server", "peer"] {
                let cert_rel = format!("members/{member}/pki/etcd/{kind}.crt");
                if self.p(&cert_rel).exists() {
                    v.push(Existing {
                        name: format!("etcd/{kind}[{member}]"),
                        key_rel: format!("members/{member}/pki/etcd/{kind}.key"),
                        cert_rel,
                        kubeconfig: false,
                    });
                }
            }
        }
        for f in list_dir(&self.root.join("cluster"))? {
            if f.ends_with(".conf") {
                v.push(Existing {
                    cert_rel: format!("cluster/{f}"),
                    key_rel: String::new(),
                    name: f,
                    kubeconfig: true,
                });
            }
        }
        Ok(v)
    }

    /// Reissues leaves (all, or those named `only`: an exact name such as `apiserver`,
    /// `etcd/server[m1]`, `admin.conf`, or a base name such as `etcd/server` for every
    /// member) with the existing CAs, new keys, the same subject, SANs and usages, then
    /// refreshes the files of the existing `nodes/<node>/` trees.
    pub fn renew(
        &self,
        now: OffsetDateTime,
        only: Option<&str>,
        opts: &RenewOptions,
    ) -> Result<Report, PkiError> {
        let all = self.existing_leaves()?;
        if all.is_empty() {
            return Err(PkiError::NotIssued(self.p("cluster/pki/apiserver.crt")));
        }
        let chosen: Vec<&Existing> = all
            .iter()
            .filter(|l| only.is_none_or(|o| l.name == o || l.name.split('[').next() == Some(o)))
            .collect();
        if chosen.is_empty() {
            return Err(PkiError::UnknownName {
                name: only.unwrap_or_default().into(),
                known: all
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let mut cas = BTreeMap::new();
        for kind in [CaKind::Ca, CaKind::FrontProxyCa, CaKind::EtcdCa] {
            let ca = match self.load_ca(kind, now)? {
                Loaded::Ok(CaOrSa::Ca(ca)) => *ca,
                Loaded::Missing => return Err(PkiError::NotIssued(self.p(kind.cert_rel()))),
                Loaded::Unusable(reason) => {
                    return Err(PkiError::CaNeedsReplacement {
                        ca: kind.name().into(),
                        path: self.p(kind.cert_rel()),
                        reason,
                        breaks: kind.breaks().into(),
                    });
                }
                Loaded::Ok(CaOrSa::Sa(_)) => {
                    return Err(PkiError::bad(self.p(kind.cert_rel()), "not a CA"));
                }
            };
            cas.insert(kind, ca);
        }
        let mut report = Report::default();
        for l in chosen {
            let signer = if l.kubeconfig {
                CaKind::Ca
            } else {
                layout::signer_of(&l.name)
            };
            let ca = &cas[&signer];
            let warning = if l.kubeconfig {
                self.renew_kubeconfig(l, ca, now, opts)?
            } else {
                self.renew_leaf(l, ca, now, opts)?
            };
            report.warnings.extend(warning);
            report.push(&l.name, &l.cert_rel, Action::Reissued("renewed".into()));
        }
        self.resync_existing_nodes(&mut report)?;
        Ok(report)
    }

    fn renew_leaf(
        &self,
        l: &Existing,
        ca: &Ca,
        now: OffsetDateTime,
        opts: &RenewOptions,
    ) -> Result<Option<String>, PkiError> {
        let path = self.p(&l.cert_rel);
        let bytes = self
            .read(&l.cert_rel)?
            .ok_or_else(|| PkiError::NotIssued(path.clone()))?;
        let info = pem_certs(&bytes)
            .and_then(|d| parse_cert(&d[0]))
            .map_err(|m| PkiError::bad(&path, m))?;
        let old_key = self.read(&l.key_rel)?.and_then(|k| parse_key(&k).ok());
        let (tmpl, kt, validity) =
            renewal_params(&info, old_key.as_ref(), opts).map_err(|m| PkiError::bad(&path, m))?;
        let key = generate_key(kt)?;
        let (pem, capped) = ca.sign(&tmpl, &key, validity, now)?;
        write_atomic(
            &self.p(&l.key_rel),
            key.serialize_pem().as_bytes(),
            KEY_MODE,
        )?;
        write_atomic(&path, pem.as_bytes(), CERT_MODE)?;
        Ok(capped.then(|| capped_warning(&l.name)))
    }

    fn renew_kubeconfig(
        &self,
        l: &Existing,
        ca: &Ca,
        now: OffsetDateTime,
        opts: &RenewOptions,
    ) -> Result<Option<String>, PkiError> {
        let path = self.p(&l.cert_rel);
        let bytes = self
            .read(&l.cert_rel)?
            .ok_or_else(|| PkiError::NotIssued(path.clone()))?;
        let (mut kc, cert, key) =
            existing_credentials(&bytes).map_err(|msg| PkiError::Kubeconfig {
                path: path.clone(),
                msg,
            })?;
        let info = pem_certs(cert.as_bytes())
            .and_then(|d| parse_cert(&d[0]))
            .map_err(|msg| PkiError::Kubeconfig {
                path: path.clone(),
                msg,
            })?;
        let old_key = parse_key(key.as_bytes()).ok();
        let (tmpl, kt, validity) =
            renewal_params(&info, old_key.as_ref(), opts).map_err(|msg| PkiError::Kubeconfig {
                path: path.clone(),
                msg,
            })?;
        let new_key = generate_key(kt)?;
        let (pem, capped) = ca.sign(&tmpl, &new_key, validity, now)?;
        let fresh = Kubeconfig::new("x", "x", "x", &ca.cert_pem, &pem, &new_key.serialize_pem());
        let user_name = kc.current_user().map(|u| u.name.clone());
        for u in kc
            .users
            .iter_mut()
            .filter(|u| Some(&u.name) == user_name.as_ref())
        {
            u.user.client_certificate_data = fresh.users[0].user.client_certificate_data.clone();
            u.user.client_key_data = fresh.users[0].user.client_key_data.clone();
        }
        let text = kc.to_yaml().map_err(|msg| PkiError::Kubeconfig {
            path: path.clone(),
            msg,
        })?;
        write_atomic(&path, text.as_bytes(), KEY_MODE)?;
        Ok(capped.then(|| capped_warning(&l.name)))
    }

    /// Refreshes every file of every existing `nodes/<node>/` tree from its source in the
    /// store (members/<node>/ for etcd server/peer, cluster/ for the rest).
    fn resync_existing_nodes(&self, report: &mut Report) -> Result<(), PkiError> {
        for node in list_dir(&self.root.join("nodes"))? {
            let base = self.node_dir(&node);
            let mut n = 0;
            for rel in walk_files(&base)? {
                let src =
                    if rel.starts_with("pki/etcd/server.") || rel.starts_with("pki/etcd/peer.") {
                        format!("members/{node}/{rel}")
                    } else {
                        format!("cluster/{rel}")
                    };
                let Some(bytes) = self.read(&src)? else {
                    continue;
                };
                let dest = base.join(&rel);
                if read_opt(&dest)?.as_deref() != Some(bytes.as_slice()) {
                    let mode = if rel.ends_with(".key") || rel.ends_with(".conf") {
                        KEY_MODE
                    } else {
                        CERT_MODE
                    };
                    write_atomic(&dest, &bytes, mode)?;
                    n += 1;
                }
            }
            report.node_files_written.insert(node, n);
        }
        Ok(())
    }
}

struct Existing {
    name: String,
    cert_rel: String,
    key_rel: String,
    kubeconfig: bool,
}

enum CaOrSa {
    Ca(Box<Ca>),
    Sa(KeyPair),
}

fn ca_key_type(ca: &Ca) -> Option<KeyType> {
    parse_key(ca.key_pem.as_bytes())
        .ok()
        .as_ref()
        .and_then(key_type_of)
}

fn capped_warning(name: &str) -> String {
    format!("{name}: validity capped at its CA's expiry")
}

/// Template, key type and validity for renewing a certificate as it is.
fn renewal_params(
    info: &crate::x509::CertInfo,
    old_key: Option<&KeyPair>,
    opts: &RenewOptions,
) -> Result<(LeafTemplate, KeyType, Duration), String> {
    let tmpl = info.template().ok_or(
        "certificate has no CN or no serverAuth/clientAuth usage; cannot renew it as it is",
    )?;
    let kt = old_key
        .and_then(key_type_of)
        .or_else(|| info.key_type())
        .unwrap_or_default();
    let validity = match opts.leaf_validity {
        Some(v) => v,
        None => {
            let secs = (info.not_after - info.not_before - BACKDATE)
                .whole_seconds()
                .max(3600);
            Duration::from_secs(secs as u64)
        }
    };
    Ok((tmpl, kt, validity))
}

/// Why an existing leaf (cert + key PEM) cannot be kept, or `Ok` if it can.
fn judge_leaf(
    cert: Option<&[u8]>,
    key: Option<&[u8]>,
    t: &LeafTemplate,
    ca: &Ca,
    want_kt: KeyType,
    now: OffsetDateTime,
    renew_before: Duration,
) -> Result<(), String> {
    let cert = cert.ok_or("certificate missing")?;
    let key = key.ok_or("key missing")?;
    let der = pem_certs(cert)
        .map_err(|e| format!("certificate unreadable: {e}"))?
        .remove(0);
    let info = parse_cert(&der).map_err(|e| format!("certificate unreadable: {e}"))?;
    let key = parse_key(key).map_err(|e| format!("key unreadable: {e}"))?;
    if info.public_key != rcgen::PublicKeyData::der_bytes(&key) {
        return Err("key does not match the certificate".into());
    }
    if !verify_signed_by(&der, &ca.cert_der) {
        return Err("not signed by the current CA".into());
    }
    if info.not_after <= now {
        return Err(format!("expired on {}", info.not_after.date()));
    }
    let left = info.not_after - now;
    if left < time::Duration::try_from(renew_before).unwrap_or(time::Duration::MAX) {
        return Err(format!("expires in {} days", left.whole_days()));
    }
    let want = t.org.iter().cloned().collect::<Vec<_>>();
    if info.cn.as_deref() != Some(t.cn.as_str()) || info.orgs != want {
        return Err(format!("subject changed (was {})", info.subject));
    }
    if info.sans != t.sans {
        let added: Vec<String> = t
            .sans
            .difference(&info.sans)
            .map(|s| s.to_string())
            .collect();
        let removed: Vec<String> = info
            .sans
            .difference(&t.sans)
            .map(|s| s.to_string())
            .collect();
        let mut parts = Vec::new();
        if !added.is_empty() {
            parts.push(format!("added {}", added.join(", ")));
        }
        if !removed.is_empty() {
            parts.push(format!("removed {}", removed.join(", ")));
        }
        return Err(format!("SANs changed: {}", parts.join("; ")));
    }
    if info.usage != Some(t.usage) {
        return Err("extended key usage changed".into());
    }
    let have_kt = key_type_of(&key);
    if have_kt != Some(want_kt) {
        return Err(format!(
            "key type is {}, the spec asks for {want_kt}",
            have_kt
                .map(|k| k.to_string())
                .unwrap_or_else(|| "other".into())
        ));
    }
    Ok(())
}

/// The kubeconfig, and its current user's client certificate and key PEM.
fn existing_credentials(bytes: &[u8]) -> Result<(Kubeconfig, String, String), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "kubeconfig is not UTF-8".to_string())?;
    let kc = Kubeconfig::parse(text).map_err(|e| format!("kubeconfig unreadable: {e}"))?;
    let user = kc.current_user().ok_or("kubeconfig has no current user")?;
    let data = |f: &Option<String>, what: &str| -> Result<String, String> {
        let d = f.as_deref().ok_or(format!("kubeconfig has no {what}"))?;
        String::from_utf8(decode_data(d)?).map_err(|_| format!("{what} is not PEM text"))
    };
    let cert = data(
        &user.user.client_certificate_data,
        "client-certificate-data",
    )?;
    let key = data(&user.user.client_key_data, "client-key-data")?;
    Ok((kc, cert, key))
}

fn list_dir(dir: &Path) -> Result<Vec<String>, PkiError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(PkiError::io(dir, e)),
    };
    let mut v: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    Ok(v)
}

/// Regular files under `base`, as `/`-separated relative paths (no symlinks followed).
fn walk_files(base: &Path) -> Result<Vec<String>, PkiError> {
    let mut out = Vec::new();
    let mut stack = vec![(base.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for name in list_dir(&dir)? {
            let p = dir.join(&name);
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let meta = fs::symlink_metadata(&p).map_err(|e| PkiError::io(&p, e))?;
            if meta.is_dir() {
                stack.push((p, rel));
            } else if meta.is_file() {
                out.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Runs `f` over `items` on up to `available_parallelism` threads, keeping order.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    if threads <= 1 || items.len() < 4 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| s.spawn(|| c.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}
