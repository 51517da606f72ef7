//! The datanode's transfer server: accepts connections within the connection limit and
//! serves each one's single operation.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use super::wire::{decode_message, failed, recv_frame, send_message, TransferRequest};
use super::{Handler, ReplicaEvent, TransferLimits};
use crate::block_store::BlockStore;
use crate::error::Result;

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

    /// Accepts and serves connections forever.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        let slots = Arc::new(Semaphore::new(self.limits.max_connections));
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // Usually EMFILE: back off rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!("refusing transfer connection from {peer}: too many open");
                continue;
            };
            let server = self.clone();
            tokio::spawn(async move {
                server.active.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = server.serve_connection(stream).await {
                    tracing::debug!("transfer connection from {peer} ended: {e}");
                }
                server.active.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
            });
        }
    }

    /// The handler of one connection, borrowing this server's store, events and limits.
    fn handler(&self) -> Handler<'_> {
        Handler {
            store: &self.store,
            events: &self.events,
            limits: self.limits,
            label: &self.label,
        }
    }

    async fn serve_connection(&self, stream: TcpStream) -> Result<()> {
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let mut r = BufReader::new(r);
        let mut w = BufWriter::new(w);
        let request = recv_frame(&mut r, self.limits.idle_timeout, "a request")
            .await
            .and_then(|f| decode_message::<TransferRequest>(&f));
        let request = match request {
            Ok(req) => req,
            Err(e) => {
                let _ = send_message(&mut w, &failed(0, &e)).await;
                return Err(e);
            }
        };
        let handler = self.handler();
        match request {
            TransferRequest::Read {
                block,
                offset_bytes,
                len_bytes,
            } => handler.serve_read(w, block, offset_bytes, len_bytes).await,
            TransferRequest::Write { block, downstream } => {
                handler.serve_write(r, w, block, downstream).await
            }
            TransferRequest::RecoveryInfo { block_id } => {
                handler.serve_recovery_info(w, block_id).await
            }
            TransferRequest::FinishRecovery { from, gen_stamp } => {
                handler.serve_finish_recovery(w, from, gen_stamp).await
            }
        }
    }
}
