//! The job table: jobs, their tasks, the live attempts and the workers they run on, and the
//! transitions of an attempt's life (launched elsewhere; here committed, accepted, killed,
//! ended). Every transition keeps the table's indexes in step with each other, and asserts the
//! invariants it could break (TigerBeetle's pair assertions): they fire only on a scheduler bug,
//! because the handlers refuse stale or unknown reports before any transition runs.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use super::config::TaskPolicy;
use super::events::{Action, Locality};
use super::ids::{map_task, AttemptId, JobId, TaskId, TaskKind};
use super::Scheduler;

/// The most tasks (maps plus reduces) one job may have. A submission beyond it fails at once,
/// because the scheduler keeps per-task state in memory and must not be made to allocate without
/// bound by one request.
pub const MAX_TASKS_PER_JOB: u64 = 1 << 20;

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum JobState {
    /// Tasks remain to be done.
    #[default]
    Running,
    /// Every task is done.
    Succeeded,
    /// Failed or killed, with the reason.
    Failed(String),
}

/// A job's progress and statistics, for status displays and counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct JobStatus {
    /// Where the job stands.
    pub state: JobState,
    /// Map tasks in the job.
    pub maps_total: u32,
    /// Map tasks done (accepted, with their output available while reduces need it).
    pub maps_done: u32,
    /// Map tasks with an attempt running or committing.
    pub maps_running: u32,
    /// Reduce tasks in the job.
    pub reduces_total: u32,
    /// Reduce tasks committed.
    pub reduces_done: u32,
    /// Reduce tasks with an attempt running or committing.
    pub reduces_running: u32,
    /// Map attempts launched, backups and re-runs included.
    pub launched_maps: u64,
    /// Reduce attempts launched, backups included.
    pub launched_reduces: u64,
    /// Map attempts that failed (they count towards `max_attempts`).
    pub failed_maps: u64,
    /// Reduce attempts that failed (they count towards `max_attempts`).
    pub failed_reduces: u64,
    /// Attempts killed: speculative losers, lost workers, job kill or failure, leftovers.
    pub killed_attempts: u64,
    /// Backup attempts launched for stragglers.
    pub speculative_attempts: u64,
    /// Accepted map attempts that ran data-local (a re-run's acceptance replaces the earlier).
    pub data_local_maps: u64,
    /// Accepted map attempts that ran rack-local.
    pub rack_local_maps: u64,
    /// Accepted map attempts that ran elsewhere.
    pub other_local_maps: u64,
    /// Maps run again because their output was lost (lost worker or fetch failures).
    pub rerun_maps: u64,
    /// `now_ms` of the job's first launch (submit-to-first-map latency).
    pub first_launch_ms: Option<u64>,
}

/// Where a live attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Its process runs on its worker and holds one of the worker's slots.
    Running,
    /// Its process exited successfully; the jobtracker is moving its files into the output.
    Committing,
}

/// An attempt that is allowed to run or is being committed.
#[derive(Debug, Clone)]
pub(super) struct LiveAttempt {
    pub(super) worker: String,
    pub(super) phase: Phase,
    pub(super) locality: Locality,
    pub(super) launched_ms: u64,
    pub(super) progress: f32,
    pub(super) progress_changed_ms: u64,
}

/// A registered worker.
#[derive(Debug)]
pub(super) struct Worker {
    pub(super) rack: String,
    pub(super) slots: u32,
    pub(super) last_heartbeat_ms: u64,
    /// The attempts placed here in phase `Running`: each holds a slot.
    pub(super) running: BTreeSet<AttemptId>,
}

impl Worker {
    pub(super) fn free_slots(&self) -> u32 {
        let used = u32::try_from(self.running.len()).unwrap_or(u32::MAX);
        self.slots.saturating_sub(used)
    }
}

