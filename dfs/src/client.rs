//! The filesystem client library: [`DfsClient`] with metadata calls, [`FileWriter`] (pipeline
//! writes with recovery) and [`FileReader`] (verified streaming and positional reads with
//! replica failover and short-circuit local reads).
//!
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
//! each other (what lease recovery relies on, see [`crate::block_recovery`]). The cost, a
//! block's worth of bytes per failure, is paid only when a datanode fails.
//!
//! `close` asks `Complete` until the namenode has seen min(replication, live datanodes) good
//! replicas of every block ([`crate::completion`]; the namenode copies what a narrowed pipeline
//! could not write), for a bounded time, so when it returns Ok, G2 holds.
//! [`FileWriter::hflush`] waits until the bytes written so far are acknowledged by every node
//! of their pipeline; those bytes survive the writer's crash (lease recovery keeps them).
//!
//! Reading: bytes come in windows of at most [`READ_WINDOW_BYTES`] from one replica, verified
//! against their chunk CRCs before they are returned (G3). A replica that fails (down, corrupt,
//! short) is skipped for the rest of the read; a corrupt one is reported to the namenode. When
//! every known replica failed, locations are fetched again a few times before giving up with a
//! clear error.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::block_store::replica::{find_local_replica, ReplicaFiles};
use crate::checksum;
use crate::config::ClusterConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::{
    Block, ContentSummary, DatanodeRef, DatanodeStatus, FileBlocks, FileStatus, FsckFile,
    LocatedBlock, NamenodeStatus, Request, Response,
};
use crate::rpc::NamenodeClient;
use crate::transfer::{self, Packet, PipelineFailure, PipelineWriter, MAX_PACKET_DATA_BYTES};

/// Largest piece a reader fetches from a replica in one request.
pub const READ_WINDOW_BYTES: u64 = 8 << 20;
/// Pipeline rebuilds tried for one block before the write fails.
const MAX_PIPELINE_RECOVERIES: usize = 6;
/// Rounds of "refetch locations and try every replica again" before a read fails.
const MAX_READ_ROUNDS: usize = 3;
/// Entries asked per `List` page.
const LIST_PAGE: u32 = 1000;

/// Options for [`DfsClient::create`].
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Replace an existing file.
    pub overwrite: bool,
    /// Fail with `NotFound` when the parent directory does not exist (instead of creating it).
    pub require_parent: bool,
    /// Replication factor (`None` = cluster default).
    pub replication: Option<u32>,
    /// Block size (`None` = cluster default).
    pub block_size_bytes: Option<u64>,
}

struct Inner {
    namenodes: NamenodeClient,
    config: ClusterConfig,
    client_name: String,
    local_host: Option<String>,
    timeout: Duration,
}

/// A connection to one cluster; cheap to clone and safe to share between tasks.
#[derive(Clone)]
pub struct DfsClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DfsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DfsClient")
            .field("client_name", &self.inner.client_name)
            .field("local_host", &self.inner.local_host)
            .finish()
    }
}

macro_rules! expect_response {
    ($resp:expr, $pat:pat => $out:expr) => {
        match $resp {
            $pat => Ok($out),
            other => Err(Error::Malformed(format!(
                "unexpected namenode reply {other:?}"
            ))),
        }
    };
}

impl DfsClient {
    /// A client for the cluster in `config`. The local host (for short-circuit reads and
    /// first-replica placement) comes from `DFS_LOCAL_HOST` when set; see [`Self::with_local_host`].
    pub fn new(config: ClusterConfig) -> Self {
        let local = std::env::var("DFS_LOCAL_HOST")
            .ok()
            .filter(|h| !h.is_empty());
        Self::build(config, local)
    }

    /// The same client, told that it runs on `host` (a host name from the config), so it reads
    /// local replicas directly from disk and asks for the first replica of new blocks locally.
    pub fn with_local_host(self, host: Option<String>) -> Self {
        Self::build(self.inner.config.clone(), host)
    }

    fn build(config: ClusterConfig, local_host: Option<String>) -> Self {
        let namenodes = NamenodeClient::new(&config);
        let client_name = format!("dfs-client-{:016x}", namenodes.client_id());
        let local_host = local_host.filter(|h| config.host(h).is_ok());
        DfsClient {
            inner: Arc::new(Inner {
                timeout: Duration::from_millis(config.rpc_timeout_ms),
                namenodes,
                config,
                client_name,
                local_host,
            }),
        }
    }

