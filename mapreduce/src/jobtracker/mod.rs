//! The jobtracker daemon (`mrjob jobtracker`): accepts jobs, cuts them into one split per dfs
//! block, and runs the [`Scheduler`] state machine. This folder is the I/O shell around it:
//! RPCs in, scheduler actions out (commands queued for workers' heartbeats, commits and job
//! ends carried out in dfs).
//!
//! - `mod.rs` (here): the jobtracker's state and the loop that turns the scheduler's actions
//!   into I/O (launches, kills, commits, job ends).
//! - [`admit`]: accepting a submission: the output check, the splits, the job's record, and
//!   submit tokens that make a repeated submit idempotent.
//! - [`commit`]: task commits and job ends, the commit protocol (G6).
//! - [`recovery`]: a restarted jobtracker resuming from the job records (G6).
//! - [`rpc`]: the RPC service: requests in, replies out.
//! - [`history`]: every attempt of a job as it went (host, times, end, bytes), for the pages.
//! - [`web`]: the read-only web pages (jobs, a job's tasks and attempts, timeline, counters,
//!   skew) and their JSON twins.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dfs::auth::{names, Authority, Gate};
use dfs::client::DfsClient;
use dfs::config::ClusterConfig;
use dfs::listener::{stop_on_signal, ShutdownTrigger};
use dfs::rpc::{serve, ServerLimits};
use tokio::sync::Notify;

use crate::config::{Config, MapReduceConfig};
use crate::counters::Counters;
use crate::diagnosis::{AttemptEnd, AttemptRun, JobEvent, JobHistory};
use crate::error::{Error, Result};
use crate::input::Split;
use crate::job_binary::{binaries_to_remove, used_in, StagedFile, BINARY_DIR};
use crate::job_store::{records_to_prune, JobRecord, JobStore, RecordState, FINISHED_RECORDS_KEPT};
use crate::protocol::{
    unix_ms, ErrorKind, JobInfo, JobPhase, JobSpec, TaskSpec, TaskToken, TaskWork, WorkerCommand,
    CONTROL_FRAME_LIMIT_BYTES,
};
use crate::scheduler::{
    Action, AttemptId, Event, JobId, JobStatus, Locality, Scheduler, SchedulerConfig, TaskId,
    TaskKind, KILLED_BY_USER,
};

use self::commit::attempt_dir;
use self::history::History;
use self::rpc::JtService;

pub mod admit;
pub mod commit;
pub mod history;
pub mod recovery;
pub mod rpc;
pub mod web;

/// How long a task's token is good for: longer than any attempt runs (a task that outlives
/// it can no longer reach the cluster, and fails as any attempt that loses its connections).
const TASK_TOKEN_LIFETIME_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// Directories every user writes into (mode 1777): the parent of users' staging directories
/// (each made by its user, mode 0700), dfs staging (`-files`, `/tmp`).
const SHARED_DIRS: [&str; 2] = [BINARY_DIR, "/tmp"];

/// Period of the scheduler's clock tick.
const TICK_MS: u64 = 100;
/// Period of the check for staged job binaries no job uses.
const BINARY_PRUNE_MS: u64 = 5 * 60 * 1000;
/// Most jobs kept in memory; the oldest finished ones are forgotten beyond this.
const MAX_JOBS_KEPT: usize = 1000;
/// Counter group of the jobtracker's scheduling statistics.
pub const CLUSTER_GROUP: &str = "Cluster Job Counters";

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
    /// Its events and attempts, for `mrjob why` and `mrjob logs`.
    history: JobHistory,
    /// Every attempt launched in this process, with its bytes and error, for the job page.
    attempt_rows: History,
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
            history: JobHistory::default(),
            attempt_rows: History::default(),
        }
    }

    /// A job that ended in an earlier incarnation: known by its final status and history.
    fn ended(spec: JobSpec, info: JobInfo, history: JobHistory) -> JobEntry {
        let mut entry = JobEntry::new(spec, Vec::new(), info.submitted_unix_ms, info.runs);
        entry.history = history;
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
            history: self.history.clone(),
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
    /// The cluster key: checks every caller, signs the tasks' tokens.
    authority: Authority,
    mapreduce: MapReduceConfig,
    dfs: DfsClient,
    store: JobStore,
    state: Mutex<State>,
    wake: Notify,
    started: Instant,
}

impl Jobtracker {
    /// A jobtracker for `config` (not yet serving).
    pub fn new(config: Config) -> Result<Arc<Jobtracker>> {
        let Config {
            cluster: mut config,
            mapreduce,
        } = config;
        // dfs and the workers learn this process as the jobtracker; it issues the tasks'
        // tokens with the cluster key.
        let authority = config.secrets.authority()?;
        config
            .secrets
            .set_credentials(authority.member_credentials(names::JOBTRACKER));
        let sched = Scheduler::new(scheduler_config(&mapreduce));
        let dfs = DfsClient::new(config.clone());
        Ok(Arc::new(Jobtracker {
            store: JobStore::new(dfs.clone()),
            dfs,
            authority,
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
        }))
    }

