//! The typed events of a job and the list of its attempts: what the jobtracker records while
//! a job runs, keeps in the job's record, and serves to `mrjob why` and `mrjob logs`.

use serde::{Deserialize, Serialize};

use crate::scheduler::{AttemptId, Locality, TaskId};

/// Events kept per job. The first ones are kept, since the first failure is usually the
/// cause and the later ones its consequences; the number left out is counted.
pub const MAX_EVENTS_KEPT: usize = 500;
/// Attempts listed per job (a record stays far below the control frame limit: a listed
/// attempt is a few dozen bytes).
pub const MAX_ATTEMPTS_KEPT: usize = 20_000;
/// Bytes of an attempt's error kept in its event (its last lines: a traceback's end).
pub const ERROR_TAIL_BYTES: usize = 2048;

/// Something that went wrong or slow in a job, as the decision point that saw it recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JobEvent {
    /// An attempt failed: its process's error, a timeout, a failed commit, or its worker
    /// no longer listing it.
    AttemptFailed {
        /// The attempt.
        attempt: AttemptId,
        /// Where it ran.
        host: String,
        /// Why (the end of the error text: the last lines of a task's stderr).
        error: String,
    },
    /// A worker stopped heartbeating: its running attempts and the map outputs on its disk
    /// were lost.
    WorkerLost {
        /// The worker's host.
        host: String,
        /// Attempts of this job that were running there (they run again elsewhere).
        attempts: Vec<AttemptId>,
        /// Maps of this job whose accepted output was there and is still needed.
        outputs: Vec<TaskId>,
    },
    /// Reduces could not fetch a map's output, so the map ran again.
    MapRerun {
        /// The map whose output was declared lost.
        map: AttemptId,
        /// The reduce attempts that reported the fetch failures.
        reduces: Vec<AttemptId>,
    },
    /// A backup attempt was launched beside a straggler.
    SpeculativeLaunched {
        /// The straggling task.
        task: TaskId,
        /// Where the backup runs.
        host: String,
    },
    /// An attempt that succeeded took much longer than the median of its kind.
    SlowAttempt {
        /// The attempt.
        attempt: AttemptId,
        /// Where it ran.
        host: String,
        /// How close it ran to its input.
        locality: Locality,
        /// How long it ran.
        duration_ms: u64,
        /// The median of the job's succeeded attempts of the same kind.
        median_ms: u64,
    },
    /// Some reduce partitions got far more input than the median partition.
    SkewedPartitions {
        /// The largest partitions, largest first: (reduce index, shuffle bytes).
        largest: Vec<(u32, u64)>,
        /// The median partition's shuffle bytes.
        median_bytes: u64,
    },
}

/// An event and when the jobtracker recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Milliseconds since the Unix epoch (the jobtracker's clock).
    pub at_unix_ms: u64,
    /// What happened.
    pub event: JobEvent,
}

/// How an attempt ended, as far as the jobtracker knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttemptEnd {
    /// Still running (or the job ended before its end was reported).
    Running,
    /// Its process succeeded.
    Succeeded,
    /// It failed.
    Failed,
    /// It was killed (a lost race, a lost worker, a killed or failed job).
    Killed,
}

/// One attempt of a job: where it ran, so `mrjob logs` knows which worker holds its logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRun {
    /// The attempt.
    pub attempt: AttemptId,
    /// The worker's host.
    pub host: String,
    /// How close it ran to its input.
    pub locality: Locality,
    /// When the scheduler launched it (ms since the Unix epoch, the jobtracker's clock).
    pub launched_unix_ms: u64,
    /// When its task process started (ms since the Unix epoch, its worker's clock): after
    /// the heartbeat that carried the launch and the job binary's download.
    pub started_unix_ms: Option<u64>,
    /// When its end was reported (ms since the Unix epoch).
    pub ended_unix_ms: Option<u64>,
    /// How it ended.
    pub end: AttemptEnd,
}

impl AttemptRun {
    /// How long it ran, once ended: from its process's start when known, so that the wait
    /// for a heartbeat and a first download of the job binary do not count as slowness.
    /// (The start is the worker's clock and the end the jobtracker's: hosts' clocks are
    /// assumed to agree to well under the second that [`super::why::SLOW_MIN_EXTRA_MS`]
    /// ignores.)
    pub fn duration_ms(&self) -> Option<u64> {
        let start = self.started_unix_ms.unwrap_or(self.launched_unix_ms);
        self.ended_unix_ms.map(|end| end.saturating_sub(start))
    }
}

/// Everything recorded about a job's run besides its status: served by the jobtracker
/// (`JtRequest::JobHistory`) and kept in the job's record once it ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobHistory {
    /// The events, oldest first (at most [`MAX_EVENTS_KEPT`]).
    pub events: Vec<EventRecord>,
    /// Events left out beyond the limit.
    pub events_dropped: u64,
    /// The attempts, in launch order (at most [`MAX_ATTEMPTS_KEPT`]).
    pub attempts: Vec<AttemptRun>,
    /// Attempts left out beyond the limit.
    pub attempts_dropped: u64,
}

