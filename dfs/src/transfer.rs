//! The datanode data-transfer protocol: block reads, pipeline writes and replication.
//!
//! Every frame (see [`crate::frame`]) starts with a tag byte: `M` then a bincode
//! [`TransferRequest`] or [`TransferReply`], or `P` then a [`Packet`]. A connection carries one
//! operation:
//!
//! - **read**: `M Read` → `M Ready{len}` then `P` packets of verified chunks, the last one flagged
//!   (or `M Failed` at any point). Every packet carries the CRC32 of each 512-byte chunk, so the
//!   reader verifies end to end and never hands out an unverified byte (G3).
//! - **write**: `M Write{block, downstream}` → the datanode opens the rest of the pipeline, then
//!   answers `M Ready` (or `M Failed{bad_index}` naming the node that failed, 0 = itself). Then
//!   `P` packets of at most [`MAX_PACKET_DATA_BYTES`] flow downstream; each datanode verifies a
//!   packet, forwards it, stores it, and acks it upstream only after the downstream ack for the
//!   same packet. The last packet is acked after the replica is finalized (fsynced and renamed),
//!   so the last ack means the block is durable on every node of the pipeline (G2). A node
//!   waits for its downstream ack one peer timeout per node below it, so a hung node is named
//!   by its upstream neighbour. A replica whose pipeline ends before the last packet is parked
//!   in the store for lease recovery (see [`crate::block_store`]).
//! - **recovery** (from the namenode leader, see [`crate::block_recovery`]): `M RecoveryInfo`
//!   → `M Replicas` (every replica of the block here, with fsynced lengths); `M
//!   FinishRecovery` → `M Ready{len}` once the chosen replica is cut, restamped and finalized.
//!
//! Servers bound their connections and time out idle reads; a malformed frame gets a
//! `Failed` reply where one can be sent and the connection is closed (G7).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::block_store::{BlockStore, BlockWriter, Replica};
use crate::checksum::{self, BYTES_PER_CHECKSUM, CHECKSUM_BYTES};
use crate::error::{Error, ErrorKind, Result};
use crate::frame::{decode_msg, encode_msg, write_frame};
use crate::listener::{Conn, Limits, Shutdown, SHUTDOWN_GRACE};
use crate::protocol::{Block, DatanodeRef, ReportedReplica, WireError};

/// Most data bytes in one packet (a multiple of the checksum chunk).
pub const MAX_PACKET_DATA_BYTES: usize = 64 * 1024;
/// Most packets a pipeline writer sends ahead of their acks.
pub const PIPELINE_WINDOW_PACKETS: usize = 64;
/// Frame limit on the transfer port: a full packet with its checksums and header fits, and
/// nothing larger is ever allocated for a peer (G7).
pub const TRANSFER_FRAME_LIMIT_BYTES: usize = 256 * 1024;
/// A receiving datanode starts writeback of a replica every this many bytes (see
/// [`BlockWriter::background_sync_handle`]).
const BACKGROUND_SYNC_BYTES: u64 = 8 << 20;
/// Bytes read from disk per verified read step (then split into packets).
const READ_STEP_BYTES: u64 = 2 << 20;

const TAG_MESSAGE: u8 = b'M';
const TAG_PACKET: u8 = b'P';
const PACKET_HEADER_BYTES: usize = 1 + 8 + 8 + 1 + 4;

/// The first message on a transfer connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferRequest {
    /// Stream the verified bytes `[offset_bytes, offset_bytes + len_bytes)` of a replica; the
    /// replica's generation stamp must equal `block.gen_stamp`.
    Read {
        /// The block (id and generation stamp matter).
        block: Block,
        /// First wanted byte.
        offset_bytes: u64,
        /// Wanted length (clamped to the replica).
        len_bytes: u64,
    },
    /// Receive a replica and forward it to `downstream` (the rest of the pipeline, in order).
    Write {
        /// The block (id and generation stamp).
        block: Block,
        /// The datanodes after this one.
        downstream: Vec<DatanodeRef>,
    },
    /// Lease recovery, step 1 (sent by the namenode leader): report every replica of
    /// `block_id` held here, finalized or left behind by a pipeline that ended early, each
    /// fsynced first so the reported length is durable. Answered by `Replicas`.
    RecoveryInfo {
        /// The block being recovered.
        block_id: u64,
    },
    /// Lease recovery, step 2: cut the replica `from` (id and stamp) to `from.len_bytes`,
    /// give it `gen_stamp`, and finalize it. Answered by `Ready { len_bytes }`.
    FinishRecovery {
        /// The replica to keep and the length to keep of it.
        from: Block,
        /// The new generation stamp.
        gen_stamp: u64,
    },
}

/// Messages a datanode sends back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferReply {
    /// The operation is set up. For reads, `len_bytes` is the replica's length.
    Ready {
        /// Replica length (reads) or 0 (writes).
        len_bytes: u64,
    },
    /// Packet `seqno` is stored on this node and every node downstream.
    Ack {
        /// The acked packet.
        seqno: u64,
    },
    /// The operation failed at the node `bad_index` places after the sender (0 = the sender).
    Failed {
        /// Pipeline position of the failed node, relative to the sender.
        bad_index: u32,
        /// What went wrong.
        error: WireError,
    },
    /// The replicas of a block under recovery held by this datanode (durable lengths).
    Replicas {
        /// Each replica with its stamp, length and state.
        replicas: Vec<ReportedReplica>,
    },
}

/// One packet of block data with the CRC32 of each of its 512-byte chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Position in the stream, from 0.
    pub seqno: u64,
    /// Offset of `data[0]` in the block (a multiple of 512).
    pub offset_bytes: u64,
    /// The final packet of the block.
    pub last: bool,
    /// Little-endian CRC32 per chunk of `data`.
    pub crcs: Bytes,
    /// The data.
    pub data: Bytes,
}

impl Packet {
    /// A packet for `data`, computing its chunk CRCs.
    pub fn with_crcs(seqno: u64, offset_bytes: u64, last: bool, data: Bytes) -> Self {
        let mut crcs = Vec::new();
        checksum::append_crc_bytes(&data, &mut crcs);
        Packet {
            seqno,
            offset_bytes,
            last,
            crcs: Bytes::from(crcs),
            data,
        }
    }

    /// Encodes the frame payload (tag, header, CRCs, data).
    pub fn encode(&self) -> Bytes {
        let mut out =
            BytesMut::with_capacity(PACKET_HEADER_BYTES + self.crcs.len() + self.data.len());
        out.put_u8(TAG_PACKET);
        out.put_u64(self.seqno);
        out.put_u64(self.offset_bytes);
        out.put_u8(self.last as u8);
        out.put_u32(self.crcs.len() as u32);
        out.put_slice(&self.crcs);
        out.put_slice(&self.data);
        out.freeze()
    }

