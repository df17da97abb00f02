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
    unsafe { libc::geteuid() == 0 }
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
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(&path).map_err(|e| Error::Spawn(path.clone(), e))?;
        // SAFETY: setns changes only this thread's namespace; the fd is valid for the call.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(Error::Spawn(path, std::io::Error::last_os_error()));
        }
        Ok(f())
    })
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
                unsafe {
                    libc::kill(pid, libc::SIGCONT);
                    libc::kill(pid, libc::SIGKILL);
                }
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
            unsafe {
                libc::kill(pid, sig);
            }
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
            unsafe {
                libc::kill(c.id() as i32, libc::SIGCONT);
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
