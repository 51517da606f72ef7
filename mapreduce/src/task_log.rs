//! Task logs: every attempt's stdout and stderr, kept on its worker after the attempt and
//! its job end, bounded per attempt and pruned by age and total size.
//!
//! A worker pipes each stream of its task process through [`capture`], which writes the
//! first `keep_bytes` to `WORK/logs/job_NNNN/ATTEMPT/{stdout,stderr}` as they come, holds
//! only the last `keep_bytes` after them in memory, and appends those with a line saying how
//! many bytes were cut between when the stream closes. So a task printing a gigabyte leaves
//! at most twice `keep_bytes` (and a line) on disk. A Streaming job's child writes its stderr
//! through the task's, so it lands here too.
//!
//! The worker prunes the logs of attempts older than `task_log_max_age_ms`, and the oldest
//! beyond `task_log_max_total_bytes` (the decision: [`to_prune`], pure).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::protocol::LogStream;
use crate::scheduler::AttemptId;

/// The directory under a worker's work directory that holds the logs.
pub const LOGS_DIR: &str = "logs";
/// Bytes of the head and of the tail of a stream a local run keeps (a worker's come from
/// its config).
pub const LOCAL_KEEP_BYTES: usize = 64 * 1024;

/// Where a worker keeps one attempt's logs.
pub fn attempt_log_dir(work_dir: &Path, attempt: AttemptId) -> PathBuf {
    work_dir
        .join(LOGS_DIR)
        .join(format!("job_{:04}", attempt.task.job))
        .join(attempt.to_string())
}

/// The file beside a job's attempt logs naming the job's user: logs are the user's data, so
/// a worker shows them only to that user (and members).
const OWNER_FILE: &str = "user";

/// Records that the logs of `attempt`'s job belong to `user` (best effort: without the
/// record only members and the superuser may read them).
pub fn record_owner(work_dir: &Path, attempt: AttemptId, user: &str) {
    if let Some(job_dir) = attempt_log_dir(work_dir, attempt).parent() {
        let _ = std::fs::create_dir_all(job_dir);
        let _ = std::fs::write(job_dir.join(OWNER_FILE), user);
    }
}

/// The user the logs of `attempt`'s job belong to, if recorded.
pub fn owner(work_dir: &Path, attempt: AttemptId) -> Option<String> {
    let job_dir = attempt_log_dir(work_dir, attempt);
    std::fs::read_to_string(job_dir.parent()?.join(OWNER_FILE)).ok()
}

/// Whether `caller` may read the logs of a job whose recorded user is `owner` (G8): the job's
/// user, and members and the superuser, who may read any. The worker applies it to every
/// request, and the jobtracker's log page before asking the worker for the same user.
pub fn may_read(caller: &dfs::auth::Principal, owner: Option<&str>) -> bool {
    caller.is_superuser() || owner == Some(caller.user())
}

/// Where a local run keeps its logs: `mrjob/logs` under the job's local directory
/// (`--local-dir`, else the system temp directory), laid out as a worker's.
pub fn local_logs_base(local_dir: Option<&Path>) -> PathBuf {
    local_dir
        .map_or_else(std::env::temp_dir, Path::to_path_buf)
        .join("mrjob")
}

/// One local attempt's log directory (its job is in its name: `attempt_local<pid>_0001_m_000003_0`).
pub fn local_log_dir(settings: &crate::job::Settings, attempt_id: &str) -> PathBuf {
    let job = attempt_id
        .strip_prefix("attempt_")
        .and_then(|rest| rest.rsplitn(4, '_').nth(3))
        .map_or_else(|| "job".to_owned(), |tag| format!("job_{tag}"));
    local_logs_base(settings.local_dir.as_deref())
        .join(LOGS_DIR)
        .join(job)
        .join(attempt_id)
}

