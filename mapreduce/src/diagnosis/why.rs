//! `mrjob why`: the root cause of a job's end (or slowness) in a few lines, from its typed
//! events. Pure: the same events always give the same lines, unit-tested with hand-made lists.
//!
//! The ranking: what ended the job first (the task that failed its last time, with the end of
//! its error; a kill; a lost worker), then what made it slower or less sure, most costly
//! first: lost workers, maps re-run after fetch failures, other failed attempts, attempts slow
//! against their median (and whether they read their input locally), backups of stragglers,
//! skewed reduce partitions. A job that succeeded with none of these says so in one line.

use std::collections::BTreeMap;

use crate::protocol::JobPhase;
use crate::scheduler::{AttemptId, JobId, Locality, TaskId, TaskKind};

use super::events::{AttemptEnd, AttemptRun, JobEvent, JobHistory};

/// An attempt is slow when it ran this many times the median of its kind...
pub const SLOW_FACTOR: f64 = 2.0;
/// ...and at least this much longer (sub-second differences are noise, not a cause).
pub const SLOW_MIN_EXTRA_MS: u64 = 1_000;
/// A reduce partition is skewed when it got this many times the median partition's bytes...
pub const SKEW_FACTOR: u64 = 4;
/// ...and at least this many bytes more.
pub const SKEW_MIN_EXTRA_BYTES: u64 = 1 << 20;
/// Slow attempts and skewed partitions reported per job.
const MOST_REPORTED: usize = 3;
/// Lines of a failed task's error quoted.
const ERROR_LINES: usize = 6;
/// Other failing tasks named before "and N more".
const OTHER_TASKS_NAMED: usize = 3;

/// The job as `explain` needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome<'a> {
    /// Its id.
    pub id: JobId,
    /// How it stands.
    pub phase: &'a JobPhase,
    /// Milliseconds from submission to its end (or to now).
    pub elapsed_ms: u64,
    /// When it was submitted (ms since the Unix epoch), to say when things happened.
    pub submitted_unix_ms: u64,
}

/// The root cause and what else went wrong, as lines for a terminal (the first is the verdict).
pub fn explain(job: &JobOutcome<'_>, history: &JobHistory) -> Vec<String> {
    let failures = failures_by_task(history);
    let fatal = fatal_task(job.phase, &failures);
    let mut lines = vec![verdict(job)];
    if let Some(task) = fatal {
        lines.extend(describe_fatal(task, &failures[&task]));
    } else if let JobPhase::Failed(reason) = job.phase {
        lines.push(format!("  cause: {}", first_line(reason)));
    }
    let mut facts = Vec::new();
    for record in &history.events {
        let at_s = record.at_unix_ms.saturating_sub(job.submitted_unix_ms) as f64 / 1000.0;
        match &record.event {
            JobEvent::WorkerLost {
                host,
                attempts,
                outputs,
            } => facts.push((0, worker_lost(host, at_s, attempts, outputs))),
            JobEvent::MapRerun { map, reduces } => facts.push((
                1,
                format!(
                    "{} reduce attempt(s) could not fetch the output of {map} ({}), so its map ran again",
                    reduces.len(),
                    names(reduces)
                ),
            )),
            JobEvent::SlowAttempt {
                attempt,
                host,
                locality,
                duration_ms,
                median_ms,
            } => facts.push((3, slow(*attempt, host, *locality, *duration_ms, *median_ms))),
            JobEvent::SpeculativeLaunched { task, host } => facts.push((
                4,
                format!("{task} straggled: a backup attempt was launched on {host}"),
            )),
            JobEvent::SkewedPartitions {
                largest,
                median_bytes,
            } => facts.push((5, skew(largest, *median_bytes))),
            JobEvent::AttemptFailed { .. } => {}
        }
    }
    facts.extend(other_failures(fatal, &failures).into_iter().map(|l| (2, l)));
    // Stable: facts of one rank stay in the order they happened.
    facts.sort_by_key(|(rank, _)| *rank);
    if facts.is_empty() && fatal.is_none() && *job.phase == JobPhase::Succeeded {
        lines[0].push_str(
            ": nothing went wrong (no failed attempts, lost workers, re-run maps, \
             stragglers or skewed partitions)",
        );
    }
    lines.extend(facts.into_iter().map(|(_, l)| format!("  {l}")));
    if history.events_dropped > 0 {
        lines.push(format!(
            "  ({} later events were not kept)",
            history.events_dropped
        ));
    }
    lines
}

