//! A lab's state file: JSON written before anything it names is made (a temporary file renamed
//! over it, so a crash never leaves half a file), read back by `status`, `drill` and `down`.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::LabError;

/// The state at `path`, `None` when there is none.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, LabError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            LabError::Invalid(format!(
                "{}: {e}; remove it by hand if it is not a kubeha lab",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LabError::Spawn(path.display().to_string(), e)),
    }
}

pub fn save<T: Serialize>(path: &Path, value: &T) -> Result<(), LabError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| LabError::Spawn(dir.display().to_string(), e))?;
    }
    let tmp = path.with_extension("json.tmp");
    let body = serde_json::to_vec_pretty(value).expect("plain data");
    std::fs::write(&tmp, body)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| LabError::Spawn(path.display().to_string(), e))
}

/// The last of a lab's `down`: its namespaces that still exist, then its directory (state
/// file included).
pub fn remove_namespaces_and_dir(
    namespaces: &[String],
    dir: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<(), LabError> {
    let present = crate::netns::list()?;
    for ns in namespaces.iter().filter(|n| present.contains(n)) {
        crate::netns::Netns::adopt(ns).destroy()?;
        log(&format!("deleted namespace {ns}"));
    }
    std::fs::remove_dir_all(dir).map_err(|e| LabError::Spawn(dir.display().to_string(), e))?;
    log(&format!("removed {}", dir.display()));
    Ok(())
}

/// A lab name: 1-8 lowercase letters or digits (namespace and interface names are built on it).
pub fn check_name(name: &str) -> Result<(), LabError> {
    let ok = !name.is_empty()
        && name.len() <= 8
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(LabError::Invalid(format!(
            "--name {name:?}: use 1-8 lowercase letters or digits"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_round_trips_and_a_missing_one_is_none() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/state.json");
        assert!(load::<Vec<u32>>(&p).unwrap().is_none());
        save(&p, &vec![1u32, 2]).unwrap();
        assert_eq!(load::<Vec<u32>>(&p).unwrap(), Some(vec![1, 2]));
        std::fs::write(&p, "not json").unwrap();
        let e = load::<Vec<u32>>(&p).unwrap_err().to_string();
        assert!(e.contains("remove it by hand"), "{e}");
    }

    #[test]
    fn names_are_short_and_plain() {
        assert!(check_name("demo").is_ok());
        assert!(check_name("ku13k").is_ok());
        for bad in ["", "toolongname", "Demo", "a-b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
