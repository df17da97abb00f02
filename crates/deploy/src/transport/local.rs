//! Runs scripts on this machine: for `kubeha up` on the node itself, and for tests.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{Exec, Output, TransportError};

/// Scripts run with `sh -eu -c` under coreutils `timeout`.
#[derive(Debug, Clone, Default)]
pub struct Local;

impl Local {
    pub fn describe(&self) -> String {
        "local".to_string()
    }

    pub async fn run(&self, exec: &Exec) -> Result<Output, TransportError> {
        // coreutils timeout ends the script's whole process group (kubeadm, apt) when the time
        // is up; killing only sh on drop would leave them running.
        let limit = format!("{}s", exec.timeout.as_secs().max(1));
        let mut child = Command::new("timeout")
            .args([
                "-k",
                "5s",
                limit.as_str(),
                "sh",
                "-eu",
                "-c",
                exec.script.as_str(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| TransportError::Other(format!("cannot start sh: {e}")))?;
        let mut stdin = child.stdin.take();
        let input = exec.stdin.clone();
        let feed = async move {
            if let Some(s) = stdin.as_mut() {
                // A script that does not read stdin closes it early: that is not an error.
                let _ = s.write_all(&input).await;
            }
            drop(stdin);
        };
        let wait = async {
            let (_, out) = tokio::join!(feed, child.wait_with_output());
            out
        };
        // A little longer than the node-side limit, so `timeout` ends the script first.
        match tokio::time::timeout(exec.timeout + std::time::Duration::from_secs(6), wait).await {
            Err(_) => Err(TransportError::Timeout(exec.timeout)),
            Ok(Err(e)) => Err(TransportError::Other(format!("sh: {e}"))),
            // timeout(1) exits 124 (137 after -k) when it ended the script.
            Ok(Ok(out)) if matches!(out.status.code(), Some(124 | 137)) => {
                Err(TransportError::Timeout(exec.timeout))
            }
            Ok(Ok(out)) => Ok(Output {
                exit: out.status.code(),
                stdout: out.stdout,
                stderr: out.stderr,
            }),
        }
    }
}
