//! What a node has already done. After a step succeeds, the node keeps a fingerprint of the
//! step's inputs under `RECORD_DIR`; the next run skips a step whose fingerprint is unchanged
//! and redoes one whose script or files changed. Pure: the executor reads and writes records.

use std::collections::BTreeMap;

use plan::{NodePlan, Step, StepId};
use sha2::{Digest, Sha256};

/// On the node; one file per step, named after the step id.
pub const RECORD_DIR: &str = "/var/lib/kubeha/state/steps";

/// The record file name of a step: `prepare/hosts` → `prepare__hosts`.
pub fn record_name(step_id: StepId) -> String {
    step_id.as_str().replace('/', "__")
}

/// sha256 over everything that decides what a step does: its id, script, and each uploaded
/// file's path, mode, owner and bytes. `masked` strings (this run's bootstrap token) are
/// replaced before hashing: a fresh token is a credential, not a change to converge on.
pub fn fingerprint(step: &Step, node: &NodePlan, digests: &Digests) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(step.id.as_str().as_bytes());
    field(step.run.as_deref().unwrap_or("").as_bytes());
    for path in &step.uploads {
        field(path.as_bytes());
        match node.artifact(path) {
            Some(a) => {
                field(format!("{:o} {}", a.mode, a.owner).as_bytes());
                field(digests.get(path).map_or(&b""[..], |d| d.sha256.as_bytes()));
            }
            None => field(b"<missing>"),
        }
    }
    hex::encode(h.finalize())
}

/// The digest of a file's bytes with masked values replaced, computed once per run (kubeha's
/// own binary is tens of MB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    pub sha256: String,
    /// The file holds a masked value, so its bytes on the node differ every run.
    pub holds_masked: bool,
}

pub type Digests = BTreeMap<String, FileDigest>;

pub fn digests(node: &NodePlan, masked: &[String]) -> Digests {
    let none = plan::Contents::default();
    digests_cached(node, masked, &mut DigestCache::new(&none))
}

/// Digests already computed this run, one per distinct content: the Plan's content store
/// (`plan::Contents`) names each content by its SHA-256 without hashing it again, so kubeha's
/// own binary (tens of MB, on every control-plane node) or a file every worker gets is
/// checked for masked values, and hashed again only if it holds one, once per run.
#[derive(Debug)]
pub struct DigestCache<'p> {
    contents: &'p plan::Contents,
    known: std::collections::HashMap<plan::Digest, FileDigest>,
}

impl<'p> DigestCache<'p> {
    pub fn new(contents: &'p plan::Contents) -> Self {
        DigestCache {
            contents,
            known: Default::default(),
        }
    }
}

pub fn digests_cached(node: &NodePlan, masked: &[String], cache: &mut DigestCache) -> Digests {
    node.artifacts
        .iter()
        .map(|a| {
            let plain = cache.contents.digest(&a.contents);
            let d = cache
                .known
                .entry(plain)
                .or_insert_with(|| digest(&a.contents, plain, masked));
            (a.path.clone(), d.clone())
        })
        .collect()
}

/// `plain` is the SHA-256 of `contents` as they are; a file holding a masked value is hashed
/// again with the values masked.
fn digest(contents: &[u8], plain: plan::Digest, masked: &[String]) -> FileDigest {
    let holds_masked = masked
        .iter()
        .any(|m| !m.is_empty() && contains(contents, m.as_bytes()));
    let sha256 = if holds_masked {
        hex::encode(Sha256::digest(mask(contents, masked)))
    } else {
        plain.to_string()
    };
    FileDigest {
        sha256,
        holds_masked,
    }
}

fn mask(bytes: &[u8], masked: &[String]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for m in masked.iter().filter(|m| !m.is_empty()) {
        let m = m.as_bytes();
        let mut i = 0;
        while i + m.len() <= out.len() {
            if &out[i..i + m.len()] == m {
                out.splice(i..i + m.len(), b"<masked>".iter().copied());
                i += b"<masked>".len();
            } else {
                i += 1;
            }
        }
    }
    out
}

