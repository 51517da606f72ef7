//! The jobtracker's scheduling state machine: which attempt of which task runs on which worker,
//! when it is retried, and which attempt's output is the one that counts.
//!
//! The scheduler is pure, as raft-rs is: [`Scheduler::step`] takes the time and one [`Event`]
//! and returns the [`Action`]s the jobtracker must carry out. No I/O, no clock, no threads, no
//! randomness; maps are `BTreeMap`s so that the same events always give the same actions, and
//! every rule below is unit-tested without sockets or sleeps.
//!
//! # Rules
//!
//! - **Assignment** runs at the end of every step over every live worker with a free slot, one
//!   slot per worker per round so that work spreads. Jobs are served first-in first-out by id.
//! - **Locality** (delay scheduling): a map goes to a worker holding a replica of its split;
//!   after `locality_delay_ms` without a node-local launch it may go to the same rack, after
//!   twice that anywhere. Maps without hosts (generated input) run anywhere at once.
//! - **Reduces** start once `reduce_slowstart` of the job's maps have succeeded, and only on a
//!   slot no map of the job wants.
//! - **Failures** (exit, timeout, lost by worker, failed commit) send the task back to pending,
//!   preferably on another worker; `max_attempts` failures of one task fail the job.
//! - **Lost workers** take their running attempts and the map outputs they hold with them; the
//!   maps re-run while a reduce of the job still needs their output.
//! - **G6**: a task has at most one committing attempt and commits once. Only a live attempt's
//!   success counts; every other attempt of the task is killed and its later reports ignored.
//!
//! # Layout
//!
//! - `ids`: job, task and attempt ids and their Hadoop-style names.
//! - `events`: the [`Event`]s the scheduler takes and the [`Action`]s it returns.
//! - `config`: the tunables ([`SchedulerConfig`]).
//! - `table`: jobs, tasks, live attempts and workers, and an attempt's life (commit,
//!   acceptance, kill).
//! - `assignment`: free slots, locality, reduce slow-start and preemption.
//! - `failure`: retries, timeouts, lost workers, fetch failures, stragglers, failed jobs.
//!
//! The rooms depend one way: `failure` and `assignment` use `table`; `assignment` asks
//! `failure` for stragglers; this module dispatches each event to its room.

use std::collections::BTreeMap;

use crate::diagnosis::JobEvent;

mod assignment;
mod config;
mod events;
mod failure;
mod ids;
mod table;
#[cfg(test)]
mod tests;

pub use config::{SchedulerConfig, TaskPolicy};
pub use events::{Action, Event, Locality, KILLED_BY_USER};
pub use ids::{AttemptId, JobId, TaskId, TaskKind};
pub use table::{JobState, JobStatus, MAX_TASKS_PER_JOB};

use table::{Job, JobShape, LiveAttempt, Task, Worker};

/// The job-scheduling state machine. See the module documentation for its rules.
#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    jobs: BTreeMap<JobId, Job>,
    workers: BTreeMap<String, Worker>,
    /// Every host's rack, as last heard in its heartbeat; kept after a worker is lost so that
    /// rack locality still knows where its replicas are.
    racks: BTreeMap<String, String>,
    /// Attempts running or committing. Everything else is not live: its reports are refused.
    live: BTreeMap<AttemptId, LiveAttempt>,
    /// What the decisions of the steps so far noted for `mrjob why`, until taken.
    notes: Vec<(JobId, JobEvent)>,
}

impl Scheduler {
    /// A scheduler with no jobs and no workers.
    pub fn new(config: SchedulerConfig) -> Scheduler {
        Scheduler {
            config,
            jobs: BTreeMap::new(),
            workers: BTreeMap::new(),
            racks: BTreeMap::new(),
            live: BTreeMap::new(),
            notes: Vec::new(),
        }
    }

    /// The events noted since the last call, per job, in the order they happened: failed
    /// attempts, lost workers, maps re-run after fetch failures, backups launched. They are
    /// not actions (nothing must be done about them); the jobtracker keeps them with the job.
    pub fn take_notes(&mut self) -> Vec<(JobId, JobEvent)> {
        std::mem::take(&mut self.notes)
    }