    /// The cluster config this client uses.
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    async fn call(&self, req: Request) -> Result<Response> {
        self.inner.namenodes.call(req).await
    }

    /// Creates a directory and its missing parents.
    pub async fn mkdirs(&self, path: &str) -> Result<()> {
        let resp = self.call(Request::Mkdirs { path: path.into() }).await?;
        expect_response!(resp, Response::Done => ())
    }

    /// The status of a path.
    pub async fn stat(&self, path: &str) -> Result<FileStatus> {
        let resp = self.call(Request::Stat { path: path.into() }).await?;
        expect_response!(resp, Response::Status(s) => s)
    }

    /// Whether a path exists.
    pub async fn exists(&self, path: &str) -> Result<bool> {
        match self.stat(path).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every entry of a directory (a file lists itself), in name order.
    pub async fn list(&self, path: &str) -> Result<Vec<FileStatus>> {
        let mut out: Vec<FileStatus> = Vec::new();
        loop {
            let start_after = out
                .last()
                .map(|s| s.path.rsplit('/').next().unwrap_or("").to_string());
            let resp = self
                .call(Request::List {
                    path: path.into(),
                    start_after,
                    limit: LIST_PAGE,
                })
                .await?;
            let page = expect_response!(resp, Response::Listing(l) => l)?;
            let done = (page.len() as u32) < LIST_PAGE;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }

    /// Totals under a path.
    pub async fn du(&self, path: &str) -> Result<ContentSummary> {
        let resp = self.call(Request::Du { path: path.into() }).await?;
        expect_response!(resp, Response::Summary(s) => s)
    }

    /// Renames `src` to `dst`.
    pub async fn rename(&self, src: &str, dst: &str) -> Result<()> {
        let resp = self
            .call(Request::Rename {
                src: src.into(),
                dst: dst.into(),
            })
            .await?;
        expect_response!(resp, Response::Done => ())
    }

    /// Deletes a path; returns whether something was deleted.
    pub async fn delete(&self, path: &str, recursive: bool) -> Result<bool> {
        let resp = self
            .call(Request::Delete {
                path: path.into(),
                recursive,
            })
            .await?;
        expect_response!(resp, Response::Deleted(d) => d)
    }

    /// Changes a file's replication factor.
    pub async fn set_replication(&self, path: &str, replication: u32) -> Result<()> {
        let resp = self
            .call(Request::SetReplication {
                path: path.into(),
                replication,
            })
            .await?;
        expect_response!(resp, Response::Done => ())
    }

    /// Per-file block health under a path.
    pub async fn fsck(&self, path: &str) -> Result<Vec<FsckFile>> {
        let resp = self.call(Request::Fsck { path: path.into() }).await?;
        expect_response!(resp, Response::Fsck(f) => f)
    }

    /// Datanodes as the leader sees them.
    pub async fn datanode_report(&self) -> Result<Vec<DatanodeStatus>> {
        let resp = self.call(Request::DatanodeReport).await?;
        expect_response!(resp, Response::Datanodes(d) => d)
    }

    /// Every namenode's own status (or why it did not answer), in config order.
    pub async fn namenode_statuses(&self) -> Vec<(u64, Result<NamenodeStatus>)> {
        let answers = self.inner.namenodes.call_each(Request::Status).await;
        answers
            .into_iter()
            .map(|(id, r)| {
                let status =
                    r.and_then(|resp| expect_response!(resp, Response::NamenodeStatus(s) => s));
                (id, status)
            })
            .collect()
    }

    /// Block locations of a whole file.
    pub async fn block_locations(&self, path: &str) -> Result<FileBlocks> {
        let resp = self
            .call(Request::GetBlockLocations {
                path: path.into(),
                offset_bytes: 0,
                len_bytes: u64::MAX,
                reader_host: self.inner.local_host.clone(),
            })
            .await?;
        expect_response!(resp, Response::Blocks(b) => b)
    }

    /// Creates a file and returns its writer.
    pub async fn create(&self, path: &str, opts: CreateOptions) -> Result<FileWriter> {
        let resp = self
            .call(Request::Create {
                path: path.into(),
                replication: opts.replication,
                block_size_bytes: opts.block_size_bytes,
                overwrite: opts.overwrite,
                require_parent: opts.require_parent,
                client_name: self.inner.client_name.clone(),
            })
            .await?;
        let status = expect_response!(resp, Response::Status(s) => s)?;
        Ok(FileWriter::new(self.clone(), path, &status))
    }

    /// Opens a file for reading.
    pub async fn open(&self, path: &str) -> Result<FileReader> {
        let blocks = self.block_locations(path).await?;
        Ok(FileReader {
            client: self.clone(),
            path: path.to_string(),
            len_bytes: blocks.len_bytes,
            blocks: blocks.blocks,
            pos: 0,
            pending: Bytes::new(),
            failed: HashMap::new(),
            stream: None,
        })
    }

    /// Writes a whole file in one call (replacing it when `overwrite`).
    pub async fn write_file(&self, path: &str, data: &[u8], overwrite: bool) -> Result<()> {
        let opts = CreateOptions {
            overwrite,
            ..Default::default()
        };
        let mut w = self.create(path, opts).await?;
        w.write(data).await?;
        w.close().await
    }

    /// Reads a whole file into memory.
    pub async fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        let mut r = self.open(path).await?;
        r.read_all().await
    }

    async fn report_corrupt(&self, block: Block, host: &str) {
        let req = Request::ReportCorrupt {
            block,
            host: host.to_string(),
        };
        if let Err(e) = self.call(req).await {
            tracing::warn!(
                block = block.id,
                host,
                "could not report a corrupt replica: {e}"
            );
        }
    }
}

/// The block a writer is filling.
struct OpenBlock {
    located: LocatedBlock,
    /// Every packet of the block sent so far, kept for resending after a pipeline failure.
    packets: Vec<Packet>,
    pipe: Option<PipelineWriter>,
    len_bytes: u64,
}

/// Writes one file; see the module docs. Call [`FileWriter::close`]: dropping a writer without
/// closing leaves the file under construction until its lease expires.
pub struct FileWriter {
    client: DfsClient,
    path: String,
    block_size_bytes: u64,
    replication: u32,
    buf: BytesMut,
    block: Option<OpenBlock>,
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
    fn new(client: DfsClient, path: &str, status: &FileStatus) -> Self {
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
            block: None,
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
        self.block
            .as_ref()
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
        let in_block = self.block.as_ref().map_or(0, |b| b.len_bytes) + self.buf.len() as u64;
        let room_block = (self.block_size_bytes - in_block) as usize;
        (MAX_PACKET_DATA_BYTES - self.buf.len()).min(room_block)
    }

