//! What only tests and benches use; a dev-dependency, never in the kubeha binary.
//!
//! - `probe`: nginx backends, keepalived, and a client that measures connects through a VIP.
//! - `skip_without_root`: root tests skipped as a group, with one line, for a contributor
//!   without root; run (and able to fail) as root and in CI.
//! - `netns`: the node namespaces (re-exported), so a test needs only this crate.

pub mod probe;

pub use ::netns;
pub use probe::within;

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Mutex;

/// Called first in every test that needs root (namespaces, raw sockets, real daemons), with
/// the name of its group (the test file, e.g. `root_up`). Returns true when the test must
/// return at once: not root and not in CI (`CI=true`). The first call of a group in this
/// process prints one line:
///
/// `skipped (needs root): root_up — run as root or via scripts/test.sh`
///
/// As root, or in CI, it returns false and the test runs (and fails like any other).
pub fn skip_without_root(group: &str) -> bool {
    if netns::is_root() || std::env::var("CI").is_ok_and(|v| v == "true") {
        return false;
    }
    static SAID: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let first = SAID
        .lock()
        .map(|mut said| said.insert(group.to_string()))
        .unwrap_or(true);
    if first {
        // Straight to the stderr handle: the test harness captures eprintln!, not this. The
        // newline first: a quiet run's progress dots may be on the line.
        let _ = writeln!(
            std::io::stderr().lock(),
            "\nskipped (needs root): {group} — run as root or via scripts/test.sh"
        );
    }
    true
}
