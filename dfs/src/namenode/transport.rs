//! Raft messages between namenodes: raft-rs protobuf bytes, one message per frame, on the
//! namenodes' `raft_addr` port.
//!
//! Outgoing: one task per peer with a bounded queue. Messages are dropped when the queue is
//! full or the peer is unreachable (Raft retransmits; the driver is told so it can probe).
//! Incoming: a frame that is too large or does not decode closes that connection only (G7).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use raft::eraftpb::{Message, MessageType};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::auth::{Credentials, Gate};
use crate::error::{Error, Result};
use crate::frame::write_frame;
use crate::listener::{Conn, Limits, Shutdown};
use crate::namenode::raft_driver::{
    decode_raft_message, encode_raft_message, DriverMsg, MessageSink, RaftHandle,
};

/// Messages queued per peer before new ones are dropped.
pub const PEER_QUEUE: usize = 4096;
/// Largest Raft frame (a namespace snapshot travels in one).
pub const RAFT_FRAME_LIMIT_BYTES: usize = 512 * 1024 * 1024;
/// Most concurrent incoming Raft connections.
const MAX_RAFT_CONNECTIONS: usize = 64;

/// The outgoing side: a queue per peer.
#[derive(Clone)]
pub struct Transport {
    peers: Arc<Vec<(u64, mpsc::Sender<Message>)>>,
}

impl MessageSink for Transport {
    fn send(&self, msgs: Vec<Message>) {
        for m in msgs {
            if let Some((_, tx)) = self.peers.iter().find(|(id, _)| *id == m.to) {
                // A full queue means the peer is far behind or gone: dropping is what a lossy
                // network would do, and Raft is built for that.
                let _ = tx.try_send(m);
            }
        }
    }
}

impl Transport {
    /// Starts one sender task per peer. Delivery reports come out of the returned
    /// [`PeerReports`], which the caller forwards to the driver once it exists (the driver
    /// needs the transport to be built first).
    pub fn start(
        peers: Vec<(u64, SocketAddr)>,
        connect_timeout: Duration,
        credentials: Credentials,
    ) -> (Transport, PeerReports) {
        let (report_tx, report_rx) = mpsc::unbounded_channel();
        let senders = peers
            .into_iter()
            .map(|(id, addr)| {
                let (tx, rx) = mpsc::channel(PEER_QUEUE);
                tokio::spawn(peer_sender(
                    id,
                    addr,
                    rx,
                    report_tx.clone(),
                    connect_timeout,
                    credentials.clone(),
                ));
                (id, tx)
            })
            .collect();
        (
            Transport {
                peers: Arc::new(senders),
            },
            PeerReports { rx: report_rx },
        )
    }
}

/// Delivery reports from the peer senders, to forward to the driver.
pub struct PeerReports {
    rx: mpsc::UnboundedReceiver<DriverMsg>,
}

impl PeerReports {
    /// Forwards reports to the driver until it stops.
    pub async fn forward(mut self, handle: RaftHandle) {
        while let Some(msg) = self.rx.recv().await {
            if handle.send(msg).await.is_err() {
                return;
            }
        }
    }
}

