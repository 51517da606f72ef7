//! The scheduler's unit tests, and the seeded random test that checks its invariants after
//! every step.

use std::collections::{BTreeMap, BTreeSet};

use super::table::{Job, Phase};
use super::*;

const J: JobId = 1;

fn m(job: JobId, index: u32) -> TaskId {
    TaskId {
        job,
        kind: TaskKind::Map,
        index,
    }
}

fn r(job: JobId, index: u32) -> TaskId {
    TaskId {
        job,
        kind: TaskKind::Reduce,
        index,
    }
}

fn at(task: TaskId, attempt: u32) -> AttemptId {
    AttemptId { task, attempt }
}

fn hostless(maps: usize) -> Vec<Vec<String>> {
    vec![Vec::new(); maps]
}

fn hosts(per_map: &[&[&str]]) -> Vec<Vec<String>> {
    let strings = |hs: &&[&str]| hs.iter().map(|h| h.to_string()).collect();
    per_map.iter().map(strings).collect()
}

fn heartbeat(
    s: &mut Scheduler,
    now_ms: u64,
    worker: &str,
    rack: &str,
    slots: u32,
    running: &[(AttemptId, f32)],
) -> Vec<Action> {
    let event = Event::Heartbeat {
        worker: worker.to_string(),
        rack: rack.to_string(),
        slots,
        running: running.to_vec(),
    };
    s.step(now_ms, event)
}

fn submit(
    s: &mut Scheduler,
    now_ms: u64,
    job: JobId,
    map_hosts: Vec<Vec<String>>,
    reduces: u32,
) -> Vec<Action> {
    submit_with(s, now_ms, job, map_hosts, reduces, TaskPolicy::default())
}

fn submit_with(
    s: &mut Scheduler,
    now_ms: u64,
    job: JobId,
    map_hosts: Vec<Vec<String>>,
    reduces: u32,
    policy: TaskPolicy,
) -> Vec<Action> {
    let event = Event::SubmitJob {
        job,
        map_hosts,
        reduces,
        first_attempt: 0,
        policy,
    };
    s.step(now_ms, event)
}

fn succeed(s: &mut Scheduler, now_ms: u64, attempt: AttemptId) -> Vec<Action> {
    s.step(now_ms, Event::AttemptSucceeded { attempt })
}

fn fail(s: &mut Scheduler, now_ms: u64, attempt: AttemptId, reason: &str) -> Vec<Action> {
    let reason = reason.to_string();
    s.step(now_ms, Event::AttemptFailed { attempt, reason })
}

fn commit_done(s: &mut Scheduler, now_ms: u64, attempt: AttemptId) -> Vec<Action> {
    s.step(now_ms, Event::CommitFinished { attempt })
}

fn tick(s: &mut Scheduler, now_ms: u64) -> Vec<Action> {
    s.step(now_ms, Event::Tick)
}

fn launches(actions: &[Action]) -> Vec<(String, AttemptId, Locality)> {
    let launch = |a: &Action| match a {
        Action::Launch {
            worker,
            attempt,
            locality,
        } => Some((worker.clone(), *attempt, *locality)),
        _ => None,
    };
    actions.iter().filter_map(launch).collect()
}

fn kills(actions: &[Action]) -> Vec<(String, AttemptId)> {
    let kill = |a: &Action| match a {
        Action::Kill { worker, attempt } => Some((worker.clone(), *attempt)),
        _ => None,
    };
    actions.iter().filter_map(kill).collect()
}

fn commits(actions: &[Action]) -> Vec<AttemptId> {
    let commit = |a: &Action| match a {
        Action::Commit { attempt } => Some(*attempt),
        _ => None,
    };
    actions.iter().filter_map(commit).collect()
}

fn accepts(actions: &[Action]) -> Vec<AttemptId> {
    let accept = |a: &Action| match a {
        Action::Accept { attempt } => Some(*attempt),
        _ => None,
    };
    actions.iter().filter_map(accept).collect()
}

fn succeeded_jobs(actions: &[Action]) -> Vec<JobId> {
    let done = |a: &Action| match a {
        Action::JobSucceeded { job } => Some(*job),
        _ => None,
    };
    actions.iter().filter_map(done).collect()
}

fn launch(worker: &str, attempt: AttemptId, locality: Locality) -> (String, AttemptId, Locality) {
    (worker.to_string(), attempt, locality)
}

fn must_status(s: &Scheduler, job: JobId) -> JobStatus {
    s.job_status(job).expect("job is known")
}

fn output(attempt: AttemptId, worker: &str) -> Option<(AttemptId, String)> {
    Some((attempt, worker.to_string()))
}

#[test]
fn names_follow_the_hadoop_layout() {
    assert_eq!(m(7, 3).to_string(), "task_0007_m_000003");
    assert_eq!(r(7, 0).to_string(), "task_0007_r_000000");
    assert_eq!(at(m(7, 3), 0).to_string(), "attempt_0007_m_000003_0");
    assert_eq!(at(r(12345, 1), 11).to_string(), "attempt_12345_r_000001_11");
}

#[test]
fn submit_launches_at_once_on_idle_workers() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    assert!(heartbeat(&mut s, 0, "a", "r1", 2, &[]).is_empty());
    assert!(heartbeat(&mut s, 10, "b", "r1", 2, &[]).is_empty());
    let map_hosts = hosts(&[&["a"], &["b"], &["a"]]);
    let actions = submit(&mut s, 50, J, map_hosts, 1);
    // One slot per worker per round: a, b, then a again; the reduce waits for slow-start.
    let expected = vec![
        launch("a", at(m(J, 0), 0), Locality::DataLocal),
        launch("b", at(m(J, 1), 0), Locality::DataLocal),
        launch("a", at(m(J, 2), 0), Locality::DataLocal),
    ];
    assert_eq!(launches(&actions), expected);
    let status = must_status(&s, J);
    assert_eq!(status.first_launch_ms, Some(50));
    assert_eq!((status.maps_running, status.launched_maps), (3, 3));
    assert!(s.is_live(at(m(J, 0), 0)));
    // Reports about an attempt are taken from the worker it was launched on.
    assert_eq!(s.worker_of(at(m(J, 1), 0)), Some("b"));
    assert_eq!(s.worker_of(at(m(J, 0), 1)), None);
}

#[test]
fn replicas_spread_round_robin_give_only_data_local_maps() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let names = ["h0", "h1", "h2", "h3"];
    for name in names {
        heartbeat(&mut s, 0, name, "r1", 1, &[]);
    }
    let map_hosts: Vec<Vec<String>> = (0..12)
        .map(|i| (0..3).map(|k| names[(i + k) % 4].to_string()).collect())
        .collect();
    let mut actions = submit(&mut s, 0, J, map_hosts, 0);
    let mut all = Vec::new();
    // Time stands still below the locality delay: only node-local launches are allowed.
    for now_ms in 1..100 {
        let launched = launches(&actions);
        all.extend(launched.iter().cloned());
        if launched.is_empty() {
            break;
        }
        actions.clear();
        for (_, attempt, _) in launched {
            let committing = succeed(&mut s, now_ms, attempt);
            assert_eq!(commits(&committing), vec![attempt]);
            actions.extend(committing);
            actions.extend(commit_done(&mut s, now_ms, attempt));
        }
    }
    assert_eq!(all.len(), 12, "every map launched once: {all:?}");
    assert!(
        all.iter().all(|(_, _, l)| *l == Locality::DataLocal),
        "{all:?}"
    );
    for (worker, attempt, _) in &all {
        let replicas = &s.jobs[&J].maps[attempt.task.index as usize].hosts;
        assert!(replicas.contains(worker), "{attempt} ran on {worker}");
    }
    let status = must_status(&s, J);
    assert_eq!(status.state, JobState::Succeeded);
    assert_eq!((status.data_local_maps, status.other_local_maps), (12, 0));
}

