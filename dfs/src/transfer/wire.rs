//! The transfer protocol's wire format: the control messages, the data packet, their framing
//! (see the module docs of [`crate::transfer`]), and the send and receive helpers every side of
//! the protocol shares.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::auth::{BlockToken, Credentials};
use crate::checksum::{self, BYTES_PER_CHECKSUM, CHECKSUM_BYTES};
use crate::error::{Error, Result};
use crate::frame::{decode_msg, encode_msg, write_frame};
use crate::protocol::{Block, DatanodeRef, ReportedReplica, WireError};

/// Most data bytes in one packet (a multiple of the checksum chunk).
pub const MAX_PACKET_DATA_BYTES: usize = 64 * 1024;
/// Frame limit on the transfer port: a full packet with its checksums and header fits, and
/// nothing larger is ever allocated for a peer (G7).
pub const TRANSFER_FRAME_LIMIT_BYTES: usize = 256 * 1024;

pub(super) const TAG_MESSAGE: u8 = b'M';
pub(super) const TAG_PACKET: u8 = b'P';
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
        /// The namenode's permission (needed by all but members).
        token: Option<BlockToken>,
    },
    /// Receive a replica and forward it to `downstream` (the rest of the pipeline, in order).
    Write {
        /// The block (id and generation stamp).
        block: Block,
        /// The datanodes after this one.
        downstream: Vec<DatanodeRef>,
        /// The namenode's permission (needed by all but members).
        token: Option<BlockToken>,
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

/// Sends one control message and flushes it.
pub(super) async fn send_message<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> Result<()> {
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

/// Receives one frame within `timeout`; the end of the stream is an error naming `what` was
/// awaited.
pub(super) async fn recv_frame<R: AsyncRead + Unpin>(
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

/// Sends a one-message answer (or the error as `Failed`).
pub(super) async fn reply<W: AsyncWrite + Unpin>(
    mut w: W,
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

/// The `Failed` reply for `e` at the node `bad_index` places after the sender.
pub(super) fn failed(bad_index: u32, e: &Error) -> TransferReply {
    TransferReply::Failed {
        bad_index,
        error: WireError::from(e),
    }
}

/// Rounds `pos` down to a checksum chunk boundary.
pub(super) fn align_down(pos: u64) -> u64 {
    pos / BYTES_PER_CHECKSUM as u64 * BYTES_PER_CHECKSUM as u64
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

/// Connects to a datanode and authenticates with `credentials`, within `timeout`.
pub(super) async fn connect(
    addr: &str,
    credentials: &Credentials,
    timeout: Duration,
) -> Result<TcpStream> {
    crate::auth::connect(addr, "datanode", credentials, timeout).await
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
}
