//! Messages between clients, datanodes and namenodes (the namenode's one RPC port).
//!
//! # How to use it (datanode and client side)
//!
//! Do not open sockets to the namenode yourself: build one [`crate::rpc::NamenodeClient`] from the
//! [`crate::config::ClusterConfig`] and call [`crate::rpc::NamenodeClient::call`] with a
//! [`Request`] variant. The client finds the leader, follows `NotLeader { hint }`, retries on
//! another namenode, and gives non-idempotent calls a (client id, call id) so a retry takes effect
//! once. It returns the matching [`Response`] variant or an [`crate::Error`] whose
//! [`crate::Error::kind`] says what went wrong (`NotFound`, `AlreadyExists`, `Lease`, ...).
//!
//! - A **datanode** reports to *every* namenode, not only the leader (so a new leader knows all
//!   block locations at once): use [`crate::rpc::NamenodeClient::call_each`] or one
//!   [`crate::rpc::NamenodeClient::call_one`] per namenode id. At start: [`Request::Register`],
//!   then a full [`Request::BlockReport`]; every `heartbeat_interval_ms` a [`Request::Heartbeat`];
//!   after receiving or deleting replicas a [`Request::IncrementalReport`]; for a replica that
//!   fails its checksum a [`Request::ReportCorrupt`]. Only the leader's
//!   [`HeartbeatReply`] carries work ([`DatanodeCommand::Replicate`], `Delete`, `Recover`);
//!   any namenode may answer [`DatanodeCommand::Reregister`], which means "I do not know you
//!   (I restarted): register again and send a full block report".
//! - A **writing client**: [`Request::Create`], then per block [`Request::AddBlock`] (passing the
//!   previous block with its final length), write the pipeline to the returned locations, and
//!   finally [`Request::Complete`] until it answers `Completed(true)`: the leader says `false`
//!   until every block has min(replication, live datanodes) good replicas reported to it (see
//!   [`crate::namenode::completion`]; so send the incremental report before acking the client). Renew the
//!   lease every `lease_soft_limit_ms / 2` with [`Request::RenewLease`]. When a datanode dies
//!   mid-write, [`Request::AddDatanode`] names replacements and [`Request::UpdatePipeline`]
//!   gives the block a new generation stamp for the rebuilt pipeline.
//! - A **reading client**: [`Request::GetBlockLocations`], then read from the datanodes; report a
//!   bad replica with [`Request::ReportCorrupt`].
//!
//! Paths are absolute strings, validated by the namenode ([`crate::path`]).

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};

/// A block of a file, as the namenode and datanodes name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Block {
    /// Cluster-wide unique id, allocated by the namespace.
    pub id: u64,
    /// Generation stamp; bumped by pipeline and lease recovery, so replicas that missed the
    /// bump are recognised as stale.
    pub gen_stamp: u64,
    /// Length of the block's data.
    pub len_bytes: u64,
}

/// A datanode as named in locations and commands.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DatanodeRef {
    /// Host name from the config.
    pub host: String,
    /// Data-transfer address.
    pub addr: String,
    /// Rack name.
    pub rack: String,
}

/// A block with where its replicas are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocatedBlock {
    /// The block.
    pub block: Block,
    /// Offset of the block's first byte in the file.
    pub offset_bytes: u64,
    /// Live datanodes with a good replica, the reader's own host first when it has one, then
    /// same-rack ones. For a new block (from `AddBlock`): the pipeline, in order.
    pub locations: Vec<DatanodeRef>,
    /// Live datanodes known to hold a corrupt replica (never listed in `locations`).
    pub corrupt: Vec<DatanodeRef>,
    /// The namenode's permission to read (or, for a pipeline, write) this block, which
    /// datanodes ask of everyone but members. The namenode fills it in on the way out.
    pub token: Option<crate::auth::BlockToken>,
}

/// Whether an inode is a directory or a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
}

/// What `stat` and `ls` show about one inode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStatus {
    /// Absolute path.
    pub path: String,
    /// Directory or file.
    pub kind: FileKind,
    /// File length (sum of its blocks); 0 for directories.
    pub len_bytes: u64,
    /// Replication factor (0 for directories).
    pub replication: u32,
    /// Block size of the file (0 for directories).
    pub block_size_bytes: u64,
    /// Last modification, milliseconds since the Unix epoch (leader's clock).
    pub mtime_ms: u64,
    /// A writer holds the file's lease; it is not complete yet.
    pub under_construction: bool,
    /// Number of blocks (files) or children (directories).
    pub count: u64,
    /// Owning user.
    pub owner: String,
    /// Owning group.
    pub group: String,
    /// Permission bits, sticky bit (0o1000) included.
    pub mode: u16,
}

