//! The crate's one error type: every variant names what went wrong and where, so the
//! `mrjob` binary can print it as a single line.

use std::path::PathBuf;

/// Exit status of a job binary whose submitted job may still be running: the jobtracker was
/// unreachable for longer than the submitter waits ([`Error::OutcomeUnknown`]). 1 is a failure,
/// 130 an interrupt.
pub const EXIT_OUTCOME_UNKNOWN: u8 = 3;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while running a job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input path does not exist or holds no input files.
    #[error("input {path}: {reason}")]
    BadInput {
        /// The input path as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The output directory already exists; jobs never overwrite output.
    #[error("output directory {0} already exists")]
    OutputExists(PathBuf),
    /// A setting is out of range or inconsistent.
    #[error("bad setting: {0}")]
    BadSetting(String),
    /// A record is longer than `max_record_bytes`, so reading it would need unbounded memory.
    #[error("{file}: the record at byte offset {offset} is longer than the limit of {limit_bytes} bytes (raise it with --max-record-size)")]
    RecordTooLong {
        /// The file being read.
        file: PathBuf,
        /// Byte offset where the record starts.
        offset: u64,
        /// The limit in force.
        limit_bytes: usize,
    },
    /// Input bytes that do not form a valid record (for example a truncated fixed-length record).
    #[error("{file}:{offset}: bad record: {reason}")]
    BadRecord {
        /// The file being read.
        file: PathBuf,
        /// Byte offset of the record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Intermediate data failed its checksum or could not be decoded.
    #[error("corrupt intermediate data in {file}: {reason}")]
    Corrupt {
        /// The file holding the data.
        file: PathBuf,
        /// What failed.
        reason: String,
    },
    /// Job code (a mapper, reducer or combiner) reported an error.
    #[error("{0}")]
    User(String),
    /// A task failed; wraps the cause with the task's name.
    #[error("task {task} failed: {source}")]
    Task {
        /// Task name, e.g. `m_000003` or `r_000000`.
        task: String,
        /// The cause.
        #[source]
        source: Box<Error>,
    },
    /// A dfs call failed. `kind` says how (a path not found, too few datanodes, a timeout),
    /// so a caller can tell a missing file from an outage worth retrying; the message names
    /// what was being done and the cause.
    #[error("{message}")]
    Dfs {
        /// The dfs error's kind.
        kind: dfs::ErrorKind,
        /// What was being done, and dfs's message.
        message: String,
    },
    /// A cluster daemon (the jobtracker, a shuffle server) could not be reached, or the
    /// connection broke before it answered: trying again later may work.
    #[error("{message}")]
    Unreachable {
        /// The daemon's address.
        addr: String,
        /// What failed, naming the address and the cause.
        message: String,
    },
    /// Something did not happen in time: a call was not answered, a transfer stalled, an
    /// outage lasted too long, workers did not join.
    #[error("{what}")]
    Timeout {
        /// What did not happen, and within how long.
        what: String,
    },
    /// A peer sent what this side cannot use (an undecodable frame, an unexpected reply), or
    /// a message could not be encoded or a stored record decoded: retrying will not help.
    #[error("{0}")]
    Protocol(String),
    /// The jobtracker refused a request (the output exists, the input is bad, no such job):
    /// the message is its answer; the same request will be refused again.
    #[error("{0}")]
    Refused(String),
    /// The jobtracker no longer wants this attempt (killed, timed out or superseded): the
    /// attempt should stop, and nothing is wrong with it.
    #[error("{attempt} is no longer live (killed, timed out or superseded)")]
    NotLive {
        /// The attempt's name.
        attempt: String,
    },
    /// A job on the cluster failed or was killed.
    #[error("job {job} failed: {reason}")]
    JobFailed {
        /// The job's id and name.
        job: String,
        /// Why (names the failing task and its last error).
        reason: String,
    },
    /// The job was submitted, but the jobtracker stayed unreachable longer than a submitter
    /// waits: the job may still be running (or have ended), so its outcome is not known here.
    /// `mrjob` exits with [`EXIT_OUTCOME_UNKNOWN`] for it.
    #[error(
        "job {job} was submitted, but the jobtracker has been unreachable for {unreachable_secs}s: \
         the job may still be running; follow it with `mrjob status {job}` ({cause})"
    )]
    OutcomeUnknown {
        /// The job's id.
        job: u64,
        /// How long the jobtracker had been unreachable when the submitter gave up.
        unreachable_secs: u64,
        /// The last error calling the jobtracker.
        cause: String,
    },
    /// Operating-system I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done (names a path).
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The exit status a job binary ends with for this error: [`EXIT_OUTCOME_UNKNOWN`] when
    /// the job may still be running, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::OutcomeUnknown { .. } => EXIT_OUTCOME_UNKNOWN,
            _ => 1,
        }
    }

    /// An error raised by job code.
    pub fn user(msg: impl Into<String>) -> Self {
        Error::User(msg.into())
    }
}

/// The one mapping from dfs errors: the kind is kept, so callers can act on it.
impl From<dfs::Error> for Error {
    fn from(e: dfs::Error) -> Self {
        Error::Dfs {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// A dfs error with what was being done (`{what}: {cause}`), through the one mapping.
pub fn dfs_error(what: impl std::fmt::Display, e: dfs::Error) -> Error {
    match Error::from(e) {
        Error::Dfs { kind, message } => Error::Dfs {
            kind,
            message: format!("{what}: {message}"),
        },
        other => other,
    }
}

/// Adds a path-naming context to `std::io::Result`.
pub(crate) trait IoContext<T> {
    /// Maps an I/O error to [`Error::Io`] with `what` and the path.
    fn ctx(self, what: &str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, what: &str, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(format!("{what} {}", path.display()), e))
    }
}