    /// The frame length prefix, tag, header and CRCs: everything of the frame but the data, so
    /// the data can be written straight from its own buffer without a copy.
    fn frame_head(&self) -> BytesMut {
        let body = PACKET_HEADER_BYTES + self.crcs.len() + self.data.len();
        let mut out = BytesMut::with_capacity(4 + PACKET_HEADER_BYTES + self.crcs.len());
        out.put_u32(body as u32);
        out.put_u8(TAG_PACKET);
        out.put_u64(self.seqno);
        out.put_u64(self.offset_bytes);
        out.put_u8(self.last as u8);
        out.put_u32(self.crcs.len() as u32);
        out.put_slice(&self.crcs);
        out
    }

    /// Writes the packet as one frame (not flushed) without copying its data.
    pub async fn write_to<W: AsyncWrite + Unpin>(&self, w: &mut W) -> Result<()> {
        // One vectored write for head and data (see `frame::write_frame`).
        let head = self.frame_head();
        w.write_all_buf(&mut bytes::Buf::chain(&head[..], &self.data[..]))
            .await
            .map_err(|e| Error::io("writing packet", e))
    }

    /// Decodes a frame payload without copying the data. Checks every length: the data must
    /// fit a packet, the checksums must cover exactly the data, and the offset must be
    /// chunk-aligned. Never panics on any input (G7).
    pub fn decode(frame: Bytes) -> Result<Self> {
        let bad = |why: &str| Error::Malformed(format!("bad packet: {why}"));
        if frame.len() < PACKET_HEADER_BYTES {
            return Err(bad("truncated header"));
        }
        if frame[0] != TAG_PACKET {
            return Err(bad("not a packet"));
        }
        let seqno = u64::from_be_bytes(frame[1..9].try_into().map_err(|_| bad("seqno"))?);
        let offset_bytes = u64::from_be_bytes(frame[9..17].try_into().map_err(|_| bad("offset"))?);
        let last = match frame[17] {
            0 => false,
            1 => true,
            _ => return Err(bad("last flag")),
        };
        let crc_len =
            u32::from_be_bytes(frame[18..22].try_into().map_err(|_| bad("crc len"))?) as usize;
        let body = frame.len() - PACKET_HEADER_BYTES;
        if crc_len > body {
            return Err(bad("checksums overrun the frame"));
        }
        let data_len = body - crc_len;
        if data_len > MAX_PACKET_DATA_BYTES {
            return Err(bad("too much data"));
        }
        if crc_len != checksum::chunk_count(data_len as u64) as usize * CHECKSUM_BYTES {
            return Err(bad("checksum count does not match data"));
        }
        // An empty final packet sits at the block's end, which need not be aligned.
        if data_len > 0 && !offset_bytes.is_multiple_of(BYTES_PER_CHECKSUM as u64) {
            return Err(bad("offset not chunk-aligned"));
        }
        let crcs = frame.slice(PACKET_HEADER_BYTES..PACKET_HEADER_BYTES + crc_len);
        let data = frame.slice(PACKET_HEADER_BYTES + crc_len..);
        Ok(Packet {
            seqno,
            offset_bytes,
            last,
            crcs,
            data,
        })
    }

    /// Verifies the data against the CRCs, naming `block` and `replica` on a mismatch.
    pub fn verify(&self, block: u64, replica: &str) -> Result<()> {
        checksum::verify(&self.data, &self.crcs, block, replica)
    }
}

/// Encodes a control message as a frame payload.
pub fn encode_message<T: Serialize>(msg: &T) -> Result<Vec<u8>> {
    let mut out = vec![TAG_MESSAGE];
    out.extend_from_slice(&encode_msg(msg)?);
    Ok(out)
}

/// Decodes a control message frame payload.
pub fn decode_message<T: serde::de::DeserializeOwned>(frame: &[u8]) -> Result<T> {
    match frame.split_first() {
        Some((&TAG_MESSAGE, rest)) => decode_msg(rest),
        Some(_) => Err(Error::Malformed("expected a message frame".into())),
        None => Err(Error::Malformed("empty frame".into())),
    }
}

async fn send_message<W: AsyncWrite + Unpin, T: Serialize>(w: &mut W, msg: &T) -> Result<()> {
    write_frame(w, &encode_message(msg)?).await?;
    w.flush().await.map_err(|e| Error::io("flushing", e))
}

/// Like [`crate::frame::read_frame`] with the transfer limit, but fills the buffer straight
/// from the socket instead of zeroing it first: packets are the bulk of the traffic.
async fn read_frame_unzeroed<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Bytes>> {
    let mut header = [0u8; 4];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(Error::io("reading frame header", e)),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > TRANSFER_FRAME_LIMIT_BYTES {
        return Err(Error::FrameTooLarge {
            len: len as u64,
            limit: TRANSFER_FRAME_LIMIT_BYTES as u64,
        });
    }
    let mut buf = BytesMut::with_capacity(len);
    while buf.len() < len {
        // `take` so a read never runs into the next frame, whatever the buffer's capacity.
        let mut limited = (&mut *r).take((len - buf.len()) as u64);
        let n = limited
            .read_buf(&mut buf)
            .await
            .map_err(|e| Error::io("reading frame payload", e))?;
        if n == 0 {
            return Err(Error::io(
                "reading frame payload (truncated frame?)",
                std::io::ErrorKind::UnexpectedEof.into(),
            ));
        }
    }
    Ok(Some(buf.freeze()))
}

async fn recv_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    timeout: Duration,
    what: &str,
) -> Result<Bytes> {
    match tokio::time::timeout(timeout, read_frame_unzeroed(r)).await {
        Err(_) => Err(Error::Timeout(format!("waiting for {what}"))),
        Ok(Ok(Some(f))) => Ok(f),
        Ok(Ok(None)) => Err(Error::io(
            format!("waiting for {what}"),
            std::io::ErrorKind::UnexpectedEof.into(),
        )),
        Ok(Err(e)) => Err(e),
    }
}

/// Limits and timeouts of the transfer server and its clients.
#[derive(Debug, Clone, Copy)]
pub struct TransferLimits {
    /// Concurrent connections the server accepts; more are closed at once.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// How long to wait for a peer's answer (connect, setup, ack) before declaring it failed.
    pub peer_timeout: Duration,
}

impl TransferLimits {
    /// Limits from the cluster config.
    pub fn from_config(config: &crate::config::ClusterConfig) -> Self {
        TransferLimits {
            max_connections: config.max_connections,
            idle_timeout: Duration::from_millis(config.idle_timeout_ms),
            peer_timeout: Duration::from_millis(config.rpc_timeout_ms),
        }
    }
}