/// The attempt whose result counts for a task.
#[derive(Debug, Clone)]
pub(super) struct Accepted {
    pub(super) attempt: AttemptId,
    /// Where it ran: for a map of a job with reduces, where its output lives.
    pub(super) worker: String,
    pub(super) locality: Locality,
}

/// One task's scheduling state.
#[derive(Debug, Default)]
pub(super) struct Task {
    /// Hosts holding a replica of the split (maps only).
    pub(super) hosts: Vec<String>,
    pub(super) next_attempt: u32,
    pub(super) failures: u32,
    /// The worker the last failed attempt ran on, avoided by the next placement when possible.
    pub(super) last_failed_on: Option<String>,
    /// Attempts in phase `Running`: one, or two while a backup races the original.
    pub(super) running: BTreeSet<AttemptId>,
    pub(super) committing: Option<AttemptId>,
    /// The latest accepted attempt; kept after a map's output is lost, for the locality counts
    /// and because it still counts once every reduce has committed.
    pub(super) accepted: Option<Accepted>,
    /// Accepted, and for a map of a job with reduces its output is still available.
    pub(super) done: bool,
    /// Distinct reduce attempts that could not fetch the accepted attempt's output.
    pub(super) fetch_failures: BTreeSet<AttemptId>,
}

impl Task {
    pub(super) fn new(hosts: Vec<String>, first_attempt: u32) -> Task {
        Task {
            hosts,
            next_attempt: first_attempt,
            ..Task::default()
        }
    }

    pub(super) fn is_pending(&self) -> bool {
        !self.done && self.running.is_empty() && self.committing.is_none()
    }

    /// Whether a placement on `worker` should wait for another worker: the task just failed
    /// there, and a retry on the same host would likely fail the same way.
    pub(super) fn avoids(&self, worker: &str, others_free: bool) -> bool {
        others_free && self.last_failed_on.as_deref() == Some(worker)
    }
}

/// Total and count of succeeded attempt durations, for the straggler threshold.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Durations {
    pub(super) total_ms: u64,
    pub(super) count: u64,
}

impl Durations {
    pub(super) fn record(&mut self, duration_ms: u64) {
        self.total_ms = self.total_ms.saturating_add(duration_ms);
        self.count += 1;
    }

    pub(super) fn mean_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.total_ms as f64 / self.count as f64)
    }
}

/// What a `SubmitJob` event describes.
pub(super) struct JobShape {
    pub(super) map_hosts: Vec<Vec<String>>,
    pub(super) reduces: u32,
    pub(super) first_attempt: u32,
    pub(super) policy: TaskPolicy,
}

/// One job's tasks and statistics.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) maps: Vec<Task>,
    pub(super) reduces: Vec<Task>,
    pub(super) pending_maps: BTreeSet<u32>,
    pub(super) pending_reduces: BTreeSet<u32>,
    /// Maps that have an accepted attempt, whether or not its output is still available.
    pub(super) maps_ever_accepted: u32,
    /// When the locality delay started: submit, or the last node-local launch.
    pub(super) locality_wait_from_ms: u64,
    /// Since when maps have been pending with every reachable slot taken and no map launched
    /// (see `preempt_reduces`); `None` while that is not the case.
    pub(super) maps_starved_since_ms: Option<u64>,
    pub(super) map_durations: Durations,
    pub(super) reduce_durations: Durations,
    /// State and counters; the running counts and locality counts are filled in on query.
    pub(super) status: JobStatus,
    /// The job's own speculation, attempt and timeout settings.
    pub(super) policy: TaskPolicy,
}

