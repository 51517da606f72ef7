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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// A job's id, unique within one jobtracker run.
pub type JobId = u64;

/// The most tasks (maps plus reduces) one job may have. A submission beyond it fails at once,
/// because the scheduler keeps per-task state in memory and must not be made to allocate without
/// bound by one request.
pub const MAX_TASKS_PER_JOB: u64 = 1 << 20;

/// Whether a task maps or reduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TaskKind {
    /// Reads one input split and writes partitioned, sorted output.
    Map,
    /// Fetches one partition of every map's output and writes one output file.
    Reduce,
}

impl TaskKind {
    /// The letter in task and attempt names, as in Hadoop's.
    fn letter(self) -> char {
        match self {
            TaskKind::Map => 'm',
            TaskKind::Reduce => 'r',
        }
    }
}

/// One task of a job: map `index` reads split `index`, reduce `index` writes partition `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskId {
    /// The job the task belongs to.
    pub job: JobId,
    /// Map or reduce.
    pub kind: TaskKind,
    /// The split (maps) or partition (reduces) number, from 0.
    pub index: u32,
}

impl fmt::Display for TaskId {
    /// `task_0007_m_000003`, Hadoop's layout, so that logs and directory names read alike.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind.letter();
        write!(f, "task_{:04}_{kind}_{:06}", self.job, self.index)
    }
}

/// One try at running a task. Attempts of a task are numbered from 0 in launch order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AttemptId {
    /// The task this attempt runs.
    pub task: TaskId,
    /// Its number among the task's attempts.
    pub attempt: u32,
}

impl fmt::Display for AttemptId {
    /// `attempt_0007_m_000003_0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.task;
        let kind = t.kind.letter();
        write!(
            f,
            "attempt_{:04}_{kind}_{:06}_{}",
            t.job, t.index, self.attempt
        )
    }
}

/// How close a map attempt runs to a replica of its input split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Locality {
    /// The worker holds a replica: the split is read from local disk.
    DataLocal,
    /// A replica is on the worker's rack.
    RackLocal,
    /// Anywhere else, and every reduce and every map without hosts.
    Other,
}

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
    fn max_attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }

    fn fetch_failures_to_rerun(&self) -> usize {
        usize::try_from(self.fetch_failures_to_rerun.max(1)).unwrap_or(usize::MAX)
    }

    fn reduce_slowstart(&self) -> f64 {
        // NaN would make every comparison false and no reduce would ever start.
        if self.reduce_slowstart.is_nan() {
            return 1.0;
        }
        self.reduce_slowstart.clamp(0.0, 1.0)
    }
}

/// What the jobtracker tells the scheduler; time arrives as the `now_ms` argument of
/// [`Scheduler::step`].
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A new job: for each map task, the hosts holding a replica of its split (may be empty,
    /// e.g. generated input); the number of reduce tasks (0 = map-only job).
    SubmitJob {
        /// Its id; a second submission with the same id is ignored.
        job: JobId,
        /// Per map task, the hosts holding a replica of its split.
        map_hosts: Vec<Vec<String>>,
        /// The number of reduce tasks.
        reduces: u32,
        /// The number of every task's first attempt. A job resumed by a restarted jobtracker
        /// starts above every number an earlier run may have used (see
        /// [`crate::job_store::first_attempt`]), so that an attempt still running from before
        /// the restart is never taken for one of the new run's.
        first_attempt: u32,
    },
    /// A worker is alive. The first heartbeat (or the first after it was lost) registers it.
    Heartbeat {
        /// Its host name, as in `map_hosts`.
        worker: String,
        /// Its rack.
        rack: String,
        /// How many attempts it runs at once.
        slots: u32,
        /// The attempts its children are running, with their progress (0.0..=1.0).
        running: Vec<(AttemptId, f32)>,
    },
    /// An attempt's process exited successfully. For a map of a job with reduces, its output now
    /// lives on the worker that ran it; for a reduce or a map-only task, its files wait in its
    /// temporary directory for a commit.
    AttemptSucceeded {
        /// The attempt.
        attempt: AttemptId,
    },
    /// An attempt failed (process exit status, panic, error).
    AttemptFailed {
        /// The attempt.
        attempt: AttemptId,
        /// One line saying why.
        reason: String,
    },
    /// The jobtracker finished moving a committing attempt's files into the output directory.
    CommitFinished {
        /// The attempt named by the `Commit`.
        attempt: AttemptId,
    },
    /// Moving the files failed; the attempt counts as failed and the task runs again.
    CommitFailed {
        /// The attempt named by the `Commit`.
        attempt: AttemptId,
        /// One line saying why.
        reason: String,
    },
    /// Reduce attempt `reduce` could not fetch the output of map attempt `map`.
    FetchFailure {
        /// The reporting reduce attempt.
        reduce: AttemptId,
        /// The map attempt whose output could not be fetched.
        map: AttemptId,
    },
    /// Time passed (the jobtracker sends this every ~100 ms): check timeouts, lost workers,
    /// locality delays, stragglers.
    Tick,
    /// The user killed the job.
    KillJob {
        /// The job.
        job: JobId,
    },
}

