//! Content-addressed file contents: identical bytes are kept once and shared (`Arc`), keyed by
//! their SHA-256. A plan of 5,000 nodes holds each distinct file once, and `--output json`
//! names each once.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

/// SHA-256 of a file's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn of(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Contents {
    by_digest: HashMap<Digest, Arc<[u8]>>,
    /// The digest of every `Arc` kept here, by its address: contents shared before they got
    /// here (a bundle's binaries, the hosts block) are hashed once, not once per node. Only
    /// addresses of `Arc`s this store holds are recorded, so an address is never reused.
    by_address: HashMap<usize, Digest>,
}

fn address(bytes: &Arc<[u8]>) -> usize {
    Arc::as_ptr(bytes) as *const u8 as usize
}

impl Contents {
    /// The shared copy of `bytes` (kept now if new) and its digest.
    pub fn intern(&mut self, bytes: &Arc<[u8]>) -> (Digest, Arc<[u8]>) {
        if let Some(d) = self.by_address.get(&address(bytes)) {
            return (*d, bytes.clone());
        }
        let d = Digest::of(bytes);
        let kept = self.by_digest.entry(d).or_insert_with(|| {
            self.by_address.insert(address(bytes), d);
            bytes.clone()
        });
        (d, kept.clone())
    }

    /// The digest of contents this store handed out, without hashing them again; hashed when
    /// they come from elsewhere.
    pub fn digest(&self, bytes: &Arc<[u8]>) -> Digest {
        match self.by_address.get(&address(bytes)) {
            Some(d) => *d,
            None => Digest::of(bytes),
        }
    }

    pub fn get(&self, digest: &Digest) -> Option<&Arc<[u8]>> {
        self.by_digest.get(digest)
    }

    /// How many distinct contents are kept.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// Bytes kept, each distinct content once.
    pub fn bytes(&self) -> usize {
        self.by_digest.values().map(|b| b.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arc(s: &str) -> Arc<[u8]> {
        s.as_bytes().into()
    }

    #[test]
    fn equal_bytes_are_kept_once_and_shared() {
        let mut c = Contents::default();
        let (d1, a) = c.intern(&arc("same"));
        let (d2, b) = c.intern(&arc("same"));
        let (d3, _) = c.intern(&arc("other"));
        assert_eq!(d1, d2);
        assert_ne!(d1, d3);
        assert!(
            Arc::ptr_eq(&a, &b),
            "the second copy is replaced by the kept one"
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c.bytes(), 9);
        assert_eq!(c.get(&d1).map(|b| &b[..]), Some(&b"same"[..]));
    }

    #[test]
    fn digest_is_sha256_whether_kept_or_not() {
        let mut c = Contents::default();
        let kept = arc("abc");
        c.intern(&kept);
        let sha_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(c.digest(&kept).to_string(), sha_abc);
        assert_eq!(c.digest(&arc("abc")).to_string(), sha_abc);
    }

    #[test]
    fn a_shared_arc_is_hashed_once() {
        let mut c = Contents::default();
        let shared = arc("hosts");
        let (d, first) = c.intern(&shared);
        // Same allocation: found by address (the same digest, the same Arc).
        let (d2, again) = c.intern(&shared.clone());
        assert_eq!(d, d2);
        assert!(Arc::ptr_eq(&first, &again) && Arc::ptr_eq(&first, &shared));
        assert_eq!(c.by_address.len(), 1);
    }
}
