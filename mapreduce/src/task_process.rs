//! The task process: a worker runs every attempt as a child process of the job's own binary
//! (`BINARY __mrjob-task SPEC`), so a panic, abort or crash in job code ends the attempt and
//! not the worker. Every job binary's `main` first calls [`run_if_requested`].
//!
//! The child reads its [`ChildSpec`], rebuilds the job from its [`JobConf`](crate::JobConf)
//! with the binary's [`Registry`], runs the map or reduce task (the same code as the local
//! runner, on dfs through [`DfsFs`]), and leaves `result.bin` (its counters) or `error.txt`
//! (its error, a few lines at most) in its directory for the worker. It reports progress by
//! rewriting the small file `progress`, which the worker forwards in its heartbeats.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use dfs::client::DfsClient;
use dfs::config::ClusterConfig;

use crate::counters::Counters;
use crate::dfs_fs::DfsFs;
use crate::error::{Error, Result};
use crate::fault::{self, FaultAction};
use crate::fs::{FileSystem, InputFile, OutputSink, ReadSeek};
use crate::input::Split;
use crate::job::Job;
use crate::job_conf::Registry;
use crate::map_task::{run_map_only_task, run_map_task};
use crate::output::OutputWriter;
use crate::protocol::{TaskSpec, TaskWork};
use crate::reduce_task::run_reduce_task;
use crate::shuffle::fetch::{fetch_all, FetchPlan};
use crate::task_context::{cluster_names, is_map, TaskContext};

/// The first argument that makes a job binary run one task attempt.
pub const TASK_ARG: &str = "__mrjob-task";
/// What the worker hands its child.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildSpec {
    /// The attempt.
    pub task: TaskSpec,
    /// The cluster (dfs and the jobtracker).
    pub cluster: ClusterConfig,
    /// The worker's host name (for short-circuit reads and local first replicas).
    pub host: String,
    /// The attempt's local directory (map output, fetched segments, merge passes).
    pub dir: PathBuf,
    /// The worker's work directory (map outputs of this host, read directly by reduces).
    pub work_dir: PathBuf,
}

/// Files the child leaves for the worker in its directory.
pub mod files {
    /// The spec the worker wrote.
    pub const SPEC: &str = "task.bin";
    /// Counters of a successful attempt.
    pub const RESULT: &str = "result.bin";
    /// Error text of a failed attempt (at most 8 KiB, possibly several lines).
    pub const ERROR: &str = "error.txt";
    /// Progress as an `f32` (little endian).
    pub const PROGRESS: &str = "progress";
}

/// Runs the task attempt this process was started for, if it was started for one; otherwise
/// returns `None` and the binary goes on with its own command line.
pub fn run_if_requested(registry: &Registry) -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(std::ffi::OsStr::new(TASK_ARG)) {
        return None;
    }
    crate::logging::init_logging();
    let spec_path = PathBuf::from(args.next()?);
    let dir = spec_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let code = match run_child(registry, &spec_path) {
        Ok(counters) => match write_file(&dir.join(files::RESULT), &counters) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail_child(&dir, &e),
        },
        Err(e) => fail_child(&dir, &e),
    };
    Some(code)
}

/// Most bytes of an attempt's error text kept for the worker (and so for the user).
const ERROR_TEXT_LIMIT: usize = 8 * 1024;

fn fail_child(dir: &Path, e: &Error) -> ExitCode {
    // Several lines are kept: a Streaming task's error ends with its command's stderr (a
    // Python traceback), which must reach the user's terminal as it was written.
    let mut text = e.to_string();
    if text.len() > ERROR_TEXT_LIMIT {
        let mut cut = ERROR_TEXT_LIMIT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(" [...]");
    }
    eprintln!("task failed: {text}");
    let _ = std::fs::write(dir.join(files::ERROR), text);
    ExitCode::from(1)
}

fn write_file<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let bytes = dfs::frame::encode_msg(v).map_err(|e| Error::user(format!("encoding: {e}")))?;
    std::fs::write(path, bytes).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Reads and decodes a file written by [`write_file`].
