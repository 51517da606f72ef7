//! The shuffle: each worker serves the map outputs on its disk, and each reduce attempt
//! fetches its partition of every map's output.
//!
//! A fetch is one request frame, a [`FetchHeader`] with the segment's length and CRC32 (from
//! the map's run index), then the bytes in frames of at most [`SHUFFLE_CHUNK_BYTES`]. The
//! fetcher streams them to a local file while computing the CRC, so memory stays bounded by
//! the number of parallel fetches times one frame, and a segment corrupted on the wire or on
//! the server's disk is caught before the reduce reads it (it is reported as a fetch failure).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

use dfs::frame::{decode_msg, encode_msg, read_frame, write_frame};
use dfs::listener::{Conn, Limits, Shutdown};

use crate::error::{Error, Result};
use crate::protocol::{FetchHeader, FetchRequest, MapOutputLoc, SHUFFLE_CHUNK_BYTES};
use crate::run::{RunFile, Segment};
use crate::scheduler::AttemptId;

/// Concurrent shuffle connections a worker serves.
pub const MAX_SHUFFLE_CONNECTIONS: usize = 64;
/// Largest shuffle request frame.
const REQUEST_LIMIT_BYTES: usize = 4096;

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

/// Serves map outputs under `work_dir` on the shared [`dfs::listener`] (at most
/// [`MAX_SHUFFLE_CONNECTIONS`] connections, whatever `limits` says) until `shutdown` fires and
/// the fetches in hand are sent.
pub async fn serve(listener: TcpListener, work_dir: PathBuf, limits: Limits, shutdown: Shutdown) {
    let limits = Limits {
        max_connections: MAX_SHUFFLE_CONNECTIONS,
        ..limits
    };
    let work_dir = Arc::new(work_dir);
    dfs::listener::serve(
        listener,
        "shuffle",
        limits,
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
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut w = BufWriter::new(w);
    loop {
        let frame = conn
            .read_frame(&mut r, REQUEST_LIMIT_BYTES)
            .await
            .map_err(|e| Error::Cluster(format!("reading a shuffle request: {e}")))?;
        let Some(frame) = frame else {
            return Ok(());
        };
        let req: FetchRequest = match decode_msg(&frame) {
            Ok(r) => r,
            Err(e) => {
                let h = FetchHeader::Missing {
                    reason: format!("malformed request: {e}"),
                };
                send(&mut w, &h).await?;
                w.flush().await.map_err(net_err)?;
                return Ok(());
            }
        };
        tokio::time::timeout(idle, send_segment(&mut w, work_dir, &req))
            .await
            .map_err(|_| Error::Cluster("stalled shuffle reply".into()))??;
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
            .map_err(|e| Error::Cluster(format!("sending shuffle data: {e}")))?;
        left -= n as u64;
    }
    w.flush().await.map_err(net_err)
}

/// The segment of `partition` in the run at `path`, or why it cannot be served.
fn locate(path: &Path, partition: u32) -> std::result::Result<Segment, String> {
    let run = RunFile::read_index(path).map_err(|e| format!("no map output here: {e}"))?;
    run.segments
        .get(partition as usize)
        .copied()
        .ok_or_else(|| format!("partition {partition} out of range"))
}

async fn send<W: tokio::io::AsyncWrite + Unpin, T: serde::Serialize>(
    w: &mut W,
    msg: &T,
) -> Result<()> {
    let bytes = encode_msg(msg).map_err(|e| Error::Cluster(format!("encoding: {e}")))?;
    write_frame(w, &bytes)
        .await
        .map_err(|e| Error::Cluster(format!("sending: {e}")))
}

async fn next_frame<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    limit: usize,
    addr: &str,
    timeout: Duration,
) -> Result<bytes::Bytes> {
    tokio::time::timeout(timeout, read_frame(r, limit))
        .await
        .map_err(|_| Error::Cluster(format!("shuffle server {addr} stalled")))?
        .map_err(|e| Error::Cluster(format!("reading from shuffle server {addr}: {e}")))?
        .ok_or_else(|| Error::Cluster(format!("shuffle server {addr} closed early")))
}

fn net_err(e: std::io::Error) -> Error {
    Error::Cluster(format!("shuffle connection: {e}"))
}

/// Memory a reduce attempt may hold fetched segments in; bigger segments, and any once the
/// budget is spent, go to disk.
#[derive(Debug)]
pub struct MemoryBudget {
    left_bytes: std::sync::atomic::AtomicU64,
    max_segment_bytes: u64,
}