async fn peer_sender(
    id: u64,
    addr: SocketAddr,
    mut rx: mpsc::Receiver<Message>,
    reports: mpsc::UnboundedSender<DriverMsg>,
    connect_timeout: Duration,
    credentials: Credentials,
) {
    let mut conn: Option<BufWriter<TcpStream>> = None;
    while let Some(msg) = rx.recv().await {
        let is_snapshot = msg.get_msg_type() == MessageType::MsgSnapshot;
        if conn.is_none() {
            conn = match connect(addr, connect_timeout, &credentials).await {
                Ok(c) => Some(c),
                Err(e @ Error::Unauthenticated(_)) => {
                    // Not a network blip: a peer with another key. Worth saying, once per try.
                    tracing::warn!("raft to {id}: {e}");
                    None
                }
                Err(_) => None,
            };
        }
        let sent = match conn.as_mut() {
            Some(w) => send_one(w, &msg, rx.is_empty(), connect_timeout * 4).await,
            None => Err(Error::Unavailable(format!(
                "namenode {id} at {addr} unreachable"
            ))),
        };
        if is_snapshot {
            let _ = reports.send(DriverMsg::SnapshotSent(id, sent.is_ok()));
        }
        if let Err(e) = sent {
            tracing::debug!("raft to {id}: {e}");
            conn = None;
            let _ = reports.send(DriverMsg::Unreachable(id));
            // Drop what piled up meanwhile rather than replaying stale messages.
            while rx.try_recv().is_ok() {}
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn connect(
    addr: SocketAddr,
    timeout: Duration,
    credentials: &Credentials,
) -> Result<BufWriter<TcpStream>> {
    let stream = crate::auth::connect(&addr.to_string(), "namenode", credentials, timeout).await?;
    set_user_timeout(&stream, timeout * 4);
    Ok(BufWriter::new(stream))
}

/// Raft messages are fire-and-forget: across a partition, small writes keep landing in the
/// kernel's send buffer and never fail, so this sender would go on using a dead connection
/// and, after the partition heals, wait for TCP's backed-off retransmission (tens of
/// seconds) before the peer hears from it again (found by cluster-tests'
/// `leader_isolated_in_minority`). With a user timeout, data left unacknowledged for a few
/// election timeouts fails the connection, the next send reconnects, and a healed peer is
/// reached within a connect.
#[cfg(target_os = "linux")]
fn set_user_timeout(stream: &TcpStream, timeout: Duration) {
    let _ = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(timeout));
}

/// `TCP_USER_TIMEOUT` is Linux's: elsewhere this does nothing, so after a partition heals a
/// sender may go on writing into its dead connection until TCP's backed-off retransmission
/// reaches the peer and the connection fails (tens of seconds), the delay the option removes.
#[cfg(not(target_os = "linux"))]
fn set_user_timeout(_stream: &TcpStream, _timeout: Duration) {}

async fn send_one(
    w: &mut BufWriter<TcpStream>,
    msg: &Message,
    flush: bool,
    timeout: Duration,
) -> Result<()> {
    let bytes = encode_raft_message(msg)?;
    let io = async {
        write_frame(w, &bytes).await?;
        if flush {
            w.flush()
                .await
                .map_err(|e| Error::io("flushing raft message", e))?;
        }
        Ok(())
    };
    tokio::time::timeout(timeout, io)
        .await
        .map_err(|_| Error::Timeout("sending raft message".into()))?
}

/// Accepts Raft connections on the shared [`crate::listener`] (at most
/// [`MAX_RAFT_CONNECTIONS`] of them, whatever `limits` says) and feeds their messages to the
/// driver, until `shutdown` fires.
pub async fn serve_raft(
    listener: TcpListener,
    handle: RaftHandle,
    limits: Limits,
    gate: Gate,
    shutdown: Shutdown,
) {
    let limits = Limits {
        max_connections: MAX_RAFT_CONNECTIONS,
        ..limits
    };
    crate::listener::serve(
        listener,
        "raft",
        limits,
        gate,
        shutdown,
        move |stream, conn| {
            let handle = handle.clone();
            async move { raft_connection(stream, conn, &handle).await }
        },
    )
    .await
}

async fn raft_connection(stream: TcpStream, mut conn: Conn, handle: &RaftHandle) -> Result<()> {
    // Only a namenode speaks Raft, and only as itself: a message whose sender is not the
    // member that authenticated ends the connection (G8).
    let caller = conn.caller("Raft")?;
    let sender = caller.namenode_id().ok_or_else(|| {
        Error::PermissionDenied(format!("Raft is for namenodes only, not {caller}"))
    })?;
    let mut reader = BufReader::new(stream);
    while let Some(payload) = conn.read_frame(&mut reader, RAFT_FRAME_LIMIT_BYTES).await? {
        let msg = decode_raft_message(&payload)?;
        if msg.from != sender {
            tracing::warn!(
                "raft: namenode {sender} sent a message claiming to be from {}; closing",
                msg.from
            );
            return Err(Error::PermissionDenied(format!(
                "namenode {sender} sent a Raft message as {}",
                msg.from
            )));
        }
        handle.send(DriverMsg::Raft(msg)).await?;
    }
    Ok(())
}
