//! What happened to a job, for `mrjob why` and `mrjob logs`: the typed events the jobtracker
//! records while a job runs ([`events`]), and the pure rule that turns them into a root cause
//! in a few lines ([`why`]).
//!
//! Nothing here guesses over log text: every line `mrjob why` prints comes from an event some
//! decision point recorded (the scheduler failing an attempt, losing a worker, re-running a
//! map after fetch failures, launching a backup; the jobtracker measuring attempts and reduce
//! partitions when the job ends).

pub mod events;
pub mod why;

pub use events::{
    AttemptEnd, AttemptRun, EventRecord, JobEvent, JobHistory, MAX_ATTEMPTS_KEPT, MAX_EVENTS_KEPT,
};
pub use why::{explain, skewed_partitions, slow_attempts};
