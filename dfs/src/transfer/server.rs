//! The datanode's transfer server: accepts connections within the connection limit and
//! serves each one's single operation.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use tokio::io::{BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::wire::{decode_message, failed, recv_frame, send_message, TransferRequest};
use super::{Handler, ReplicaEvent, TransferLimits};
use crate::block_store::BlockStore;
use crate::error::Result;
use crate::listener::{Conn, Limits, Shutdown, SHUTDOWN_GRACE};

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

    /// The handler of one connection, borrowing this server's store, events and limits.
    fn handler(&self) -> Handler<'_> {
        Handler {
            store: &self.store,
            events: &self.events,
            limits: self.limits,
            label: &self.label,
        }
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
