//! Read-only views of the namespace: statuses, listings, summaries, block layouts and the block
//! owners the block map asks about.

use super::tree::Body;
use super::{BlockOwner, FileLayout, Namespace, MAX_LIST_ENTRIES};
use crate::error::Result;
use crate::protocol::{Block, ContentSummary, FileKind, FileStatus};

impl Namespace {
    pub(super) fn status_of(&self, id: u64) -> FileStatus {
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
                owner: inode.owner.clone(),
                group: inode.group.clone(),
                mode: inode.mode,
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
                owner: inode.owner.clone(),
                group: inode.group.clone(),
                mode: inode.mode,
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

    /// Number of inodes (files and directories, root included).
    pub fn inode_count(&self) -> u64 {
        self.inodes.len() as u64
    }

    /// The next generation stamp that will be handed out (for lease recovery proposals).
    pub fn next_gen_stamp(&self) -> u64 {
        self.next_gen_stamp
    }
}