#[test]
fn locality_delay_then_rack_local_then_anywhere() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    // "d" holds the replicas but has no free slot; "a" shares its rack, "c" does not.
    heartbeat(&mut s, 0, "d", "r1", 0, &[]);
    heartbeat(&mut s, 0, "a", "r1", 1, &[]);
    heartbeat(&mut s, 0, "c", "r2", 1, &[]);
    // The third map's only replica is on a host never heard from: its rack is unknown.
    let map_hosts = hosts(&[&["d"], &["d"], &["never-seen"]]);
    assert!(launches(&submit(&mut s, 0, J, map_hosts, 0)).is_empty());
    assert!(launches(&tick(&mut s, 299)).is_empty());
    let rack_local = launches(&tick(&mut s, 300));
    assert_eq!(
        rack_local,
        vec![launch("a", at(m(J, 0), 0), Locality::RackLocal)]
    );
    assert!(launches(&tick(&mut s, 599)).is_empty());
    let anywhere = launches(&tick(&mut s, 600));
    assert_eq!(anywhere, vec![launch("c", at(m(J, 1), 0), Locality::Other)]);
    // The freed rack-r1 slot is not rack-local to a host of unknown rack.
    // The slot frees when the process exits, before its files are committed.
    let last = launches(&succeed(&mut s, 700, at(m(J, 0), 0)));
    assert_eq!(last, vec![launch("a", at(m(J, 2), 0), Locality::Other)]);
}

#[test]
fn node_local_launch_restarts_the_locality_delay() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    heartbeat(&mut s, 0, "a", "r1", 1, &[]);
    heartbeat(&mut s, 0, "b", "r1", 1, &[]);
    let map_hosts = hosts(&[&["a"], &["a"]]);
    let first = launches(&submit(&mut s, 0, J, map_hosts, 0));
    assert_eq!(
        first,
        vec![launch("a", at(m(J, 0), 0), Locality::DataLocal)]
    );
    // "b" is on the rack: it may take m1 300 ms after the last node-local launch.
    assert!(launches(&tick(&mut s, 250)).is_empty());
    let rack_local = launches(&tick(&mut s, 300));
    assert_eq!(
        rack_local,
        vec![launch("b", at(m(J, 1), 0), Locality::RackLocal)]
    );
}

#[test]
fn maps_without_hosts_start_anywhere_at_once() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    heartbeat(&mut s, 0, "a", "r1", 2, &[]);
    let launched = launches(&submit(&mut s, 5, J, hostless(2), 0));
    let expected = vec![
        launch("a", at(m(J, 0), 0), Locality::Other),
        launch("a", at(m(J, 1), 0), Locality::Other),
    ];
    assert_eq!(launched, expected);
}

#[test]
fn reduces_wait_for_slowstart() {
    let config = SchedulerConfig {
        reduce_slowstart: 0.5,
        ..SchedulerConfig::default()
    };
    let mut s = Scheduler::new(config);
    heartbeat(&mut s, 0, "a", "r1", 8, &[]);
    let launched = launches(&submit(&mut s, 0, J, hostless(4), 1));
    assert_eq!(launched.len(), 4);
    assert!(launched
        .iter()
        .all(|(_, a, _)| a.task.kind == TaskKind::Map));
    let one = succeed(&mut s, 10, at(m(J, 0), 0));
    assert_eq!(accepts(&one), vec![at(m(J, 0), 0)]);
    assert!(launches(&one).is_empty(), "1 of 4 maps is below 0.5");
    let two = launches(&succeed(&mut s, 20, at(m(J, 1), 0)));
    assert_eq!(two, vec![launch("a", at(r(J, 0), 0), Locality::Other)]);
}

#[test]
fn slowstart_fraction_is_not_defeated_by_rounding() {
    let config = SchedulerConfig {
        reduce_slowstart: 0.7,
        ..SchedulerConfig::default()
    };
    let mut s = Scheduler::new(config);
    heartbeat(&mut s, 0, "a", "r1", 11, &[]);
    submit(&mut s, 0, J, hostless(10), 1);
    for index in 0..6 {
        assert!(launches(&succeed(&mut s, 10, at(m(J, index), 0))).is_empty());
    }
    let seventh = launches(&succeed(&mut s, 10, at(m(J, 6), 0)));
    assert_eq!(seventh, vec![launch("a", at(r(J, 0), 0), Locality::Other)]);
}

#[test]
fn maps_take_a_free_slot_before_reduces() {
    let config = SchedulerConfig {
        reduce_slowstart: 0.0,
        ..SchedulerConfig::default()
    };
    let mut s = Scheduler::new(config);
    heartbeat(&mut s, 0, "a", "r1", 1, &[]);
    let first = launches(&submit(&mut s, 0, J, hostless(2), 1));
    assert_eq!(first, vec![launch("a", at(m(J, 0), 0), Locality::Other)]);
    let second = launches(&succeed(&mut s, 10, at(m(J, 0), 0)));
    assert_eq!(second, vec![launch("a", at(m(J, 1), 0), Locality::Other)]);
    let third = launches(&succeed(&mut s, 20, at(m(J, 1), 0)));
    assert_eq!(third, vec![launch("a", at(r(J, 0), 0), Locality::Other)]);
}

#[test]
fn reduces_of_a_job_without_maps_start_at_once() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    heartbeat(&mut s, 0, "a", "r1", 4, &[]);
    let launched = launches(&submit(&mut s, 0, J, Vec::new(), 2));
    assert_eq!(launched.len(), 2);
    assert!(launched
        .iter()
        .all(|(_, a, _)| a.task.kind == TaskKind::Reduce));
}

#[test]
fn jobs_are_served_first_in_first_out_by_id() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    submit(&mut s, 0, 2, hostless(1), 0);
    submit(&mut s, 0, 1, hostless(1), 0);
    let launched = launches(&heartbeat(&mut s, 10, "a", "r1", 1, &[]));
    assert_eq!(launched, vec![launch("a", at(m(1, 0), 0), Locality::Other)]);
    let next = launches(&succeed(&mut s, 20, at(m(1, 0), 0)));
    assert_eq!(next, vec![launch("a", at(m(2, 0), 0), Locality::Other)]);
}

#[test]
fn failed_attempt_retries_on_another_worker_then_succeeds() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    heartbeat(&mut s, 0, "a", "r1", 1, &[]);
    heartbeat(&mut s, 0, "b", "r1", 1, &[]);
    let first = launches(&submit(&mut s, 0, J, hostless(1), 0));
    assert_eq!(first, vec![launch("a", at(m(J, 0), 0), Locality::Other)]);
    let retry = fail(&mut s, 10, at(m(J, 0), 0), "exit status 1");
    assert!(!s.is_live(at(m(J, 0), 0)));
    let noted = JobEvent::AttemptFailed {
        attempt: at(m(J, 0), 0),
        host: "a".into(),
        error: "exit status 1".into(),
    };
    assert_eq!(s.take_notes(), vec![(J, noted)]);
    assert!(s.take_notes().is_empty(), "taken once");
    // "a" is free again, but the task just failed there and "b" is free too.
    assert_eq!(
        launches(&retry),
        vec![launch("b", at(m(J, 0), 1), Locality::Other)]
    );
    let committing = succeed(&mut s, 20, at(m(J, 0), 1));
    assert_eq!(commits(&committing), vec![at(m(J, 0), 1)]);
    let done = commit_done(&mut s, 30, at(m(J, 0), 1));
    assert_eq!(accepts(&done), vec![at(m(J, 0), 1)]);
    assert_eq!(succeeded_jobs(&done), vec![J]);
    let status = must_status(&s, J);
    assert_eq!((status.failed_maps, status.launched_maps), (1, 2));
    assert_eq!((status.maps_done, status.killed_attempts), (1, 0));
}

#[test]
fn max_attempts_fails_the_job_naming_the_task_and_killing_the_rest() {
    let config = SchedulerConfig {
        max_attempts: 2,
        ..SchedulerConfig::default()
    };
    let mut s = Scheduler::new(config);
    heartbeat(&mut s, 0, "a", "r1", 2, &[]);
    submit(&mut s, 0, J, hostless(2), 1);
    // The only worker: the retry goes where the task just failed.
    let retry = launches(&fail(&mut s, 10, at(m(J, 0), 0), "boom"));
    assert_eq!(retry, vec![launch("a", at(m(J, 0), 1), Locality::Other)]);
    let actions = fail(&mut s, 20, at(m(J, 0), 1), "disk full");
    let reason = "task_0001_m_000000 failed 2 times; last error: disk full".to_string();
    let expected = vec![
        Action::Kill {
            worker: "a".into(),
            attempt: at(m(J, 1), 0),
        },
        Action::JobFailed { job: J, reason },
    ];
    assert_eq!(actions, expected);
    assert!(!s.is_live(at(m(J, 1), 0)));
    let status = must_status(&s, J);
    assert!(matches!(status.state, JobState::Failed(ref r) if r.contains("m_000000")));
    assert_eq!((status.failed_maps, status.killed_attempts), (2, 1));
    assert_eq!((status.maps_running, status.reduces_running), (0, 0));
    // Nothing more happens for a failed job.
    assert!(succeed(&mut s, 30, at(m(J, 1), 0)).is_empty());
    assert!(tick(&mut s, 40).is_empty());
}

