//! Messages between submitters, the jobtracker, workers, task processes and shuffle servers.
//!
//! Framing is dfs's ([`dfs::frame`]: a `u32` length checked against a limit before anything
//! is allocated, then a payload in the workspace's binary format, `dfs::frame::encode_msg`). Every request gets one response; errors carry a
//! kind the caller can act on and a one-line message.

use std::path::PathBuf;
use std::time::Duration;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;

use dfs::frame::{decode_msg, encode_msg, read_frame, write_frame};

use crate::counters::Counters;
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
    /// Where it is in dfs (`/mrjob/bin/<sha256>`).
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
    /// Failed or killed; the output directory was removed.
    Failed(String),
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
    /// → `Done` (the job fails with "killed by user").
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

/// Milliseconds since the Unix epoch: the clock of the `*_unix_ms` fields.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Sends one request to `addr` and waits for its response, all within `timeout`.
pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
    addr: &str,
    req: &Req,
    timeout: Duration,
) -> Result<Resp> {
    let io = async {
        let broken = |message: String| Error::Unreachable {
            addr: addr.to_owned(),
            message,
        };
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| broken(format!("connecting to {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
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