/// Something that changed in the store and must be reported to the namenodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaEvent {
    /// A replica was finalized.
    Received(Replica),
    /// A replica failed verification.
    Corrupt(Replica),
    /// A replica was deleted.
    Deleted(u64),
}

/// The datanode's transfer server.
#[derive(Debug)]
pub struct TransferServer {
    store: Arc<BlockStore>,
    events: mpsc::Sender<ReplicaEvent>,
    limits: TransferLimits,
    active: AtomicU32,
    label: String,
}

impl TransferServer {
    /// A server over `store` that reports store changes on `events`; `label` names this
    /// datanode in errors.
    pub fn new(
        store: Arc<BlockStore>,
        events: mpsc::Sender<ReplicaEvent>,
        limits: TransferLimits,
        label: &str,
    ) -> Arc<Self> {
        Arc::new(TransferServer {
            store,
            events,
            limits,
            active: AtomicU32::new(0),
            label: label.to_string(),
        })
    }

    /// Transfers in progress (for heartbeats).
    pub fn active_transfers(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }

    /// Serves connections on the shared [`crate::listener`] until `shutdown` fires and the
    /// transfers in hand are done. The read timeout of a request frame is the peer timeout.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: Shutdown) {
        let limits = Limits {
            max_connections: self.limits.max_connections,
            idle_timeout: self.limits.idle_timeout,
            read_timeout: self.limits.peer_timeout,
            shutdown_grace: SHUTDOWN_GRACE,
        };
        crate::listener::serve(
            listener,
            "transfer",
            limits,
            shutdown,
            move |stream, conn| {
                let server = self.clone();
                async move {
                    server.active.fetch_add(1, Ordering::Relaxed);
                    let served = server.serve_connection(stream, conn).await;
                    server.active.fetch_sub(1, Ordering::Relaxed);
                    served
                }
            },
        )
        .await
    }

    async fn serve_connection(&self, stream: TcpStream, mut conn: Conn) -> Result<()> {
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let mut r = BufReader::new(r);
        let mut w = BufWriter::new(w);
        // One request per connection: a connection closed (or told to shut down) before its
        // request began is done.
        let request = match conn.wait_for_frame(&mut r).await {
            Ok(false) => return Ok(()),
            Ok(true) => {
                conn.within_read_timeout(recv_frame(&mut r, self.limits.idle_timeout, "a request"))
                    .await
            }
            Err(e) => Err(e),
        }
        .and_then(|f| decode_message::<TransferRequest>(&f));
        let request = match request {
            Ok(req) => req,
            Err(e) => {
                let _ = send_message(&mut w, &failed(0, &e)).await;
                return Err(e);
            }
        };
        match request {
            TransferRequest::Read {
                block,
                offset_bytes,
                len_bytes,
            } => self.serve_read(w, block, offset_bytes, len_bytes).await,
            TransferRequest::Write { block, downstream } => {
                self.serve_write(r, w, block, downstream).await
            }
            TransferRequest::RecoveryInfo { block_id } => {
                let store = self.store.clone();
                let reply = blocking(move || store.recovery_replicas(block_id))
                    .await
                    .map(|replicas| TransferReply::Replicas { replicas });
                self.reply(w, reply).await
            }
            TransferRequest::FinishRecovery { from, gen_stamp } => {
                let store = self.store.clone();
                let done = blocking(move || store.recover(from, gen_stamp)).await;
                if let Ok(replica) = &done {
                    tracing::info!(
                        block = from.id,
                        gen_stamp,
                        len_bytes = replica.len_bytes,
                        "replica recovered"
                    );
                    let _ = self.events.send(ReplicaEvent::Received(*replica)).await;
                }
                let reply = done.map(|r| TransferReply::Ready {
                    len_bytes: r.len_bytes,
                });
                self.reply(w, reply).await
            }
        }
    }

    /// Sends a one-message answer (or the error as `Failed`).
    async fn reply(
        &self,
        mut w: BufWriter<OwnedWriteHalf>,
        reply: Result<TransferReply>,
    ) -> Result<()> {
        match reply {
            Ok(msg) => send_message(&mut w, &msg).await,
            Err(e) => {
                send_message(&mut w, &failed(0, &e)).await?;
                Err(e)
            }
        }
    }

    async fn serve_read(
        &self,
        mut w: BufWriter<OwnedWriteHalf>,
        block: Block,
        offset: u64,
        len: u64,
    ) -> Result<()> {
        let replica = match self.store.get(block.id) {
            Some(r) if r.gen_stamp == block.gen_stamp => r,
            _ => {
                let e = Error::NotFound(format!(
                    "block {} gen {} on {}",
                    block.id, block.gen_stamp, self.label
                ));
                send_message(&mut w, &failed(0, &e)).await?;
                return Err(e);
            }
        };
        let store = self.store.clone();
        let files = match blocking(move || store.open_replica(block.id)).await {
            Ok(f) => Arc::new(f),
            Err(e) => return self.read_failed(&mut w, replica, e).await,
        };
        send_message(
            &mut w,
            &TransferReply::Ready {
                len_bytes: replica.len_bytes,
            },
        )
        .await?;
        let end = offset.saturating_add(len).min(replica.len_bytes);
        let mut pos = offset.min(end);
        let mut seqno = 0;
        // Read the next step from disk while the current one is on the wire.
        let read_step = |pos: u64| {
            let f = files.clone();
            let step = READ_STEP_BYTES.min(end - pos);
            tokio::task::spawn_blocking(move || f.read_verified(pos, step))
        };
        let mut next = (pos < end).then(|| read_step(pos));
        while let Some(handle) = next.take() {
            let read = handle
                .await
                .map_err(|e| Error::Malformed(format!("read task failed: {e}")))
                .and_then(|r| r);
            let chunks = match read {
                Ok(c) => c,
                Err(e) => return self.read_failed(&mut w, replica, e).await,
            };
            pos = chunks.offset + chunks.data.len() as u64;
            if pos < end {
                next = Some(read_step(pos));
            }
            for packet in split_packets(
                chunks.offset,
                chunks.data.into(),
                chunks.crcs.into(),
                &mut seqno,
            ) {
                packet.write_to(&mut w).await?;
            }
        }
        let last = Packet::with_crcs(seqno, align_down(pos), true, Bytes::new());
        last.write_to(&mut w).await?;
        w.flush().await.map_err(|e| Error::io("flushing read", e))
    }

    async fn read_failed(
        &self,
        w: &mut BufWriter<OwnedWriteHalf>,
        replica: Replica,
        e: Error,
    ) -> Result<()> {
        if matches!(e, Error::Corrupt { .. }) {
            let _ = self.events.send(ReplicaEvent::Corrupt(replica)).await;
        }
        let _ = send_message(w, &failed(0, &e)).await;
        Err(e)
    }

    async fn serve_write(
        &self,
        mut r: BufReader<OwnedReadHalf>,
        mut w: BufWriter<OwnedWriteHalf>,
        block: Block,
        downstream: Vec<DatanodeRef>,
    ) -> Result<()> {
        let store = self.store.clone();
        let writer = match blocking(move || store.create(block.id, block.gen_stamp)).await {
            Ok(wr) => wr,
            Err(e) => {
                send_message(&mut w, &failed(0, &e)).await?;
                return Err(e);
            }
        };
        let down = match downstream.split_first() {
            None => None,
            Some((next, rest)) => {
                match connect_write(next, block, rest, self.limits.peer_timeout).await {
                    Ok(conn) => Some(conn),
                    Err(f) => {
                        send_message(&mut w, &failed(f.bad_index as u32 + 1, &f.error)).await?;
                        return Err(f.error);
                    }
                }
            }
        };
        send_message(&mut w, &TransferReply::Ready { len_bytes: 0 }).await?;
        let (down_r, down_w) = match down {
            Some((dr, dw)) => (Some(dr), Some(dw)),
            None => (None, None),
        };
        let (tx, rx) = mpsc::channel(PIPELINE_WINDOW_PACKETS);
        let receive = self.receive_packets(&mut r, down_w, writer, tx);
        // A node waits for its downstream ack longer the more nodes are below it, so when a
        // node hangs, the node just above it times out first and names it; the nodes further
        // up then relay that verdict instead of blaming their healthy neighbour.
        let ack_timeout = self.limits.peer_timeout * downstream.len().max(1) as u32;
        let ack = self.relay_acks(&mut w, down_r, rx, ack_timeout);
        tokio::pin!(receive);
        tokio::pin!(ack);
        let mut receiving = true;
        loop {
            tokio::select! {
                _ = &mut receive, if receiving => receiving = false,
                res = &mut ack => return res,
            }
        }
    }

    /// Reads packets from upstream; forwards, verifies and stores each, finalizes after the
    /// last, and tells [`Self::relay_acks`] what is stored locally (or what failed).
    async fn receive_packets(
        &self,
        r: &mut BufReader<OwnedReadHalf>,
        mut down: Option<BufWriter<OwnedWriteHalf>>,
        writer: BlockWriter,
        tx: mpsc::Sender<Stored>,
    ) {
        // Whichever way this ends before the last packet (an error, or the connection task
        // dropping this future), the partial replica is parked for lease recovery.
        let mut slot = WriterSlot {
            store: self.store.clone(),
            writer: Some(writer),
        };
        let mut expected_seqno = 0;
        loop {
            let step = self
                .receive_one(r, down.as_mut(), &mut slot.writer, expected_seqno)
                .await;
            let done = matches!(
                step,
                Stored::Packet { last: true, .. } | Stored::Failed { .. }
            );
            if tx.send(step).await.is_err() || done {
                return;
            }
            expected_seqno += 1;
        }
    }

    async fn receive_one(
        &self,
        r: &mut BufReader<OwnedReadHalf>,
        down: Option<&mut BufWriter<OwnedWriteHalf>>,
        writer: &mut Option<BlockWriter>,
        expected_seqno: u64,
    ) -> Stored {
        let local = |error| Stored::Failed {
            bad_index: 0,
            error,
        };
        let frame = match recv_frame(r, self.limits.idle_timeout, "a packet").await {
            Ok(f) => f,
            Err(e) => return local(e),
        };
        let packet = match Packet::decode(frame.clone()) {
            Ok(p) => p,
            Err(e) => return local(e),
        };
        let Some(w) = writer.as_mut() else {
            return local(Error::Malformed("packet after the last one".into()));
        };
        if packet.seqno != expected_seqno || packet.offset_bytes != w.len_bytes() {
            return local(Error::Malformed(format!(
                "packet {} at offset {} out of order (expected {expected_seqno} at {})",
                packet.seqno,
                packet.offset_bytes,
                w.len_bytes()
            )));
        }
        // Forward first so the downstream node works while we write.
        if let Some(d) = down {
            let sent = async {
                write_frame(d, &frame).await?;
                d.flush()
                    .await
                    .map_err(|e| Error::io("forwarding packet", e))
            };
            if let Err(error) = sent.await {
                return Stored::Failed {
                    bad_index: 1,
                    error,
                };
            }
        }
        // Appending at most 64 KiB goes to the page cache and costs about as much as a socket
        // write, so it runs here rather than paying a blocking-pool handoff per packet; the
        // slow parts (fsync) run on the blocking pool.
        if let Err(e) = w.append(&packet.data, &packet.crcs) {
            return local(e);
        }
        if let Some(behind) = w.write_behind(BACKGROUND_SYNC_BYTES) {
            tokio::task::spawn_blocking(move || behind.run());
        }
        if !packet.last {
            return Stored::Packet {
                seqno: packet.seqno,
                last: false,
            };
        }
        let Some(w) = writer.take() else {
            return local(Error::Malformed("replica writer vanished".into()));
        };
        let store = self.store.clone();
        match blocking(move || store.finalize(w)).await {
            Ok(replica) => {
                let _ = self.events.send(ReplicaEvent::Received(replica)).await;
                Stored::Packet {
                    seqno: packet.seqno,
                    last: true,
                }
            }
            Err(e) => local(e),
        }
    }

    /// Acks each locally stored packet upstream once the downstream node has acked it too.
    async fn relay_acks(
        &self,
        w: &mut BufWriter<OwnedWriteHalf>,
        mut down: Option<BufReader<OwnedReadHalf>>,
        mut rx: mpsc::Receiver<Stored>,
        ack_timeout: Duration,
    ) -> Result<()> {
        // Acks are cumulative: one ack covers every packet up to its seqno. Under load many
        // packets are stored between two acks, and one message replaces many.
        let mut down_acked: Option<u64> = None;
        while let Some(first) = rx.recv().await {
            let mut stored = vec![first];
            while let Ok(more) = rx.try_recv() {
                stored.push(more);
            }
            let mut upto = None;
            let mut last = false;
            for item in stored {
                match item {
                    Stored::Packet { seqno, last: l } => {
                        upto = Some(seqno);
                        last |= l;
                    }
                    Stored::Failed { bad_index, error } => {
                        let _ = send_message(w, &failed(bad_index, &error)).await;
                        return Err(error);
                    }
                }
            }
            let Some(upto) = upto else { continue };
            if let Some(d) = down.as_mut() {
                while down_acked.is_none_or(|a| a < upto) {
                    match await_ack(d, ack_timeout).await {
                        Ok(acked) => down_acked = Some(acked),
                        Err(f) => {
                            let _ =
                                send_message(w, &failed(f.bad_index as u32 + 1, &f.error)).await;
                            return Err(f.error);
                        }
                    }
                }
            }
            send_message(w, &TransferReply::Ack { seqno: upto }).await?;
            if last {
                return Ok(());
            }
        }
        Err(Error::Malformed(
            "pipeline ended before its last packet".into(),
        ))
    }
}

