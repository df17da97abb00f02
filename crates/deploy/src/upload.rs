//! Writing files on a node through any transport: the bytes of every file of a step go over
//! stdin to one script (sshd costs about 100 ms per command, so one per step, not per file).
//! Each file is written to a temp file with its final owner and mode, then renamed. A file
//! that differs from what kubeha last wrote there was written by someone else: it is copied
//! to `<path>.kubeha-bak` first and the run says so.

use plan::Artifact;

/// Where kubeha remembers the digest of each file it wrote.
pub const FILE_RECORDS: &str = "/var/lib/kubeha/state/files";

/// Files this large (kubeha's own binary, bundle archives) also get a stamp beside their
/// record: the digest with the file's identity (device, inode, size, change time). A re-run
/// whose stamp still matches takes the digest from it instead of reading the file again: the
/// change time moves on every write, rename, chmod or chown and cannot be set back by hand.
pub const STAMPED_MIN: usize = 1 << 20;

/// The identity a stamp records, as `stat -c` prints it.
pub const STAMP_STAT: &str = "%d:%i:%s:%z";

/// The record file kubeha keeps for `path` on a node (its stamp is this plus `.stat`): the
/// first 32 hex digits of the path's SHA-256, as `kubeha_put` names it.
pub fn file_record(path: &str) -> String {
    use sha2::Digest;
    let h = hex::encode(sha2::Sha256::digest(path.as_bytes()));
    format!("{FILE_RECORDS}/{}", &h[..32])
}

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

/// Sh variables (quoted), one per line, then `script`: how a day-2 script gets its inputs.
pub fn with_vars(vars: &[(&str, &str)], script: &str) -> String {
    let mut s: String = vars
        .iter()
        .map(|(k, v)| format!("{k}={}\n", sh_quote(v)))
        .collect();
    s.push_str(script);
    s
}

/// The last `lines` non-empty lines of a command's output, joined for a one-line error.
pub fn tail_lines(text: &[u8], lines: usize) -> String {
    let t = String::from_utf8_lossy(text);
    let v: Vec<&str> = t.lines().filter(|l| !l.trim().is_empty()).collect();
    v[v.len().saturating_sub(lines)..].join(" | ")
}

/// `kubeha_put PATH SIZE OWNER MODE` reads exactly SIZE bytes of stdin into PATH. GNU
/// `head -c` never reads past its count, so several files can follow each other on stdin.
pub fn put_function() -> String {
    format!(
        r#"kubeha_put() {{
  p=$1; n=$2
  umask 022; mkdir -p "$(dirname "$p")"
  t="$p.kubeha-tmp"; rm -f "$t"
  umask 077; head -c "$n" > "$t"
  [ "$(wc -c < "$t")" -eq "$n" ] || {{ rm -f "$t"; echo "short read writing $p" >&2; return 1; }}
  chown "$3" "$t"; chmod "$4" "$t"
  umask 022; mkdir -p {records}; r={records}/$(printf %s "$p" | sha256sum | cut -c1-32)
  if [ -f "$p" ] && cmp -s "$t" "$p" && [ "$(stat -c %a:%U:%G "$p")" = "$(stat -c %a:%U:%G "$t")" ]; then
    rm -f "$t"; [ "$n" -lt {stamped} ] || kubeha_stamp "$p" "$r"
    echo "kubeha-file unchanged $p"; return 0
  fi
  if [ -f "$p" ] && [ "$(sha256sum < "$p" | cut -c1-64)" != "$(cat "$r" 2>/dev/null)" ]; then
    b="$p.kubeha-bak"; [ -e "$b" ] && b="$b.$(date +%s)"
    cp -p "$p" "$b"; echo "kubeha-file backed-up $b"
  fi
  mv -f "$t" "$p"
  sha256sum < "$p" | cut -c1-64 > "$r"
  [ "$n" -lt {stamped} ] || printf '%s %s\n' "$(cat "$r")" "$(stat -c '{stat}' -- "$p")" > "$r.stat"
  echo "kubeha-file written $p"
}}
kubeha_stamp() {{
  s=$(stat -c '{stat}' -- "$1"); l=
  [ -f "$2.stat" ] && read -r l < "$2.stat" || true
  [ -n "$l" ] && [ "${{l#* }}" = "$s" ] && return 0
  printf '%s %s\n' "$(sha256sum < "$1" | cut -c1-64)" "$s" > "$2.stat"
}}
"#,
        records = FILE_RECORDS,
        stamped = STAMPED_MIN,
        stat = STAMP_STAT,
    )
}