pub fn read_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    dfs::frame::decode_msg(&bytes).map_err(|e| Error::Corrupt {
        file: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Writes the job's spec for a child process.
pub fn write_spec(path: &Path, spec: &ChildSpec) -> Result<()> {
    write_file(path, spec)?;
    // It holds the job's token: for the attempt's eyes only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(format!("restricting {}", path.display()), e))?;
    }
    Ok(())
}

fn run_child(registry: &Registry, spec_path: &Path) -> Result<Counters> {
    let mut spec: ChildSpec = read_file(spec_path)?;
    // The attempt acts as its job's user through the job's token: never with the worker's
    // own (member) credentials.
    let credentials = spec.task.token.credentials()?;
    spec.cluster.secrets.set_credentials(credentials);
    let mut job = registry.build(&spec.task.job.conf)?;
    job.settings.local_dir = Some(spec.dir.clone());
    let faults = fault::for_attempt(spec.task.attempt)?;
    fault::arm(&faults, spec.task.attempt, &mut job)?;
    let abort_output = faults.contains(&FaultAction::AbortOutput);
    let progress = Progress::start(spec.dir.join(files::PROGRESS));
    let client = DfsClient::new(spec.cluster.clone()).with_local_host(Some(spec.host.clone()));
    let fs = DfsFs::new(client, true)?;
    let fs = TaskFs {
        inner: fs,
        abort_output,
        // A reduce's progress after its shuffle follows the bytes it writes.
        output_progress: matches!(spec.task.work, TaskWork::Reduce { .. })
            .then(|| progress.clone()),
    };
    let attempt = spec.task.attempt;
    let name = attempt.to_string();
    let result = match &spec.task.work {
        TaskWork::Map { split } => {
            let counting = CountingFs {
                inner: &fs,
                progress: progress.clone(),
                total: split.size().max(1),
            };
            let ctx = context(&spec, &job, Some(split), &counting);
            if spec.task.job.reduces == 0 {
                let out = part_file(
                    &fs,
                    &job,
                    &spec,
                    &format!("part-m-{:05}", attempt.task.index),
                )?;
                run_map_only_task(&ctx, &job, split, out)
            } else {
                run_map_task(&ctx, &job, split, &spec.dir, &name).map(|(_, c)| c)
            }
        }
        TaskWork::Reduce { maps } => run_reduce(&fs, &job, &spec, *maps, &progress),
    };
    progress.stop();
    if result.is_ok() {
        for f in &faults {
            if let FaultAction::SleepEnd(ms) = f {
                std::thread::sleep(std::time::Duration::from_millis(*ms));
            }
        }
    }
    result
}

/// The attempt's [`TaskContext`]: its scratch directory is the attempt's own directory.
fn context<'a>(
    spec: &'a ChildSpec,
    job: &'a Job,
    split: Option<&'a Split>,
    fs: &'a dyn FileSystem,
) -> TaskContext<'a> {
    let attempt = spec.task.attempt;
    let (job_id, task_id, attempt_id) = cluster_names(attempt);
    TaskContext {
        job_id,
        job_name: &job.name,
        task_id,
        attempt_id,
        is_map: is_map(attempt),
        partition: attempt.task.index,
        reducers: spec.task.job.reduces,
        split,
        dir: &spec.dir,
        fs,
        // The worker keeps this process's stdout and stderr.
        log_dir: None,
    }
}

fn part_file(fs: &TaskFs, job: &Job, spec: &ChildSpec, name: &str) -> Result<OutputWriter> {
    let path = PathBuf::from(format!("{}/{name}", spec.task.output_dir));
    OutputWriter::create(fs, &path, job)
}