/// Totals under a path (`du`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentSummary {
    /// Number of files.
    pub files: u64,
    /// Number of directories, the path itself included when it is one.
    pub dirs: u64,
    /// Total file length.
    pub len_bytes: u64,
    /// Total bytes stored, replication included (length × replication factor).
    pub raw_len_bytes: u64,
}

/// Result of `GetBlockLocations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileBlocks {
    /// File length: complete blocks plus the last block's currently known length.
    pub len_bytes: u64,
    /// A writer holds the lease: the last block may still grow.
    pub under_construction: bool,
    /// The blocks overlapping the asked range, in file order.
    pub blocks: Vec<LocatedBlock>,
}

/// State of a replica on a datanode, in block reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaState {
    /// Complete, fsynced, checksummed: servable.
    Finalized,
    /// Being written by a pipeline (or left by a crashed writer); `len_bytes` is what is durable.
    InProgress,
}

/// One replica in a block report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedReplica {
    /// The block with the replica's generation stamp and length.
    pub block: Block,
    /// Finalized or in progress.
    pub state: ReplicaState,
}

/// Space figures a datanode sends with each heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatanodeUsage {
    /// Total capacity.
    pub capacity_bytes: u64,
    /// Bytes used by blocks.
    pub used_bytes: u64,
    /// Bytes still free for blocks.
    pub remaining_bytes: u64,
    /// Data transfers in progress (reads, writes, replications).
    pub active_transfers: u32,
    /// Replicas the block scanner found corrupt since the datanode started (a disk going bad
    /// shows here first).
    pub failed_scans: u64,
}

/// What the leader asks a datanode to do, in a heartbeat reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatanodeCommand {
    /// Copy this (finalized) replica to the targets (as a pipeline, in order).
    Replicate {
        /// The block to copy.
        block: Block,
        /// Where to copy it.
        targets: Vec<DatanodeRef>,
    },
    /// Delete these replicas (only if the local generation stamp matches or is older).
    Delete {
        /// The replicas to delete.
        blocks: Vec<Block>,
    },
    /// Lease recovery: cut the in-progress replica `block.id` to `block.len_bytes`, give it
    /// `block.gen_stamp`, and finalize it; then report it as received.
    Recover {
        /// The recovered block: new generation stamp and final length.
        block: Block,
    },
    /// This namenode does not know the datanode (e.g. after a restart): register again and send
    /// a full block report.
    Reregister,
}

/// Reply to a heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// Commands (only the leader sends any).
    pub commands: Vec<DatanodeCommand>,
}

/// A namenode's Raft role as shown by `dfs report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftRole {
    /// The leader.
    Leader,
    /// A follower.
    Follower,
    /// Campaigning.
    Candidate,
    /// Pre-vote campaign (not yet a candidate).
    PreCandidate,
}

/// One namenode's view of itself (the status RPC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamenodeStatus {
    /// Raft id.
    pub id: u64,
    /// Current role.
    pub role: RaftRole,
    /// Current term.
    pub term: u64,
    /// The leader this node believes in (0 = none).
    pub leader_id: u64,
    /// Highest committed log index.
    pub commit_index: u64,
    /// Highest applied log index.
    pub applied_index: u64,
    /// Index of the latest snapshot.
    pub snapshot_index: u64,
    /// Files and directories in the namespace.
    pub inodes: u64,
    /// The `cluster_id` of this namenode's config, so that `cluster start` can tell its own
    /// namenodes from another cluster's on the same address.
    pub cluster_id: String,
}

/// One datanode as seen by the namenode (`dfs report`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatanodeStatus {
    /// The datanode.
    pub node: DatanodeRef,
    /// Heard from within `datanode_dead_after_ms`.
    pub live: bool,
    /// Milliseconds since the last heartbeat (`u64::MAX` if never).
    pub last_heartbeat_ago_ms: u64,
    /// Latest reported space figures.
    pub usage: DatanodeUsage,
    /// Replicas the namenode knows on it.
    pub blocks: u64,
}

/// Per-file health (`dfs fsck`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsckFile {
    /// File path.
    pub path: String,
    /// Replication factor.
    pub replication: u32,
    /// Per block: the block, live good replicas, corrupt replicas.
    pub blocks: Vec<FsckBlock>,
}

