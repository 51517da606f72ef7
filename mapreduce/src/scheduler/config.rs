//! The scheduler's tunables, and the clamping that keeps odd values from stalling it.

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

impl SchedulerConfig {
    /// At least one attempt, whatever was configured.
    pub(super) fn max_attempts(&self) -> u32 {
        self.max_attempts.max(1)
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
