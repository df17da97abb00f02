//! Time without a clock: an [`Instant`] the caller supplies, and the RFC timer formulas in
//! exact arithmetic.
//!
//! VRRPv3 (RFC 9568 §6.1), intervals in centiseconds:
//! - `Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256`
//! - `Master_Down_Interval = (3 * Master_Adver_Interval) + Skew_Time`
//!
//! VRRPv2 (RFC 3768 §6.1), intervals in seconds:
//! - `Skew_Time = (256 - Priority) / 256`
//! - `Master_Down_Interval = (3 * Advertisement_Interval) + Skew_Time`
//!
//! The skew is never truncated to whole centiseconds (or seconds): it is computed in
//! nanoseconds and only rounded up when the exact value has a half nanosecond (VRRPv3 with
//! an odd `(256 - Priority) * interval`), so a timer never fires early.

use std::ops::Add;
use std::time::Duration;

use crate::packet::Version;

/// A point in time on the caller's clock, as the time elapsed since an arbitrary epoch.
///
/// The daemon maps its monotonic clock onto this (e.g. `std::time::Instant` minus its start);
/// tests use a virtual clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(Duration);

impl Instant {
    /// The epoch.
    pub const ZERO: Instant = Instant(Duration::ZERO);

    pub const fn from_epoch(since_epoch: Duration) -> Instant {
        Instant(since_epoch)
    }

    pub const fn since_epoch(self) -> Duration {
        self.0
    }

    /// `self - earlier`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturates at the far future instead of overflowing.
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(rhs))
    }
}

/// `n` centiseconds.
pub const fn centis(n: u32) -> Duration {
    Duration::from_millis(n as u64 * 10)
}

const NANOS_PER_CENTI: u64 = 10_000_000;
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Skew_Time for a VRRPv3 router of `priority` whose master advertises every
/// `master_adver_interval_cs` centiseconds.
pub fn skew_time_v3(priority: u8, master_adver_interval_cs: u32) -> Duration {
    let num = (256 - u64::from(priority)) * u64::from(master_adver_interval_cs) * NANOS_PER_CENTI;
    Duration::from_nanos(num.div_ceil(256))
}

/// Skew_Time for a VRRPv2 router of `priority`: `(256 - priority) / 256` seconds, exact.
pub fn skew_time_v2(priority: u8) -> Duration {
    let num = (256 - u64::from(priority)) * NANOS_PER_SEC;
    Duration::from_nanos(num.div_ceil(256))
}

/// Skew_Time for either version. For v2 the interval is ignored (the RFC 3768 skew does not
/// scale with the interval).
pub fn skew_time(version: Version, priority: u8, master_adver_interval_cs: u32) -> Duration {
    match version {
        Version::V3 => skew_time_v3(priority, master_adver_interval_cs),
        Version::V2 => skew_time_v2(priority),
    }
}

/// Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time.
pub fn master_down_interval(
    version: Version,
    priority: u8,
    master_adver_interval_cs: u32,
) -> Duration {
    centis(master_adver_interval_cs).saturating_mul(3)
        + skew_time(version, priority, master_adver_interval_cs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_skew_is_not_truncated() {
        // 254 at 10 cs: (2 * 10 / 256) cs = 0.078125 cs = 781.25 us. Truncation gives 0.
        assert_eq!(skew_time_v3(254, 10), Duration::from_nanos(781_250));
        // 150 at 100 cs: 106 * 100 / 256 cs = 414.0625 ms.
        assert_eq!(skew_time_v3(150, 100), Duration::from_nanos(414_062_500));
        // 255 at 1 cs: 1/256 cs = 39062.5 ns, rounded up so the timer never fires early.
        assert_eq!(skew_time_v3(255, 1), Duration::from_nanos(39_063));
        // 1 at 4095 cs, the largest product.
        assert_eq!(
            skew_time_v3(1, 4095),
            Duration::from_nanos(255 * 4095 * 10_000_000 / 256 + 1)
        );
    }

    #[test]
    fn v2_skew_is_exact_and_ignores_interval() {
        assert_eq!(skew_time_v2(100), Duration::from_nanos(609_375_000));
        assert_eq!(
            skew_time(Version::V2, 100, 300),
            Duration::from_nanos(609_375_000)
        );
    }

    #[test]
    fn master_down_interval_adds_three_intervals() {
        assert_eq!(
            master_down_interval(Version::V3, 100, 10),
            Duration::from_millis(300) + Duration::from_nanos(60_937_500)
        );
        assert_eq!(
            master_down_interval(Version::V2, 100, 100),
            Duration::from_secs(3) + Duration::from_nanos(609_375_000)
        );
    }

    #[test]
    fn instant_add_saturates() {
        let far = Instant::from_epoch(Duration::MAX);
        assert_eq!(far + Duration::from_secs(1), far);
        assert_eq!(Instant::ZERO.saturating_since(far), Duration::ZERO);
    }
}
