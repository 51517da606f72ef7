//! The namespace: directories, files, their blocks and writer leases, as a pure deterministic
//! state machine.
//!
//! Every namenode applies the same committed [`Entry`] sequence and so holds the same namespace.
//! There is no I/O and no clock in here: the leader stamps each entry with its wall-clock time
//! (`now_ms`, used for mtimes and for expiring the retry cache), and timed decisions such as
//! lease recovery arrive as operations the leader proposes ([`Op::RecoverLease`]).
//! Results (errors included) are deterministic too, which lets the retry cache replay the first
//! result of a non-idempotent call to a client that retries it after a failover.
//!
//! Reads (`stat`, `list`, ...) are plain methods; the Raft driver makes them linearizable by
//! running them only after a ReadIndex round.
//!
//! - this file: the log's vocabulary ([`Op`], [`Entry`], [`Outcome`]), the state, applying an
//!   entry through the retry cache, and snapshots.
//! - `tree`: the inode tree (directories and names): lookups, `mkdirs`, `rename`, `delete`.
//! - `file`: files and their blocks: `create`, `add_block`, `abandon_block`,
//!   `update_pipeline`, `complete`, `set_replication`.
//! - `lease`: writer leases: the lease check, lease recovery, files under construction.
//! - `block`: a block's generation stamp and length only grow: the check on inputs and the
//!   assertion on the state after every entry.
//! - `access`: owners, groups and modes: `set_permission`, `set_owner`, and the view of a
//!   path that `namenode::permission` checks.
//! - `read`: the read-only views (`stat`, `list`, block locations' input, the block owners).

mod access;
mod block;
mod file;
mod lease;
mod read;
mod tree;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::namenode::permission;
use crate::protocol::{Block, CallId, FileStatus, WireError};
use tree::{Body, Inode};

const ROOT: u64 = 1;

/// Retry-cache entries older than this (by leader time) are forgotten.
pub const RETRY_CACHE_TTL_MS: u64 = 10 * 60 * 1000;
/// Most retry-cache entries kept, whatever their age.
pub const RETRY_CACHE_MAX_ENTRIES: usize = 200_000;
/// Largest replication factor accepted.
pub const MAX_REPLICATION: u32 = 32;
/// Most blocks in one file (64 MiB blocks: 64 TiB).
pub const MAX_BLOCKS_PER_FILE: usize = 1 << 20;
/// Most entries returned by one `list` call.
pub const MAX_LIST_ENTRIES: usize = 10_000;

/// A namespace-changing operation, as replicated through the Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `mkdir -p`.
    Mkdirs {
        /// Directory path.
        path: String,
        /// Owner of the directories it creates: the caller's user, as the leader saw it
        /// authenticate (never a name a client supplied).
        owner: String,
    },
    /// Create a file (and its parents) under a lease.
    Create {
        /// File path.
        path: String,
        /// Replication factor.
        replication: u32,
        /// Block size.
        block_size_bytes: u64,
        /// Replace an existing complete file.
        overwrite: bool,
        /// Fail with `NotFound` instead of creating a missing parent directory.
        #[serde(default)]
        require_parent: bool,
        /// Lease holder.
        client_name: String,
        /// Owner of the file and of the parents it creates (the caller's user).
        owner: String,
    },
    /// Append a new block to a file under construction.
    AddBlock {
        /// File path.
        path: String,
        /// Lease holder.
        client_name: String,
        /// The previous block with its final length.
        previous: Option<Block>,
    },
    /// Drop the last block of a file under construction.
    AbandonBlock {
        /// File path.
        path: String,
        /// Lease holder.
        client_name: String,
        /// Must be the last block.
        block_id: u64,
    },
    /// Give the last block a new generation stamp (pipeline recovery).
    UpdatePipeline {
        /// File path.
        path: String,
        /// Lease holder.
        client_name: String,
        /// Must be the last block.
        block_id: u64,
    },
    /// Close a file with its last block's final length, releasing the lease.
    Complete {
        /// File path.
        path: String,
        /// Lease holder.
        client_name: String,
        /// Last block with its final length.
        last: Option<Block>,
    },
    /// Rename; into `dst` when `dst` is an existing directory.
    Rename {
        /// Source.
        src: String,
        /// Destination.
        dst: String,
    },
    /// Delete a path.
    Delete {
        /// Path.
        path: String,
        /// Allow a non-empty directory.
        recursive: bool,
    },
    /// Change a file's replication factor.
    SetReplication {
        /// File path.
        path: String,
        /// New factor.
        replication: u32,
    },
    /// Lease expired: close the file at its last durable length. `last` is the recovered last
    /// block (new generation stamp, durable length) or `None` to drop an empty/unreplicated
    /// last block. Ignored if `holder` no longer holds the lease.
    RecoverLease {
        /// File path.
        path: String,
        /// The expired holder.
        holder: String,
        /// The recovered last block, if it is kept.
        last: Option<Block>,
    },
    /// `chmod`: set a path's permission bits (sticky bit included).
    SetPermission {
        /// Path.
        path: String,
        /// New mode (at most 0o1777).
        mode: u16,
    },
    /// `chown`: set a path's owner and/or group.
    SetOwner {
        /// Path.
        path: String,
        /// New owner, if it changes.
        owner: Option<String>,
        /// New group, if it changes.
        group: Option<String>,
    },
}

