//! Atomic file writes with the mode set at creation.

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::PkiError;

/// Mode of private keys and kubeconfigs.
pub const KEY_MODE: u32 = 0o600;
/// Mode of certificates and public keys.
pub const CERT_MODE: u32 = 0o644;

/// Creates `dir` and its parents with mode 0700 (the store holds private keys).
pub(crate) fn create_dir(dir: &Path) -> Result<(), PkiError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| PkiError::io(dir, e))
}

/// Writes `bytes` to `path` through a temporary file in the same directory that is created
/// with `mode` (never wider), fsynced, then renamed over `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_dir(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut suffix = [0u8; 6];
    aws_lc_rs::rand::fill(&mut suffix)
        .map_err(|_| PkiError::generate("temp name", "CSPRNG failure"))?;
    let tmp = dir.join(format!(".{name}.tmp-{}", hex::encode(suffix)));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed the mode; make it exact (it is never wider than `mode`).
        f.set_permissions(Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(PkiError::io(path, e));
    }
    Ok(())
}

/// Reads a file; `None` if it does not exist.
pub(crate) fn read_opt(path: &Path) -> Result<Option<Vec<u8>>, PkiError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::io(path, e)),
    }
}

/// Sets the mode of an existing file to exactly `mode`; returns the old mode if it differed.
pub(crate) fn fix_mode(path: &Path, mode: u32) -> Result<Option<u32>, PkiError> {
    let meta = fs::metadata(path).map_err(|e| PkiError::io(path, e))?;
    let old = meta.permissions().mode() & 0o7777;
    if old == mode {
        return Ok(None);
    }
    fs::set_permissions(path, Permissions::from_mode(mode)).map_err(|e| PkiError::io(path, e))?;
    Ok(Some(old))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_sets_exact_mode_and_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b/k.key");
        write_atomic(&p, b"one", KEY_MODE).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        write_atomic(&p, b"two", CERT_MODE).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(
            fs::metadata(d.path().join("a"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        // No temp files left behind.
        assert_eq!(fs::read_dir(d.path().join("a/b")).unwrap().count(), 1);
        assert_eq!(fix_mode(&p, KEY_MODE).unwrap(), Some(0o644));
        assert_eq!(fix_mode(&p, KEY_MODE).unwrap(), None);
        assert_eq!(read_opt(&d.path().join("missing")).unwrap(), None);
    }
}