impl Job {
    pub(super) fn new(shape: JobShape, now_ms: u64) -> Job {
        let JobShape {
            map_hosts,
            reduces,
            first_attempt,
            policy,
        } = shape;
        let maps: Vec<Task> = map_hosts
            .into_iter()
            .map(|hosts| Task::new(hosts, first_attempt))
            .collect();
        let maps_total = u32::try_from(maps.len()).unwrap_or(u32::MAX);
        Job {
            pending_maps: (0..maps_total).collect(),
            pending_reduces: (0..reduces).collect(),
            maps,
            reduces: (0..reduces)
                .map(|_| Task::new(Vec::new(), first_attempt))
                .collect(),
            maps_ever_accepted: 0,
            locality_wait_from_ms: now_ms,
            maps_starved_since_ms: None,
            map_durations: Durations::default(),
            reduce_durations: Durations::default(),
            status: JobStatus {
                maps_total,
                reduces_total: reduces,
                ..JobStatus::default()
            },
            policy,
        }
    }

    /// A job refused at submission: it exists only to report why.
    pub(super) fn refused(reason: String) -> Job {
        let empty = JobShape {
            map_hosts: Vec::new(),
            reduces: 0,
            first_attempt: 0,
            policy: TaskPolicy::default(),
        };
        let mut job = Job::new(empty, 0);
        job.status.state = JobState::Failed(reason);
        job
    }

    pub(super) fn is_running(&self) -> bool {
        self.status.state == JobState::Running
    }

    pub(super) fn tasks(&self, kind: TaskKind) -> &[Task] {
        match kind {
            TaskKind::Map => &self.maps,
            TaskKind::Reduce => &self.reduces,
        }
    }

    pub(super) fn task(&self, id: TaskId) -> Option<&Task> {
        self.tasks(id.kind).get(usize::try_from(id.index).ok()?)
    }

    pub(super) fn task_mut(&mut self, id: TaskId) -> Option<&mut Task> {
        let tasks = match id.kind {
            TaskKind::Map => &mut self.maps,
            TaskKind::Reduce => &mut self.reduces,
        };
        tasks.get_mut(usize::try_from(id.index).ok()?)
    }

    pub(super) fn pending(&self, kind: TaskKind) -> &BTreeSet<u32> {
        match kind {
            TaskKind::Map => &self.pending_maps,
            TaskKind::Reduce => &self.pending_reduces,
        }
    }

    /// Brings the pending set in line with the task's state; called after every change to it.
    pub(super) fn sync_pending(&mut self, id: TaskId) {
        let pending = self.is_running() && self.task(id).is_some_and(Task::is_pending);
        let set = match id.kind {
            TaskKind::Map => &mut self.pending_maps,
            TaskKind::Reduce => &mut self.pending_reduces,
        };
        if pending {
            set.insert(id.index);
        } else {
            set.remove(&id.index);
        }
    }

    /// Marks a task done or not, keeping the done counts in step.
    pub(super) fn set_done(&mut self, id: TaskId, done: bool) {
        let Some(task) = self.task_mut(id) else {
            return;
        };
        if task.done == done {
            return;
        }
        task.done = done;
        let status = &mut self.status;
        let (count, total) = match id.kind {
            TaskKind::Map => (&mut status.maps_done, status.maps_total),
            TaskKind::Reduce => (&mut status.reduces_done, status.reduces_total),
        };
        if done {
            *count += 1;
        } else {
            *count -= 1;
        }
        assert!(*count <= total, "{id}: {count} of {total} tasks done");
        self.sync_pending(id);
    }

    /// Records `accepted` as the task's accepted attempt and marks the task done.
    fn accept(&mut self, id: TaskId, accepted: Accepted) {
        let Some(task) = self.task_mut(id) else {
            return;
        };
        // Only a live attempt is accepted, and a done task has none (they were killed, or it
        // was not done when they launched).
        assert!(!task.done, "{id} accepted while done");
        let first = task.accepted.is_none();
        task.accepted = Some(accepted);
        task.fetch_failures.clear();
        if first && id.kind == TaskKind::Map {
            self.maps_ever_accepted += 1;
        }
        self.set_done(id, true);
    }

