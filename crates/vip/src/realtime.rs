//! The speaker on a thread of its own, at real-time priority where the system allows it
//! (keepalived's `vrrp_rt_priority`). On a starved control-plane node an advert or a
//! Master_Down deadline that waits behind busy threads is a false failover; a `SCHED_FIFO`
//! thread runs before every ordinary one.

use std::num::NonZeroU64;

use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::{SpeakerConfig, Status, VipError};

/// How the speaker's thread is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduling {
    /// `SCHED_FIFO` at this priority (1–99); if refused, ordinary scheduling with a warning.
    RealTime(u8),
    /// Ordinary scheduling (`realtime_priority: 0`).
    Normal,
}

/// What the thread got, for the log and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Granted {
    RealTime(u8),
    Normal,
    /// Asked for real time and refused (no CAP_SYS_NICE, or an RT budget of 0 in the cgroup).
    Refused(String),
}

/// Puts the calling thread in `SCHED_FIFO` at `priority`. Children do not inherit it.
fn set_fifo(priority: u8) -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: `param` is a valid sched_param that the kernel only reads during the call; pid 0
    // is the calling thread.
    let r = unsafe {
        libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param)
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Applies `s` to the calling thread. Ordinary threads get a 1 ns timer slack (the default
/// 50 µs is a third of the skew between adjacent priorities at 40 ms adverts); real-time
/// threads have none anyway.
pub fn apply(s: Scheduling) -> Granted {
    let granted = match s {
        Scheduling::RealTime(p) => match set_fifo(p.clamp(1, 99)) {
            Ok(()) => Granted::RealTime(p.clamp(1, 99)),
            Err(e) => Granted::Refused(e.to_string()),
        },
        Scheduling::Normal => Granted::Normal,
    };
    if !matches!(granted, Granted::RealTime(_)) {
        let _ = rustix::thread::set_current_timer_slack(NonZeroU64::new(1));
    }
    granted
}

/// Runs [`crate::run`] on a new thread named `vrrp` with its own single-threaded runtime,
/// scheduled as `scheduling` asks. The receiver gets the speaker's result when it ends (after
/// the handover on `shutdown`).
pub fn spawn(
    cfg: SpeakerConfig,
    health: watch::Receiver<vrrp::Health>,
    shutdown: CancellationToken,
    status_tx: watch::Sender<Status>,
    scheduling: Scheduling,
) -> std::io::Result<oneshot::Receiver<Result<(), VipError>>> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("vrrp".into())
        .spawn(move || {
            match apply(scheduling) {
                Granted::RealTime(p) => tracing::info!(priority = p, "VRRP thread runs SCHED_FIFO"),
                Granted::Normal => {}
                Granted::Refused(e) => tracing::warn!(
                    error = %e,
                    "VRRP thread not given real-time priority (needs CAP_SYS_NICE and an RT budget); adverts may be late on a starved CPU"
                ),
            }
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(VipError::Thread)
                .and_then(|rt| rt.block_on(crate::run(cfg, health, shutdown, status_tx)));
            let _ = tx.send(result);
        })?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_gets_fifo_or_says_why_not() {
        let got = std::thread::spawn(|| {
            let g = apply(Scheduling::RealTime(200));
            // SAFETY: sched_getscheduler only reads the calling thread's policy.
            let policy = unsafe { libc::sched_getscheduler(0) } & !libc::SCHED_RESET_ON_FORK;
            (g, policy)
        })
        .join()
        .unwrap();
        match got {
            // 200 is out of range: clamped to the highest allowed.
            (Granted::RealTime(p), policy) => {
                assert_eq!(p, 99);
                assert_eq!(policy, libc::SCHED_FIFO);
            }
            (Granted::Refused(e), policy) => {
                assert!(!e.is_empty());
                assert_eq!(policy, libc::SCHED_OTHER);
            }
            (Granted::Normal, _) => panic!("asked for real time"),
        }
        let normal = std::thread::spawn(|| {
            let g = apply(Scheduling::Normal);
            (g, rustix::thread::current_timer_slack().unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(normal, (Granted::Normal, 1));
    }
}
