//! What a connection handler gets besides its stream: the peer's address, its timeouts, and
//! the shutdown signal, with frame reads that enforce them.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::{Limits, Shutdown};
use crate::auth::Principal;
use crate::error::{Error, Result};

/// One accepted connection's context (see the module docs).
#[derive(Debug, Clone)]
pub struct Conn {
    peer: SocketAddr,
    idle_timeout: Duration,
    read_timeout: Duration,
    shutdown: Shutdown,
    principal: Option<Principal>,
}

impl Conn {
    pub(super) fn new(peer: SocketAddr, limits: &Limits, shutdown: Shutdown) -> Conn {
        Conn {
            peer,
            idle_timeout: limits.idle_timeout,
            read_timeout: limits.read_timeout,
            shutdown,
            principal: None,
        }
    }

    pub(super) fn authenticated(mut self, principal: Option<Principal>) -> Conn {
        self.principal = principal;
        self
    }

    /// Who the peer authenticated as. Every server but the read-only HTTP pages
    /// authenticates, so a handler of those gets a principal; `None` only behind an open
    /// gate.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// Who the peer authenticated as, or a refusal naming `what` for a connection behind an
    /// open gate (a server wired wrongly refuses rather than acting for nobody).
    pub fn caller(&self, what: &str) -> Result<&Principal> {
        self.principal.as_ref().ok_or_else(|| {
            Error::Unauthenticated(format!("{what} needs an authenticated connection"))
        })
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// How long the connection may stay silent between frames.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Whether the server is shutting down: a handler stops at its next request boundary.
    pub fn is_shutdown(&self) -> bool {
        self.shutdown.is_shutdown()
    }

    /// Waits for the first byte of the next frame without consuming it. `Ok(true)`: a frame
    /// has begun. `Ok(false)`: the peer closed cleanly, or the server is shutting down (so the
    /// handler ends between requests, never inside one). An idle connection is a
    /// [`Error::Timeout`] after the idle timeout.
    pub async fn wait_for_frame<R: AsyncBufRead + Unpin>(&mut self, r: &mut R) -> Result<bool> {
        if self.shutdown.is_shutdown() {
            return Ok(false);
        }
        let idle = self.idle_timeout;
        let peer = self.peer;
        tokio::select! {
            filled = tokio::time::timeout(idle, r.fill_buf()) => match filled {
                Err(_) => Err(Error::Timeout(format!("connection from {peer} idle for {idle:?}"))),
                Ok(Err(e)) => Err(Error::io(format!("waiting for a frame from {peer}"), e)),
                Ok(Ok(buf)) => Ok(!buf.is_empty()),
            },
            () = self.shutdown.recv() => Ok(false),
        }
    }

    /// Runs `read` (the rest of a frame whose first byte came) under the read timeout, so a
    /// peer that starts a frame and stalls (slow loris) loses its connection.
    pub async fn within_read_timeout<T>(&self, read: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::time::timeout(self.read_timeout, read)
            .await
            .map_err(|_| {
                Error::Timeout(format!(
                    "a frame from {} not complete within {:?}",
                    self.peer, self.read_timeout
                ))
            })?
    }

    /// Reads the next frame (at most `limit_bytes`) with [`Conn::wait_for_frame`] and
    /// [`Conn::within_read_timeout`]. `Ok(None)`: clean close or shutdown.
    pub async fn read_frame<R: AsyncBufRead + Unpin>(
        &mut self,
        r: &mut R,
        limit_bytes: usize,
    ) -> Result<Option<Bytes>> {
        if !self.wait_for_frame(r).await? {
            return Ok(None);
        }
        self.within_read_timeout(crate::frame::read_frame(r, limit_bytes))
            .await
    }
}
