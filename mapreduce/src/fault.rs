//! Fault hooks for tests, read by task processes from the `MRJOB_FAULTS` environment
//! variable (workers pass their environment to their children). Unset, they cost one
//! environment lookup per task. A comma-separated list of `ACTION:KIND:INDEX:ATTEMPT[:MS]`,
//! where KIND is `m` or `r`, INDEX and ATTEMPT are numbers or `*`:
//!
//! - `fail`: the attempt fails at once with an error;
//! - `panic-record`: the mapper panics on its first record;
//! - `abort-output`: the process aborts after writing output, before closing its part file;
//! - `sleep`: the attempt sleeps MS milliseconds before it starts;
//! - `sleep-end`: a successful attempt sleeps MS milliseconds after its output is complete,
//!   before its process exits and the worker reports it (a window to cut the worker off
//!   between finishing and committing).
//!
//! An entry may start with `jobN/` to apply to job N's attempts only (`job2/fail:m:1:*`), so
//! that one test cluster can host jobs with different faults.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::input::Record;
use crate::job::{Job, Mapper};
use crate::output::MapEmitter;
use crate::scheduler::{AttemptId, JobId, TaskKind};

/// The environment variable holding the faults.
pub const FAULTS_ENV: &str = "MRJOB_FAULTS";

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// What happens.
    pub action: FaultAction,
    job: Option<JobId>,
    kind: TaskKind,
    index: Option<u32>,
    attempt: Option<u32>,
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Fail with an error.
    Fail,
    /// Panic in the mapper.
    PanicRecord,
    /// Abort the process before closing the part file.
    AbortOutput,
    /// Sleep this long first.
    Sleep(u64),
    /// Sleep this long after the output is complete, before exiting.
    SleepEnd(u64),
}

/// Parses a fault list; a malformed entry is an error naming it.
pub fn parse(text: &str) -> Result<Vec<Fault>> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|entry| parse_one(entry.trim()).ok_or_else(|| bad(entry)))
        .collect()
}

fn bad(entry: &str) -> Error {
    Error::BadSetting(format!(
        "{FAULTS_ENV}: cannot parse {entry:?} (want [jobN/]ACTION:m|r:INDEX|*:ATTEMPT|*[:MS])"
    ))
}

fn parse_one(entry: &str) -> Option<Fault> {
    let (job, entry) = match entry.split_once('/') {
        Some((job, rest)) => (Some(job.strip_prefix("job")?.parse().ok()?), rest),
        None => (None, entry),
    };
    let parts: Vec<&str> = entry.split(':').collect();
    let num = |s: &str| -> Option<Option<u32>> {
        if s == "*" {
            Some(None)
        } else {
            s.parse().ok().map(Some)
        }
    };
    let action = match (parts.first()?, parts.len()) {
        (&"fail", 4) => FaultAction::Fail,
        (&"panic-record", 4) => FaultAction::PanicRecord,
        (&"abort-output", 4) => FaultAction::AbortOutput,
        (&"sleep", 5) => FaultAction::Sleep(parts[4].parse().ok()?),
        (&"sleep-end", 5) => FaultAction::SleepEnd(parts[4].parse().ok()?),
        _ => return None,
    };
    let kind = match parts[1] {
        "m" => TaskKind::Map,
        "r" => TaskKind::Reduce,
        _ => return None,
    };
    Some(Fault {
        action,
        job,
        kind,
        index: num(parts[2])?,
        attempt: num(parts[3])?,
    })
}

impl Fault {
    fn applies(&self, a: AttemptId) -> bool {
        self.kind == a.task.kind
            && self.job.is_none_or(|j| j == a.task.job)
            && self.index.is_none_or(|i| i == a.task.index)
            && self.attempt.is_none_or(|n| n == a.attempt)
    }
}

/// The faults from the environment that apply to `attempt`.
pub fn for_attempt(attempt: AttemptId) -> Result<Vec<FaultAction>> {
    let Ok(text) = std::env::var(FAULTS_ENV) else {
        return Ok(Vec::new());
    };
    Ok(parse(&text)?
        .into_iter()
        .filter(|f| f.applies(attempt))
        .map(|f| f.action)
        .collect())
}

/// Applies the faults that act at task start, and arms the others on `job`.
pub fn arm(faults: &[FaultAction], attempt: AttemptId, job: &mut Job) -> Result<()> {
    for f in faults {
        match *f {
            FaultAction::Sleep(ms) => std::thread::sleep(Duration::from_millis(ms)),
            FaultAction::Fail => {
                return Err(Error::user(format!("injected failure of {attempt}")));
            }
            FaultAction::PanicRecord => {
                let inner = job.mapper.clone();
                job.mapper = std::sync::Arc::new(move || {
                    Box::new(PanicMapper { _inner: inner() }) as Box<dyn Mapper>
                });
            }
            FaultAction::AbortOutput | FaultAction::SleepEnd(_) => {}
        }
    }
    Ok(())
}

struct PanicMapper {
    _inner: Box<dyn Mapper>,
}

impl Mapper for PanicMapper {
    fn map(&mut self, record: Record<'_>, _out: &mut dyn MapEmitter) -> Result<()> {
        panic!(
            "injected panic on the record at offset {} of {:?}",
            record.offset, record.file
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::TaskId;

    fn attempt(kind: TaskKind, index: u32, attempt: u32) -> AttemptId {
        AttemptId {
            task: TaskId {
                job: 1,
                kind,
                index,
            },
            attempt,
        }
    }

    #[test]
    fn parses_and_matches() {
        let f = parse("fail:m:2:0, sleep:r:*:1:250,panic-record:m:*:*").unwrap();
        assert_eq!(f.len(), 3);
        assert!(f[0].applies(attempt(TaskKind::Map, 2, 0)));
        assert!(!f[0].applies(attempt(TaskKind::Map, 2, 1)));
        assert!(!f[0].applies(attempt(TaskKind::Reduce, 2, 0)));
        assert_eq!(f[1].action, FaultAction::Sleep(250));
        assert!(f[1].applies(attempt(TaskKind::Reduce, 7, 1)));
        assert!(f[2].applies(attempt(TaskKind::Map, 9, 3)));
        let end = parse("sleep-end:r:0:1:4000").unwrap();
        assert_eq!(end[0].action, FaultAction::SleepEnd(4000));
        assert!(end[0].applies(attempt(TaskKind::Reduce, 0, 1)));
        // A job prefix narrows an entry to one job's attempts.
        let scoped = parse("job1/fail:m:*:*,job2/fail:m:*:*").unwrap();
        assert!(scoped[0].applies(attempt(TaskKind::Map, 0, 0)));
        assert!(!scoped[1].applies(attempt(TaskKind::Map, 0, 0)));
    }

    // Checks G7: a malformed fault list is a clear error.
    #[test]
    fn rejects_malformed_entries() {
        for bad in [
            "fail",
            "fail:x:1:0",
            "sleep:m:1:0",
            "sleep-end:r:1:0",
            "explode:m:1:0",
            "fail:m:a:0",
            "jobx/fail:m:1:0",
            "2/fail:m:1:0",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(FAULTS_ENV), "{bad}: {err}");
        }
    }
}