/// The replica one pipeline connection is writing. Dropped before the last packet (the writer
/// or a neighbour went away), it parks the partial replica in the store instead of deleting it,
/// so lease recovery can close the file at the length that reached this node.
struct WriterSlot {
    store: Arc<BlockStore>,
    writer: Option<BlockWriter>,
}

impl Drop for WriterSlot {
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            self.store.park(w);
        }
    }
}

/// What the receiving half tells the acking half.
enum Stored {
    Packet { seqno: u64, last: bool },
    Failed { bad_index: u32, error: Error },
}

fn failed(bad_index: u32, e: &Error) -> TransferReply {
    TransferReply::Failed {
        bad_index,
        error: WireError::from(e),
    }
}

fn align_down(pos: u64) -> u64 {
    pos / BYTES_PER_CHECKSUM as u64 * BYTES_PER_CHECKSUM as u64
}

/// Runs blocking store work on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Malformed(format!("blocking task failed: {e}")))?
}

/// Splits chunk-aligned verified data into packets, numbering them from `*seqno`.
pub fn split_packets(offset: u64, data: Bytes, crcs: Bytes, seqno: &mut u64) -> Vec<Packet> {
    let per_packet_crc = MAX_PACKET_DATA_BYTES / BYTES_PER_CHECKSUM * CHECKSUM_BYTES;
    let mut out = Vec::with_capacity(data.len().div_ceil(MAX_PACKET_DATA_BYTES));
    let mut i = 0;
    while i * MAX_PACKET_DATA_BYTES < data.len() {
        let d0 = i * MAX_PACKET_DATA_BYTES;
        let d1 = (d0 + MAX_PACKET_DATA_BYTES).min(data.len());
        let c0 = i * per_packet_crc;
        let c1 = (c0 + per_packet_crc).min(crcs.len());
        out.push(Packet {
            seqno: *seqno,
            offset_bytes: offset + d0 as u64,
            last: false,
            crcs: crcs.slice(c0..c1),
            data: data.slice(d0..d1),
        });
        *seqno += 1;
        i += 1;
    }
    out
}

