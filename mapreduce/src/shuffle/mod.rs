//! The shuffle: each worker serves the map outputs on its disk, and each reduce attempt
//! fetches its partition of every map's output.
//!
//! A fetch is one request frame, a [`FetchHeader`](crate::protocol::FetchHeader) with the segment's length and CRC32 (from
//! the map's run index), then the bytes in frames of at most
//! [`SHUFFLE_CHUNK_BYTES`](crate::protocol::SHUFFLE_CHUNK_BYTES). The
//! fetcher streams them to a local file while computing the CRC, so memory stays bounded by
//! the number of parallel fetches times one frame, and a segment corrupted on the wire or on
//! the server's disk is caught before the reduce reads it (it is reported as a fetch failure).
//!
//! - [`server`]: the worker's side: serving segments of the map outputs on its disk.
//! - [`fetch`]: the reduce's side: the loop that fetches its partition of every map output
//!   as maps finish, and the fetch of one segment.
//! - `mod.rs` (here): where map outputs live, and the frame helpers both sides use.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dfs::frame::{encode_msg, read_frame, write_frame};

use crate::error::{Error, Result};
use crate::scheduler::AttemptId;

pub mod fetch;
pub mod server;

/// Where a worker keeps the files of one attempt.
pub fn attempt_local_dir(work_dir: &Path, attempt: AttemptId) -> PathBuf {
    work_dir
        .join("jobs")
        .join(format!("job_{:04}", attempt.task.job))
        .join(attempt.to_string())
}

/// The map output run file of `attempt` (its index is beside it).
pub fn map_output_path(work_dir: &Path, attempt: AttemptId) -> PathBuf {
    attempt_local_dir(work_dir, attempt).join(format!("{attempt}.out"))
}

/// Sends one message as a frame.
pub(crate) async fn send<W: tokio::io::AsyncWrite + Unpin, T: serde::Serialize>(
    w: &mut W,
    msg: &T,
) -> Result<()> {
    let bytes = encode_msg(msg).map_err(|e| Error::Protocol(format!("encoding: {e}")))?;
    write_frame(w, &bytes)
        .await
        .map_err(|e| Error::Protocol(format!("sending: {e}")))
}

/// The next frame from the shuffle server at `addr`, within `timeout`; the end of the
/// stream is an error (a reply was cut short).
pub(crate) async fn next_frame<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    limit: usize,
    addr: &str,
    timeout: Duration,
) -> Result<bytes::Bytes> {
    tokio::time::timeout(timeout, read_frame(r, limit))
        .await
        .map_err(|_| Error::Timeout {
            what: format!("shuffle server {addr} stalled"),
        })?
        .map_err(|e| unreachable(addr, format!("reading from shuffle server {addr}: {e}")))?
        .ok_or_else(|| unreachable(addr, format!("shuffle server {addr} closed early")))
}

/// A broken shuffle connection.
pub(crate) fn net_err(e: std::io::Error) -> Error {
    Error::io("shuffle connection", e)
}

/// The shuffle server at `addr` could not be reached or broke the connection.
pub(crate) fn unreachable(addr: &str, message: String) -> Error {
    Error::Unreachable {
        addr: addr.to_owned(),
        message,
    }
}