#[test]
fn stalled_attempt_times_out_is_killed_and_retried() {
    let config = SchedulerConfig {
        task_timeout_ms: 1_000,
        ..SchedulerConfig::default()
    };
    let mut s = Scheduler::new(config);
    heartbeat(&mut s, 0, "a", "r1", 1, &[]);
    submit(&mut s, 0, J, hostless(1), 0);
    let first = at(m(J, 0), 0);
    heartbeat(&mut s, 500, "a", "r1", 1, &[(first, 0.1)]);
    // Same progress: the clock keeps running from 500.
    heartbeat(&mut s, 1_000, "a", "r1", 1, &[(first, 0.1)]);
    assert!(tick(&mut s, 1_499).is_empty());
    let actions = tick(&mut s, 1_500);
    assert_eq!(kills(&actions), vec![("a".to_string(), first)]);
    let retry = at(m(J, 0), 1);
    assert_eq!(
        launches(&actions),
        vec![launch("a", retry, Locality::Other)]
    );
    assert!(!s.is_live(first));
    assert_eq!(must_status(&s, J).failed_maps, 1);
    // Progress that keeps moving never times out.
    heartbeat(&mut s, 2_000, "a", "r1", 1, &[(retry, 0.2)]);
    heartbeat(&mut s, 2_900, "a", "r1", 1, &[(retry, 0.3)]);
    assert!(kills(&tick(&mut s, 3_000)).is_empty());
    assert!(s.is_live(retry));
}

#[test]
fn heartbeat_omitting_an_attempt_fails_it_after_a_grace_heartbeat() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    heartbeat(&mut s, 0, "a", "r1", 3, &[]);
    submit(&mut s, 0, J, hostless(2), 0);
    let (m0, m1) = (at(m(J, 0), 0), at(m(J, 1), 0));
    let actions = heartbeat(&mut s, 100, "a", "r1", 3, &[(m1, 0.5)]);
    assert!(!s.is_live(m0), "a restarted worker no longer runs it");
    assert_eq!(must_status(&s, J).failed_maps, 1);
    assert_eq!(
        launches(&actions),
        vec![launch("a", at(m(J, 0), 1), Locality::Other)]
    );
    // Launched after the worker's last heartbeat: the next one may not list it yet.
    submit(&mut s, 120, 2, hostless(1), 0);
    let late = at(m(2, 0), 0);
    assert!(s.is_live(late));
    let listed = [(m1, 0.6), (at(m(J, 0), 1), 0.1)];
    heartbeat(&mut s, 200, "a", "r1", 3, &listed);
    assert!(s.is_live(late));
    heartbeat(&mut s, 300, "a", "r1", 3, &listed);
    assert!(!s.is_live(late));
    assert_eq!(must_status(&s, 2).failed_maps, 1);
}

#[test]
fn lost_worker_reruns_its_attempts_and_the_map_outputs_reduces_need() {
    let config = SchedulerConfig {
        reduce_slowstart: 1.0,
        ..SchedulerConfig::default()
    };
    let mut s = Scheduler::new(config);
    heartbeat(&mut s, 0, "a", "r1", 1, &[]);
    heartbeat(&mut s, 0, "b", "r1", 2, &[]);
    let first = launches(&submit(&mut s, 0, J, hostless(2), 2));
    let maps = vec![
        launch("a", at(m(J, 0), 0), Locality::Other),
        launch("b", at(m(J, 1), 0), Locality::Other),
    ];
    assert_eq!(first, maps);
    assert!(launches(&succeed(&mut s, 100, at(m(J, 0), 0))).is_empty());
    let reduces = launches(&succeed(&mut s, 200, at(m(J, 1), 0)));
    let expected = vec![
        launch("a", at(r(J, 0), 0), Locality::Other),
        launch("b", at(r(J, 1), 0), Locality::Other),
    ];
    assert_eq!(reduces, expected);
    let both = vec![output(at(m(J, 0), 0), "a"), output(at(m(J, 1), 0), "b")];
    assert_eq!(s.map_outputs(J), Some(both));

    // "b" falls silent; "a" keeps beating.
    heartbeat(&mut s, 5_000, "a", "r1", 1, &[(at(r(J, 0), 0), 0.2)]);
    heartbeat(&mut s, 9_000, "a", "r1", 1, &[(at(r(J, 0), 0), 0.4)]);
    let lost = tick(&mut s, 10_000);
    assert!(kills(&lost).is_empty(), "nobody to send a kill to");
    assert!(launches(&lost).is_empty(), "a is busy");
    assert!(!s.is_live(at(r(J, 1), 0)));
    let meanwhile = vec![output(at(m(J, 0), 0), "a"), None];
    assert_eq!(s.map_outputs(J), Some(meanwhile));
    let status = must_status(&s, J);
    // Killed: the running reduce, and the map attempt whose output went with the worker.
    assert_eq!((status.rerun_maps, status.killed_attempts), (1, 2));
    // `mrjob why` is told which worker went and what it took with it.
    let lost_event = JobEvent::WorkerLost {
        host: "b".into(),
        attempts: vec![at(r(J, 1), 0)],
        outputs: vec![m(J, 1)],
    };
    assert_eq!(s.take_notes(), vec![(J, lost_event)]);
    assert_eq!((status.failed_reduces, status.maps_done), (0, 1));

    // When "a" frees a slot, the map runs again before the reduce it feeds.
    let freed = succeed(&mut s, 10_100, at(r(J, 0), 0));
    assert_eq!(commits(&freed), vec![at(r(J, 0), 0)]);
    let rerun = at(m(J, 1), 1);
    assert_eq!(launches(&freed), vec![launch("a", rerun, Locality::Other)]);
    commit_done(&mut s, 10_150, at(r(J, 0), 0));
    let accepted = succeed(&mut s, 10_200, rerun);
    assert_eq!(accepts(&accepted), vec![rerun]);
    let reduce = at(r(J, 1), 1);
    assert_eq!(
        launches(&accepted),
        vec![launch("a", reduce, Locality::Other)]
    );
    let again = vec![output(at(m(J, 0), 0), "a"), output(rerun, "a")];
    assert_eq!(s.map_outputs(J), Some(again));
    succeed(&mut s, 10_300, reduce);
    assert_eq!(
        succeeded_jobs(&commit_done(&mut s, 10_400, reduce)),
        vec![J]
    );
}

#[test]
fn lost_worker_of_a_map_only_job_reruns_nothing_committed() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    heartbeat(&mut s, 0, "a", "r1", 1, &[]);
    heartbeat(&mut s, 0, "b", "r1", 1, &[]);
    submit(&mut s, 0, J, hostless(2), 0);
    succeed(&mut s, 10, at(m(J, 1), 0));
    commit_done(&mut s, 20, at(m(J, 1), 0));
    heartbeat(&mut s, 9_000, "a", "r1", 1, &[(at(m(J, 0), 0), 0.5)]);
    tick(&mut s, 10_000);
    // The committed output lives in the filesystem, not on the lost worker.
    assert_eq!(must_status(&s, J).rerun_maps, 0);
    assert_eq!(must_status(&s, J).maps_done, 1);
}

