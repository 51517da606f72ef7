//! Failure handling: attempts that fail, stall or vanish from their worker's heartbeat,
//! workers that fall silent (taking their map outputs with them), reduces that cannot fetch a
//! map's output, stragglers that deserve a backup attempt, and jobs that fail or are killed.

use std::collections::BTreeMap;

use crate::diagnosis::JobEvent;

use super::events::{Action, KILLED_BY_USER};
use super::ids::{map_task, AttemptId, JobId, TaskId, TaskKind};
use super::table::{Job, JobState, Phase};
use super::Scheduler;

/// Heartbeats: what a worker lists, and what it no longer lists.
impl Scheduler {
    pub(super) fn on_heartbeat(
        &mut self,
        now_ms: u64,
        worker: String,
        rack: String,
        slots: u32,
        running: Vec<(AttemptId, f32)>,
        actions: &mut Vec<Action>,
    ) {
        self.racks.insert(worker.clone(), rack.clone());
        let previous_ms = self.register(now_ms, &worker, rack, slots);
        let listed: BTreeMap<AttemptId, f32> = running.into_iter().collect();
        for (&attempt, &progress) in &listed {
            self.note_listed(now_ms, &worker, attempt, progress, actions);
        }
        // A worker seen for the first time (or afresh after being lost) runs nothing of ours.
        if let Some(previous_ms) = previous_ms {
            self.fail_omitted(&worker, previous_ms, &listed, actions);
        }
    }

    /// Notes progress of an attempt a worker lists, or kills it if it should not be running.
    fn note_listed(
        &mut self,
        now_ms: u64,
        worker: &str,
        attempt: AttemptId,
        progress: f32,
        actions: &mut Vec<Action>,
    ) {
        if let Some(live) = self.live.get_mut(&attempt) {
            if live.phase == Phase::Committing {
                // Its process exited; a stale listing needs no answer.
                return;
            }
            if live.worker == worker {
                // A NaN never equals itself and would count as progress forever.
                if progress.is_finite() && progress != live.progress {
                    live.progress = progress;
                    live.progress_changed_ms = now_ms;
                }
                return;
            }
        }
        // An accepted map's output lives in its attempt's directory; a Kill could delete it.
        if self.is_accepted(attempt) {
            return;
        }
        let worker = worker.to_string();
        actions.push(Action::Kill { worker, attempt });
    }

    /// Fails attempts the scheduler placed on `worker` that its heartbeat no longer lists (the
    /// worker restarted, or the child vanished).
    fn fail_omitted(
        &mut self,
        worker: &str,
        previous_ms: u64,
        listed: &BTreeMap<AttemptId, f32>,
        actions: &mut Vec<Action>,
    ) {
        let Some(w) = self.workers.get(worker) else {
            return;
        };
        // An attempt launched after the previous heartbeat may not have reached the worker when
        // it sent this one; it is judged from the next heartbeat on.
        let omitted: Vec<AttemptId> = w
            .running
            .iter()
            .filter(|a| !listed.contains_key(a))
            .filter(|a| {
                self.live
                    .get(a)
                    .is_some_and(|l| l.launched_ms <= previous_ms)
            })
            .copied()
            .collect();
        for attempt in omitted {
            self.fail_attempt(attempt, "lost by worker", actions);
        }
    }
}

/// Failed attempts and jobs.
impl Scheduler {
    pub(super) fn on_failed(
        &mut self,
        attempt: AttemptId,
        reason: &str,
        actions: &mut Vec<Action>,
    ) {
        // A committing attempt's process already exited successfully; only its commit can fail.
        if self.phase(attempt) == Some(Phase::Running) {
            self.fail_attempt(attempt, reason, actions);
        }
    }

    pub(super) fn on_commit_failed(
        &mut self,
        attempt: AttemptId,
        reason: &str,
        actions: &mut Vec<Action>,
    ) {
        if self.phase(attempt) == Some(Phase::Committing) {
            self.fail_attempt(attempt, reason, actions);
        }
    }

    pub(super) fn on_kill_job(&mut self, job: JobId, actions: &mut Vec<Action>) {
        if self.jobs.get(&job).is_some_and(Job::is_running) {
            self.fail_job(job, KILLED_BY_USER.to_string(), actions);
        }
    }

