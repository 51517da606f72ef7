//! The crate's one error type. Variants are kinds a caller can act on; each carries enough
//! context for a one-line message. The same kinds travel on the wire (see [`ErrorKind`]).

use serde::{Deserialize, Serialize};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in dfs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path was not absolute, had empty/`.`/`..` components, or broke a length or depth limit.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The offending path.
        path: String,
        /// Why it was rejected.
        reason: String,
    },
    /// This namenode is not the Raft leader; `hint` is the leader's id if known.
    #[error("not the leader (leader hint: {hint:?})")]
    NotLeader {
        /// The leader this node believes in, if any.
        hint: Option<u64>,
    },
    /// A frame announced a length above the limit; nothing was allocated.
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge {
        /// Announced length.
        len: u64,
        /// Configured limit.
        limit: u64,
    },
    /// A frame or message could not be decoded.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A stored or received block chunk failed its CRC32.
    #[error("corrupt replica of block {block} on {replica}: {detail}")]
    Corrupt {
        /// Block id.
        block: u64,
        /// Where the bad replica lives (datanode address or local path).
        replica: String,
        /// Which chunk or offset failed.
        detail: String,
    },
    /// The named file or directory does not exist.
    #[error("no such file or directory: {0}")]
    NotFound(String),
    /// The target already exists.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// An operation needed a directory and found a file, or the reverse, or a non-empty directory.
    #[error("{0}")]
    WrongKind(String),
    /// Configuration was invalid.
    #[error("bad config: {0}")]
    Config(String),
    /// Another writer holds the lease, or the caller's lease is gone.
    #[error("lease: {0}")]
    Lease(String),
    /// Not enough live datanodes or replicas to do what was asked.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// No datanode can take a new block: none is live, or every live one is full or excluded
    /// by the writer. Not retried by the RPC layer (waiting the full RPC deadline does not make
    /// a datanode appear); a writer retries it briefly, then reports it.
    #[error("{0}")]
    NoDatanodes(String),
    /// A deadline passed.
    #[error("timed out: {0}")]
    Timeout(String),
    /// An error reported by a remote peer that has no more specific local kind.
    #[error("remote error ({kind:?}): {message}")]
    Remote {
        /// The kind the peer sent.
        kind: ErrorKind,
        /// The peer's message.
        message: String,
    },
    /// Raft library error.
    #[error("raft: {0}")]
    Raft(String),
    /// Operating-system I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done (usually names a path or peer).
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The kind of an error as sent on the wire, so the caller can act on it without parsing text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// See [`Error::InvalidPath`].
    InvalidPath,
    /// See [`Error::NotLeader`].
    NotLeader,
    /// See [`Error::FrameTooLarge`].
    FrameTooLarge,
    /// See [`Error::Malformed`].
    Malformed,
    /// See [`Error::Corrupt`].
    Corrupt,
    /// See [`Error::NotFound`].
    NotFound,
    /// See [`Error::AlreadyExists`].
    AlreadyExists,
    /// See [`Error::WrongKind`].
    WrongKind,
    /// See [`Error::Config`].
    Config,
    /// See [`Error::Lease`].
    Lease,
    /// See [`Error::Unavailable`].
    Unavailable,
    /// See [`Error::NoDatanodes`].
    NoDatanodes,
    /// See [`Error::Timeout`].
    Timeout,
    /// Anything else.
    Other,
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The wire kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidPath { .. } => ErrorKind::InvalidPath,
            Error::NotLeader { .. } => ErrorKind::NotLeader,
            Error::FrameTooLarge { .. } => ErrorKind::FrameTooLarge,
            Error::Malformed(_) => ErrorKind::Malformed,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::WrongKind(_) => ErrorKind::WrongKind,
            Error::Config(_) => ErrorKind::Config,
            Error::Lease(_) => ErrorKind::Lease,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::NoDatanodes(_) => ErrorKind::NoDatanodes,
            Error::Timeout(_) => ErrorKind::Timeout,
            Error::Remote { kind, .. } => *kind,
            Error::Raft(_) | Error::Io { .. } => ErrorKind::Other,
        }
    }
}
