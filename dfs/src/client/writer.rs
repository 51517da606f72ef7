//! Writing: each block is sent as packets through a pipeline of datanodes. The writer keeps the
//! packets of the block in flight until the pipeline's final ack (which means the block is
//! finalized, fsynced, on every pipeline node). When a node fails, the writer drops it, asks the
//! namenode for replacements (`AddDatanode`: placement-aware, excluding failed nodes, and it
//! marks the failed node as a suspect so the namenode stops counting it at once), asks for a new
//! generation stamp (`UpdatePipeline`), and resends the block's packets to the new pipeline;
//! replicas with the old stamp are then stale and get deleted.
//!
//! Why resend from the client's buffer rather than copy the partial replica from a surviving
//! datanode to the replacement (HDFS's choice): the writer already keeps every packet of the
//! block it is writing (at most two blocks of memory), so a resend needs no second transfer
//! protocol and no coordination between datanodes, and every replica of the new stamp is
//! written by one stream from its first byte, so replicas of one stamp are always prefixes of
//! each other (what lease recovery relies on, see [`crate::namenode::block_recovery`]). The cost, a
//! block's worth of bytes per failure, is paid only when a datanode fails.
//!
//! `close` asks `Complete` until the namenode has seen min(replication, live datanodes) good
//! replicas of every block ([`crate::namenode::completion`]; the namenode copies what a narrowed pipeline
//! could not write), for a bounded time, so when it returns Ok, G2 holds.
//! [`FileWriter::hflush`] waits until the bytes written so far are acknowledged by every node
//! of their pipeline; those bytes survive the writer's crash (lease recovery keeps them).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::DfsClient;
use crate::auth::Credentials;
use crate::checksum;
use crate::error::{Error, Result};
use crate::protocol::{Block, DatanodeRef, FileStatus, LocatedBlock, Request, Response};
use crate::transfer::{self, Packet, PipelineFailure, PipelineWriter, MAX_PACKET_DATA_BYTES};

/// Pipeline rebuilds tried for one block before the write fails.
const MAX_PIPELINE_RECOVERIES: usize = 6;

/// The block a writer is filling.
struct OpenBlock {
    located: LocatedBlock,
    /// Every packet of the block sent so far, kept for resending after a pipeline failure.
    packets: Vec<Packet>,
    len_bytes: u64,
}

impl OpenBlock {
    /// Appends `data` (with its chunk CRCs) as the block's next packet, kept for resending,
    /// and returns the packet.
    fn push_packet(&mut self, data: Bytes) -> Packet {
        let mut crcs = Vec::new();
        checksum::append_crc_bytes(&data, &mut crcs);
        let packet = Packet {
            seqno: self.packets.len() as u64,
            offset_bytes: self.len_bytes,
            last: false,
            crcs: Bytes::from(crcs),
            data,
        };
        self.len_bytes += packet.data.len() as u64;
        self.packets.push(packet.clone());
        packet
    }

    /// Opens a pipeline through the block's locations and sends every packet of the block so
    /// far down it (after `located` replaced the block's stamp and nodes).
    async fn resend(
        &mut self,
        located: LocatedBlock,
        credentials: &Credentials,
        timeout: Duration,
    ) -> std::result::Result<PipelineWriter, PipelineFailure> {
        self.located = located;
        let (block, nodes) = (self.located.block, &self.located.locations);
        let token = self.located.token.as_ref();
        let mut pipe = PipelineWriter::open(block, nodes, credentials, token, timeout).await?;
        for p in &self.packets {
            pipe.send(p.data.clone(), p.crcs.clone(), false).await?;
        }
        Ok(pipe)
    }
}

/// What the writer holds of the block it is writing. A block and its pipeline live together,
/// so no step can look for "the current block" and find none.
enum BlockState {
    /// No block is open: the next packet allocates one (`AddBlock`).
    Idle,
    /// A block is open and its packets stream through `pipe`.
    Streaming {
        /// The block being filled.
        block: OpenBlock,
        /// Its pipeline.
        pipe: PipelineWriter,
    },
    /// A block is open without a pipeline: its pipeline failed and could not be rebuilt (the
    /// call that found it returned the error). The next packet opens a fresh pipeline, and
    /// finishing the block sends it again whole (see [`FileWriter::repair_sent_block`]).
    Unpiped(OpenBlock),
}

