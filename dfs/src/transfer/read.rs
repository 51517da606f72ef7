//! Verified block reads: the datanode streams a replica's chunks with their CRCs from the
//! store, and the reader verifies every packet again before it hands out a byte (G3).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::wire::{
    align_down, connect, decode_message, failed, recv_frame, send_message, split_packets, Packet,
    TransferReply, TransferRequest, TAG_MESSAGE,
};
use super::{blocking, Handler, ReplicaEvent};
use crate::auth::{BlockToken, Credentials};
use crate::block_store::Replica;
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::{Block, DatanodeRef, WireError};

/// Bytes read from disk per verified read step (then split into packets).
pub(super) const READ_STEP_BYTES: u64 = 2 << 20;

impl Handler<'_> {
    /// Streams the verified bytes `[offset, offset + len)` of `block`, or answers `Failed`.
    pub(super) async fn serve_read(
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
        credentials: &Credentials,
        token: Option<&BlockToken>,
        timeout: Duration,
    ) -> Result<Self> {
        let stream = connect(&node.addr, credentials, timeout).await?;
        let (r, mut w) = stream.into_split();
        let mut reader = BufReader::new(r);
        let req = TransferRequest::Read {
            block,
            offset_bytes: offset,
            len_bytes: len,
            token: token.cloned(),
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
    credentials: &Credentials,
    token: Option<&BlockToken>,
    timeout: Duration,
) -> Result<Vec<u8>> {
    let mut stream =
        BlockReadStream::open(node, block, offset, len, credentials, token, timeout).await?;
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
