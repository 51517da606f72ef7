//! The one bounded TCP server every port uses (after mini-redis's `Listener`): namenode RPC,
//! Raft, the jobtracker, datanode data transfer and the worker's shuffle. Only what a
//! connection means is the caller's; everything about holding connections is here:
//!
//! - a connection limit: past it a new connection is closed at once, unread, with a warning
//!   naming the peer and the limit (a refused client costs nobody anything);
//! - [`handshake`]: the one place a connection is vetted before its first request is read:
//!   the authentication handshake ([`crate::auth`]), under its own short timeout;
//! - an idle timeout (no frame begins) and a read timeout (a begun frame does not finish),
//!   enforced by the handler's reads through [`Conn`];
//! - accept back-off: an accept error (EMFILE, ENFILE, ENOBUFS) sleeps, doubling up to a cap,
//!   instead of spinning;
//! - graceful shutdown: when the [`Shutdown`] fires, stop accepting (the port closes), tell
//!   the connections (they finish the request in hand and close), wait for them up to
//!   [`Limits::shutdown_grace`], then drop the rest.

mod conn;
mod handshake;
mod pending;
mod shutdown;
#[cfg(test)]
mod tests;

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use crate::auth::Gate;
use crate::config::ClusterConfig;

pub use conn::Conn;
pub use handshake::handshake;
pub use pending::{Full, Pending, PendingGuard, Throttle, MAX_PENDING, MAX_PENDING_PER_PEER};
pub use shutdown::{
    run_daemon, terminate_requested, Shutdown, ShutdownTrigger, HARD_DEADLINE, RUNTIME_SHUTDOWN,
};

/// How long a shutting-down server waits for its open connections before dropping them:
/// enough for requests in hand (an RPC, a block of a pipeline write) and well inside the
/// patience of `cluster stop` (10 s) and systemd (`TimeoutStopSec=30`).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Longest time a connection may take to authenticate: a handshake is two round trips of a
/// few hundred bytes, so a peer slower than this is stalled or hostile.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// First pause after a failed accept.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest pause after repeated failed accepts.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Limits a server enforces on every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Concurrent connections; more are closed on accept.
    pub max_connections: usize,
    /// A connection on which no frame begins for this long is closed.
    pub idle_timeout: Duration,
    /// A frame whose first byte arrived must be whole within this long (and the handshake
    /// done), or the connection is closed.
    pub read_timeout: Duration,
    /// How long shutdown waits for open connections.
    pub shutdown_grace: Duration,
    /// A new connection must have authenticated within this long, or it is closed: an
    /// unauthenticated connection holds a slot for no longer.
    pub handshake_timeout: Duration,
}

impl Limits {
    /// Limits from the cluster config: `max_connections`, `idle_timeout_ms`, and one
    /// `rpc_timeout_ms` for a frame to arrive (a peer waits no longer for its answer anyway).
    pub fn from_config(config: &ClusterConfig) -> Limits {
        Limits {
            max_connections: config.max_connections,
            idle_timeout: Duration::from_millis(config.idle_timeout_ms),
            read_timeout: Duration::from_millis(config.rpc_timeout_ms),
            shutdown_grace: SHUTDOWN_GRACE,
            handshake_timeout: Duration::from_millis(config.rpc_timeout_ms).min(HANDSHAKE_TIMEOUT),
        }
    }
}