impl BlockState {
    /// The open block, if any.
    fn block(&self) -> Option<&OpenBlock> {
        match self {
            BlockState::Idle => None,
            BlockState::Streaming { block, .. } | BlockState::Unpiped(block) => Some(block),
        }
    }

    /// Takes the block and its pipeline out when streaming (leaving `Idle` for the caller to
    /// replace); leaves any other state as it is.
    fn take_streaming(&mut self) -> Option<(OpenBlock, PipelineWriter)> {
        match std::mem::replace(self, BlockState::Idle) {
            BlockState::Streaming { block, pipe } => Some((block, pipe)),
            other => {
                *self = other;
                None
            }
        }
    }
}

/// Writes one file; see the module docs. Call [`FileWriter::close`]: dropping a writer without
/// closing leaves the file under construction until its lease expires.
pub struct FileWriter {
    client: DfsClient,
    path: String,
    block_size_bytes: u64,
    replication: u32,
    buf: BytesMut,
    state: BlockState,
    previous: Option<Block>,
    excluded: Vec<String>,
    written_bytes: u64,
    renewer: tokio::task::JoinHandle<()>,
    /// The previous block: fully sent, waiting for its final ack while the next one streams.
    finishing: Option<Finishing>,
}

/// A block whose packets are all sent; `task` resolves with its pipeline's final ack.
struct Finishing {
    block: OpenBlock,
    task: tokio::task::JoinHandle<std::result::Result<u64, PipelineFailure>>,
}

impl std::fmt::Debug for FileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWriter")
            .field("path", &self.path)
            .field("written_bytes", &self.written_bytes)
            .finish()
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

impl FileWriter {
    /// A writer of the file `path` just created with `status`.
    pub(super) fn new(client: DfsClient, path: &str, status: &FileStatus) -> Self {
        let renewer = spawn_lease_renewer(client.clone());
        let block_size_bytes = if status.block_size_bytes >= checksum::BYTES_PER_CHECKSUM as u64 {
            status.block_size_bytes
        } else {
            client.inner.config.block_size_bytes
        };
        FileWriter {
            replication: status.replication.max(1),
            client,
            path: path.to_string(),
            block_size_bytes,
            buf: BytesMut::with_capacity(MAX_PACKET_DATA_BYTES),
            state: BlockState::Idle,
            previous: None,
            excluded: Vec::new(),
            written_bytes: 0,
            renewer,
            finishing: None,
        }
    }

    /// Bytes accepted so far.
    pub fn written_bytes(&self) -> u64 {
        self.written_bytes
    }

    /// Hosts of the current block's pipeline (empty between blocks); for tests and tools.
    pub fn pipeline_hosts(&self) -> Vec<String> {
        self.state
            .block()
            .map(|b| b.located.locations.iter().map(|n| n.host.clone()).collect())
            .unwrap_or_default()
    }

