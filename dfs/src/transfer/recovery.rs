//! Lease recovery's two steps on a datanode (see [`crate::namenode::block_recovery`]): report the
//! replicas of a block with durable lengths, then cut, restamp and finalize the chosen one.
//! Served here and asked for by the namenode leader.

use std::time::Duration;

use tokio::io::{BufReader, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;

use super::wire::{
    connect, decode_message, recv_frame, reply, send_message, TransferReply, TransferRequest,
};
use super::{blocking, Handler, ReplicaEvent};
use crate::auth::Credentials;
use crate::error::{Error, Result};
use crate::protocol::{Block, DatanodeRef, ReportedReplica};

impl Handler<'_> {
    /// Step 1: answers `Replicas` with every replica of `block_id` held here.
    pub(super) async fn serve_recovery_info(
        &self,
        w: BufWriter<OwnedWriteHalf>,
        block_id: u64,
    ) -> Result<()> {
        let store = self.store.clone();
        let answer = blocking(move || store.recovery_replicas(block_id))
            .await
            .map(|replicas| TransferReply::Replicas { replicas });
        reply(w, answer).await
    }

    /// Step 2: cuts, restamps and finalizes the replica `from`, reports it to the namenodes,
    /// and answers `Ready` with its length.
    pub(super) async fn serve_finish_recovery(
        &self,
        w: BufWriter<OwnedWriteHalf>,
        from: Block,
        gen_stamp: u64,
    ) -> Result<()> {
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
        let answer = done.map(|r| TransferReply::Ready {
            len_bytes: r.len_bytes,
        });
        reply(w, answer).await
    }
}

/// Sends one request and returns the one reply (a `Failed` reply becomes its error).
async fn one_shot(
    node: &DatanodeRef,
    req: &TransferRequest,
    credentials: &Credentials,
    timeout: Duration,
) -> Result<TransferReply> {
    let stream = connect(&node.addr, credentials, timeout).await?;
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
    credentials: &Credentials,
    timeout: Duration,
) -> Result<Vec<ReportedReplica>> {
    let req = TransferRequest::RecoveryInfo { block_id };
    match one_shot(node, &req, credentials, timeout).await? {
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
    credentials: &Credentials,
    timeout: Duration,
) -> Result<u64> {
    // Finalizing fsyncs twice and renames: allow it more than one round trip.
    let req = TransferRequest::FinishRecovery { from, gen_stamp };
    match one_shot(node, &req, credentials, timeout * 2).await? {
        TransferReply::Ready { len_bytes } => Ok(len_bytes),
        other => Err(Error::Malformed(format!(
            "unexpected recovery reply {other:?}"
        ))),
    }
}