    /// Counts a failure against the attempt's task; fails the job at `max_attempts`.
    pub(super) fn fail_attempt(
        &mut self,
        attempt: AttemptId,
        reason: &str,
        actions: &mut Vec<Action>,
    ) {
        let Some(live) = self.end_attempt(attempt) else {
            return;
        };
        let Some(job) = self.jobs.get_mut(&attempt.task.job) else {
            return;
        };
        let max_attempts = self.config.max_attempts_for(&job.policy, attempt.task.kind);
        match attempt.task.kind {
            TaskKind::Map => job.status.failed_maps += 1,
            TaskKind::Reduce => job.status.failed_reduces += 1,
        }
        let Some(task) = job.task_mut(attempt.task) else {
            return;
        };
        task.failures += 1;
        self.notes.push((
            attempt.task.job,
            JobEvent::AttemptFailed {
                attempt,
                host: live.worker.clone(),
                error: reason.to_owned(),
            },
        ));
        task.last_failed_on = Some(live.worker);
        if task.failures >= max_attempts {
            let failures = task.failures;
            let reason = format!(
                "{} failed {failures} times; last error: {reason}",
                attempt.task
            );
            self.fail_job(attempt.task.job, reason, actions);
        }
    }

    pub(super) fn fail_job(&mut self, id: JobId, reason: String, actions: &mut Vec<Action>) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        // Stop scheduling first, so the kills below do not make tasks pending again.
        job.stop_scheduling(JobState::Failed(reason.clone()));
        for attempt in self.live_attempts(id, None) {
            self.kill_attempt(attempt, true, actions);
        }
        // Pair assertion with `launch`: every live attempt belongs to a running job.
        assert!(
            !self.has_live_attempts(id),
            "job {id} failed with live attempts"
        );
        actions.push(Action::JobFailed { job: id, reason });
    }
}

/// Lost workers, stalled attempts and lost map outputs.
impl Scheduler {
    pub(super) fn lose_silent_workers(&mut self, now_ms: u64, actions: &mut Vec<Action>) {
        let timeout_ms = self.config.worker_timeout_ms;
        let lost: Vec<String> = self
            .workers
            .iter()
            .filter(|(_, w)| now_ms.saturating_sub(w.last_heartbeat_ms) >= timeout_ms)
            .map(|(name, _)| name.clone())
            .collect();
        for name in lost {
            self.lose_worker(&name, actions);
        }
    }

    fn lose_worker(&mut self, name: &str, actions: &mut Vec<Action>) {
        let Some(worker) = self.workers.remove(name) else {
            return;
        };
        // Its processes went with it: there is nobody to send a Kill to, and the tasks did
        // nothing wrong, so this is not a failure. If it comes back, its heartbeat gets Kills.
        let mut noted: BTreeMap<JobId, (Vec<AttemptId>, Vec<TaskId>)> = BTreeMap::new();
        for attempt in worker.running {
            noted.entry(attempt.task.job).or_default().0.push(attempt);
            self.kill_attempt(attempt, false, actions);
        }
        // Map outputs lived on its disks; a reduce that has not committed may still need them.
        let mut lost = Vec::new();
        for (&id, job) in &self.jobs {
            if !job.is_running() || !job.reduces_unfinished() {
                continue;
            }
            for (index, task) in (0..).zip(&job.maps) {
                let here = task.accepted.as_ref().is_some_and(|a| a.worker == name);
                if task.done && here {
                    lost.push(map_task(id, index));
                }
            }
        }
        for task in lost {
            if self.lose_map_output(task) {
                noted.entry(task.job).or_default().1.push(task);
            }
        }
        for (job, (attempts, outputs)) in noted {
            let host = name.to_owned();
            let event = JobEvent::WorkerLost {
                host,
                attempts,
                outputs,
            };
            self.notes.push((job, event));
        }
    }

    pub(super) fn time_out_stalled_attempts(&mut self, now_ms: u64, actions: &mut Vec<Action>) {
        // Each job's own timeout (a job may have none).
        let timeout_of = |a: &AttemptId| {
            let policy = self.jobs.get(&a.task.job).map(|j| j.policy);
            self.config.task_timeout_for(&policy.unwrap_or_default())
        };
        let stalled: Vec<(AttemptId, u64)> = self
            .live
            .iter()
            .filter(|(_, l)| l.phase == Phase::Running)
            .filter_map(|(a, l)| {
                let timeout_ms = timeout_of(a)?;
                let stalled = now_ms.saturating_sub(l.progress_changed_ms) >= timeout_ms;
                stalled.then_some((*a, timeout_ms))
            })
            .collect();
        for (attempt, timeout_ms) in stalled {
            let reason = format!("timed out after {timeout_ms} ms without progress");
            // An earlier timeout may have failed the whole job, taking this attempt with it.
            let Some(live) = self.live.get(&attempt) else {
                continue;
            };
            let worker = live.worker.clone();
            actions.push(Action::Kill { worker, attempt });
            self.fail_attempt(attempt, &reason, actions);
        }
    }