/// A file that keeps the head and tail of what is written to it (see [`HeadTail`]); the tail
/// is written when it is dropped.
pub struct BoundedFile {
    file: std::fs::File,
    bounded: Option<HeadTail>,
}

impl BoundedFile {
    /// Creates `path` (and its directory).
    pub fn create(path: &Path, keep_bytes: usize) -> Result<BoundedFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        let file = std::fs::File::create(path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        Ok(BoundedFile {
            file,
            bounded: Some(HeadTail::new(keep_bytes)),
        })
    }
}

impl std::io::Write for BoundedFile {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Some(b) = &mut self.bounded {
            let head = b.push(data);
            self.file.write_all(head)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Drop for BoundedFile {
    fn drop(&mut self) {
        if let Some(b) = self.bounded.take() {
            let _ = std::io::Write::write_all(&mut self.file, &b.finish());
        }
    }
}

/// The head and tail of a stream, bounded: what to write now, and what is left at the end.
#[derive(Debug)]
pub struct HeadTail {
    keep_bytes: usize,
    /// Bytes seen so far.
    total: u64,
    /// The last bytes after the head, at most `keep_bytes`.
    tail: VecDeque<u8>,
}

impl HeadTail {
    /// Keeps the first and the last `keep_bytes` of a stream.
    pub fn new(keep_bytes: usize) -> HeadTail {
        HeadTail {
            keep_bytes,
            total: 0,
            tail: VecDeque::new(),
        }
    }

    /// Takes the next bytes of the stream; returns the part that belongs to the head (to be
    /// written at once).
    pub fn push<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        let head_left = (self.keep_bytes as u64).saturating_sub(self.total) as usize;
        let (head, rest) = data.split_at(head_left.min(data.len()));
        self.total += data.len() as u64;
        // Only the last `keep_bytes` of `rest` can survive.
        let rest = &rest[rest.len().saturating_sub(self.keep_bytes)..];
        let overflow = (self.tail.len() + rest.len()).saturating_sub(self.keep_bytes);
        self.tail.drain(..overflow.min(self.tail.len()));
        self.tail.extend(rest);
        head
    }

    /// What follows the head once the stream ended: a line saying how much was cut (if
    /// anything was), then the tail.
    pub fn finish(self) -> Vec<u8> {
        let kept = self.keep_bytes as u64 + self.tail.len() as u64;
        let cut = self.total.saturating_sub(kept);
        let mut out = Vec::with_capacity(self.tail.len() + 100);
        if cut > 0 {
            let line = format!(
                "\n[... {cut} bytes cut: the worker keeps the first and the last {} bytes of a task's output ...]\n",
                self.keep_bytes
            );
            out.extend_from_slice(line.as_bytes());
        }
        out.extend(self.tail);
        out
    }
}

/// Copies a task process's stream into `path`, bounded as [`HeadTail`] says; returns the
/// stream's whole length. Ends when the stream does (the process exited and closed it).
pub async fn capture<R: AsyncRead + Unpin>(
    mut stream: R,
    path: PathBuf,
    keep_bytes: usize,
) -> Result<u64> {
    let io = |e: std::io::Error| Error::io(format!("writing {}", path.display()), e);
    let mut file = tokio::fs::File::create(&path).await.map_err(io)?;
    let mut bounded = HeadTail::new(keep_bytes);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            // The pipe broke: keep what came.
            Err(_) => break,
        };
        let head = bounded.push(&buf[..n]);
        if !head.is_empty() {
            file.write_all(head).await.map_err(io)?;
            // Written through at once, so `mrjob logs` shows a running task's head.
            file.flush().await.map_err(io)?;
        }
    }
    let total = bounded.total;
    file.write_all(&bounded.finish()).await.map_err(io)?;
    file.flush().await.map_err(io)?;
    Ok(total)
}