/// What the scheduler asks the jobtracker to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Run `attempt` on `worker`.
    Launch {
        /// The worker's host name.
        worker: String,
        /// The new attempt.
        attempt: AttemptId,
        /// For maps, how close the worker is to the split's data; reduces use
        /// [`Locality::Other`].
        locality: Locality,
    },
    /// Stop `attempt` on `worker` (a lost speculative race, a killed or failed job, a timed-out
    /// attempt, an attempt a returning lost worker still runs).
    Kill {
        /// The worker's host name.
        worker: String,
        /// The attempt to stop.
        attempt: AttemptId,
    },
    /// Move this attempt's files into the output. Emitted at most once per task at a time, and
    /// never again once a task has committed (G6).
    Commit {
        /// The attempt whose files to move.
        attempt: AttemptId,
    },
    /// `attempt` is its task's one accepted attempt: count its counters. For a map that re-runs
    /// after its accepted output was lost, a later `Accept` for the same task replaces the
    /// earlier one.
    Accept {
        /// The accepted attempt.
        attempt: AttemptId,
    },
    /// Every task of the job is done (all committed, or all maps accepted and all reduces
    /// committed): write `_SUCCESS`. Emitted once per job.
    JobSucceeded {
        /// The job.
        job: JobId,
    },
    /// The job failed (a task failed `max_attempts` times: the reason names the task and its
    /// last error) or was killed (reason "killed by user"). Its running attempts were killed by
    /// `Kill` actions in the same batch.
    JobFailed {
        /// The job.
        job: JobId,
        /// One line saying why.
        reason: String,
    },
}

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
enum Phase {
    /// Its process runs on its worker and holds one of the worker's slots.
    Running,
    /// Its process exited successfully; the jobtracker is moving its files into the output.
    Committing,
}

/// An attempt that is allowed to run or is being committed.
#[derive(Debug, Clone)]
struct LiveAttempt {
    worker: String,
    phase: Phase,
    locality: Locality,
    launched_ms: u64,
    progress: f32,
    progress_changed_ms: u64,
}

/// A registered worker.
#[derive(Debug)]
struct Worker {
    rack: String,
    slots: u32,
    last_heartbeat_ms: u64,
    /// The attempts placed here in phase `Running`: each holds a slot.
    running: BTreeSet<AttemptId>,
}

impl Worker {
    fn free_slots(&self) -> u32 {
        let used = u32::try_from(self.running.len()).unwrap_or(u32::MAX);
        self.slots.saturating_sub(used)
    }
}

/// The attempt whose result counts for a task.
#[derive(Debug, Clone)]
struct Accepted {
    attempt: AttemptId,
    /// Where it ran: for a map of a job with reduces, where its output lives.
    worker: String,
    locality: Locality,
}

/// One task's scheduling state.
#[derive(Debug, Default)]
struct Task {
    /// Hosts holding a replica of the split (maps only).
    hosts: Vec<String>,
    next_attempt: u32,
    failures: u32,
    /// The worker the last failed attempt ran on, avoided by the next placement when possible.
    last_failed_on: Option<String>,
    /// Attempts in phase `Running`: one, or two while a backup races the original.
    running: BTreeSet<AttemptId>,
    committing: Option<AttemptId>,
    /// The latest accepted attempt; kept after a map's output is lost, for the locality counts
    /// and because it still counts once every reduce has committed.
    accepted: Option<Accepted>,
    /// Accepted, and for a map of a job with reduces its output is still available.
    done: bool,
    /// Distinct reduce attempts that could not fetch the accepted attempt's output.
    fetch_failures: BTreeSet<AttemptId>,
}

