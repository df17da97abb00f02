//! Node namespaces on one Linux machine: network namespaces and the processes started in them,
//! each removed by its guard's Drop, also when a test fails half-way; `topology` puts N of them
//! on a bridge. Used by `kubeha lab` (through the lab crate) and by the root tests. Depends on
//! no other kubeha crate, so any crate's tests can use it.

pub mod node;
pub mod topology;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use topology::{Host, Topology};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start {0}: {1}")]
    Spawn(String, #[source] std::io::Error),
    #[error("{command} failed with status {status}: {stderr}")]
    Command {
        command: String,
        status: i32,
        stderr: String,
    },
    #[error(
        "network namespace {0} already exists and is not this lab's; remove it or pick another --name"
    )]
    Exists(String),
    #[error("{0}")]
    Invalid(String),
}

/// Whether this process may create namespaces (root).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs `ip` with arguments; an error carries the command and its stderr.
pub fn ip(args: &[&str]) -> Result<String, Error> {
    run(Command::new("ip").args(args))
}

/// Runs a command to completion and returns stdout, or an error naming the command.
pub fn run(cmd: &mut Command) -> Result<String, Error> {
    let out: Output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Spawn(format!("{cmd:?}"), e))?;
    if !out.status.success() {
        return Err(Error::Command {
            command: format!("{cmd:?}"),
            status: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `f` on a new thread that has entered network namespace `ns` (sockets it opens live
/// there); the calling thread is not affected.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<Result<T, Error>> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        enter_netns(&path)?;
        Ok(f())
    })
}

/// Moves the calling thread into the network namespace at `path` (`/run/netns/<name>`); other
/// threads stay where they are.
pub fn enter_netns(path: &str) -> Result<(), Error> {
    let file = std::fs::File::open(path).map_err(|e| Error::Spawn(path.to_string(), e))?;
    enter_netns_file(&file).map_err(|e| Error::Spawn(path.to_string(), e))
}

/// Moves the calling thread into the network namespace `file` refers to (an open
/// `/run/netns/<name>`).
pub fn enter_netns_file(file: &std::fs::File) -> std::io::Result<()> {
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(file),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )?;
    Ok(())
}

/// Sends signal `sig` (e.g. `libc::SIGKILL`) to process `pid`; whether it was delivered. A
/// PID of 0 or below (never a process group here) and an unknown signal send nothing.
pub fn signal(pid: i32, sig: i32) -> bool {
    match (
        rustix::process::Pid::from_raw(pid).filter(|_| pid > 0),
        rustix::process::Signal::from_named_raw(sig),
    ) {
        (Some(pid), Some(sig)) => rustix::process::kill_process(pid, sig).is_ok(),
        _ => false,
    }
}

/// Reaps `pid` if it is a child of this process that has exited: its exit code (128+signal if
/// killed). None while it runs, and for a PID that is not our child.
pub fn reap(pid: i32) -> Option<i32> {
    let pid = rustix::process::Pid::from_raw(pid).filter(|_| pid > 0)?;
    let (_, status) =
        rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG).ok()??;
    status
        .exit_status()
        .or_else(|| status.terminating_signal().map(|s| 128 + s))
}

/// Names of the network namespaces that exist now.
pub fn list() -> Result<Vec<String>, Error> {
    Ok(ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

/// A network namespace this process created. Dropping it kills what runs inside and deletes it.
#[derive(Debug)]
pub struct Netns {
    name: String,
    keep: bool,
}

impl Netns {
    /// Creates the namespace; refuses one that already exists (it is not ours to take over).
    pub fn create(name: &str) -> Result<Netns, Error> {
        if list()?.iter().any(|n| n == name) {
            return Err(Error::Exists(name.to_string()));
        }
        ip(&["netns", "add", name])?;
        let ns = Netns {
            name: name.to_string(),
            keep: false,
        };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A handle on an existing namespace that never deletes it.
    pub fn existing(name: &str) -> Netns {
        Netns {
            name: name.to_string(),
            keep: true,
        }
    }

    /// Takes charge of an existing namespace (for `lab down` after a crash).
    pub fn adopt(name: &str) -> Netns {
        Netns {
            name: name.to_string(),
            keep: false,
        }
    }

    /// Leaves the namespace in place when dropped (`lab up` hands it to `lab down`).
    pub fn keep(mut self) -> String {
        self.keep = true;
        self.name.clone()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs a command inside the namespace to completion.
    pub fn exec(&self, argv: &[&str]) -> Result<String, Error> {
        let mut c = self.command(argv[0]);
        c.args(&argv[1..]);
        run(&mut c)
    }

    /// Starts a long-running process inside the namespace; its guard kills it by PID.
    pub fn spawn(&self, argv: &[&str], log: Option<&std::path::Path>) -> Result<Proc, Error> {
        let mut c = self.command(argv[0]);
        c.args(&argv[1..]).stdin(Stdio::null());
        match log {
            Some(path) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| Error::Spawn(path.display().to_string(), e))?;
                let f2 = f
                    .try_clone()
                    .map_err(|e| Error::Spawn(path.display().to_string(), e))?;
                c.stdout(f).stderr(f2);
            }
            None => {
                c.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let child = c.spawn().map_err(|e| Error::Spawn(argv.join(" "), e))?;
        Ok(Proc {
            child: Some(child),
            what: format!("{} in {}", argv.join(" "), self.name),
        })
    }

    /// PIDs of every process in the namespace.
    pub fn pids(&self) -> Vec<i32> {
        ip(&["netns", "pids", &self.name])
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Kills every process inside and deletes the namespace. Bounded: gives up after 5 s.
    pub fn destroy(&self) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in pids {
                // SIGCONT too, so a process a drill stopped is resumed and reaped.
                signal(pid, libc::SIGCONT);
                signal(pid, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if list()?.iter().any(|n| n == &self.name) {
            ip(&["netns", "del", &self.name])?;
        }
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.keep {
            let _ = self.destroy();
        }
    }
}

/// A process started by us. Dropping it kills it (by PID) and reaps it.
#[derive(Debug)]
pub struct Proc {
    child: Option<Child>,
    what: String,
}

impl Proc {
    /// The PID of `ip netns exec`, which execs the program: the same process.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    pub fn describe(&self) -> &str {
        &self.what
    }

    pub fn signal(&self, sig: i32) {
        let pid = self.pid();
        if pid > 0 {
            signal(pid, sig);
        }
    }

    /// Whether the process has exited (reaps it if so).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Forgets the process without killing it (it outlives this guard; `lab down` kills it).
    pub fn detach(mut self) -> i32 {
        let pid = self.pid();
        self.child = None;
        pid
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id() as i32, libc::SIGCONT);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
