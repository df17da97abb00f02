//! A deadline timer with nanosecond resolution (a `timerfd` on `CLOCK_MONOTONIC`, absolute).
//!
//! tokio's timer wheel fires on whole milliseconds. RFC 9568's skew separates adjacent
//! priorities by 0.39 ms at 100 ms adverts (0.16 ms at 40 ms), so two backups whose
//! Master_Down timers round to the same millisecond both take over. The kernel's timer keeps
//! the order the priorities give.

use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::time::{
    ClockId, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, clock_gettime,
    timerfd_create, timerfd_settime,
};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// One timer, re-armed for each deadline. Deadlines are offsets from the moment it was made
/// (the same epoch as the speaker's `vrrp::Instant`).
pub struct DeadlineTimer {
    fd: AsyncFd<OwnedFd>,
    /// `CLOCK_MONOTONIC` at the epoch.
    epoch: Duration,
    armed: Option<Duration>,
}

fn to_duration(t: Timespec) -> Duration {
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

fn to_timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

impl DeadlineTimer {
    /// A timer whose epoch is now. Must be called inside a tokio runtime.
    pub fn new() -> std::io::Result<DeadlineTimer> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // SAFETY: the OwnedFd owns the timerfd, which stays open and unchanged until the
        // AsyncFd (its only owner) is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(DeadlineTimer {
            fd,
            epoch: to_duration(clock_gettime(ClockId::Monotonic)),
            armed: None,
        })
    }

    /// Time since the epoch, on the timer's own clock.
    pub fn elapsed(&self) -> Duration {
        to_duration(clock_gettime(ClockId::Monotonic)).saturating_sub(self.epoch)
    }

    /// Waits until `deadline` (since the epoch). Cancel-safe: dropping the future and calling
    /// again with the same deadline keeps the armed timer.
    pub async fn sleep_until(&mut self, deadline: Duration) -> std::io::Result<()> {
        if self.armed != Some(deadline) {
            // An all-zero value disarms a timerfd; the epoch itself is never zero on Linux's
            // monotonic clock, but keep the value at least 1 ns anyway.
            let at = (self.epoch + deadline).max(Duration::from_nanos(1));
            let spec = Itimerspec {
                it_interval: to_timespec(Duration::ZERO),
                it_value: to_timespec(at),
            };
            timerfd_settime(self.fd.get_ref(), TimerfdTimerFlags::ABSTIME, &spec)?;
            self.armed = Some(deadline);
        }
        loop {
            let mut guard = self.fd.readable().await?;
            let mut count = [0u8; 8];
            match guard.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut count)?)) {
                Ok(Ok(_)) => {
                    self.armed = None;
                    return Ok(());
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fires_at_or_after_the_deadline_never_before() {
        let mut t = DeadlineTimer::new().unwrap();
        // A deadline 0.3 ms past a whole millisecond: tokio would wake at the next one.
        let deadline = t.elapsed() + Duration::from_micros(20_300);
        t.sleep_until(deadline).await.unwrap();
        let woke = t.elapsed();
        assert!(woke >= deadline, "woke {woke:?} before {deadline:?}");
        // Bounded generously: a loaded test machine delays wake-ups, never advances them.
        assert!(woke < deadline + Duration::from_millis(200), "{woke:?}");
    }

    #[tokio::test]
    async fn a_deadline_in_the_past_fires_at_once_and_rearming_is_cancel_safe() {
        let mut t = DeadlineTimer::new().unwrap();
        t.sleep_until(Duration::ZERO).await.unwrap();
        let far = t.elapsed() + Duration::from_secs(60);
        let near = t.elapsed() + Duration::from_millis(5);
        // Dropped while waiting for the far deadline, then re-armed for a near one.
        let r = tokio::time::timeout(Duration::from_millis(10), t.sleep_until(far)).await;
        assert!(r.is_err());
        t.sleep_until(near).await.unwrap();
        assert!(t.elapsed() >= near);
    }
}
