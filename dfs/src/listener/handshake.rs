//! The one place a connection is vetted before any request of it is read.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use crate::error::Result;

/// Runs on every accepted connection of every server, after the connection limit admitted it
/// and before its handler reads a request. Today it accepts everyone and reads nothing.
///
/// Authentication will be added here (a token exchange, or mutual TLS that then wraps the
/// stream), so that every port (namenode RPC, Raft, data transfer, jobtracker, shuffle) gets
/// it at once and no handler can forget it. An error closes the connection before its handler
/// runs. It must finish within `read_timeout` (the caller enforces it), so a silent client
/// cannot hold a connection slot here.
pub async fn handshake(stream: &mut TcpStream, peer: SocketAddr) -> Result<()> {
    let _ = (stream, peer);
    Ok(())
}