/// Up to `max` bytes of an attempt's kept log from `offset`, and the log's length; an error
/// names the attempt when the worker has no such log.
pub fn read_chunk(
    work_dir: &Path,
    attempt: AttemptId,
    stream: LogStream,
    offset: u64,
    max: usize,
) -> Result<(Vec<u8>, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let path = attempt_log_dir(work_dir, attempt).join(stream.file_name());
    let mut file = std::fs::File::open(&path).map_err(|e| {
        Error::io(
            format!(
                "no {} log of {attempt} on this worker (pruned, or it never ran here)",
                stream.file_name()
            ),
            e,
        )
    })?;
    let io = |e: std::io::Error| Error::io(format!("reading {}", path.display()), e);
    let total = file.metadata().map_err(io)?.len();
    file.seek(SeekFrom::Start(offset.min(total))).map_err(io)?;
    let mut data = Vec::with_capacity(max.min(total.saturating_sub(offset) as usize));
    file.take(max as u64).read_to_end(&mut data).map_err(io)?;
    Ok((data, total))
}

/// One attempt's kept logs, as pruning sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptLog {
    /// Its directory.
    pub dir: PathBuf,
    /// When it was last written (ms since the Unix epoch).
    pub mtime_unix_ms: u64,
    /// Its size.
    pub bytes: u64,
}

/// The attempt log directories to delete: those older than `max_age_ms`, then the oldest
/// until the rest fit in `max_total_bytes`.
pub fn to_prune(
    logs: &[KeptLog],
    now_unix_ms: u64,
    max_age_ms: u64,
    max_total_bytes: u64,
) -> Vec<PathBuf> {
    let mut by_age: Vec<&KeptLog> = logs.iter().collect();
    by_age.sort_by_key(|l| (l.mtime_unix_ms, l.dir.clone()));
    let mut total: u64 = logs.iter().map(|l| l.bytes).sum();
    let mut prune = Vec::new();
    for log in by_age {
        let too_old = now_unix_ms.saturating_sub(log.mtime_unix_ms) > max_age_ms;
        if too_old || total > max_total_bytes {
            total -= log.bytes;
            prune.push(log.dir.clone());
        }
    }
    prune
}

/// Deletes the kept logs [`to_prune`] picks under `work_dir`, and job directories left
/// empty; returns how many attempts' logs went. Errors are skipped: the next pass retries.
pub fn prune(work_dir: &Path, now_unix_ms: u64, max_age_ms: u64, max_total_bytes: u64) -> usize {
    let root = work_dir.join(LOGS_DIR);
    let mut logs = Vec::new();
    let jobs = std::fs::read_dir(&root).into_iter().flatten().flatten();
    for job in jobs {
        for attempt in std::fs::read_dir(job.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            logs.push(kept_log(attempt.path()));
        }
    }
    let prune = to_prune(&logs, now_unix_ms, max_age_ms, max_total_bytes);
    for dir in &prune {
        let _ = std::fs::remove_dir_all(dir);
        if let Some(job_dir) = dir.parent() {
            // Fails (and stays) while other attempts' logs are in it.
            let _ = std::fs::remove_dir(job_dir);
        }
    }
    prune.len()
}

