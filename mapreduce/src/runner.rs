//! The local runner (the embedded default): the same map and reduce tasks as a cluster runs,
//! on a pool of threads on this machine, reading and writing local files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::committer::Committer;
use crate::counters::Counters;
use crate::error::{Error, Result};
use crate::fs::FileSystem;
use crate::fs::LocalFs;
use crate::input::InputFormat;
use crate::input::Split;
use crate::job::Job;
use crate::map_task::{run_map_only_task, run_map_task};
use crate::merge::SegmentRef;
use crate::output::OutputWriter;
use crate::progress::Progress;
use crate::reduce_task::run_reduce_task;
use crate::run::RunFile;
use crate::split::{compute_splits, local_split_size, split_files, SplitRequest};
use crate::task_context::{local_job_tag, local_names, TaskContext};
use crate::task_log;

/// What a finished job reports.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// Counters of all committed tasks.
    pub counters: Counters,
    /// Wall time from start to commit.
    pub elapsed: Duration,
    /// Where the output is.
    pub output: PathBuf,
    /// On a cluster: from the start of the submission to the first task process running.
    pub first_task_latency: Option<Duration>,
}

/// Options of a local run that are not job settings.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Draw a progress line on stderr if it is a terminal.
    pub progress: bool,
}

/// Runs `job` over `inputs` into `output` on this machine. On any error the output directory
/// is removed, so a failed job leaves nothing visible.
pub fn run_local(
    job: &Job,
    inputs: &[PathBuf],
    output: &Path,
    opts: &RunOptions,
) -> Result<JobReport> {
    let started = Instant::now();
    job.validate()?;
    prune_local_logs(job);
    let splits = local_splits(job, inputs)?;
    let committer = Committer::setup(&LocalFs, output)?;
    let work = match make_work_dir(job) {
        Ok(w) => w,
        Err(e) => {
            committer.abort();
            return Err(e);
        }
    };
    let input_bytes = splits.iter().map(Split::size).sum();
    let reduces = u64::from(job.settings.reducers);
    let progress = Progress::new(
        &job.name,
        input_bytes,
        splits.len() as u64,
        reduces,
        opts.progress,
    );
    let result = execute(job, &splits, &committer, work.path(), &progress);
    progress.finish();
    match result {
        Ok(counters) => {
            committer.commit_job(job.settings.sync_output)?;
            Ok(JobReport {
                counters,
                elapsed: started.elapsed(),
                output: output.to_owned(),
                first_task_latency: None,
            })
        }
        Err(e) => {
            committer.abort();
            Err(e)
        }
    }
}

/// The splits of a local run, cut at the size [`local_split_size`] picks.
fn local_splits(job: &Job, inputs: &[PathBuf]) -> Result<Vec<Split>> {
    if let InputFormat::Generated { .. } = job.input {
        return compute_splits(&LocalFs, &job.input, inputs, 1);
    }
    let files = LocalFs.list_input_files(inputs)?;
    let total_bytes = files.iter().map(|f| f.len).sum();
    let request = SplitRequest {
        max_bytes: job.settings.split_size_bytes,
        min_bytes: job.split_min_bytes,
        maps: job.maps_hint,
    };
    let size = local_split_size(request, total_bytes, job.settings.threads);
    tracing::debug!("split size {size} bytes for {total_bytes} bytes of input");
    Ok(split_files(&job.input, &files, size))
}

/// Deletes kept local task logs past the default age and total size (a local run has no
/// cluster config; these are the `[mapreduce]` table's defaults).
fn prune_local_logs(job: &Job) {
    let limits = crate::config::MapReduceConfig::default();
    let base = task_log::local_logs_base(job.settings.local_dir.as_deref());
    task_log::prune(
        &base,
        crate::protocol::unix_ms(),
        limits.task_log_max_age_ms,
        limits.task_log_max_total_bytes,
    );
}

fn make_work_dir(job: &Job) -> Result<tempfile::TempDir> {
    let base = job
        .settings
        .local_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new()
        .prefix("mrjob-")
        .tempdir_in(&base)
        .map_err(|e| Error::io(format!("creating work directory in {}", base.display()), e))
}

fn execute(
    job: &Job,
    splits: &[Split],
    committer: &Committer<'_>,
    work: &Path,
    progress: &Progress,
) -> Result<Counters> {
    let threads = job.settings.threads;
    let mut total = Counters::default();
    let tag = local_job_tag();
    let scratch = Scratch {
        job,
        tag: &tag,
        work,
    };
    if job.settings.reducers == 0 {
        let results = run_pool(splits.len(), threads, |i| {
            let task = format!("m_{i:06}");
            let dir = committer.attempt_dir(&format!("attempt_{task}_0"))?;
            let c = OutputWriter::create(&LocalFs, &dir.join(format!("part-m-{i:05}")), job)
                .and_then(|out| {
                    scratch.with(true, i, Some(&splits[i]), |ctx| {
                        run_map_only_task(ctx, job, &splits[i], out)
                    })
                })
                .map_err(|e| task_error(&task, e))?;
            committer.commit_task(&format!("task_{task}"), &dir)?;
            progress.map_done(splits[i].size());
            Ok(c)
        })?;
        results.iter().for_each(|c| total.merge(c));
        return Ok(total);
    }
    let maps: Vec<(RunFile, Counters)> = run_pool(splits.len(), threads, |i| {
        let task = format!("m_{i:06}");
        let r = scratch
            .with(true, i, Some(&splits[i]), |ctx| {
                run_map_task(ctx, job, &splits[i], work, &task)
            })
            .map_err(|e| task_error(&task, e))?;
        progress.map_done(splits[i].size());
        Ok(r)
    })?;
    let runs: Vec<&RunFile> = maps.iter().map(|(r, _)| r).collect();
    maps.iter().for_each(|(_, c)| total.merge(c));
    let reducers = job.settings.reducers as usize;
    let results = run_pool(reducers, threads, |r| {
        let task = format!("r_{r:06}");
        let segments = runs
            .iter()
            .filter(|run| run.segments[r].records > 0)
            .map(|run| SegmentRef::file(run.path.clone(), run.segments[r], false))
            .collect();
        let dir = committer.attempt_dir(&format!("attempt_{task}_0"))?;
        let c = OutputWriter::create(&LocalFs, &dir.join(format!("part-r-{r:05}")), job)
            .and_then(|out| {
                scratch.with(false, r, None, |ctx| {
                    run_reduce_task(ctx, job, segments, work, &task, out)
                })
            })
            .map_err(|e| task_error(&task, e))?;
        committer.commit_task(&format!("task_{task}"), &dir)?;
        progress.reduce_done();
        Ok(c)
    })?;
    results.iter().for_each(|c| total.merge(c));
    Ok(total)
}