fn run_reduce(
    fs: &TaskFs,
    job: &Job,
    spec: &ChildSpec,
    maps: u32,
    progress: &Progress,
) -> Result<Counters> {
    let attempt = spec.task.attempt;
    let fetch_dir = spec.dir.join("fetched");
    std::fs::create_dir_all(&fetch_dir)
        .map_err(|e| Error::io(format!("creating {}", fetch_dir.display()), e))?;
    let plan = FetchPlan {
        jobtracker_addr: &spec.cluster.jobtracker_addr,
        reduce: attempt,
        maps,
        host: &spec.host,
        work_dir: &spec.work_dir,
        dir: &fetch_dir,
        timeout: Duration::from_millis(spec.cluster.rpc_timeout_ms),
        credentials: spec.cluster.secrets.credentials()?,
    };
    let segments = fs.inner.block_on(fetch_all(&plan, &|p| progress.set(p)))?;
    progress.set(1.0 / 3.0);
    let out = part_file(fs, job, spec, &format!("part-r-{:05}", attempt.task.index))?;
    let name = attempt.to_string();
    run_reduce_task(
        &context(spec, job, None, fs),
        job,
        segments,
        &spec.dir,
        &name,
        out,
    )
}

/// The attempt's last status message (Streaming's `reporter:status:`), written after the
/// progress in the progress file. Process-wide: a task process runs one attempt (in local
/// mode nobody reads it).
static STATUS: Mutex<Option<String>> = Mutex::new(None);
/// Longest status kept, in bytes.
const STATUS_MAX_BYTES: usize = 256;

/// Sets the attempt's status, shown on its job page (cut to [`STATUS_MAX_BYTES`]).
pub fn set_status(msg: &str) {
    let mut end = msg.len().min(STATUS_MAX_BYTES);
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    *dfs::lock::lock(&STATUS) = Some(msg[..end].to_owned());
}

/// The attempt's progress, written to a file every few hundred milliseconds.
#[derive(Clone)]
struct Progress {
    value: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
}