/// Accepts connections on `listener` until `shutdown` fires, runs [`handshake`] and then
/// `handler` on each under `limits`, and returns once every connection ended (or the grace
/// period passed). `name` labels the server in logs; a handler's error is logged at debug
/// level, since a peer going away is routine.
pub async fn serve<H, Fut, E>(
    listener: TcpListener,
    name: &'static str,
    limits: Limits,
    gate: Gate,
    mut shutdown: Shutdown,
    handler: H,
) where
    H: Fn(TcpStream, Conn) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Display,
{
    let handler = Arc::new(handler);
    let ctx = Arc::new(ConnCtx {
        name,
        gate,
        slots: Semaphore::new(limits.max_connections).into(),
        limits,
        refusals: Throttle::default(),
    });
    let pending = Pending::new();
    let mut connections = JoinSet::new();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            () = shutdown.recv() => break,
            // Reap ended connections as they go, so the set stays as small as the open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Usually out of file descriptors: spinning would burn a core and fix nothing.
                tracing::warn!("{name}: accept failed: {e}; pausing {backoff:?}");
                tokio::select! {
                    () = shutdown.recv() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = next_backoff(backoff);
                continue;
            }
        };
        backoff = ACCEPT_BACKOFF_MIN;
        // A stranger's connection costs a place among the handshakes in progress, never one
        // of the slots of authenticated peers: those are taken once it has proven itself.
        // An open gate has no handshake to wait for: nothing to count.
        let counted = !matches!(ctx.gate, Gate::Open);
        let place = match counted.then(|| pending.enter(peer.ip())).transpose() {
            Ok(place) => place,
            Err(full) => {
                ctx.refusals.note(|n| {
                    tracing::warn!(
                        "{name}: refusing {peer} and {n} more: too many connections still \
                         authenticating ({full:?})"
                    )
                });
                continue;
            }
        };
        let conn = Conn::new(peer, &limits, shutdown.clone());
        let (ctx, handler) = (ctx.clone(), handler.clone());
        connections.spawn(async move {
            run_connection(&ctx, stream, conn, place, &*handler).await;
        });
    }
    // Closing the port first: a client connecting now is refused at once rather than left in
    // the backlog until the process exits.
    drop(listener);
    drain(name, connections, limits.shutdown_grace).await;
}

/// The pause after one more failed accept: doubled, capped.
fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).min(ACCEPT_BACKOFF_MAX)
}

/// What every connection of one server shares.
struct ConnCtx {
    name: &'static str,
    gate: Gate,
    slots: Arc<Semaphore>,
    limits: Limits,
    refusals: Throttle,
}

async fn run_connection<H, Fut, E>(
    ctx: &ConnCtx,
    mut stream: TcpStream,
    conn: Conn,
    place: Option<PendingGuard>,
    handler: &H,
) where
    H: Fn(TcpStream, Conn) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let (name, peer) = (ctx.name, conn.peer());
    let timeout = ctx.limits.handshake_timeout;
    let vetted = tokio::time::timeout(timeout, handshake(&mut stream, peer, &ctx.gate)).await;
    drop(place);
    let principal = match vetted {
        Err(_) => {
            ctx.refusals.note(|n| {
                tracing::info!(
                    "{name}: refused {peer} (and {n} more): no handshake within {timeout:?}"
                )
            });
            return;
        }
        Ok(Err(e)) => {
            // Worth a line: a refused client is either misconfigured or hostile.
            ctx.refusals
                .note(|n| tracing::info!("{name}: refused {peer} (and {n} more): {e}"));
            return;
        }
        Ok(Ok(p)) => p,
    };
    let Ok(_permit) = ctx.slots.clone().try_acquire_owned() else {
        let limit = ctx.limits.max_connections;
        ctx.refusals.note(|n| {
            tracing::warn!(
                %peer,
                limit,
                "{name}: refusing connection from {peer} (and {n} more): {limit} connections open"
            )
        });
        return;
    };
    if let Err(e) = handler(stream, conn.authenticated(principal)).await {
        tracing::debug!("{name}: connection from {peer} ended: {e}");
    }
}

/// Waits for the open connections (told to stop by the shutdown signal) up to `grace`, then
/// drops what is left.
async fn drain(name: &str, mut connections: JoinSet<()>, grace: Duration) {
    if connections.is_empty() {
        return;
    }
    tracing::info!(
        "{name}: waiting up to {grace:?} for {} open connections",
        connections.len()
    );
    let all_ended = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, all_ended).await.is_err() {
        tracing::warn!(
            "{name}: closing {} connections still open after {grace:?}",
            connections.len()
        );
        connections.shutdown().await;
    }
}

/// Runs until `servers` all returned (their shutdown fired and they drained). A server task
/// that panicked is logged, not propagated: the daemon is stopping anyway.
pub async fn join_servers(servers: Vec<JoinHandle<()>>) {
    for s in servers {
        if let Err(e) = s.await {
            tracing::warn!("server task ended abnormally: {e}");
        }
    }
}

/// Waits for SIGTERM/SIGINT, pulls `trigger`, and waits for `servers` to drain: the tail of a
/// daemon's graceful shutdown, raced against its main loop (which keeps running meanwhile, so
/// requests in hand can still be completed).
pub async fn stop_on_signal(trigger: ShutdownTrigger, servers: Vec<JoinHandle<()>>) {
    terminate_requested().await;
    trigger.trigger();
    join_servers(servers).await;
}