impl JobHistory {
    /// Records an event, keeping the first [`MAX_EVENTS_KEPT`].
    pub fn push_event(&mut self, at_unix_ms: u64, event: JobEvent) {
        if self.events.len() >= MAX_EVENTS_KEPT {
            self.events_dropped += 1;
            return;
        }
        let event = match event {
            JobEvent::AttemptFailed {
                attempt,
                host,
                error,
            } => JobEvent::AttemptFailed {
                attempt,
                host,
                error: tail(&error, ERROR_TAIL_BYTES),
            },
            other => other,
        };
        self.events.push(EventRecord { at_unix_ms, event });
    }

    /// Records a launch, keeping the first [`MAX_ATTEMPTS_KEPT`].
    pub fn launched(&mut self, run: AttemptRun) {
        if self.attempts.len() >= MAX_ATTEMPTS_KEPT {
            self.attempts_dropped += 1;
            return;
        }
        self.attempts.push(run);
    }

    /// Records how an attempt ended (the first report counts: a kill after a failure is
    /// only the cleanup of it).
    pub fn ended(&mut self, attempt: AttemptId, end: AttemptEnd, at_unix_ms: u64) {
        // Recent launches are at the back.
        if let Some(run) = self
            .attempts
            .iter_mut()
            .rev()
            .find(|r| r.attempt == attempt)
        {
            if run.end == AttemptEnd::Running {
                run.end = end;
                run.ended_unix_ms = Some(at_unix_ms);
            }
        }
    }

    /// Records when an attempt's process started (the worker's report).
    pub fn started(&mut self, attempt: AttemptId, at_unix_ms: u64) {
        if let Some(run) = self
            .attempts
            .iter_mut()
            .rev()
            .find(|r| r.attempt == attempt)
        {
            run.started_unix_ms = Some(at_unix_ms);
        }
    }

    /// The attempt's run, if listed.
    pub fn attempt(&self, attempt: AttemptId) -> Option<&AttemptRun> {
        self.attempts.iter().find(|r| r.attempt == attempt)
    }
}

/// The last `max` bytes of `text`, cut at a line start when one is near (whole lines read
/// better), else at a character boundary.
pub fn tail(text: &str, max: usize) -> String {
    let text = text.trim_end();
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = text.len() - max;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    let rest = &text[cut..];
    let rest = match rest.find('\n') {
        Some(i) if i < rest.len() / 2 => &rest[i + 1..],
        _ => rest,
    };
    format!("[...] {rest}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::TaskKind;

    fn attempt(index: u32, n: u32) -> AttemptId {
        AttemptId {
            task: TaskId {
                job: 1,
                kind: TaskKind::Map,
                index,
            },
            attempt: n,
        }
    }

    #[test]
    fn events_beyond_the_limit_are_counted_not_kept() {
        let mut h = JobHistory::default();
        for i in 0..(MAX_EVENTS_KEPT as u32 + 7) {
            h.push_event(
                1,
                JobEvent::SpeculativeLaunched {
                    task: attempt(i, 0).task,
                    host: "h".into(),
                },
            );
        }
        assert_eq!(h.events.len(), MAX_EVENTS_KEPT);
        assert_eq!(h.events_dropped, 7);
    }

    #[test]
    fn a_long_error_keeps_its_last_lines() {
        let mut h = JobHistory::default();
        let error: String = (0..2000).map(|i| format!("line {i}\n")).collect();
        h.push_event(
            1,
            JobEvent::AttemptFailed {
                attempt: attempt(0, 0),
                host: "h".into(),
                error,
            },
        );
        let JobEvent::AttemptFailed { error, .. } = &h.events[0].event else {
            panic!("not a failure")
        };
        assert!(error.len() <= ERROR_TAIL_BYTES + 8, "{}", error.len());
        assert!(error.ends_with("line 1999"), "{error}");
        assert!(error.starts_with("[...] line "), "{error}");
    }

    #[test]
    fn the_first_end_of_an_attempt_counts() {
        let mut h = JobHistory::default();
        h.launched(AttemptRun {
            attempt: attempt(0, 0),
            host: "h".into(),
            locality: Locality::DataLocal,
            launched_unix_ms: 1_000,
            started_unix_ms: None,
            ended_unix_ms: None,
            end: AttemptEnd::Running,
        });
        h.ended(attempt(0, 0), AttemptEnd::Failed, 3_000);
        h.ended(attempt(0, 0), AttemptEnd::Killed, 4_000);
        let run = h.attempt(attempt(0, 0)).unwrap();
        assert_eq!(run.end, AttemptEnd::Failed);
        assert_eq!(run.duration_ms(), Some(2_000));
        // From the process's start once the worker reported it.
        h.started(attempt(0, 0), 1_500);
        assert_eq!(h.attempt(attempt(0, 0)).unwrap().duration_ms(), Some(1_500));
    }
}