impl Task {
    fn new(hosts: Vec<String>, first_attempt: u32) -> Task {
        Task {
            hosts,
            next_attempt: first_attempt,
            ..Task::default()
        }
    }

    fn is_pending(&self) -> bool {
        !self.done && self.running.is_empty() && self.committing.is_none()
    }

    /// Whether a placement on `worker` should wait for another worker: the task just failed
    /// there, and a retry on the same host would likely fail the same way.
    fn avoids(&self, worker: &str, others_free: bool) -> bool {
        others_free && self.last_failed_on.as_deref() == Some(worker)
    }
}

/// Total and count of succeeded attempt durations, for the straggler threshold.
#[derive(Debug, Default, Clone, Copy)]
struct Durations {
    total_ms: u64,
    count: u64,
}

impl Durations {
    fn record(&mut self, duration_ms: u64) {
        self.total_ms = self.total_ms.saturating_add(duration_ms);
        self.count += 1;
    }

    fn mean_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.total_ms as f64 / self.count as f64)
    }
}

/// What a `SubmitJob` event describes.
struct JobShape {
    map_hosts: Vec<Vec<String>>,
    reduces: u32,
    first_attempt: u32,
}

/// One job's tasks and statistics.
#[derive(Debug)]
struct Job {
    maps: Vec<Task>,
    reduces: Vec<Task>,
    pending_maps: BTreeSet<u32>,
    pending_reduces: BTreeSet<u32>,
    /// Maps that have an accepted attempt, whether or not its output is still available.
    maps_ever_accepted: u32,
    /// When the locality delay started: submit, or the last node-local launch.
    locality_wait_from_ms: u64,
    /// Since when maps have been pending with every reachable slot taken and no map launched
    /// (see `preempt_reduces`); `None` while that is not the case.
    maps_starved_since_ms: Option<u64>,
    map_durations: Durations,
    reduce_durations: Durations,
    /// State and counters; the running counts and locality counts are filled in on query.
    status: JobStatus,
}

impl Job {
    fn new(shape: JobShape, now_ms: u64) -> Job {
        let JobShape {
            map_hosts,
            reduces,
            first_attempt,
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
        }
    }

    /// A job refused at submission: it exists only to report why.
    fn refused(reason: String) -> Job {
        let empty = JobShape {
            map_hosts: Vec::new(),
            reduces: 0,
            first_attempt: 0,
        };
        let mut job = Job::new(empty, 0);
        job.status.state = JobState::Failed(reason);
        job
    }

    fn is_running(&self) -> bool {
        self.status.state == JobState::Running
    }

    fn tasks(&self, kind: TaskKind) -> &[Task] {
        match kind {
            TaskKind::Map => &self.maps,
            TaskKind::Reduce => &self.reduces,
        }
    }

    fn task(&self, id: TaskId) -> Option<&Task> {
        self.tasks(id.kind).get(usize::try_from(id.index).ok()?)
    }

    fn task_mut(&mut self, id: TaskId) -> Option<&mut Task> {
        let tasks = match id.kind {
            TaskKind::Map => &mut self.maps,
            TaskKind::Reduce => &mut self.reduces,
        };
        tasks.get_mut(usize::try_from(id.index).ok()?)
    }

    fn pending(&self, kind: TaskKind) -> &BTreeSet<u32> {
        match kind {
            TaskKind::Map => &self.pending_maps,
            TaskKind::Reduce => &self.pending_reduces,
        }
    }

