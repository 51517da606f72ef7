//! What the jobtracker tells the scheduler ([`Event`]) and what the scheduler asks of it
//! ([`Action`]): the whole interface of the pure state machine.

use serde::{Deserialize, Serialize};

use super::config::TaskPolicy;
use super::ids::{AttemptId, JobId};

/// The reason of a [`Action::JobFailed`] that a user's kill caused: the jobtracker shows such a
/// job as killed, not failed.
pub const KILLED_BY_USER: &str = "killed by user";

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

/// What the jobtracker tells the scheduler; time arrives as the `now_ms` argument of
/// [`Scheduler::step`](super::Scheduler::step).
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
        /// The job's own speculation, attempt and timeout settings.
        policy: TaskPolicy,
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
