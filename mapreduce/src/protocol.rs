//! Messages between submitters, the jobtracker, workers, task processes and shuffle servers.
//!
//! Framing is dfs's ([`dfs::frame`]: a `u32` length checked against a limit before anything
//! is allocated, then a payload in the workspace's binary format, `dfs::frame::encode_msg`). Every request gets one response; errors carry a
//! kind the caller can act on and a one-line message.

use std::path::PathBuf;
use std::time::Duration;

use dfs::auth::Credentials;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};

use dfs::frame::{decode_msg, encode_msg, read_frame, write_frame};

use crate::counters::Counters;
use crate::diagnosis::JobHistory;
use crate::error::{Error, Result};
use crate::input::{InputFormat, Split};
use crate::job_conf::JobConf;
use crate::scheduler::{AttemptId, JobId, JobStatus};

/// Largest control message (a job spec with many splits stays far below).
pub const CONTROL_FRAME_LIMIT_BYTES: usize = 16 << 20;
/// Bytes of map output per shuffle data frame.
pub const SHUFFLE_CHUNK_BYTES: usize = 1 << 20;

/// The staged job binary every task process runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryRef {
    /// Where it is in dfs (`/mrjob/bin/<user>/<sha256>`: its user's staging directory).
    pub dfs_path: String,
    /// Hex SHA-256 of its bytes: the workers' cache key, checked after download.
    pub sha256: String,
}

/// A job as submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// How to rebuild the job in a task process.
    pub conf: JobConf,
    /// The binary that rebuilds it.
    pub binary: BinaryRef,
    /// Input paths in dfs.
    pub inputs: Vec<PathBuf>,
    /// Output directory in dfs (must not exist).
    pub output: String,
    /// How input is cut into splits.
    pub input_format: InputFormat,
    /// Reduce tasks (0: map-only).
    pub reduces: u32,
    /// Who submitted it (shown by `mrjob list`).
    pub user: String,
    /// A random token the submitter picks for this submission. A submit sent again after
    /// its answer was lost carries the same token and gets the job the first one created.
    pub submission: String,
}

/// What one task attempt does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskWork {
    /// Map split `split`.
    Map {
        /// The split.
        split: Split,
    },
    /// Reduce partition `attempt.task.index` over the outputs of `maps` maps.
    Reduce {
        /// Number of map tasks of the job.
        maps: u32,
    },
}

/// A task attempt to launch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Which attempt.
    pub attempt: AttemptId,
    /// The job.
    pub job: JobSpec,
    /// The work.
    pub work: TaskWork,
    /// dfs directory for the attempt's part file (reduces and map-only maps); it exists
    /// while the attempt may still commit.
    pub output_dir: String,
    /// The job's token: the attempt acts as the job's user, for this job only, with it.
    pub token: TaskToken,
}

/// A delegation token with its password, as the jobtracker hands it to an attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskToken {
    /// The token.
    pub token: dfs::auth::Token,
    /// Its password, as hex.
    pub password_hex: String,
}

impl TaskToken {
    /// The credentials an attempt presents.
    pub fn credentials(&self) -> Result<Credentials> {
        let password = dfs::auth::Key::from_hex(&self.password_hex)?;
        Ok(Credentials::token(self.token.clone(), password))
    }
}

/// How an attempt ended, as its worker saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AttemptOutcome {
    /// The process exited successfully with these counters.
    Succeeded {
        /// The attempt's counters.
        counters: Counters,
    },
    /// It failed; one line naming the cause.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Where a map's output can be fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapOutputLoc {
    /// The accepted map attempt.
    pub attempt: AttemptId,
    /// The worker host holding it.
    pub host: String,
    /// Its shuffle server.
    pub shuffle_addr: String,
}

/// A command in a heartbeat reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WorkerCommand {
    /// Start this attempt.
    Launch(Box<TaskSpec>),
    /// Stop this attempt (SIGKILL its process).
    Kill {
        /// The attempt.
        attempt: AttemptId,
    },
    /// The job ended: kill what is left of it and delete its local files.
    Cleanup {
        /// The job.
        job: JobId,
    },
}

/// A job's state as users see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobPhase {
    /// Tasks are running.
    Running,
    /// Committed: `_SUCCESS` is written.
    Succeeded,
    /// Failed; the output directory was removed.
    Failed(String),
    /// Killed by its user (`mrjob kill`); the output directory was removed.
    Killed,
}

