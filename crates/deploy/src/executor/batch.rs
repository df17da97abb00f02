//! A node's steps of one phase as one command. sshd costs about 100 ms per command, and a
//! re-run's every-run steps (hosts merge, swap off, ...) would otherwise pay it once each.
//! The steps still run in order, each its files, then its script in a subshell, then its
//! record, exactly as alone: `sh -e` stops the command at the first step that fails, so the
//! records on the node say which steps finished. Each step's part opens with a marker line on
//! stdout (with the node's time) and on stderr, so its output, its duration and a failure are
//! told apart afterwards. Pure: builds text and splits text.

use plan::StepId;

use super::report::TRACE;

const MARK: &str = "kubeha-step ";
const DONE: &str = "kubeha-steps-done ";

/// One step's share of the command.
pub struct Part<'a> {
    pub id: StepId,
    /// Its files (`upload::put_lines`), their bytes in order on stdin.
    pub puts: String,
    pub stdin: &'a [&'a [u8]],
    pub run: Option<&'a str>,
    /// The record line (`record::write_script`), for steps that change the node.
    pub record: Option<String>,
}

/// The script and stdin for `parts`, in order. `prelude` (the put function) comes once.
pub fn script(prelude: &str, parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let mut s = String::from(prelude);
    let mut stdin = Vec::new();
    for p in parts {
        // The leading newline keeps the marker on a line of its own after output without one.
        s.push_str(&format!(
            "printf '\\n{MARK}%s %s\\n' '{id}' \"$(date +%s%N)\"\nprintf '\\n{MARK}%s\\n' '{id}' >&2\n",
            id = p.id
        ));
        s.push_str(&p.puts);
        for b in p.stdin {
            stdin.extend_from_slice(b);
        }
        if let Some(run) = p.run {
            // In a subshell, so a script that finishes early with `exit 0` still gets its
            // record; stdin is the next step's files, so not the script's to read.
            s.push_str(&format!(
                "PS4='{TRACE}'\nset -x\n(\n{run}\n) </dev/null\nset +x\n"
            ));
        }
        if let Some(r) = &p.record {
            s.push_str(r);
            s.push('\n');
        }
    }
    s.push_str(&format!("printf '\\n{DONE}%s\\n' \"$(date +%s%N)\"\n"));
    (s, stdin)
}

/// What one step of a batch printed, and when it began on the node's clock (nanoseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub id: String,
    pub started_ns: Option<u128>,
    /// When the next step began, or the batch ended; `None` for the step the batch stopped in.
    pub ended_ns: Option<u128>,
    pub stdout: String,
    pub stderr: String,
}

/// Splits `text` at marker lines: (the marker's words, the text up to the next marker).
fn pieces<'t>(text: &'t str, mark: &str) -> Vec<(&'t str, &'t str)> {
    let mut out = Vec::new();
    let needle = format!("\n{mark}");
    let mut rest = text;
    // Text before the first marker (a login banner) belongs to no step.
    match rest.find(&needle) {
        Some(i) => rest = &rest[i + 1..],
        None => return out,
    }
    while let Some(after) = rest.strip_prefix(mark) {
        let (line, body) = after.split_once('\n').unwrap_or((after, ""));
        let (body, next) = match body.find(&needle) {
            Some(i) => (&body[..i], &body[i + 1..]),
            None => (body, ""),
        };
        out.push((line, body));
        rest = next;
    }
    out
}

/// Each step's output, in the order the steps began. Steps after the last segment never began.
pub fn split(stdout: &str, stderr: &str) -> Vec<Segment> {
    let done_ns: Option<u128> = stdout
        .rfind(&format!("\n{DONE}"))
        .and_then(|i| stdout[i + 1 + DONE.len()..].lines().next())
        .and_then(|t| t.trim().parse().ok());
    let stdout = match stdout.rfind(&format!("\n{DONE}")) {
        Some(i) => &stdout[..i],
        None => stdout,
    };
    let errs = pieces(stderr, MARK);
    let outs = pieces(stdout, MARK);
    let mut segs: Vec<Segment> = outs
        .iter()
        .enumerate()
        .map(|(i, (line, body))| {
            let mut w = line.split(' ');
            let id = w.next().unwrap_or_default().to_string();
            let started_ns = w.next().and_then(|t| t.parse().ok());
            let stderr = errs
                .get(i)
                .filter(|(l, _)| l.trim() == id)
                .map_or("", |(_, b)| *b);
            Segment {
                id,
                started_ns,
                ended_ns: None,
                stdout: body.to_string(),
                stderr: stderr.to_string(),
            }
        })
        .collect();
    for i in 0..segs.len() {
        segs[i].ended_ns = match segs.get(i + 1) {
            Some(next) => next.started_ns,
            None => done_ns,
        };
    }
    segs
}