/// A pipeline node failed: `bad_index` is its position in the pipeline the caller opened.
#[derive(Debug)]
pub struct PipelineFailure {
    /// Position of the failed node (0 = the first target).
    pub bad_index: usize,
    /// What went wrong.
    pub error: Error,
}

impl std::fmt::Display for PipelineFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pipeline node {} failed: {}", self.bad_index, self.error)
    }
}

fn fail_at(bad_index: usize, error: Error) -> PipelineFailure {
    PipelineFailure { bad_index, error }
}

async fn connect(addr: &str, timeout: Duration) -> Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| Error::Timeout(format!("connecting to datanode {addr}")))?
        .map_err(|e| Error::io(format!("connecting to datanode {addr}"), e))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Opens a write to `first` (which forwards to `rest`) and waits for the pipeline to be ready.
async fn connect_write(
    first: &DatanodeRef,
    block: Block,
    rest: &[DatanodeRef],
    timeout: Duration,
) -> std::result::Result<(BufReader<OwnedReadHalf>, BufWriter<OwnedWriteHalf>), PipelineFailure> {
    let stream = connect(&first.addr, timeout)
        .await
        .map_err(|e| fail_at(0, e))?;
    let (r, w) = stream.into_split();
    let (mut r, mut w) = (BufReader::new(r), BufWriter::new(w));
    let request = TransferRequest::Write {
        block,
        downstream: rest.to_vec(),
    };
    send_message(&mut w, &request)
        .await
        .map_err(|e| fail_at(0, e))?;
    // Setup may wait for every downstream connect in turn.
    let setup_timeout = timeout * (rest.len() as u32 + 1);
    let frame = recv_frame(&mut r, setup_timeout, "pipeline setup")
        .await
        .map_err(|e| fail_at(0, e))?;
    match decode_message::<TransferReply>(&frame).map_err(|e| fail_at(0, e))? {
        TransferReply::Ready { .. } => Ok((r, w)),
        TransferReply::Failed { bad_index, error } => {
            Err(fail_at(bad_index as usize, error.into()))
        }
        other => Err(fail_at(
            0,
            Error::Malformed(format!("unexpected setup reply {other:?}")),
        )),
    }
}

async fn await_ack(
    r: &mut BufReader<OwnedReadHalf>,
    timeout: Duration,
) -> std::result::Result<u64, PipelineFailure> {
    let frame = recv_frame(r, timeout, "an ack")
        .await
        .map_err(|e| fail_at(0, e))?;
    match decode_message::<TransferReply>(&frame).map_err(|e| fail_at(0, e))? {
        TransferReply::Ack { seqno } => Ok(seqno),
        TransferReply::Failed { bad_index, error } => {
            Err(fail_at(bad_index as usize, error.into()))
        }
        other => Err(fail_at(
            0,
            Error::Malformed(format!("expected an ack, got {other:?}")),
        )),
    }
}

/// The sending end of a write pipeline, used by clients and by replication.
#[derive(Debug)]
pub struct PipelineWriter {
    writer: BufWriter<OwnedWriteHalf>,
    acks: mpsc::Receiver<std::result::Result<u64, PipelineFailure>>,
    in_flight: std::collections::VecDeque<u64>,
    next_seqno: u64,
    next_offset: u64,
    timeout: Duration,
}

