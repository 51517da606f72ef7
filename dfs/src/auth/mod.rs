//! Authentication: who may talk to the cluster, and as whom.
//!
//! - [`key`]: the cluster key (a file of mode 0600 named by `cluster.toml`'s `key_file`), the
//!   keys derived from it, key files.
//! - [`principal`]: what a client claims ([`Claim`]: member, user, or a job's token), the
//!   [`Principal`] a server acts for, a client's [`Credentials`], a server's [`Authority`].
//! - [`secrets`]: what a loaded `cluster.toml` leads to: the cluster key and this process's
//!   credentials.
//! - [`block_token`]: the namenode's signed permission to read or write one block, checked
//!   by datanodes.
//! - [`web_token`]: logging in to the web pages: a login token a user's tools sign for a URL,
//!   and the session cookie a daemon answers it with.
//! - [`handshake`]: the mutual HMAC challenge-response every connection of every port begins
//!   with ([`crate::listener::serve`] runs the server side before any handler; [`connect`] is
//!   the client side, used by every client).
//!
//! Members (daemons, the admin's tools) hold the cluster key and act as the superuser. Users
//! hold a key derived from it for their name (`dfs user add NAME`). A job's tasks hold a
//! token that acts as the job's user until it expires. Traffic after the handshake is not
//! encrypted or MACed: the threat model (ARCHITECTURE.md, "Trust") is a network where
//! strangers can connect and send, not one where they can rewrite a member's packets.

pub mod block_token;
pub mod handshake;
pub mod key;
pub mod principal;
pub mod secrets;
pub mod web_token;

use std::time::Duration;

use tokio::net::TcpStream;

pub use block_token::{BlockAccess, BlockToken, BLOCK_TOKEN_LIFETIME_MS};
pub use key::{Key, KeyFile};
pub use principal::{
    names, validate_user_name, Authority, Claim, Credentials, Principal, Token, SUPERUSER,
};
pub use secrets::{user_credentials, Secrets};
pub use web_token::{LoginToken, Session};

use crate::error::{Error, Result};

/// Environment variable naming a user's key file: a client that sets it acts as that user
/// instead of as the superuser (which needs the cluster key itself).
pub const USER_KEY_ENV: &str = "MRJOB_USER_KEY";

/// How a server treats a new connection before its handler runs.
#[derive(Debug, Clone)]
pub enum Gate {
    /// Run the handshake; only an authenticated principal reaches the handler.
    Authenticate(Authority),
    /// No handshake: for read-only pages (HTTP), whose handler acts for nobody.
    Open,
}

/// The clock of token expiry.
pub use crate::clock::unix_ms as now_unix_ms;

/// Connects to `addr` and authenticates with `credentials`, all within `timeout`. `what`
/// names the server in errors ("namenode", "datanode", ...).
pub async fn connect(
    addr: &str,
    what: &str,
    credentials: &Credentials,
    timeout: Duration,
) -> Result<TcpStream> {
    let peer = format!("{what} {addr}");
    let io = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| Error::io(format!("connecting to {peer}"), e))?;
        let _ = stream.set_nodelay(true);
        handshake::connect(&mut stream, credentials, &peer).await?;
        Ok(stream)
    };
    tokio::time::timeout(timeout, io)
        .await
        .map_err(|_| Error::Timeout(format!("connecting to {peer}")))?
}
