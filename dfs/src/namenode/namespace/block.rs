//! A block's generation stamp and recorded length only grow, checked on both sides of a change
//! (TigerBeetle's pair assertions).
//!
//! Before: an operation that would lower them is rejected with an error ([`check_growth`]),
//! since a client, or a leader acting on stale replica reports, can ask for it. After: every
//! applied entry is checked against the block it found ([`Namespace::assert_grown`]); that
//! assertion can only fire on a bug in here, never on an input, and then stopping this namenode
//! is better than replicating a namespace whose blocks went back in time (a replica with an
//! older stamp would count as good again, a shorter length would drop acknowledged bytes).

use super::tree::Body;
use super::{Namespace, Op};
use crate::error::{Error, Result};
use crate::protocol::Block;

/// Rejects replacing `current` by a block with a lower generation stamp or a shorter length.
pub(super) fn check_growth(p: &str, current: &Block, gen_stamp: u64, len_bytes: u64) -> Result<()> {
    if gen_stamp < current.gen_stamp {
        return Err(Error::Malformed(format!(
            "{p}: block {} has generation stamp {}, not going back to {gen_stamp}",
            current.id, current.gen_stamp
        )));
    }
    if len_bytes < current.len_bytes {
        return Err(Error::Malformed(format!(
            "{p}: block {} has {} bytes recorded, not shrinking to {len_bytes}",
            current.id, current.len_bytes
        )));
    }
    Ok(())
}

impl Namespace {
    /// The last block of the file an operation changes blocks of (the block whose stamp or
    /// length it may set), before the operation is applied.
    pub(super) fn block_before(&self, op: &Op) -> Option<Block> {
        let path = match op {
            Op::AddBlock { path, .. }
            | Op::AbandonBlock { path, .. }
            | Op::UpdatePipeline { path, .. }
            | Op::Complete { path, .. }
            | Op::RecoverLease { path, .. } => path,
            _ => return None,
        };
        let id = self.lookup(path).ok()?;
        let Body::File(f) = &self.inodes[&id].body else {
            return None;
        };
        f.blocks.last().copied()
    }

    /// Asserts that `before`, if it still belongs to a file, kept or raised its generation stamp
    /// and recorded length.
    pub(super) fn assert_grown(&self, before: &Block) {
        let Some(Body::File(f)) = self
            .block_owner
            .get(&before.id)
            .and_then(|inode| self.inodes.get(inode))
            .map(|i| &i.body)
        else {
            return; // Abandoned, dropped by lease recovery, or its file deleted.
        };
        let Some(after) = f.blocks.iter().rev().find(|b| b.id == before.id) else {
            return;
        };
        assert!(
            after.gen_stamp >= before.gen_stamp && after.len_bytes >= before.len_bytes,
            "block {} went back from {before:?} to {after:?}",
            before.id
        );
    }
}
