//! OpenSSH `known_hosts`: which recorded keys apply to a host, and appending a learned one.
//!
//! Our own reader rather than `russh::keys::known_hosts`: that one miscounts line numbers
//! after comment lines, splits only on single spaces, and ignores `@revoked`, negated and
//! wildcard patterns. Lines are matched as sshd's client does: the name looked up is `host`
//! for port 22 and `[host]:port` otherwise; patterns may be hashed (`|1|salt|hash`).

use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::PublicKey;
use russh::keys::ssh_key::Algorithm;
use sha1::Sha1;

/// What the file says about a presented host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Known,
    /// No line names this host.
    Unknown,
    /// The host is recorded (at `line`, 1-based) with a different key.
    Changed {
        line: usize,
    },
    /// The key is marked `@revoked` at `line`.
    Revoked {
        line: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

/// One line that applies to the host.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    line: usize,
    marker: Marker,
    key: PublicKey,
}

/// The name a host is recorded under.
pub(crate) fn lookup_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The lines of `path` that apply to `host:port`. A missing file has none.
pub(crate) fn entries_for(path: &Path, host: &str, port: u16) -> io::Result<Vec<Entry>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(parse(&text, &lookup_name(host, port)))
}

fn parse(text: &str, name: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next().unwrap_or_default();
        let marker = match first {
            "@revoked" => Marker::Revoked,
            "@cert-authority" => Marker::CertAuthority,
            m if m.starts_with('@') => continue,
            _ => Marker::None,
        };
        if marker != Marker::None {
            first = fields.next().unwrap_or_default();
        }
        let (Some(kind), Some(blob)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !host_matches(first, name) {
            continue;
        }
        // A line whose key we cannot parse is skipped, as OpenSSH does.
        if let Ok(key) = PublicKey::from_openssh(&format!("{kind} {blob}")) {
            out.push(Entry {
                line: i + 1,
                marker,
                key,
            });
        }
    }
    out
}

/// Judges `key` against the entries for its host. Certificate authorities are not used
/// (host certificates are never asked for).
pub(crate) fn verdict(entries: &[Entry], key: &PublicKey) -> Verdict {
    let same = |e: &&Entry| e.key.key_data() == key.key_data();
    if let Some(e) = entries
        .iter()
        .filter(|e| e.marker == Marker::Revoked)
        .find(same)
    {
        return Verdict::Revoked { line: e.line };
    }
    let plain: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.marker == Marker::None)
        .collect();
    if plain.iter().any(same) {
        return Verdict::Known;
    }
    // Point at the line with the same key type if there is one: that is the one to remove.
    match plain
        .iter()
        .find(|e| e.key.algorithm() == key.algorithm())
        .or(plain.first())
    {
        Some(e) => Verdict::Changed { line: e.line },
        None => Verdict::Unknown,
    }
}

/// The key types recorded for the host, so the handshake can ask for those first (as
/// OpenSSH does) and a host with an ed25519 and an rsa key is not judged by the wrong one.
pub(crate) fn recorded_algorithms(entries: &[Entry]) -> Vec<Algorithm> {
    let mut v: Vec<Algorithm> = Vec::new();
    for e in entries.iter().filter(|e| e.marker == Marker::None) {
        let a = e.key.algorithm();
        if !v.contains(&a) {
            v.push(a);
        }
    }
    v
}

/// Appends `name key` to `path`, creating it (0600) and its directory (0700) if missing.
/// One `write` call per line, so parallel connects append whole lines.
pub(crate) fn append(path: &Path, host: &str, port: u16, key: &PublicKey) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    let mut existing = Vec::new();
    file.read_to_end(&mut existing)?;
    let bare = PublicKey::new(key.key_data().clone(), "");
    let text = bare
        .to_openssh()
        .map_err(|e| io::Error::other(e.to_string()))?;
    let sep = if existing.is_empty() || existing.ends_with(b"\n") {
        ""
    } else {
        "\n"
    };
    let line = format!("{sep}{} {}\n", lookup_name(host, port), text.trim());
    file.write_all(line.as_bytes())
}

