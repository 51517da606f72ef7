//! The jobtracker daemon (`mrjob jobtracker`): accepts jobs, cuts them into one split per dfs
//! block, and runs the [`Scheduler`] state machine. This file is the I/O shell around it:
//! RPCs in, scheduler actions out (commands queued for workers' heartbeats, commits and job
//! ends carried out in dfs).
//!
//! Commit protocol (G6): an attempt writes its part file under `OUT/_temporary/ATTEMPT/`,
//! a directory the jobtracker creates before launching it. When the scheduler picks an
//! attempt to commit (at most one per task), the [`Committer`] commits it as the task's output.
//! When every task is done the committer's job commit moves the files into `OUT`, removes
//! `OUT/_temporary` and writes `OUT/_SUCCESS`; when a job fails the jobtracker removes `OUT`.
//! A stale attempt (timed out, on a lost worker, a lost speculative race) is never committed,
//! and once its directory is gone it cannot even write a file there, because task output is
//! created with `require_parent`.
//!
//! Restarts (G6): every job has a record in dfs ([`crate::job_store`]), written before its
//! submission is acknowledged and rewritten when it ends. A jobtracker starts by reading the
//! records (before it answers any call): finished jobs are remembered for status calls, and
//! every job that was running is run again from scratch under the same id. Nothing a previous
//! incarnation started can be committed by this one: the output directory is emptied (its
//! committed part files and `_temporary` go), and the new run numbers its attempts above every
//! number an earlier run used, so an attempt still running from before is unknown to the
//! scheduler: workers listing it are told to kill it, and its late reports are refused.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dfs::client::DfsClient;
use dfs::config::ClusterConfig;
use dfs::rpc::{serve, ServerLimits, Service};
use tokio::sync::Notify;

use crate::committer::{Committer, COMMITTED_DIR, TEMPORARY_DIR};
use crate::config::{Config, MapReduceConfig};
use crate::counters::Counters;
use crate::dfs_fs::{dfs_error, list_input_files, on_blocking_thread};
use crate::error::{Error, Result};
use crate::fs::{InputFile, LocalFs};
use crate::input::{compute_splits, InputFormat, Split};
use crate::job_store::{
    first_attempt, next_job_id, plan_recovery, records_to_prune, JobRecord, JobStore, RecordState,
    Recovery, FINISHED_RECORDS_KEPT, RESTART_REASON,
};
use crate::protocol::{
    unix_ms, AttemptOutcome, ErrorKind, JobInfo, JobPhase, JobSpec, JtRequest, JtResponse,
    MapOutputLoc, TaskSpec, TaskWork, WorkerCommand, WorkerInfo, CONTROL_FRAME_LIMIT_BYTES,
};
use crate::scheduler::{
    Action, AttemptId, Event, JobId, JobState, JobStatus, Locality, Scheduler, SchedulerConfig,
    TaskId, TaskKind,
};

/// Period of the scheduler's clock tick.
const TICK_MS: u64 = 100;
/// Most jobs kept in memory; the oldest finished ones are forgotten beyond this.
const MAX_JOBS_KEPT: usize = 1000;
/// Counter group of the jobtracker's scheduling statistics.
pub const CLUSTER_GROUP: &str = "Cluster Job Counters";

/// The dfs directory an attempt writes its part file into.
pub fn attempt_dir(output: &str, attempt: AttemptId) -> String {
    format!("{}/{TEMPORARY_DIR}/{attempt}", output.trim_end_matches('/'))
}

/// Scheduler settings from the cluster config.
pub fn scheduler_config(config: &MapReduceConfig) -> SchedulerConfig {
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
    /// Runs started (1, plus one per resume after a restart); persisted in its record.
    runs: u32,
    /// Once ended: what status calls answer (also what its record holds).
    ended: Option<Box<JobInfo>>,
}

impl JobEntry {
    /// A job of `spec` starting run `runs`.
    fn new(spec: JobSpec, splits: Vec<Split>, submitted_unix_ms: u64, runs: u32) -> JobEntry {
        // A resumed job's clock keeps counting from its submission, as far as this
        // process's monotonic clock can go back.
        let age = Duration::from_millis(unix_ms().saturating_sub(submitted_unix_ms));
        let now = Instant::now();
        JobEntry {
            input_bytes: splits.iter().map(Split::size).sum(),
            spec: Arc::new(spec),
            splits,
            phase: JobPhase::Running,
            submitted: now.checked_sub(age).unwrap_or(now),
            finished: None,
            pending: HashMap::new(),
            accepted: BTreeMap::new(),
            first_started_unix_ms: None,
            submitted_unix_ms,
            runs,
            ended: None,
        }
    }

