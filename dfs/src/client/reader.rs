//! Reading: bytes come in windows of at most [`READ_WINDOW_BYTES`] from one replica, verified
//! against their chunk CRCs before they are returned (G3). A replica that fails (down, corrupt,
//! short) is skipped for the rest of the read; a corrupt one is reported to the namenode. When
//! every known replica failed, locations are fetched again a few times before giving up with a
//! clear error.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;

use super::DfsClient;
use crate::block_store::replica::{find_local_replica, ReplicaFiles};
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::{Block, DatanodeRef, FileBlocks, LocatedBlock};
use crate::transfer;

/// Largest piece a reader fetches from a replica in one request.
pub const READ_WINDOW_BYTES: u64 = 8 << 20;
/// Rounds of "refetch locations and try every replica again" before a read fails.
const MAX_READ_ROUNDS: usize = 3;

/// Reads one file; see the module docs.
pub struct FileReader {
    client: DfsClient,
    path: String,
    len_bytes: u64,
    blocks: Vec<LocatedBlock>,
    pos: u64,
    pending: Bytes,
    /// Per block id, the hosts that failed for this reader.
    failed: HashMap<u64, HashSet<String>>,
    /// The streaming read in progress, if any.
    stream: Option<OpenStream>,
}

/// A streaming read of the rest of one block from one datanode: packets are handed out as they
/// arrive, without copying.
struct OpenStream {
    block_idx: usize,
    host: String,
    stream: transfer::BlockReadStream,
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("path", &self.path)
            .field("len_bytes", &self.len_bytes)
            .field("pos", &self.pos)
            .finish()
    }
}

impl FileReader {
    /// A reader of `path`, whose blocks and length are `blocks`, positioned at its start.
    pub(super) fn new(client: DfsClient, path: &str, blocks: FileBlocks) -> Self {
        FileReader {
            client,
            path: path.to_string(),
            len_bytes: blocks.len_bytes,
            blocks: blocks.blocks,
            pos: 0,
            pending: Bytes::new(),
            failed: HashMap::new(),
            stream: None,
        }
    }

    /// The file's length when it was opened.
    pub fn len_bytes(&self) -> u64 {
        self.len_bytes
    }

    /// The current streaming position.
    pub fn position(&self) -> u64 {
        self.pos - self.pending.len() as u64
    }

    /// Moves the streaming position.
    pub fn seek(&mut self, pos: u64) {
        self.pending = Bytes::new();
        self.stream = None;
        self.pos = pos.min(self.len_bytes);
    }

    /// The blocks of the file with their locations.
    pub fn blocks(&self) -> &[LocatedBlock] {
        &self.blocks
    }

