//! The jobtracker daemon (`mrjob jobtracker`): accepts jobs, cuts them into one split per dfs
//! block, and runs the [`Scheduler`] state machine. This file is the I/O shell around it:
//! RPCs in, scheduler actions out (commands queued for workers' heartbeats, commits and job
//! ends carried out in dfs).
//!
//! Commit protocol (G6): an attempt writes its part file under `OUT/_temporary/ATTEMPT/`,
//! a directory the jobtracker creates before launching it. When the scheduler picks an
//! attempt to commit (at most one per task), the jobtracker renames its files into `OUT`.
//! When every task is done it removes `OUT/_temporary` and writes `OUT/_SUCCESS`; when a job
//! fails it removes `OUT`. A stale attempt (timed out, on a lost worker, a lost speculative
//! race) is never committed, and once its directory is gone it cannot even write a file there,
//! because task output is created with `require_parent`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dfs::client::DfsClient;
use dfs::config::ClusterConfig;
use dfs::rpc::{serve, ServerLimits, Service};
use tokio::sync::Notify;

use crate::counters::Counters;
use crate::dfs_fs::{dfs_error, list_input_files};
use crate::error::{Error, Result};
use crate::fs::{InputFile, LocalFs};
use crate::input::{compute_splits, InputFormat, Split};
use crate::protocol::{
    unix_ms, AttemptOutcome, ErrorKind, JobInfo, JobPhase, JobSpec, JtRequest, JtResponse,
    MapOutputLoc, TaskSpec, TaskWork, WorkerCommand, WorkerInfo, CONTROL_FRAME_LIMIT_BYTES,
};
use crate::scheduler::{
    Action, AttemptId, Event, JobId, JobStatus, Locality, Scheduler, SchedulerConfig, TaskId,
    TaskKind,
};

/// Period of the scheduler's clock tick.
const TICK_MS: u64 = 100;
/// Most jobs kept in memory; the oldest finished ones are forgotten beyond this.
const MAX_JOBS_KEPT: usize = 1000;
/// Counter group of the jobtracker's scheduling statistics.
pub const CLUSTER_GROUP: &str = "Cluster Job Counters";

/// The dfs directory an attempt writes its part file into.
pub fn attempt_dir(output: &str, attempt: AttemptId) -> String {
    format!("{}/_temporary/{attempt}", output.trim_end_matches('/'))
}

/// Scheduler settings from the cluster config.
pub fn scheduler_config(config: &ClusterConfig) -> SchedulerConfig {
    SchedulerConfig {
        max_attempts: config.task_max_attempts,
        task_timeout_ms: config.task_timeout_ms,
        worker_timeout_ms: config.worker_timeout_ms,
        locality_delay_ms: config.locality_delay_ms,
        reduce_slowstart: f64::from(config.reduce_slowstart_percent) / 100.0,
        speculative: config.speculative,
        ..SchedulerConfig::default()
    }
}

struct JobEntry {
    spec: Arc<JobSpec>,
    splits: Vec<Split>,
    phase: JobPhase,
    submitted: Instant,
    finished: Option<Instant>,
    input_bytes: u64,
    /// Counters of attempts that succeeded, until the scheduler accepts (or drops) them.
    pending: HashMap<AttemptId, Counters>,
    /// Counters of each task's accepted attempt.
    accepted: BTreeMap<TaskId, Counters>,
    /// When its first task process started (ms since the Unix epoch).
    first_started_unix_ms: Option<u64>,
    submitted_unix_ms: u64,
}

struct WorkerSeen {
    last: Instant,
    slots: u32,
    running: u32,
}

struct State {
    sched: Scheduler,
    jobs: BTreeMap<JobId, JobEntry>,
    next_job: JobId,
    outbox: HashMap<String, Vec<WorkerCommand>>,
    workers: BTreeMap<String, WorkerSeen>,
    /// Output directories of running jobs, so two jobs never share one.
    outputs: HashSet<String>,
    /// Per worker, attempts launched but not yet handed to it in a heartbeat reply. Its
    /// heartbeats cannot list them yet, so they are added for the scheduler, which would
    /// otherwise take them for attempts the worker lost.
    launching: HashMap<String, HashSet<AttemptId>>,
}