/// One block's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsckBlock {
    /// The block.
    pub block: Block,
    /// Hosts with a live, good replica.
    pub live: Vec<String>,
    /// Hosts with a corrupt replica.
    pub corrupt: Vec<String>,
}

/// What fsck says about one block: the one rule `dfs fsck` and the namenode's pages share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockHealth {
    /// At least `replication` live good replicas.
    Ok,
    /// Some live good replicas, fewer than the file's replication.
    UnderReplicated,
    /// Live good replicas, and a corrupt one besides.
    CorruptReplica,
    /// No live good replica: the block cannot be read.
    Missing,
}

impl BlockHealth {
    /// The health of `block` of a file with this `replication`.
    pub fn of(block: &FsckBlock, replication: u32) -> BlockHealth {
        if block.live.is_empty() {
            BlockHealth::Missing
        } else if !block.corrupt.is_empty() {
            BlockHealth::CorruptReplica
        } else if block.live.len() < replication as usize {
            BlockHealth::UnderReplicated
        } else {
            BlockHealth::Ok
        }
    }

    /// The word `dfs fsck` prints.
    pub fn word(self) -> &'static str {
        match self {
            BlockHealth::Ok => "OK",
            BlockHealth::UnderReplicated => "UNDER-REPLICATED",
            BlockHealth::CorruptReplica => "CORRUPT-REPLICA",
            BlockHealth::Missing => "MISSING",
        }
    }
}

/// Every call a namenode answers. Non-idempotent ones are marked; the RPC client gives them a
/// [`CallId`] so the namenode applies a retried call once and returns the first result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
pub enum Request {
    // ----- client metadata calls -----
    /// Create a directory and missing parents (idempotent) → `Done`.
    Mkdirs {
        /// Directory path.
        path: String,
    },
    /// Create a file and take its lease (non-idempotent) → `Status`.
    Create {
        /// File path; the parent directories are created.
        path: String,
        /// Replication factor; `None` = the cluster default.
        replication: Option<u32>,
        /// Block size; `None` = the cluster default.
        block_size_bytes: Option<u64>,
        /// Replace an existing complete file.
        overwrite: bool,
        /// Fail with `NotFound` instead of creating a missing parent directory.
        #[serde(default)]
        require_parent: bool,
        /// The writer, for the lease (unique per client process).
        client_name: String,
    },
    /// Allocate the next block of a file under construction (non-idempotent) → `Block` with
    /// the pipeline in `locations`.
    AddBlock {
        /// File path.
        path: String,
        /// The lease holder.
        client_name: String,
        /// The previous block with its final length (None for the first block).
        previous: Option<Block>,
        /// The writer's host name when it runs on a datanode host (first replica goes there).
        writer_host: Option<String>,
        /// Hosts not to use (they failed for this writer).
        excluded_hosts: Vec<String>,
    },
    /// Give up the last block (e.g. no pipeline could be built) (non-idempotent) → `Done`.
    AbandonBlock {
        /// File path.
        path: String,
        /// The lease holder.
        client_name: String,
        /// The block to drop (must be the file's last).
        block_id: u64,
    },
    /// After a pipeline failure: a new generation stamp for the block, kept on `hosts`
    /// (non-idempotent) → `Block` with the new stamp and the given hosts as locations.
    UpdatePipeline {
        /// File path.
        path: String,
        /// The lease holder.
        client_name: String,
        /// The block being written (must be the file's last).
        block_id: u64,
        /// The surviving pipeline, in order.
        hosts: Vec<String>,
    },
    /// Close the file with its last block's final length → `Completed(true)` when every block
    /// has enough replicas reported; `Completed(false)` means "ask again shortly".
    Complete {
        /// File path.
        path: String,
        /// The lease holder.
        client_name: String,
        /// The last block with its final length.
        last: Option<Block>,
    },
    /// Renew every lease this client holds → `Done`.
    RenewLease {
        /// The writer.
        client_name: String,
    },
    /// Blocks overlapping `[offset_bytes, offset_bytes + len_bytes)` → `Blocks`.
    GetBlockLocations {
        /// File path.
        path: String,
        /// Start of the range.
        offset_bytes: u64,
        /// Length of the range (`u64::MAX` = to the end).
        len_bytes: u64,
        /// The reader's host, to sort the closest replica first.
        reader_host: Option<String>,
    },
    /// The status of a path → `Status`.
    Stat {
        /// Path.
        path: String,
    },
    /// Children of a directory in name order, at most `limit`, after `start_after`
    /// → `Listing` (a file lists itself).
    List {
        /// Directory path.
        path: String,
        /// Resume after this child name (paging).
        start_after: Option<String>,
        /// Maximum entries to return (the namenode caps it at 10,000).
        limit: u32,
    },
    /// Totals under a path → `Summary`.
    Du {
        /// Path.
        path: String,
    },
    /// Rename a file or directory; `dst` must not exist, its parent must (non-idempotent) → `Done`.
    Rename {
        /// Source path.
        src: String,
        /// Destination path.
        dst: String,
    },
    /// Delete a path (directories need `recursive` unless empty) (non-idempotent) → `Deleted`.
    Delete {
        /// Path.
        path: String,
        /// Delete a non-empty directory.
        recursive: bool,
    },
    /// Change a file's replication factor → `Done`.
    SetReplication {
        /// File path.
        path: String,
        /// New factor.
        replication: u32,
    },
    /// `chmod`: set a path's permission bits → `Done`. Only its owner or the superuser.
    SetPermission {
        /// Path.
        path: String,
        /// New mode, at most 0o1777 (the sticky bit is 0o1000).
        mode: u16,
    },
    /// `chown`: set a path's owner (superuser only) and/or group (its owner may choose a
    /// group it is a member of) → `Done`.
    SetOwner {
        /// Path.
        path: String,
        /// New owner, if it changes.
        owner: Option<String>,
        /// New group, if it changes.
        group: Option<String>,
    },
    /// Per-file block health under a path → `Fsck` (at most 100,000 files).
    Fsck {
        /// Path.
        path: String,
    },
    /// Datanodes as this namenode sees them → `Datanodes`. Served by any namenode.
    DatanodeReport,
    /// This namenode's Raft status → `NamenodeStatus`. Served by any namenode, leader or not.
    Status,

