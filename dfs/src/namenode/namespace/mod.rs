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

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::path;
use crate::protocol::{Block, CallId, ContentSummary, FileKind, FileStatus, WireError};

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
}

/// One committed log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Leader's wall clock when it proposed the entry.
    pub now_ms: u64,
    /// Retry identity of a non-idempotent client call.
    pub call: Option<CallId>,
    /// The operation.
    pub op: Op,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileMeta {
    replication: u32,
    block_size_bytes: u64,
    blocks: Vec<Block>,
    lease_holder: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Body {
    Dir(BTreeMap<String, u64>),
    File(FileMeta),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Inode {
    parent: u64,
    name: String,
    mtime_ms: u64,
    body: Body,
}

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

fn not_found(p: &str) -> Error {
    Error::NotFound(p.to_string())
}

impl Namespace {
    /// An empty namespace holding only `/`.
    pub fn new() -> Self {
        let root = Inode {
            parent: ROOT,
            name: String::new(),
            mtime_ms: 0,
            body: Body::Dir(BTreeMap::new()),
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
        let result = self
            .apply_op(entry.now_ms, &entry.op)
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

    fn apply_op(&mut self, now_ms: u64, op: &Op) -> Result<Outcome> {
        match op {
            Op::Mkdirs { path } => self.mkdirs(now_ms, path).map(|_| Outcome::Done),
            Op::Create {
                path,
                replication,
                block_size_bytes,
                overwrite,
                require_parent,
                client_name,
            } => self.create(
                now_ms,
                path,
                *replication,
                *block_size_bytes,
                (*overwrite, *require_parent),
                client_name,
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
        }
    }

    // ----- lookups -----

    fn lookup(&self, p: &str) -> Result<u64> {
        let mut id = ROOT;
        for c in path::validate(p)? {
            let Body::Dir(children) = &self.inodes[&id].body else {
                return Err(Error::WrongKind(format!("{p}: a parent is a file")));
            };
            id = *children.get(c).ok_or_else(|| not_found(p))?;
        }
        Ok(id)
    }

    fn path_of(&self, mut id: u64) -> String {
        let mut parts = Vec::new();
        while id != ROOT {
            let inode = &self.inodes[&id];
            parts.push(inode.name.as_str());
            id = inode.parent;
        }
        parts.reverse();
        path::join(&parts)
    }

    fn file(&self, id: u64, p: &str) -> Result<&FileMeta> {
        match &self.inodes[&id].body {
            Body::File(f) => Ok(f),
            Body::Dir(_) => Err(Error::WrongKind(format!("{p} is a directory"))),
        }
    }

    fn file_mut(&mut self, id: u64, p: &str) -> Result<&mut FileMeta> {
        match &mut self
            .inodes
            .get_mut(&id)
            .expect("looked-up inode exists")
            .body
        {
            Body::File(f) => Ok(f),
            Body::Dir(_) => Err(Error::WrongKind(format!("{p} is a directory"))),
        }
    }

    /// The file at `p` under construction by `client`.
    fn leased_file_mut(&mut self, p: &str, client: &str) -> Result<(u64, &mut FileMeta)> {
        let id = self.lookup(p)?;
        let file = self.file_mut(id, p)?;
        match &file.lease_holder {
            Some(h) if h == client => Ok((id, file)),
            Some(h) => Err(Error::Lease(format!(
                "{p} is being written by {h}, not {client}"
            ))),
            None => Err(Error::Lease(format!(
                "{p} is not open for writing (no lease)"
            ))),
        }
    }

    fn children_mut(&mut self, id: u64) -> &mut BTreeMap<String, u64> {
        match &mut self.inodes.get_mut(&id).expect("parent exists").body {
            Body::Dir(c) => c,
            Body::File(_) => unreachable!("callers check that the parent is a directory"),
        }
    }

    fn touch(&mut self, id: u64, now_ms: u64) {
        if let Some(inode) = self.inodes.get_mut(&id) {
            inode.mtime_ms = inode.mtime_ms.max(now_ms);
        }
    }

    fn insert_child(&mut self, parent: u64, name: &str, now_ms: u64, body: Body) -> u64 {
        let id = self.next_inode_id;
        self.next_inode_id += 1;
        let inode = Inode {
            parent,
            name: name.to_string(),
            mtime_ms: now_ms,
            body,
        };
        self.inodes.insert(id, inode);
        self.children_mut(parent).insert(name.to_string(), id);
        self.touch(parent, now_ms);
        id
    }

    // ----- operations -----

    /// Creates `p` and its missing parents; returns the directory's inode id.
    fn mkdirs(&mut self, now_ms: u64, p: &str) -> Result<u64> {
        let components = path::validate(p)?;
        let mut id = ROOT;
        for c in components {
            let Body::Dir(children) = &self.inodes[&id].body else {
                return Err(Error::WrongKind(format!(
                    "{p}: {} is a file",
                    self.path_of(id)
                )));
            };
            id = match children.get(c) {
                Some(&child) => child,
                None => self.insert_child(id, c, now_ms, Body::Dir(BTreeMap::new())),
            };
        }
        match self.inodes[&id].body {
            Body::Dir(_) => Ok(id),
            Body::File(_) => Err(Error::WrongKind(format!("{p} is a file"))),
        }
    }

    fn create(
        &mut self,
        now_ms: u64,
        p: &str,
        replication: u32,
        block_size_bytes: u64,
        (overwrite, require_parent): (bool, bool),
        client: &str,
    ) -> Result<Outcome> {
        let components = path::validate(p)?;
        let Some((name, parents)) = components.split_last() else {
            return Err(Error::WrongKind("/ is a directory".into()));
        };
        if !(1..=MAX_REPLICATION).contains(&replication) {
            return Err(Error::Config(format!(
                "replication {replication} is not in 1..={MAX_REPLICATION}"
            )));
        }
        if block_size_bytes < 512 || block_size_bytes & 511 != 0 {
            return Err(Error::Config(format!(
                "block size {block_size_bytes} is not a positive multiple of 512"
            )));
        }
        match self.lookup(p) {
            Ok(id) => self.replace_existing(now_ms, id, p, overwrite)?,
            Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let parent_path = path::join(parents);
        if require_parent {
            // Lets a writer that may be stale (a task attempt whose job has ended) fail
            // instead of recreating a directory that was deliberately removed.
            match self.lookup(&parent_path) {
                Ok(_) => {}
                Err(Error::NotFound(_)) => {
                    return Err(Error::NotFound(format!("{parent_path} (parent of {p})")))
                }
                Err(e) => return Err(e),
            }
        }
        let parent = self.mkdirs(now_ms, &parent_path)?;
        let meta = FileMeta {
            replication,
            block_size_bytes,
            blocks: Vec::new(),
            lease_holder: Some(client.to_string()),
        };
        let id = self.insert_child(parent, name, now_ms, Body::File(meta));
        Ok(Outcome::Status(self.status_of(id)))
    }

    /// Removes an existing file that `create` may overwrite, or says why it may not.
    fn replace_existing(&mut self, now_ms: u64, id: u64, p: &str, overwrite: bool) -> Result<()> {
        let file = self.file(id, p)?;
        if let Some(holder) = &file.lease_holder {
            return Err(Error::Lease(format!("{p} is being written by {holder}")));
        }
        if !overwrite {
            return Err(Error::AlreadyExists(p.to_string()));
        }
        self.remove_subtree(now_ms, id);
        Ok(())
    }

    fn add_block(
        &mut self,
        now_ms: u64,
        p: &str,
        client: &str,
        previous: Option<&Block>,
    ) -> Result<Outcome> {
        let id = self.next_block_id;
        let gen_stamp = self.next_gen_stamp;
        let (inode, file) = self.leased_file_mut(p, client)?;
        check_last(p, file, previous)?;
        if let (Some(prev), Some(last)) = (previous, file.blocks.last_mut()) {
            if prev.len_bytes > file.block_size_bytes {
                return Err(Error::Malformed(format!(
                    "block {} longer than the block size",
                    prev.id
                )));
            }
            last.len_bytes = prev.len_bytes;
        }
        if file.blocks.len() >= MAX_BLOCKS_PER_FILE {
            return Err(Error::Unavailable(format!(
                "{p} has reached {MAX_BLOCKS_PER_FILE} blocks"
            )));
        }
        let block = Block {
            id,
            gen_stamp,
            len_bytes: 0,
        };
        file.blocks.push(block);
        self.next_block_id += 1;
        self.next_gen_stamp += 1;
        self.block_owner.insert(id, inode);
        self.touch(inode, now_ms);
        Ok(Outcome::Block(block))
    }

    fn abandon_block(
        &mut self,
        now_ms: u64,
        p: &str,
        client: &str,
        block_id: u64,
    ) -> Result<Outcome> {
        let (inode, file) = self.leased_file_mut(p, client)?;
        if file.blocks.last().map(|b| b.id) != Some(block_id) {
            return Err(Error::Malformed(format!(
                "block {block_id} is not the last block of {p}"
            )));
        }
        file.blocks.pop();
        self.block_owner.remove(&block_id);
        self.touch(inode, now_ms);
        Ok(Outcome::Done)
    }

    fn update_pipeline(&mut self, p: &str, client: &str, block_id: u64) -> Result<Outcome> {
        let gen_stamp = self.next_gen_stamp;
        let (_, file) = self.leased_file_mut(p, client)?;
        let Some(last) = file.blocks.last_mut().filter(|b| b.id == block_id) else {
            return Err(Error::Malformed(format!(
                "block {block_id} is not the last block of {p}"
            )));
        };
        last.gen_stamp = gen_stamp;
        let block = *last;
        self.next_gen_stamp += 1;
        Ok(Outcome::Block(block))
    }

    fn complete(
        &mut self,
        now_ms: u64,
        p: &str,
        client: &str,
        last: Option<&Block>,
    ) -> Result<Outcome> {
        let id = self.lookup(p)?;
        let file = self.file_mut(id, p)?;
        let same_end =
            last.map(|b| (b.id, b.len_bytes)) == file.blocks.last().map(|b| (b.id, b.len_bytes));
        if file.lease_holder.is_none() && same_end {
            // Already closed by an earlier attempt of this same call: say so again. A file that
            // lease recovery closed at another length is not "the same close": the writer
            // gets the lease error, not a success for bytes the file does not hold.
            return Ok(Outcome::Completed(true));
        }
        let (inode, file) = self.leased_file_mut(p, client)?;
        check_last(p, file, last)?;
        if let (Some(l), Some(block)) = (last, file.blocks.last_mut()) {
            block.len_bytes = l.len_bytes;
        }
        file.lease_holder = None;
        self.touch(inode, now_ms);
        Ok(Outcome::Completed(true))
    }

    fn recover_lease(
        &mut self,
        now_ms: u64,
        p: &str,
        holder: &str,
        last: Option<&Block>,
    ) -> Result<Outcome> {
        let (inode, file) = self.leased_file_mut(p, holder)?;
        match (last, file.blocks.last().copied()) {
            (Some(l), Some(b)) if l.id == b.id => *file.blocks.last_mut().expect("checked") = *l,
            (None, Some(b)) => {
                file.blocks.pop();
                self.block_owner.remove(&b.id);
            }
            (None, None) => {}
            _ => {
                return Err(Error::Malformed(format!(
                    "recovered block is not the last block of {p}"
                )))
            }
        }
        let file = self.file_mut(inode, p)?;
        file.lease_holder = None;
        self.next_gen_stamp = self.next_gen_stamp.max(last.map_or(0, |b| b.gen_stamp) + 1);
        self.touch(inode, now_ms);
        Ok(Outcome::Done)
    }

    fn rename(&mut self, now_ms: u64, src: &str, dst: &str) -> Result<Outcome> {
        let src_id = self.lookup(src)?;
        if src_id == ROOT {
            return Err(Error::WrongKind("cannot rename /".into()));
        }
        let dst_components = path::validate(dst)?;
        let (dst_parent, dst_name) = match self.lookup(dst) {
            // `mv a dir` moves a into dir, as a shell user expects.
            Ok(id) if matches!(self.inodes[&id].body, Body::Dir(_)) => {
                (id, self.inodes[&src_id].name.clone())
            }
            Ok(_) => return Err(Error::AlreadyExists(dst.to_string())),
            Err(Error::NotFound(_)) => {
                let (name, parents) = dst_components
                    .split_last()
                    .expect("dst exists unless non-root");
                let parent = self.lookup(&path::join(parents))?;
                (parent, (*name).to_string())
            }
            Err(e) => return Err(e),
        };
        if !matches!(self.inodes[&dst_parent].body, Body::Dir(_)) {
            return Err(Error::WrongKind(format!("parent of {dst} is a file")));
        }
        if self.is_ancestor_or_self(src_id, dst_parent) {
            return Err(Error::WrongKind(format!(
                "cannot move {src} inside itself ({dst})"
            )));
        }
        if let Body::Dir(c) = &self.inodes[&dst_parent].body {
            if c.contains_key(&dst_name) {
                return Err(Error::AlreadyExists(format!(
                    "{}/{dst_name}",
                    self.path_of(dst_parent)
                )));
            }
        }
        let old_parent = self.inodes[&src_id].parent;
        let old_name = self.inodes[&src_id].name.clone();
        self.children_mut(old_parent).remove(&old_name);
        self.children_mut(dst_parent)
            .insert(dst_name.clone(), src_id);
        let inode = self.inodes.get_mut(&src_id).expect("exists");
        inode.parent = dst_parent;
        inode.name = dst_name;
        self.touch(old_parent, now_ms);
        self.touch(dst_parent, now_ms);
        Ok(Outcome::Done)
    }

    fn is_ancestor_or_self(&self, ancestor: u64, mut id: u64) -> bool {
        loop {
            if id == ancestor {
                return true;
            }
            if id == ROOT {
                return false;
            }
            id = self.inodes[&id].parent;
        }
    }

    fn delete(&mut self, now_ms: u64, p: &str, recursive: bool) -> Result<Outcome> {
        let id = match self.lookup(p) {
            Ok(id) => id,
            Err(Error::NotFound(_)) => return Ok(Outcome::Deleted(false)),
            Err(e) => return Err(e),
        };
        if id == ROOT {
            return Err(Error::WrongKind("refusing to delete /".into()));
        }
        if let Body::Dir(children) = &self.inodes[&id].body {
            if !children.is_empty() && !recursive {
                return Err(Error::WrongKind(format!(
                    "{p} is a non-empty directory (use recursive)"
                )));
            }
        }
        self.remove_subtree(now_ms, id);
        Ok(Outcome::Deleted(true))
    }

    /// Unlinks `id` from its parent and drops it and everything below it.
    fn remove_subtree(&mut self, now_ms: u64, id: u64) {
        let parent = self.inodes[&id].parent;
        let name = self.inodes[&id].name.clone();
        self.children_mut(parent).remove(&name);
        self.touch(parent, now_ms);
        let mut stack = vec![id];
        while let Some(next) = stack.pop() {
            let Some(inode) = self.inodes.remove(&next) else {
                continue;
            };
            match inode.body {
                Body::Dir(children) => stack.extend(children.values()),
                Body::File(f) => {
                    for b in f.blocks {
                        self.block_owner.remove(&b.id);
                    }
                }
            }
        }
    }

    fn set_replication(&mut self, p: &str, replication: u32) -> Result<Outcome> {
        if !(1..=MAX_REPLICATION).contains(&replication) {
            return Err(Error::Config(format!(
                "replication {replication} is not in 1..={MAX_REPLICATION}"
            )));
        }
        let id = self.lookup(p)?;
        self.file_mut(id, p)?.replication = replication;
        Ok(Outcome::Done)
    }

    // ----- reads -----

    fn status_of(&self, id: u64) -> FileStatus {
        let inode = &self.inodes[&id];
        let path = self.path_of(id);
        match &inode.body {
            Body::Dir(children) => FileStatus {
                path,
                kind: FileKind::Dir,
                len_bytes: 0,
                replication: 0,
                block_size_bytes: 0,
                mtime_ms: inode.mtime_ms,
                under_construction: false,
                count: children.len() as u64,
            },
            Body::File(f) => FileStatus {
                path,
                kind: FileKind::File,
                len_bytes: f.blocks.iter().map(|b| b.len_bytes).sum(),
                replication: f.replication,
                block_size_bytes: f.block_size_bytes,
                mtime_ms: inode.mtime_ms,
                under_construction: f.lease_holder.is_some(),
                count: f.blocks.len() as u64,
            },
        }
    }

    /// Status of a path.
    pub fn stat(&self, p: &str) -> Result<FileStatus> {
        Ok(self.status_of(self.lookup(p)?))
    }

    /// Children of a directory in name order after `start_after`, at most `limit`
    /// (capped at [`MAX_LIST_ENTRIES`]); a file lists itself.
    pub fn list(
        &self,
        p: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FileStatus>> {
        let id = self.lookup(p)?;
        let Body::Dir(children) = &self.inodes[&id].body else {
            return Ok(vec![self.status_of(id)]);
        };
        let limit = limit.min(MAX_LIST_ENTRIES);
        let range = match start_after {
            Some(s) => {
                children.range::<str, _>((std::ops::Bound::Excluded(s), std::ops::Bound::Unbounded))
            }
            None => children.range::<str, _>(..),
        };
        Ok(range.take(limit).map(|(_, &c)| self.status_of(c)).collect())
    }

    /// Totals under a path.
    pub fn content_summary(&self, p: &str) -> Result<ContentSummary> {
        let mut sum = ContentSummary::default();
        let mut stack = vec![self.lookup(p)?];
        while let Some(id) = stack.pop() {
            match &self.inodes[&id].body {
                Body::Dir(children) => {
                    sum.dirs += 1;
                    stack.extend(children.values());
                }
                Body::File(f) => {
                    let len: u64 = f.blocks.iter().map(|b| b.len_bytes).sum();
                    sum.files += 1;
                    sum.len_bytes += len;
                    sum.raw_len_bytes += len * u64::from(f.replication);
                }
            }
        }
        Ok(sum)
    }

    /// A file's blocks overlapping `[offset, offset + len)`, each with its file offset; plus the
    /// file length and whether it is under construction.
    pub fn file_blocks(&self, p: &str, offset_bytes: u64, len_bytes: u64) -> Result<FileLayout> {
        let id = self.lookup(p)?;
        let file = self.file(id, p)?;
        let end = offset_bytes.saturating_add(len_bytes);
        let mut pos = 0u64;
        let mut out = Vec::new();
        for b in &file.blocks {
            let block_end = pos + b.len_bytes;
            // An empty last block (being written) still overlaps a read at its offset.
            let overlaps = block_end > offset_bytes || (b.len_bytes == 0 && pos >= offset_bytes);
            if overlaps && pos < end.max(offset_bytes + 1) {
                out.push((*b, pos));
            }
            pos = block_end;
        }
        Ok(FileLayout {
            len_bytes: pos,
            under_construction: file.lease_holder.is_some(),
            blocks: out,
        })
    }

    /// Every file under `p` (itself if a file) with its replication and blocks, at most `limit`.
    pub fn files_under(&self, p: &str, limit: usize) -> Result<Vec<(String, u32, Vec<Block>)>> {
        let mut out = Vec::new();
        let mut stack = vec![self.lookup(p)?];
        while let Some(id) = stack.pop() {
            if out.len() >= limit {
                break;
            }
            match &self.inodes[&id].body {
                Body::Dir(children) => stack.extend(children.values().rev()),
                Body::File(f) => out.push((self.path_of(id), f.replication, f.blocks.clone())),
            }
        }
        Ok(out)
    }

    /// The owning file's view of block `id`, if the block belongs to a file.
    pub fn block(&self, id: u64) -> Option<BlockOwner> {
        let inode = self.block_owner.get(&id)?;
        let Body::File(f) = &self.inodes.get(inode)?.body else {
            return None;
        };
        let pos = f.blocks.iter().position(|b| b.id == id)?;
        Some(BlockOwner {
            block: f.blocks[pos],
            replication: f.replication,
            under_construction: f.lease_holder.is_some() && pos + 1 == f.blocks.len(),
        })
    }

    /// True when `id` was allocated and has since been removed (so a replica of it is garbage).
    /// Ids not yet allocated here are not garbage: this replica may be ahead of us.
    pub fn is_deleted_block(&self, id: u64) -> bool {
        id < self.next_block_id && !self.block_owner.contains_key(&id)
    }

    /// Every block that belongs to a file, with its owner's view.
    pub fn all_blocks(&self) -> impl Iterator<Item = BlockOwner> + '_ {
        self.block_owner.keys().filter_map(|&id| self.block(id))
    }

    /// Files under construction, for the leader's lease monitor.
    pub fn open_files(&self) -> Vec<OpenFile> {
        let mut out = Vec::new();
        for (&id, inode) in &self.inodes {
            if let Body::File(FileMeta {
                lease_holder: Some(holder),
                blocks,
                ..
            }) = &inode.body
            {
                out.push(OpenFile {
                    path: self.path_of(id),
                    holder: holder.clone(),
                    last_block: blocks.last().copied(),
                });
            }
        }
        out
    }

    /// The file at `p` if it is under construction.
    pub fn open_file(&self, p: &str) -> Option<OpenFile> {
        let id = self.lookup(p).ok()?;
        let Body::File(f) = &self.inodes[&id].body else {
            return None;
        };
        Some(OpenFile {
            path: self.path_of(id),
            holder: f.lease_holder.clone()?,
            last_block: f.blocks.last().copied(),
        })
    }

    /// Number of inodes (files and directories, root included).
    pub fn inode_count(&self) -> u64 {
        self.inodes.len() as u64
    }

    /// The next generation stamp that will be handed out (for lease recovery proposals).
    pub fn next_gen_stamp(&self) -> u64 {
        self.next_gen_stamp
    }

    /// Serializes the whole namespace (a Raft snapshot's data).
    pub fn to_snapshot(&self) -> Result<Vec<u8>> {
        crate::frame::encode_msg(self)
    }

    /// Restores a namespace from [`Namespace::to_snapshot`] bytes.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Self> {
        crate::frame::decode_msg(bytes)
    }
}

/// Checks that `claimed` names the file's current last block (or both are absent).
fn check_last(p: &str, file: &FileMeta, claimed: Option<&Block>) -> Result<()> {
    let last = file.blocks.last().map(|b| b.id);
    if claimed.map(|b| b.id) != last {
        return Err(Error::Malformed(format!(
            "{p}: the client's last block {:?} is not the file's last block {last:?}",
            claimed.map(|b| b.id)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn e(op: Op) -> Entry {
        Entry {
            now_ms: 1,
            call: None,
            op,
        }
    }

    fn create(ns: &mut Namespace, p: &str, client: &str) -> OpResult {
        ns.apply(&e(Op::Create {
            path: p.into(),
            replication: 3,
            block_size_bytes: 1024,
            overwrite: false,
            require_parent: false,
            client_name: client.into(),
        }))
    }

    fn add_block(ns: &mut Namespace, p: &str, prev: Option<Block>) -> Block {
        match ns.apply(&e(Op::AddBlock {
            path: p.into(),
            client_name: "c".into(),
            previous: prev,
        })) {
            Ok(Outcome::Block(b)) => b,
            other => panic!("{other:?}"),
        }
    }

    fn kind(r: OpResult) -> ErrorKind {
        r.unwrap_err().kind
    }

    #[test]
    fn create_with_require_parent_does_not_recreate_a_removed_directory() {
        let mut ns = Namespace::default();
        let op = |p: &str| {
            e(Op::Create {
                path: p.into(),
                replication: 3,
                block_size_bytes: 1024,
                overwrite: false,
                require_parent: true,
                client_name: "c".into(),
            })
        };
        assert_eq!(
            kind(ns.apply(&op("/out/_temporary/a/part"))),
            ErrorKind::NotFound
        );
        assert!(ns.lookup("/out").is_err(), "nothing was created");
        ns.apply(&e(Op::Mkdirs {
            path: "/out/_temporary/a".into(),
        }))
        .unwrap();
        ns.apply(&op("/out/_temporary/a/part")).unwrap();
    }

    #[test]
    fn mkdirs_creates_parents_and_is_idempotent() {
        let mut ns = Namespace::new();
        ns.apply(&e(Op::Mkdirs {
            path: "/a/b/c".into(),
        }))
        .unwrap();
        ns.apply(&e(Op::Mkdirs {
            path: "/a/b".into(),
        }))
        .unwrap();
        assert_eq!(ns.stat("/a/b").unwrap().kind, FileKind::Dir);
        assert_eq!(ns.list("/a", None, 100).unwrap().len(), 1);
        assert_eq!(
            kind(ns.apply(&e(Op::Mkdirs { path: "a/b".into() }))),
            ErrorKind::InvalidPath
        );
    }

    #[test]
    fn write_a_file_block_by_block() {
        let mut ns = Namespace::new();
        create(&mut ns, "/d/f", "c").unwrap();
        assert!(ns.stat("/d/f").unwrap().under_construction);
        let b1 = add_block(&mut ns, "/d/f", None);
        let b2 = add_block(
            &mut ns,
            "/d/f",
            Some(Block {
                len_bytes: 1024,
                ..b1
            }),
        );
        assert_ne!(b1.id, b2.id);
        let done = ns.apply(&e(Op::Complete {
            path: "/d/f".into(),
            client_name: "c".into(),
            last: Some(Block {
                len_bytes: 10,
                ..b2
            }),
        }));
        assert_eq!(done, Ok(Outcome::Completed(true)));
        let st = ns.stat("/d/f").unwrap();
        assert_eq!(
            (st.len_bytes, st.count, st.under_construction),
            (1034, 2, false)
        );
        let layout = ns.file_blocks("/d/f", 1000, 100).unwrap();
        assert_eq!(
            (
                layout.len_bytes,
                layout.under_construction,
                layout.blocks.len()
            ),
            (1034, false, 2)
        );
        assert_eq!(layout.blocks[1].1, 1024);
        assert_eq!(ns.file_blocks("/d/f", 1024, 1).unwrap().blocks.len(), 1);
        assert_eq!(ns.block(b2.id).unwrap().replication, 3);
    }

    #[test]
    fn leases_are_exclusive() {
        let mut ns = Namespace::new();
        create(&mut ns, "/f", "c").unwrap();
        assert_eq!(kind(create(&mut ns, "/f", "other")), ErrorKind::Lease);
        let add = Op::AddBlock {
            path: "/f".into(),
            client_name: "other".into(),
            previous: None,
        };
        assert_eq!(kind(ns.apply(&e(add))), ErrorKind::Lease);
        ns.apply(&e(Op::Complete {
            path: "/f".into(),
            client_name: "c".into(),
            last: None,
        }))
        .unwrap();
        assert_eq!(kind(create(&mut ns, "/f", "c")), ErrorKind::AlreadyExists);
    }

    #[test]
    fn rename_and_delete() {
        let mut ns = Namespace::new();
        ns.apply(&e(Op::Mkdirs {
            path: "/a/b".into(),
        }))
        .unwrap();
        ns.apply(&e(Op::Mkdirs { path: "/x".into() })).unwrap();
        create(&mut ns, "/a/b/f", "c").unwrap();
        let b = add_block(&mut ns, "/a/b/f", None);
        ns.apply(&e(Op::Rename {
            src: "/a".into(),
            dst: "/x".into(),
        }))
        .unwrap();
        assert!(ns.stat("/x/a/b/f").is_ok());
        let inside = Op::Rename {
            src: "/x".into(),
            dst: "/x/a/y".into(),
        };
        assert_eq!(kind(ns.apply(&e(inside))), ErrorKind::WrongKind);
        ns.apply(&e(Op::Rename {
            src: "/x/a/b/f".into(),
            dst: "/g".into(),
        }))
        .unwrap();
        assert_eq!(ns.stat("/g").unwrap().path, "/g");
        let not_empty = Op::Delete {
            path: "/x".into(),
            recursive: false,
        };
        assert_eq!(kind(ns.apply(&e(not_empty))), ErrorKind::WrongKind);
        assert_eq!(
            ns.apply(&e(Op::Delete {
                path: "/x".into(),
                recursive: true
            })),
            Ok(Outcome::Deleted(true))
        );
        assert_eq!(
            ns.apply(&e(Op::Delete {
                path: "/x".into(),
                recursive: true
            })),
            Ok(Outcome::Deleted(false))
        );
        assert!(!ns.is_deleted_block(b.id));
        ns.apply(&e(Op::Delete {
            path: "/g".into(),
            recursive: false,
        }))
        .unwrap();
        assert!(ns.is_deleted_block(b.id));
        assert!(!ns.is_deleted_block(b.id + 1000));
        assert_eq!(ns.inode_count(), 1);
    }

    #[test]
    fn retried_call_takes_effect_once() {
        let mut ns = Namespace::new();
        let call = Some(CallId {
            client_id: 9,
            call_id: 1,
        });
        let entry = Entry {
            now_ms: 5,
            call,
            op: Op::Create {
                path: "/f".into(),
                replication: 1,
                block_size_bytes: 512,
                overwrite: false,
                require_parent: false,
                client_name: "c".into(),
            },
        };
        let first = ns.apply(&entry);
        assert!(first.is_ok());
        assert_eq!(ns.apply(&entry), first);
        let del = Entry {
            now_ms: 6,
            call: Some(CallId {
                client_id: 9,
                call_id: 2,
            }),
            op: Op::Delete {
                path: "/f".into(),
                recursive: false,
            },
        };
        let first = ns.apply(&del);
        assert_eq!(ns.apply(&del), first);
        assert_eq!(first, Ok(Outcome::Deleted(true)));
    }

    #[test]
    fn lease_recovery_closes_at_recovered_length() {
        let mut ns = Namespace::new();
        create(&mut ns, "/f", "c").unwrap();
        let b1 = add_block(&mut ns, "/f", None);
        let b2 = add_block(
            &mut ns,
            "/f",
            Some(Block {
                len_bytes: 1024,
                ..b1
            }),
        );
        let recovered = Block {
            id: b2.id,
            gen_stamp: ns.next_gen_stamp(),
            len_bytes: 77,
        };
        let op = Op::RecoverLease {
            path: "/f".into(),
            holder: "c".into(),
            last: Some(recovered),
        };
        ns.apply(&e(op)).unwrap();
        let st = ns.stat("/f").unwrap();
        assert_eq!((st.len_bytes, st.under_construction), (1101, false));
        assert!(ns.next_gen_stamp() > recovered.gen_stamp);
        // The expired writer, back too late, must not be told its longer file was closed.
        let late = ns.apply(&e(Op::Complete {
            path: "/f".into(),
            client_name: "c".into(),
            last: Some(Block {
                len_bytes: 500,
                ..b2
            }),
        }));
        assert!(late.is_err(), "{late:?}");
        // A file whose last block never reached a datanode loses that block.
        create(&mut ns, "/g", "c").unwrap();
        let b = add_block(&mut ns, "/g", None);
        ns.apply(&e(Op::RecoverLease {
            path: "/g".into(),
            holder: "c".into(),
            last: None,
        }))
        .unwrap();
        assert_eq!(ns.stat("/g").unwrap().count, 0);
        assert!(ns.is_deleted_block(b.id));
    }

    #[test]
    fn snapshot_round_trips() {
        let mut ns = Namespace::new();
        create(&mut ns, "/a/f", "c").unwrap();
        add_block(&mut ns, "/a/f", None);
        let back = Namespace::from_snapshot(&ns.to_snapshot().unwrap()).unwrap();
        assert_eq!(back, ns);
        assert_eq!(back.open_files().len(), 1);
    }

    /// A random op over a small set of paths, so ops often collide.
    fn random_op(rng: &mut impl rand::Rng) -> Op {
        const PATHS: [&str; 7] = ["/a", "/a/b", "/a/b/c", "/x", "/x/y", "/f", "/a/f"];
        let p = PATHS[rng.gen_range(0..PATHS.len())].to_string();
        let q = PATHS[rng.gen_range(0..PATHS.len())].to_string();
        let client = ["c1", "c2"][rng.gen_range(0..2)].to_string();
        let flag = rng.gen();
        match rng.gen_range(0..8) {
            0 => Op::Mkdirs { path: p },
            1 => Op::Create {
                path: p,
                replication: 2,
                block_size_bytes: 512,
                overwrite: flag,
                require_parent: false,
                client_name: client,
            },
            2 => Op::AddBlock {
                path: p,
                client_name: client,
                previous: None,
            },
            3 => Op::Complete {
                path: p,
                client_name: client,
                last: None,
            },
            4 => Op::Rename { src: p, dst: q },
            5 => Op::Delete {
                path: p,
                recursive: flag,
            },
            6 => Op::SetReplication {
                path: p,
                replication: rng.gen_range(0..4),
            },
            _ => Op::RecoverLease {
                path: p,
                holder: client,
                last: None,
            },
        }
    }

    // Checks G1's premise: the namespace is deterministic, so replicas that apply the same log
    // (one of them from a snapshot taken midway) end identical, results included.
    #[test]
    fn replicas_applying_the_same_log_agree() {
        use rand::{Rng, SeedableRng};
        let seed: u64 = std::env::var("SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(rand::random);
        println!("SEED={seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let log: Vec<Entry> = (0..400)
            .map(|i| Entry {
                now_ms: i,
                call: Some(CallId {
                    client_id: i % 3,
                    call_id: i,
                }),
                op: random_op(&mut rng),
            })
            .collect();
        let cut = rng.gen_range(0..log.len());
        let mut a = Namespace::new();
        let mut b = Namespace::new();
        let mut results_a = Vec::new();
        for (i, e) in log.iter().enumerate() {
            results_a.push(a.apply(e));
            if i == cut {
                b = Namespace::from_snapshot(&a.to_snapshot().unwrap()).unwrap();
            }
        }
        for (e, first) in log.iter().zip(&results_a).skip(cut + 1) {
            assert_eq!(&b.apply(e), first, "SEED={seed}");
        }
        let failures = results_a.iter().filter(|r| r.is_err()).count();
        assert!(
            failures < results_a.len(),
            "every op failed: the test exercises nothing"
        );
        assert_eq!(a, b, "SEED={seed}");
        // Replaying the whole log again (as after a restart without snapshot) answers from the
        // retry cache with the first results.
        for (e, first) in log.iter().zip(&results_a).skip(log.len() - 50) {
            assert_eq!(&a.apply(e), first, "SEED={seed}");
        }
    }

    #[test]
    fn list_pages_in_name_order() {
        let mut ns = Namespace::new();
        for n in ["c", "a", "b"] {
            ns.apply(&e(Op::Mkdirs {
                path: format!("/d/{n}"),
            }))
            .unwrap();
        }
        let names = |v: Vec<FileStatus>| v.into_iter().map(|s| s.path).collect::<Vec<_>>();
        assert_eq!(names(ns.list("/d", None, 2).unwrap()), ["/d/a", "/d/b"]);
        assert_eq!(names(ns.list("/d", Some("b"), 2).unwrap()), ["/d/c"]);
    }
}