impl JobPhase {
    /// The state's name as users see it: RUNNING, SUCCEEDED, FAILED, KILLED.
    pub fn name(&self) -> &'static str {
        match self {
            JobPhase::Running => "RUNNING",
            JobPhase::Succeeded => "SUCCEEDED",
            JobPhase::Failed(_) => "FAILED",
            JobPhase::Killed => "KILLED",
        }
    }

    /// Whether the job ended without output (failed or killed).
    pub fn is_unsuccessful_end(&self) -> bool {
        matches!(self, JobPhase::Failed(_) | JobPhase::Killed)
    }
}

/// A job's status, progress and counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInfo {
    /// Job id.
    pub id: JobId,
    /// Registered job name.
    pub name: String,
    /// Submitting user.
    pub user: String,
    /// Output directory.
    pub output: String,
    /// State.
    pub phase: JobPhase,
    /// Task progress and attempt statistics.
    pub status: JobStatus,
    /// Counters of the accepted attempts so far.
    pub counters: Counters,
    /// Milliseconds since submission (until the end, for finished jobs).
    pub elapsed_ms: u64,
    /// Milliseconds from submission to the scheduler's first launch decision.
    pub first_launch_ms: Option<u64>,
    /// When the job's first task process started (ms since the Unix epoch, worker clock).
    pub first_started_unix_ms: Option<u64>,
    /// When the jobtracker received the job (ms since the Unix epoch).
    pub submitted_unix_ms: u64,
    /// Input bytes over all splits.
    pub input_bytes: u64,
    /// Runs started: 1, plus one per resume by a restarted jobtracker.
    pub runs: u32,
}

/// A worker as the jobtracker sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Host name.
    pub host: String,
    /// Rack.
    pub rack: String,
    /// Task slots.
    pub slots: u32,
    /// Attempts running there.
    pub running: u32,
    /// Milliseconds since its last heartbeat.
    pub last_heartbeat_ms: u64,
    /// Heartbeating within the worker timeout.
    pub live: bool,
    /// The jobtracker's `cluster_id`, so that `cluster start` can tell its own jobtracker from
    /// another cluster's on the same address.
    pub cluster_id: String,
}

/// Requests to the jobtracker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr)]
pub enum JtRequest {
    /// Submit a job → `Submitted`.
    Submit(Box<JobSpec>),
    /// → `Job`.
    JobStatus {
        /// Job id.
        job: JobId,
    },
    /// → `Jobs`.
    ListJobs,
    /// → `Done` (the job ends as [`JobPhase::Killed`]).
    KillJob {
        /// Job id.
        job: JobId,
    },
    /// A worker's heartbeat → `Commands`. The reply waits up to `wait_ms` for a command.
    Heartbeat {
        /// Host name.
        worker: String,
        /// Task slots.
        slots: u32,
        /// Running attempts and their progress (0.0..=1.0).
        running: Vec<(AttemptId, f32)>,
        /// The last status message of running attempts that set one (Streaming's
        /// `reporter:status:`).
        statuses: Vec<(AttemptId, String)>,
        /// How long the reply may wait for a command.
        wait_ms: u64,
    },
    /// An attempt's process ended → `Done`.
    AttemptDone {
        /// Host name.
        worker: String,
        /// The attempt.
        attempt: AttemptId,
        /// How it ended.
        outcome: AttemptOutcome,
    },
    /// An attempt's process started → `Done` (for the submit-to-first-task latency).
    AttemptStarted {
        /// The attempt.
        attempt: AttemptId,
        /// When, in milliseconds since the Unix epoch (the worker's clock).
        unix_ms: u64,
    },
    /// A reduce asks where map outputs are → `MapOutputs`.
    MapOutputs {
        /// The asking reduce attempt.
        reduce: AttemptId,
    },
    /// A reduce could not fetch a map's output → `Done`.
    FetchFailure {
        /// The reduce attempt.
        reduce: AttemptId,
        /// The map attempt whose output failed.
        map: AttemptId,
    },
    /// → `Workers`.
    ListWorkers,
    /// A job's recorded events and attempts (for `mrjob why` and `mrjob logs`) → `History`.
    JobHistory {
        /// Job id.
        job: JobId,
    },
}