impl MemoryBudget {
    /// A budget of `total_bytes`, with no single in-memory segment over a quarter of it.
    pub fn new(total_bytes: u64) -> MemoryBudget {
        MemoryBudget {
            left_bytes: std::sync::atomic::AtomicU64::new(total_bytes),
            max_segment_bytes: total_bytes / 4,
        }
    }

    fn take(&self, n: u64) -> bool {
        use std::sync::atomic::Ordering;
        n <= self.max_segment_bytes
            && self
                .left_bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    left.checked_sub(n)
                })
                .is_ok()
    }

    fn give_back(&self, n: u64) {
        self.left_bytes
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A fetched segment.
#[derive(Debug)]
pub enum Fetched {
    /// The partition is empty.
    Empty,
    /// Written to the destination file (offset 0).
    File(Segment),
    /// Held in memory (offset 0).
    Memory(bytes::Bytes, Segment),
}

/// Fetches partition `partition` of the map output at `loc`, into memory when `budget`
/// allows and otherwise into the file `dest`, checking its length and CRC32 either way.
pub async fn fetch_segment(
    loc: &MapOutputLoc,
    partition: u32,
    dest: &Path,
    timeout: Duration,
    budget: &MemoryBudget,
) -> Result<Fetched> {
    let addr = &loc.shuffle_addr;
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| Error::Cluster(format!("connecting to shuffle server {addr}: timed out")))?
        .map_err(|e| Error::Cluster(format!("connecting to shuffle server {addr}: {e}")))?;
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let mut r = BufReader::with_capacity(256 * 1024, r);
    let mut w = BufWriter::new(w);
    let req = FetchRequest {
        map: loc.attempt,
        partition,
    };
    send(&mut w, &req).await?;
    w.flush().await.map_err(net_err)?;
    let limit = SHUFFLE_CHUNK_BYTES + 64;
    let header: FetchHeader = decode_msg(&next_frame(&mut r, limit, addr, timeout).await?)
        .map_err(|e| Error::Cluster(format!("bad shuffle header from {addr}: {e}")))?;
    let (len, records, crc32) = match header {
        FetchHeader::Ok {
            len,
            records,
            crc32,
        } => (len, records, crc32),
        FetchHeader::Missing { reason } => {
            return Err(Error::Cluster(format!(
                "{addr} cannot serve {}: {reason}",
                loc.attempt
            )))
        }
    };
    if records == 0 {
        return Ok(Fetched::Empty);
    }
    let segment = Segment {
        offset: 0,
        len,
        records,
        crc32,
    };
    if budget.take(len) {
        let r = fetch_into_memory(&mut r, len, addr, timeout, limit).await;
        return match r {
            Ok(data) if crc32fast::hash(&data) == crc32 => Ok(Fetched::Memory(data, segment)),
            Ok(_) => {
                budget.give_back(len);
                Err(Error::Corrupt {
                    file: dest.to_owned(),
                    reason: format!(
                        "partition {partition} of {} from {addr} failed its CRC32",
                        loc.attempt
                    ),
                })
            }
            Err(e) => {
                budget.give_back(len);
                Err(e)
            }
        };
    }
    let file = tokio::fs::File::create(dest)
        .await
        .map_err(|e| Error::io(format!("creating {}", dest.display()), e))?;
    let mut out = BufWriter::with_capacity(256 * 1024, file);
    let mut hasher = crc32fast::Hasher::new();
    let mut got = 0u64;
    while got < len {
        let chunk = next_frame(&mut r, limit, addr, timeout).await?;
        got += chunk.len() as u64;
        if got > len {
            return Err(Error::Cluster(format!(
                "{addr} sent more than the {len} bytes of {}",
                loc.attempt
            )));
        }
        hasher.update(&chunk);
        out.write_all(&chunk)
            .await
            .map_err(|e| Error::io(format!("writing {}", dest.display()), e))?;
    }
    out.flush()
        .await
        .map_err(|e| Error::io(format!("writing {}", dest.display()), e))?;
    if hasher.finalize() != crc32 {
        return Err(Error::Corrupt {
            file: dest.to_owned(),
            reason: format!(
                "partition {partition} of {} from {addr} failed its CRC32",
                loc.attempt
            ),
        });
    }
    Ok(Fetched::File(segment))
}

async fn fetch_into_memory<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    len: u64,
    addr: &str,
    timeout: Duration,
    limit: usize,
) -> Result<bytes::Bytes> {
    let mut data = bytes::BytesMut::with_capacity(len as usize);
    while (data.len() as u64) < len {
        let chunk = next_frame(r, limit, addr, timeout).await?;
        if data.len() as u64 + chunk.len() as u64 > len {
            return Err(Error::Cluster(format!("{addr} sent more than {len} bytes")));
        }
        data.extend_from_slice(&chunk);
    }
    Ok(data.freeze())
}