/// A comma-separated pattern list matches when some pattern matches and no negated one does.
fn host_matches(patterns: &str, name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let mut hit = false;
    for p in patterns.split(',') {
        if let Some(neg) = p.strip_prefix('!') {
            if pattern_matches(neg, &name) {
                return false;
            }
        } else if pattern_matches(p, &name) {
            hit = true;
        }
    }
    hit
}

fn pattern_matches(pattern: &str, name: &str) -> bool {
    if let Some(rest) = pattern.strip_prefix("|1|") {
        return hashed_matches(rest, name);
    }
    glob(pattern.to_ascii_lowercase().as_bytes(), name.as_bytes())
}

/// `salt|hash`, both base64: the hash is HMAC-SHA1(salt, name).
fn hashed_matches(rest: &str, name: &str) -> bool {
    let Some((salt, hash)) = rest.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (BASE64.decode(salt), BASE64.decode(hash)) else {
        return false;
    };
    let Ok(mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(name.as_bytes())
        .verify_slice(&hash)
        .is_ok()
}

/// `*` and `?` wildcards, iterative with one backtrack point (no recursion).
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const K2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    #[test]
    fn line_numbers_count_comments_and_blank_lines() {
        let text = format!("# header\n\n198.18.5.1 {K1}\n");
        let e = parse(&text, "198.18.5.1");
        assert_eq!(verdict(&e, &key(K1)), Verdict::Known);
        assert_eq!(verdict(&e, &key(K2)), Verdict::Changed { line: 3 });
        assert_eq!(
            verdict(&parse(&text, "198.18.5.2"), &key(K1)),
            Verdict::Unknown
        );
    }

    #[test]
    fn port_form_tabs_and_lists() {
        let text = format!("other,[198.18.5.1]:2222\t{K1} comment\n198.18.5.1 {K2}\n");
        assert_eq!(
            verdict(&parse(&text, "[198.18.5.1]:2222"), &key(K1)),
            Verdict::Known
        );
        // Port 22 entries do not apply to another port.
        assert_eq!(
            verdict(&parse(&text, "[198.18.5.1]:2222"), &key(K2)),
            Verdict::Changed { line: 1 }
        );
        assert_eq!(
            verdict(&parse(&text, "198.18.5.1"), &key(K2)),
            Verdict::Known
        );
    }

    #[test]
    fn hashed_entry() {
        // From russh's test data: "example.com" hashed.
        let text = format!("|1|O33ESRMWPVkMYIwJ1Uw+n877jTo=|nuuC5vEqXlEZ/8BXQR7m619W6Ak= {K2}\n");
        assert_eq!(
            verdict(&parse(&text, "example.com"), &key(K2)),
            Verdict::Known
        );
        assert_eq!(
            verdict(&parse(&text, "example.org"), &key(K2)),
            Verdict::Unknown
        );
    }

    #[test]
    fn wildcards_and_negation() {
        let text = format!("198.18.5.*,!198.18.5.9 {K1}\n");
        assert_eq!(
            verdict(&parse(&text, "198.18.5.4"), &key(K1)),
            Verdict::Known
        );
        assert_eq!(
            verdict(&parse(&text, "198.18.5.9"), &key(K1)),
            Verdict::Unknown
        );
        assert!(glob(b"a*b?c", b"axxbyc"));
        assert!(!glob(b"a*b?c", b"axxbc"));
        assert!(glob(b"*", b""));
    }

    #[test]
    fn markers() {
        let text = format!("@revoked * {K1}\n@cert-authority * {K2}\n");
        assert_eq!(
            verdict(&parse(&text, "198.18.5.1"), &key(K1)),
            Verdict::Revoked { line: 1 }
        );
        // A CA line is not a host key.
        assert_eq!(
            verdict(&parse(&text, "198.18.5.1"), &key(K2)),
            Verdict::Unknown
        );
    }

    #[test]
    fn append_creates_file_and_adds_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        append(&path, "198.18.5.1", 2222, &key(K1)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, format!("198.18.5.2 {K2}")).unwrap();
        append(&path, "198.18.5.1", 22, &key(K1)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("198.18.5.2 {K2}\n198.18.5.1 {K1}\n"));
        let e = entries_for(&path, "198.18.5.1", 22).unwrap();
        assert_eq!(verdict(&e, &key(K1)), Verdict::Known);
    }
}