/// The script prefix and stdin that put `files` in place, in order.
pub fn puts(files: &[&Artifact]) -> (String, Vec<u8>) {
    if files.is_empty() {
        return (String::new(), Vec::new());
    }
    let mut script = put_function();
    script.push_str(&put_lines(files));
    let mut stdin = Vec::with_capacity(files.iter().map(|a| a.contents.len()).sum());
    for a in files {
        stdin.extend_from_slice(&a.contents);
    }
    (script, stdin)
}

/// The `kubeha_put` lines for `files` (after [`put_function`]); their bytes follow each other
/// on stdin in the same order.
pub fn put_lines(files: &[&Artifact]) -> String {
    if files.is_empty() {
        return String::new();
    }
    let mut script = String::new();
    for a in files {
        script.push_str(&format!(
            "kubeha_put {} {} {} {:o}\n",
            sh_quote(&a.path),
            a.contents.len(),
            sh_quote(&a.owner),
            a.mode
        ));
    }
    script.push_str("umask 022\n");
    script
}

/// What happened to each file, from the script's output (other lines are ignored).
pub fn parse(stdout: &str) -> Vec<(String, Written)> {
    let mut out: Vec<(String, Written)> = Vec::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("kubeha-file ") else {
            continue;
        };
        match rest.split_once(' ') {
            Some(("unchanged", p)) => out.push((p.to_string(), Written::Unchanged)),
            // A backup line for this file came first: keep that.
            Some(("written", p)) if !out.iter().any(|(q, _)| q == p) => {
                out.push((p.to_string(), Written::Written));
            }
            Some(("backed-up", b)) => {
                // `<path>.kubeha-bak`, or `<path>.kubeha-bak.<time>` when an older one is kept.
                let p = b.rsplit_once(".kubeha-bak").map_or(b, |(p, _)| p);
                out.push((p.to_string(), Written::BackedUp(b.to_string())));
            }
            _ => {}
        }
    }
    out
}