    /// Whether a success of this kind is committed (reduces, and maps of map-only jobs) rather
    /// than accepted at once (maps whose output stays on the worker for the reduces).
    pub(super) fn commits(&self, kind: TaskKind) -> bool {
        kind == TaskKind::Reduce || self.reduces.is_empty()
    }

    pub(super) fn reduces_unfinished(&self) -> bool {
        self.status.reduces_done < self.status.reduces_total
    }

    pub(super) fn reduces_may_start(&self, slowstart: f64) -> bool {
        let total = f64::from(self.status.maps_total);
        // The tolerance absorbs rounding: 0.7 * 10.0 is 7.000000000000001, and 7 of 10 maps
        // must be enough.
        f64::from(self.status.maps_done) >= slowstart * total - 1e-9
    }

    /// Every reduce committed and every map accepted at least once. A map whose output was lost
    /// after every reduce had fetched it needs no re-run.
    pub(super) fn is_complete(&self) -> bool {
        self.maps_ever_accepted == self.status.maps_total && !self.reduces_unfinished()
    }

    pub(super) fn durations_mut(&mut self, kind: TaskKind) -> &mut Durations {
        match kind {
            TaskKind::Map => &mut self.map_durations,
            TaskKind::Reduce => &mut self.reduce_durations,
        }
    }

    pub(super) fn durations(&self, kind: TaskKind) -> Durations {
        match kind {
            TaskKind::Map => self.map_durations,
            TaskKind::Reduce => self.reduce_durations,
        }
    }

    pub(super) fn stop_scheduling(&mut self, state: JobState) {
        self.status.state = state;
        self.pending_maps.clear();
        self.pending_reduces.clear();
    }
}

/// Submissions and successes.
impl Scheduler {
    pub(super) fn on_submit(
        &mut self,
        now_ms: u64,
        id: JobId,
        shape: JobShape,
        actions: &mut Vec<Action>,
    ) {
        // A repeated id must not reset a job whose tasks may already have committed (G6).
        if self.jobs.contains_key(&id) {
            return;
        }
        let tasks = (shape.map_hosts.len() as u64).saturating_add(u64::from(shape.reduces));
        if tasks > MAX_TASKS_PER_JOB {
            let reason = format!("too many tasks: {tasks} (at most {MAX_TASKS_PER_JOB})");
            self.jobs.insert(id, Job::refused(reason.clone()));
            actions.push(Action::JobFailed { job: id, reason });
            return;
        }
        self.jobs.insert(id, Job::new(shape, now_ms));
        // A job without tasks is done at once.
        self.finish_job_if_complete(id, actions);
    }

    pub(super) fn on_succeeded(
        &mut self,
        now_ms: u64,
        attempt: AttemptId,
        actions: &mut Vec<Action>,
    ) {
        // Killed, failed, timed out, superseded or unknown attempts are refused here: this is
        // how a paused-then-resumed worker's late success is kept out of the output (G6).
        let Some(live) = self.live.get(&attempt) else {
            return;
        };
        if live.phase != Phase::Running {
            return;
        }
        let duration_ms = now_ms.saturating_sub(live.launched_ms);
        let Some(job) = self.jobs.get_mut(&attempt.task.job) else {
            return;
        };
        job.durations_mut(attempt.task.kind).record(duration_ms);
        if job.commits(attempt.task.kind) {
            self.start_commit(attempt, actions);
        } else {
            self.accept_map_output(attempt, actions);
        }
    }

    pub(super) fn on_commit_finished(&mut self, attempt: AttemptId, actions: &mut Vec<Action>) {
        if self.phase(attempt) != Some(Phase::Committing) {
            return;
        }
        self.accept(attempt, actions);
    }
}

