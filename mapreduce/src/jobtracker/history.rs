//! Every attempt of a job as it went: where and when it ran, how it ended, what it read and
//! wrote. The scheduler forgets an attempt once it ends; the job page needs all of them, so the
//! jobtracker writes each launch and end here (pure: times come in as arguments).
//!
//! Bounded: a job keeps at most [`MAX_ATTEMPTS_KEPT`] rows (later launches are counted, not
//! kept) and an error at most [`MAX_ERROR_BYTES`], because the jobtracker keeps up to a
//! thousand recent jobs in memory.

use std::collections::HashMap;

use serde::Serialize;

use crate::counters::Counters;
use crate::scheduler::{AttemptId, Locality, TaskKind};

/// Most attempt rows one job keeps.
pub const MAX_ATTEMPTS_KEPT: usize = 5_000;
/// Longest failure message kept per attempt (its tail, where the cause usually is).
pub const MAX_ERROR_BYTES: usize = 4_096;

/// How an attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AttemptState {
    /// Launched, not ended.
    Running,
    /// Its process exited successfully.
    Succeeded,
    /// It failed (its error is kept).
    Failed,
    /// Killed: a speculative loser, the job's end, a kill.
    Killed,
    /// The scheduler let it go without an end report (lost worker, timeout).
    Lost,
}

/// One attempt, as the job page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRow {
    /// `attempt_0007_m_000003_0`.
    pub attempt: String,
    /// `task_0007_m_000003`.
    pub task: String,
    /// Map or reduce.
    pub kind: TaskKind,
    /// The split or partition number.
    pub index: u32,
    /// The worker it ran on.
    pub host: String,
    /// Where it ran against its input's replicas.
    pub locality: Locality,
    /// Launched while another attempt of its task was running (a backup).
    pub speculative: bool,
    /// Launch time, ms since the Unix epoch.
    pub start_unix_ms: u64,
    /// End time, once ended.
    pub end_unix_ms: Option<u64>,
    /// How it stands.
    pub state: AttemptState,
    /// Why it failed.
    pub error: Option<String>,
    /// Bytes it read (map input, or shuffle bytes for a reduce).
    pub input_bytes: u64,
    /// Records it read (map input, or reduce input records).
    pub input_records: u64,
    /// Bytes it wrote (map output, or job output for a reduce or a map-only job's map).
    pub output_bytes: u64,
    /// The last status it reported while running (Streaming's `reporter:status:`).
    pub status: Option<String>,
    #[serde(skip)]
    id: Option<AttemptId>,
}

impl AttemptRow {
    /// Milliseconds it ran, until `now_unix_ms` while running.
    pub fn duration_ms(&self, now_unix_ms: u64) -> u64 {
        self.end_unix_ms
            .unwrap_or(now_unix_ms)
            .saturating_sub(self.start_unix_ms)
    }

    /// The scheduler's id of this attempt.
    pub fn id(&self) -> Option<AttemptId> {
        self.id
    }
}

/// A job's attempts, in launch order.
#[derive(Debug, Default, Clone)]
pub struct History {
    rows: Vec<AttemptRow>,
    by_id: HashMap<AttemptId, usize>,
    /// Launches not kept beyond [`MAX_ATTEMPTS_KEPT`].
    pub dropped: u64,
}

impl History {
    /// The rows, in launch order.
    pub fn rows(&self) -> &[AttemptRow] {
        &self.rows
    }

    /// `attempt` was launched on `host` at `now_unix_ms`.
    pub fn launched(
        &mut self,
        attempt: AttemptId,
        host: &str,
        locality: Locality,
        now_unix_ms: u64,
    ) {
        if self.rows.len() >= MAX_ATTEMPTS_KEPT {
            self.dropped += 1;
            return;
        }
        // Earlier attempts of a task have lower numbers: look those up rather than scan. A
        // task has few attempts (`task_max_attempts` plus backups), so the last 16 suffice.
        let speculative = (attempt.attempt.saturating_sub(16)..attempt.attempt).any(|n| {
            let earlier = AttemptId {
                attempt: n,
                ..attempt
            };
            self.by_id
                .get(&earlier)
                .is_some_and(|&i| self.rows[i].state == AttemptState::Running)
        });
        self.by_id.insert(attempt, self.rows.len());
        self.rows.push(AttemptRow {
            attempt: attempt.to_string(),
            task: attempt.task.to_string(),
            kind: attempt.task.kind,
            index: attempt.task.index,
            host: host.to_owned(),
            locality,
            speculative,
            start_unix_ms: now_unix_ms,
            end_unix_ms: None,
            state: AttemptState::Running,
            error: None,
            input_bytes: 0,
            input_records: 0,
            output_bytes: 0,
            status: None,
            id: Some(attempt),
        });
    }

    fn end(
        &mut self,
        attempt: AttemptId,
        state: AttemptState,
        now_unix_ms: u64,
    ) -> Option<&mut AttemptRow> {
        let row = self.rows.get_mut(*self.by_id.get(&attempt)?)?;
        if row.state != AttemptState::Running {
            return None;
        }
        row.state = state;
        row.end_unix_ms = Some(now_unix_ms);
        Some(row)
    }

    /// A running `attempt` reported `status`.
    pub fn status(&mut self, attempt: AttemptId, status: String) {
        let row = self.by_id.get(&attempt).and_then(|&i| self.rows.get_mut(i));
        if let Some(row) = row.filter(|r| r.state == AttemptState::Running) {
            row.status = Some(status);
        }
    }