/// Responses from the jobtracker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JtResponse {
    /// The new job's id.
    Submitted {
        /// Job id.
        job: JobId,
    },
    /// One job.
    Job(Box<JobInfo>),
    /// All jobs, oldest first.
    Jobs(Vec<JobInfo>),
    /// Commands for a worker.
    Commands(Vec<WorkerCommand>),
    /// Per map index, where its output is (None: not available yet). `live` is false when
    /// the asking attempt should stop.
    MapOutputs {
        /// Locations.
        outputs: Vec<Option<MapOutputLoc>>,
        /// Whether the asking attempt may go on.
        live: bool,
    },
    /// The workers.
    Workers(Vec<WorkerInfo>),
    /// A job's status with its recorded events and attempts.
    History {
        /// The job's status.
        info: Box<JobInfo>,
        /// Its events and attempts.
        history: Box<JobHistory>,
    },
    /// Success without data.
    Done,
    /// The request failed.
    Error {
        /// What a caller can act on.
        kind: ErrorKind,
        /// One line.
        message: String,
    },
}

/// Error kinds on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The request was malformed or made no sense.
    BadRequest,
    /// No such job.
    NotFound,
    /// The job's output directory exists.
    OutputExists,
    /// The job's input is missing or empty.
    BadInput,
    /// dfs failed.
    Dfs,
    /// The caller may not do this (G8).
    PermissionDenied,
}

impl JtRequest {
    /// The request's name, for logs and refusals.
    pub fn name(&self) -> &'static str {
        match self {
            JtRequest::Submit(_) => "Submit",
            JtRequest::JobStatus { .. } => "JobStatus",
            JtRequest::ListJobs => "ListJobs",
            JtRequest::KillJob { .. } => "KillJob",
            JtRequest::Heartbeat { .. } => "Heartbeat",
            JtRequest::AttemptDone { .. } => "AttemptDone",
            JtRequest::AttemptStarted { .. } => "AttemptStarted",
            JtRequest::MapOutputs { .. } => "MapOutputs",
            JtRequest::FetchFailure { .. } => "FetchFailure",
            JtRequest::ListWorkers => "ListWorkers",
            JtRequest::JobHistory { .. } => "JobHistory",
        }
    }
}

impl JtResponse {
    /// An error response.
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> JtResponse {
        JtResponse::Error {
            kind,
            message: message.into(),
        }
    }
}

/// A shuffle request: partition `partition` of map attempt `map`'s output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRequest {
    /// The map attempt.
    pub map: AttemptId,
    /// The partition (the reduce task's index).
    pub partition: u32,
}

/// The first frame of a shuffle reply; on `Ok`, `len` bytes follow in data frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchHeader {
    /// The segment follows.
    Ok {
        /// Bytes.
        len: u64,
        /// Records.
        records: u64,
        /// CRC32 of the bytes, from the map's run index.
        crc32: u32,
    },
    /// The output is not here (or unreadable).
    Missing {
        /// Why.
        reason: String,
    },
}

/// The first bytes of every [`WorkerRequest`] frame. A worker's port also takes bare
/// [`FetchRequest`] frames (the shuffle's), and no `FetchRequest` can begin with ten 0xFF
/// bytes: they would be a job id varint longer than a `u64`'s ten bytes allows.
pub const WORKER_REQUEST_MARK: [u8; 10] = [0xFF; 10];
/// Most bytes of a task log sent in one reply; a caller asks again from `offset` for more.
pub const TASK_LOG_CHUNK_BYTES: u32 = 256 * 1024;

/// Which of an attempt's output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogStream {
    /// Its stdout.
    Stdout,
    /// Its stderr (a Streaming job's child's stderr included).
    Stderr,
}

impl LogStream {
    /// The file name on the worker.
    pub fn file_name(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// A request to a worker's port other than a shuffle fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRequest {
    /// Always [`WORKER_REQUEST_MARK`].
    pub mark: [u8; 10],
    /// What is asked.
    pub call: WorkerCall,
}

/// What a [`WorkerRequest`] asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerCall {
    /// Part of an attempt's kept log → `WorkerResponse::TaskLog`.
    TaskLog {
        /// The attempt.
        attempt: AttemptId,
        /// Which stream.
        stream: LogStream,
        /// From this byte.
        offset: u64,
    },
}

impl WorkerRequest {
    /// A request for `call`.
    pub fn new(call: WorkerCall) -> WorkerRequest {
        WorkerRequest {
            mark: WORKER_REQUEST_MARK,
            call,
        }
    }
}