/// Queries over live attempts.
impl Scheduler {
    /// Records a heartbeat; returns the time of the worker's previous one, or `None` when this
    /// one registers it.
    pub(super) fn register(
        &mut self,
        now_ms: u64,
        name: &str,
        rack: String,
        slots: u32,
    ) -> Option<u64> {
        if let Some(worker) = self.workers.get_mut(name) {
            let previous_ms = worker.last_heartbeat_ms;
            worker.rack = rack;
            worker.slots = slots;
            worker.last_heartbeat_ms = now_ms;
            return Some(previous_ms);
        }
        let worker = Worker {
            rack,
            slots,
            last_heartbeat_ms: now_ms,
            running: BTreeSet::new(),
        };
        self.workers.insert(name.to_string(), worker);
        None
    }

    pub(super) fn phase(&self, attempt: AttemptId) -> Option<Phase> {
        self.live.get(&attempt).map(|l| l.phase)
    }

    pub(super) fn is_accepted(&self, attempt: AttemptId) -> bool {
        let job = self.jobs.get(&attempt.task.job);
        let task = job.and_then(|j| j.task(attempt.task));
        let accepted = task.and_then(|t| t.accepted.as_ref());
        accepted.is_some_and(|a| a.attempt == attempt)
    }

    /// The job's live attempts, of one kind or both, in order.
    pub(super) fn live_attempts(&self, job: JobId, kind: Option<TaskKind>) -> Vec<AttemptId> {
        let range = live_range(job, kind);
        self.live.range(range).map(|(a, _)| *a).collect()
    }

    /// Whether any attempt of the job is live, in O(log n).
    pub(super) fn has_live_attempts(&self, job: JobId) -> bool {
        self.live.range(live_range(job, None)).next().is_some()
    }
}

/// Attempt and job life cycle.
impl Scheduler {
    /// Removes a live attempt from every index, and returns the task to pending if nothing else
    /// runs it. The caller decides what the ending means (kill, failure, acceptance).
    pub(super) fn end_attempt(&mut self, attempt: AttemptId) -> Option<LiveAttempt> {
        let live = self.live.remove(&attempt)?;
        let running = live.phase == Phase::Running;
        // Pair assertions with `launch` and `start_commit`: a running attempt holds a slot of
        // its worker and is among its task's running attempts; a committing one gave the slot
        // back and is its task's one committing attempt. A lost worker is gone before its
        // attempts end, so only a worker still registered is checked.
        if let Some(worker) = self.workers.get_mut(&live.worker) {
            let held_slot = worker.running.remove(&attempt);
            assert_eq!(
                held_slot, running,
                "{attempt} ended out of step with its worker"
            );
        }
        if let Some(job) = self.jobs.get_mut(&attempt.task.job) {
            if let Some(task) = job.task_mut(attempt.task) {
                let was_running = task.running.remove(&attempt);
                let was_committing = task.committing == Some(attempt);
                assert!(
                    was_running == running && was_committing != running,
                    "{attempt} ended out of step with its task"
                );
                if was_committing {
                    task.committing = None;
                }
            }
            job.sync_pending(attempt.task);
        }
        Some(live)
    }

    /// Kills a live attempt. `notify` sends the worker a `Kill`; a lost worker gets none. A
    /// committing attempt's process has exited already: it is only forgotten.
    pub(super) fn kill_attempt(
        &mut self,
        attempt: AttemptId,
        notify: bool,
        actions: &mut Vec<Action>,
    ) {
        let Some(live) = self.end_attempt(attempt) else {
            return;
        };
        if live.phase != Phase::Running {
            return;
        }
        if let Some(job) = self.jobs.get_mut(&attempt.task.job) {
            job.status.killed_attempts += 1;
        }
        if notify {
            let worker = live.worker;
            actions.push(Action::Kill { worker, attempt });
        }
    }

    /// Kills the other running attempts of `winner`'s task: the race is decided (G6).
    fn kill_siblings(&mut self, winner: AttemptId, actions: &mut Vec<Action>) {
        let job = self.jobs.get(&winner.task.job);
        let Some(task) = job.and_then(|j| j.task(winner.task)) else {
            return;
        };
        let losers: Vec<AttemptId> = task.running.iter().copied().collect();
        for loser in losers.into_iter().filter(|&a| a != winner) {
            self.kill_attempt(loser, true, actions);
        }
    }

