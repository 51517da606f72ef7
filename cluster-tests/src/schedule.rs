//! Seeded fault schedules for the randomized scenario: which fault hits which host when.
//!
//! Pure: a seed and the cluster's shape give the same schedule every time, so a failing run is
//! replayed exactly with `SEED=`. The schedule keeps the faults survivable by construction
//! (what a correct system must ride out, not a disaster that loses data): faults never overlap,
//! so at most one worker host is down, paused, cut off or behind a corrupting link at a time,
//! which with replication 3 leaves every block two live replicas and every job a place to run.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One injected fault; each lasts `ms` and is undone at its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the host's datanode and worker; restart both after `ms`.
    CrashHost { host: String, ms: u64 },
    /// SIGSTOP the host's worker (task processes included), SIGCONT after `ms`.
    PauseWorker { host: String, ms: u64 },
    /// SIGKILL the namenode leader; restart it after `ms`.
    CrashLeader { ms: u64 },
    /// Drop every packet into and out of the host for `ms` (network namespaces only).
    IsolateHost { host: String, ms: u64 },
    /// Corrupt the bytes other hosts send to the host's datanode for `ms` (namespaces only).
    CorruptLinkTo { host: String, ms: u64 },
}

impl Fault {
    /// How long the fault lasts.
    pub fn duration_ms(&self) -> u64 {
        match self {
            Fault::CrashHost { ms, .. }
            | Fault::PauseWorker { ms, .. }
            | Fault::CrashLeader { ms }
            | Fault::IsolateHost { ms, .. }
            | Fault::CorruptLinkTo { ms, .. } => *ms,
        }
    }

    /// True for faults that need network namespaces.
    pub fn needs_network(&self) -> bool {
        matches!(
            self,
            Fault::IsolateHost { .. } | Fault::CorruptLinkTo { .. }
        )
    }
}

/// A fault and when it starts, in ms from the schedule's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Start time.
    pub at_ms: u64,
    /// The fault.
    pub fault: Fault,
}

/// Gap between one fault's end and the next one's start: time for the cluster to notice a
/// recovery (heartbeats, re-replication) before the next blow.
pub const QUIET_MS: u64 = 2_000;

/// A schedule over `span_ms` for `hosts` (worker hosts), network faults only when `network`.
pub fn plan(seed: u64, hosts: &[String], span_ms: u64, network: bool) -> Vec<Step> {
    assert!(!hosts.is_empty(), "a schedule needs hosts");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut steps = Vec::new();
    let mut t = rng.gen_range(1_000..3_000);
    loop {
        let host = hosts[rng.gen_range(0..hosts.len())].clone();
        let ms = rng.gen_range(1_500..6_000);
        let kinds = if network { 5 } else { 3 };
        let fault = match rng.gen_range(0..kinds) {
            0 => Fault::CrashHost { host, ms },
            1 => Fault::PauseWorker { host, ms },
            2 => Fault::CrashLeader { ms },
            3 => Fault::IsolateHost { host, ms },
            _ => Fault::CorruptLinkTo { host, ms },
        };
        if t + ms > span_ms {
            return steps;
        }
        let next = t + ms + QUIET_MS + rng.gen_range(0..2_000);
        steps.push(Step { at_ms: t, fault });
        t = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Vec<String> {
        (1..=4).map(|i| format!("h{i}")).collect()
    }

    #[test]
    fn same_seed_same_schedule() {
        assert_eq!(
            plan(42, &hosts(), 120_000, true),
            plan(42, &hosts(), 120_000, true)
        );
        assert_ne!(
            plan(42, &hosts(), 120_000, true),
            plan(43, &hosts(), 120_000, true)
        );
    }

    #[test]
    fn faults_never_overlap_and_fit_the_span() {
        for seed in 0..200 {
            let steps = plan(seed, &hosts(), 120_000, true);
            assert!(steps.len() >= 8, "seed {seed}: only {} faults", steps.len());
            for w in steps.windows(2) {
                let end = w[0].at_ms + w[0].fault.duration_ms();
                assert!(end + QUIET_MS <= w[1].at_ms, "seed {seed}: {w:?} overlap");
            }
            let last = steps.last().unwrap();
            assert!(last.at_ms + last.fault.duration_ms() <= 120_000);
        }
    }

    #[test]
    fn without_namespaces_no_network_faults() {
        for seed in 0..100 {
            assert!(plan(seed, &hosts(), 120_000, false)
                .iter()
                .all(|s| !s.fault.needs_network()));
        }
        let kinds: std::collections::HashSet<_> = (0..100)
            .flat_map(|seed| plan(seed, &hosts(), 60_000, true))
            .map(|s| std::mem::discriminant(&s.fault))
            .collect();
        assert_eq!(kinds.len(), 5, "every kind of fault gets scheduled");
    }
}
