//! Window accounting: pure functions over the writer's samples and the watcher's holder
//! changes. No clock, no I/O; times are milliseconds since the drill started.

use std::collections::HashSet;

use serde::Serialize;

/// One write through the VIP.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// The key's sequence number (`drill/<run>/<seq:08>`).
    pub seq: u64,
    pub start_ms: f64,
    pub end_ms: f64,
    /// Acknowledged: HTTP 200 with a response header from etcd.
    pub ok: bool,
}

/// From `t_ms` until the next change, exactly the nodes in `holders` carry the VIP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HolderChange {
    /// Milliseconds since the drill started (whole, to keep the JSON short).
    pub t_ms: u64,
    pub holders: Vec<usize>,
}

/// A node whose holding does not count as a split brain between `from_ms` and `to_ms`
/// (its cable is pulled: nobody can reach its copy of the VIP).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Isolated {
    pub node: usize,
    pub from_ms: f64,
    pub to_ms: f64,
}

/// A recovery must be followed by this long without a new write failing (before the fault is
/// undone), so one lucky write in the middle of an outage does not end it.
pub const QUIET_MS: f64 = 300.0;

/// What a failover time was measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Writes failed after the fault: fault until the end of the first acknowledged write
    /// that started after the fault and after which no write started within QUIET_MS (and
    /// before the fault was undone) failed.
    Writes,
    /// No write failed: fault until another node held the VIP.
    VipMove,
    /// No write failed and the VIP did not move: 0.
    None,
}

/// Failover of one fault at `fault_ms`, undone at `restore_ms`. `moved_ms` is when another
/// node first held the VIP after the fault, if it did. `samples` in any order (writes overlap).
pub fn failover(
    samples: &[Sample],
    fault_ms: f64,
    restore_ms: f64,
    moved_ms: Option<f64>,
) -> (f64, Basis) {
    let failed: Vec<&Sample> = samples
        .iter()
        .filter(|s| !s.ok && s.end_ms > fault_ms && s.start_ms < restore_ms)
        .collect();
    if failed.is_empty() {
        return match moved_ms {
            Some(t) => ((t - fault_ms).max(0.0), Basis::VipMove),
            None => (0.0, Basis::None),
        };
    }
    let mut ok: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.ok && s.start_ms >= fault_ms)
        .collect();
    ok.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
    let recovered = ok.iter().find(|s| {
        let horizon = (s.start_ms + QUIET_MS).min(restore_ms);
        !failed
            .iter()
            .any(|f| f.start_ms >= s.start_ms && f.start_ms < horizon)
    });
    let end = recovered.map_or_else(
        || failed.iter().map(|f| f.end_ms).fold(fault_ms, f64::max),
        |s| s.end_ms,
    );
    ((end - fault_ms).max(0.0), Basis::Writes)
}

/// Failed writes whose failure was seen (ended) in `[from_ms, to_ms)`.
pub fn failed_in(samples: &[Sample], from_ms: f64, to_ms: f64) -> u64 {
    samples
        .iter()
        .filter(|s| !s.ok && s.end_ms >= from_ms && s.end_ms < to_ms)
        .count() as u64
}

/// Acknowledged writes that ended in `[from_ms, to_ms)`.
pub fn acked_in(samples: &[Sample], from_ms: f64, to_ms: f64) -> u64 {
    samples
        .iter()
        .filter(|s| s.ok && s.end_ms >= from_ms && s.end_ms < to_ms)
        .count() as u64
}

/// Total time in `[from_ms, to_ms)` during which two or more nodes held the VIP, not counting
/// a node while it is `isolated`. `changes` are in time order; before the first change nobody
/// is known to hold it.
pub fn dual_holder_ms(
    changes: &[HolderChange],
    from_ms: f64,
    to_ms: f64,
    isolated: &[Isolated],
) -> f64 {
    if to_ms <= from_ms {
        return 0.0;
    }
    // Every instant where the count can change, clipped to the window.
    let mut cuts: Vec<f64> = vec![from_ms, to_ms];
    cuts.extend(changes.iter().map(|c| c.t_ms as f64));
    for iso in isolated {
        cuts.push(iso.from_ms);
        cuts.push(iso.to_ms);
    }
    cuts.retain(|t| *t >= from_ms && *t <= to_ms);
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    let mut total = 0.0;
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let mid = (a + b) / 2.0;
        let Some(current) = changes.iter().rev().find(|c| (c.t_ms as f64) <= mid) else {
            continue;
        };
        let counted = current
            .holders
            .iter()
            .filter(|&&n| {
                !isolated
                    .iter()
                    .any(|iso| iso.node == n && iso.from_ms <= mid && mid < iso.to_ms)
            })
            .count();
        if counted >= 2 {
            total += b - a;
        }
    }
    total
}