/// The jobtracker service.
pub struct Jobtracker {
    config: ClusterConfig,
    dfs: DfsClient,
    state: Mutex<State>,
    wake: Notify,
    started: Instant,
}

impl Jobtracker {
    /// A jobtracker for `config` (not yet serving).
    pub fn new(config: ClusterConfig) -> Arc<Jobtracker> {
        let sched = Scheduler::new(scheduler_config(&config));
        Arc::new(Jobtracker {
            dfs: DfsClient::new(config.clone()),
            config,
            state: Mutex::new(State {
                sched,
                jobs: BTreeMap::new(),
                next_job: 1,
                outbox: HashMap::new(),
                workers: BTreeMap::new(),
                outputs: HashSet::new(),
                launching: HashMap::new(),
            }),
            wake: Notify::new(),
            started: Instant::now(),
        })
    }

    /// Serves on the configured address until the process ends.
    pub async fn run(config: ClusterConfig) -> Result<()> {
        let addr = config.jobtracker_addr.clone();
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| Error::io(format!("binding the jobtracker to {addr}"), e))?;
        let mut limits = ServerLimits::from_config(&config);
        limits.frame_limit_bytes = CONTROL_FRAME_LIMIT_BYTES;
        let jt = Jobtracker::new(config);
        let ticker = jt.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(TICK_MS));
            loop {
                every.tick().await;
                ticker.step(Event::Tick);
            }
        });
        tracing::info!("jobtracker serving on {addr}");
        serve(listener, limits, Arc::new(JtService(jt))).await;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Feeds one event to the scheduler and carries out its actions.
    fn step(self: &Arc<Self>, event: Event) {
        let mut st = self.lock();
        self.step_locked(&mut st, event);
    }

    fn step_locked(self: &Arc<Self>, st: &mut State, event: Event) {
        let actions = st.sched.step(self.now_ms(), event);
        for action in actions {
            self.apply(st, action);
        }
    }

    fn apply(self: &Arc<Self>, st: &mut State, action: Action) {
        match action {
            Action::Launch {
                worker,
                attempt,
                locality,
            } => self.launch(st, worker, attempt, locality),
            Action::Kill { worker, attempt } => {
                tracing::info!("killing {attempt} on {worker}");
                self.send(st, &worker, WorkerCommand::Kill { attempt });
            }
            Action::Commit { attempt } => {
                let Some(job) = st.jobs.get(&attempt.task.job) else {
                    return;
                };
                let output = job.spec.output.clone();
                let jt = self.clone();
                tokio::spawn(async move { jt.commit(output, attempt).await });
            }
            Action::Accept { attempt } => {
                if let Some(job) = st.jobs.get_mut(&attempt.task.job) {
                    let counters = job.pending.remove(&attempt).unwrap_or_default();
                    job.accepted.insert(attempt.task, counters);
                }
            }
            Action::JobSucceeded { job } => self.end_job(st, job, None),
            Action::JobFailed { job, reason } => self.end_job(st, job, Some(reason)),
        }
    }

    fn send(&self, st: &mut State, worker: &str, cmd: WorkerCommand) {
        st.outbox.entry(worker.to_owned()).or_default().push(cmd);
        self.wake.notify_waiters();
    }

    fn launch(
        self: &Arc<Self>,
        st: &mut State,
        worker: String,
        attempt: AttemptId,
        locality: Locality,
    ) {
        let Some(job) = st.jobs.get(&attempt.task.job) else {
            return;
        };
        let work = match attempt.task.kind {
            TaskKind::Map => TaskWork::Map {
                split: job.splits[attempt.task.index as usize].clone(),
            },
            TaskKind::Reduce => TaskWork::Reduce {
                maps: job.splits.len() as u32,
            },
        };
        let output_dir = attempt_dir(&job.spec.output, attempt);
        let writes_output = attempt.task.kind == TaskKind::Reduce || job.spec.reduces == 0;
        let spec = TaskSpec {
            attempt,
            job: (*job.spec).clone(),
            work,
            output_dir: output_dir.clone(),
        };
        tracing::info!("launching {attempt} on {worker} ({locality:?})");
        st.launching
            .entry(worker.clone())
            .or_default()
            .insert(attempt);
        if !writes_output {
            self.send(st, &worker, WorkerCommand::Launch(Box::new(spec)));
            return;
        }
        // The attempt directory must exist before the attempt runs (see the module docs).
        let jt = self.clone();
        tokio::spawn(async move {
            let made = jt.dfs.mkdirs(&output_dir).await;
            let mut st = jt.lock();
            let live = st.sched.is_live(attempt);
            match made {
                Ok(()) if live => jt.send(&mut st, &worker, WorkerCommand::Launch(Box::new(spec))),
                Ok(()) => {
                    // Killed meanwhile (its job may even have ended): take the directory away
                    // again so nothing is left under the output.
                    forget_launch(&mut st, &worker, attempt);
                    let dfs = jt.dfs.clone();
                    tokio::spawn(async move { dfs.delete(&output_dir, true).await });
                }
                Err(e) => {
                    forget_launch(&mut st, &worker, attempt);
                    let reason = format!("creating dfs://{output_dir}: {e}");
                    jt.step_locked(&mut st, Event::AttemptFailed { attempt, reason });
                }
            }
        });
    }

    /// Moves an attempt's files into the job's output directory.
    async fn commit(self: Arc<Self>, output: String, attempt: AttemptId) {
        let result = self.move_into_place(&output, attempt).await;
        let event = match result {
            Ok(()) => Event::CommitFinished { attempt },
            Err(e) => {
                tracing::warn!("commit of {attempt} failed: {e}");
                Event::CommitFailed {
                    attempt,
                    reason: e.to_string(),
                }
            }
        };
        self.step(event);
    }

    async fn move_into_place(&self, output: &str, attempt: AttemptId) -> Result<()> {
        let dir = attempt_dir(output, attempt);
        let files = self
            .dfs
            .list(&dir)
            .await
            .map_err(|e| dfs_error(format_args!("listing dfs://{dir}"), e))?;
        for f in files {
            let name = f.path.rsplit('/').next().unwrap_or_default();
            let dst = format!("{}/{name}", output.trim_end_matches('/'));
            self.dfs
                .rename(&f.path, &dst)
                .await
                .map_err(|e| dfs_error(format_args!("renaming dfs://{} to {dst}", f.path), e))?;
        }
        Ok(())
    }

    fn end_job(self: &Arc<Self>, st: &mut State, job: JobId, failure: Option<String>) {
        let Some(entry) = st.jobs.get(&job) else {
            return;
        };
        let output = entry.spec.output.clone();
        let workers: Vec<String> = st.workers.keys().cloned().collect();
        for w in workers {
            self.send(st, &w, WorkerCommand::Cleanup { job });
        }
        let jt = self.clone();
        tokio::spawn(async move {
            let phase = match failure {
                None => match jt.write_success(&output).await {
                    Ok(()) => JobPhase::Succeeded,
                    Err(e) => {
                        let reason = format!("job commit failed: {e}");
                        jt.remove_output(&output).await;
                        JobPhase::Failed(reason)
                    }
                },
                Some(reason) => {
                    jt.remove_output(&output).await;
                    JobPhase::Failed(reason)
                }
            };
            tracing::info!("job {job} ended: {phase:?}");
            let mut st = jt.lock();
            st.outputs.remove(&output);
            if let Some(e) = st.jobs.get_mut(&job) {
                e.phase = phase;
                e.finished = Some(Instant::now());
            }
            forget_old_jobs(&mut st);
        });
    }

    /// Removes `OUT/_temporary` and writes `OUT/_SUCCESS`, retrying through short outages.
    async fn write_success(&self, output: &str) -> Result<()> {
        let out = output.trim_end_matches('/');
        let mut last = None;
        for i in 0..5u32 {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(200 << i)).await;
            }
            let r = async {
                self.dfs.delete(&format!("{out}/_temporary"), true).await?;
                self.dfs
                    .write_file(&format!("{out}/_SUCCESS"), b"", true)
                    .await
            }
            .await;
            match r {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(dfs_error(
            format_args!("committing dfs://{out}"),
            last.expect("five attempts"),
        ))
    }

    async fn remove_output(&self, output: &str) {
        for i in 0..5u32 {
            match self.dfs.delete(output, true).await {
                Ok(_) => return,
                Err(e) => tracing::warn!("removing dfs://{output} (try {i}): {e}"),
            }
            tokio::time::sleep(Duration::from_millis(200 << i)).await;
        }
    }

    async fn submit(self: &Arc<Self>, spec: JobSpec) -> Result<JobId, (ErrorKind, String)> {
        let received_unix_ms = unix_ms();
        let received = Instant::now();
        let dfs_err = |e: Error| (ErrorKind::Dfs, e.to_string());
        let output = spec.output.trim_end_matches('/').to_owned();
        if output.is_empty() || !output.starts_with('/') {
            return Err((
                ErrorKind::BadRequest,
                format!("output {output:?} is not an absolute dfs path"),
            ));
        }
        if spec.reduces > 100_000 {
            return Err((ErrorKind::BadRequest, "at most 100000 reducers".into()));
        }
        match self.dfs.exists(&output).await {
            Ok(true) => {
                return Err((
                    ErrorKind::OutputExists,
                    format!("output directory dfs://{output} already exists"),
                ))
            }
            Ok(false) => {}
            Err(e) => return Err(dfs_err(dfs_error("checking the output directory", e))),
        }
        let (splits, hosts) = self
            .splits_of(&spec.input_format, &spec.inputs)
            .await
            .map_err(|e| match e {
                Error::BadInput { .. } => (ErrorKind::BadInput, e.to_string()),
                e => dfs_err(e),
            })?;
        if !self.lock().outputs.insert(output.clone()) {
            return Err((
                ErrorKind::OutputExists,
                format!("a running job already writes dfs://{output}"),
            ));
        }
        if let Err(e) = self.dfs.mkdirs(&format!("{output}/_temporary")).await {
            self.lock().outputs.remove(&output);
            return Err(dfs_err(dfs_error("creating the output directory", e)));
        }
        let mut st = self.lock();
        let id = st.next_job;
        st.next_job += 1;
        let reduces = spec.reduces;
        tracing::info!(
            "job {id} ({}) submitted: {} maps, {reduces} reduces, output dfs://{output}",
            spec.conf.job,
            splits.len()
        );
        st.jobs.insert(
            id,
            JobEntry {
                input_bytes: splits.iter().map(Split::size).sum(),
                spec: Arc::new(JobSpec { output, ..spec }),
                splits,
                phase: JobPhase::Running,
                submitted: received,
                finished: None,
                pending: HashMap::new(),
                accepted: BTreeMap::new(),
                first_started_unix_ms: None,
                submitted_unix_ms: received_unix_ms,
            },
        );
        self.step_locked(
            &mut st,
            Event::SubmitJob {
                job: id,
                map_hosts: hosts,
                reduces,
            },
        );
        Ok(id)
    }

    /// One split per dfs block, with the hosts holding it (record-aligned for fixed-length
    /// records: a record belongs to the block in which it starts).
    async fn splits_of(
        &self,
        format: &InputFormat,
        inputs: &[PathBuf],
    ) -> Result<(Vec<Split>, Vec<Vec<String>>)> {
        if let InputFormat::Generated { .. } = format {
            let splits = compute_splits(&LocalFs, format, &[], 1)?;
            let hosts = vec![Vec::new(); splits.len()];
            return Ok((splits, hosts));
        }
        let mut splits = Vec::new();
        let mut hosts = Vec::new();
        for file in list_input_files(&self.dfs, inputs).await? {
            let p = file.path.to_string_lossy().into_owned();
            let located = self
                .dfs
                .block_locations(&p)
                .await
                .map_err(|e| dfs_error(format_args!("locating the blocks of dfs://{p}"), e))?;
            let blocks: Vec<(u64, u64, Vec<String>)> = located
                .blocks
                .iter()
                .map(|lb| {
                    let h = lb.locations.iter().map(|d| d.host.clone()).collect();
                    (lb.offset_bytes, lb.block.len_bytes, h)
                })
                .collect();
            for (split, h) in block_splits(format, &file, located.len_bytes, blocks) {
                splits.push(split);
                hosts.push(h);
            }
        }
        Ok((splits, hosts))
    }

    async fn heartbeat(
        self: &Arc<Self>,
        worker: String,
        slots: u32,
        running: Vec<(AttemptId, f32)>,
        wait_ms: u64,
    ) -> JtResponse {
        let Ok(host) = self.config.host(&worker) else {
            return JtResponse::error(
                ErrorKind::BadRequest,
                format!("{worker:?} is not a host in the cluster config"),
            );
        };
        let rack = host.rack.clone();
        {
            let mut st = self.lock();
            let mut running = running;
            if let Some(pending) = st.launching.get(&worker) {
                running.extend(pending.iter().map(|a| (*a, 0.0)));
            }
            st.workers.insert(
                worker.clone(),
                WorkerSeen {
                    last: Instant::now(),
                    slots,
                    running: running.len() as u32,
                },
            );
            self.step_locked(
                &mut st,
                Event::Heartbeat {
                    worker: worker.clone(),
                    rack,
                    slots,
                    running,
                },
            );
        }
        // Long poll: hold the reply until there is a command or the wait is over.
        let deadline = Instant::now() + Duration::from_millis(wait_ms.min(5_000));
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(cmds) = self.take_commands(&worker) {
                return JtResponse::Commands(cmds);
            }
            let now = Instant::now();
            if now >= deadline {
                return JtResponse::Commands(Vec::new());
            }
            let _ = tokio::time::timeout(deadline - now, notified).await;
        }
    }

    /// The commands queued for `worker`, if any.
    fn take_commands(&self, worker: &str) -> Option<Vec<WorkerCommand>> {
        let mut st = self.lock();
        let cmds = st.outbox.remove(worker)?;
        for c in &cmds {
            if let WorkerCommand::Launch(spec) = c {
                forget_launch(&mut st, worker, spec.attempt);
            }
        }
        Some(cmds)
    }

    fn attempt_done(self: &Arc<Self>, worker: &str, attempt: AttemptId, outcome: AttemptOutcome) {
        let mut st = self.lock();
        let event = match outcome {
            AttemptOutcome::Succeeded { counters } => {
                if !st.sched.is_live(attempt) {
                    tracing::info!("ignoring the late success of {attempt} on {worker}");
                }
                if let Some(job) = st.jobs.get_mut(&attempt.task.job) {
                    job.pending.insert(attempt, counters);
                }
                Event::AttemptSucceeded { attempt }
            }
            AttemptOutcome::Failed { reason } => {
                tracing::warn!("{attempt} failed on {worker}: {reason}");
                Event::AttemptFailed { attempt, reason }
            }
        };
        self.step_locked(&mut st, event);
    }

    fn map_outputs(&self, reduce: AttemptId) -> JtResponse {
        let st = self.lock();
        let live = st.sched.is_live(reduce);
        let outputs = st
            .sched
            .map_outputs(reduce.task.job)
            .unwrap_or_default()
            .into_iter()
            .map(|o| {
                o.and_then(|(attempt, host)| {
                    let h = self.config.host(&host).ok()?;
                    Some(MapOutputLoc {
                        attempt,
                        host,
                        shuffle_addr: h.worker_addr.clone(),
                    })
                })
            })
            .collect();
        JtResponse::MapOutputs { outputs, live }
    }

    fn job_info(&self, st: &State, id: JobId) -> Option<JobInfo> {
        let e = st.jobs.get(&id)?;
        let status = st.sched.job_status(id).unwrap_or_default();
        let mut counters = Counters::default();
        for c in e.accepted.values() {
            counters.merge(c);
        }
        add_cluster_counters(&mut counters, &status);
        let end = e.finished.unwrap_or_else(Instant::now);
        Some(JobInfo {
            id,
            name: e.spec.conf.job.clone(),
            user: e.spec.user.clone(),
            output: e.spec.output.clone(),
            phase: e.phase.clone(),
            first_launch_ms: status.first_launch_ms.map(|t| {
                let submitted_ms = e.submitted.duration_since(self.started).as_millis() as u64;
                t.saturating_sub(submitted_ms)
            }),
            first_started_unix_ms: e.first_started_unix_ms,
            submitted_unix_ms: e.submitted_unix_ms,
            status,
            counters,
            elapsed_ms: end.duration_since(e.submitted).as_millis() as u64,
            input_bytes: e.input_bytes,
        })
    }

    fn workers(&self) -> Vec<WorkerInfo> {
        let st = self.lock();
        let timeout = Duration::from_millis(self.config.worker_timeout_ms);
        st.workers
            .iter()
            .map(|(host, w)| WorkerInfo {
                host: host.clone(),
                rack: self
                    .config
                    .host(host)
                    .map(|h| h.rack.clone())
                    .unwrap_or_default(),
                slots: w.slots,
                running: w.running,
                last_heartbeat_ms: w.last.elapsed().as_millis() as u64,
                live: w.last.elapsed() < timeout,
            })
            .collect()
    }

    async fn handle(self: &Arc<Self>, req: JtRequest) -> JtResponse {
        match req {
            JtRequest::Submit(spec) => match self.submit(*spec).await {
                Ok(job) => JtResponse::Submitted { job },
                Err((kind, message)) => JtResponse::Error { kind, message },
            },
            JtRequest::JobStatus { job } => {
                let st = self.lock();
                match self.job_info(&st, job) {
                    Some(info) => JtResponse::Job(Box::new(info)),
                    None => JtResponse::error(ErrorKind::NotFound, format!("no job {job}")),
                }
            }
            JtRequest::ListJobs => {
                let st = self.lock();
                let ids: Vec<JobId> = st.jobs.keys().copied().collect();
                JtResponse::Jobs(
                    ids.into_iter()
                        .filter_map(|j| self.job_info(&st, j))
                        .collect(),
                )
            }
            JtRequest::KillJob { job } => {
                let mut st = self.lock();
                match st.jobs.get(&job).map(|e| e.phase.clone()) {
                    None => JtResponse::error(ErrorKind::NotFound, format!("no job {job}")),
                    Some(JobPhase::Running) => {
                        self.step_locked(&mut st, Event::KillJob { job });
                        JtResponse::Done
                    }
                    Some(_) => JtResponse::error(
                        ErrorKind::BadRequest,
                        format!("job {job} has already ended"),
                    ),
                }
            }
            JtRequest::Heartbeat {
                worker,
                slots,
                running,
                wait_ms,
            } => self.heartbeat(worker, slots, running, wait_ms).await,
            JtRequest::AttemptDone {
                worker,
                attempt,
                outcome,
            } => {
                self.attempt_done(&worker, attempt, outcome);
                JtResponse::Done
            }
            JtRequest::AttemptStarted { attempt, unix_ms } => {
                let mut st = self.lock();
                if let Some(e) = st.jobs.get_mut(&attempt.task.job) {
                    let first = e.first_started_unix_ms.get_or_insert(unix_ms);
                    *first = (*first).min(unix_ms);
                }
                JtResponse::Done
            }
            JtRequest::MapOutputs { reduce } => self.map_outputs(reduce),
            JtRequest::FetchFailure { reduce, map } => {
                tracing::warn!("{reduce} could not fetch the output of {map}");
                self.step(Event::FetchFailure { reduce, map });
                JtResponse::Done
            }
            JtRequest::ListWorkers => JtResponse::Workers(self.workers()),
        }
    }
}