    /// `attempt` succeeded with `counters`.
    pub fn succeeded(&mut self, attempt: AttemptId, counters: &Counters, now_unix_ms: u64) {
        let Some(row) = self.end(attempt, AttemptState::Succeeded, now_unix_ms) else {
            return;
        };
        let t = &counters.task;
        match row.kind {
            TaskKind::Map => {
                row.input_bytes = t.map_input_bytes;
                row.input_records = t.map_input_records;
                row.output_bytes = t.map_output_bytes.max(t.output_bytes);
            }
            TaskKind::Reduce => {
                row.input_bytes = t.reduce_shuffle_bytes;
                row.input_records = t.reduce_input_records;
                row.output_bytes = t.output_bytes;
            }
        }
    }

    /// `attempt` failed with `reason` (its tail is kept).
    pub fn failed(&mut self, attempt: AttemptId, reason: &str, now_unix_ms: u64) {
        if let Some(row) = self.end(attempt, AttemptState::Failed, now_unix_ms) {
            row.error = Some(tail(reason, MAX_ERROR_BYTES).to_owned());
        }
    }

    /// `attempt` was killed.
    pub fn killed(&mut self, attempt: AttemptId, now_unix_ms: u64) {
        self.end(attempt, AttemptState::Killed, now_unix_ms);
    }

    /// The job ended: what still runs is killed with it.
    pub fn job_ended(&mut self, now_unix_ms: u64) {
        let running: Vec<AttemptId> = self
            .rows
            .iter()
            .filter(|r| r.state == AttemptState::Running)
            .filter_map(|r| r.id)
            .collect();
        for a in running {
            self.killed(a, now_unix_ms);
        }
    }

    /// The rows as of now: a running row the scheduler no longer has (`is_live` false) was
    /// lost without an end report (lost worker, timeout).
    pub fn snapshot(&self, is_live: impl Fn(AttemptId) -> bool) -> Vec<AttemptRow> {
        let mut rows = self.rows.clone();
        for r in &mut rows {
            if r.state == AttemptState::Running && r.id.is_some_and(|id| !is_live(id)) {
                r.state = AttemptState::Lost;
            }
        }
        rows
    }
}

/// The last `max` bytes of `s`, cut at a character boundary.
fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::TaskId;

    fn attempt(kind: TaskKind, index: u32, n: u32) -> AttemptId {
        AttemptId {
            task: TaskId {
                job: 1,
                kind,
                index,
            },
            attempt: n,
        }
    }

    #[test]
    fn a_status_is_kept_only_while_running() {
        let mut h = History::default();
        let (a, b) = (attempt(TaskKind::Map, 0, 0), attempt(TaskKind::Map, 1, 0));
        h.launched(a, "h", Locality::DataLocal, 0);
        h.launched(b, "h", Locality::DataLocal, 0);
        h.status(a, "half way".to_owned());
        h.succeeded(a, &Counters::default(), 10);
        h.status(a, "late".to_owned());
        h.failed(b, "boom", 10);
        h.status(b, "after the end".to_owned());
        let rows = h.rows();
        assert_eq!(rows[0].status.as_deref(), Some("half way"));
        assert_eq!(rows[1].status, None);
    }

    #[test]
    fn attempts_keep_where_when_and_how_they_ended() {
        let mut h = History::default();
        let m0 = attempt(TaskKind::Map, 0, 0);
        let m0b = attempt(TaskKind::Map, 0, 1);
        let r0 = attempt(TaskKind::Reduce, 0, 0);
        h.launched(m0, "host1", Locality::DataLocal, 1_000);
        h.launched(m0b, "host2", Locality::Other, 1_500);
        h.launched(r0, "host2", Locality::Other, 1_600);
        let mut c = Counters::default();
        c.task.map_input_bytes = 64;
        c.task.map_input_records = 4;
        h.succeeded(m0, &c, 2_000);
        h.killed(m0b, 2_001);
        h.failed(r0, &format!("{}boom", "x".repeat(10_000)), 2_500);
        let rows = h.snapshot(|_| true);
        assert!(!rows[0].speculative && rows[1].speculative);
        assert_eq!(rows[0].state, AttemptState::Succeeded);
        assert_eq!((rows[0].input_bytes, rows[0].input_records), (64, 4));
        assert_eq!(rows[0].duration_ms(9_999), 1_000);
        assert_eq!(rows[1].state, AttemptState::Killed);
        let err = rows[2].error.as_deref().unwrap();
        assert!(err.len() <= MAX_ERROR_BYTES && err.ends_with("boom"));
        // A second end report changes nothing.
        h.succeeded(r0, &c, 3_000);
        assert_eq!(h.rows()[2].state, AttemptState::Failed);
    }

    #[test]
    fn running_attempts_end_with_the_job_or_show_as_lost() {
        let mut h = History::default();
        let a = attempt(TaskKind::Map, 0, 0);
        h.launched(a, "h", Locality::RackLocal, 0);
        assert_eq!(h.snapshot(|_| false)[0].state, AttemptState::Lost);
        assert_eq!(h.snapshot(|_| true)[0].state, AttemptState::Running);
        h.job_ended(5);
        assert_eq!(h.rows()[0].state, AttemptState::Killed);
        assert_eq!(h.rows()[0].end_unix_ms, Some(5));
    }

    #[test]
    fn rows_are_bounded() {
        let mut h = History::default();
        for i in 0..(MAX_ATTEMPTS_KEPT as u32 + 3) {
            h.launched(attempt(TaskKind::Map, i, 0), "h", Locality::Other, 0);
        }
        assert_eq!(h.rows().len(), MAX_ATTEMPTS_KEPT);
        assert_eq!(h.dropped, 3);
    }
}