fn verdict(job: &JobOutcome<'_>) -> String {
    let secs = job.elapsed_ms as f64 / 1000.0;
    let id = job.id;
    match job.phase {
        JobPhase::Succeeded => format!("job {id} succeeded in {secs:.1} s"),
        JobPhase::Running => format!("job {id} is still running ({secs:.1} s so far)"),
        JobPhase::Killed => format!("job {id} was killed by its user after {secs:.1} s"),
        JobPhase::Failed(_) => format!("job {id} failed after {secs:.1} s"),
    }
}

/// One failing task: its failures in order, as (attempt, host, error).
type Failures<'a> = Vec<(AttemptId, &'a str, &'a str)>;

fn failures_by_task(history: &JobHistory) -> BTreeMap<TaskId, Failures<'_>> {
    let mut by_task: BTreeMap<TaskId, Failures<'_>> = BTreeMap::new();
    for record in &history.events {
        if let JobEvent::AttemptFailed {
            attempt,
            host,
            error,
        } = &record.event
        {
            by_task
                .entry(attempt.task)
                .or_default()
                .push((*attempt, host, error));
        }
    }
    by_task
}

/// The task whose failures failed the job: the one the reason names, else the one that
/// failed most (ties: the first task).
fn fatal_task(phase: &JobPhase, failures: &BTreeMap<TaskId, Failures<'_>>) -> Option<TaskId> {
    let JobPhase::Failed(reason) = phase else {
        return None;
    };
    let named = failures
        .keys()
        .find(|t| reason.starts_with(&t.to_string()))
        .copied();
    named.or_else(|| {
        let most = failures.values().map(Vec::len).max()?;
        failures
            .iter()
            .find(|(_, f)| f.len() == most)
            .map(|(t, _)| *t)
    })
}

fn describe_fatal(task: TaskId, failures: &Failures<'_>) -> Vec<String> {
    let mut hosts: Vec<&str> = failures.iter().map(|(_, h, _)| *h).collect();
    hosts.dedup();
    let (last, _, error) = failures[failures.len() - 1];
    let mut lines = vec![format!(
        "  cause: task {task} failed {} time(s) (on {}); the error of {last}:",
        failures.len(),
        hosts.join(", ")
    )];
    let error_lines: Vec<&str> = error.lines().filter(|l| !l.trim().is_empty()).collect();
    let from = error_lines.len().saturating_sub(ERROR_LINES);
    lines.extend(error_lines[from..].iter().map(|l| format!("    {l}")));
    lines
}