    /// Appends `data` to the file. Bytes are durable only once [`Self::close`] returns.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let room = self.packet_room();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            self.written_bytes += take as u64;
            if take == room {
                self.flush_packet().await?;
            }
            self.finish_block_if_full().await?;
        }
        Ok(())
    }

    /// Like [`Self::write`] for data the caller already owns as [`Bytes`]: every whole packet
    /// of it is sent as a slice of `data`, without copying (the `dfs put` path, where a copy
    /// per byte is a measurable share of the client's time). Only a part that does not fill a
    /// packet is copied into the packet buffer.
    pub async fn write_bytes(&mut self, mut data: Bytes) -> Result<()> {
        while !data.is_empty() {
            let room = self.packet_room();
            if !self.buf.is_empty() || data.len() < room {
                let head = data.split_to(room.min(data.len()));
                self.write(&head).await?;
                continue;
            }
            let packet = data.split_to(room);
            self.written_bytes += room as u64;
            self.send_packet(packet).await?;
            self.finish_block_if_full().await?;
        }
        Ok(())
    }

    /// How many more bytes the packet being gathered takes: it ends at the packet size or at
    /// the block's end, whichever comes first.
    fn packet_room(&self) -> usize {
        let in_block = self.state.block().map_or(0, |b| b.len_bytes) + self.buf.len() as u64;
        let room_block = (self.block_size_bytes - in_block) as usize;
        (MAX_PACKET_DATA_BYTES - self.buf.len()).min(room_block)
    }

    async fn finish_block_if_full(&mut self) -> Result<()> {
        let full = self
            .state
            .block()
            .is_some_and(|b| b.len_bytes == self.block_size_bytes);
        if full {
            self.finish_block().await?;
        }
        Ok(())
    }

    /// Sends every buffered whole checksum chunk and waits until every byte sent so far is
    /// acknowledged by every datanode of its pipeline (stored there; not yet fsynced). Returns
    /// how many bytes from the start of the file are acknowledged: after the writer crashes,
    /// lease recovery closes the file with at least these bytes (see
    /// [`crate::namenode::block_recovery`]). A tail shorter than one chunk (512 bytes) stays buffered,
    /// because a packet may end inside a chunk only at the end of a block.
    pub async fn hflush(&mut self) -> Result<u64> {
        let whole = self.buf.len() / checksum::BYTES_PER_CHECKSUM * checksum::BYTES_PER_CHECKSUM;
        if whole > 0 {
            let tail = self.buf.split_off(whole);
            let sent = self.flush_packet().await;
            self.buf.unsplit(tail);
            sent?;
            self.finish_block_if_full().await?;
        }
        self.await_finishing().await?;
        for _ in 0..=MAX_PIPELINE_RECOVERIES {
            let Some((block, mut pipe)) = self.state.take_streaming() else {
                break;
            };
            match pipe.wait_acked().await {
                Ok(()) => {
                    self.state = BlockState::Streaming { block, pipe };
                    return Ok(self.written_bytes - self.buf.len() as u64);
                }
                Err(f) => self.recover(block, f).await?,
            }
        }
        if matches!(self.state, BlockState::Streaming { .. }) {
            return Err(Error::Unavailable(format!(
                "{}: hflush gave up after repeated pipeline failures",
                self.path
            )));
        }
        Ok(self.written_bytes - self.buf.len() as u64)
    }

    /// Flushes buffered data, finalizes the last block on its pipeline, and completes the file
    /// with the namenode. Returns only when every block is durable on enough replicas (G2).
    pub async fn close(mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.flush_packet().await?;
        }
        self.finish_block().await?;
        self.await_finishing().await?;
        self.complete().await
    }

    async fn complete(&mut self) -> Result<()> {
        // Complete answers false until the datanodes' reports reach the namenode; allow for a
        // few heartbeats and for a leader change.
        let patience = self.client.inner.timeout * 3
            + Duration::from_millis(self.client.inner.config.heartbeat_interval_ms * 4);
        let deadline = Instant::now() + patience;
        let mut backoff = Duration::from_millis(5);
        loop {
            let resp = self
                .client
                .call(Request::Complete {
                    path: self.path.clone(),
                    client_name: self.client.inner.client_name.clone(),
                    last: self.previous,
                })
                .await?;
            if expect_response!(resp, Response::Completed(done) => done)? {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.not_durable_error(patience).await);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    }

    /// The error of a `close` that timed out, naming each block's replica count as the
    /// namenode sees it (G2's bar is min(replication, live datanodes)).
    async fn not_durable_error(&self, patience: Duration) -> Error {
        let counts = match self.client.block_locations(&self.path).await {
            Ok(b) => b
                .blocks
                .iter()
                .map(|lb| format!("block {}: {}", lb.block.id, lb.locations.len()))
                .collect::<Vec<_>>()
                .join(", "),
            Err(e) => format!("locations unavailable: {e}"),
        };
        Error::Timeout(format!(
            "{}: not closed: within {patience:?} the namenode did not see min(replication {}, live \
             datanodes) finalized replicas of every block (live replicas per block: {counts})",
            self.path, self.replication
        ))
    }

    /// Allocates the file's next block (`AddBlock`).
    ///
    /// "No datanode can take it" is retried for a few heartbeats only (datanodes may be
    /// registering with a namenode that just started), then reported with the namenode's
    /// reason: waiting longer does not make a datanode appear, and a writer that hangs without
    /// a word is worse than one that says why it stopped.
    async fn add_block(&mut self) -> Result<OpenBlock> {
        let patience = Duration::from_millis(self.client.inner.config.heartbeat_interval_ms * 3)
            .clamp(Duration::from_secs(2), Duration::from_secs(10));
        let deadline = Instant::now() + patience;
        let resp = loop {
            let sent = self
                .client
                .call(Request::AddBlock {
                    path: self.path.clone(),
                    client_name: self.client.inner.client_name.clone(),
                    previous: self.previous,
                    writer_host: self.client.inner.local_host.clone(),
                    excluded_hosts: self.excluded.clone(),
                })
                .await;
            match sent {
                Err(Error::NoDatanodes(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                other => break other?,
            }
        };
        let located = expect_response!(resp, Response::Block(b) => b)?;
        if located.locations.is_empty() {
            return Err(Error::Unavailable(format!(
                "{}: no datanode available for a new block",
                self.path
            )));
        }
        Ok(OpenBlock {
            located,
            packets: Vec::new(),
            len_bytes: 0,
        })
    }

    async fn flush_packet(&mut self) -> Result<()> {
        let data = self.buf.split().freeze();
        self.send_packet(data).await
    }

    /// Sends `data` (at most one packet, not crossing the block's end) as the block's next
    /// packet, allocating the block first if needed.
    async fn send_packet(&mut self, data: Bytes) -> Result<()> {
        let (mut block, pipe) = match std::mem::replace(&mut self.state, BlockState::Idle) {
            BlockState::Idle => (self.add_block().await?, None),
            BlockState::Streaming { block, pipe } => (block, Some(pipe)),
            BlockState::Unpiped(block) => (block, None),
        };
        let packet = block.push_packet(data);
        let timeout = self.client.inner.timeout;
        let credentials = self.client.credentials()?.clone();
        let sent = match pipe {
            Some(mut pipe) => pipe
                .send(packet.data, packet.crcs, false)
                .await
                .map(|()| pipe),
            None => {
                let (b, nodes) = (block.located.block, &block.located.locations);
                let token = block.located.token.as_ref();
                match PipelineWriter::open(b, nodes, &credentials, token, timeout).await {
                    Ok(mut pipe) => pipe
                        .send(packet.data, packet.crcs, false)
                        .await
                        .map(|()| pipe),
                    Err(f) => Err(f),
                }
            }
        };
        match sent {
            Ok(pipe) => {
                self.state = BlockState::Streaming { block, pipe };
                Ok(())
            }
            Err(f) => self.recover(block, f).await,
        }
    }

    /// Sends the block's final packet and lets its final ack (the replicas' fsyncs) arrive
    /// while the next block streams; [`Self::await_finishing`] collects it before the next block
    /// finishes and before `close` completes the file, so G2 still holds at close. With no block
    /// open, it only collects the previous block's ack.
    async fn finish_block(&mut self) -> Result<()> {
        self.await_finishing().await?;
        let (ob, pipe) = match std::mem::replace(&mut self.state, BlockState::Idle) {
            BlockState::Idle => return Ok(()),
            BlockState::Streaming { block, pipe } => (block, Some(pipe)),
            BlockState::Unpiped(block) => (block, None),
        };
        self.previous = Some(Block {
            len_bytes: ob.len_bytes,
            ..ob.located.block
        });
        // The final packet goes out before the next block is allocated, so once the namespace
        // knows this block's length its datanodes finalize it even if this writer then dies.
        let task = match pipe {
            Some(mut pipe) => match pipe.send_end().await {
                Ok(()) => tokio::spawn(pipe.finish_sent()),
                Err(f) => tokio::spawn(async { Err(f) }),
            },
            None => tokio::spawn(async {
                Err(PipelineFailure {
                    bad_index: 0,
                    error: Error::Unavailable("no pipeline".into()),
                })
            }),
        };
        self.finishing = Some(Finishing { block: ob, task });
        Ok(())
    }

    /// Waits for the previous block's final ack; on failure, resends it (see
    /// [`Self::repair_sent_block`]).
    async fn await_finishing(&mut self) -> Result<()> {
        let Some(f) = self.finishing.take() else {
            return Ok(());
        };
        let result = f.task.await.unwrap_or_else(|e| {
            Err(PipelineFailure {
                bad_index: 0,
                error: Error::Unavailable(format!("pipeline task failed: {e}")),
            })
        });
        match result {
            Ok(_) => Ok(()),
            Err(failure) => self.repair_sent_block(f.block, failure).await,
        }
    }

    /// A fully sent block whose pipeline failed before every node acked the end: send it
    /// again, whole, to the surviving nodes plus replacements.
    ///
    /// While the block is the file's last (no next block allocated: `close` is waiting for
    /// it), it gets a new generation stamp first, as any rebuilt pipeline of a last block does,
    /// so lease recovery never sees one stamp on replicas of different pipelines. An earlier
    /// block keeps its stamp (`UpdatePipeline` only applies to the last block); that is safe
    /// because its length is already fixed in the namespace and a datanode finalizes a replica
    /// only after its last packet, so every finalized replica with this stamp has exactly
    /// these bytes.
    async fn repair_sent_block(
        &mut self,
        mut ob: OpenBlock,
        mut failure: PipelineFailure,
    ) -> Result<()> {
        let timeout = self.client.inner.timeout;
        let credentials = self.client.credentials()?.clone();
        for _ in 0..MAX_PIPELINE_RECOVERIES {
            let pipeline = self
                .rebuild_pipeline(
                    ob.located.block.id,
                    ob.located.locations.clone(),
                    &failure,
                    "pipeline failed at the end of a block, resending it",
                )
                .await;
            if pipeline.is_empty() {
                break;
            }
            if matches!(self.state, BlockState::Idle) {
                let located = self.update_pipeline(ob.located.block.id, &pipeline).await?;
                ob.located.block = located.block;
                self.previous = Some(Block {
                    len_bytes: ob.len_bytes,
                    ..located.block
                });
            }
            ob.located.locations = pipeline;
            let block = Block {
                len_bytes: ob.len_bytes,
                ..ob.located.block
            };
            let (nodes, token) = (&ob.located.locations, ob.located.token.as_ref());
            match transfer::write_block(block, nodes, &ob.packets, &credentials, token, timeout)
                .await
            {
                Ok(_) => return Ok(()),
                Err(f) => failure = f,
            }
        }
        Err(Error::Unavailable(format!(
            "{}: could not store block {} on any pipeline: {}",
            self.path, ob.located.block.id, failure.error
        )))
    }

    /// Rebuilds the pipeline of `block` (the block being written) without the failed node (plus
    /// a replacement when one is live), under a new generation stamp, and resends its packets.
    /// The block is left streaming on the new pipeline, or without one when this fails.
    async fn recover(&mut self, mut block: OpenBlock, failure: PipelineFailure) -> Result<()> {
        match self.rebuild_and_resend(&mut block, failure).await {
            Ok(pipe) => {
                self.state = BlockState::Streaming { block, pipe };
                Ok(())
            }
            Err(e) => {
                self.state = BlockState::Unpiped(block);
                Err(e)
            }
        }
    }

    async fn rebuild_and_resend(
        &mut self,
        ob: &mut OpenBlock,
        mut failure: PipelineFailure,
    ) -> Result<PipelineWriter> {
        let timeout = self.client.inner.timeout;
        let credentials = self.client.credentials()?.clone();
        for _ in 0..MAX_PIPELINE_RECOVERIES {
            let (block_id, nodes) = (ob.located.block.id, ob.located.locations.clone());
            let pipeline = self
                .rebuild_pipeline(block_id, nodes, &failure, "pipeline failed, rebuilding")
                .await;
            if pipeline.is_empty() {
                return Err(Error::Unavailable(format!(
                    "{}: every datanode of the pipeline failed (last: {})",
                    self.path, failure.error
                )));
            }
            let located = self.update_pipeline(block_id, &pipeline).await?;
            match ob.resend(located, &credentials, timeout).await {
                Ok(pipe) => return Ok(pipe),
                Err(f) => failure = f,
            }
        }
        Err(Error::Unavailable(format!(
            "{}: gave up rebuilding the pipeline: {}",
            self.path, failure.error
        )))
    }

    /// Logs the failure, drops (and excludes from now on) the node it names, and tops the
    /// pipeline up with live replacements.
    async fn rebuild_pipeline(
        &mut self,
        block_id: u64,
        mut nodes: Vec<DatanodeRef>,
        failure: &PipelineFailure,
        what: &str,
    ) -> Vec<DatanodeRef> {
        let bad = failure.bad_index.min(nodes.len().saturating_sub(1));
        tracing::warn!(
            path = %self.path,
            block = block_id,
            node = nodes.get(bad).map(|n| n.host.as_str()).unwrap_or("?"),
            "{what}: {}",
            failure.error
        );
        let mut failed = Vec::new();
        if bad < nodes.len() {
            let gone = nodes.remove(bad);
            failed.push(gone.host.clone());
            self.excluded.push(gone.host);
        }
        self.with_replacements(block_id, nodes, failed).await
    }

    /// Asks the namenode for datanodes to bring the pipeline back to `replication` nodes
    /// (reporting `failed` ones); without an answer the pipeline goes on narrower, and
    /// `Complete` has the namenode make the missing copies.
    async fn with_replacements(
        &self,
        block_id: u64,
        mut pipeline: Vec<DatanodeRef>,
        failed: Vec<String>,
    ) -> Vec<DatanodeRef> {
        let req = Request::AddDatanode {
            path: self.path.clone(),
            client_name: self.client.inner.client_name.clone(),
            block_id,
            existing: pipeline.iter().map(|n| n.host.clone()).collect(),
            failed,
            excluded: self.excluded.clone(),
        };
        let added = match self.client.call(req).await {
            Ok(Response::Block(b)) => b.locations,
            Ok(other) => {
                tracing::warn!(path = %self.path, "unexpected AddDatanode reply {other:?}");
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(path = %self.path, "no replacement datanode: {e}");
                Vec::new()
            }
        };
        for node in added {
            let used = pipeline.iter().any(|p| p.host == node.host);
            if !used && !self.excluded.contains(&node.host) {
                pipeline.push(node);
            }
        }
        pipeline
    }

    async fn update_pipeline(
        &self,
        block_id: u64,
        pipeline: &[DatanodeRef],
    ) -> Result<LocatedBlock> {
        let resp = self
            .client
            .call(Request::UpdatePipeline {
                path: self.path.clone(),
                client_name: self.client.inner.client_name.clone(),
                block_id,
                hosts: pipeline.iter().map(|n| n.host.clone()).collect(),
            })
            .await?;
        let mut located = expect_response!(resp, Response::Block(b) => b)?;
        // Keep our addresses: the namenode echoes the hosts, we already know where they are.
        if located.locations.len() != pipeline.len() {
            located.locations = pipeline.to_vec();
        }
        Ok(located)
    }
}

fn spawn_lease_renewer(client: DfsClient) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_millis((client.inner.config.lease_soft_limit_ms / 2).max(100));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let req = Request::RenewLease {
                client_name: client.inner.client_name.clone(),
            };
            if let Err(e) = client.call(req).await {
                tracing::warn!("lease renewal failed: {e}");
            }
        }
    })
}
