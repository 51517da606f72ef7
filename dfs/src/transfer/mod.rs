//! The datanode data-transfer protocol: block reads, pipeline writes and replication.
//!
//! Every frame (see [`crate::frame`]) starts with a tag byte: `M` then an encoded (`frame::encode_msg`)
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
//!   by its upstream neighbour. A node that reports a failure keeps reading (and dropping) what
//!   its upstream still sends until that node closes (for a peer timeout at most): closed with
//!   bytes unread, its socket would answer with a reset, and the upstream node would name it
//!   instead of reading its report. For the same reason a node whose forward fails reads its
//!   downstream's report before naming that node. A replica whose pipeline ends before the last packet is parked
//!   in the store for lease recovery (see [`crate::block_store`]).
//! - **recovery** (from the namenode leader, see [`crate::namenode::block_recovery`]): `M RecoveryInfo`
//!   → `M Replicas` (every replica of the block here, with fsynced lengths); `M
//!   FinishRecovery` → `M Ready{len}` once the chosen replica is cut, restamped and finalized.
//!
//! Servers bound their connections and time out idle reads; a malformed frame gets a
//! `Failed` reply where one can be sent and the connection is closed (G7).
//!
//! # Layout
//!
//! - `wire`: the messages, the packet format, framing, and the send and receive helpers.
//! - `server`: [`TransferServer`]: accepts connections and dispatches each by its request.
//! - `pipeline`: pipeline writes, both ends: receive, verify, store, forward downstream, ack
//!   upstream on the datanode; [`PipelineWriter`] for clients; [`replicate`] on a command.
//! - `read`: verified block reads: served from the store, and [`BlockReadStream`] for clients.
//! - `recovery`: lease recovery's two steps, served and asked for by the namenode leader.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::block_store::{BlockStore, Replica};
use crate::error::{Error, Result};

mod pipeline;
mod read;
mod recovery;
mod server;
#[cfg(test)]
mod tests;
mod wire;

pub use pipeline::{
    replicate, write_block, PipelineFailure, PipelineWriter, PIPELINE_WINDOW_PACKETS,
};
pub use read::{append_trimmed, read_range, BlockReadStream};
pub use recovery::{finish_recovery, recovery_info};
pub use server::TransferServer;
pub use wire::{
    decode_message, encode_message, split_packets, Packet, TransferReply, TransferRequest,
    MAX_PACKET_DATA_BYTES, TRANSFER_FRAME_LIMIT_BYTES,
};

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

/// One connection's handler: what it needs of its datanode, borrowed from the
/// [`TransferServer`] that accepted the connection. Each kind of operation adds its own
/// methods in its own room (`read`, `pipeline`, `recovery`).
#[derive(Debug, Clone, Copy)]
struct Handler<'a> {
    store: &'a Arc<BlockStore>,
    events: &'a mpsc::Sender<ReplicaEvent>,
    limits: TransferLimits,
    label: &'a str,
    credentials: &'a crate::auth::Credentials,
}

/// Runs blocking store work on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Malformed(format!("blocking task failed: {e}")))?
}