    /// Brings the pending set in line with the task's state; called after every change to it.
    fn sync_pending(&mut self, id: TaskId) {
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
    fn set_done(&mut self, id: TaskId, done: bool) {
        let Some(task) = self.task_mut(id) else {
            return;
        };
        if task.done == done {
            return;
        }
        task.done = done;
        let count = match id.kind {
            TaskKind::Map => &mut self.status.maps_done,
            TaskKind::Reduce => &mut self.status.reduces_done,
        };
        if done {
            *count += 1;
        } else {
            *count -= 1;
        }
        self.sync_pending(id);
    }

    /// Records `accepted` as the task's accepted attempt and marks the task done.
    fn accept(&mut self, id: TaskId, accepted: Accepted) {
        let Some(task) = self.task_mut(id) else {
            return;
        };
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
    fn commits(&self, kind: TaskKind) -> bool {
        kind == TaskKind::Reduce || self.reduces.is_empty()
    }

    fn reduces_unfinished(&self) -> bool {
        self.status.reduces_done < self.status.reduces_total
    }

    fn reduces_may_start(&self, slowstart: f64) -> bool {
        let total = f64::from(self.status.maps_total);
        // The tolerance absorbs rounding: 0.7 * 10.0 is 7.000000000000001, and 7 of 10 maps
        // must be enough.
        f64::from(self.status.maps_done) >= slowstart * total - 1e-9
    }

    /// Every reduce committed and every map accepted at least once. A map whose output was lost
    /// after every reduce had fetched it needs no re-run.
    fn is_complete(&self) -> bool {
        self.maps_ever_accepted == self.status.maps_total && !self.reduces_unfinished()
    }

    fn durations_mut(&mut self, kind: TaskKind) -> &mut Durations {
        match kind {
            TaskKind::Map => &mut self.map_durations,
            TaskKind::Reduce => &mut self.reduce_durations,
        }
    }

    fn durations(&self, kind: TaskKind) -> Durations {
        match kind {
            TaskKind::Map => self.map_durations,
            TaskKind::Reduce => self.reduce_durations,
        }
    }

    fn stop_scheduling(&mut self, state: JobState) {
        self.status.state = state;
        self.pending_maps.clear();
        self.pending_reduces.clear();
    }
}

/// A placement chosen for a free slot.
#[derive(Debug, Clone, Copy)]
struct Pick {
    task: TaskId,
    locality: Locality,
    speculative: bool,
}

/// The two kinds of assignment pass; backups only get the slots regular work left free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Regular,
    Speculative,
}

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
        }
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
            } => {
                let shape = JobShape {
                    map_hosts,
                    reduces,
                    first_attempt,
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

    /// Forgets a finished job (after the jobtracker cleaned up). Attempts of it that still run
    /// are forgotten too; a worker that later lists one gets a `Kill`.
    pub fn remove_job(&mut self, job: JobId) {
        for attempt in self.live_attempts(job, None) {
            self.end_attempt(attempt);
        }
        self.jobs.remove(&job);
    }
}

/// Event handlers.
impl Scheduler {
    fn on_submit(&mut self, now_ms: u64, id: JobId, shape: JobShape, actions: &mut Vec<Action>) {
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

    fn on_heartbeat(
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

    fn on_succeeded(&mut self, now_ms: u64, attempt: AttemptId, actions: &mut Vec<Action>) {
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

    fn on_failed(&mut self, attempt: AttemptId, reason: &str, actions: &mut Vec<Action>) {
        // A committing attempt's process already exited successfully; only its commit can fail.
        if self.phase(attempt) == Some(Phase::Running) {
            self.fail_attempt(attempt, reason, actions);
        }
    }

    fn on_commit_finished(&mut self, attempt: AttemptId, actions: &mut Vec<Action>) {
        if self.phase(attempt) != Some(Phase::Committing) {
            return;
        }
        self.accept(attempt, actions);
    }

    fn on_commit_failed(&mut self, attempt: AttemptId, reason: &str, actions: &mut Vec<Action>) {
        if self.phase(attempt) == Some(Phase::Committing) {
            self.fail_attempt(attempt, reason, actions);
        }
    }

    fn on_fetch_failure(&mut self, reduce: AttemptId, map: AttemptId) {
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
            self.lose_map_output(map.task);
        }
    }

    fn on_tick(&mut self, now_ms: u64, actions: &mut Vec<Action>) {
        // Lost workers first: their attempts are killed, not failed by a timeout.
        self.lose_silent_workers(now_ms, actions);
        self.time_out_stalled_attempts(now_ms, actions);
        self.preempt_reduces(now_ms, actions);
    }

    /// Reduces wait for every map's output while holding their slots. When a job's maps
    /// (re-runs after a lost worker, or maps not yet started) have been pending for a while
    /// with no reachable slot free and no map of the job launched meanwhile, its most
    /// recently launched running reduce is killed to make room; otherwise the reduces and the
    /// maps they wait for would deadlock. Maps that keep getting slots as others finish are
    /// not starved, so a busy map phase does not preempt. The kill does not count as a
    /// failure; the reduce runs again later.
    fn preempt_reduces(&mut self, now_ms: u64, actions: &mut Vec<Action>) {
        let any_free = self
            .workers
            .values()
            .any(|w| self.is_reachable(w, now_ms) && w.free_slots() > 0);
        let grace_ms = (2 * self.config.locality_delay_ms).max(1_000);
        let ids: Vec<JobId> = self.jobs.keys().copied().collect();
        for id in ids {
            let running_reduces: Vec<(u64, AttemptId)> = self
                .live_attempts(id, Some(TaskKind::Reduce))
                .into_iter()
                .filter_map(|a| {
                    let l = self.live.get(&a)?;
                    (l.phase == Phase::Running).then_some((l.launched_ms, a))
                })
                .collect();
            let Some(job) = self.jobs.get_mut(&id) else {
                continue;
            };
            let starved = job.is_running()
                && !job.pending_maps.is_empty()
                && !any_free
                && !running_reduces.is_empty();
            if !starved {
                job.maps_starved_since_ms = None;
                continue;
            }
            let since = *job.maps_starved_since_ms.get_or_insert(now_ms);
            if now_ms.saturating_sub(since) < grace_ms {
                continue;
            }
            // Wait a full grace period again before the next preemption.
            job.maps_starved_since_ms = Some(now_ms);
            let victim = running_reduces.iter().max().map(|(_, a)| *a);
            if let Some(victim) = victim {
                self.kill_attempt(victim, true, actions);
            }
            return;
        }
    }

    fn on_kill_job(&mut self, job: JobId, actions: &mut Vec<Action>) {
        if self.jobs.get(&job).is_some_and(Job::is_running) {
            self.fail_job(job, "killed by user".to_string(), actions);
        }
    }
}

/// Heartbeats, lost workers and timeouts.
impl Scheduler {
    /// Records a heartbeat; returns the time of the worker's previous one, or `None` when this
    /// one registers it.
    fn register(&mut self, now_ms: u64, name: &str, rack: String, slots: u32) -> Option<u64> {
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

    fn lose_silent_workers(&mut self, now_ms: u64, actions: &mut Vec<Action>) {
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
        for attempt in worker.running {
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
            self.lose_map_output(task);
        }
    }

    fn time_out_stalled_attempts(&mut self, now_ms: u64, actions: &mut Vec<Action>) {
        let timeout_ms = self.config.task_timeout_ms;
        let stalled: Vec<AttemptId> = self
            .live
            .iter()
            .filter(|(_, l)| l.phase == Phase::Running)
            .filter(|(_, l)| now_ms.saturating_sub(l.progress_changed_ms) >= timeout_ms)
            .map(|(a, _)| *a)
            .collect();
        let reason = format!("timed out after {timeout_ms} ms without progress");
        for attempt in stalled {
            // An earlier timeout may have failed the whole job, taking this attempt with it.
            let Some(live) = self.live.get(&attempt) else {
                continue;
            };
            let worker = live.worker.clone();
            actions.push(Action::Kill { worker, attempt });
            self.fail_attempt(attempt, &reason, actions);
        }
    }
}

/// Attempt and job life cycle.
impl Scheduler {
    fn phase(&self, attempt: AttemptId) -> Option<Phase> {
        self.live.get(&attempt).map(|l| l.phase)
    }

    fn is_accepted(&self, attempt: AttemptId) -> bool {
        let job = self.jobs.get(&attempt.task.job);
        let task = job.and_then(|j| j.task(attempt.task));
        let accepted = task.and_then(|t| t.accepted.as_ref());
        accepted.is_some_and(|a| a.attempt == attempt)
    }

    /// The job's live attempts, of one kind or both, in order.
    fn live_attempts(&self, job: JobId, kind: Option<TaskKind>) -> Vec<AttemptId> {
        let bound = |kind: TaskKind, index: u32, attempt: u32| AttemptId {
            task: TaskId { job, kind, index },
            attempt,
        };
        let lo = bound(kind.unwrap_or(TaskKind::Map), 0, 0);
        let hi = bound(kind.unwrap_or(TaskKind::Reduce), u32::MAX, u32::MAX);
        self.live.range(lo..=hi).map(|(a, _)| *a).collect()
    }

    /// Reports from this many distinct reduce attempts declare a map output lost. Never more
    /// than the job's live reduce attempts, or a job with a single reduce could never get a
    /// lost output re-run.
    fn fetch_failure_threshold(&self, job: JobId) -> usize {
        let reducers = self.live_attempts(job, Some(TaskKind::Reduce)).len();
        self.config.fetch_failures_to_rerun().min(reducers.max(1))
    }

    /// Removes a live attempt from every index, and returns the task to pending if nothing else
    /// runs it. The caller decides what the ending means (kill, failure, acceptance).
    fn end_attempt(&mut self, attempt: AttemptId) -> Option<LiveAttempt> {
        let live = self.live.remove(&attempt)?;
        if let Some(worker) = self.workers.get_mut(&live.worker) {
            worker.running.remove(&attempt);
        }
        if let Some(job) = self.jobs.get_mut(&attempt.task.job) {
            if let Some(task) = job.task_mut(attempt.task) {
                task.running.remove(&attempt);
                if task.committing == Some(attempt) {
                    task.committing = None;
                }
            }
            job.sync_pending(attempt.task);
        }
        Some(live)
    }

    /// Kills a live attempt. `notify` sends the worker a `Kill`; a lost worker gets none. A
    /// committing attempt's process has exited already: it is only forgotten.
    fn kill_attempt(&mut self, attempt: AttemptId, notify: bool, actions: &mut Vec<Action>) {
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

    /// Counts a failure against the attempt's task; fails the job at `max_attempts`.
    fn fail_attempt(&mut self, attempt: AttemptId, reason: &str, actions: &mut Vec<Action>) {
        let Some(live) = self.end_attempt(attempt) else {
            return;
        };
        let max_attempts = self.config.max_attempts();
        let Some(job) = self.jobs.get_mut(&attempt.task.job) else {
            return;
        };
        match attempt.task.kind {
            TaskKind::Map => job.status.failed_maps += 1,
            TaskKind::Reduce => job.status.failed_reduces += 1,
        }
        let Some(task) = job.task_mut(attempt.task) else {
            return;
        };
        task.failures += 1;
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

    fn fail_job(&mut self, id: JobId, reason: String, actions: &mut Vec<Action>) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        // Stop scheduling first, so the kills below do not make tasks pending again.
        job.stop_scheduling(JobState::Failed(reason.clone()));
        for attempt in self.live_attempts(id, None) {
            self.kill_attempt(attempt, true, actions);
        }
        actions.push(Action::JobFailed { job: id, reason });
    }

    fn finish_job_if_complete(&mut self, id: JobId, actions: &mut Vec<Action>) {
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
        actions.push(Action::JobSucceeded { job: id });
    }

    /// First live success of a reduce or map-only task: its files may be committed, and only
    /// its (G6).
    fn start_commit(&mut self, attempt: AttemptId, actions: &mut Vec<Action>) {
        let Some(live) = self.live.get_mut(&attempt) else {
            return;
        };
        live.phase = Phase::Committing;
        if let Some(worker) = self.workers.get_mut(&live.worker) {
            worker.running.remove(&attempt);
        }
        let Some(job) = self.jobs.get_mut(&attempt.task.job) else {
            return;
        };
        if let Some(task) = job.task_mut(attempt.task) {
            task.running.remove(&attempt);
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

    /// The map's accepted output is gone: run the map again while a reduce still needs it.
    fn lose_map_output(&mut self, task: TaskId) {
        let Some(job) = self.jobs.get_mut(&task.job) else {
            return;
        };
        if !job.is_running() || !job.reduces_unfinished() {
            return;
        }
        if !job.task(task).is_some_and(|t| t.done) {
            return;
        }
        if let Some(t) = job.task_mut(task) {
            t.fetch_failures.clear();
        }
        // The attempt that produced the output counts as killed, as Hadoop counts it.
        job.status.rerun_maps += 1;
        job.status.killed_attempts += 1;
        job.set_done(task, false);
    }
}

/// Assignment of free slots.
impl Scheduler {
    fn assign(&mut self, now_ms: u64, actions: &mut Vec<Action>) {
        self.assign_pass(now_ms, Pass::Regular, actions);
        if self.config.speculative {
            self.assign_pass(now_ms, Pass::Speculative, actions);
        }
    }

    /// Fills free slots one per worker per round, so that a burst of tasks spreads over the
    /// cluster instead of filling the first worker by name.
    fn assign_pass(&mut self, now_ms: u64, pass: Pass, actions: &mut Vec<Action>) {
        let mut candidates: Vec<String> = self
            .workers
            .iter()
            .filter(|(_, w)| self.is_reachable(w, now_ms) && w.free_slots() > 0)
            .map(|(name, _)| name.clone())
            .collect();
        while !candidates.is_empty() {
            let mut again = Vec::new();
            for name in candidates {
                let pick = match pass {
                    Pass::Regular => self.pick_regular(&name, now_ms),
                    Pass::Speculative => self.pick_backup(&name, now_ms),
                };
                // A worker nothing fits leaves the rotation: later rounds only take work away.
                let Some(pick) = pick else {
                    continue;
                };
                self.launch(&name, pick, now_ms, actions);
                if self.workers.get(&name).is_some_and(|w| w.free_slots() > 0) {
                    again.push(name);
                }
            }
            candidates = again;
        }
    }

    /// A worker whose heartbeats stopped is not given work even before a tick declares it lost.
    fn is_reachable(&self, worker: &Worker, now_ms: u64) -> bool {
        now_ms.saturating_sub(worker.last_heartbeat_ms) < self.config.worker_timeout_ms
    }

    /// Whether a reachable worker other than `name` has a free slot.
    fn others_free(&self, name: &str, now_ms: u64) -> bool {
        self.workers
            .iter()
            .any(|(n, w)| n != name && w.free_slots() > 0 && self.is_reachable(w, now_ms))
    }

    /// The first job (by id) with a map, else a reduce, for this worker.
    fn pick_regular(&self, name: &str, now_ms: u64) -> Option<Pick> {
        let rack = &self.workers.get(name)?.rack;
        let others_free = self.others_free(name, now_ms);
        let slowstart = self.config.reduce_slowstart();
        for (&id, job) in self.jobs.iter().filter(|(_, j)| j.is_running()) {
            if let Some((index, locality)) = self.pick_map(job, name, rack, now_ms, others_free) {
                let task = map_task(id, index);
                return Some(Pick {
                    task,
                    locality,
                    speculative: false,
                });
            }
            if !job.reduces_may_start(slowstart) {
                continue;
            }
            let reduce = job.pending_reduces.iter().copied().find(|&i| {
                let task = &job.reduces[i as usize];
                !task.avoids(name, others_free)
            });
            if let Some(index) = reduce {
                let task = TaskId {
                    job: id,
                    kind: TaskKind::Reduce,
                    index,
                };
                return Some(Pick {
                    task,
                    locality: Locality::Other,
                    speculative: false,
                });
            }
        }
        None
    }

    /// Delay scheduling: node-local at once; rack-local after the locality delay; maps without
    /// hosts at once; anything after twice the delay.
    fn pick_map(
        &self,
        job: &Job,
        name: &str,
        rack: &str,
        now_ms: u64,
        others_free: bool,
    ) -> Option<(u32, Locality)> {
        let (mut rack_local, mut hostless, mut other) = (None, None, None);
        for &index in &job.pending_maps {
            let task = &job.maps[index as usize];
            if task.avoids(name, others_free) {
                continue;
            }
            if task.hosts.is_empty() {
                hostless.get_or_insert(index);
                continue;
            }
            match self.locality(task, name, rack) {
                Locality::DataLocal => return Some((index, Locality::DataLocal)),
                Locality::RackLocal => rack_local.get_or_insert(index),
                Locality::Other => other.get_or_insert(index),
            };
        }
        let waited_ms = now_ms.saturating_sub(job.locality_wait_from_ms);
        let delay_ms = self.config.locality_delay_ms;
        if let Some(index) = rack_local.filter(|_| waited_ms >= delay_ms) {
            return Some((index, Locality::RackLocal));
        }
        if let Some(index) = hostless {
            return Some((index, Locality::Other));
        }
        other
            .filter(|_| waited_ms >= delay_ms.saturating_mul(2))
            .map(|index| (index, Locality::Other))
    }

    /// How close worker `name` on `rack` is to a replica of the map's split. A host never heard
    /// from has an unknown rack.
    fn locality(&self, task: &Task, name: &str, rack: &str) -> Locality {
        if task.hosts.iter().any(|h| h == name) {
            return Locality::DataLocal;
        }
        let same_rack = |h: &String| self.racks.get(h).is_some_and(|r| r == rack);
        if task.hosts.iter().any(same_rack) {
            return Locality::RackLocal;
        }
        Locality::Other
    }

    /// A backup for the job's worst straggler, on a worker other than the one running it.
    fn pick_backup(&self, name: &str, now_ms: u64) -> Option<Pick> {
        let rack = &self.workers.get(name)?.rack;
        for (&id, job) in self.jobs.iter().filter(|(_, j)| j.is_running()) {
            for kind in [TaskKind::Map, TaskKind::Reduce] {
                if let Some(task) = self.straggler(id, job, kind, name, now_ms) {
                    let locality = match kind {
                        TaskKind::Map => self.locality(&job.maps[task.index as usize], name, rack),
                        TaskKind::Reduce => Locality::Other,
                    };
                    return Some(Pick {
                        task,
                        locality,
                        speculative: true,
                    });
                }
            }
        }
        None
    }

    /// The task of `kind` whose only attempt has run longest, if it runs on another worker than
    /// `name` and is slow enough against the job's succeeded tasks of that kind.
    fn straggler(
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

    fn launch(&mut self, name: &str, pick: Pick, now_ms: u64, actions: &mut Vec<Action>) {
        let Some(job) = self.jobs.get_mut(&pick.task.job) else {
            return;
        };
        let Some(task) = job.task_mut(pick.task) else {
            return;
        };
        let attempt = AttemptId {
            task: pick.task,
            attempt: task.next_attempt,
        };
        task.next_attempt = task.next_attempt.saturating_add(1);
        task.running.insert(attempt);
        task.last_failed_on = None;
        job.sync_pending(pick.task);
        if pick.task.kind == TaskKind::Map {
            // Maps are getting slots: they are not starved (see `preempt_reduces`).
            job.maps_starved_since_ms = None;
        }
        count_launch(job, pick, now_ms);
        if let Some(worker) = self.workers.get_mut(name) {
            worker.running.insert(attempt);
        }
        let live = LiveAttempt {
            worker: name.to_string(),
            phase: Phase::Running,
            locality: pick.locality,
            launched_ms: now_ms,
            progress: 0.0,
            progress_changed_ms: now_ms,
        };
        self.live.insert(attempt, live);
        actions.push(Action::Launch {
            worker: name.to_string(),
            attempt,
            locality: pick.locality,
        });
    }
}

fn count_launch(job: &mut Job, pick: Pick, now_ms: u64) {
    let status = &mut job.status;
    match pick.task.kind {
        TaskKind::Map => status.launched_maps += 1,
        TaskKind::Reduce => status.launched_reduces += 1,
    }
    if pick.speculative {
        status.speculative_attempts += 1;
    }
    status.first_launch_ms.get_or_insert(now_ms);
    // The locality delay counts from the last node-local launch: a job that keeps getting
    // local slots keeps waiting for them.
    if pick.locality == Locality::DataLocal {
        job.locality_wait_from_ms = now_ms;
    }
}

fn map_task(job: JobId, index: u32) -> TaskId {
    TaskId {
        job,
        kind: TaskKind::Map,
        index,
    }
}

fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
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
        let event = Event::SubmitJob {
            job,
            map_hosts,
            reduces,
            first_attempt: 0,
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

    fn launch(
        worker: &str,
        attempt: AttemptId,
        locality: Locality,
    ) -> (String, AttemptId, Locality) {
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
        let config = SchedulerConfig {
            reduce_slowstart: 1.0,
            ..SchedulerConfig::default()
        };
        let mut s = Scheduler::new(config);
        heartbeat(&mut s, 0, "a", "r1", 2, &[]);
        heartbeat(&mut s, 0, "b", "r1", 2, &[]);
        let launched = launches(&submit(&mut s, 0, J, hostless(3), reduces));
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

    fn fetch_failure(
        s: &mut Scheduler,
        now_ms: u64,
        reduce: AttemptId,
        map: AttemptId,
    ) -> Vec<Action> {
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
            let event = Event::SubmitJob {
                job,
                map_hosts,
                reduces,
                first_attempt: 0,
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
            let workers: BTreeSet<&String> =
                task.running.iter().map(|a| &s.live[a].worker).collect();
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
}