#[test]
fn returning_lost_worker_gets_kills_and_its_late_success_is_refused() {
    // Checks G6
    let mut s = Scheduler::new(SchedulerConfig::default());
    heartbeat(&mut s, 0, "a", "r1", 1, &[]);
    heartbeat(&mut s, 0, "b", "r1", 1, &[]);
    submit(&mut s, 0, J, hostless(2), 0);
    let (a0, b0) = (at(m(J, 0), 0), at(m(J, 1), 0));
    heartbeat(&mut s, 5_000, "a", "r1", 1, &[(a0, 0.5)]);
    heartbeat(&mut s, 9_000, "a", "r1", 1, &[(a0, 0.9)]);
    tick(&mut s, 10_000);
    assert!(!s.is_live(b0));
    let mut all = succeed(&mut s, 10_010, a0);
    let rerun = at(m(J, 1), 1);
    assert_eq!(launches(&all), vec![launch("a", rerun, Locality::Other)]);
    all.extend(commit_done(&mut s, 10_020, a0));

    // "b" was paused, not dead: it comes back still running its old attempt.
    let back = heartbeat(&mut s, 10_500, "b", "r1", 1, &[(b0, 0.99)]);
    assert_eq!(kills(&back), vec![("b".to_string(), b0)]);
    assert!(
        succeed(&mut s, 10_600, b0).is_empty(),
        "late success refused"
    );
    assert!(s
        .step(10_600, Event::CommitFinished { attempt: b0 })
        .is_empty());
    all.extend(back);

    all.extend(succeed(&mut s, 10_700, rerun));
    all.extend(commit_done(&mut s, 10_800, rerun));
    assert_eq!(commits(&all), vec![a0, rerun], "one commit per task");
    assert_eq!(accepts(&all), vec![a0, rerun]);
    assert_eq!(succeeded_jobs(&all), vec![J]);
}

/// Two workers with two slots, three maps; the first two succeed after 1 s, so the third
/// becomes a straggler once it has run longer than 1.5 s.
fn with_straggler(reduces: u32) -> Scheduler {
    with_straggler_of(reduces, true, TaskPolicy::default())
}

/// Job `J` with maps 0 and 1 done after 1 s and map 2 still running on "a", on a cluster
/// whose speculation is `speculative`, the job's own settings `policy`.
fn with_straggler_of(reduces: u32, speculative: bool, policy: TaskPolicy) -> Scheduler {
    let config = SchedulerConfig {
        reduce_slowstart: 1.0,
        speculative,
        ..SchedulerConfig::default()
    };
    let mut s = Scheduler::new(config);
    heartbeat(&mut s, 0, "a", "r1", 2, &[]);
    heartbeat(&mut s, 0, "b", "r1", 2, &[]);
    let launched = launches(&submit_with(&mut s, 0, J, hostless(3), reduces, policy));
    assert_eq!(launched[2], launch("a", at(m(J, 2), 0), Locality::Other));
    for index in 0..2 {
        let attempt = at(m(J, index), 0);
        succeed(&mut s, 1_000, attempt);
        commit_done(&mut s, 1_000, attempt);
    }
    s
}

#[test]
fn speculative_backup_runs_elsewhere_and_the_loser_is_killed() {
    let mut s = with_straggler(1);
    // 1.5 s is not longer than 1.5 times the 1 s mean.
    assert!(launches(&tick(&mut s, 1_500)).is_empty());
    let backup = at(m(J, 2), 1);
    let launched = launches(&tick(&mut s, 1_600));
    // "a" has a free slot too, but it runs the original.
    assert_eq!(launched, vec![launch("b", backup, Locality::Other)]);
    let noted = JobEvent::SpeculativeLaunched {
        task: m(J, 2),
        host: "b".into(),
    };
    assert_eq!(s.take_notes(), vec![(J, noted)]);
    assert_eq!(must_status(&s, J).speculative_attempts, 1);
    assert!(launches(&tick(&mut s, 1_700)).is_empty(), "one backup only");

    let original = at(m(J, 2), 0);
    let won = succeed(&mut s, 1_800, original);
    assert_eq!(accepts(&won), vec![original]);
    assert_eq!(kills(&won), vec![("b".to_string(), backup)]);
    assert!(!s.is_live(backup));
    assert!(accepts(&succeed(&mut s, 1_900, backup)).is_empty());
    let status = must_status(&s, J);
    assert_eq!((status.killed_attempts, status.maps_done), (1, 3));
    let outputs = s.map_outputs(J).unwrap();
    assert_eq!(outputs[2], output(original, "a"));
}

#[test]
fn a_job_turns_speculation_on_or_off_for_itself() {
    let off = TaskPolicy {
        map_speculative: Some(false),
        ..TaskPolicy::default()
    };
    let mut s = with_straggler_of(1, true, off);
    assert!(launches(&tick(&mut s, 5_000)).is_empty(), "job said no");
    let on = TaskPolicy {
        map_speculative: Some(true),
        ..TaskPolicy::default()
    };
    let mut s = with_straggler_of(1, false, on);
    let backup = at(m(J, 2), 1);
    assert_eq!(
        launches(&tick(&mut s, 1_600)),
        vec![launch("b", backup, Locality::Other)],
        "job said yes on a cluster that says no"
    );
    // The reduce setting does not touch maps.
    let reduces_only = TaskPolicy {
        reduce_speculative: Some(true),
        ..TaskPolicy::default()
    };
    let mut s = with_straggler_of(1, false, reduces_only);
    assert!(launches(&tick(&mut s, 5_000)).is_empty());
}

#[test]
fn a_job_sets_its_own_attempts_and_timeout() {
    let policy = TaskPolicy {
        map_max_attempts: Some(1),
        task_timeout_ms: Some(0),
        ..TaskPolicy::default()
    };
    let config = SchedulerConfig {
        task_timeout_ms: 1_000,
        ..SchedulerConfig::default()
    };
    let mut s = Scheduler::new(config.clone());
    heartbeat(&mut s, 0, "a", "r1", 2, &[]);
    submit_with(&mut s, 0, J, hostless(2), 1, policy);
    // Timeout 0: an attempt without progress for 9 s (the cluster says 1 s) is not timed out.
    assert!(tick(&mut s, 9_000).is_empty());
    // One attempt allowed: the first failure fails the job.
    let actions = fail(&mut s, 9_001, at(m(J, 0), 0), "boom");
    assert!(
        matches!(actions.last(), Some(Action::JobFailed { .. })),
        "{actions:?}"
    );

    // A job's shorter timeout applies before the cluster's.
    let short = TaskPolicy {
        task_timeout_ms: Some(300),
        ..TaskPolicy::default()
    };
    let mut s = Scheduler::new(config);
    heartbeat(&mut s, 0, "a", "r1", 1, &[]);
    submit_with(&mut s, 0, J, hostless(1), 0, short);
    let actions = tick(&mut s, 300);
    assert_eq!(kills(&actions), vec![("a".to_string(), at(m(J, 0), 0))]);
}

#[test]
fn no_backup_when_disabled_or_before_any_task_succeeded() {
    let mut s = with_straggler(1);
    s.config.speculative = false;
    assert!(launches(&tick(&mut s, 5_000)).is_empty());

    let mut s = Scheduler::new(SchedulerConfig::default());
    heartbeat(&mut s, 0, "a", "r1", 1, &[]);
    heartbeat(&mut s, 0, "b", "r1", 1, &[]);
    submit(&mut s, 0, J, hostless(1), 0);
    assert!(
        launches(&tick(&mut s, 9_000)).is_empty(),
        "no mean to compare"
    );
}

#[test]
fn one_commit_per_task_when_both_speculative_attempts_succeed() {
    // Checks G6
    let mut s = with_straggler(0);
    let (original, backup) = (at(m(J, 2), 0), at(m(J, 2), 1));
    assert_eq!(
        launches(&tick(&mut s, 1_600)),
        vec![launch("b", backup, Locality::Other)]
    );
    let first = succeed(&mut s, 1_700, backup);
    assert_eq!(commits(&first), vec![backup]);
    assert_eq!(kills(&first), vec![("a".to_string(), original)]);
    // The original finishes too before its kill lands: refused.
    let second = succeed(&mut s, 1_710, original);
    assert!(commits(&second).is_empty() && accepts(&second).is_empty());
    let done = commit_done(&mut s, 1_800, backup);
    assert_eq!(accepts(&done), vec![backup]);
    assert_eq!(succeeded_jobs(&done), vec![J]);
    let status = must_status(&s, J);
    assert_eq!(
        (status.speculative_attempts, status.killed_attempts),
        (1, 1)
    );
}