/// A worker's answer to a [`WorkerRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerResponse {
    /// At most [`TASK_LOG_CHUNK_BYTES`] of the log from the asked offset.
    TaskLog {
        /// The bytes.
        data: Vec<u8>,
        /// The log's whole length.
        total_bytes: u64,
    },
    /// The request failed.
    Error {
        /// What a caller can act on.
        kind: ErrorKind,
        /// One line.
        message: String,
    },
}

/// Milliseconds since the Unix epoch: the clock of the `*_unix_ms` fields.
pub use dfs::clock::unix_ms;

/// Connects to `addr`, authenticates with `credentials`, sends one request and waits for
/// its response, all within `timeout`.
pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
    addr: &str,
    credentials: &Credentials,
    req: &Req,
    timeout: Duration,
) -> Result<Resp> {
    let io = async {
        let broken = |message: String| Error::Unreachable {
            addr: addr.to_owned(),
            message,
        };
        let stream = dfs::auth::connect(addr, "server", credentials, timeout)
            .await
            .map_err(|e| match e {
                // Not a network problem: retrying will not help, and the user must see why.
                dfs::Error::Unauthenticated(_) => Error::from(e),
                other => broken(other.to_string()),
            })?;
        let (r, w) = stream.into_split();
        let mut w = BufWriter::new(w);
        let mut r = BufReader::new(r);
        let bytes = encode_msg(req).map_err(|e| Error::Protocol(format!("encoding: {e}")))?;
        write_frame(&mut w, &bytes)
            .await
            .map_err(|e| broken(format!("sending to {addr}: {e}")))?;
        w.flush()
            .await
            .map_err(|e| broken(format!("sending to {addr}: {e}")))?;
        let frame = read_frame(&mut r, CONTROL_FRAME_LIMIT_BYTES)
            .await
            .map_err(|e| broken(format!("reading from {addr}: {e}")))?
            .ok_or_else(|| broken(format!("{addr} closed the connection")))?;
        decode_msg(&frame).map_err(|e| Error::Protocol(format!("bad reply from {addr}: {e}")))
    };
    tokio::time::timeout(timeout, io)
        .await
        .map_err(|_| Error::Timeout {
            what: format!("{addr} did not answer within {timeout:?}"),
        })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::{TaskId, TaskKind};

    // A worker's port tells a task-log request from a shuffle fetch by its first bytes: a
    // fetch (any job id, the largest included) never starts with the mark, and a worker
    // request never decodes as a fetch.
    #[test]
    fn worker_requests_and_fetches_are_never_confused() {
        for job in [0, 1, 300, u64::MAX] {
            let map = AttemptId {
                task: TaskId {
                    job,
                    kind: TaskKind::Map,
                    index: u32::MAX,
                },
                attempt: u32::MAX,
            };
            let fetch = encode_msg(&FetchRequest { map, partition: 7 }).unwrap();
            assert!(!fetch.starts_with(&WORKER_REQUEST_MARK));
            let log = encode_msg(&WorkerRequest::new(WorkerCall::TaskLog {
                attempt: map,
                stream: LogStream::Stderr,
                offset: 0,
            }))
            .unwrap();
            assert!(log.starts_with(&WORKER_REQUEST_MARK));
            assert!(decode_msg::<FetchRequest>(&log).is_err());
            assert!(decode_msg::<WorkerRequest>(&fetch).is_err());
        }
    }

    // Checks G7: random and truncated bytes never decode into a request by accident, and
    // never panic.
    #[test]
    fn garbage_does_not_decode_or_panic() {
        let req = JtRequest::FetchFailure {
            reduce: AttemptId {
                task: TaskId {
                    job: 1,
                    kind: TaskKind::Reduce,
                    index: 0,
                },
                attempt: 0,
            },
            map: AttemptId {
                task: TaskId {
                    job: 1,
                    kind: TaskKind::Map,
                    index: 3,
                },
                attempt: 1,
            },
        };
        let bytes = encode_msg(&req).unwrap();
        assert_eq!(decode_msg::<JtRequest>(&bytes).unwrap(), req);
        for cut in 0..bytes.len() {
            assert!(decode_msg::<JtRequest>(&bytes[..cut]).is_err());
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            let n = (x % 64) as usize;
            let junk: Vec<u8> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = decode_msg::<JtRequest>(&junk);
            let _ = decode_msg::<FetchRequest>(&junk);
        }
    }
}
