//! Pipeline writes, both ends. On a datanode, one connection receives a block's packets,
//! verifies, stores and forwards each downstream, and acks it upstream once the downstream
//! node acked it too; the last ack follows the replica's finalize (G2). [`PipelineWriter`] is
//! the sending end, used by clients and by [`replicate`] (re-replication on a namenode
//! command).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use super::read::READ_STEP_BYTES;
use super::wire::{
    connect, decode_message, failed, recv_frame, send_message, split_packets, Packet,
    TransferReply, TransferRequest,
};
use super::{blocking, Handler, ReplicaEvent};
use crate::auth::{BlockToken, Credentials};
use crate::block_store::{BlockStore, BlockWriter};
use crate::error::{Error, Result};
use crate::frame::write_frame;
use crate::protocol::{Block, DatanodeRef};

/// Most packets a pipeline writer sends ahead of their acks.
pub const PIPELINE_WINDOW_PACKETS: usize = 64;
/// A receiving datanode starts writeback of a replica every this many bytes (see
/// [`BlockWriter::write_behind`]).
const BACKGROUND_SYNC_BYTES: u64 = 8 << 20;

impl Handler<'_> {
    /// Receives a replica: opens the rest of the pipeline, answers `Ready`, then stores and
    /// forwards packets while acks flow back (see the module docs).
    pub(super) async fn serve_write(
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
                // This datanode is a member: downstream needs no token from it.
                let creds = self.credentials;
                match connect_write(next, block, rest, creds, None, self.limits.peer_timeout).await
                {
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
        // A node waits for its downstream ack longer the more nodes are below it, so when a
        // node hangs, the node just above it times out first and names it; the nodes further
        // up then relay that verdict instead of blaming their healthy neighbour.
        let ack_timeout = self.limits.peer_timeout * downstream.len().max(1) as u32;
        let res = {
            let receive = self.receive_packets(&mut r, down_w, writer, tx);
            let ack = self.relay_acks(&mut w, down_r, rx, ack_timeout);
            tokio::pin!(receive);
            tokio::pin!(ack);
            let mut receiving = true;
            loop {
                tokio::select! {
                    _ = &mut receive, if receiving => receiving = false,
                    res = &mut ack => break res,
                }
            }
        };
        if res.is_err() {
            linger(&mut r, &mut w, self.limits.peer_timeout).await;
        }
        res
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
        crate::metrics::datanode()
            .bytes_written
            .inc_by(packet.data.len() as u64);
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
                        let (bad_index, error) = match down.as_mut() {
                            Some(d) if bad_index == 1 => {
                                downstream_verdict(d, error, self.limits.peer_timeout).await
                            }
                            _ => (bad_index, error),
                        };
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

/// After this node reported a failure upstream: closes its sending half and reads (and drops)
/// what the upstream node still sends, until that node closes too or `limit` passes. Closing a
/// socket with unread bytes in it makes the kernel answer with a reset, so the upstream node's
/// next forward would fail and it would blame this node, not read the report naming the node
/// that really failed (seen: a live datanode excluded from a pipeline for its dead neighbour,
/// and a file closed with one replica too few, G2).
async fn linger(
    r: &mut BufReader<OwnedReadHalf>,
    w: &mut BufWriter<OwnedWriteHalf>,
    limit: Duration,
) {
    let _ = w.shutdown().await;
    let _ = tokio::time::timeout(limit, tokio::io::copy(r, &mut tokio::io::sink())).await;
}

/// Which node to name when forwarding a packet to the downstream node failed with `error`:
/// the downstream node may have closed after reporting a failure further down (its report is
/// then waiting to be read), so its report is read first, skipping acks, for at most `limit`.
/// A reset, an end of stream or silence names the downstream node itself (index 1), as before.
async fn downstream_verdict(
    down: &mut BufReader<OwnedReadHalf>,
    error: Error,
    limit: Duration,
) -> (u32, Error) {
    let report = tokio::time::timeout(limit, async {
        loop {
            if let Err(f) = await_ack(down, limit).await {
                return f;
            }
        }
    })
    .await;
    match report {
        // A report names a node counted from the downstream one; a reset or an end of stream
        // comes as index 0, the downstream node itself.
        Ok(f) => (f.bad_index as u32 + 1, f.error),
        Err(_) => (1, error),
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

/// Opens a write to `first` (which forwards to `rest`) and waits for the pipeline to be ready.
async fn connect_write(
    first: &DatanodeRef,
    block: Block,
    rest: &[DatanodeRef],
    credentials: &Credentials,
    token: Option<&BlockToken>,
    timeout: Duration,
) -> std::result::Result<(BufReader<OwnedReadHalf>, BufWriter<OwnedWriteHalf>), PipelineFailure> {
    let stream = connect(&first.addr, credentials, timeout)
        .await
        .map_err(|e| fail_at(0, e))?;
    let (r, w) = stream.into_split();
    let (mut r, mut w) = (BufReader::new(r), BufWriter::new(w));
    let request = TransferRequest::Write {
        block,
        downstream: rest.to_vec(),
        token: token.cloned(),
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
        credentials: &Credentials,
        token: Option<&BlockToken>,
        timeout: Duration,
    ) -> std::result::Result<Self, PipelineFailure> {
        let (first, rest) = targets
            .split_first()
            .ok_or_else(|| fail_at(0, Error::Unavailable("empty pipeline".into())))?;
        let (mut r, w) = connect_write(first, block, rest, credentials, token, timeout).await?;
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
        self.take_arrived()?;
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
        self.acked(seqno)
    }

    /// Takes the acks and failure reports that have arrived, without waiting, so a failure a
    /// node reported is noticed at the next send: the reporting node keeps reading what is
    /// sent after its report (see `linger`), so the send itself would not fail.
    fn take_arrived(&mut self) -> std::result::Result<(), PipelineFailure> {
        while let Ok(item) = self.acks.try_recv() {
            self.acked(item?)?;
        }
        Ok(())
    }

    /// Retires the packets up to `seqno`.
    fn acked(&mut self, seqno: u64) -> std::result::Result<(), PipelineFailure> {
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
    credentials: &Credentials,
    token: Option<&BlockToken>,
    timeout: Duration,
) -> std::result::Result<u64, PipelineFailure> {
    let mut pipe = PipelineWriter::open(block, targets, credentials, token, timeout).await?;
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
    credentials: &Credentials,
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
    // Re-replication is a datanode's, a member's: no token.
    let mut pipe = PipelineWriter::open(block, targets, credentials, None, timeout)
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
