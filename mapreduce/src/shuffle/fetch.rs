//! The reduce's side of the shuffle: the fetch loop that asks the jobtracker where map
//! outputs are and fetches this reduce's partition of each as maps finish, a few at a time,
//! and the fetch of one segment.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::task::JoinSet;

use dfs::frame::decode_msg;

use crate::error::{Error, Result};
use crate::merge::SegmentRef;
use dfs::auth::Credentials;

use crate::protocol::{
    call, FetchHeader, FetchRequest, JtRequest, JtResponse, MapOutputLoc, SHUFFLE_CHUNK_BYTES,
};
use crate::run::{RunFile, Segment};
use crate::scheduler::AttemptId;

use super::{map_output_path, net_err, next_frame, send, unreachable};

/// Parallel fetches of one reduce attempt.
const PARALLEL_FETCHES: usize = 5;
/// How often a reduce asks the jobtracker for new map outputs.
const POLL_MS: u64 = 50;
/// How long a reduce waits before fetching again from a map output that failed.
const FETCH_RETRY_MS: u64 = 1000;
/// Memory a reduce attempt may keep fetched map outputs in (the rest goes to local disk):
/// each byte kept in memory is a byte neither written nor read back by the merge.
const SHUFFLE_MEMORY_BYTES: u64 = 256 << 20;
/// Largest frame a fetcher accepts: a chunk of segment bytes, or a header.
const FRAME_LIMIT_BYTES: usize = SHUFFLE_CHUNK_BYTES + 64;

/// What the fetch loop of one reduce attempt works from.
#[derive(Debug, Clone, Copy)]
pub struct FetchPlan<'a> {
    /// The jobtracker, which says where map outputs are and hears of failed fetches.
    pub jobtracker_addr: &'a str,
    /// The reduce attempt; its task index is the partition it fetches.
    pub reduce: AttemptId,
    /// Number of map outputs to fetch from.
    pub maps: u32,
    /// This worker's host: map outputs on it are read in place, not fetched.
    pub host: &'a str,
    /// The worker's work directory, where this host's map outputs are.
    pub work_dir: &'a Path,
    /// Where fetched segments that do not stay in memory are written.
    pub dir: &'a Path,
    /// Timeout of each call and of each stalled fetch.
    pub timeout: Duration,
    /// What the attempt authenticates with (its job's token).
    pub credentials: &'a Credentials,
}

/// Fetches this reduce's partition of every map output, as map outputs become available,
/// reporting progress (0 to 1/3) through `progress`.
pub async fn fetch_all(plan: &FetchPlan<'_>, progress: &dyn Fn(f32)) -> Result<Vec<SegmentRef>> {
    let mut fetches = Fetches::new(plan);
    let mut polls = 0u32;
    while fetches.done.len() < plan.maps as usize {
        let outputs = map_outputs(plan).await?;
        // Waiting for maps is this attempt's work: each answered poll moves its progress a
        // little, so the task timeout catches a stuck attempt but not one waiting for maps.
        polls += 1;
        let fetched = fetches.done.len() as f32 / plan.maps.max(1) as f32 / 3.0;
        progress(fetched + (polls.min(100_000) as f32) * 1e-7);
        fetches.start(outputs);
        fetches.wait().await?;
    }
    Ok(fetches.into_segments())
}

/// Where the map outputs are so far, as long as the jobtracker still wants this reduce.
async fn map_outputs(plan: &FetchPlan<'_>) -> Result<Vec<Option<MapOutputLoc>>> {
    let reduce = plan.reduce;
    let req = JtRequest::MapOutputs { reduce };
    let resp: JtResponse = call(plan.jobtracker_addr, plan.credentials, &req, plan.timeout).await?;
    let JtResponse::MapOutputs { outputs, live } = resp else {
        return Err(Error::Protocol(format!("unexpected reply: {resp:?}")));
    };
    if !live {
        return Err(Error::NotLive {
            attempt: reduce.to_string(),
        });
    }
    Ok(outputs)
}

/// The state of one reduce's fetch loop, by map index.
struct Fetches<'a> {
    plan: &'a FetchPlan<'a>,
    budget: Arc<MemoryBudget>,
    /// Map outputs fetched (`None`: this partition of it is empty).
    done: HashMap<u32, Option<SegmentRef>>,
    /// Map outputs whose fetch failed, not to be tried again before then.
    retry_after: HashMap<u32, Instant>,
    in_flight: JoinSet<(u32, MapOutputLoc, Result<Fetched>)>,
    /// Map outputs being fetched.
    busy: HashSet<u32>,
}