    /// Serves on the configured address until the process ends, or until SIGTERM/SIGINT,
    /// which it handles by shutting down gracefully and returning `Ok`.
    pub async fn run(config: Config) -> Result<()> {
        let addr = config.cluster.jobtracker_addr.clone();
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| Error::io(format!("binding the jobtracker to {addr}"), e))?;
        let mut limits = ServerLimits::from_config(&config.cluster);
        limits.frame_limit_bytes = CONTROL_FRAME_LIMIT_BYTES;
        let web_addr = config.cluster.jobtracker_web_addr();
        let web_listener = dfs::http::bind("jobtracker", &web_addr).await?;
        let jt = Jobtracker::new(config)?;
        let gate = Gate::Authenticate(jt.authority.clone());
        crate::metrics::jobtracker();
        dfs::metrics::rpc();
        // Calls wait in the listen backlog meanwhile: a submitter or worker sees a jobtracker
        // that does not answer yet, and retries.
        jt.recover().await;
        let shared = jt.clone();
        tokio::spawn(async move { shared.make_shared_dirs().await });
        let ticker = jt.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(TICK_MS));
            loop {
                every.tick().await;
                ticker.step(Event::Tick);
            }
        });
        // Staged binaries are also removed when jobs end; the tick catches those whose grace
        // period ends while no job does.
        let pruner = jt.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(BINARY_PRUNE_MS));
            loop {
                every.tick().await;
                pruner.prune_binaries().await;
            }
        });
        tracing::info!("jobtracker serving on {addr}");
        let stop = ShutdownTrigger::new();
        let web = tokio::spawn(dfs::http::serve(
            web_listener,
            "jobtracker web",
            limits.listener,
            stop.subscribe(),
            web::router(jt.clone()),
        ));
        tracing::info!("jobtracker web pages on http://{web_addr}/");
        let server = tokio::spawn(serve(
            listener,
            limits,
            gate,
            Arc::new(JtService(jt)),
            stop.subscribe(),
        ));
        stop_on_signal(stop, vec![server, web]).await;
        tracing::info!("jobtracker stopped");
        Ok(())
    }

    /// A token for an attempt of `job`: it acts as `user` for this job only, so a task holds
    /// neither the user's key nor the cluster's (Hadoop's delegation tokens).
    fn task_token(&self, user: &str, job: JobId) -> TaskToken {
        let expires = unix_ms().saturating_add(TASK_TOKEN_LIFETIME_MS);
        let (token, password) = self.authority.issue_token(user, &job.to_string(), expires);
        TaskToken {
            token,
            password_hex: password.to_hex(),
        }
    }

    /// A dfs client that acts as `user` for `job` (with a task token), for what the
    /// jobtracker does to a job's output on the user's behalf: creating it, committing it.
    /// The namenode checks the user's permissions on it (G8), and what it creates belongs to
    /// the user, so the job's tasks (the same user) may write their attempt directories in it.
    /// The superuser's jobs use the jobtracker's own client (the same rights, no new
    /// connections).
    fn dfs_as(&self, user: &str, job: JobId) -> Result<DfsClient> {
        self.user_dfs(user, &job.to_string(), TASK_TOKEN_LIFETIME_MS)
    }

    /// A dfs client that acts as `user` with a token for `job` (a job id, or what the
    /// jobtracker does for the user outside a job) good for `lifetime_ms`; the jobtracker's
    /// own client for the superuser.
    fn user_dfs(&self, user: &str, job: &str, lifetime_ms: u64) -> Result<DfsClient> {
        if user == dfs::auth::SUPERUSER {
            return Ok(self.dfs.clone());
        }
        let expires = unix_ms().saturating_add(lifetime_ms);
        let (token, password) = self.authority.issue_token(user, job, expires);
        let token = TaskToken {
            token,
            password_hex: password.to_hex(),
        };
        let mut config = self.config.clone();
        config.secrets.set_credentials(token.credentials()?);
        Ok(DfsClient::new(config))
    }

    /// Creates the directories every user writes into, world-writable with the sticky bit
    /// (mode 1777, like `/tmp`): staged job binaries and dfs staging (`-files`, `/tmp`).
    /// Retried in the background until dfs answers; job records stay the jobtracker's own.
    async fn make_shared_dirs(&self) {
        for i in 0..60u32 {
            let r = async {
                for dir in SHARED_DIRS {
                    self.dfs.mkdirs(dir).await?;
                    self.dfs.set_permission(dir, 0o1777).await?;
                }
                Ok::<(), dfs::Error>(())
            }
            .await;
            match r {
                Ok(()) => return,
                Err(e) => tracing::warn!("creating {SHARED_DIRS:?} (try {i}): {e}"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        dfs::lock::lock(&self.state)
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
        // Notes first: an attempt the scheduler failed and then killed ended as a failure.
        let now = unix_ms();
        for (job, event) in st.sched.take_notes() {
            let Some(entry) = st.jobs.get_mut(&job) else {
                continue;
            };
            if let JobEvent::AttemptFailed { attempt, .. } = &event {
                entry.history.ended(*attempt, AttemptEnd::Failed, now);
            }
            entry.history.push_event(now, event);
        }
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
                if let Some(job) = st.jobs.get_mut(&attempt.task.job) {
                    job.history.ended(attempt, AttemptEnd::Killed, unix_ms());
                    job.attempt_rows.killed(attempt, unix_ms());
                }
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
            Action::JobFailed { job, reason } if reason == KILLED_BY_USER => {
                self.end_job(st, job, Some(JobPhase::Killed))
            }
            Action::JobFailed { job, reason } => {
                self.end_job(st, job, Some(JobPhase::Failed(reason)))
            }
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
        let Some(job) = st.jobs.get_mut(&attempt.task.job) else {
            return;
        };
        job.history.launched(AttemptRun {
            attempt,
            host: worker.clone(),
            locality,
            launched_unix_ms: unix_ms(),
            started_unix_ms: None,
            ended_unix_ms: None,
            end: AttemptEnd::Running,
        });
        job.attempt_rows
            .launched(attempt, &worker, locality, unix_ms());
        crate::metrics::jobtracker().tasks_launched.inc();
        let job = &*job;
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
            token: self.task_token(&job.spec.user, attempt.task.job),
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
        // As the job's user, whose tasks write in it (see `dfs_as`).
        let user_dfs = self.dfs_as(&job.spec.user, attempt.task.job);
        let jt = self.clone();
        tokio::spawn(async move {
            let made = match user_dfs {
                Ok(dfs) => dfs.mkdirs(&output_dir).await.map_err(Error::from),
                Err(e) => Err(e),
            };
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
            name: e.spec.conf.display_name().to_owned(),
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

    /// Saves a record; a failure is logged, since the job's in-memory state goes on anyway
    /// and the next save (or the next restart) repairs it.
    async fn save_logged(&self, record: &JobRecord) {
        if let Err(e) = self.store.save(record).await {
            tracing::error!("saving the record of job {}: {e}", record.id);
        }
    }

    /// Removes the staged job binaries that no running or recently ended job uses and that
    /// are past their grace period, keeping each user's newest (the rule:
    /// [`binaries_to_remove`], per staging directory). Files straight in [`BINARY_DIR`] are
    /// of the shared layout before per-user staging, pruned by the same rule. Failures are
    /// logged: the next job end or tick tries again.
    async fn prune_binaries(&self) {
        let grace_ms = self.mapreduce.staged_binary_grace_ms;
        let grace = Duration::from_millis(grace_ms);
        let used: HashSet<String> = self
            .lock()
            .jobs
            .values()
            .filter(|e| {
                e.phase == JobPhase::Running || e.finished.is_some_and(|t| t.elapsed() < grace)
            })
            .map(|e| e.spec.binary.dfs_path.clone())
            .collect();
        let Some(top) = self.list_staged(BINARY_DIR).await else {
            return;
        };
        let mut dirs = vec![(BINARY_DIR.to_owned(), Vec::new())];
        for entry in top {
            if entry.kind == dfs::protocol::FileKind::Dir {
                dirs.push((entry.path, Vec::new()));
            } else {
                dirs[0].1.push(entry);
            }
        }
        for (dir, listing) in &mut dirs[1..] {
            *listing = self.list_staged(dir).await.unwrap_or_default();
        }
        for (dir, listing) in dirs {
            let staged: Vec<StagedFile> = listing
                .iter()
                .map(|s| StagedFile {
                    name: s.path.rsplit('/').next().unwrap_or_default().to_owned(),
                    mtime_ms: s.mtime_ms,
                })
                .collect();
            let keep = used_in(&dir, &used);
            for name in binaries_to_remove(&staged, &keep, unix_ms(), grace_ms) {
                let path = format!("{dir}/{name}");
                match self.dfs.delete(&path, false).await {
                    Ok(_) => tracing::info!("removed the unused job binary {path}"),
                    Err(e) => tracing::warn!("removing the unused job binary {path}: {e}"),
                }
            }
        }
    }

    /// The entries of a staging directory; `None` (logged unless it does not exist) when it
    /// cannot be listed.
    async fn list_staged(&self, dir: &str) -> Option<Vec<dfs::protocol::FileStatus>> {
        match self.dfs.list(dir).await {
            Ok(listing) => Some(listing),
            Err(e) if e.kind() == dfs::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!("listing the staged job binaries in {dir}: {e}");
                None
            }
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