    // ----- datanode calls (sent to every namenode) -----
    /// A datanode starts → `Done`.
    Register {
        /// The datanode.
        node: DatanodeRef,
        /// Its space figures.
        usage: DatanodeUsage,
    },
    /// Periodic liveness and usage → `Heartbeat`.
    Heartbeat {
        /// Host name.
        host: String,
        /// Its space figures.
        usage: DatanodeUsage,
    },
    /// Every replica the datanode holds → `Done`.
    BlockReport {
        /// Host name.
        host: String,
        /// All replicas.
        replicas: Vec<ReportedReplica>,
    },
    /// Replicas received or deleted since the last report → `Done`.
    IncrementalReport {
        /// Host name.
        host: String,
        /// New or updated replicas.
        received: Vec<ReportedReplica>,
        /// Deleted block ids.
        deleted: Vec<u64>,
    },
    /// A replica failed its checksum (sent by the holding datanode's scanner or by a reader)
    /// → `Done`.
    ReportCorrupt {
        /// The block as the reporter knows it.
        block: Block,
        /// The host holding the corrupt replica.
        host: String,
    },
    /// After a pipeline failure: datanodes to bring the pipeline of `block_id` back to the
    /// file's replication (HDFS's `getAdditionalDatanode`) → `Block` whose `locations` are the
    /// replacements only (possibly none). The leader marks `failed` as suspects (not counted as
    /// live for `Complete` until they heartbeat again) and records `existing` plus the
    /// replacements as the block's pipeline. Idempotent: asking again just chooses again.
    AddDatanode {
        /// File path.
        path: String,
        /// The lease holder.
        client_name: String,
        /// The block whose pipeline is rebuilt.
        block_id: u64,
        /// The surviving pipeline, in order.
        existing: Vec<String>,
        /// Hosts that just failed in this writer's pipeline.
        failed: Vec<String>,
        /// Hosts the writer will not use (every host that failed it so far).
        excluded: Vec<String>,
    },
}

impl Request {
    /// True when applying this call twice differs from applying it once, so the RPC client
    /// attaches a [`CallId`] and the namenode deduplicates it.
    pub fn is_non_idempotent(&self) -> bool {
        matches!(
            self,
            Request::Create { .. }
                | Request::AddBlock { .. }
                | Request::AbandonBlock { .. }
                | Request::UpdatePipeline { .. }
                | Request::Rename { .. }
                | Request::Delete { .. }
        )
    }