#[test]
fn failed_commit_retries_and_commits_the_new_attempt() {
    // Checks G6
    let mut s = Scheduler::new(SchedulerConfig::default());
    heartbeat(&mut s, 0, "a", "r1", 1, &[]);
    submit(&mut s, 0, J, hostless(1), 0);
    let (first, second) = (at(m(J, 0), 0), at(m(J, 0), 1));
    assert_eq!(commits(&succeed(&mut s, 10, first)), vec![first]);
    // While committing, the task is not offered to anyone else.
    assert!(launches(&tick(&mut s, 15)).is_empty());
    let reason = "rename failed".to_string();
    let retry = s.step(
        20,
        Event::CommitFailed {
            attempt: first,
            reason,
        },
    );
    assert_eq!(launches(&retry), vec![launch("a", second, Locality::Other)]);
    assert!(!s.is_live(first));
    assert_eq!(must_status(&s, J).failed_maps, 1);
    // A late report about the failed commit changes nothing.
    assert!(commit_done(&mut s, 25, first).is_empty());
    assert_eq!(commits(&succeed(&mut s, 30, second)), vec![second]);
    let done = commit_done(&mut s, 40, second);
    assert_eq!(accepts(&done), vec![second]);
    assert_eq!(succeeded_jobs(&done), vec![J]);
}

/// Two maps accepted ("a" and "b"), and `reduces` reduces running.
fn with_reduces_running(reduces: u32) -> Scheduler {
    let config = SchedulerConfig {
        reduce_slowstart: 1.0,
        ..SchedulerConfig::default()
    };
    let mut s = Scheduler::new(config);
    heartbeat(&mut s, 0, "a", "r1", 4, &[]);
    heartbeat(&mut s, 0, "b", "r1", 4, &[]);
    submit(&mut s, 0, J, hostless(2), reduces);
    succeed(&mut s, 10, at(m(J, 0), 0));
    let launched = launches(&succeed(&mut s, 20, at(m(J, 1), 0)));
    assert_eq!(launched.len(), reduces as usize);
    s
}

fn fetch_failure(s: &mut Scheduler, now_ms: u64, reduce: AttemptId, map: AttemptId) -> Vec<Action> {
    s.step(now_ms, Event::FetchFailure { reduce, map })
}

#[test]
fn fetch_failures_from_distinct_reduces_rerun_the_map() {
    let mut s = with_reduces_running(2);
    let (m1, r0, r1) = (at(m(J, 1), 0), at(r(J, 0), 0), at(r(J, 1), 0));
    assert!(fetch_failure(&mut s, 30, r0, m1).is_empty());
    assert!(
        fetch_failure(&mut s, 40, r0, m1).is_empty(),
        "same reporter"
    );
    assert_eq!(must_status(&s, J).rerun_maps, 0);
    assert!(s.map_outputs(J).unwrap()[1].is_some());
    // A report from an attempt that is not live counts for nothing.
    assert!(fetch_failure(&mut s, 45, at(r(J, 1), 7), m1).is_empty());

    let rerun = launches(&fetch_failure(&mut s, 50, r1, m1));
    assert_eq!(rerun, vec![launch("a", at(m(J, 1), 1), Locality::Other)]);
    let noted = JobEvent::MapRerun {
        map: m1,
        reduces: vec![r0, r1],
    };
    assert!(s.take_notes().contains(&(J, noted)));
    assert_eq!(s.map_outputs(J).unwrap()[1], None);
    assert_eq!(must_status(&s, J).rerun_maps, 1);
    // Reports against the superseded attempt are ignored.
    assert!(fetch_failure(&mut s, 60, r0, m1).is_empty());
    assert!(fetch_failure(&mut s, 60, r1, m1).is_empty());
    assert_eq!(must_status(&s, J).rerun_maps, 1);

    let accepted = succeed(&mut s, 70, at(m(J, 1), 1));
    assert_eq!(accepts(&accepted), vec![at(m(J, 1), 1)]);
    assert_eq!(s.map_outputs(J).unwrap()[1], output(at(m(J, 1), 1), "a"));
}

#[test]
fn a_single_live_reduce_can_get_a_map_rerun() {
    let mut s = with_reduces_running(1);
    let actions = fetch_failure(&mut s, 30, at(r(J, 0), 0), at(m(J, 0), 0));
    assert_eq!(launches(&actions).len(), 1);
    assert_eq!(must_status(&s, J).rerun_maps, 1);
}

// Checks G6 (liveness): when a lost worker's map output must be re-run while reduces hold
// every slot, a reduce is preempted (killed, not failed) so the map can run.
#[test]
fn reduces_holding_every_slot_are_preempted_for_starved_maps() {
    let config = SchedulerConfig {
        reduce_slowstart: 0.5,
        speculative: false,
        worker_timeout_ms: 1_000,
        ..SchedulerConfig::default()
    };
    let mut s = Scheduler::new(config);
    heartbeat(&mut s, 0, "a", "/r", 1, &[]);
    heartbeat(&mut s, 0, "b", "/r", 1, &[]);
    let acts = submit(&mut s, 0, 1, hosts(&[&["a"], &["b"]]), 2);
    assert_eq!(launches(&acts).len(), 2);
    let m0 = at(m(1, 0), 0);
    let m1 = at(m(1, 1), 0);
    let acts = succeed(&mut s, 10, m0);
    assert_eq!(
        launches(&acts),
        vec![launch("a", at(r(1, 0), 0), Locality::Other)]
    );
    let acts = succeed(&mut s, 20, m1);
    assert_eq!(
        launches(&acts),
        vec![launch("b", at(r(1, 1), 0), Locality::Other)]
    );
    // "b" keeps heartbeating with its reduce; "a" falls silent and is lost, so m0's output
    // must be re-run, and "b"'s only slot is held by a reduce that waits for it.
    let mut now = 20;
    let mut killed = Vec::new();
    let mut map_rerun = None;
    while now < 10_000 && map_rerun.is_none() {
        now += 100;
        let running: Vec<(AttemptId, f32)> = if killed.is_empty() {
            vec![(at(r(1, 1), 0), 0.2)]
        } else {
            Vec::new()
        };
        let mut acts = heartbeat(&mut s, now, "b", "/r", 1, &running);
        acts.extend(tick(&mut s, now));
        killed.extend(kills(&acts));
        map_rerun = launches(&acts)
            .into_iter()
            .find(|(_, a, _)| a.task == m(1, 0));
    }
    assert_eq!(killed, vec![("b".to_string(), at(r(1, 1), 0))]);
    let (worker, attempt, _) = map_rerun.expect("the lost map output was re-run");
    assert_eq!((worker.as_str(), attempt), ("b", at(m(1, 0), 1)));
    let st = must_status(&s, 1);
    assert_eq!(st.failed_reduces, 0, "a preempted reduce is not a failure");
    assert!(st.killed_attempts >= 1);
    assert_eq!(st.rerun_maps, 1);
}

// A map phase that keeps getting slots is not starved: a reduce started early is left alone.
#[test]
fn busy_map_phase_does_not_preempt_reduces() {
    let config = SchedulerConfig {
        reduce_slowstart: 0.1,
        speculative: false,
        ..SchedulerConfig::default()
    };
    let mut s = Scheduler::new(config);
    heartbeat(&mut s, 0, "a", "/r1", 1, &[]);
    heartbeat(&mut s, 0, "b", "/r2", 1, &[]);
    let maps = 12;
    let acts = submit(&mut s, 0, 1, vec![vec!["a".to_string()]; maps], 1);
    assert_eq!(
        launches(&acts),
        vec![launch("a", at(m(1, 0), 0), Locality::DataLocal)]
    );
    let mut now = 0;
    let mut running_map = at(m(1, 0), 0);
    let mut reduce = None;
    let mut all = Vec::new();
    for _ in 1..maps {
        now += 250;
        let mut acts = succeed(&mut s, now, running_map);
        acts.extend(tick(&mut s, now));
        for (w, a, _) in launches(&acts) {
            match a.task.kind {
                TaskKind::Map => running_map = a,
                TaskKind::Reduce => reduce = Some((w, a)),
            }
        }
        all.extend(acts);
        let mut hb_a = vec![(running_map, 0.5)];
        hb_a.retain(|(a, _)| a.task.kind == TaskKind::Map);
        all.extend(heartbeat(&mut s, now, "a", "/r1", 1, &hb_a));
        let on_b: Vec<(AttemptId, f32)> = reduce.iter().map(|(_, a)| (*a, 0.1)).collect();
        all.extend(heartbeat(&mut s, now, "b", "/r2", 1, &on_b));
        all.extend(tick(&mut s, now));
    }
    assert!(reduce.is_some(), "a reduce should have started early on b");
    assert!(
        kills(&all).is_empty(),
        "no preemption while maps progress: {:?}",
        kills(&all)
    );
}