    pub(super) fn on_fetch_failure(&mut self, reduce: AttemptId, map: AttemptId) {
        let same_job = reduce.task.job == map.task.job;
        let kinds_fit = reduce.task.kind == TaskKind::Reduce && map.task.kind == TaskKind::Map;
        // A killed or finished reduce's complaints are stale and must not re-run anything.
        if !same_job || !kinds_fit || !self.is_live(reduce) {
            return;
        }
        let threshold = self.fetch_failure_threshold(map.task.job);
        let Some(job) = self.jobs.get_mut(&map.task.job) else {
            return;
        };
        let Some(task) = job.task_mut(map.task) else {
            return;
        };
        let accepted = task.accepted.as_ref().map(|a| a.attempt);
        if !task.done || accepted != Some(map) {
            return;
        }
        task.fetch_failures.insert(reduce);
        if task.fetch_failures.len() >= threshold {
            let reduces: Vec<AttemptId> = task.fetch_failures.iter().copied().collect();
            if self.lose_map_output(map.task) {
                let event = JobEvent::MapRerun { map, reduces };
                self.notes.push((map.task.job, event));
            }
        }
    }

    /// Reports from this many distinct reduce attempts declare a map output lost. Never more
    /// than the job's live reduce attempts, or a job with a single reduce could never get a
    /// lost output re-run.
    fn fetch_failure_threshold(&self, job: JobId) -> usize {
        let reducers = self.live_attempts(job, Some(TaskKind::Reduce)).len();
        self.config.fetch_failures_to_rerun().min(reducers.max(1))
    }

    /// The map's accepted output is gone: run the map again while a reduce still needs it.
    /// Returns whether it runs again.
    fn lose_map_output(&mut self, task: TaskId) -> bool {
        let Some(job) = self.jobs.get_mut(&task.job) else {
            return false;
        };
        if !job.is_running() || !job.reduces_unfinished() {
            return false;
        }
        if !job.task(task).is_some_and(|t| t.done) {
            return false;
        }
        if let Some(t) = job.task_mut(task) {
            t.fetch_failures.clear();
        }
        // The attempt that produced the output counts as killed, as Hadoop counts it.
        job.status.rerun_maps += 1;
        job.status.killed_attempts += 1;
        job.set_done(task, false);
        true
    }
}

/// Stragglers, for speculative backup attempts.
impl Scheduler {
    /// The task of `kind` whose only attempt has run longest, if it runs on another worker than
    /// `name` and is slow enough against the job's succeeded tasks of that kind.
    pub(super) fn straggler(
        &self,
        id: JobId,
        job: &Job,
        kind: TaskKind,
        name: &str,
        now_ms: u64,
    ) -> Option<TaskId> {
        // Backups only when no regular task of the kind waits: they would compete for slots.
        if !job.pending(kind).is_empty() {
            return None;
        }
        let mean_ms = job.durations(kind).mean_ms()?;
        let threshold_ms = self.config.speculative_slowness * mean_ms;
        let min_ms = self.config.speculative_min_ms;
        let mut best: Option<(u64, AttemptId)> = None;
        for attempt in self.live_attempts(id, Some(kind)) {
            let Some(live) = self.live.get(&attempt) else {
                continue;
            };
            let alone = job.task(attempt.task).is_some_and(|t| t.running.len() == 1);
            if live.phase != Phase::Running || live.worker == name || !alone {
                continue;
            }
            let ran_ms = now_ms.saturating_sub(live.launched_ms);
            if ran_ms < min_ms || ran_ms as f64 <= threshold_ms {
                continue;
            }
            // Ties go to the lowest attempt id, which comes first.
            match best {
                Some((longest_ms, _)) if longest_ms >= ran_ms => {}
                _ => best = Some((ran_ms, attempt)),
            }
        }
        best.map(|(_, attempt)| attempt.task)
    }
}