    /// True for calls every namenode answers itself (datanode reports, status).
    pub fn any_namenode(&self) -> bool {
        matches!(
            self,
            Request::Status
                | Request::DatanodeReport
                | Request::Register { .. }
                | Request::Heartbeat { .. }
                | Request::BlockReport { .. }
                | Request::IncrementalReport { .. }
                | Request::ReportCorrupt { .. }
        )
    }
}

/// Successful answers; each [`Request`] variant documents which one it gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Done, nothing to return.
    Done,
    /// A path's status.
    Status(FileStatus),
    /// A new or updated block with its pipeline.
    Block(LocatedBlock),
    /// Whether `Complete` closed the file.
    Completed(bool),
    /// Block locations of a file.
    Blocks(FileBlocks),
    /// Directory entries.
    Listing(Vec<FileStatus>),
    /// Totals under a path.
    Summary(ContentSummary),
    /// Whether something was deleted.
    Deleted(bool),
    /// Fsck results.
    Fsck(Vec<FsckFile>),
    /// Datanodes.
    Datanodes(Vec<DatanodeStatus>),
    /// A namenode's status.
    NamenodeStatus(NamenodeStatus),
    /// Heartbeat reply with commands.
    Heartbeat(HeartbeatReply),
}

/// Identifies one logical non-idempotent call across retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CallId {
    /// Random per client process.
    pub client_id: u64,
    /// Increasing per call within the client.
    pub call_id: u64,
}

/// A request on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFrame {
    /// Echoed in the response (per connection).
    pub request_id: u64,
    /// Set on non-idempotent calls.
    pub call: Option<CallId>,
    /// The call.
    pub body: Request,
}

/// A response on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseFrame {
    /// The request's id (0 when the request could not be decoded).
    pub request_id: u64,
    /// The answer or a typed error.
    pub result: Result<Response, WireError>,
}

/// An error on the wire: a kind the caller can act on, a message, and a leader hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// What kind of error.
    pub kind: ErrorKind,
    /// Human-readable, one line.
    pub message: String,
    /// For `NotLeader`: the leader's id, if known.
    pub leader_hint: Option<u64>,
}

impl From<&Error> for WireError {
    fn from(err: &Error) -> Self {
        let leader_hint = match err {
            Error::NotLeader { hint } => *hint,
            _ => None,
        };
        let message = match err {
            Error::Remote { message, .. } => message.clone(),
            other => other.to_string(),
        };
        WireError {
            kind: err.kind(),
            message,
            leader_hint,
        }
    }
}

impl From<WireError> for Error {
    fn from(err: WireError) -> Self {
        match err.kind {
            ErrorKind::NotLeader => Error::NotLeader {
                hint: err.leader_hint,
            },
            // The message is already the whole sentence for a user (see `add_block`).
            ErrorKind::NoDatanodes => Error::NoDatanodes(err.message),
            ErrorKind::PermissionDenied => Error::PermissionDenied(err.message),
            ErrorKind::Unauthenticated => Error::Unauthenticated(err.message),
            kind => Error::Remote {
                kind,
                message: err.message,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{decode_msg, encode_msg};

    #[test]
    fn frames_round_trip() {
        let req = RequestFrame {
            request_id: 7,
            call: Some(CallId {
                client_id: 1,
                call_id: 2,
            }),
            body: Request::Create {
                path: "/a".into(),
                replication: Some(2),
                block_size_bytes: None,
                overwrite: false,
                require_parent: false,
                client_name: "c".into(),
            },
        };
        let bytes = encode_msg(&req).unwrap();
        assert_eq!(decode_msg::<RequestFrame>(&bytes).unwrap(), req);
        let resp = ResponseFrame {
            request_id: 7,
            result: Err(WireError::from(&Error::NotLeader { hint: Some(3) })),
        };
        let bytes = encode_msg(&resp).unwrap();
        let back: ResponseFrame = decode_msg(&bytes).unwrap();
        let err = Error::from(back.result.unwrap_err());
        assert!(matches!(err, Error::NotLeader { hint: Some(3) }));
    }

    proptest::proptest! {
        // Checks G7: any bytes decode to a request or a Malformed error, never a panic.
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = decode_msg::<RequestFrame>(&data);
            let _ = decode_msg::<ResponseFrame>(&data);
        }
    }

    #[test]
    fn remote_errors_keep_their_kind() {
        let wire = WireError::from(&Error::NotFound("/x".into()));
        let err = Error::from(wire);
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.to_string().contains("/x"));
    }
}