impl<'a> Fetches<'a> {
    fn new(plan: &'a FetchPlan<'a>) -> Fetches<'a> {
        Fetches {
            plan,
            budget: Arc::new(MemoryBudget::new(SHUFFLE_MEMORY_BYTES)),
            done: HashMap::new(),
            retry_after: HashMap::new(),
            in_flight: JoinSet::new(),
            busy: HashSet::new(),
        }
    }

    /// Takes the map outputs on this host in place, and starts fetches of the others that
    /// are neither done, nor being fetched, nor waiting to be retried, up to
    /// [`PARALLEL_FETCHES`] at a time.
    fn start(&mut self, outputs: Vec<Option<MapOutputLoc>>) {
        let partition = self.plan.reduce.task.index;
        for (i, loc) in outputs.into_iter().enumerate() {
            let i = i as u32;
            let Some(loc) = loc else { continue };
            let waiting = self
                .retry_after
                .get(&i)
                .is_some_and(|t| Instant::now() < *t);
            if self.done.contains_key(&i) || self.busy.contains(&i) || waiting {
                continue;
            }
            if loc.host == self.plan.host {
                if let Some(seg) = local_segment(self.plan.work_dir, &loc, partition) {
                    self.done.insert(i, seg);
                    continue;
                }
            }
            if self.in_flight.len() >= PARALLEL_FETCHES {
                break;
            }
            self.busy.insert(i);
            let dest = segment_path(self.plan.dir, i);
            let budget = self.budget.clone();
            let timeout = self.plan.timeout;
            let creds = self.plan.credentials.clone();
            self.in_flight.spawn(async move {
                let r = fetch_segment(&loc, partition, &dest, &creds, timeout, &budget).await;
                (i, loc, r)
            });
        }
    }

    /// Waits for fetches to finish until none is left, or until it is time to poll again
    /// for new map outputs.
    async fn wait(&mut self) -> Result<()> {
        let deadline = tokio::time::sleep(Duration::from_millis(POLL_MS));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                Some(joined) = self.in_flight.join_next() => {
                    let (i, loc, r) = joined.map_err(|e| Error::io("fetch task", std::io::Error::other(e)))?;
                    self.finish(i, loc, r).await;
                    if self.in_flight.is_empty() { break; }
                }
                _ = &mut deadline => break,
            }
        }
        Ok(())
    }

    /// Keeps a finished fetch, or reports a failed one to the jobtracker (enough reports
    /// make it re-run the map) and waits a while before trying that map output again.
    async fn finish(&mut self, i: u32, loc: MapOutputLoc, r: Result<Fetched>) {
        self.busy.remove(&i);
        let reduce = self.plan.reduce;
        match r {
            Ok(fetched) => {
                let seg = segment_ref(segment_path(self.plan.dir, i), fetched);
                self.done.insert(i, seg);
            }
            Err(e) => {
                tracing::warn!("{reduce}: fetching {} from {}: {e}", loc.attempt, loc.host);
                let retry = Instant::now() + Duration::from_millis(FETCH_RETRY_MS);
                self.retry_after.insert(i, retry);
                let req = JtRequest::FetchFailure {
                    reduce,
                    map: loc.attempt,
                };
                let jt = self.plan.jobtracker_addr;
                let creds = self.plan.credentials;
                let _ = call::<_, JtResponse>(jt, creds, &req, self.plan.timeout).await;
            }
        }
    }

    /// The segments fetched, in map order, so merges are deterministic whatever order the
    /// fetches finished in.
    fn into_segments(self) -> Vec<SegmentRef> {
        let mut segments: Vec<(u32, SegmentRef)> = self
            .done
            .into_iter()
            .filter_map(|(i, s)| s.map(|s| (i, s)))
            .collect();
        segments.sort_by_key(|(i, _)| *i);
        segments.into_iter().map(|(_, s)| s).collect()
    }
}

/// Where the segment fetched from map output `i` goes when it does not stay in memory.
fn segment_path(dir: &Path, i: u32) -> PathBuf {
    dir.join(format!("map_{i:06}.seg"))
}

/// What the merge reads of a fetched segment (`None`: the partition is empty).
fn segment_ref(path: PathBuf, fetched: Fetched) -> Option<SegmentRef> {
    match fetched {
        Fetched::Empty => None,
        Fetched::File(segment) => Some(SegmentRef::file(path, segment, true)),
        Fetched::Memory(data, segment) => Some(SegmentRef {
            path,
            segment,
            temporary: false,
            memory: Some(data),
        }),
    }
}