/// The files a [`puts`] script writes, with their bytes: what a scripted transport stores.
#[cfg(any(test, feature = "fake"))]
pub fn planned(script: &str, stdin: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    for line in script.lines() {
        let Some(rest) = line.strip_prefix("kubeha_put '") else {
            continue;
        };
        // The path is sh_quote'd: `'` is written `'\''` inside it.
        let Some((path, rest)) = rest.split_once("' ") else {
            continue;
        };
        let Some(size) = rest.split(' ').next().and_then(|n| n.parse::<usize>().ok()) else {
            continue;
        };
        let end = (at + size).min(stdin.len());
        out.push((path.replace("'\\''", "'"), stdin[at..end].to_vec()));
        at = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::transport::Exec;
    use crate::transport::local::Local;

    /// Just the files, as one command.
    fn exec(files: &[&Artifact], timeout: Duration) -> Exec {
        let (script, stdin) = puts(files);
        let mut e = Exec::new(script, timeout);
        e.stdin = stdin;
        e
    }

    fn artifact(path: &std::path::Path, body: &str, mode: u32) -> Artifact {
        Artifact {
            path: path.to_string_lossy().into_owned(),
            mode,
            owner: "root:root".into(),
            contents: body.as_bytes().into(),
            sensitive: false,
            purpose: String::new(),
        }
    }

    // Runs the real script through sh on this machine (as root in CI).
    async fn write(a: &Artifact) -> Written {
        let out = Local
            .run(&exec(&[a], Duration::from_secs(10)))
            .await
            .unwrap();
        assert!(out.success(), "{}", out.stderr_str());
        let mut w = parse(&out.stdout_str());
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].0, a.path);
        w.remove(0).1
    }

    #[test]
    fn planned_reads_back_what_puts_sends() {
        let a = artifact(std::path::Path::new("/etc/it's"), "one", 0o600);
        let b = artifact(std::path::Path::new("/etc/b"), "two\n", 0o644);
        let (script, stdin) = puts(&[&a, &b]);
        assert_eq!(
            planned(&script, &stdin),
            vec![
                ("/etc/it's".to_string(), b"one".to_vec()),
                ("/etc/b".to_string(), b"two\n".to_vec())
            ]
        );
    }

    #[tokio::test]
    async fn several_files_in_one_command_each_get_exactly_their_bytes() {
        if testkit::skip_without_root("deploy upload (chown root)") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<Artifact> = (0..5)
            .map(|i| {
                let mut a = artifact(&dir.path().join(format!("f{i}")), "", 0o640);
                // Binary, and sizes that do not line up with any buffer.
                a.contents = (0..(i * 70_001 + 3))
                    .map(|b| (b * 7 + i) as u8)
                    .collect::<Vec<u8>>()
                    .into();
                a
            })
            .collect();
        let refs: Vec<&Artifact> = files.iter().collect();
        let out = Local
            .run(&exec(&refs, Duration::from_secs(20)))
            .await
            .unwrap();
        assert!(out.success(), "{}", out.stderr_str());
        assert_eq!(parse(&out.stdout_str()).len(), 5);
        for a in &files {
            assert_eq!(
                std::fs::read(&a.path).unwrap(),
                &a.contents[..],
                "{}",
                a.path
            );
        }
        // Too few bytes on stdin is an error, not a short file.
        let mut e = exec(&refs, Duration::from_secs(20));
        e.stdin.truncate(e.stdin.len() - 1);
        let out = Local.run(&e).await.unwrap();
        assert!(!out.success());
        assert!(
            out.stderr_str().contains("short read writing"),
            "{}",
            out.stderr_str()
        );
    }

    #[tokio::test]
    async fn writes_mode_owner_then_is_idempotent_and_backs_up_foreign_edits() {
        if testkit::skip_without_root("deploy upload (chown root)") {
            return;
        }
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
        // A second foreign edit keeps the first backup (the operator's original).
        std::fs::write(&p, "edited again\n").unwrap();
        let Written::BackedUp(second) = write(&a2).await else {
            panic!("no backup")
        };
        assert!(second.starts_with(&format!("{bak}.")), "{second}");
        assert_eq!(std::fs::read_to_string(&bak).unwrap(), "edited by hand\n");
        assert_eq!(std::fs::read_to_string(&second).unwrap(), "edited again\n");
        // A mode change alone is applied.
        let a3 = artifact(&p, "two\n", 0o644);
        assert_eq!(write(&a3).await, Written::Written);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }

    /// A large file's digest comes from its stamp while the file is untouched, and from its
    /// bytes again once anything writes it, even with the same size.
    #[tokio::test]
    async fn a_large_file_is_hashed_again_only_when_it_changed() {
        if testkit::skip_without_root("deploy upload (chown root)") {
            return;
        }
        use sha2::Digest;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        let mut a = artifact(&p, "", 0o755);
        a.contents = vec![7u8; STAMPED_MIN].into();
        assert_eq!(write(&a).await, Written::Written);
        let path = a.path.as_str();
        let read = || {
            let out = std::process::Command::new("sh")
                .args(["-eu", "-c", &crate::record::read_script(&[], &[path])])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            crate::record::parse(&String::from_utf8_lossy(&out.stdout)).files
        };
        let real = hex::encode(sha2::Sha256::digest(&a.contents));
        assert_eq!(read()[path], real);
        // The stamp is what answers: a digest planted in it (same identity) is reported.
        let stamp = format!("{}.stat", file_record(path));
        let text = std::fs::read_to_string(&stamp).unwrap();
        let (digest, identity) = text.split_once(' ').unwrap();
        assert_eq!(digest, real);
        let planted = "f".repeat(64);
        std::fs::write(&stamp, format!("{planted} {identity}")).unwrap();
        assert_eq!(read()[path], planted);
        // Rewritten in place with the same size: the change time moved, so it is read again.
        std::fs::write(&p, vec![8u8; STAMPED_MIN]).unwrap();
        let now = hex::encode(sha2::Sha256::digest(vec![8u8; STAMPED_MIN]));
        assert_eq!(read()[path], now);
        // kubeha_put of the same bytes refreshes a stale stamp; a small file gets none.
        assert_eq!(
            write(&a).await,
            Written::BackedUp(format!("{path}.kubeha-bak"))
        );
        assert_eq!(read()[path], real);
        std::fs::write(&stamp, format!("{planted} {identity}")).unwrap();
        assert_eq!(write(&a).await, Written::Unchanged);
        assert_eq!(read()[path], real, "an unchanged put left a stale stamp");
        let small = artifact(&dir.path().join("small"), "x", 0o644);
        write(&small).await;
        assert!(!std::path::Path::new(&format!("{}.stat", file_record(&small.path))).exists());
        for f in [&stamp, &file_record(path), &file_record(&small.path)] {
            let _ = std::fs::remove_file(f);
        }
    }
}
