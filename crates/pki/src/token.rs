//! Bootstrap tokens (`[a-z0-9]{6}.[a-z0-9]{16}`) and Go-style durations (`24h`, `1h30m`).

use std::fmt;
use std::time::Duration;

use time::OffsetDateTime;

use crate::error::PkiError;

const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A kubeadm bootstrap token. `Debug` hides the secret; `Display` prints `id.secret`.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    id: String,
    secret: String,
}

impl BootstrapToken {
    /// A fresh token from the operating system's CSPRNG (through aws-lc-rs).
    pub fn generate() -> Result<Self, PkiError> {
        Ok(BootstrapToken {
            id: random_chars(6)?,
            secret: random_chars(16)?,
        })
    }

    /// Parses `abcdef.0123456789abcdef`.
    pub fn parse(s: &str) -> Result<Self, PkiError> {
        let ok = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| ALPHABET.contains(&b));
        match s.split_once('.') {
            Some((id, secret)) if ok(id, 6) && ok(secret, 16) => Ok(BootstrapToken {
                id: id.into(),
                secret: secret.into(),
            }),
            _ => Err(PkiError::InvalidToken(
                "expected [a-z0-9]{6}.[a-z0-9]{16}".into(),
            )),
        }
    }

    /// The public part (`token-id`, names the `bootstrap-token-<id>` secret).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The secret part.
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl fmt::Display for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.id, self.secret)
    }
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BootstrapToken({}.<redacted>)", self.id)
    }
}

/// A token with its lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The token.
    pub token: BootstrapToken,
    /// Its TTL (`Duration::ZERO` = never expires, as in kubeadm).
    pub ttl: Duration,
    /// `now + ttl`, or `None` when the token never expires.
    pub expires: Option<OffsetDateTime>,
}

/// Generates a token valid for `ttl` from `now`.
pub fn generate_token(ttl: Duration, now: OffsetDateTime) -> Result<IssuedToken, PkiError> {
    let expires = if ttl.is_zero() {
        None
    } else {
        let d = time::Duration::try_from(ttl)
            .map_err(|_| PkiError::InvalidDuration(format!("{ttl:?}"), "too long".into()))?;
        Some(
            now.checked_add(d)
                .ok_or_else(|| PkiError::InvalidDuration(format!("{ttl:?}"), "too long".into()))?,
        )
    };
    Ok(IssuedToken {
        token: BootstrapToken::generate()?,
        ttl,
        expires,
    })
}

/// `n` characters of `[a-z0-9]`, uniformly (rejection sampling over random bytes).
fn random_chars(n: usize) -> Result<String, PkiError> {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 32];
    while out.len() < n {
        aws_lc_rs::rand::fill(&mut buf)
            .map_err(|_| PkiError::generate("token", "CSPRNG failure"))?;
        for &b in &buf {
            // 252 = 7 * 36: bytes at or above it would bias the first characters.
            if b < 252 && out.len() < n {
                out.push(ALPHABET[(b % 36) as usize] as char);
            }
        }
    }
    Ok(out)
}

/// Parses a Go-style duration: a sequence of `<number><unit>` with units `s`, `m`, `h`, `d`
/// (`d` = 24h, an extension), e.g. `24h`, `1h30m`, `90s`, `365d`; a bare `0` is zero.
pub fn parse_duration(s: &str) -> Result<Duration, PkiError> {
    let err = |m: &str| PkiError::InvalidDuration(s.to_string(), m.to_string());
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() {
        return Err(err("empty"));
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(err("unknown unit (use s, m, h, d)")),
        };
        if num.is_empty() {
            return Err(err("unit without a number"));
        }
        let n: u64 = num.parse().map_err(|_| err("number too large"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| err("too long"))?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(err("number without a unit"));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_kubeadm_shape_and_differ() {
        let a = BootstrapToken::generate().unwrap();
        let b = BootstrapToken::generate().unwrap();
        let s = a.to_string();
        assert_eq!(s.len(), 23);
        assert_eq!(BootstrapToken::parse(&s).unwrap(), a);
        assert_ne!(a, b);
        assert!(!format!("{a:?}").contains(a.secret()));
    }

    #[test]
    fn token_characters_cover_the_alphabet() {
        // 400 tokens = 8800 characters; every one of the 36 symbols must show up.
        let mut seen = [false; 36];
        for _ in 0..400 {
            let t = BootstrapToken::generate().unwrap().to_string();
            for b in t.bytes().filter(|&b| b != b'.') {
                seen[ALPHABET.iter().position(|&x| x == b).unwrap()] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn token_parse_rejects_bad_shapes() {
        for bad in [
            "abcdef0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcde!",
            "",
        ] {
            assert!(BootstrapToken::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ttl_gives_expiry() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let t = generate_token(Duration::from_secs(86400), now).unwrap();
        assert_eq!(t.expires.unwrap().unix_timestamp(), 1_086_400);
        assert_eq!(generate_token(Duration::ZERO, now).unwrap().expires, None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_duration("365d").unwrap(),
            Duration::from_secs(365 * 86400)
        );
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "h", "10", "10x", "-1h", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