/// A map output on this host, read in place instead of fetched (`None`: fetch it instead).
/// Its CRC is still checked as the merge reads it.
fn local_segment(
    work_dir: &Path,
    loc: &MapOutputLoc,
    partition: u32,
) -> Option<Option<SegmentRef>> {
    let path = map_output_path(work_dir, loc.attempt);
    let run = RunFile::read_index(&path).ok()?;
    let segment = *run.segments.get(partition as usize)?;
    Some((segment.records > 0).then(|| SegmentRef::file(path, segment, false)))
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
    credentials: &Credentials,
    timeout: Duration,
    budget: &MemoryBudget,
) -> Result<Fetched> {
    let addr = &loc.shuffle_addr;
    // The write half stays open until the reply is read: closing it early would half-close
    // the connection under the server, which the fetch never did.
    let (mut r, _w) = request(loc, partition, credentials, timeout).await?;
    let (len, records, crc32) = read_header(&mut r, loc, timeout).await?;
    if records == 0 {
        return Ok(Fetched::Empty);
    }
    let segment = Segment {
        offset: 0,
        len,
        records,
        crc32,
    };
    let corrupt = || Error::Corrupt {
        file: dest.to_owned(),
        reason: format!(
            "partition {partition} of {} from {addr} failed its CRC32",
            loc.attempt
        ),
    };
    if budget.take(len) {
        let r = fetch_into_memory(&mut r, len, addr, timeout, FRAME_LIMIT_BYTES).await;
        return match r {
            Ok(data) if crc32fast::hash(&data) == crc32 => Ok(Fetched::Memory(data, segment)),
            Ok(_) => {
                budget.give_back(len);
                Err(corrupt())
            }
            Err(e) => {
                budget.give_back(len);
                Err(e)
            }
        };
    }
    if fetch_into_file(&mut r, len, dest, loc, timeout).await? != crc32 {
        return Err(corrupt());
    }
    Ok(Fetched::File(segment))
}

/// Connects to the shuffle server of `loc` and sends the request for `partition`; the
/// reply is to be read from the connection's read half.
async fn request(
    loc: &MapOutputLoc,
    partition: u32,
    credentials: &Credentials,
    timeout: Duration,
) -> Result<(BufReader<OwnedReadHalf>, BufWriter<OwnedWriteHalf>)> {
    let addr = &loc.shuffle_addr;
    let stream = dfs::auth::connect(addr, "shuffle server", credentials, timeout)
        .await
        .map_err(|e| match e {
            dfs::Error::Timeout(what) => Error::Timeout { what },
            dfs::Error::Unauthenticated(_) => Error::from(e),
            other => unreachable(addr, other.to_string()),
        })?;
    let (r, w) = stream.into_split();
    let r = BufReader::with_capacity(256 * 1024, r);
    let mut w = BufWriter::new(w);
    let req = FetchRequest {
        map: loc.attempt,
        partition,
    };
    send(&mut w, &req).await?;
    w.flush().await.map_err(net_err)?;
    Ok((r, w))
}

/// The reply's header: the segment's `(len, records, crc32)`, or why it cannot be served.
async fn read_header(
    r: &mut BufReader<OwnedReadHalf>,
    loc: &MapOutputLoc,
    timeout: Duration,
) -> Result<(u64, u64, u32)> {
    let addr = &loc.shuffle_addr;
    let header: FetchHeader =
        decode_msg(&next_frame(r, FRAME_LIMIT_BYTES, addr, timeout).await?)
            .map_err(|e| Error::Protocol(format!("bad shuffle header from {addr}: {e}")))?;
    match header {
        FetchHeader::Ok {
            len,
            records,
            crc32,
        } => Ok((len, records, crc32)),
        FetchHeader::Missing { reason } => Err(Error::Protocol(format!(
            "{addr} cannot serve {}: {reason}",
            loc.attempt
        ))),
    }
}

/// Streams the `len` bytes of a segment into the file `dest`, returning their CRC32.
async fn fetch_into_file(
    r: &mut BufReader<OwnedReadHalf>,
    len: u64,
    dest: &Path,
    loc: &MapOutputLoc,
    timeout: Duration,
) -> Result<u32> {
    let addr = &loc.shuffle_addr;
    let file = tokio::fs::File::create(dest)
        .await
        .map_err(|e| Error::io(format!("creating {}", dest.display()), e))?;
    let mut out = BufWriter::with_capacity(256 * 1024, file);
    let mut hasher = crc32fast::Hasher::new();
    let mut got = 0u64;
    while got < len {
        let chunk = next_frame(r, FRAME_LIMIT_BYTES, addr, timeout).await?;
        got += chunk.len() as u64;
        if got > len {
            return Err(Error::Protocol(format!(
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
    Ok(hasher.finalize())
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
            return Err(Error::Protocol(format!(
                "{addr} sent more than {len} bytes"
            )));
        }
        data.extend_from_slice(&chunk);
    }
    Ok(data.freeze())
}