    /// Applies one event at time `now_ms`, then assigns free slots, and returns what the
    /// jobtracker must do, in order. Events about unknown jobs or attempts are ignored.
    pub fn step(&mut self, now_ms: u64, event: Event) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            Event::SubmitJob {
                job,
                map_hosts,
                reduces,
                first_attempt,
                policy,
            } => {
                let shape = JobShape {
                    map_hosts,
                    reduces,
                    first_attempt,
                    policy,
                };
                self.on_submit(now_ms, job, shape, &mut actions)
            }
            Event::Heartbeat {
                worker,
                rack,
                slots,
                running,
            } => self.on_heartbeat(now_ms, worker, rack, slots, running, &mut actions),
            Event::AttemptSucceeded { attempt } => self.on_succeeded(now_ms, attempt, &mut actions),
            Event::AttemptFailed { attempt, reason } => {
                self.on_failed(attempt, &reason, &mut actions)
            }
            Event::CommitFinished { attempt } => self.on_commit_finished(attempt, &mut actions),
            Event::CommitFailed { attempt, reason } => {
                self.on_commit_failed(attempt, &reason, &mut actions)
            }
            Event::FetchFailure { reduce, map } => self.on_fetch_failure(reduce, map),
            Event::Tick => self.on_tick(now_ms, &mut actions),
            Event::KillJob { job } => self.on_kill_job(job, &mut actions),
        }
        // Every step, not only heartbeats: a job submitted to idle workers starts at once.
        self.assign(now_ms, &mut actions);
        actions
    }

    /// For reducers: per map index, the accepted attempt and the worker holding its output
    /// (`None` while not yet available or after it was declared lost). For a map-only job the
    /// worker is where the committed attempt ran.
    pub fn map_outputs(&self, job: JobId) -> Option<Vec<Option<(AttemptId, String)>>> {
        let job = self.jobs.get(&job)?;
        let outputs = job.maps.iter().map(|task| {
            let accepted = task.accepted.as_ref().filter(|_| task.done)?;
            Some((accepted.attempt, accepted.worker.clone()))
        });
        Some(outputs.collect())
    }

    /// Progress and statistics for status displays and counters.
    pub fn job_status(&self, job: JobId) -> Option<JobStatus> {
        let job = self.jobs.get(&job)?;
        let mut status = job.status.clone();
        let busy = |t: &&Task| !t.running.is_empty() || t.committing.is_some();
        status.maps_running = count_u32(job.maps.iter().filter(busy).count());
        status.reduces_running = count_u32(job.reduces.iter().filter(busy).count());
        for accepted in job.maps.iter().filter_map(|t| t.accepted.as_ref()) {
            match accepted.locality {
                Locality::DataLocal => status.data_local_maps += 1,
                Locality::RackLocal => status.rack_local_maps += 1,
                Locality::Other => status.other_local_maps += 1,
            }
        }
        Some(status)
    }

    /// Whether `attempt` is currently allowed to be running or committing (not killed, failed,
    /// timed out, superseded or finished). The jobtracker uses this to refuse work from stale
    /// attempts.
    pub fn is_live(&self, attempt: AttemptId) -> bool {
        self.live.contains_key(&attempt)
    }

    /// The worker a live attempt was launched on (`None` when it is not live). Reports about
    /// an attempt are taken only from that worker.
    pub fn worker_of(&self, attempt: AttemptId) -> Option<&str> {
        self.live.get(&attempt).map(|a| a.worker.as_str())
    }

    /// Forgets a finished job (after the jobtracker cleaned up). Attempts of it that still run
    /// are forgotten too; a worker that later lists one gets a `Kill`.
    pub fn remove_job(&mut self, job: JobId) {
        for attempt in self.live_attempts(job, None) {
            self.end_attempt(attempt);
        }
        self.jobs.remove(&job);
    }
}

/// Time passing.
impl Scheduler {
    fn on_tick(&mut self, now_ms: u64, actions: &mut Vec<Action>) {
        // Lost workers first: their attempts are killed, not failed by a timeout.
        self.lose_silent_workers(now_ms, actions);
        self.time_out_stalled_attempts(now_ms, actions);
        self.preempt_reduces(now_ms, actions);
    }
}

fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
