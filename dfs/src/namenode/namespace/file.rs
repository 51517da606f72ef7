//! Files and their blocks: creating a file, appending, abandoning and restamping its last
//! block, closing it, and its replication factor.

use super::block::check_growth;
use super::tree::{Body, FileMeta};
use super::{Namespace, Outcome, MAX_BLOCKS_PER_FILE, MAX_REPLICATION};
use crate::error::{Error, Result};
use crate::path;
use crate::protocol::Block;

impl Namespace {
    pub(super) fn create(
        &mut self,
        now_ms: u64,
        p: &str,
        replication: u32,
        block_size_bytes: u64,
        (overwrite, require_parent): (bool, bool),
        (client, owner): (&str, &str),
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
        let parent = self.mkdirs(now_ms, &parent_path, owner)?;
        let meta = FileMeta {
            replication,
            block_size_bytes,
            blocks: Vec::new(),
            lease_holder: Some(client.to_string()),
        };
        let id = self.insert_child(parent, name, (now_ms, owner), Body::File(meta));
        Ok(Outcome::Status(self.status_of(id)))
    }

    /// Removes an existing file that `create` may overwrite, or says why it may not.
    pub(super) fn replace_existing(
        &mut self,
        now_ms: u64,
        id: u64,
        p: &str,
        overwrite: bool,
    ) -> Result<()> {
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

    pub(super) fn add_block(
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
            check_growth(p, last, last.gen_stamp, prev.len_bytes)?;
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

    pub(super) fn abandon_block(
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

    pub(super) fn update_pipeline(
        &mut self,
        p: &str,
        client: &str,
        block_id: u64,
    ) -> Result<Outcome> {
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

    pub(super) fn complete(
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
            check_growth(p, block, block.gen_stamp, l.len_bytes)?;
            block.len_bytes = l.len_bytes;
        }
        file.lease_holder = None;
        self.touch(inode, now_ms);
        Ok(Outcome::Completed(true))
    }

    pub(super) fn set_replication(&mut self, p: &str, replication: u32) -> Result<Outcome> {
        if !(1..=MAX_REPLICATION).contains(&replication) {
            return Err(Error::Config(format!(
                "replication {replication} is not in 1..={MAX_REPLICATION}"
            )));
        }
        let id = self.lookup(p)?;
        self.file_mut(id, p)?.replication = replication;
        Ok(Outcome::Done)
    }
}

/// Checks that `claimed` names the file's current last block (or both are absent).
pub(super) fn check_last(p: &str, file: &FileMeta, claimed: Option<&Block>) -> Result<()> {
    let last = file.blocks.last().map(|b| b.id);
    let claimed = claimed.map(|b| b.id);
    if claimed != last {
        return Err(Error::Malformed(format!(
            "{p}: the client's last block is {}, but the file's is {}",
            block_name(claimed),
            block_name(last)
        )));
    }
    Ok(())
}

/// "block N", or "none" for a file without blocks (a message for people, not `Some(N)`).
fn block_name(id: Option<u64>) -> String {
    id.map_or_else(|| "none".to_owned(), |id| format!("block {id}"))
}
