//! Writer leases: only the holder may change a file under construction; lease recovery closes
//! a file whose holder went silent; the leader's lease monitor lists the open files.

use super::block::check_growth;
use super::tree::{Body, FileMeta};
use super::{Namespace, OpenFile, Outcome};
use crate::error::{Error, Result};
use crate::protocol::Block;

impl Namespace {
    /// The file at `p` under construction by `client`.
    pub(super) fn leased_file_mut(
        &mut self,
        p: &str,
        client: &str,
    ) -> Result<(u64, &mut FileMeta)> {
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

    pub(super) fn recover_lease(
        &mut self,
        now_ms: u64,
        p: &str,
        holder: &str,
        last: Option<&Block>,
    ) -> Result<Outcome> {
        let (inode, file) = self.leased_file_mut(p, holder)?;
        match (last, file.blocks.last().copied()) {
            (Some(l), Some(b)) if l.id == b.id => {
                check_growth(p, &b, l.gen_stamp, l.len_bytes)?;
                *file.blocks.last_mut().expect("checked") = *l;
            }
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
}