fn other_failures(fatal: Option<TaskId>, failures: &BTreeMap<TaskId, Failures<'_>>) -> Vec<String> {
    let others: Vec<(&TaskId, &Failures<'_>)> = failures
        .iter()
        .filter(|(t, _)| Some(**t) != fatal)
        .collect();
    let mut lines: Vec<String> = others
        .iter()
        .take(OTHER_TASKS_NAMED)
        .map(|(task, f)| {
            let (_, host, error) = f[f.len() - 1];
            format!(
                "task {task} failed {} time(s), last on {host}: {}",
                f.len(),
                last_line(error)
            )
        })
        .collect();
    if others.len() > OTHER_TASKS_NAMED {
        lines.push(format!(
            "and {} more tasks had failed attempts",
            others.len() - OTHER_TASKS_NAMED
        ));
    }
    lines
}

fn worker_lost(host: &str, at_s: f64, attempts: &[AttemptId], outputs: &[TaskId]) -> String {
    let mut line = format!("worker {host} was lost {at_s:.1} s into the job");
    if !attempts.is_empty() {
        line.push_str(&format!(
            "; {} running attempt(s) ran again elsewhere ({})",
            attempts.len(),
            names(attempts)
        ));
    }
    if !outputs.is_empty() {
        line.push_str(&format!(
            "; {} map output(s) on it were lost and re-run ({})",
            outputs.len(),
            names(outputs)
        ));
    }
    line
}

fn slow(attempt: AttemptId, host: &str, locality: Locality, ran_ms: u64, median_ms: u64) -> String {
    let kind = match attempt.task.kind {
        TaskKind::Map => "map",
        TaskKind::Reduce => "reduce",
    };
    let factor = ran_ms as f64 / median_ms.max(1) as f64;
    let mut line = format!(
        "{attempt} was slow: {:.1} s, {factor:.1}x the median {kind} ({:.1} s), on {host}",
        ran_ms as f64 / 1000.0,
        median_ms as f64 / 1000.0
    );
    if attempt.task.kind == TaskKind::Map {
        line.push_str(match locality {
            Locality::DataLocal => ", data-local (it read its split from local disk)",
            Locality::RackLocal => ", rack-local, not data-local",
            Locality::Other => ", not data-local (it read its split from another rack)",
        });
    }
    line
}

fn skew(largest: &[(u32, u64)], median_bytes: u64) -> String {
    let parts: Vec<String> = largest
        .iter()
        .map(|(r, bytes)| format!("partition {r} got {}", mib(*bytes)))
        .collect();
    format!(
        "reduce input is skewed: {}, against a median partition of {}",
        parts.join(", "),
        mib(median_bytes)
    )
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

fn names<T: std::fmt::Display>(items: &[T]) -> String {
    let shown: Vec<String> = items.iter().take(4).map(T::to_string).collect();
    match items.len() {
        n if n > 4 => format!("{}, and {} more", shown.join(", "), n - 4),
        _ => shown.join(", "),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
}

/// Succeeded attempts slow against the median of their kind (see [`SLOW_FACTOR`]), slowest
/// first, at most three.
pub fn slow_attempts(attempts: &[AttemptRun]) -> Vec<JobEvent> {
    let mut slow = Vec::new();
    for kind in [TaskKind::Map, TaskKind::Reduce] {
        let done: Vec<(&AttemptRun, u64)> = attempts
            .iter()
            .filter(|r| r.attempt.task.kind == kind && r.end == AttemptEnd::Succeeded)
            .filter_map(|r| Some((r, r.duration_ms()?)))
            .collect();
        let mut durations: Vec<u64> = done.iter().map(|(_, d)| *d).collect();
        let Some(median_ms) = lower_median(&mut durations) else {
            continue;
        };
        for (run, ran_ms) in done {
            let slow_enough = ran_ms as f64 >= SLOW_FACTOR * median_ms as f64;
            if slow_enough && ran_ms >= median_ms + SLOW_MIN_EXTRA_MS {
                slow.push(JobEvent::SlowAttempt {
                    attempt: run.attempt,
                    host: run.host.clone(),
                    locality: run.locality,
                    duration_ms: ran_ms,
                    median_ms,
                });
            }
        }
    }
    let ran = |e: &JobEvent| match e {
        JobEvent::SlowAttempt { duration_ms, .. } => *duration_ms,
        _ => 0,
    };
    slow.sort_by_key(|e| std::cmp::Reverse(ran(e)));
    slow.truncate(MOST_REPORTED);
    slow
}

/// The skewed reduce partitions among `(reduce index, shuffle bytes)`, if any (see
/// [`SKEW_FACTOR`]).
pub fn skewed_partitions(partitions: &[(u32, u64)]) -> Option<JobEvent> {
    if partitions.len() < 2 {
        return None;
    }
    let mut bytes: Vec<u64> = partitions.iter().map(|(_, b)| *b).collect();
    let median_bytes = lower_median(&mut bytes)?;
    let mut largest: Vec<(u32, u64)> = partitions
        .iter()
        .filter(|(_, b)| {
            *b >= median_bytes.saturating_mul(SKEW_FACTOR)
                && *b >= median_bytes.saturating_add(SKEW_MIN_EXTRA_BYTES)
        })
        .copied()
        .collect();
    if largest.is_empty() {
        return None;
    }
    largest.sort_by_key(|(r, b)| (std::cmp::Reverse(*b), *r));
    largest.truncate(MOST_REPORTED);
    Some(JobEvent::SkewedPartitions {
        largest,
        median_bytes,
    })
}

/// The lower median (of an even count, the smaller middle value): a single slow attempt
/// among two is then measured against the fast one.
fn lower_median(values: &mut [u64]) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    Some(values[(values.len() - 1) / 2])
}

#[cfg(test)]
mod tests;