fn kept_log(dir: PathBuf) -> KeptLog {
    let mut log = KeptLog {
        dir,
        mtime_unix_ms: 0,
        bytes: 0,
    };
    for f in std::fs::read_dir(&log.dir).into_iter().flatten().flatten() {
        let Ok(meta) = f.metadata() else {
            continue;
        };
        log.bytes += meta.len();
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64);
        log.mtime_unix_ms = log.mtime_unix_ms.max(mtime);
    }
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_through(keep: usize, chunks: &[&[u8]]) -> Vec<u8> {
        let mut h = HeadTail::new(keep);
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(h.push(c));
        }
        out.extend(h.finish());
        out
    }

    #[test]
    fn a_short_stream_is_kept_whole() {
        assert_eq!(run_through(8, &[b"abc", b"def"]), b"abcdef");
        assert_eq!(run_through(4, &[b"abcdefgh"]), b"abcdefgh");
    }

    #[test]
    fn a_long_stream_keeps_its_head_and_tail_and_says_what_was_cut() {
        let data: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let chunks: Vec<&[u8]> = data.chunks(333).collect();
        let out = run_through(100, &chunks);
        assert_eq!(&out[..100], &data[..100]);
        assert_eq!(&out[out.len() - 100..], &data[data.len() - 100..]);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("[... 9800 bytes cut"), "{text}");
        assert!(out.len() < 300);
    }

    #[test]
    fn memory_stays_bounded_whatever_the_chunks() {
        let mut h = HeadTail::new(64);
        for _ in 0..1000 {
            h.push(&[7u8; 1000]);
            assert!(h.tail.len() <= 64);
        }
        assert_eq!(h.total, 1_000_000);
    }

    fn log(name: &str, mtime: u64, bytes: u64) -> KeptLog {
        KeptLog {
            dir: PathBuf::from(name),
            mtime_unix_ms: mtime,
            bytes,
        }
    }

    #[test]
    fn pruning_takes_the_too_old_then_the_oldest_beyond_the_total() {
        let logs = [
            log("c", 300, 10),
            log("a", 100, 10),
            log("b", 200, 10),
            log("d", 400, 10),
        ];
        // Nothing old, everything fits.
        assert!(to_prune(&logs, 500, 1_000, 100).is_empty());
        // Older than 250 ms at 500: a and b.
        assert_eq!(
            to_prune(&logs, 500, 250, 100),
            vec![PathBuf::from("a"), PathBuf::from("b")]
        );
        // At most 25 bytes: the two oldest go.
        assert_eq!(
            to_prune(&logs, 500, 1_000, 25),
            vec![PathBuf::from("a"), PathBuf::from("b")]
        );
    }

    #[test]
    fn a_bounded_file_keeps_head_and_tail_and_local_logs_are_laid_out_as_a_workers() {
        let dir = tempfile::tempdir().unwrap();
        let settings = crate::job::Settings {
            local_dir: Some(dir.path().to_owned()),
            ..crate::job::Settings::default()
        };
        let log_dir = local_log_dir(&settings, "attempt_local42_0001_m_000003_0");
        let want = dir
            .path()
            .join("mrjob/logs/job_local42_0001/attempt_local42_0001_m_000003_0");
        assert_eq!(log_dir, want);
        {
            let mut f = BoundedFile::create(&log_dir.join("stderr"), 10).unwrap();
            for _ in 0..100 {
                std::io::Write::write_all(&mut f, b"0123456789").unwrap();
            }
        }
        let kept = std::fs::read_to_string(log_dir.join("stderr")).unwrap();
        assert!(kept.starts_with("0123456789\n[... 980 bytes cut"), "{kept}");
        assert!(kept.ends_with("0123456789"), "{kept}");
    }

    #[tokio::test]
    async fn capture_writes_the_bounded_stream_to_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stderr");
        let data = vec![b'x'; 1 << 20];
        let total = capture(&data[..], path.clone(), 1024).await.unwrap();
        assert_eq!(total, 1 << 20);
        let kept = std::fs::read(&path).unwrap();
        assert!(kept.len() < 2048 + 200, "{}", kept.len());
        let (chunk, len) = {
            let work = dir.path();
            let attempt = AttemptId {
                task: crate::scheduler::TaskId {
                    job: 1,
                    kind: crate::scheduler::TaskKind::Map,
                    index: 0,
                },
                attempt: 0,
            };
            let adir = attempt_log_dir(work, attempt);
            std::fs::create_dir_all(&adir).unwrap();
            std::fs::copy(&path, adir.join("stderr")).unwrap();
            read_chunk(work, attempt, LogStream::Stderr, 1000, 100).unwrap()
        };
        assert_eq!(len, kept.len() as u64);
        assert_eq!(chunk, kept[1000..1100].to_vec());
    }
}