/// The one command that reads what a node has done: its clock (`clock <secs.nanos>`, first,
/// for the cross-node skew check), every record (`step <name> <fingerprint>`) and the sha256 of
/// each of `paths` that exists (`file <sha256> <path>`, to notice files edited since). A few
/// processes whatever the number of records and small files: sshd's ~100 ms per command, not
/// forks, is what a re-run pays. Files of `stamped` (large ones, see `upload::STAMPED_MIN`) are
/// read again only when their stamp no longer matches them: hashing kubeha's own binary took
/// over a second per control-plane node on every re-run.
pub fn read_script(paths: &[&str], stamped: &[&str]) -> String {
    let mut s = format!(
        "printf 'clock %s\\n' \"$(date +%s.%N)\"\n\
         if [ -d {RECORD_DIR} ]; then cd {RECORD_DIR}; grep -H '' -- * 2>/dev/null | sed 's/^\\([^:]*\\):/step \\1 /' || true; cd /; fi\n"
    );
    let as_lines = "sed 's/^\\([0-9a-f]\\{64\\}\\)  /file \\1 /'";
    if !paths.is_empty() {
        let quoted: Vec<String> = paths.iter().map(|p| crate::upload::sh_quote(p)).collect();
        s.push_str(&format!(
            "sha256sum -- {} 2>/dev/null | {as_lines} || true\n",
            quoted.join(" ")
        ));
    }
    if !stamped.is_empty() {
        s.push_str(&format!(
            "kubeha_stamped() {{\n\
             \x20 s=$(stat -c '{stat}' -- \"$1\" 2>/dev/null) || return 0; l=\n\
             \x20 [ -f \"$2\" ] && read -r l < \"$2\" || true\n\
             \x20 if [ -n \"$l\" ] && [ \"${{l#* }}\" = \"$s\" ]; then printf 'file %s %s\\n' \"${{l%% *}}\" \"$1\"\n\
             \x20 else sha256sum -- \"$1\" 2>/dev/null | {as_lines} || true; fi\n\
             }}\n",
            stat = crate::upload::STAMP_STAT,
        ));
        for p in stamped {
            s.push_str(&format!(
                "kubeha_stamped {} {}\n",
                crate::upload::sh_quote(p),
                crate::upload::sh_quote(&format!("{}.stat", crate::upload::file_record(p)))
            ));
        }
    }
    s.push_str(&format!("echo {READ_DONE}\n"));
    s
}

/// The read script's last line: the records and digests before it are complete.
pub const READ_DONE: &str = "kubeha-records-done";

/// Appended to a step's script: written only when everything before it succeeded (`sh -e`).
pub fn write_script(step_id: StepId, fingerprint: &str) -> String {
    format!(
        "mkdir -p {RECORD_DIR} && echo {fingerprint} > {RECORD_DIR}/{name}.tmp && mv -f {RECORD_DIR}/{name}.tmp {RECORD_DIR}/{name}",
        name = record_name(step_id)
    )
}

/// The record name and fingerprint a [`write_script`] line writes, for a scripted transport.
#[cfg(any(test, feature = "fake"))]
pub fn written(script: &str) -> Option<(String, String)> {
    let prefix = format!("mkdir -p {RECORD_DIR} && echo ");
    let rest = script
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))?;
    let (fp, rest) = rest.split_once(" > ")?;
    let name = rest
        .strip_prefix(&format!("{RECORD_DIR}/"))?
        .split_once(".tmp")?
        .0;
    Some((name.to_string(), fp.to_string()))
}

/// What a node reported: step records and the digests of kubeha's files as they are now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Records {
    pub steps: BTreeMap<String, String>,
    pub files: BTreeMap<String, String>,
    /// The node's clock when the read began (seconds since the epoch).
    pub clock: Option<f64>,
}

fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Parses `read_script`'s output; anything else (a login banner) is ignored.
pub fn parse(output: &str) -> Records {
    let mut r = Records::default();
    for l in output.lines() {
        let mut w = l.splitn(3, ' ');
        match (w.next(), w.next(), w.next()) {
            (Some("step"), Some(name), Some(fp)) if is_digest(fp.trim()) => {
                r.steps.insert(name.to_string(), fp.trim().to_string());
            }
            (Some("file"), Some(sha), Some(path)) if is_digest(sha) => {
                r.files.insert(path.to_string(), sha.to_string());
            }
            (Some("clock"), Some(t), None) => r.clock = t.trim().parse().ok(),
            _ => {}
        }
    }
    r
}

/// Files of `step` whose bytes on the node are not what the plan puts there (edited or
/// removed since). Files holding a masked value (the per-run token) are not compared.
fn drifted(step: &Step, files: &BTreeMap<String, String>, digests: &Digests) -> Vec<String> {
    step.uploads
        .iter()
        .filter(|p| match digests.get(p.as_str()) {
            Some(d) if !d.holds_masked => files.get(p.as_str()) != Some(&d.sha256),
            _ => false,
        })
        .cloned()
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    // memchr's search: a naive scan of kubeha's own binary takes seconds in debug builds.
    memchr::memmem::find(hay, needle).is_some()
}

/// What to do with one step now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Done before with the same inputs.
    Unchanged,
    /// Never done, or its inputs changed since (`previous` is the old fingerprint).
    Run { previous: Option<String> },
    /// Done with the same inputs, but these files were changed on the node since.
    Drifted(Vec<String>),
    /// A check: runs every time, nothing to record.
    Check,
    /// Before `--from`.
    BeforeFrom,
    /// Not needed in this run: the join token step when nothing joins.
    NotNeeded,
}