/// The splits of one file: one per block `(offset, length, hosts)`, with boundaries rounded up
/// to whole records for fixed-length input (a record belongs to the block it starts in).
pub fn block_splits(
    format: &InputFormat,
    file: &InputFile,
    file_len: u64,
    blocks: Vec<(u64, u64, Vec<String>)>,
) -> Vec<(Split, Vec<String>)> {
    let record_bytes = match format {
        InputFormat::FixedLength(n) => (*n).max(1) as u64,
        _ => 1,
    };
    let align = |x: u64| x.div_ceil(record_bytes) * record_bytes;
    blocks
        .into_iter()
        .filter_map(|(offset, len, hosts)| {
            let start = align(offset);
            let end = align(offset + len).min(file_len);
            (end > start).then(|| {
                let split = Split::File {
                    path: file.path.clone(),
                    name: file.name.clone(),
                    start,
                    len: end - start,
                };
                (split, hosts)
            })
        })
        .collect()
}

/// Adds the scheduler's statistics as counters, so they print with the job's others.
fn add_cluster_counters(c: &mut Counters, s: &JobStatus) {
    let rows = [
        ("Launched map attempts", s.launched_maps),
        ("Launched reduce attempts", s.launched_reduces),
        ("Data-local map tasks", s.data_local_maps),
        ("Rack-local map tasks", s.rack_local_maps),
        ("Other map tasks", s.other_local_maps),
        ("Failed map attempts", s.failed_maps),
        ("Failed reduce attempts", s.failed_reduces),
        ("Killed attempts", s.killed_attempts),
        ("Speculative attempts", s.speculative_attempts),
        ("Re-run maps (output lost)", s.rerun_maps),
    ];
    for (name, v) in rows {
        c.incr(CLUSTER_GROUP, name, v);
    }
}