#[test]
fn kill_job_kills_running_attempts_and_fails_it() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    heartbeat(&mut s, 0, "a", "r1", 2, &[]);
    submit(&mut s, 0, J, hostless(3), 1);
    let actions = s.step(10, Event::KillJob { job: J });
    let expected = vec![
        Action::Kill {
            worker: "a".into(),
            attempt: at(m(J, 0), 0),
        },
        Action::Kill {
            worker: "a".into(),
            attempt: at(m(J, 1), 0),
        },
        Action::JobFailed {
            job: J,
            reason: "killed by user".into(),
        },
    ];
    assert_eq!(actions, expected);
    let status = must_status(&s, J);
    assert_eq!(status.state, JobState::Failed("killed by user".into()));
    assert_eq!(status.killed_attempts, 2);
    assert!(s.step(20, Event::KillJob { job: J }).is_empty());
    assert!(succeed(&mut s, 30, at(m(J, 0), 0)).is_empty());
    assert!(tick(&mut s, 40).is_empty(), "the third map never starts");
}

#[test]
fn job_succeeds_exactly_once() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let empty = submit(&mut s, 0, 9, Vec::new(), 0);
    assert_eq!(empty, vec![Action::JobSucceeded { job: 9 }]);
    assert!(submit(&mut s, 1, 9, hostless(1), 0).is_empty(), "id reused");
    assert!(tick(&mut s, 2).is_empty());

    heartbeat(&mut s, 0, "a", "r1", 1, &[]);
    submit(&mut s, 0, J, hostless(1), 1);
    let mut all = succeed(&mut s, 10, at(m(J, 0), 0));
    all.extend(succeed(&mut s, 20, at(r(J, 0), 0)));
    all.extend(commit_done(&mut s, 30, at(r(J, 0), 0)));
    assert_eq!(succeeded_jobs(&all), vec![J]);
    let mut after = commit_done(&mut s, 40, at(r(J, 0), 0));
    after.extend(succeed(&mut s, 50, at(r(J, 0), 0)));
    after.extend(succeed(&mut s, 50, at(m(J, 0), 0)));
    after.extend(tick(&mut s, 60));
    assert!(after.is_empty(), "{after:?}");
    assert_eq!(must_status(&s, J).state, JobState::Succeeded);
}

#[test]
fn unknown_and_malformed_events_are_ignored() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    heartbeat(&mut s, 0, "a", "r1", 1, &[]);
    submit(&mut s, 0, J, hostless(1), 1);
    let stranger = at(m(77, 3), 0);
    let beyond = at(m(J, 99), 0);
    let events = vec![
        Event::AttemptSucceeded { attempt: stranger },
        Event::AttemptSucceeded { attempt: beyond },
        Event::AttemptFailed {
            attempt: beyond,
            reason: "x".into(),
        },
        Event::CommitFinished {
            attempt: at(m(J, 0), 0),
        },
        Event::CommitFailed {
            attempt: stranger,
            reason: "x".into(),
        },
        Event::FetchFailure {
            reduce: at(m(J, 0), 0),
            map: at(r(J, 0), 0),
        },
        Event::KillJob { job: 77 },
    ];
    for event in events {
        assert!(s.step(5, event.clone()).is_empty(), "{event:?}");
    }
    // A listed attempt the scheduler never launched gets a kill; NaN progress is harmless.
    let listed = [(at(m(J, 0), 0), f32::NAN), (stranger, 0.5)];
    let actions = heartbeat(&mut s, 10, "a", "r1", 1, &listed);
    assert_eq!(kills(&actions), vec![("a".to_string(), stranger)]);
    assert!(s.is_live(at(m(J, 0), 0)));
    let too_many = submit(&mut s, 20, 5, Vec::new(), u32::MAX);
    assert!(matches!(&too_many[..], [Action::JobFailed { job: 5, .. }]));
    assert!(matches!(must_status(&s, 5).state, JobState::Failed(_)));
}

// Checks G6 across a jobtracker restart: a job resumed under the same id numbers its
// attempts from `first_attempt`, so an attempt of the earlier run that a worker still lists
// is killed, and its late success, failure or fetch complaint changes nothing.
#[test]
fn resumed_job_never_adopts_an_earlier_runs_attempts() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let first = 1_000_000;
    let resume = Event::SubmitJob {
        job: J,
        map_hosts: hostless(1),
        reduces: 1,
        first_attempt: first,
        policy: TaskPolicy::default(),
    };
    s.step(0, resume);
    // The worker comes back still running the earlier run's map attempt 0.
    let old_map = at(m(J, 0), 0);
    let actions = heartbeat(&mut s, 10, "a", "r1", 2, &[(old_map, 0.5)]);
    assert_eq!(kills(&actions), vec![("a".to_string(), old_map)]);
    let launched: Vec<AttemptId> = launches(&actions).into_iter().map(|l| l.1).collect();
    assert_eq!(launched, vec![at(m(J, 0), first)]);
    assert!(!s.is_live(old_map));
    // Its late reports are refused.
    assert!(succeed(&mut s, 20, old_map).is_empty());
    assert!(fail(&mut s, 20, old_map, "late").is_empty());
    assert_eq!(must_status(&s, J).maps_done, 0);
    let old_reduce = at(r(J, 0), 0);
    assert!(succeed(&mut s, 30, old_reduce).is_empty());
    s.step(
        30,
        Event::FetchFailure {
            reduce: old_reduce,
            map: at(m(J, 0), first),
        },
    );
    // The new run's own attempts go through to a commit under the new numbers.
    let accepted = accepts(&succeed(&mut s, 40, at(m(J, 0), first)));
    assert_eq!(accepted, vec![at(m(J, 0), first)]);
    let reduce = at(r(J, 0), first);
    assert!(s.is_live(reduce));
    assert_eq!(commits(&succeed(&mut s, 50, reduce)), vec![reduce]);
    let done = commit_done(&mut s, 60, reduce);
    assert_eq!(succeeded_jobs(&done), vec![J]);
}

#[test]
fn remove_job_forgets_it() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    heartbeat(&mut s, 0, "a", "r1", 1, &[]);
    submit(&mut s, 0, J, hostless(2), 0);
    s.step(5, Event::KillJob { job: J });
    s.remove_job(J);
    assert_eq!(s.job_status(J), None);
    assert_eq!(s.map_outputs(J), None);
    assert!(s.live.is_empty() && s.workers["a"].running.is_empty());
}

/// xorshift64: a tiny seeded generator, so that a failing run replays exactly from its seed.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // Spread nearby seeds apart; the state must never be zero.
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        let index = self.below(items.len() as u64) as usize;
        items.get(index).cloned()
    }
}

struct SimWorker {
    name: String,
    rack: String,
    slots: u32,
    paused: bool,
}