/// One committed log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Leader's wall clock when it proposed the entry.
    pub now_ms: u64,
    /// Retry identity of a non-idempotent client call.
    pub call: Option<CallId>,
    /// The user the operation acts for, as the leader saw it authenticate (its groups follow
    /// from the name: `permission::is_member`). Applying re-checks its permissions against
    /// the namespace of that moment, so a `chmod` committed between the leader's early check
    /// and this entry is seen (G8). `None`: the namenode's own operations (lease recovery)
    /// and entries of format 2, written before callers were logged: both act as the
    /// superuser, as they did when they were proposed.
    pub caller: Option<String>,
    /// The operation.
    pub op: Op,
}

/// A log entry of format 2 (no caller), still read when a log written before format 3 is
/// replayed.
#[derive(Deserialize)]
struct EntryV2 {
    now_ms: u64,
    call: Option<CallId>,
    op: Op,
}

/// The successful result of an [`Op`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Done.
    Done,
    /// A new file's status (`Create`).
    Status(FileStatus),
    /// A new or restamped block (`AddBlock`, `UpdatePipeline`).
    Block(Block),
    /// `Complete` closed the file.
    Completed(bool),
    /// `Delete` found something to delete.
    Deleted(bool),
}

/// What applying an entry produced: an outcome or a deterministic error.
pub type OpResult = std::result::Result<Outcome, WireError>;

/// A file under construction, for the leader's lease monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFile {
    /// File path.
    pub path: String,
    /// Lease holder.
    pub holder: String,
    /// Its last block, if any.
    pub last_block: Option<Block>,
}

/// A file's length, state and (some of) its blocks with their offsets in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLayout {
    /// File length.
    pub len_bytes: u64,
    /// A writer holds the lease.
    pub under_construction: bool,
    /// Blocks with the file offset of their first byte, in file order.
    pub blocks: Vec<(Block, u64)>,
}

/// What the block manager needs to know about a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockOwner {
    /// The block as the namespace knows it (current generation stamp and length).
    pub block: Block,
    /// The owning file's replication factor.
    pub replication: u32,
    /// The block is the last one of a file under construction (still being written).
    pub under_construction: bool,
}

/// The namespace state machine. Serializable as a whole: that is the Raft snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    inodes: BTreeMap<u64, Inode>,
    block_owner: BTreeMap<u64, u64>,
    next_inode_id: u64,
    next_block_id: u64,
    next_gen_stamp: u64,
    retry_cache: BTreeMap<(u64, u64), OpResult>,
    retry_order: VecDeque<(u64, (u64, u64))>,
}

impl Default for Namespace {
    fn default() -> Self {
        Self::new()
    }
}

impl Namespace {
    /// An empty namespace holding only `/`.
    pub fn new() -> Self {
        let root = Inode {
            parent: ROOT,
            name: String::new(),
            mtime_ms: 0,
            body: Body::Dir(BTreeMap::new()),
            owner: crate::auth::SUPERUSER.to_string(),
            group: permission::SUPERGROUP.to_string(),
            mode: permission::DIR_MODE,
        };
        Namespace {
            inodes: BTreeMap::from([(ROOT, root)]),
            block_owner: BTreeMap::new(),
            next_inode_id: ROOT + 1,
            next_block_id: 1 << 30,
            next_gen_stamp: 1000,
            retry_cache: BTreeMap::new(),
            retry_order: VecDeque::new(),
        }
    }

    /// Applies a committed entry. A call already in the retry cache returns its first result.
    pub fn apply(&mut self, entry: &Entry) -> OpResult {
        let key = entry.call.map(|c| (c.client_id, c.call_id));
        if let Some(cached) = key.and_then(|k| self.retry_cache.get(&k)) {
            return cached.clone();
        }
        // The permission decision is part of the deterministic apply: every namenode refuses
        // the same entries, and a refused one changes nothing (its error goes to the waiting
        // client, and into the retry cache like any result).
        let allowed = match &entry.caller {
            Some(user) => crate::namenode::access::authorize_op(self, user, &entry.op),
            None => Ok(()),
        };
        let result = allowed
            .and_then(|()| self.apply_op(entry.now_ms, &entry.op))
            .map_err(|e| WireError::from(&e));
        if let Some(k) = key {
            self.remember(entry.now_ms, k, result.clone());
        }
        result
    }