/// The steps of a batch script, in order, each with its part of the script: what a scripted
/// transport runs.
#[cfg(any(test, feature = "fake"))]
pub fn steps_of(script: &str) -> Vec<(String, String)> {
    let start = format!("printf '\\n{MARK}%s %s\\n' '");
    let mut out: Vec<(String, String)> = Vec::new();
    for line in script.lines() {
        if let Some(rest) = line.strip_prefix(start.as_str()) {
            let id = rest.split('\'').next().unwrap_or_default().to_string();
            out.push((id, String::new()));
        } else if let Some((_, part)) = out.last_mut() {
            part.push_str(line);
            part.push('\n');
        }
    }
    out
}

/// What a batch prints for steps that ran as `outputs` (id, stdout, stderr): the output a
/// scripted transport gives back. `finished` says whether the last one succeeded.
#[cfg(any(test, feature = "fake"))]
pub fn output_of(outputs: &[(String, String, String)], finished: bool) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    for (i, (id, o, e)) in outputs.iter().enumerate() {
        out.push_str(&format!("\n{MARK}{id} {i}\n{o}"));
        err.push_str(&format!("\n{MARK}{id}\n{e}"));
    }
    if finished {
        out.push_str(&format!("\n{DONE}{}\n", outputs.len()));
    }
    (out, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(stdin: &'a [&'a [u8]]) -> Vec<Part<'a>> {
        vec![
            Part {
                id: StepId::PrepareHosts,
                puts: "kubeha_put '/etc/a' 2 'root:root' 644\n".into(),
                stdin,
                run: Some("echo hosts; printf no-newline"),
                record: None,
            },
            Part {
                id: StepId::PrepareSwapOff,
                puts: String::new(),
                stdin: &[],
                run: Some("echo swap >&2; cat; echo read-nothing"),
                record: Some("echo recorded".into()),
            },
            Part {
                id: StepId::PreparePackages,
                puts: String::new(),
                stdin: &[],
                run: Some("echo packages; false; echo never"),
                record: Some("echo not-recorded".into()),
            },
        ]
    }

    fn sh(script: &str, stdin: &[u8]) -> std::process::Output {
        use std::io::Write;
        let mut c = std::process::Command::new("sh")
            .args(["-eu", "-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin).unwrap();
        c.wait_with_output().unwrap()
    }

    /// Through a real shell: steps run in order, each one's output lands in its segment, the
    /// command stops at the failing step, and no step reads another's stdin.
    #[test]
    fn a_batch_runs_in_order_and_stops_at_the_first_failure() {
        let prelude =
            "kubeha_put() { head -c \"$2\" >/dev/null; echo \"kubeha-file written $1\"; }\n";
        let stdin: &[&[u8]] = &[b"ab"];
        let (script, bytes) = script(prelude, &parts(stdin));
        assert_eq!(bytes, b"ab");
        let out = sh(&script, &bytes);
        assert_eq!(out.status.code(), Some(1));
        let segs = split(
            &String::from_utf8_lossy(&out.stdout),
            &String::from_utf8_lossy(&out.stderr),
        );
        let ids: Vec<&str> = segs.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            ["prepare/hosts", "prepare/swap-off", "prepare/packages"]
        );
        assert_eq!(
            segs[0].stdout,
            "kubeha-file written /etc/a\nhosts\nno-newline"
        );
        assert_eq!(segs[1].stdout, "read-nothing\nrecorded\n");
        assert!(segs[1].stderr.contains("swap\n"), "{:?}", segs[1].stderr);
        assert_eq!(segs[2].stdout, "packages\n");
        assert!(
            segs[2].stderr.lines().any(|l| l == format!("{TRACE}false")),
            "{:?}",
            segs[2].stderr
        );
        assert!(segs[0].started_ns.is_some() && segs[0].ended_ns == segs[1].started_ns);
        assert_eq!(segs[2].ended_ns, None, "the failed step never finished");
    }

    #[test]
    fn a_batch_that_finishes_says_when() {
        let mut p = parts(&[]);
        p.truncate(1);
        p[0].puts.clear();
        let (script, _) = script("", &p);
        let out = sh(&script, b"");
        assert!(out.status.success(), "{out:?}");
        let segs = split(&String::from_utf8_lossy(&out.stdout), "");
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].stdout, "hosts\nno-newline");
        assert!(segs[0].ended_ns >= segs[0].started_ns && segs[0].ended_ns.is_some());
    }

    #[test]
    fn the_scripted_view_matches_the_parts() {
        let stdin: &[&[u8]] = &[b"ab"];
        let (script, _) = script("prelude\n", &parts(stdin));
        let steps = steps_of(&script);
        let ids: Vec<&str> = steps.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            ids,
            ["prepare/hosts", "prepare/swap-off", "prepare/packages"]
        );
        assert!(steps[0].1.contains("kubeha_put '/etc/a'"));
        assert!(steps[1].1.contains("echo recorded"));
        let (o, e) = output_of(
            &[
                ("a/b".into(), "x\n".into(), String::new()),
                ("c/d".into(), String::new(), "bad\n".into()),
            ],
            false,
        );
        let segs = split(&o, &e);
        assert_eq!(segs.len(), 2);
        assert_eq!(
            (segs[0].stdout.as_str(), segs[1].stderr.as_str()),
            ("x\n", "bad\n")
        );
        assert_eq!(segs[1].ended_ns, None);
    }
}