impl Progress {
    fn start(path: PathBuf) -> Progress {
        let p = Progress {
            value: Arc::new(AtomicU32::new(0f32.to_bits())),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (value, stop) = (p.value.clone(), p.stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let v = f32::from_bits(value.load(Ordering::Relaxed));
                let mut bytes = v.to_le_bytes().to_vec();
                if let Some(status) = dfs::lock::lock(&STATUS).as_deref() {
                    bytes.extend_from_slice(status.as_bytes());
                }
                let _ = std::fs::write(&path, bytes);
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        p
    }

    fn set(&self, v: f32) {
        self.value
            .store(v.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads an attempt's progress file: its progress (0.0 when missing) and its status (none
/// when missing or never set), from one read.
pub fn read_report(dir: &Path) -> (f32, Option<String>) {
    let bytes = std::fs::read(dir.join(files::PROGRESS)).unwrap_or_default();
    let progress = bytes
        .get(..4)
        .map_or(0.0, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let status = bytes
        .get(4..)
        .filter(|t| !t.is_empty())
        .map(|t| String::from_utf8_lossy(&t[..t.len().min(STATUS_MAX_BYTES)]).into_owned());
    (progress, status)
}

/// The namespace operations of a `FileSystem` wrapper, passed to its `inner` filesystem: the
/// task wrappers change only how files are read and written.
macro_rules! namespace_ops_of_inner {
    () => {
        fn rename(&self, from: &Path, to: &Path) -> Result<()> {
            self.inner.rename(from, to)
        }

        fn mkdirs(&self, dir: &Path) -> Result<()> {
            self.inner.mkdirs(dir)
        }

        fn delete(&self, path: &Path, recursive: bool) -> Result<bool> {
            self.inner.delete(path, recursive)
        }

        fn exists(&self, path: &Path) -> Result<bool> {
            self.inner.exists(path)
        }

        fn list_dir(&self, dir: &Path) -> Result<Vec<PathBuf>> {
            self.inner.list_dir(dir)
        }

        fn list_entries(&self, dir: &Path) -> Result<Vec<crate::glob::DirEntry>> {
            self.inner.list_entries(dir)
        }

        fn sync_dir(&self, dir: &Path) -> Result<()> {
            self.inner.sync_dir(dir)
        }
    };
}

/// dfs for one task, with its output fault hook.
struct TaskFs {
    inner: DfsFs,
    abort_output: bool,
    output_progress: Option<Progress>,
}

impl FileSystem for TaskFs {
    fn list_input_files(&self, inputs: &[PathBuf]) -> Result<Vec<InputFile>> {
        self.inner.list_input_files(inputs)
    }

    fn open(&self, path: &Path) -> Result<Box<dyn ReadSeek>> {
        self.inner.open(path)
    }

    fn create(&self, path: &Path) -> Result<Box<dyn OutputSink>> {
        let mut sink = self.inner.create(path)?;
        if let Some(progress) = &self.output_progress {
            sink = Box::new(ProgressSink {
                inner: sink,
                progress: progress.clone(),
                written: 0,
            });
        }
        if !self.abort_output {
            return Ok(sink);
        }
        Ok(Box::new(AbortingSink(sink)))
    }

    namespace_ops_of_inner!();
}

/// Moves a reduce's progress from 1/3 towards 1 as it writes output (it cannot know its total).
struct ProgressSink {
    inner: Box<dyn OutputSink>,
    progress: Progress,
    written: u64,
}

impl std::io::Write for ProgressSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(data)?;
        let before = self.written;
        self.written += n as u64;
        // Records are written a few bytes at a time: update once per MiB.
        if before >> 20 != self.written >> 20 {
            let half_life = (64u64 << 20) as f32;
            let f = self.written as f32 / (self.written as f32 + half_life);
            self.progress.set(1.0 / 3.0 + 2.0 / 3.0 * f);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl OutputSink for ProgressSink {
    fn finish(self: Box<Self>, sync: bool) -> std::io::Result<()> {
        self.inner.finish(sync)
    }
}

/// The `abort-output` fault: the process dies with its part file written but not closed.
struct AbortingSink(Box<dyn OutputSink>);

impl std::io::Write for AbortingSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.write(data)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl OutputSink for AbortingSink {
    fn finish(self: Box<Self>, _sync: bool) -> std::io::Result<()> {
        eprintln!("injected fault: aborting before the part file is closed");
        std::process::abort();
    }
}

/// Counts the bytes a map reads, for its progress.
struct CountingFs<'a> {
    inner: &'a TaskFs,
    progress: Progress,
    total: u64,
}

impl FileSystem for CountingFs<'_> {
    fn list_input_files(&self, inputs: &[PathBuf]) -> Result<Vec<InputFile>> {
        self.inner.list_input_files(inputs)
    }

    fn open(&self, path: &Path) -> Result<Box<dyn ReadSeek>> {
        Ok(Box::new(CountingRead {
            inner: self.inner.open(path)?,
            progress: self.progress.clone(),
            total: self.total,
            read: Arc::new(AtomicU64::new(0)),
        }))
    }

    fn create(&self, path: &Path) -> Result<Box<dyn OutputSink>> {
        self.inner.create(path)
    }

    namespace_ops_of_inner!();
}

struct CountingRead {
    inner: Box<dyn ReadSeek>,
    progress: Progress,
    total: u64,
    read: Arc<AtomicU64>,
}

impl std::io::Read for CountingRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let so_far = self.read.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        self.progress.set(so_far as f32 / self.total as f32);
        Ok(n)
    }
}

impl std::io::Seek for CountingRead {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_file_carries_the_status_after_the_progress() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_report(dir.path()), (0.0, None));
        let path = dir.path().join(files::PROGRESS);
        std::fs::write(&path, 0.5f32.to_le_bytes()).unwrap();
        assert_eq!(read_report(dir.path()), (0.5, None));
        let mut bytes = 0.25f32.to_le_bytes().to_vec();
        bytes.extend_from_slice("x".repeat(1000).as_bytes());
        std::fs::write(&path, bytes).unwrap();
        let (progress, status) = read_report(dir.path());
        assert_eq!(progress, 0.25);
        assert_eq!(status.unwrap().len(), STATUS_MAX_BYTES);
    }
}