fn forget_launch(st: &mut State, worker: &str, attempt: AttemptId) {
    if let Some(set) = st.launching.get_mut(worker) {
        set.remove(&attempt);
    }
}

fn forget_old_jobs(st: &mut State) {
    while st.jobs.len() > MAX_JOBS_KEPT {
        let Some(oldest_done) = st
            .jobs
            .iter()
            .find(|(_, e)| e.phase != JobPhase::Running)
            .map(|(id, _)| *id)
        else {
            return;
        };
        st.jobs.remove(&oldest_done);
        st.sched.remove_job(oldest_done);
    }
}

struct JtService(Arc<Jobtracker>);

impl Service for JtService {
    type Request = JtRequest;
    type Response = JtResponse;

    async fn call(&self, req: JtRequest) -> JtResponse {
        self.0.handle(req).await
    }

    fn malformed(&self, err: &dfs::Error) -> JtResponse {
        JtResponse::error(ErrorKind::BadRequest, format!("malformed request: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(len: u64) -> InputFile {
        InputFile {
            path: PathBuf::from("/in/f"),
            name: "f".into(),
            len,
        }
    }

    fn ranges(splits: &[(Split, Vec<String>)]) -> Vec<(u64, u64)> {
        splits
            .iter()
            .map(|(s, _)| match s {
                Split::File { start, len, .. } => (*start, *len),
                Split::Rows { .. } => panic!("file splits expected"),
            })
            .collect()
    }

    #[test]
    fn one_split_per_block_with_its_hosts() {
        let blocks = vec![
            (0, 1000, vec!["a".into(), "b".into()]),
            (1000, 1000, vec!["c".into()]),
            (2000, 10, vec![]),
        ];
        let s = block_splits(&InputFormat::Lines, &file(2010), 2010, blocks);
        assert_eq!(ranges(&s), vec![(0, 1000), (1000, 1000), (2000, 10)]);
        assert_eq!(s[0].1, vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn fixed_length_splits_cover_every_record_once() {
        // 100-byte records over 64-byte blocks: boundaries move up to whole records, so
        // every record is in exactly one split and no split starts mid-record.
        let len = 1000;
        let blocks: Vec<_> = (0..len)
            .step_by(64)
            .map(|o| (o, 64.min(len - o), vec![]))
            .collect();
        let s = block_splits(&InputFormat::FixedLength(100), &file(len), len, blocks);
        let r = ranges(&s);
        assert!(
            r.iter().all(|(start, l)| start % 100 == 0 && l % 100 == 0),
            "{r:?}"
        );
        let covered: u64 = r.iter().map(|(_, l)| l).sum();
        assert_eq!(covered, len);
        assert!(r.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0), "{r:?}");
    }
}