impl PipelineWriter {
    /// Opens a pipeline through `targets` (in order) for `block`.
    pub async fn open(
        block: Block,
        targets: &[DatanodeRef],
        timeout: Duration,
    ) -> std::result::Result<Self, PipelineFailure> {
        let (first, rest) = targets
            .split_first()
            .ok_or_else(|| fail_at(0, Error::Unavailable("empty pipeline".into())))?;
        let (mut r, w) = connect_write(first, block, rest, timeout).await?;
        let (tx, acks) = mpsc::channel(PIPELINE_WINDOW_PACKETS + 1);
        // Acks may take a whole pipeline's worth of fsyncs for the last packet.
        let ack_timeout = timeout * (targets.len() as u32 + 1);
        tokio::spawn(async move {
            loop {
                let item = match recv_frame(&mut r, ack_timeout, "an ack")
                    .await
                    .and_then(|f| decode_message::<TransferReply>(&f))
                {
                    Ok(TransferReply::Ack { seqno }) => Ok(seqno),
                    Ok(TransferReply::Failed { bad_index, error }) => {
                        Err(fail_at(bad_index as usize, error.into()))
                    }
                    Ok(other) => Err(fail_at(
                        0,
                        Error::Malformed(format!("unexpected {other:?}")),
                    )),
                    Err(e) => Err(fail_at(0, e)),
                };
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    return;
                }
            }
        });
        Ok(PipelineWriter {
            writer: w,
            acks,
            in_flight: Default::default(),
            next_seqno: 0,
            next_offset: 0,
            timeout: ack_timeout,
        })
    }

    /// Bytes sent so far.
    pub fn sent_bytes(&self) -> u64 {
        self.next_offset
    }

    /// Sends one packet of `data` (at most [`MAX_PACKET_DATA_BYTES`]; a multiple of 512 unless
    /// it is the block's final data) with its precomputed chunk CRCs.
    pub async fn send(
        &mut self,
        data: Bytes,
        crcs: Bytes,
        last: bool,
    ) -> std::result::Result<(), PipelineFailure> {
        while self.in_flight.len() >= PIPELINE_WINDOW_PACKETS {
            self.await_one_ack().await?;
        }
        let packet = Packet {
            seqno: self.next_seqno,
            offset_bytes: self.next_offset,
            last,
            crcs,
            data,
        };
        let sent = async {
            packet.write_to(&mut self.writer).await?;
            self.writer
                .flush()
                .await
                .map_err(|e| Error::io("sending packet", e))
        }
        .await;
        if let Err(e) = sent {
            // The first node may have closed after reporting which node failed: prefer that.
            return Err(self
                .reported_failure()
                .await
                .unwrap_or_else(|| fail_at(0, e)));
        }
        self.in_flight.push_back(packet.seqno);
        self.next_seqno += 1;
        self.next_offset += packet.data.len() as u64;
        Ok(())
    }

    /// Sends the final (empty) packet and waits until every packet is acked, that is until the
    /// replica is finalized on every node of the pipeline.
    pub async fn finish(mut self) -> std::result::Result<u64, PipelineFailure> {
        self.send_end().await?;
        self.finish_sent().await
    }

    /// Sends the final (empty) packet without waiting for acks. Once it is sent, every node
    /// of the pipeline finalizes the replica even if the sender then dies.
    pub async fn send_end(&mut self) -> std::result::Result<(), PipelineFailure> {
        self.send(Bytes::new(), Bytes::new(), true).await
    }

    /// After [`Self::send_end`]: waits until the replica is finalized on every node.
    pub async fn finish_sent(mut self) -> std::result::Result<u64, PipelineFailure> {
        self.wait_acked().await?;
        Ok(self.next_offset)
    }

    /// Waits until every packet sent so far is acknowledged by every node of the pipeline
    /// (stored on each of them; finalized too if the final packet was among them).
    pub async fn wait_acked(&mut self) -> std::result::Result<(), PipelineFailure> {
        while !self.in_flight.is_empty() {
            self.await_one_ack().await?;
        }
        Ok(())
    }

    async fn await_one_ack(&mut self) -> std::result::Result<(), PipelineFailure> {
        let got = tokio::time::timeout(self.timeout, self.acks.recv()).await;
        let seqno = match got {
            Err(_) => {
                return Err(fail_at(
                    0,
                    Error::Timeout("waiting for pipeline ack".into()),
                ))
            }
            Ok(None) => return Err(fail_at(0, Error::Unavailable("pipeline closed".into()))),
            Ok(Some(item)) => item?,
        };
        // Acks are cumulative (see `relay_acks`).
        if self.in_flight.front().is_none_or(|first| *first > seqno) {
            return Err(fail_at(
                0,
                Error::Malformed(format!("ack {seqno} for no packet in flight")),
            ));
        }
        while self.in_flight.front().is_some_and(|s| *s <= seqno) {
            self.in_flight.pop_front();
        }
        Ok(())
    }

    async fn reported_failure(&mut self) -> Option<PipelineFailure> {
        let wait = Duration::from_millis(200).min(self.timeout);
        loop {
            match tokio::time::timeout(wait, self.acks.recv()).await {
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(f))) => return Some(f),
                _ => return None,
            }
        }
    }
}

/// Streams packets of `data` (a whole block) through a pipeline to `targets`.
pub async fn write_block(
    block: Block,
    targets: &[DatanodeRef],
    packets: &[Packet],
    timeout: Duration,
) -> std::result::Result<u64, PipelineFailure> {
    let mut pipe = PipelineWriter::open(block, targets, timeout).await?;
    for p in packets {
        pipe.send(p.data.clone(), p.crcs.clone(), false).await?;
    }
    pipe.finish().await
}

/// Copies a stored replica to `targets` as a pipeline (re-replication on a namenode command).
pub async fn replicate(
    store: Arc<BlockStore>,
    block_id: u64,
    targets: &[DatanodeRef],
    timeout: Duration,
) -> Result<()> {
    let s = store.clone();
    let replica = store
        .get(block_id)
        .ok_or_else(|| Error::NotFound(format!("block {block_id}")))?;
    let files = Arc::new(blocking(move || s.open_replica(block_id)).await?);
    let block = Block {
        id: replica.block_id,
        gen_stamp: replica.gen_stamp,
        len_bytes: replica.len_bytes,
    };
    let mut pipe = PipelineWriter::open(block, targets, timeout)
        .await
        .map_err(|f| f.error)?;
    let mut pos = 0;
    let mut seqno = 0;
    while pos < replica.len_bytes {
        let f = files.clone();
        let step = READ_STEP_BYTES.min(replica.len_bytes - pos);
        let chunks = blocking(move || f.read_verified(pos, step)).await?;
        pos = chunks.offset + chunks.data.len() as u64;
        for p in split_packets(
            chunks.offset,
            chunks.data.into(),
            chunks.crcs.into(),
            &mut seqno,
        ) {
            pipe.send(p.data, p.crcs, false)
                .await
                .map_err(|f| f.error)?;
        }
    }
    pipe.finish().await.map_err(|f| f.error)?;
    Ok(())
}

/// Sends one request and returns the one reply (a `Failed` reply becomes its error).
async fn one_shot(
    node: &DatanodeRef,
    req: &TransferRequest,
    timeout: Duration,
) -> Result<TransferReply> {
    let stream = connect(&node.addr, timeout).await?;
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r);
    send_message(&mut w, req).await?;
    let frame = recv_frame(&mut reader, timeout, "a recovery reply").await?;
    match decode_message::<TransferReply>(&frame)? {
        TransferReply::Failed { error, .. } => Err(error.into()),
        other => Ok(other),
    }
}

/// Lease recovery step 1: the replicas of `block_id` on `node`, with durable lengths.
pub async fn recovery_info(
    node: &DatanodeRef,
    block_id: u64,
    timeout: Duration,
) -> Result<Vec<ReportedReplica>> {
    match one_shot(node, &TransferRequest::RecoveryInfo { block_id }, timeout).await? {
        TransferReply::Replicas { replicas } => Ok(replicas),
        other => Err(Error::Malformed(format!(
            "unexpected recovery reply {other:?}"
        ))),
    }
}