/// Builds each local task's [`TaskContext`], with a scratch directory of its own under the
/// job's work directory (removed after the task).
struct Scratch<'a> {
    job: &'a Job,
    tag: &'a str,
    work: &'a Path,
}

impl Scratch<'_> {
    fn with<T>(
        &self,
        is_map: bool,
        index: usize,
        split: Option<&Split>,
        f: impl FnOnce(&TaskContext<'_>) -> Result<T>,
    ) -> Result<T> {
        let index =
            u32::try_from(index).map_err(|_| Error::BadSetting("more than 2^32 tasks".into()))?;
        let (job_id, task_id, attempt_id) = local_names(self.tag, is_map, index);
        let dir = self.work.join(&attempt_id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let log_dir = task_log::local_log_dir(&self.job.settings, &attempt_id);
        let ctx = TaskContext {
            job_id,
            job_name: &self.job.name,
            task_id,
            attempt_id,
            is_map,
            partition: index,
            reducers: self.job.settings.reducers,
            split,
            dir: &dir,
            fs: &LocalFs,
            log_dir: Some(log_dir),
        };
        let r = f(&ctx);
        // Best effort: the whole work directory goes when the job ends.
        let _ = std::fs::remove_dir_all(&dir);
        r
    }
}

fn task_error(task: &str, e: Error) -> Error {
    Error::Task {
        task: task.to_owned(),
        source: Box::new(e),
    }
}

/// Runs `f(0..n)` on `threads` threads and returns the results in task order. After the first
/// error no new task starts, and that error is returned.
pub fn run_pool<T: Send>(
    n: usize,
    threads: usize,
    f: impl Fn(usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..n).map(|_| None).collect());
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, n.max(1)) {
            s.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                match f(i) {
                    Ok(v) => dfs::lock::lock(&results)[i] = Some(v),
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        dfs::lock::lock(&first_error).get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = dfs::lock::lock(&first_error).take() {
        return Err(e);
    }
    let results = dfs::lock::into_inner(results);
    Ok(results.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Record;
    use crate::job::{Mapper, Reducer, Settings, ValueSource};
    use crate::output::{MapEmitter, ReduceEmitter};
    use crate::task_context::TaskContext;

    /// Emits, per record, what its task's context said in `setup`.
    #[derive(Clone, Default)]
    struct Whoami(String);
    impl Mapper for Whoami {
        fn setup(&mut self, ctx: &TaskContext<'_>) -> Result<()> {
            assert!(ctx.dir.is_dir(), "the scratch directory exists");
            let file = match ctx.split {
                Some(Split::File { path, .. }) => path.file_name().unwrap().to_string_lossy(),
                _ => "?".into(),
            };
            self.0 = format!("{} {} {} {file}", ctx.job_id, ctx.attempt_id, ctx.is_map);
            Ok(())
        }
        fn map(&mut self, _: Record<'_>, out: &mut dyn MapEmitter) -> Result<()> {
            out.emit(self.0.as_bytes(), b"");
            Ok(())
        }
    }
    #[derive(Clone, Default)]
    struct Names(String);
    impl Reducer for Names {
        fn setup(&mut self, ctx: &TaskContext<'_>) -> Result<()> {
            self.0 = format!("{} of {}", ctx.task_id, ctx.reducers);
            Ok(())
        }
        fn reduce(
            &mut self,
            key: &[u8],
            _: &mut dyn ValueSource,
            out: &mut dyn ReduceEmitter,
        ) -> Result<()> {
            out.emit(key, self.0.as_bytes());
            Ok(())
        }
    }

    #[test]
    fn tasks_get_their_names_split_and_scratch_dir_in_setup() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        std::fs::create_dir(&input).unwrap();
        std::fs::write(input.join("a.txt"), "x\n").unwrap();
        std::fs::write(input.join("b.txt"), "y\n").unwrap();
        let settings = Settings {
            reducers: 1,
            threads: 2,
            ..Settings::default()
        };
        let job = Job::new("whoami", Whoami::default())
            .reducer(Names::default())
            .settings(settings);
        let out = dir.path().join("out");
        run_local(&job, &[input], &out, &RunOptions::default()).unwrap();
        let text = std::fs::read_to_string(out.join("part-r-00000")).unwrap();
        let tag = crate::task_context::local_job_tag();
        let want = format!(
            "job_{tag} attempt_{tag}_m_000000_0 true a.txt\ttask_{tag}_r_000000 of 1\n\
             job_{tag} attempt_{tag}_m_000001_0 true b.txt\ttask_{tag}_r_000000 of 1\n"
        );
        assert_eq!(text, want);
    }
}