/// A cluster that does whatever the scheduler says and reports random outcomes, with a
/// model of what must hold, checked after every step.
struct Sim {
    s: Scheduler,
    rng: XorShift,
    seed: u64,
    now_ms: u64,
    workers: Vec<SimWorker>,
    /// What each worker's children run, as the worker would list them.
    children: BTreeMap<String, BTreeMap<AttemptId, f32>>,
    launched: BTreeSet<AttemptId>,
    attempts_per_task: BTreeMap<TaskId, u32>,
    /// Commits asked for and neither finished nor failed.
    open_commits: BTreeMap<TaskId, AttemptId>,
    committed: BTreeSet<TaskId>,
    accepted: BTreeMap<TaskId, AttemptId>,
    /// Maps and reduces per job.
    jobs: BTreeMap<JobId, (u32, u32)>,
    succeeded: BTreeSet<JobId>,
    failed: BTreeSet<JobId>,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = XorShift::new(seed);
        let config = SchedulerConfig {
            max_attempts: 2 + rng.below(4) as u32,
            task_timeout_ms: 4_000 + rng.below(4_000),
            worker_timeout_ms: 3_000,
            locality_delay_ms: rng.below(500),
            reduce_slowstart: rng.below(11) as f64 / 10.0,
            speculative: rng.chance(70),
            speculative_min_ms: rng.below(1_500),
            speculative_slowness: 1.0 + rng.below(3) as f64 / 2.0,
            fetch_failures_to_rerun: 1 + rng.below(3) as u32,
        };
        let workers = (0..2 + rng.below(4))
            .map(|i| SimWorker {
                name: format!("h{i}"),
                rack: format!("r{}", i % 2),
                slots: 1 + rng.below(3) as u32,
                paused: false,
            })
            .collect();
        Sim {
            s: Scheduler::new(config),
            rng,
            seed,
            now_ms: 0,
            workers,
            children: BTreeMap::new(),
            launched: BTreeSet::new(),
            attempts_per_task: BTreeMap::new(),
            open_commits: BTreeMap::new(),
            committed: BTreeSet::new(),
            accepted: BTreeMap::new(),
            jobs: BTreeMap::new(),
            succeeded: BTreeSet::new(),
            failed: BTreeSet::new(),
        }
    }

    fn step(&mut self, event: Event) {
        let live_before: BTreeSet<AttemptId> = self.s.live.keys().copied().collect();
        let actions = self.s.step(self.now_ms, event.clone());
        if let Event::CommitFailed { attempt, .. } = &event {
            if self.open_commits.get(&attempt.task) == Some(attempt) {
                self.open_commits.remove(&attempt.task);
            }
        }
        for action in &actions {
            self.check(action, &event, &live_before);
        }
        check_consistency(&self.s, self.seed);
    }

    /// Checks one action against the model and lets the cluster carry it out.
    fn check(&mut self, action: &Action, event: &Event, live_before: &BTreeSet<AttemptId>) {
        let seed = self.seed;
        match action {
            Action::Launch {
                worker,
                attempt,
                locality,
            } => {
                assert!(
                    self.launched.insert(*attempt),
                    "{attempt} twice, SEED={seed}"
                );
                let count = self.attempts_per_task.entry(attempt.task).or_default();
                assert_eq!(attempt.attempt, *count, "numbering, SEED={seed}");
                *count += 1;
                let job = attempt.task.job;
                assert!(!self.succeeded.contains(&job) && !self.failed.contains(&job));
                if attempt.task.kind == TaskKind::Reduce {
                    assert_eq!(*locality, Locality::Other, "SEED={seed}");
                }
                let children = self.children.entry(worker.clone()).or_default();
                children.insert(*attempt, 0.0);
            }
            Action::Kill { worker, attempt } => {
                let still = self
                    .s
                    .live
                    .get(attempt)
                    .is_some_and(|l| &l.worker == worker);
                assert!(!still, "{attempt} killed but live, SEED={seed}");
                if let Some(children) = self.children.get_mut(worker) {
                    children.remove(attempt);
                }
            }
            Action::Commit { attempt } => {
                // Checks G6: one commit per task at a time, never after it committed.
                assert!(
                    live_before.contains(attempt),
                    "{attempt} not live, SEED={seed}"
                );
                assert_eq!(event, &Event::AttemptSucceeded { attempt: *attempt });
                let task = attempt.task;
                assert!(!self.committed.contains(&task), "{task} again, SEED={seed}");
                let open = self.open_commits.insert(task, *attempt);
                assert_eq!(open, None, "two commits for {task}, SEED={seed}");
            }
            Action::Accept { attempt } => {
                assert!(
                    live_before.contains(attempt),
                    "{attempt} not live, SEED={seed}"
                );
                if self.commits(attempt.task) {
                    // Checks G6: accepted only once its commit finished, and only once.
                    assert_eq!(event, &Event::CommitFinished { attempt: *attempt });
                    let open = self.open_commits.remove(&attempt.task);
                    assert_eq!(open, Some(*attempt), "SEED={seed}");
                    assert!(self.committed.insert(attempt.task), "SEED={seed}");
                }
                self.accepted.insert(attempt.task, *attempt);
            }
            Action::JobSucceeded { job } => {
                assert!(!self.failed.contains(job), "SEED={seed}");
                assert!(self.succeeded.insert(*job), "twice, SEED={seed}");
                self.check_complete(*job);
            }
            Action::JobFailed { job, .. } => {
                assert!(!self.succeeded.contains(job), "SEED={seed}");
                assert!(self.failed.insert(*job), "twice, SEED={seed}");
            }
        }
    }

    fn commits(&self, task: TaskId) -> bool {
        task.kind == TaskKind::Reduce || self.jobs.get(&task.job).is_some_and(|j| j.1 == 0)
    }

    fn check_complete(&self, job: JobId) {
        let seed = self.seed;
        let status = must_status(&self.s, job);
        assert_eq!(status.state, JobState::Succeeded, "SEED={seed}");
        assert_eq!(status.maps_done, status.maps_total, "SEED={seed}");
        assert_eq!(status.reduces_done, status.reduces_total, "SEED={seed}");
        let (maps, reduces) = self.jobs[&job];
        let tasks = (0..maps)
            .map(|i| m(job, i))
            .chain((0..reduces).map(|i| r(job, i)));
        for task in tasks {
            let done = match self.commits(task) {
                true => self.committed.contains(&task),
                false => self.accepted.contains_key(&task),
            };
            assert!(done, "{job} succeeded before {task} was done, SEED={seed}");
        }
    }

    fn submit_random_job(&mut self) {
        let job = self.jobs.len() as JobId + 1;
        let maps = self.rng.below(7) as u32;
        let reduces = self.rng.below(4) as u32;
        let mut names: Vec<String> = self.workers.iter().map(|w| w.name.clone()).collect();
        names.push("ghost".to_string());
        let map_hosts = (0..maps)
            .map(|_| {
                let replicas = self.rng.below(4);
                (0..replicas)
                    .filter_map(|_| self.rng.pick(&names))
                    .collect()
            })
            .collect();
        self.jobs.insert(job, (maps, reduces));
        // Some jobs bring their own speculation, attempt limits and timeouts (0: none).
        let own = |rng: &mut XorShift, n: u64| rng.chance(30).then(|| rng.below(n));
        let policy = TaskPolicy {
            map_speculative: own(&mut self.rng, 2).map(|b| b == 1),
            reduce_speculative: own(&mut self.rng, 2).map(|b| b == 1),
            map_max_attempts: own(&mut self.rng, 4).map(|n| n as u32 + 1),
            reduce_max_attempts: own(&mut self.rng, 4).map(|n| n as u32 + 1),
            task_timeout_ms: own(&mut self.rng, 3).map(|n| n * 3_000),
        };
        let event = Event::SubmitJob {
            job,
            map_hosts,
            reduces,
            first_attempt: 0,
            policy,
        };
        self.step(event);
    }

    /// The worker reports its children. In chaos it may have lost one (restarted), and
    /// progress may stall; otherwise every child is listed and has moved on.
    fn heartbeat(&mut self, index: usize, chaos: bool) {
        let worker = &self.workers[index];
        let (name, rack, slots) = (worker.name.clone(), worker.rack.clone(), worker.slots);
        let children = self.children.entry(name.clone()).or_default();
        if chaos && !children.is_empty() && self.rng.chance(5) {
            // A child vanished (the worker restarted): it is no longer listed.
            let all: Vec<AttemptId> = children.keys().copied().collect();
            let gone = self.rng.pick(&all).unwrap();
            children.remove(&gone);
        }
        for progress in children.values_mut() {
            if !chaos || self.rng.chance(80) {
                *progress = (*progress + 0.001) % 1.0;
            }
        }
        let running = children.iter().map(|(a, p)| (*a, *p)).collect();
        let event = Event::Heartbeat {
            worker: name,
            rack,
            slots,
            running,
        };
        self.step(event);
    }

    /// A child process, of a paused worker too, which is how late reports arrive.
    fn random_child(&mut self) -> Option<(String, AttemptId)> {
        let all: Vec<(String, AttemptId)> = self
            .children
            .iter()
            .flat_map(|(w, c)| c.keys().map(|a| (w.clone(), *a)))
            .collect();
        self.rng.pick(&all)
    }

    /// The child's process ends: it reports, and its worker no longer lists it.
    fn end_child(&mut self, succeeded: bool) {
        let launched: Vec<AttemptId> = self.launched.iter().copied().collect();
        let attempt = match self.random_child() {
            Some((worker, attempt)) if self.rng.chance(90) => {
                self.children.get_mut(&worker).unwrap().remove(&attempt);
                attempt
            }
            // Now and then a report about an attempt long gone.
            _ => match self.rng.pick(&launched) {
                Some(attempt) => attempt,
                None => return self.step(Event::Tick),
            },
        };
        let reason = "exit status 1".to_string();
        self.step(match succeeded {
            true => Event::AttemptSucceeded { attempt },
            false => Event::AttemptFailed { attempt, reason },
        });
    }

    fn end_commit(&mut self, finished: bool) {
        let open: Vec<AttemptId> = self.open_commits.values().copied().collect();
        let Some(attempt) = self.rng.pick(&open) else {
            return self.step(Event::Tick);
        };
        let reason = "rename failed".to_string();
        self.step(match finished {
            true => Event::CommitFinished { attempt },
            false => Event::CommitFailed { attempt, reason },
        });
    }

    fn fetch_failure(&mut self) {
        let reduces: Vec<AttemptId> = self
            .launched
            .iter()
            .filter(|a| a.task.kind == TaskKind::Reduce)
            .copied()
            .collect();
        let Some(reduce) = self.rng.pick(&reduces) else {
            return self.step(Event::Tick);
        };
        let maps: Vec<AttemptId> = self
            .accepted
            .values()
            .filter(|a| a.task.job == reduce.task.job && a.task.kind == TaskKind::Map)
            .copied()
            .collect();
        let Some(map) = self.rng.pick(&maps) else {
            return self.step(Event::Tick);
        };
        self.step(Event::FetchFailure { reduce, map });
    }

    fn garbage(&mut self) {
        let stranger = at(m(99, self.rng.below(3) as u32), self.rng.below(3) as u32);
        let launched: Vec<AttemptId> = self.launched.iter().copied().collect();
        let known = self.rng.pick(&launched).unwrap_or(stranger);
        let event = match self.rng.below(6) {
            0 => Event::AttemptSucceeded { attempt: stranger },
            1 => Event::CommitFinished { attempt: known },
            2 => Event::CommitFailed {
                attempt: known,
                reason: "x".into(),
            },
            3 => Event::FetchFailure {
                reduce: known,
                map: known,
            },
            4 => Event::KillJob { job: 99 },
            _ => Event::SubmitJob {
                job: 1,
                map_hosts: Vec::new(),
                reduces: 0,
                first_attempt: 0,
                policy: TaskPolicy::default(),
            },
        };
        self.step(event);
    }

    fn random_event(&mut self) {
        self.now_ms += self.rng.below(40);
        let unpaused: Vec<usize> = (0..self.workers.len())
            .filter(|&i| !self.workers[i].paused)
            .collect();
        match self.rng.below(100) {
            0..=19 => match self.rng.pick(&unpaused) {
                Some(index) => self.heartbeat(index, true),
                None => self.step(Event::Tick),
            },
            20..=37 => self.end_child(true),
            38..=44 => self.end_child(false),
            45..=54 => self.end_commit(true),
            55..=57 => self.end_commit(false),
            58..=62 => self.fetch_failure(),
            63..=84 => {
                self.now_ms += self.rng.below(1_500);
                self.step(Event::Tick);
            }
            85..=89 => {
                let index = self.rng.below(self.workers.len() as u64) as usize;
                self.workers[index].paused ^= true;
            }
            90 => {
                let job = 1 + self.rng.below(self.jobs.len() as u64 + 1);
                self.step(Event::KillJob { job });
            }
            91..=93 if self.jobs.len() < 5 => self.submit_random_job(),
            _ => self.garbage(),
        }
    }

    fn all_finished(&self) -> bool {
        self.jobs.len() == self.succeeded.len() + self.failed.len()
    }

    /// Workers stay alive and every attempt and commit succeeds: every job not failed yet
    /// must succeed.
    fn calm_down(&mut self) {
        for worker in &mut self.workers {
            worker.paused = false;
        }
        // Two heartbeats from every worker settle the chaos: attempts a restarted worker
        // lost are judged (and may fail their jobs) by the second.
        for _ in 0..2 {
            self.now_ms += 100;
            for index in 0..self.workers.len() {
                self.heartbeat(index, false);
            }
        }
        let failed_before = self.failed.clone();
        for _ in 0..2_000 {
            if self.all_finished() {
                break;
            }
            self.now_ms += 100;
            for index in 0..self.workers.len() {
                self.heartbeat(index, false);
            }
            self.step(Event::Tick);
            let running: Vec<(String, AttemptId)> = self
                .children
                .iter()
                .flat_map(|(w, c)| c.keys().map(|a| (w.clone(), *a)))
                .collect();
            for (worker, attempt) in running {
                if self.s.is_live(attempt) {
                    self.children.get_mut(&worker).unwrap().remove(&attempt);
                    self.step(Event::AttemptSucceeded { attempt });
                }
            }
            let open: Vec<AttemptId> = self.open_commits.values().copied().collect();
            for attempt in open {
                self.step(Event::CommitFinished { attempt });
            }
        }
        let seed = self.seed;
        assert!(self.all_finished(), "jobs hang, SEED={seed}");
        assert_eq!(
            self.failed, failed_before,
            "calm run failed a job, SEED={seed}"
        );
        assert!(
            self.s.live.is_empty(),
            "attempts outlive their jobs, SEED={seed}"
        );
    }
}