/// When a node other than `node` first held the VIP in `[from_ms, to_ms)`, and which node.
pub fn moved(
    changes: &[HolderChange],
    node: usize,
    from_ms: f64,
    to_ms: f64,
) -> Option<(f64, usize)> {
    // The state in force at `from_ms` counts too (a make-before-break handover may have
    // added the new holder an instant before the fault was recorded).
    let before = changes.iter().rev().find(|c| (c.t_ms as f64) <= from_ms);
    let after = changes
        .iter()
        .filter(|c| (c.t_ms as f64) > from_ms && (c.t_ms as f64) < to_ms);
    before
        .into_iter()
        .map(|c| (from_ms, c))
        .chain(after.map(|c| (c.t_ms as f64, c)))
        .find_map(|(t, c)| c.holders.iter().find(|&&n| n != node).map(|&n| (t, n)))
}

/// Keys in `acked` that are missing from at least one member's key set.
pub fn lost<'a>(acked: &'a [String], members: &[HashSet<String>]) -> Vec<&'a String> {
    acked
        .iter()
        .filter(|k| members.iter().any(|m| !m.contains(*k)))
        .collect()
}

/// The median of `v` (the mean of the middle two for an even count); 0 for none.
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(seq: u64, start: f64, end: f64, ok: bool) -> Sample {
        Sample {
            seq,
            start_ms: start,
            end_ms: end,
            ok,
        }
    }

    fn ch(t: u64, holders: &[usize]) -> HolderChange {
        HolderChange {
            t_ms: t,
            holders: holders.to_vec(),
        }
    }

    #[test]
    fn failover_runs_to_the_first_success_after_the_last_failure() {
        let samples = [
            s(1, 0.0, 10.0, true),
            s(2, 95.0, 1095.0, false), // in flight when the fault hit at 100
            s(3, 1095.0, 1100.0, false),
            s(4, 1100.0, 1120.0, true),
            s(5, 1120.0, 1130.0, false), // a second burst, still before the restore
            s(6, 1130.0, 1150.0, true),
            s(7, 2100.0, 2110.0, false), // after the restore: not the failover's
        ];
        let (ms, basis) = failover(&samples, 100.0, 2000.0, Some(250.0));
        assert_eq!(basis, Basis::Writes);
        assert_eq!(ms, 1050.0);
        assert_eq!(failed_in(&samples, 100.0, 3000.0), 4);
        assert_eq!(failed_in(&samples, 100.0, 2000.0), 3);
        assert_eq!(acked_in(&samples, 0.0, 3000.0), 3);
    }

    #[test]
    fn overlapping_writes_recover_at_the_first_success_started_after_the_last_failure() {
        // Fault at 100; writes every 10 ms; those started up to 150 hang for 1 s and fail.
        let mut samples = Vec::new();
        for k in 0..40u64 {
            let start = k as f64 * 10.0;
            let (end, ok) = if (100.0..=150.0).contains(&start) {
                (start + 1000.0, false)
            } else {
                (start + 5.0, true)
            };
            samples.push(s(k, start, end, ok));
        }
        // In the order they finished.
        samples.sort_by(|a, b| a.end_ms.total_cmp(&b.end_ms));
        let (ms, basis) = failover(&samples, 100.0, 1000.0, Some(140.0));
        assert_eq!(basis, Basis::Writes);
        assert_eq!(ms, 65.0); // the write started at 160 ended at 165
        assert_eq!(failed_in(&samples, 100.0, 2000.0), 6);
    }

    #[test]
    fn a_failure_just_before_the_restore_does_not_extend_the_failover() {
        // Outage 100..250, recovered, then a hiccup at 980 as the old holder comes back.
        let mut samples = Vec::new();
        for k in 0..110u64 {
            let start = k as f64 * 10.0;
            let ok = !((100.0..250.0).contains(&start) || start == 980.0);
            samples.push(s(k, start, start + 5.0, ok));
        }
        let (ms, basis) = failover(&samples, 100.0, 1000.0, Some(200.0));
        assert_eq!(basis, Basis::Writes);
        assert_eq!(ms, 155.0);
    }

    #[test]
    fn a_lucky_write_inside_the_outage_does_not_end_it() {
        let mut samples = Vec::new();
        for k in 0..60u64 {
            let start = k as f64 * 10.0;
            let ok = !(100.0..400.0).contains(&start) || start == 200.0;
            samples.push(s(k, start, start + 5.0, ok));
        }
        let (ms, _) = failover(&samples, 100.0, 1000.0, None);
        assert_eq!(ms, 305.0);
    }

    #[test]
    fn failover_without_failures_is_the_vip_move_or_zero() {
        let samples = [s(1, 0.0, 10.0, true), s(2, 10.0, 20.0, true)];
        assert_eq!(
            failover(&samples, 5.0, 1000.0, Some(45.0)),
            (40.0, Basis::VipMove)
        );
        assert_eq!(failover(&samples, 5.0, 1000.0, None), (0.0, Basis::None));
    }

    #[test]
    fn failover_without_a_later_success_ends_at_the_last_failure_seen() {
        let samples = [s(1, 0.0, 10.0, true), s(2, 10.0, 1010.0, false)];
        assert_eq!(
            failover(&samples, 5.0, 2000.0, None),
            (1005.0, Basis::Writes)
        );
    }

    #[test]
    fn dual_holder_time_counts_overlaps_inside_the_window() {
        let changes = [
            ch(0, &[0]),
            ch(100, &[0, 1]),
            ch(180, &[1]),
            ch(1000, &[0, 1]),
            ch(1010, &[0]),
        ];
        assert_eq!(dual_holder_ms(&changes, 0.0, 2000.0, &[]), 90.0);
        // Clipped to the window.
        assert_eq!(dual_holder_ms(&changes, 150.0, 1005.0, &[]), 35.0);
        assert_eq!(dual_holder_ms(&changes, 200.0, 900.0, &[]), 0.0);
        assert_eq!(dual_holder_ms(&changes, 5.0, 5.0, &[]), 0.0);
        assert_eq!(dual_holder_ms(&[], 0.0, 100.0, &[]), 0.0);
    }

    #[test]
    fn an_isolated_holder_is_not_a_split_brain() {
        let changes = [
            ch(0, &[0]),
            ch(150, &[0, 1]),
            ch(1100, &[0]),
            ch(1120, &[0]),
        ];
        let iso = [Isolated {
            node: 0,
            from_ms: 0.0,
            to_ms: 1000.0,
        }];
        assert_eq!(dual_holder_ms(&changes, 0.0, 2000.0, &[]), 950.0);
        // From 1000 (cable back) to 1100 both are reachable and both hold it.
        assert_eq!(dual_holder_ms(&changes, 0.0, 2000.0, &iso), 100.0);
    }

    #[test]
    fn moved_finds_the_first_other_holder() {
        let changes = [ch(0, &[0]), ch(100, &[]), ch(150, &[2]), ch(400, &[0])];
        assert_eq!(moved(&changes, 0, 50.0, 1000.0), Some((150.0, 2)));
        assert_eq!(moved(&changes, 0, 300.0, 1000.0), Some((300.0, 2)));
        assert_eq!(moved(&changes, 0, 450.0, 1000.0), None);
        assert_eq!(moved(&changes, 2, 0.0, 1000.0), Some((0.0, 0)));
    }

    #[test]
    fn lost_keys_are_the_acked_keys_missing_anywhere() {
        let acked: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let m1: HashSet<String> = ["a", "b", "c", "x"].iter().map(|s| s.to_string()).collect();
        let m2: HashSet<String> = ["a", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            lost(&acked, &[m1.clone(), m1.clone()]),
            Vec::<&String>::new()
        );
        assert_eq!(lost(&acked, &[m1, m2]), vec![&acked[1]]);
        assert_eq!(lost(&acked, &[]), Vec::<&String>::new());
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