/// Decides every step of a node. `from` (a step id) reruns that step and every later one
/// regardless of records, and leaves earlier ones alone.
pub fn decide(
    node: &NodePlan,
    records: &Records,
    digests: &Digests,
    from: Option<StepId>,
) -> Vec<(StepId, Decision)> {
    let start = from.and_then(|f| node.steps.iter().position(|s| s.id == f));
    // A `--from` step that this node does not have: start at the first step of a later phase.
    let start = match (from, start) {
        (Some(f), None) => node
            .steps
            .iter()
            .position(|s| s.phase() > f.phase())
            .or(Some(node.steps.len())),
        (_, s) => s,
    };
    node.steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let d = match start {
                Some(s) if i < s => Decision::BeforeFrom,
                _ if !step.changes => Decision::Check,
                Some(_) => Decision::Run {
                    previous: records.steps.get(&record_name(step.id)).cloned(),
                },
                None => {
                    let fp = fingerprint(step, node, digests);
                    match records.steps.get(&record_name(step.id)) {
                        Some(old) if *old == fp => {
                            let changed = drifted(step, &records.files, digests);
                            if changed.is_empty() {
                                Decision::Unchanged
                            } else {
                                Decision::Drifted(changed)
                            }
                        }
                        old => Decision::Run {
                            previous: old.cloned(),
                        },
                    }
                }
            };
            (step.id, d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan::Artifact;

    fn node() -> NodePlan {
        let step = |id: StepId, uploads: Vec<&str>, changes| Step {
            id,
            description: String::new(),
            uploads: uploads.into_iter().map(String::from).collect(),
            run: Some(format!("echo {id}")),
            changes,
        };
        NodePlan {
            name: "n1".into(),
            address: "198.18.0.11".into(),
            roles: plan::Roles {
                control_plane: true,
                ..Default::default()
            },
            steps: vec![
                step(StepId::PreflightHost, vec![], false),
                step(StepId::PrepareHosts, vec!["/etc/a"], true),
                step(StepId::EtcdMember, vec!["/etc/b"], true),
                step(StepId::InitKubeadmInit, vec!["/etc/kubeha/init"], true),
            ],
            artifacts: vec![
                Artifact::text("/etc/a", 0o644, "a", "alpha".into()),
                Artifact::text("/etc/b", 0o644, "b", "beta".into()),
                Artifact::text("/etc/kubeha/init", 0o600, "i", "token: abc.def\n".into()),
            ],
        }
    }

    fn all_done(n: &NodePlan, masked: &[String]) -> Records {
        Records {
            steps: n
                .steps
                .iter()
                .filter(|s| s.changes)
                .map(|s| (record_name(s.id), fingerprint(s, n, &digests(n, masked))))
                .collect(),
            files: n
                .artifacts
                .iter()
                .map(|a| (a.path.clone(), hex::encode(Sha256::digest(&a.contents))))
                .collect(),
            clock: None,
        }
    }

    #[test]
    fn a_fresh_node_runs_every_step_and_checks_always_run() {
        let n = node();
        let d = decide(&n, &Records::default(), &digests(&n, &[]), None);
        assert_eq!(d[0].1, Decision::Check);
        assert!(
            d[1..]
                .iter()
                .all(|(_, d)| *d == Decision::Run { previous: None })
        );
    }

    #[test]
    fn recorded_steps_are_skipped_until_a_file_changes() {
        let mut n = node();
        let rec = all_done(&n, &[]);
        let d = decide(&n, &rec, &digests(&n, &[]), None);
        assert!(
            d[1..].iter().all(|(_, d)| *d == Decision::Unchanged),
            "{d:?}"
        );
        n.artifacts[1].contents = b"beta2".as_slice().into();
        let d = decide(&n, &rec, &digests(&n, &[]), None);
        assert_eq!(d[1].1, Decision::Unchanged);
        assert!(matches!(d[2].1, Decision::Run { previous: Some(_) }));
        assert_eq!(d[3].1, Decision::Unchanged);
        n.artifacts[0].mode = 0o600;
        assert!(matches!(
            decide(&n, &rec, &digests(&n, &[]), None)[1].1,
            Decision::Run { .. }
        ));
    }

    #[test]
    fn a_file_edited_on_the_node_reruns_its_step() {
        let n = node();
        let mut rec = all_done(&n, &[]);
        rec.files.insert("/etc/b".into(), "0".repeat(64));
        let d = decide(&n, &rec, &digests(&n, &[]), None);
        assert_eq!(d[2].1, Decision::Drifted(vec!["/etc/b".into()]));
        rec.files.remove("/etc/a");
        assert_eq!(
            decide(&n, &rec, &digests(&n, &[]), None)[1].1,
            Decision::Drifted(vec!["/etc/a".into()])
        );
        // Token-bearing files are not compared: the token is new every run.
        rec.files.remove("/etc/kubeha/init");
        let masked = vec!["abc.def".to_string()];
        let rec2 = Records {
            steps: all_done(&n, &masked).steps,
            files: rec.files.clone(),
            clock: None,
        };
        assert_eq!(
            decide(&n, &rec2, &digests(&n, &masked), None)[3].1,
            Decision::Unchanged
        );
    }

    #[test]
    fn a_changed_script_reruns_the_step() {
        let mut n = node();
        let rec = all_done(&n, &[]);
        n.steps[1].run = Some("echo other".into());
        assert!(matches!(
            decide(&n, &rec, &digests(&n, &[]), None)[1].1,
            Decision::Run { .. }
        ));
    }

    #[test]
    fn a_fresh_token_is_not_a_change() {
        let mut n = node();
        let rec = all_done(&n, &["abc.def".into()]);
        n.artifacts[2].contents = b"token: xyz.uvw\n".as_slice().into();
        let d = decide(&n, &rec, &digests(&n, &["xyz.uvw".into()]), None);
        assert_eq!(d[3].1, Decision::Unchanged);
        // Without the mask the new token is a different file.
        assert!(matches!(
            decide(&n, &rec, &digests(&n, &[]), None)[3].1,
            Decision::Run { .. }
        ));
    }

    #[test]
    fn from_skips_earlier_steps_and_forces_later_ones() {
        let n = node();
        let rec = all_done(&n, &[]);
        let d = decide(&n, &rec, &digests(&n, &[]), Some(StepId::EtcdMember));
        assert_eq!(d[0].1, Decision::BeforeFrom);
        assert_eq!(d[1].1, Decision::BeforeFrom);
        assert!(matches!(d[2].1, Decision::Run { previous: Some(_) }));
        assert!(matches!(d[3].1, Decision::Run { .. }));
        // A step this node lacks: start with the next phase it has.
        let d = decide(&n, &rec, &digests(&n, &[]), Some(StepId::FrontdoorBuiltin));
        assert_eq!(d[2].1, Decision::BeforeFrom);
        assert!(matches!(d[3].1, Decision::Run { .. }));
    }

    #[test]
    fn a_written_record_reads_back() {
        let fp = "b".repeat(64);
        let script = format!("echo hi\n{}\n", write_script(StepId::PrepareHosts, &fp));
        assert_eq!(written(&script), Some(("prepare__hosts".into(), fp)));
    }

    #[test]
    fn a_shared_large_file_is_hashed_once_and_gives_the_same_digest() {
        let big: std::sync::Arc<[u8]> = vec![7u8; 1 << 20].into();
        let mut a = node();
        let mut b = node();
        b.name = "n2".into();
        for n in [&mut a, &mut b] {
            n.artifacts.push(Artifact {
                path: "/usr/local/bin/kubeha".into(),
                mode: 0o755,
                owner: "root:root".into(),
                contents: big.clone(),
                sensitive: false,
                purpose: String::new(),
            });
        }
        let mut contents = plan::Contents::default();
        for n in [&mut a, &mut b] {
            for art in &mut n.artifacts {
                art.contents = contents.intern(&art.contents).1;
            }
        }
        let mut cache = DigestCache::new(&contents);
        let da = digests_cached(&a, &[], &mut cache);
        let distinct = cache.known.len();
        let db = digests_cached(&b, &[], &mut cache);
        assert_eq!(
            cache.known.len(),
            distinct,
            "the second node's files were all known"
        );
        assert_eq!(da, digests(&a, &[]));
        assert_eq!(db["/usr/local/bin/kubeha"], da["/usr/local/bin/kubeha"]);
        assert_eq!(
            da["/usr/local/bin/kubeha"].sha256,
            hex::encode(Sha256::digest(&big))
        );
    }

    /// The read script through a real shell: the clock, and the digest of each file that
    /// exists (a missing one is left out, not an error).
    #[test]
    fn the_read_script_reports_the_clock_and_the_files_that_exist() {
        let dir = tempfile::tempdir().unwrap();
        let there = dir.path().join("there file");
        std::fs::write(&there, "hello\n").unwrap();
        let missing = dir.path().join("missing");
        let (there, missing) = (there.to_str().unwrap(), missing.to_str().unwrap());
        let out = std::process::Command::new("sh")
            .args(["-eu", "-c", &read_script(&[there, missing], &[])])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let r = parse(&String::from_utf8_lossy(&out.stdout));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((r.clock.unwrap() - now).abs() < 60.0, "{r:?}");
        assert_eq!(r.files.len(), 1, "{r:?}");
        assert_eq!(r.files[there], hex::encode(Sha256::digest(b"hello\n")));
    }

    #[test]
    fn records_parse_and_ignore_garbage() {
        let fp = "a".repeat(64);
        let out = format!(
            "step prepare__hosts {fp}\nbroken line\nstep etcd__member short\nfile {fp} /etc/my file\nclock 1700000000.250000000\n"
        );
        let r = parse(&out);
        assert_eq!(r.steps.len(), 1);
        assert_eq!(r.steps["prepare__hosts"], fp);
        assert_eq!(r.files["/etc/my file"], fp);
        assert_eq!(r.clock, Some(1_700_000_000.25));
    }
}
