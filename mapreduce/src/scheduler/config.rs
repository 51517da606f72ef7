//! The scheduler's tunables, and the clamping that keeps odd values from stalling it; a job
//! may override some of them for itself ([`TaskPolicy`]).

use super::ids::TaskKind;

/// The scheduler's tunables. [`Default`] gives Hadoop's usual values.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    /// Failed attempts of one task before the job fails (0 is taken as 1).
    pub max_attempts: u32,
    /// An attempt whose progress has not changed for this long is failed as timed out.
    pub task_timeout_ms: u64,
    /// A worker with no heartbeat for this long is lost.
    pub worker_timeout_ms: u64,
    /// How long a job waits for a node-local slot before accepting a rack-local one; twice this
    /// before accepting any worker.
    pub locality_delay_ms: u64,
    /// Fraction of a job's maps that must have succeeded before its reduces launch (clamped to
    /// 0.0..=1.0).
    pub reduce_slowstart: f64,
    /// Whether backup attempts are launched for stragglers.
    pub speculative: bool,
    /// An attempt is a straggler only after running at least this long ...
    pub speculative_min_ms: u64,
    /// ... and longer than this times the mean duration of the job's succeeded tasks of its kind.
    pub speculative_slowness: f64,
    /// Fetch-failure reports (from distinct reduce attempts) against one map attempt before its
    /// output is declared lost and the map re-runs (0 is taken as 1).
    pub fetch_failures_to_rerun: u32,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_attempts: 4,
            task_timeout_ms: 600_000,
            worker_timeout_ms: 10_000,
            locality_delay_ms: 300,
            reduce_slowstart: 0.8,
            speculative: true,
            speculative_min_ms: 1_000,
            speculative_slowness: 1.5,
            fetch_failures_to_rerun: 2,
        }
    }
}

/// One job's own scheduling settings (`-D mapreduce.map.speculative=false`, ...); `None`
/// takes the cluster's value from [`SchedulerConfig`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskPolicy {
    /// Backups of slow maps.
    pub map_speculative: Option<bool>,
    /// Backups of slow reduces.
    pub reduce_speculative: Option<bool>,
    /// Failed attempts of one map before the job fails.
    pub map_max_attempts: Option<u32>,
    /// Failed attempts of one reduce before the job fails.
    pub reduce_max_attempts: Option<u32>,
    /// Milliseconds without progress before an attempt fails; `Some(0)`: never (Hadoop's 0).
    pub task_timeout_ms: Option<u64>,
}

impl SchedulerConfig {
    /// Whether a job with `policy` gets backups of its slow tasks of `kind`.
    pub(super) fn speculative_for(&self, policy: &TaskPolicy, kind: TaskKind) -> bool {
        let own = match kind {
            TaskKind::Map => policy.map_speculative,
            TaskKind::Reduce => policy.reduce_speculative,
        };
        own.unwrap_or(self.speculative)
    }

    /// Failed attempts of one task of `kind` before a job with `policy` fails (at least 1).
    pub(super) fn max_attempts_for(&self, policy: &TaskPolicy, kind: TaskKind) -> u32 {
        let own = match kind {
            TaskKind::Map => policy.map_max_attempts,
            TaskKind::Reduce => policy.reduce_max_attempts,
        };
        own.unwrap_or(self.max_attempts).max(1)
    }

    /// How long an attempt of a job with `policy` may go without progress; `None`: forever
    /// (a job's `mapreduce.task.timeout=0`, as in Hadoop).
    pub(super) fn task_timeout_for(&self, policy: &TaskPolicy) -> Option<u64> {
        match policy.task_timeout_ms {
            Some(0) => None,
            Some(ms) => Some(ms),
            None => Some(self.task_timeout_ms),
        }
    }

    /// At least one report, whatever was configured.
    pub(super) fn fetch_failures_to_rerun(&self) -> usize {
        usize::try_from(self.fetch_failures_to_rerun.max(1)).unwrap_or(usize::MAX)
    }

    /// The slow-start fraction, within 0.0..=1.0.
    pub(super) fn reduce_slowstart(&self) -> f64 {
        // NaN would make every comparison false and no reduce would ever start.
        if self.reduce_slowstart.is_nan() {
            return 1.0;
        }
        self.reduce_slowstart.clamp(0.0, 1.0)
    }
}
