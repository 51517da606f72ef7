//! The datanode's transfer server: accepts connections within the connection limit and
//! serves each one's single operation.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use tokio::io::{BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::wire::{decode_message, failed, recv_frame, send_message, TransferRequest};
use super::{Handler, ReplicaEvent, TransferLimits};
use crate::auth::{Authority, BlockAccess, Credentials, Gate, Principal};
use crate::block_store::BlockStore;
use crate::error::Error;
use crate::error::Result;
use crate::listener::{Conn, Limits, Shutdown, HANDSHAKE_TIMEOUT, SHUTDOWN_GRACE};

/// The datanode's transfer server.
#[derive(Debug)]
pub struct TransferServer {
    store: Arc<BlockStore>,
    events: mpsc::Sender<ReplicaEvent>,
    limits: TransferLimits,
    active: AtomicU32,
    label: String,
    /// This datanode's own credentials, for the pipelines it forwards to.
    credentials: Credentials,
    /// The cluster key, to check block access tokens.
    authority: Option<Authority>,
}

impl TransferServer {
    /// A server over `store` that reports store changes on `events`; `label` names this
    /// datanode in errors.
    pub fn new(
        store: Arc<BlockStore>,
        events: mpsc::Sender<ReplicaEvent>,
        limits: TransferLimits,
        label: &str,
        credentials: Credentials,
        authority: Option<Authority>,
    ) -> Arc<Self> {
        Arc::new(TransferServer {
            store,
            events,
            limits,
            active: AtomicU32::new(0),
            label: label.to_string(),
            credentials,
            authority,
        })
    }

    /// Transfers in progress (for heartbeats).
    pub fn active_transfers(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }

    /// Serves connections on the shared [`crate::listener`] until `shutdown` fires and the
    /// transfers in hand are done. The read timeout of a request frame is the peer timeout.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, gate: Gate, shutdown: Shutdown) {
        let limits = Limits {
            max_connections: self.limits.max_connections,
            idle_timeout: self.limits.idle_timeout,
            read_timeout: self.limits.peer_timeout,
            shutdown_grace: SHUTDOWN_GRACE,
            handshake_timeout: self.limits.peer_timeout.min(HANDSHAKE_TIMEOUT),
        };
        crate::listener::serve(
            listener,
            "transfer",
            limits,
            gate,
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
            credentials: &self.credentials,
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
        let authority = self.authority.as_ref();
        if let Err(e) = authorize(conn.caller("a data transfer")?, &request, authority) {
            let _ = send_message(&mut w, &failed(0, &e)).await;
            return Err(e);
        }
        let handler = self.handler();
        match request {
            TransferRequest::Read {
                block,
                offset_bytes,
                len_bytes,
                ..
            } => handler.serve_read(w, block, offset_bytes, len_bytes).await,
            TransferRequest::Write {
                block, downstream, ..
            } => handler.serve_write(r, w, block, downstream).await,
            TransferRequest::RecoveryInfo { block_id } => {
                handler.serve_recovery_info(w, block_id).await
            }
            TransferRequest::FinishRecovery { from, gen_stamp } => {
                handler.serve_finish_recovery(w, from, gen_stamp).await
            }
        }
    }
}

/// Who may ask what of a datanode (G8). Lease recovery rewrites finalized replicas, so only a
/// namenode may ask for it; reads and writes are open to every authenticated principal (the
/// namenode's file permissions decide who learns which blocks to ask for).
fn authorize(
    caller: &Principal,
    request: &TransferRequest,
    authority: Option<&Authority>,
) -> Result<()> {
    let now = crate::auth::now_unix_ms();
    let check = |token, block_id, access| match authority {
        Some(a) => a.check_block_token(token, block_id, access, now),
        None => Err(Error::PermissionDenied(
            "this datanode checks no tokens".into(),
        )),
    };
    match request {
        TransferRequest::RecoveryInfo { .. } | TransferRequest::FinishRecovery { .. }
            if caller.namenode_id().is_none() =>
        {
            Err(Error::PermissionDenied(format!(
                "lease recovery is for namenodes only, not {caller}"
            )))
        }
        // Members (datanodes forwarding a pipeline or re-replicating, the admin's tools)
        // need no token; everyone else shows the namenode's permission for the block.
        _ if caller.is_member() => Ok(()),
        TransferRequest::Read { block, token, .. } => {
            check(token.as_ref(), block.id, BlockAccess::Read)
        }
        TransferRequest::Write { block, token, .. } => {
            check(token.as_ref(), block.id, BlockAccess::Write)
        }
        _ => Ok(()),
    }
}