    /// Reads the next bytes into `buf`; 0 means end of file.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.pending.is_empty() {
            self.pending = self.next_chunk().await?;
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        let _ = self.pending.split_to(n);
        Ok(n)
    }

    /// The next verified piece of the file (empty at end of file), without copying.
    ///
    /// Remote replicas are streamed a whole block at a time; on any failure the reader falls
    /// back to [`Self::read_range`], which fails over between replicas. Local replicas are read
    /// from disk (short-circuit).
    pub async fn next_chunk(&mut self) -> Result<Bytes> {
        if !self.pending.is_empty() {
            return Ok(std::mem::take(&mut self.pending));
        }
        loop {
            if self.pos >= self.len_bytes {
                return Ok(Bytes::new());
            }
            let idx = self.block_index(self.pos)?;
            if self.stream.as_ref().is_some_and(|s| s.block_idx != idx) {
                self.stream = None;
            }
            if self.stream.is_none() && !self.open_stream(idx).await {
                let want = READ_WINDOW_BYTES.min(self.len_bytes - self.pos);
                let data = self.read_range(self.pos, want).await?;
                self.pos += data.len() as u64;
                return Ok(data);
            }
            if let Some(chunk) = self.next_streamed(idx).await {
                self.pos += chunk.len() as u64;
                return Ok(chunk);
            }
        }
    }

    /// Opens a stream of block `idx` from `pos` on the first replica that is neither local nor
    /// failed; false when there is none (the caller falls back to [`Self::read_range`]).
    async fn open_stream(&mut self, idx: usize) -> bool {
        let lb = self.blocks[idx].clone();
        let local = self.client.inner.local_host.clone();
        let Some(node) = lb
            .locations
            .iter()
            .find(|n| Some(&n.host) != local.as_ref() && !self.has_failed(lb.block.id, &n.host))
        else {
            return false;
        };
        if local.is_some() && lb.locations.iter().any(|n| Some(&n.host) == local.as_ref()) {
            return false; // A local replica: short-circuit through read_range.
        }
        let in_block = self.pos - lb.offset_bytes;
        let len = lb.block.len_bytes - in_block;
        let timeout = self.client.inner.timeout;
        let Ok(credentials) = self.client.credentials() else {
            return false; // read_range reports the missing credentials.
        };
        let token = lb.token.as_ref();
        match transfer::BlockReadStream::open(
            node,
            lb.block,
            in_block,
            len,
            credentials,
            token,
            timeout,
        )
        .await
        {
            Ok(stream) if stream.replica_len_bytes >= lb.block.len_bytes => {
                self.stream = Some(OpenStream {
                    block_idx: idx,
                    host: node.host.clone(),
                    stream,
                });
                true
            }
            Ok(_) => {
                self.replica_failed(
                    &lb,
                    &node.host.clone(),
                    Error::Malformed("replica too short".into()),
                )
                .await;
                false
            }
            Err(e) => {
                self.replica_failed(&lb, &node.host.clone(), e).await;
                false
            }
        }
    }

    /// The next piece of the open stream from `self.pos`; `None` when the stream ended or
    /// failed (and was closed).
    async fn next_streamed(&mut self, idx: usize) -> Option<Bytes> {
        let lb = self.blocks[idx].clone();
        let open = self.stream.as_mut()?;
        let in_block = self.pos - lb.offset_bytes;
        match open.stream.next_packet().await {
            Ok(Some(p)) => {
                let p_end = p.offset_bytes + p.data.len() as u64;
                let hi = p_end.min(lb.block.len_bytes);
                if p.offset_bytes > in_block || hi <= in_block {
                    let host = open.host.clone();
                    self.stream = None;
                    let e = Error::Malformed(format!("packet at {} out of place", p.offset_bytes));
                    self.replica_failed(&lb, &host, e).await;
                    return None;
                }
                let lo = (in_block - p.offset_bytes) as usize;
                Some(p.data.slice(lo..(hi - p.offset_bytes) as usize))
            }
            Ok(None) => {
                self.stream = None;
                None
            }
            Err(e) => {
                let host = open.host.clone();
                self.stream = None;
                self.replica_failed(&lb, &host, e).await;
                None
            }
        }
    }

    /// Remembers that `host` failed for this block, reporting it when its copy is corrupt.
    async fn replica_failed(&mut self, lb: &LocatedBlock, host: &str, e: Error) {
        tracing::warn!(path = %self.path, block = lb.block.id, host, "replica read failed: {e}");
        if matches!(e, Error::Corrupt { .. }) || e.kind() == ErrorKind::Corrupt {
            self.client.report_corrupt(lb.block, host).await;
        }
        self.failed
            .entry(lb.block.id)
            .or_default()
            .insert(host.to_string());
    }

    /// Reads the rest of the file.
    pub async fn read_all(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity((self.len_bytes - self.position()) as usize);
        loop {
            let chunk = self.next_chunk().await?;
            if chunk.is_empty() {
                return Ok(out);
            }
            out.extend_from_slice(&chunk);
        }
    }

    /// Positional read of `[offset, offset + len)` (clamped to the file), independent of the
    /// streaming position.
    pub async fn read_at(&mut self, offset: u64, len: u64) -> Result<Vec<u8>> {
        let end = offset.saturating_add(len).min(self.len_bytes);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut pos = offset;
        while pos < end {
            let piece = self.read_range(pos, end - pos).await?;
            pos += piece.len() as u64;
            out.extend_from_slice(&piece);
        }
        Ok(out)
    }

    /// Reads from `pos` up to `len` bytes, stopping at the end of the block holding `pos`.
    async fn read_range(&mut self, pos: u64, len: u64) -> Result<Bytes> {
        let idx = self.block_index(pos)?;
        let lb = self.blocks[idx].clone();
        let in_block = pos - lb.offset_bytes;
        let len = len
            .min(lb.block.len_bytes - in_block)
            .min(READ_WINDOW_BYTES);
        let mut round = 0;
        loop {
            let lb = self.blocks[idx].clone();
            let mut errors = Vec::new();
            for node in &lb.locations {
                if self.has_failed(lb.block.id, &node.host) {
                    continue;
                }
                match self.read_replica(&lb, node, in_block, len).await {
                    Ok(data) => return Ok(data),
                    Err(e) => {
                        errors.push(format!("{}: {e}", node.host));
                        self.replica_failed(&lb, &node.host, e).await;
                    }
                }
            }
            round += 1;
            if round == MAX_READ_ROUNDS {
                return Err(self.all_failed(&lb, errors));
            }
            // Every known replica failed: wait a little, then ask where the block lives now
            // (a good replica may have been made, or a datanode may be back).
            tokio::time::sleep(Duration::from_millis(300 * round as u64)).await;
            self.refresh_locations().await?;
            self.failed.remove(&lb.block.id);
        }
    }

    fn all_failed(&self, lb: &LocatedBlock, errors: Vec<String>) -> Error {
        let detail = if errors.is_empty() {
            "no live replica".to_string()
        } else {
            errors.join("; ")
        };
        let any_corrupt = errors
            .iter()
            .any(|e| e.contains("corrupt") || e.contains("checksum"));
        if any_corrupt || !lb.corrupt.is_empty() {
            return Error::Corrupt {
                block: lb.block.id,
                replica: "every replica".into(),
                detail: format!("{} at offset {}: {detail}", self.path, lb.offset_bytes),
            };
        }
        Error::Unavailable(format!(
            "{}: block {} at offset {} could not be read from any replica: {detail}",
            self.path, lb.block.id, lb.offset_bytes
        ))
    }

    fn has_failed(&self, block_id: u64, host: &str) -> bool {
        self.failed.get(&block_id).is_some_and(|s| s.contains(host))
    }

    async fn refresh_locations(&mut self) -> Result<()> {
        let fresh = self.client.block_locations(&self.path).await?;
        // Keep our length view: a file that grew since we opened is read up to the old length.
        for lb in fresh.blocks {
            if let Some(mine) = self.blocks.iter_mut().find(|b| b.block.id == lb.block.id) {
                *mine = lb;
            }
        }
        Ok(())
    }

    fn block_index(&self, pos: u64) -> Result<usize> {
        let idx = self
            .blocks
            .partition_point(|b| b.offset_bytes + b.block.len_bytes <= pos);
        if idx >= self.blocks.len() {
            return Err(Error::Malformed(format!(
                "{}: no block holds offset {pos}",
                self.path
            )));
        }
        Ok(idx)
    }

    async fn read_replica(
        &self,
        lb: &LocatedBlock,
        node: &DatanodeRef,
        offset: u64,
        len: u64,
    ) -> Result<Bytes> {
        let block = &lb.block;
        let local = self.client.inner.local_host.as_deref() == Some(node.host.as_str());
        if local {
            match self.read_local(block, &node.host, offset, len).await {
                Ok(Some(data)) => return Ok(data),
                Ok(None) => {} // Not on disk where expected: ask the datanode.
                Err(e) => return Err(e),
            }
        }
        let credentials = self.client.credentials()?;
        let timeout = self.client.inner.timeout;
        let token = lb.token.as_ref();
        let data =
            transfer::read_range(node, *block, offset, len, credentials, token, timeout).await?;
        if (data.len() as u64) < len {
            return Err(Error::Malformed(format!(
                "replica on {} is shorter than the namenode says",
                node.host
            )));
        }
        Ok(Bytes::from(data))
    }

    /// Short-circuit read: the replica's files on this host, verified like any other read.
    async fn read_local(
        &self,
        block: &Block,
        host: &str,
        offset: u64,
        len: u64,
    ) -> Result<Option<Bytes>> {
        let dirs = self.client.inner.config.host(host)?.data_dirs.clone();
        let (id, gen) = (block.id, block.gen_stamp);
        let label = format!("{host} (local)");
        let read = tokio::task::spawn_blocking(move || -> Result<Option<Bytes>> {
            let Some((data, meta)) = find_local_replica(&dirs, id, gen) else {
                return Ok(None);
            };
            let files = ReplicaFiles::open(&data, &meta, id, gen, &label)?;
            if files.len_bytes() < offset + len {
                return Ok(None);
            }
            let chunks = files.read_verified(offset, len)?;
            let skip = (offset - chunks.offset) as usize;
            let all = Bytes::from(chunks.data);
            Ok(Some(all.slice(skip..skip + len as usize)))
        })
        .await
        .map_err(|e| Error::Malformed(format!("local read task failed: {e}")))?;
        read
    }
}
