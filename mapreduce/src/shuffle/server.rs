//! The worker's side of the shuffle: serves segments of the map outputs under its work
//! directory, one request frame in, a header and the segment's bytes out. The same port
//! answers the worker's other requests ([`WorkerRequest`]: a task's kept log), told apart
//! from fetches by their first bytes ([`WORKER_REQUEST_MARK`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

use dfs::auth::{Gate, Principal};
use dfs::frame::{decode_msg, write_frame};
use dfs::listener::{Conn, Limits, Shutdown};

use crate::error::{Error, Result};
use crate::protocol::{
    ErrorKind, FetchHeader, FetchRequest, WorkerCall, WorkerRequest, WorkerResponse,
    SHUFFLE_CHUNK_BYTES, TASK_LOG_CHUNK_BYTES, WORKER_REQUEST_MARK,
};
use crate::run::{RunFile, Segment};
use crate::task_log;

use super::{map_output_path, net_err, send};

/// Concurrent shuffle connections a worker serves.
pub const MAX_SHUFFLE_CONNECTIONS: usize = 64;
/// Largest shuffle request frame.
const REQUEST_LIMIT_BYTES: usize = 4096;

/// Serves map outputs under `work_dir` on the shared [`dfs::listener`] (at most
/// [`MAX_SHUFFLE_CONNECTIONS`] connections, whatever `limits` says) until `shutdown` fires and
/// the fetches in hand are sent.
pub async fn serve(
    listener: TcpListener,
    work_dir: PathBuf,
    limits: Limits,
    gate: Gate,
    shutdown: Shutdown,
) {
    let limits = Limits {
        max_connections: MAX_SHUFFLE_CONNECTIONS,
        ..limits
    };
    let work_dir = Arc::new(work_dir);
    dfs::listener::serve(
        listener,
        "shuffle",
        limits,
        gate,
        shutdown,
        move |stream, conn| {
            let work_dir = work_dir.clone();
            async move { serve_connection(stream, conn, &work_dir).await }
        },
    )
    .await
}

async fn serve_connection(stream: TcpStream, mut conn: Conn, work_dir: &Path) -> Result<()> {
    let idle = conn.idle_timeout();
    let caller = conn.caller("a shuffle fetch")?.clone();
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut w = BufWriter::new(w);
    loop {
        let frame = conn
            .read_frame(&mut r, REQUEST_LIMIT_BYTES)
            .await
            .map_err(|e| Error::Protocol(format!("reading a shuffle request: {e}")))?;
        let Some(frame) = frame else {
            return Ok(());
        };
        let req: FetchRequest = match decode_msg(&frame) {
            Ok(r) => r,
            // Not a fetch: another worker request (a task log), one answer per frame.
            Err(_) if frame.starts_with(&WORKER_REQUEST_MARK) => {
                let resp = answer(work_dir, &caller, &frame);
                send(&mut w, &resp).await?;
                w.flush().await.map_err(net_err)?;
                continue;
            }
            Err(e) => {
                let h = FetchHeader::Missing {
                    reason: format!("malformed request: {e}"),
                };
                send(&mut w, &h).await?;
                w.flush().await.map_err(net_err)?;
                return Ok(());
            }
        };
        if let Err(reason) = may_fetch(&caller, &req) {
            tracing::warn!("shuffle: refused {}: {reason}", conn.peer());
            send(&mut w, &FetchHeader::Missing { reason }).await?;
            w.flush().await.map_err(net_err)?;
            return Ok(());
        }
        tokio::time::timeout(idle, send_segment(&mut w, work_dir, &req))
            .await
            .map_err(|_| Error::Timeout {
                what: "stalled shuffle reply".into(),
            })??;
    }
}

/// A map's output is only for the tasks of its own job (G8): a reduce of another job, or a
/// user, is refused. Members (workers, the admin) may read any.
fn may_fetch(caller: &Principal, req: &FetchRequest) -> std::result::Result<(), String> {
    match caller {
        Principal::Member(_) => Ok(()),
        Principal::Task { job, .. } if *job == req.map.task.job.to_string() => Ok(()),
        other => Err(format!(
            "{other} may not read the map outputs of job {}",
            req.map.task.job
        )),
    }
}

async fn send_segment<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    work_dir: &Path,
    req: &FetchRequest,
) -> Result<()> {
    let path = map_output_path(work_dir, req.map);
    let segment = match locate(&path, req.partition) {
        Ok(s) => s,
        Err(reason) => {
            send(w, &FetchHeader::Missing { reason }).await?;
            return w.flush().await.map_err(net_err);
        }
    };
    send(
        w,
        &FetchHeader::Ok {
            len: segment.len,
            records: segment.records,
            crc32: segment.crc32,
        },
    )
    .await?;
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    file.seek(std::io::SeekFrom::Start(segment.offset))
        .await
        .map_err(|e| Error::io(format!("seeking in {}", path.display()), e))?;
    let mut left = segment.len;
    let mut buf = vec![0u8; SHUFFLE_CHUNK_BYTES.min(segment.len as usize)];
    while left > 0 {
        let n = (left as usize).min(buf.len());
        file.read_exact(&mut buf[..n])
            .await
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        write_frame(w, &buf[..n])
            .await
            .map_err(|e| Error::Protocol(format!("sending shuffle data: {e}")))?;
        left -= n as u64;
    }
    crate::metrics::worker()
        .shuffle_bytes_served
        .inc_by(segment.len);
    w.flush().await.map_err(net_err)
}

/// The answer to a [`WorkerRequest`] frame (bounded: at most [`TASK_LOG_CHUNK_BYTES`] of log).
fn answer(work_dir: &Path, caller: &Principal, frame: &[u8]) -> WorkerResponse {
    let req: WorkerRequest = match decode_msg(frame) {
        Ok(r) => r,
        Err(e) => {
            return WorkerResponse::Error {
                kind: ErrorKind::BadRequest,
                message: format!("malformed worker request: {e}"),
            }
        }
    };
    match req.call {
        WorkerCall::TaskLog {
            attempt,
            stream,
            offset,
        } => {
            // A task's logs are its user's (G8): members and the superuser may read any.
            let owner = task_log::owner(work_dir, attempt);
            if !task_log::may_read(caller, owner.as_deref()) {
                return WorkerResponse::Error {
                    kind: ErrorKind::PermissionDenied,
                    message: format!("{caller} may not read the logs of {attempt}"),
                };
            }
            let max = TASK_LOG_CHUNK_BYTES as usize;
            match task_log::read_chunk(work_dir, attempt, stream, offset, max) {
                Ok((data, total_bytes)) => WorkerResponse::TaskLog { data, total_bytes },
                Err(e) => WorkerResponse::Error {
                    kind: ErrorKind::NotFound,
                    message: e.to_string(),
                },
            }
        }
    }
}

/// The segment of `partition` in the run at `path`, or why it cannot be served.
fn locate(path: &Path, partition: u32) -> std::result::Result<Segment, String> {
    let run = RunFile::read_index(path).map_err(|e| format!("no map output here: {e}"))?;
    run.segments
        .get(partition as usize)
        .copied()
        .ok_or_else(|| format!("partition {partition} out of range"))
}