/// The scheduler's own indexes agree with each other.
fn check_consistency(s: &Scheduler, seed: u64) {
    for (name, worker) in &s.workers {
        let slots = worker.slots as usize;
        assert!(
            worker.running.len() <= slots,
            "{name} over slots, SEED={seed}"
        );
        for attempt in &worker.running {
            let live = &s.live[attempt];
            assert!(
                live.phase == Phase::Running && &live.worker == name,
                "SEED={seed}"
            );
        }
    }
    for (attempt, live) in &s.live {
        let job = &s.jobs[&attempt.task.job];
        assert!(job.is_running(), "{attempt} of a finished job, SEED={seed}");
        let task = job.task(attempt.task).unwrap();
        match live.phase {
            Phase::Running => {
                assert!(task.running.contains(attempt), "SEED={seed}");
                let worker = &s.workers[&live.worker];
                assert!(worker.running.contains(attempt), "SEED={seed}");
            }
            Phase::Committing => assert_eq!(task.committing, Some(*attempt)),
        }
    }
    for job in s.jobs.values() {
        for kind in [TaskKind::Map, TaskKind::Reduce] {
            check_tasks(s, job, kind, seed);
        }
    }
}

fn check_tasks(s: &Scheduler, job: &Job, kind: TaskKind, seed: u64) {
    let mut done = 0;
    for (index, task) in (0..).zip(job.tasks(kind)) {
        assert!(task.running.len() <= 2, "SEED={seed}");
        let workers: BTreeSet<&String> = task.running.iter().map(|a| &s.live[a].worker).collect();
        assert_eq!(
            workers.len(),
            task.running.len(),
            "backup beside original, SEED={seed}"
        );
        if task.committing.is_some() {
            assert!(task.running.is_empty(), "SEED={seed}");
        }
        if task.done {
            assert!(
                task.running.is_empty() && task.committing.is_none(),
                "SEED={seed}"
            );
            assert!(task.accepted.is_some(), "SEED={seed}");
            done += 1;
        }
        let pending = job.is_running() && task.is_pending();
        assert_eq!(job.pending(kind).contains(&index), pending, "SEED={seed}");
    }
    let counted = match kind {
        TaskKind::Map => job.status.maps_done,
        TaskKind::Reduce => job.status.reduces_done,
    };
    assert_eq!(counted, done, "SEED={seed}");
}

#[test]
fn random_event_sequences_keep_the_invariants() {
    // Checks G6
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("random_event_sequences_keep_the_invariants: SEED={seed}");
    for case in 0..200 {
        let mut sim = Sim::new(seed.wrapping_add(case));
        for _ in 0..1 + sim.rng.below(3) {
            sim.submit_random_job();
        }
        for _ in 0..100 + sim.rng.below(300) {
            sim.random_event();
        }
        sim.calm_down();
    }
}