/// Lease recovery step 2: `node` cuts replica `from` to `from.len_bytes`, restamps it
/// `gen_stamp` and finalizes it; returns the finalized length.
pub async fn finish_recovery(
    node: &DatanodeRef,
    from: Block,
    gen_stamp: u64,
    timeout: Duration,
) -> Result<u64> {
    // Finalizing fsyncs twice and renames: allow it more than one round trip.
    let req = TransferRequest::FinishRecovery { from, gen_stamp };
    match one_shot(node, &req, timeout * 2).await? {
        TransferReply::Ready { len_bytes } => Ok(len_bytes),
        other => Err(Error::Malformed(format!(
            "unexpected recovery reply {other:?}"
        ))),
    }
}

/// A streaming read of one replica's byte range from a datanode.
#[derive(Debug)]
pub struct BlockReadStream {
    reader: BufReader<OwnedReadHalf>,
    _writer: OwnedWriteHalf,
    block: Block,
    addr: String,
    /// The replica's length as the datanode reported it.
    pub replica_len_bytes: u64,
    next_seqno: u64,
    done: bool,
    timeout: Duration,
}

impl BlockReadStream {
    /// Asks `node` for `[offset, offset + len)` of `block`.
    pub async fn open(
        node: &DatanodeRef,
        block: Block,
        offset: u64,
        len: u64,
        timeout: Duration,
    ) -> Result<Self> {
        let stream = connect(&node.addr, timeout).await?;
        let (r, mut w) = stream.into_split();
        let mut reader = BufReader::new(r);
        let req = TransferRequest::Read {
            block,
            offset_bytes: offset,
            len_bytes: len,
        };
        send_message(&mut w, &req).await?;
        let frame = recv_frame(&mut reader, timeout, "read setup").await?;
        let replica_len_bytes = match decode_message::<TransferReply>(&frame)? {
            TransferReply::Ready { len_bytes } => len_bytes,
            TransferReply::Failed { error, .. } => return Err(error.into()),
            other => return Err(Error::Malformed(format!("unexpected read reply {other:?}"))),
        };
        Ok(BlockReadStream {
            reader,
            _writer: w,
            block,
            addr: node.addr.clone(),
            replica_len_bytes,
            next_seqno: 0,
            done: false,
            timeout,
        })
    }

    /// The next verified packet (chunk-aligned; the caller trims to its range), or `None` after
    /// the last. A checksum mismatch is [`Error::Corrupt`] naming this replica.
    pub async fn next_packet(&mut self) -> Result<Option<Packet>> {
        if self.done {
            return Ok(None);
        }
        let frame = recv_frame(&mut self.reader, self.timeout, "block data").await?;
        if frame.first() == Some(&TAG_MESSAGE) {
            return match decode_message::<TransferReply>(&frame)? {
                TransferReply::Failed { error, .. } => {
                    Err(remote_read_error(error, &self.block, &self.addr))
                }
                other => Err(Error::Malformed(format!("unexpected {other:?} in a read"))),
            };
        }
        let packet = Packet::decode(frame)?;
        if packet.seqno != self.next_seqno {
            return Err(Error::Malformed(format!(
                "read packet {} out of order",
                packet.seqno
            )));
        }
        self.next_seqno += 1;
        // Verify here, at the reader, so bytes damaged anywhere on the way are caught (G3).
        packet.verify(self.block.id, &self.addr)?;
        if packet.last {
            self.done = true;
            if packet.data.is_empty() {
                return Ok(None);
            }
        }
        Ok(Some(packet))
    }
}

fn remote_read_error(error: WireError, block: &Block, addr: &str) -> Error {
    if error.kind == ErrorKind::Corrupt {
        return Error::Corrupt {
            block: block.id,
            replica: addr.to_string(),
            detail: error.message,
        };
    }
    error.into()
}

/// Reads `[offset, offset + len)` of `block` from `node`, verified, into one buffer.
pub async fn read_range(
    node: &DatanodeRef,
    block: Block,
    offset: u64,
    len: u64,
    timeout: Duration,
) -> Result<Vec<u8>> {
    let mut stream = BlockReadStream::open(node, block, offset, len, timeout).await?;
    let end = offset.saturating_add(len).min(stream.replica_len_bytes);
    let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
    while let Some(p) = stream.next_packet().await? {
        append_trimmed(&mut out, &p, offset, end);
    }
    if (out.len() as u64) < end.saturating_sub(offset) {
        return Err(Error::Malformed(format!(
            "short read of block {} from {}",
            block.id, node.addr
        )));
    }
    Ok(out)
}