    async fn finish_block_if_full(&mut self) -> Result<()> {
        let full = self
            .block
            .as_ref()
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
    /// [`crate::block_recovery`]). A tail shorter than one chunk (512 bytes) stays buffered,
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
            let Some(pipe) = self.block.as_mut().and_then(|b| b.pipe.as_mut()) else {
                break;
            };
            match pipe.wait_acked().await {
                Ok(()) => return Ok(self.written_bytes - self.buf.len() as u64),
                Err(f) => self.recover(f).await?,
            }
        }
        if self.block.as_ref().is_some_and(|b| b.pipe.is_some()) {
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
        if self.block.is_some() {
            self.finish_block().await?;
        }
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

    async fn add_block(&mut self) -> Result<()> {
        let resp = self
            .client
            .call(Request::AddBlock {
                path: self.path.clone(),
                client_name: self.client.inner.client_name.clone(),
                previous: self.previous,
                writer_host: self.client.inner.local_host.clone(),
                excluded_hosts: self.excluded.clone(),
            })
            .await?;
        let located = expect_response!(resp, Response::Block(b) => b)?;
        if located.locations.is_empty() {
            return Err(Error::Unavailable(format!(
                "{}: no datanode available for a new block",
                self.path
            )));
        }
        self.block = Some(OpenBlock {
            located,
            packets: Vec::new(),
            pipe: None,
            len_bytes: 0,
        });
        Ok(())
    }

    async fn flush_packet(&mut self) -> Result<()> {
        let data = self.buf.split().freeze();
        self.send_packet(data).await
    }

    /// Sends `data` (at most one packet, not crossing the block's end) as the block's next
    /// packet, allocating the block first if needed.
    async fn send_packet(&mut self, data: Bytes) -> Result<()> {
        if self.block.is_none() {
            self.add_block().await?;
        }
        let mut crcs = Vec::new();
        checksum::append_crc_bytes(&data, &mut crcs);
        let timeout = self.client.inner.timeout;
        let ob = self.block.as_mut().expect("block allocated above");
        let packet = Packet {
            seqno: ob.packets.len() as u64,
            offset_bytes: ob.len_bytes,
            last: false,
            crcs: Bytes::from(crcs),
            data,
        };
        ob.len_bytes += packet.data.len() as u64;
        ob.packets.push(packet.clone());
        let sent = match ob.pipe.as_mut() {
            Some(pipe) => pipe.send(packet.data, packet.crcs, false).await,
            None => {
                match PipelineWriter::open(ob.located.block, &ob.located.locations, timeout).await {
                    Ok(mut pipe) => {
                        let r = pipe.send(packet.data, packet.crcs, false).await;
                        ob.pipe = Some(pipe);
                        r
                    }
                    Err(f) => Err(f),
                }
            }
        };
        match sent {
            Ok(()) => Ok(()),
            Err(f) => self.recover(f).await,
        }
    }

    /// Sends the block's final packet and lets its final ack (the replicas' fsyncs) arrive
    /// while the next block streams; [`Self::await_finishing`] collects it before the next block
    /// finishes and before `close` completes the file, so G2 still holds at close.
    async fn finish_block(&mut self) -> Result<()> {
        self.await_finishing().await?;
        let mut ob = self.block.take().expect("finish_block needs a block");
        self.previous = Some(Block {
            len_bytes: ob.len_bytes,
            ..ob.located.block
        });
        // The final packet goes out before the next block is allocated, so once the namespace
        // knows this block's length its datanodes finalize it even if this writer then dies.
        let task = match ob.pipe.take() {
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
            if self.block.is_none() {
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
            match transfer::write_block(block, &ob.located.locations, &ob.packets, timeout).await {
                Ok(_) => return Ok(()),
                Err(f) => failure = f,
            }
        }
        Err(Error::Unavailable(format!(
            "{}: could not store block {} on any pipeline: {}",
            self.path, ob.located.block.id, failure.error
        )))
    }

    /// Rebuilds the pipeline of the block being written without the failed node (plus a
    /// replacement when one is live), under a new generation stamp, and resends its packets.
    async fn recover(&mut self, mut failure: PipelineFailure) -> Result<()> {
        for _ in 0..MAX_PIPELINE_RECOVERIES {
            let ob = self.block.as_ref().expect("recover needs a block");
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
            match self.resend(located).await {
                Ok(()) => return Ok(()),
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

    async fn resend(&mut self, located: LocatedBlock) -> std::result::Result<(), PipelineFailure> {
        let timeout = self.client.inner.timeout;
        let ob = self.block.as_mut().expect("resend needs a block");
        ob.located = located;
        ob.pipe = None;
        let mut pipe =
            PipelineWriter::open(ob.located.block, &ob.located.locations, timeout).await?;
        for p in &ob.packets {
            pipe.send(p.data.clone(), p.crcs.clone(), false).await?;
        }
        ob.pipe = Some(pipe);
        Ok(())
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
        match transfer::BlockReadStream::open(node, lb.block, in_block, len, timeout).await {
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
                match self.read_replica(&lb.block, node, in_block, len).await {
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
        block: &Block,
        node: &DatanodeRef,
        offset: u64,
        len: u64,
    ) -> Result<Bytes> {
        let local = self.client.inner.local_host.as_deref() == Some(node.host.as_str());
        if local {
            match self.read_local(block, &node.host, offset, len).await {
                Ok(Some(data)) => return Ok(data),
                Ok(None) => {} // Not on disk where expected: ask the datanode.
                Err(e) => return Err(e),
            }
        }
        let data =
            transfer::read_range(node, *block, offset, len, self.client.inner.timeout).await?;
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
