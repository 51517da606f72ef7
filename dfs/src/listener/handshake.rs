//! The one place a connection is vetted before any request of it is read.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use crate::auth::{handshake, now_unix_ms, Gate, Principal};
use crate::error::Result;

/// Runs on every accepted connection of every server, after the connection limit admitted it
/// and before its handler reads a request: the server side of the authentication handshake
/// ([`crate::auth::handshake`]), so every port (namenode RPC, Raft, data transfer,
/// jobtracker, worker, shuffle) gets it at once and no handler can forget it. An error closes
/// the connection before its handler runs. It must finish within the handshake timeout (the
/// caller enforces it), so a silent client cannot hold a connection slot here.
///
/// `Ok(None)`: the gate is open (read-only HTTP pages), nobody is authenticated.
pub async fn handshake(
    stream: &mut TcpStream,
    peer: SocketAddr,
    gate: &Gate,
) -> Result<Option<Principal>> {
    match gate {
        Gate::Open => Ok(None),
        Gate::Authenticate(authority) => {
            let principal = handshake::accept(stream, authority, now_unix_ms()).await?;
            tracing::trace!(%peer, "authenticated {principal}");
            Ok(Some(principal))
        }
    }
}
