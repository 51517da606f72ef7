//! What the job page works out from a job's attempts and counters (pure): the reduce-input
//! skew (the largest partitions against the median) and the stragglers (attempts much slower
//! than their kind's median).

use serde::Serialize;

use crate::jobtracker::history::{AttemptRow, AttemptState};
use crate::scheduler::{Locality, TaskKind};

/// An attempt is a straggler when it ran this many times the median of its kind.
pub const STRAGGLER_FACTOR: f64 = 1.5;
/// Fewer finished attempts of a kind than this make no median worth comparing with.
pub const MIN_FOR_MEDIAN: usize = 3;
/// Partitions the skew table lists.
pub const SKEW_TOP: usize = 3;

/// One reduce partition's input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Partition {
    /// Partition (reduce task) number.
    pub index: u32,
    /// Reduce input records.
    pub records: u64,
    /// Shuffle bytes read.
    pub bytes: u64,
    /// `records` over the median (1.0 = typical).
    pub ratio: f64,
}

/// The reduce-input skew of a job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skew {
    /// Median reduce input records over the partitions.
    pub median_records: u64,
    /// The largest partitions, largest first (at most [`SKEW_TOP`]).
    pub largest: Vec<Partition>,
}

/// Skew over `(partition, records, bytes)` of the reduces that finished; `None` with fewer
/// than two partitions (nothing to compare).
pub fn skew(partitions: &[(u32, u64, u64)]) -> Option<Skew> {
    if partitions.len() < 2 {
        return None;
    }
    let median_records = median(partitions.iter().map(|p| p.1).collect());
    let mut sorted = partitions.to_vec();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let largest = sorted
        .into_iter()
        .take(SKEW_TOP)
        .map(|(index, records, bytes)| Partition {
            index,
            records,
            bytes,
            ratio: records as f64 / median_records.max(1) as f64,
        })
        .collect();
    Some(Skew {
        median_records,
        largest,
    })
}

/// The median (the upper one of an even count).
fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// An attempt much slower than the median of its kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Straggler {
    /// The attempt's name.
    pub attempt: String,
    /// Where it ran.
    pub host: String,
    /// How close to its input it ran.
    pub locality: Locality,
    /// How long it ran (so far, when still running).
    pub duration_ms: u64,
    /// The median of the succeeded attempts of its kind.
    pub median_ms: u64,
    /// Whether it still runs.
    pub running: bool,
}

/// Attempts that ran more than [`STRAGGLER_FACTOR`] times the median duration of the
/// succeeded attempts of their kind (running ones measured until `now_unix_ms`), slowest
/// first.
pub fn stragglers(rows: &[AttemptRow], now_unix_ms: u64) -> Vec<Straggler> {
    let mut out = Vec::new();
    for kind in [TaskKind::Map, TaskKind::Reduce] {
        let finished: Vec<u64> = rows
            .iter()
            .filter(|r| r.kind == kind && r.state == AttemptState::Succeeded)
            .map(|r| r.duration_ms(now_unix_ms))
            .collect();
        if finished.len() < MIN_FOR_MEDIAN {
            continue;
        }
        let median_ms = median(finished);
        let slow = rows.iter().filter(|r| {
            r.kind == kind
                && matches!(r.state, AttemptState::Succeeded | AttemptState::Running)
                && r.duration_ms(now_unix_ms) as f64 > STRAGGLER_FACTOR * median_ms as f64
        });
        out.extend(slow.map(|r| Straggler {
            attempt: r.attempt.clone(),
            host: r.host.clone(),
            locality: r.locality,
            duration_ms: r.duration_ms(now_unix_ms),
            median_ms,
            running: r.state == AttemptState::Running,
        }));
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.duration_ms));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobtracker::history::History;
    use crate::scheduler::{AttemptId, TaskId};

    #[test]
    fn skew_names_the_largest_partitions_against_the_median() {
        assert_eq!(skew(&[(0, 5, 50)]), None);
        let s = skew(&[(0, 10, 100), (1, 12, 120), (2, 100, 1000), (3, 8, 80)]).unwrap();
        assert_eq!(s.median_records, 12);
        assert_eq!(s.largest.len(), SKEW_TOP);
        assert_eq!((s.largest[0].index, s.largest[0].records), (2, 100));
        assert!((s.largest[0].ratio - 100.0 / 12.0).abs() < 1e-9);
        // Empty partitions do not divide by zero.
        let s = skew(&[(0, 0, 0), (1, 0, 0), (2, 7, 1)]).unwrap();
        assert_eq!(s.largest[0].ratio, 7.0);
    }

    #[test]
    fn a_slow_attempt_is_a_straggler_against_its_kinds_median() {
        let mut h = History::default();
        let a = |index| AttemptId {
            task: TaskId {
                job: 1,
                kind: TaskKind::Map,
                index,
            },
            attempt: 0,
        };
        for (i, ms) in [(0, 1_000), (1, 1_100), (2, 900), (3, 5_000)] {
            h.launched(a(i), "h", Locality::DataLocal, 0);
            h.succeeded(a(i), &Default::default(), ms);
        }
        h.launched(a(4), "slow", Locality::Other, 0);
        let found = stragglers(h.rows(), 2_000);
        let names: Vec<&str> = found.iter().map(|s| s.attempt.as_str()).collect();
        assert_eq!(
            names,
            ["attempt_0001_m_000003_0", "attempt_0001_m_000004_0"]
        );
        assert_eq!(found[0].median_ms, 1_100);
        assert!(found[1].running);
        assert!(
            stragglers(&h.rows()[..2], 2_000).is_empty(),
            "too few to judge"
        );
    }
}