    fn remember(&mut self, now_ms: u64, key: (u64, u64), result: OpResult) {
        self.retry_cache.insert(key, result);
        self.retry_order.push_back((now_ms, key));
        while let Some(&(t, k)) = self.retry_order.front() {
            let expired = t.saturating_add(RETRY_CACHE_TTL_MS) < now_ms;
            if !expired && self.retry_order.len() <= RETRY_CACHE_MAX_ENTRIES {
                break;
            }
            self.retry_order.pop_front();
            self.retry_cache.remove(&k);
        }
    }

    /// Applies one operation, with a pair assertion around it: the block it may restamp or
    /// lengthen never goes back (see `block`).
    fn apply_op(&mut self, now_ms: u64, op: &Op) -> Result<Outcome> {
        let before = self.block_before(op);
        let result = self.dispatch(now_ms, op);
        if let Some(before) = before {
            self.assert_grown(&before);
        }
        result
    }

    fn dispatch(&mut self, now_ms: u64, op: &Op) -> Result<Outcome> {
        match op {
            Op::Mkdirs { path, owner } => self.mkdirs(now_ms, path, owner).map(|_| Outcome::Done),
            Op::Create {
                path,
                replication,
                block_size_bytes,
                overwrite,
                require_parent,
                client_name,
                owner,
            } => self.create(
                now_ms,
                path,
                *replication,
                *block_size_bytes,
                (*overwrite, *require_parent),
                (client_name, owner),
            ),
            Op::AddBlock {
                path,
                client_name,
                previous,
            } => self.add_block(now_ms, path, client_name, previous.as_ref()),
            Op::AbandonBlock {
                path,
                client_name,
                block_id,
            } => self.abandon_block(now_ms, path, client_name, *block_id),
            Op::UpdatePipeline {
                path,
                client_name,
                block_id,
            } => self.update_pipeline(path, client_name, *block_id),
            Op::Complete {
                path,
                client_name,
                last,
            } => self.complete(now_ms, path, client_name, last.as_ref()),
            Op::Rename { src, dst } => self.rename(now_ms, src, dst),
            Op::Delete { path, recursive } => self.delete(now_ms, path, *recursive),
            Op::SetReplication { path, replication } => self.set_replication(path, *replication),
            Op::RecoverLease { path, holder, last } => {
                self.recover_lease(now_ms, path, holder, last.as_ref())
            }
            Op::SetPermission { path, mode } => self.set_permission(path, *mode),
            Op::SetOwner { path, owner, group } => {
                self.set_owner(path, owner.as_deref(), group.as_deref())
            }
        }
    }

    /// Serializes the whole namespace (a Raft snapshot's data), after [`FORMAT_TAG`].
    pub fn to_snapshot(&self) -> Result<Vec<u8>> {
        let mut out = FORMAT_TAG.to_vec();
        out.extend(crate::frame::encode_msg(self)?);
        Ok(out)
    }

    /// Restores a namespace from [`Namespace::to_snapshot`] bytes.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Self> {
        crate::frame::decode_msg(untag(bytes, "snapshot", "2")?)
    }
}

/// Format tag at the head of every snapshot and of log entries of format 2: format 2 added
/// owners, groups and modes. Format 1 had no tag; its first byte was a varint with the high
/// bit set (a snapshot's inode count over 127 or an entry's clock), or a small count, never
/// `n` then `s`.
pub const FORMAT_TAG: &[u8; 4] = b"ns2:";
/// Format tag of log entries written now: format 3 added the caller ([`Entry::caller`]).
/// Snapshots did not change and keep [`FORMAT_TAG`].
pub const ENTRY_FORMAT_TAG: &[u8; 4] = b"ns3:";

/// The bytes after [`FORMAT_TAG`]; `what` and `formats` (those readable) name the refusal.
fn untag<'a>(bytes: &'a [u8], what: &str, formats: &str) -> Result<&'a [u8]> {
    bytes.strip_prefix(FORMAT_TAG.as_slice()).ok_or_else(|| {
        crate::error::Error::Malformed(format!(
            "namespace {what} is not of format {formats} (format 1, from before owners and \
             modes, cannot be read: start the namenodes from empty state directories)"
        ))
    })
}

/// Encodes a log entry (the data of a Raft entry), after [`ENTRY_FORMAT_TAG`].
pub fn encode_entry(entry: &Entry) -> Result<Vec<u8>> {
    let mut out = ENTRY_FORMAT_TAG.to_vec();
    out.extend(crate::frame::encode_msg(entry)?);
    Ok(out)
}

/// Decodes [`encode_entry`]'s bytes, and entries of format 2 (as the superuser's: see
/// [`Entry::caller`]); an entry of another format is a clear error.
pub fn decode_entry(bytes: &[u8]) -> Result<Entry> {
    if let Some(body) = bytes.strip_prefix(ENTRY_FORMAT_TAG.as_slice()) {
        return crate::frame::decode_msg(body);
    }
    let old: EntryV2 = crate::frame::decode_msg(untag(bytes, "log entry", "2 or 3")?)?;
    Ok(Entry {
        now_ms: old.now_ms,
        call: old.call,
        caller: None,
        op: old.op,
    })
}