    /// A job that ended in an earlier incarnation: known only by its final status.
    fn ended(spec: JobSpec, info: JobInfo) -> JobEntry {
        let mut entry = JobEntry::new(spec, Vec::new(), info.submitted_unix_ms, info.runs);
        entry.phase = info.phase.clone();
        entry.input_bytes = info.input_bytes;
        entry.finished = Some(Instant::now());
        entry.ended = Some(Box::new(info));
        entry
    }

    fn record(&self, id: JobId, state: RecordState) -> JobRecord {
        JobRecord {
            id,
            spec: (*self.spec).clone(),
            submitted_unix_ms: self.submitted_unix_ms,
            runs: self.runs,
            state,
        }
    }
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
    /// Finished jobs that have a record in dfs, so the oldest records can be pruned.
    finished_records: BTreeSet<JobId>,
    /// Submissions being accepted, by token, with where their outcome will appear.
    submissions: HashMap<String, tokio::sync::watch::Receiver<Option<Submitted>>>,
}

/// What a submission comes to: the job's id, or why it was refused.
type Submitted = Result<JobId, (ErrorKind, String)>;

/// The jobtracker service.
pub struct Jobtracker {
    config: ClusterConfig,
    mapreduce: MapReduceConfig,
    dfs: DfsClient,
    store: JobStore,
    state: Mutex<State>,
    wake: Notify,
    started: Instant,
}

impl Jobtracker {
    /// A jobtracker for `config` (not yet serving).
    pub fn new(config: Config) -> Arc<Jobtracker> {
        let Config {
            cluster: config,
            mapreduce,
        } = config;
        let sched = Scheduler::new(scheduler_config(&mapreduce));
        let dfs = DfsClient::new(config.clone());
        Arc::new(Jobtracker {
            store: JobStore::new(dfs.clone()),
            dfs,
            config,
            mapreduce,
            state: Mutex::new(State {
                sched,
                jobs: BTreeMap::new(),
                next_job: 1,
                outbox: HashMap::new(),
                workers: BTreeMap::new(),
                outputs: HashSet::new(),
                launching: HashMap::new(),
                finished_records: BTreeSet::new(),
                submissions: HashMap::new(),
            }),
            wake: Notify::new(),
            started: Instant::now(),
        })
    }

    /// Serves on the configured address until the process ends.
    pub async fn run(config: Config) -> Result<()> {
        let addr = config.cluster.jobtracker_addr.clone();
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| Error::io(format!("binding the jobtracker to {addr}"), e))?;
        let mut limits = ServerLimits::from_config(&config.cluster);
        limits.frame_limit_bytes = CONTROL_FRAME_LIMIT_BYTES;
        let jt = Jobtracker::new(config);
        // Calls wait in the listen backlog meanwhile: a submitter or worker sees a jobtracker
        // that does not answer yet, and retries.
        jt.recover().await;
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