/// Appends the part of `p` inside `[start, end)` to `out`.
pub fn append_trimmed(out: &mut Vec<u8>, p: &Packet, start: u64, end: u64) {
    let p_end = p.offset_bytes + p.data.len() as u64;
    let lo = start.max(p.offset_bytes);
    let hi = end.min(p_end);
    if lo < hi {
        out.extend_from_slice(
            &p.data[(lo - p.offset_bytes) as usize..(hi - p.offset_bytes) as usize],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn payload(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| ((i * 13) as u8).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn packet_round_trip() {
        let p = Packet::with_crcs(3, 1024, true, Bytes::from(payload(1000, 1)));
        let back = Packet::decode(p.encode()).unwrap();
        assert_eq!(back, p);
        back.verify(1, "x").unwrap();
    }

    proptest! {
        // Checks G7: random and truncated packet bytes never panic.
        #[test]
        fn packet_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048), cut in 0usize..2048) {
            let _ = Packet::decode(Bytes::from(bytes.clone()));
            let mut tagged = bytes.clone();
            if !tagged.is_empty() { tagged[0] = TAG_PACKET; }
            let _ = Packet::decode(Bytes::from(tagged));
            let good = Packet::with_crcs(1, 512, false, Bytes::from(payload(cut, 2))).encode();
            let cut = cut.min(good.len());
            let _ = Packet::decode(good.slice(..cut));
            let _ = decode_message::<TransferRequest>(&bytes);
            let _ = decode_message::<TransferReply>(&bytes);
        }
    }

    struct Node {
        store: Arc<BlockStore>,
        node: DatanodeRef,
        _dir: tempfile::TempDir,
        _events: mpsc::Receiver<ReplicaEvent>,
    }

    async fn start_node(name: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(BlockStore::open(&[dir.path().to_path_buf()], name).unwrap());
        let (tx, rx) = mpsc::channel(1000);
        let limits = TransferLimits {
            max_connections: 16,
            idle_timeout: Duration::from_secs(5),
            peer_timeout: Duration::from_secs(2),
        };
        let server = TransferServer::new(store.clone(), tx, limits, name);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(server.serve(listener, Shutdown::never()));
        Node {
            store,
            node: DatanodeRef {
                host: name.into(),
                addr,
                rack: "/r".into(),
            },
            _dir: dir,
            _events: rx,
        }
    }

    fn packets_of(data: &[u8]) -> Vec<Packet> {
        let mut seqno = 0;
        let mut crcs = Vec::new();
        checksum::append_crc_bytes(data, &mut crcs);
        split_packets(
            0,
            Bytes::copy_from_slice(data),
            Bytes::from(crcs),
            &mut seqno,
        )
    }

    // Checks G2: a pipeline write lands, finalized and identical, on every node.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pipeline_write_then_read_every_replica() {
        let nodes = [
            start_node("a").await,
            start_node("b").await,
            start_node("c").await,
        ];
        let targets: Vec<DatanodeRef> = nodes.iter().map(|n| n.node.clone()).collect();
        let data = payload(200_003, 7);
        let block = Block {
            id: 11,
            gen_stamp: 1,
            len_bytes: 0,
        };
        let len = write_block(block, &targets, &packets_of(&data), Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(len, data.len() as u64);
        for n in &nodes {
            assert_eq!(n.store.get(11).unwrap().len_bytes, data.len() as u64);
            let got = read_range(&n.node, block, 1000, 150_000, Duration::from_secs(2))
                .await
                .unwrap();
            assert_eq!(got, &data[1000..151_000]);
        }
        // Re-replication to a fresh node copies the same bytes.
        let d = start_node("d").await;
        replicate(
            nodes[0].store.clone(),
            11,
            std::slice::from_ref(&d.node),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        let got = read_range(&d.node, block, 0, u64::MAX, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(got, data);
    }

    // Checks G2 (lease recovery): a writer that dies after its packets were acked leaves
    // parked replicas on every node; they report their length, and a recovered replica
    // (cut inside a chunk, restamped, finalized) reads back verified.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn abandoned_pipeline_is_parked_and_recoverable() {
        let nodes = [start_node("a").await, start_node("b").await];
        let targets: Vec<DatanodeRef> = nodes.iter().map(|n| n.node.clone()).collect();
        let data = payload(3 * MAX_PACKET_DATA_BYTES, 5);
        let block = Block {
            id: 21,
            gen_stamp: 4,
            len_bytes: 0,
        };
        let timeout = Duration::from_secs(2);
        let mut pipe = PipelineWriter::open(block, &targets, timeout)
            .await
            .unwrap();
        for p in packets_of(&data) {
            pipe.send(p.data, p.crcs, false).await.unwrap();
        }
        pipe.wait_acked().await.unwrap();
        drop(pipe); // The writer dies: no final packet.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while nodes.iter().any(|n| n.store.parked_count() == 0) {
            assert!(
                std::time::Instant::now() < deadline,
                "replicas never parked"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for n in &nodes {
            let reported = recovery_info(&n.node, 21, timeout).await.unwrap();
            assert_eq!(reported.len(), 1, "{reported:?}");
            assert_eq!(reported[0].block.len_bytes, data.len() as u64);
            assert_eq!(reported[0].state, crate::protocol::ReplicaState::InProgress);
        }
        let keep = data.len() as u64 - 700;
        let from = Block {
            len_bytes: keep,
            ..block
        };
        for n in &nodes {
            assert_eq!(
                finish_recovery(&n.node, from, 9, timeout).await.unwrap(),
                keep
            );
            let recovered = Block {
                id: 21,
                gen_stamp: 9,
                len_bytes: keep,
            };
            let got = read_range(&n.node, recovered, 0, u64::MAX, timeout)
                .await
                .unwrap();
            assert_eq!(got, &data[..keep as usize]);
        }
        let after = recovery_info(&nodes[0].node, 21, timeout).await.unwrap();
        assert_eq!(
            after.len(),
            1,
            "the parked copy went with the finalize: {after:?}"
        );
        assert_eq!(after[0].state, crate::protocol::ReplicaState::Finalized);
    }

    // Checks G2: a dead node is named by its position so the writer can rebuild the pipeline.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dead_downstream_is_named() {
        let a = start_node("a").await;
        let dead = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().to_string()
        };
        let targets = vec![
            a.node.clone(),
            DatanodeRef {
                host: "dead".into(),
                addr: dead,
                rack: "/r".into(),
            },
        ];
        let block = Block {
            id: 1,
            gen_stamp: 1,
            len_bytes: 0,
        };
        let err = write_block(
            block,
            &targets,
            &packets_of(&payload(10, 1)),
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert_eq!(err.bad_index, 1, "{err}");
        assert!(a.store.get(1).is_none());
    }

    // Checks G3: a corrupt replica is refused with a Corrupt error, never served.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn corrupt_replica_is_not_served() {
        let mut a = start_node("a").await;
        let data = payload(5000, 3);
        let block = Block {
            id: 2,
            gen_stamp: 4,
            len_bytes: 0,
        };
        write_block(
            block,
            std::slice::from_ref(&a.node),
            &packets_of(&data),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        let (path, _) = crate::block_store::replica_paths(a._dir.path(), 2, 4);
        let mut raw = std::fs::read(&path).unwrap();
        raw[2000] ^= 1;
        std::fs::write(&path, raw).unwrap();
        let err = read_range(&a.node, block, 0, 5000, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Corrupt { block: 2, .. }), "{err}");
        let mut saw_corrupt = false;
        while let Ok(ev) = a._events.try_recv() {
            saw_corrupt |= matches!(ev, ReplicaEvent::Corrupt(r) if r.block_id == 2);
        }
        assert!(saw_corrupt);
    }

    // Checks G7: garbage, oversized and truncated frames get an error or a close, and the
    // server keeps serving.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn garbage_does_not_hurt_the_server() {
        use tokio::io::AsyncReadExt;
        let a = start_node("a").await;
        let garbage: Vec<Vec<u8>> = vec![
            vec![0xff, 0xff, 0xff, 0xff],
            vec![0, 0, 0, 5, b'M', 1, 2, 3, 4],
            vec![0, 0, 0, 50, b'P'],
            vec![0, 0, 0, 1, b'P'],
            vec![0x80, 0, 0, 0, 1, 2],
        ];
        for bytes in garbage {
            let mut s = TcpStream::connect(&a.node.addr).await.unwrap();
            s.write_all(&bytes).await.unwrap();
            s.shutdown().await.unwrap();
            let mut buf = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
                .await
                .unwrap();
        }
        let data = payload(700, 9);
        let block = Block {
            id: 3,
            gen_stamp: 1,
            len_bytes: 0,
        };
        write_block(
            block,
            std::slice::from_ref(&a.node),
            &packets_of(&data),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        let got = read_range(&a.node, block, 0, 700, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(got, data);
    }
}
