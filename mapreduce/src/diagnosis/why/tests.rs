//! `explain`, `slow_attempts` and `skewed_partitions` on hand-made event lists.

use super::*;
use crate::diagnosis::events::EventRecord;

fn task(kind: TaskKind, index: u32) -> TaskId {
    TaskId {
        job: 7,
        kind,
        index,
    }
}

fn attempt(kind: TaskKind, index: u32, n: u32) -> AttemptId {
    AttemptId {
        task: task(kind, index),
        attempt: n,
    }
}

fn history(events: Vec<JobEvent>) -> JobHistory {
    JobHistory {
        events: (0..)
            .zip(events)
            .map(|(i, event)| EventRecord {
                at_unix_ms: 10_000 + i * 1_000,
                event,
            })
            .collect(),
        ..JobHistory::default()
    }
}

fn outcome(phase: &JobPhase) -> JobOutcome<'_> {
    JobOutcome {
        id: 7,
        phase,
        elapsed_ms: 12_300,
        submitted_unix_ms: 10_000,
    }
}

fn failed(kind: TaskKind, index: u32, n: u32, host: &str, error: &str) -> JobEvent {
    JobEvent::AttemptFailed {
        attempt: attempt(kind, index, n),
        host: host.into(),
        error: error.into(),
    }
}

fn run(index: u32, host: &str, locality: Locality, ms: u64, end: AttemptEnd) -> AttemptRun {
    AttemptRun {
        attempt: attempt(TaskKind::Map, index, 0),
        host: host.into(),
        locality,
        launched_unix_ms: 1_000,
        started_unix_ms: None,
        ended_unix_ms: Some(1_000 + ms),
        end,
    }
}

#[test]
fn a_quick_clean_success_says_nothing_went_wrong() {
    let lines = explain(&outcome(&JobPhase::Succeeded), &JobHistory::default());
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("job 7 succeeded in 12.3 s: nothing went wrong"));
}

#[test]
fn the_task_that_failed_the_job_comes_first_with_its_error_tail() {
    let t = task(TaskKind::Map, 1);
    let reason = JobPhase::Failed(format!("{t} failed 2 times; last error: boom"));
    let events = vec![
        failed(TaskKind::Reduce, 0, 0, "h3", "fetch trouble"),
        failed(
            TaskKind::Map,
            1,
            0,
            "h1",
            "Traceback\n  File x\nValueError: bad row",
        ),
        failed(
            TaskKind::Map,
            1,
            1,
            "h2",
            "Traceback\n  File x\nValueError: bad row 2",
        ),
    ];
    let lines = explain(&outcome(&reason), &history(events));
    assert_eq!(lines[0], "job 7 failed after 12.3 s");
    assert!(
        lines[1].contains("task task_0007_m_000001 failed 2 time(s) (on h1, h2)"),
        "{lines:?}"
    );
    assert!(lines[1].contains("attempt_0007_m_000001_1"), "{lines:?}");
    assert_eq!(lines[4], "    ValueError: bad row 2");
    // The other task's failure is mentioned after the cause.
    assert!(lines[5].contains("task_0007_r_000000 failed 1 time(s), last on h3: fetch trouble"));
}

#[test]
fn a_failure_without_failed_attempts_quotes_the_reason() {
    let phase = JobPhase::Failed("job commit failed: dfs unreachable".into());
    let lines = explain(&outcome(&phase), &JobHistory::default());
    assert_eq!(lines[1], "  cause: job commit failed: dfs unreachable");
}

#[test]
fn a_lost_worker_outranks_slowness_and_says_when_and_what() {
    let events = vec![
        JobEvent::SpeculativeLaunched {
            task: task(TaskKind::Map, 3),
            host: "h2".into(),
        },
        JobEvent::WorkerLost {
            host: "h1".into(),
            attempts: vec![attempt(TaskKind::Map, 4, 0)],
            outputs: vec![task(TaskKind::Map, 0), task(TaskKind::Map, 1)],
        },
    ];
    let lines = explain(&outcome(&JobPhase::Succeeded), &history(events));
    assert_eq!(lines[0], "job 7 succeeded in 12.3 s");
    assert!(
        lines[1].contains("worker h1 was lost 1.0 s into the job"),
        "{lines:?}"
    );
    assert!(lines[1].contains("1 running attempt(s) ran again elsewhere (attempt_0007_m_000004_0)"));
    assert!(lines[1].contains("2 map output(s)"));
    assert!(
        lines[2].contains("task_0007_m_000003 straggled"),
        "{lines:?}"
    );
}

#[test]
fn a_slow_attempt_names_its_task_and_locality() {
    let events = slow_attempts(&[
        run(0, "h1", Locality::DataLocal, 400, AttemptEnd::Succeeded),
        run(1, "h2", Locality::Other, 6_000, AttemptEnd::Succeeded),
        run(2, "h3", Locality::DataLocal, 500, AttemptEnd::Succeeded),
        // Failed and killed attempts are not measured.
        run(3, "h3", Locality::DataLocal, 60_000, AttemptEnd::Killed),
    ]);
    assert_eq!(events.len(), 1, "{events:?}");
    let lines = explain(&outcome(&JobPhase::Succeeded), &history(events));
    assert!(
        lines[1].contains("attempt_0007_m_000001_0 was slow: 6.0 s, 12.0x the median map (0.5 s), on h2, not data-local"),
        "{lines:?}"
    );
}

#[test]
fn small_differences_are_not_slowness() {
    // 3x the median, but under a second more: noise on a busy machine.
    let events = slow_attempts(&[
        run(0, "h1", Locality::DataLocal, 100, AttemptEnd::Succeeded),
        run(1, "h2", Locality::DataLocal, 300, AttemptEnd::Succeeded),
        run(2, "h3", Locality::DataLocal, 100, AttemptEnd::Succeeded),
    ]);
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn skewed_partitions_are_found_against_the_median() {
    let mib = 1u64 << 20;
    let even = [(0, 3 * mib), (1, 3 * mib), (2, 4 * mib)];
    assert_eq!(skewed_partitions(&even), None);
    let skewed = [(0, mib), (1, 40 * mib), (2, mib), (3, 2 * mib)];
    let event = skewed_partitions(&skewed).unwrap();
    assert_eq!(
        event,
        JobEvent::SkewedPartitions {
            largest: vec![(1, 40 * mib)],
            median_bytes: mib
        }
    );
    let lines = explain(&outcome(&JobPhase::Succeeded), &history(vec![event]));
    assert!(lines[1].contains("partition 1 got 40.0 MiB, against a median partition of 1.0 MiB"));
}

#[test]
fn a_killed_job_says_so() {
    let lines = explain(&outcome(&JobPhase::Killed), &JobHistory::default());
    assert_eq!(lines, vec!["job 7 was killed by its user after 12.3 s"]);
}

#[test]
fn fetch_failures_that_reran_a_map_are_named() {
    let events = vec![JobEvent::MapRerun {
        map: attempt(TaskKind::Map, 2, 0),
        reduces: vec![
            attempt(TaskKind::Reduce, 0, 0),
            attempt(TaskKind::Reduce, 1, 0),
        ],
    }];
    let lines = explain(&outcome(&JobPhase::Succeeded), &history(events));
    assert!(lines[1]
        .contains("2 reduce attempt(s) could not fetch the output of attempt_0007_m_000002_0"));
}
