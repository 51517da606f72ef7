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
    #[error("{}", not_leader_text(*.hint))]
    NotLeader {
        /// The leader this node believes in, if any.
        hint: Option<u64>,
    },
    /// The namenode the others name as their leader could not be reached or did not answer,
    /// so a call could not be served by anyone until the deadline.
    #[error("namenode {id} ({addr}), the leader, {}", leader_failure_text(source))]
    LeaderUnreachable {
        /// The leader's namenode id.
        id: u64,
        /// The leader's address.
        addr: std::net::SocketAddr,
        /// What went wrong when calling it.
        source: Box<Error>,
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
    /// A connection's handshake failed: no key, a wrong key, a replayed or garbled handshake,
    /// or an expired token. Nothing of the connection was acted on.
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// The authenticated caller may not do this (a file's mode, a member-only operation).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
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
    /// See [`Error::Unauthenticated`].
    Unauthenticated,
    /// See [`Error::PermissionDenied`].
    PermissionDenied,
}

/// What a `NotLeader` answer says, in words (a user reads it when a call runs out of time).
fn not_leader_text(hint: Option<u64>) -> String {
    match hint {
        Some(id) => format!("not the leader (it names namenode {id} as the leader)"),
        None => "not the leader, and no leader is known (an election may be under way)".into(),
    }
}

/// How a call to the leader failed, after "namenode N (ADDR), the leader, ".
fn leader_failure_text(err: &Error) -> String {
    match err {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("refused the connection: {source}")
        }
        Error::Io { source, .. } => format!("could not be reached: {source}"),
        Error::Timeout(what) => format!("did not answer in time: {what}"),
        other => format!("failed: {other}"),
    }
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
            Error::Unavailable(_) | Error::LeaderUnreachable { .. } => ErrorKind::Unavailable,
            Error::NoDatanodes(_) => ErrorKind::NoDatanodes,
            Error::Timeout(_) => ErrorKind::Timeout,
            Error::Remote { kind, .. } => *kind,
            Error::Unauthenticated(_) => ErrorKind::Unauthenticated,
            Error::PermissionDenied(_) => ErrorKind::PermissionDenied,
            Error::Raft(_) | Error::Io { .. } => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_leader_messages_name_the_leader_in_words() {
        let named = Error::NotLeader { hint: Some(3) }.to_string();
        assert_eq!(named, "not the leader (it names namenode 3 as the leader)");
        let unknown = Error::NotLeader { hint: None }.to_string();
        assert!(unknown.contains("no leader is known"), "{unknown}");
        for text in [named, unknown] {
            assert!(!text.contains("Some") && !text.contains("None"), "{text}");
        }
    }

    #[test]
    fn an_unreachable_leader_is_named_with_its_address_and_the_cause() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let err = Error::LeaderUnreachable {
            id: 3,
            addr: "127.0.0.3:8020".parse().unwrap(),
            source: Box::new(Error::io("connecting to namenode 127.0.0.3:8020", refused)),
        };
        let text = err.to_string();
        assert!(
            text.starts_with("namenode 3 (127.0.0.3:8020), the leader, refused the connection: "),
            "{text}"
        );
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        let slow = Error::LeaderUnreachable {
            id: 1,
            addr: "127.0.0.1:8020".parse().unwrap(),
            source: Box::new(Error::Timeout("namenode 1 did not answer".into())),
        };
        assert_eq!(
            slow.to_string(),
            "namenode 1 (127.0.0.1:8020), the leader, did not answer in time: namenode 1 did not answer"
        );
    }
}
