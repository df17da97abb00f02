//! What makes a file an etcd snapshot, checked before anything is sent to a node: etcd's
//! Maintenance API streams the bbolt database and appends the SHA-256 of it, so a snapshot is
//! a bbolt file (its first meta page carries bbolt's magic) of a multiple of 512 bytes, plus 32
//! bytes that must be the digest of the rest (what `etcdutl snapshot restore` verifies too).
//! Pure: bytes in, verdict out.

use sha2::{Digest, Sha256};

/// bbolt's meta page magic, little-endian, right after the 16-byte page header.
const BOLT_MAGIC: u32 = 0xED0C_DAED;
const PAGE_HEADER: usize = 16;
const TRAILER: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotASnapshot {
    #[error("it is empty")]
    Empty,
    #[error("it is not an etcd database (no bbolt header)")]
    NotBolt,
    #[error(
        "it is an etcd data file without the checksum a snapshot carries (a copy of member/snap/db?): take snapshots with `kubeha etcd snapshot` or `etcdctl snapshot save`"
    )]
    NoChecksum,
    #[error("its checksum does not match its contents: it is truncated or damaged")]
    BadChecksum,
}

/// A file that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// SHA-256 of the whole file (what the nodes check after the transfer).
    pub sha256: String,
    pub bytes: u64,
}

pub fn verify(bytes: &[u8]) -> Result<Verified, NotASnapshot> {
    if bytes.is_empty() {
        return Err(NotASnapshot::Empty);
    }
    let magic = bytes
        .get(PAGE_HEADER..PAGE_HEADER + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if magic != Some(BOLT_MAGIC) {
        return Err(NotASnapshot::NotBolt);
    }
    if bytes.len() % 512 != TRAILER {
        return Err(NotASnapshot::NoChecksum);
    }
    let (db, trailer) = bytes.split_at(bytes.len() - TRAILER);
    if Sha256::digest(db).as_slice() != trailer {
        return Err(NotASnapshot::BadChecksum);
    }
    Ok(Verified {
        sha256: hex::encode(Sha256::digest(bytes)),
        bytes: bytes.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bbolt-shaped file of `pages` 4 KiB pages with its trailer.
    fn snapshot(pages: usize) -> Vec<u8> {
        let mut db = vec![0u8; pages * 4096];
        db[PAGE_HEADER..PAGE_HEADER + 4].copy_from_slice(&BOLT_MAGIC.to_le_bytes());
        for (i, b) in db.iter_mut().enumerate().skip(4096) {
            *b = (i % 251) as u8;
        }
        let sum = Sha256::digest(&db);
        db.extend_from_slice(&sum);
        db
    }

    #[test]
    fn a_snapshot_passes_and_is_named_by_its_digest() {
        let s = snapshot(4);
        let v = verify(&s).unwrap();
        assert_eq!(v.bytes, 4 * 4096 + 32);
        assert_eq!(v.sha256, hex::encode(Sha256::digest(&s)));
    }

    #[test]
    fn what_is_not_a_snapshot_says_why() {
        assert_eq!(verify(b""), Err(NotASnapshot::Empty));
        assert_eq!(verify(b"apiVersion: v1\n"), Err(NotASnapshot::NotBolt));
        let s = snapshot(4);
        // The database without its trailer: a copy of member/snap/db.
        assert_eq!(verify(&s[..s.len() - 32]), Err(NotASnapshot::NoChecksum));
        // Cut short, or a byte changed.
        assert_eq!(verify(&s[..s.len() - 512]), Err(NotASnapshot::BadChecksum));
        let mut bad = s.clone();
        bad[5000] ^= 1;
        assert_eq!(verify(&bad), Err(NotASnapshot::BadChecksum));
    }
}