    pub(super) fn finish_job_if_complete(&mut self, id: JobId, actions: &mut Vec<Action>) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if !job.is_running() || !job.is_complete() {
            return;
        }
        job.stop_scheduling(JobState::Succeeded);
        // A map re-running for an output that every reduce has already fetched is not needed:
        // its earlier accepted attempt stands.
        for index in 0..job.status.maps_total {
            job.set_done(map_task(id, index), true);
        }
        for attempt in self.live_attempts(id, None) {
            self.kill_attempt(attempt, true, actions);
        }
        // Pair assertion with `launch`: every live attempt belongs to a running job.
        assert!(
            !self.has_live_attempts(id),
            "job {id} succeeded with live attempts"
        );
        actions.push(Action::JobSucceeded { job: id });
    }

    /// First live success of a reduce or map-only task: its files may be committed, and only
    /// its (G6).
    fn start_commit(&mut self, attempt: AttemptId, actions: &mut Vec<Action>) {
        let Some(live) = self.live.get_mut(&attempt) else {
            return;
        };
        live.phase = Phase::Committing;
        // A running attempt's worker is registered: losing a worker ends its running attempts.
        let freed_slot = self
            .workers
            .get_mut(&live.worker)
            .is_some_and(|w| w.running.remove(&attempt));
        assert!(
            freed_slot,
            "{attempt} committing without a slot on its worker"
        );
        let Some(job) = self.jobs.get_mut(&attempt.task.job) else {
            return;
        };
        assert!(job.is_running(), "{attempt} committing in a finished job");
        if let Some(task) = job.task_mut(attempt.task) {
            // G6, asserted where it could break: at most one committing attempt per task, and
            // no commit once the task has committed (only a commit accepts a committing task).
            assert!(
                task.committing.is_none() && task.accepted.is_none(),
                "{attempt} committing beside {:?}, accepted {:?}",
                task.committing,
                task.accepted.as_ref().map(|a| a.attempt)
            );
            let was_running = task.running.remove(&attempt);
            assert!(was_running, "{attempt} committing but not running");
            task.committing = Some(attempt);
        }
        job.sync_pending(attempt.task);
        self.kill_siblings(attempt, actions);
        actions.push(Action::Commit { attempt });
    }

    /// First live success of a map of a job with reduces: its output on its worker is the one
    /// the reduces fetch.
    fn accept_map_output(&mut self, attempt: AttemptId, actions: &mut Vec<Action>) {
        self.kill_siblings(attempt, actions);
        self.accept(attempt, actions);
    }

    /// Ends `attempt` as its task's accepted one (its counters count) and finishes the job
    /// when that was its last task.
    fn accept(&mut self, attempt: AttemptId, actions: &mut Vec<Action>) {
        let Some(live) = self.end_attempt(attempt) else {
            return;
        };
        let Some(job) = self.jobs.get_mut(&attempt.task.job) else {
            return;
        };
        let accepted = Accepted {
            attempt,
            worker: live.worker,
            locality: live.locality,
        };
        job.accept(attempt.task, accepted);
        actions.push(Action::Accept { attempt });
        self.finish_job_if_complete(attempt.task.job, actions);
    }
}

/// The range of live-attempt keys that belong to `job` (and to `kind`, if given).
fn live_range(job: JobId, kind: Option<TaskKind>) -> RangeInclusive<AttemptId> {
    let bound = |kind: TaskKind, index: u32, attempt: u32| AttemptId {
        task: TaskId { job, kind, index },
        attempt,
    };
    let lo = bound(kind.unwrap_or(TaskKind::Map), 0, 0);
    let hi = bound(kind.unwrap_or(TaskKind::Reduce), u32::MAX, u32::MAX);
    lo..=hi
}
