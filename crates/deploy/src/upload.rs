//! Writing one file on a node through any transport: the bytes go over stdin to a small
//! script that writes a temp file with the final owner and mode, then renames it. A file
//! that differs from what kubeha last wrote there was written by someone else: it is copied
//! to `<path>.kubeha-bak` first and the run says so.

use std::time::Duration;

use plan::Artifact;

use crate::transport::Exec;

/// Where kubeha remembers the digest of each file it wrote.
pub const FILE_RECORDS: &str = "/var/lib/kubeha/state/files";

/// What happened to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Unchanged,
    Written,
    /// Someone else's version was kept at this path before ours replaced it.
    BackedUp(String),
}

/// Single-quotes `s` for sh.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

pub fn exec(a: &Artifact, timeout: Duration) -> Exec {
    let script = format!(
        "p={path}\n\
         umask 022; mkdir -p \"$(dirname \"$p\")\"\n\
         t=\"$p.kubeha-tmp\"; rm -f \"$t\"\n\
         umask 077; cat > \"$t\"\n\
         chown {owner} \"$t\"; chmod {mode:o} \"$t\"\n\
         if [ -f \"$p\" ] && cmp -s \"$t\" \"$p\" && [ \"$(stat -c %a:%U:%G \"$p\")\" = \"$(stat -c %a:%U:%G \"$t\")\" ]; then rm -f \"$t\"; echo unchanged; exit 0; fi\n\
         umask 022; mkdir -p {records}; r={records}/$(printf %s \"$p\" | sha256sum | cut -c1-32)\n\
         if [ -f \"$p\" ] && [ \"$(sha256sum < \"$p\" | cut -c1-64)\" != \"$(cat \"$r\" 2>/dev/null)\" ]; then cp -p \"$p\" \"$p.kubeha-bak\"; echo \"backed-up $p.kubeha-bak\"; fi\n\
         mv -f \"$t\" \"$p\"\n\
         sha256sum < \"$p\" | cut -c1-64 > \"$r\"\n\
         echo written",
        path = sh_quote(&a.path),
        owner = sh_quote(&a.owner),
        mode = a.mode,
        records = FILE_RECORDS,
    );
    Exec {
        script,
        stdin: a.contents.clone(),
        timeout,
    }
}

pub fn parse(stdout: &str) -> Option<Written> {
    let mut out = None;
    for line in stdout.lines() {
        match line.trim() {
            "unchanged" => out = Some(Written::Unchanged),
            "written" => {
                if out.is_none() {
                    out = Some(Written::Written);
                }
            }
            l => {
                if let Some(b) = l.strip_prefix("backed-up ") {
                    out = Some(Written::BackedUp(b.to_string()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::local::Local;

    fn artifact(path: &std::path::Path, body: &str, mode: u32) -> Artifact {
        Artifact {
            path: path.to_string_lossy().into_owned(),
            mode,
            owner: "root:root".into(),
            contents: body.as_bytes().to_vec(),
            sensitive: false,
            purpose: String::new(),
        }
    }

    // Runs the real script through sh on this machine (as root in CI).
    async fn write(a: &Artifact) -> Written {
        let out = Local::default()
            .run(&exec(a, Duration::from_secs(10)))
            .await
            .unwrap();
        assert!(out.success(), "{}", out.stderr_str());
        parse(&out.stdout_str()).unwrap()
    }

    #[tokio::test]
    async fn writes_mode_owner_then_is_idempotent_and_backs_up_foreign_edits() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub dir/it's.conf");
        let a = artifact(&p, "one\n", 0o600);
        assert_eq!(write(&a).await, Written::Written);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "one\n");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let parent = std::fs::metadata(p.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(parent, 0o755, "parent directories are not made private");
        assert_eq!(write(&a).await, Written::Unchanged);
        // Ours changed: replaced without a backup (kubeha wrote the old one).
        let a2 = artifact(&p, "two\n", 0o600);
        assert_eq!(write(&a2).await, Written::Written);
        assert!(!p.with_file_name("it's.conf.kubeha-bak").exists());
        // Someone edited it: their version is kept and reported.
        std::fs::write(&p, "edited by hand\n").unwrap();
        let b = write(&a2).await;
        let bak = format!("{}.kubeha-bak", p.display());
        assert_eq!(b, Written::BackedUp(bak.clone()));
        assert_eq!(std::fs::read_to_string(&bak).unwrap(), "edited by hand\n");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two\n");
        // A mode change alone is applied.
        let a3 = artifact(&p, "two\n", 0o644);
        assert_eq!(write(&a3).await, Written::Written);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }
}