    /// Commits an attempt's output as its task's.
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
        let (out, dir) = (
            PathBuf::from(output),
            PathBuf::from(attempt_dir(output, attempt)),
        );
        let task = attempt.task.to_string();
        on_blocking_thread(self.dfs.clone(), move |fs| {
            Committer::new(fs, &out).commit_task(&task, &dir)
        })
        .await
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
                    Err(e) => JobPhase::Failed(format!("job commit failed: {e}")),
                },
                Some(reason) => JobPhase::Failed(reason),
            };
            jt.finish_job(job, output, phase).await;
        });
    }

    /// Records how a job ended, removes a failed job's output, and only then shows the end
    /// to status calls, so that what a client saw survives a restart.
    async fn finish_job(self: &Arc<Self>, job: JobId, output: String, phase: JobPhase) {
        let record = {
            let st = self.lock();
            let Some(mut info) = self.job_info(&st, job) else {
                return;
            };
            let Some(entry) = st.jobs.get(&job) else {
                return;
            };
            info.phase = phase.clone();
            info.status.state = match &phase {
                JobPhase::Failed(reason) => JobState::Failed(reason.clone()),
                _ => JobState::Succeeded,
            };
            entry.record(
                job,
                RecordState::Ended {
                    info: Box::new(info),
                    output_removed: false,
                },
            )
        };
        self.save_logged(&record).await;
        let RecordState::Ended { info, .. } = record.state.clone() else {
            return;
        };
        if let JobPhase::Failed(_) = phase {
            // A failed job's output is removed after its record says so: a restart in between
            // finishes the removal instead of resuming the job.
            self.remove_output(&output).await;
            let done = JobRecord {
                state: RecordState::Ended {
                    info: info.clone(),
                    output_removed: true,
                },
                ..record
            };
            self.save_logged(&done).await;
        }
        tracing::info!("job {job} ended: {phase:?}");
        {
            let mut st = self.lock();
            st.outputs.remove(&output);
            if let Some(e) = st.jobs.get_mut(&job) {
                e.phase = phase;
                e.finished = Some(Instant::now());
                e.ended = Some(info);
            }
            st.finished_records.insert(job);
            forget_old_jobs(&mut st);
        }
        self.prune_records().await;
    }

    /// Commits the job (files into `OUT`, `OUT/_SUCCESS`), retrying through short outages.
    async fn write_success(&self, output: &str) -> Result<()> {
        let out = output.trim_end_matches('/');
        let mut last = None;
        for i in 0..5u32 {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(200 << i)).await;
            }
            let dir = PathBuf::from(out);
            let r = on_blocking_thread(self.dfs.clone(), move |fs| {
                Committer::new(fs, &dir).commit_job(true)
            })
            .await;
            match r {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("five attempts"))
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

    /// Accepts a submission once per token: a submit sent again (its answer was lost, or
    /// outlived the caller's timeout) gets the job the first one created, waiting for it if
    /// the first is still being accepted. Acceptance runs in its own task, so a caller that
    /// goes away cannot cut it off halfway.
    async fn submit(self: &Arc<Self>, spec: JobSpec) -> Submitted {
        let token = spec.submission.clone();
        if token.is_empty() {
            return self.accept(spec).await;
        }
        let mut rx = {
            let mut st = self.lock();
            let known = st.jobs.iter().find(|(_, e)| e.spec.submission == token);
            if let Some((&id, _)) = known {
                tracing::info!("submission {token} repeated: it is job {id}");
                return Ok(id);
            }
            match st.submissions.get(&token) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = tokio::sync::watch::channel(None);
                    st.submissions.insert(token.clone(), rx.clone());
                    let jt = self.clone();
                    tokio::spawn(async move {
                        let result = jt.accept(spec).await;
                        // An accepted job is in `jobs` by now, where a later repeat finds it.
                        jt.lock().submissions.remove(&token);
                        let _ = tx.send(Some(result));
                    });
                    rx
                }
            }
        };
        let outcome = match rx.wait_for(Option::is_some).await {
            Ok(result) => result
                .clone()
                .unwrap_or_else(|| unreachable!("waited for Some")),
            Err(_) => Err((
                ErrorKind::BadRequest,
                "the jobtracker dropped the submission while accepting it".into(),
            )),
        };
        outcome
    }

    /// Checks and records a new job, and starts scheduling it.
    async fn accept(self: &Arc<Self>, spec: JobSpec) -> Submitted {
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
        let mut entry = JobEntry::new(
            JobSpec {
                output: output.clone(),
                ..spec
            },
            splits,
            received_unix_ms,
            1,
        );
        entry.submitted = received;
        let id = {
            let mut st = self.lock();
            let id = st.next_job;
            st.next_job += 1;
            id
        };
        // The record is durable before the job is acknowledged, so a restarted jobtracker
        // knows every job a submitter may be waiting for. It goes before the output directory,
        // so that the directory never exists without a job to answer for it: a restart between
        // the two resumes the job, which creates the directory.
        let saved = self
            .store
            .create(&entry.record(id, RecordState::Running))
            .await;
        let made = match saved {
            Ok(()) => self
                .dfs
                .mkdirs(&format!("{output}/{COMMITTED_DIR}"))
                .await
                .map_err(|e| dfs_error("creating the output directory", e)),
            Err(e) => Err(e),
        };
        if let Err(e) = made {
            // Part of the record may have landed: take it away, or a restart would resume a
            // job its submitter was told had failed.
            if let Err(e) = self.store.remove(id).await {
                tracing::error!("removing the record of refused job {id}: {e}");
            }
            self.remove_output(&output).await;
            self.lock().outputs.remove(&output);
            return Err(dfs_err(e));
        }
        let reduces = entry.spec.reduces;
        tracing::info!(
            "job {id} ({}) submitted: {} maps, {reduces} reduces, output dfs://{output}",
            entry.spec.conf.job,
            entry.splits.len()
        );
        let mut st = self.lock();
        st.jobs.insert(id, entry);
        self.step_locked(
            &mut st,
            Event::SubmitJob {
                job: id,
                map_hosts: hosts,
                reduces,
                first_attempt: first_attempt(1),
            },
        );
        Ok(id)
    }

    /// Reads the job records and settles every job they name (see the module docs). Reading
    /// is retried until dfs answers: a jobtracker without its records must not accept jobs,
    /// since it could hand out an id that is taken or leave a job nobody resumes.
    async fn recover(self: &Arc<Self>) {
        let loaded = loop {
            match self.store.load().await {
                Ok(loaded) => break loaded,
                Err(e) => {
                    tracing::warn!("reading the job records (retrying): {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        for line in &loaded.unreadable {
            tracing::error!("unreadable job record (its id stays taken): {line}");
        }
        self.lock().next_job = next_job_id(&loaded.ids);
        for record in loaded.records.into_values() {
            self.recover_job(record).await;
        }
        self.prune_records().await;
        let st = self.lock();
        let running = st.jobs.values().filter(|e| e.phase == JobPhase::Running);
        tracing::info!(
            "recovered {} jobs ({} resumed); next job id {}",
            st.jobs.len(),
            running.count(),
            st.next_job
        );
    }

    async fn recover_job(self: &Arc<Self>, mut record: JobRecord) {
        let success_exists = match record.state {
            RecordState::Running => {
                let success = format!("{}/_SUCCESS", record.spec.output);
                self.exists_retrying(&success).await
            }
            RecordState::Ended { .. } => false,
        };
        match plan_recovery(&record, success_exists) {
            Recovery::Keep => self.remember_ended(record),
            Recovery::RemoveOutput => {
                self.remove_output(&record.spec.output).await;
                if let RecordState::Ended { output_removed, .. } = &mut record.state {
                    *output_removed = true;
                }
                self.save_logged(&record).await;
                self.remember_ended(record);
            }
            Recovery::Succeeded => {
                tracing::info!(
                    "job {} had written _SUCCESS before the restart: succeeded",
                    record.id
                );
                let info = ended_info(&record, JobPhase::Succeeded);
                record.state = RecordState::Ended {
                    info,
                    output_removed: false,
                };
                self.save_logged(&record).await;
                self.remember_ended(record);
            }
            Recovery::Fail(reason) => self.fail_at_recovery(record, reason).await,
            Recovery::Resume => self.resume(record).await,
        }
    }

    /// Runs a job the previous incarnation was running again from scratch, under its id.
    async fn resume(self: &Arc<Self>, mut record: JobRecord) {
        let id = record.id;
        record.runs += 1;
        // The run's number is durable before any of its attempts exists, so a later restart
        // numbers its attempts above every one of this run's.
        if let Err(e) = self.store.save(&record).await {
            record.runs -= 1;
            let reason = format!("{RESTART_REASON}; recording its new run failed: {e}");
            return self.fail_at_recovery(record, reason).await;
        }
        let spec = &record.spec;
        let (splits, hosts) = match self.splits_of(&spec.input_format, &spec.inputs).await {
            Ok(s) => s,
            Err(e) => {
                let reason = format!("{RESTART_REASON}; its input cannot be read again: {e}");
                return self.fail_at_recovery(record, reason).await;
            }
        };
        // Nothing an earlier run wrote may stay in the output or be committed by this run.
        if let Err(e) = self.clear_output(&spec.output).await {
            let reason = format!("{RESTART_REASON}; clearing its output failed: {e}");
            return self.fail_at_recovery(record, reason).await;
        }
        tracing::info!(
            "job {id} ({}) resumed from scratch as run {}: {} maps, {} reduces",
            spec.conf.job,
            record.runs,
            splits.len(),
            spec.reduces
        );
        let entry = JobEntry::new(
            record.spec.clone(),
            splits,
            record.submitted_unix_ms,
            record.runs,
        );
        let mut st = self.lock();
        st.outputs.insert(record.spec.output.clone());
        st.jobs.insert(id, entry);
        self.step_locked(
            &mut st,
            Event::SubmitJob {
                job: id,
                map_hosts: hosts,
                reduces: record.spec.reduces,
                first_attempt: first_attempt(record.runs),
            },
        );
    }

    /// Fails a job found running at startup: record first, then the output goes.
    async fn fail_at_recovery(self: &Arc<Self>, mut record: JobRecord, reason: String) {
        tracing::warn!("job {} failed: {reason}", record.id);
        let info = ended_info(&record, JobPhase::Failed(reason));
        record.state = RecordState::Ended {
            info,
            output_removed: false,
        };
        self.save_logged(&record).await;
        self.remove_output(&record.spec.output).await;
        if let RecordState::Ended { output_removed, .. } = &mut record.state {
            *output_removed = true;
        }
        self.save_logged(&record).await;
        self.remember_ended(record);
    }

    /// Adds an ended job from its record to the jobs that status calls know.
    fn remember_ended(&self, record: JobRecord) {
        let RecordState::Ended { info, .. } = record.state else {
            return;
        };
        let mut st = self.lock();
        st.finished_records.insert(record.id);
        st.jobs
            .insert(record.id, JobEntry::ended(record.spec, *info));
    }

    /// Saves a record; a failure is logged, since the job's in-memory state goes on anyway
    /// and the next save (or the next restart) repairs it.
    async fn save_logged(&self, record: &JobRecord) {
        if let Err(e) = self.store.save(record).await {
            tracing::error!("saving the record of job {}: {e}", record.id);
        }
    }

    /// Deletes the records of the oldest finished jobs beyond [`FINISHED_RECORDS_KEPT`].
    async fn prune_records(&self) {
        let prune = records_to_prune(&self.lock().finished_records, FINISHED_RECORDS_KEPT);
        for id in prune {
            match self.store.remove(id).await {
                Ok(()) => {
                    self.lock().finished_records.remove(&id);
                }
                Err(e) => tracing::warn!("pruning the record of job {id}: {e}"),
            }
        }
    }

    /// Whether `path` exists, asking dfs until it answers: a wrong "no" here would re-run a
    /// job whose complete output is already published.
    async fn exists_retrying(&self, path: &str) -> bool {
        loop {
            match self.dfs.exists(path).await {
                Ok(exists) => return exists,
                Err(e) => tracing::warn!("checking dfs://{path} (retrying): {e}"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Removes the output directory and creates `OUT/_temporary/committed` afresh.
    async fn clear_output(&self, output: &str) -> Result<()> {
        let mut tries = 0u32;
        loop {
            let r = async {
                self.dfs.delete(output, true).await?;
                self.dfs.mkdirs(&format!("{output}/{COMMITTED_DIR}")).await
            }
            .await;
            match r {
                Ok(()) => return Ok(()),
                Err(e) if tries >= 4 => {
                    return Err(dfs_error(format_args!("clearing dfs://{output}"), e))
                }
                Err(e) => tracing::warn!("clearing dfs://{output} (try {tries}): {e}"),
            }
            tries += 1;
            tokio::time::sleep(Duration::from_millis(200 << tries)).await;
        }
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
                // A stale attempt (killed, superseded, or from before a restart: unknown to this
                // scheduler) is refused there; its counters are not kept.
                if !st.sched.is_live(attempt) {
                    tracing::info!("ignoring the late success of {attempt} on {worker}");
                } else if let Some(job) = st.jobs.get_mut(&attempt.task.job) {
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
        if let Some(info) = &e.ended {
            return Some((**info).clone());
        }
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
            runs: e.runs,
        })
    }

    fn workers(&self) -> Vec<WorkerInfo> {
        let st = self.lock();
        let timeout = Duration::from_millis(self.mapreduce.worker_timeout_ms);
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
                let live = st.sched.is_live(attempt);
                if let Some(e) = st.jobs.get_mut(&attempt.task.job).filter(|_| live) {
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

/// The final status of a job that ended while a jobtracker recovered it: no counters (the
/// attempts that made them belonged to the dead incarnation).
fn ended_info(record: &JobRecord, phase: JobPhase) -> Box<JobInfo> {
    let state = match &phase {
        JobPhase::Failed(reason) => JobState::Failed(reason.clone()),
        _ => JobState::Succeeded,
    };
    Box::new(JobInfo {
        id: record.id,
        name: record.spec.conf.job.clone(),
        user: record.spec.user.clone(),
        output: record.spec.output.clone(),
        phase,
        status: JobStatus {
            state,
            ..JobStatus::default()
        },
        counters: Counters::default(),
        elapsed_ms: unix_ms().saturating_sub(record.submitted_unix_ms),
        first_launch_ms: None,
        first_started_unix_ms: None,
        submitted_unix_ms: record.submitted_unix_ms,
        input_bytes: 0,
        runs: record.runs,
    })
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
