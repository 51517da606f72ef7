//! The worker daemon (`mrjob worker --host H`), one per host beside its datanode: heartbeats
//! to the jobtracker (a long poll that returns commands), runs each attempt as a child
//! process of the job's binary ([`crate::task_process`]), serves its map outputs
//! ([`crate::shuffle`]) and the attempts' kept logs ([`crate::task_log`]), caches job
//! binaries by content hash, and deletes a job's files when the job ends (its logs stay
//! until pruned by age or total size).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use dfs::auth::{names, Credentials, Gate};
use dfs::client::DfsClient;
use dfs::config::ClusterConfig;
use dfs::listener::{stop_on_signal, Limits, ShutdownTrigger};

use crate::config::{Config, MapReduceConfig};
use crate::error::{dfs_error, Error, Result};
use crate::job_binary::is_sha256;
use crate::protocol::{
    call, unix_ms, AttemptOutcome, BinaryRef, JtRequest, JtResponse, LogStream, TaskSpec,
    TaskToken, TaskWork, WorkerCommand,
};
use crate::scheduler::{AttemptId, TaskKind};
use crate::shuffle::attempt_local_dir;
use crate::task_env::task_environment;
use crate::task_log;
use crate::task_process::{files, read_file, read_report, write_spec, ChildSpec, TASK_ARG};

/// Lines of a failed attempt's stderr quoted in its failure reason.
const STDERR_TAIL_LINES: usize = 3;
/// Period of the pruning of kept task logs.
const LOG_PRUNE_MS: u64 = 60_000;

struct Running {
    dir: PathBuf,
    kill: Option<oneshot::Sender<()>>,
}

/// One worker.
pub struct Worker {
    config: ClusterConfig,
    /// This worker's own credentials (member `worker:HOST`).
    credentials: Credentials,
    mapreduce: MapReduceConfig,
    host: String,
    work_dir: PathBuf,
    slots: u32,
    running: Mutex<HashMap<AttemptId, Running>>,
    /// One download at a time per binary.
    downloads: tokio::sync::Mutex<()>,
}

/// Makes the worker's directories. Attempts of a previous run of this worker are dead (the
/// jobtracker re-runs them), so their files go; their logs stay (`mrjob logs` still shows
/// them) until pruned.
fn prepare_work_dir(work_dir: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(work_dir.join("jobs"));
    for d in [
        work_dir.join("jobs"),
        work_dir.join("bin"),
        work_dir.join(task_log::LOGS_DIR),
    ] {
        std::fs::create_dir_all(&d)
            .map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
    }
    Ok(())
}

impl Worker {
    /// Runs the worker of `host` until the process ends, or until SIGTERM/SIGINT, which it
    /// handles by shutting down gracefully and returning `Ok`.
    pub async fn run(config: Config, host: String) -> Result<()> {
        let Config {
            cluster: mut config,
            mapreduce,
        } = config;
        // The jobtracker and dfs learn this process as `host`'s worker.
        let authority = config
            .secrets
            .authority()
            .map_err(|e| Error::BadSetting(e.to_string()))?;
        let credentials = authority.member_credentials(&names::worker(&host));
        config.secrets.set_credentials(credentials.clone());
        let h = config
            .host(&host)
            .map_err(|e| Error::BadSetting(e.to_string()))?
            .clone();
        let work_dir = h.work_dir.clone();
        prepare_work_dir(&work_dir)?;
        let listener = tokio::net::TcpListener::bind(&h.worker_addr)
            .await
            .map_err(|e| {
                Error::io(
                    format!("binding the shuffle server to {}", h.worker_addr),
                    e,
                )
            })?;
        let stop = ShutdownTrigger::new();
        crate::metrics::worker();
        // The worker's web port has /metrics only: its tasks are on the jobtracker's pages.
        let web = dfs::http::start(
            "worker",
            &h.worker_web_addr(),
            Limits::from_config(&config),
            stop.subscribe(),
            axum::Router::new(),
        )
        .await?;
        let shuffle = tokio::spawn(crate::shuffle::server::serve(
            listener,
            work_dir.clone(),
            Limits::from_config(&config),
            Gate::Authenticate(authority),
            stop.subscribe(),
        ));
        let slots = match h.worker_slots {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()) as u32,
            n => n,
        };
        let w = Arc::new(Worker {
            credentials,
            config,
            mapreduce,
            host,
            work_dir,
            slots,
            running: Mutex::new(HashMap::new()),
            downloads: tokio::sync::Mutex::new(()),
        });
        tracing::info!(
            "worker {} serving map outputs on {} with {slots} slots",
            w.host,
            h.worker_addr
        );
        tokio::spawn(w.clone().prune_logs_loop());
        // Fetches in hand are finished before the worker goes; its running attempts end with
        // it (their child processes are killed on drop) and the jobtracker re-runs them.
        tokio::select! {
            () = w.heartbeat_loop() => {}
            () = stop_on_signal(stop, vec![shuffle, web]) => tracing::info!("worker stopped"),
        }
        Ok(())
    }

    /// Prunes the kept task logs now and then (see [`task_log::prune`]).
    async fn prune_logs_loop(self: Arc<Self>) {
        let mut every = tokio::time::interval(Duration::from_millis(LOG_PRUNE_MS));
        loop {
            every.tick().await;
            let (dir, config) = (self.work_dir.clone(), self.mapreduce.clone());
            let pruned = tokio::task::spawn_blocking(move || {
                task_log::prune(
                    &dir,
                    unix_ms(),
                    config.task_log_max_age_ms,
                    config.task_log_max_total_bytes,
                )
            })
            .await
            .unwrap_or(0);
            if pruned > 0 {
                tracing::info!("pruned the logs of {pruned} attempts");
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<AttemptId, Running>> {
        dfs::lock::lock(&self.running)
    }

    async fn heartbeat_loop(self: Arc<Self>) {
        let wait_ms = self.mapreduce.worker_heartbeat_ms;
        let timeout = Duration::from_millis(wait_ms + self.config.rpc_timeout_ms);
        let mut reported_down = false;
        loop {
            // Attempts being killed are no longer listed: the jobtracker already let them go.
            let dirs: Vec<(AttemptId, PathBuf)> = self
                .lock()
                .iter()
                .filter(|(_, r)| r.kill.is_some())
                .map(|(a, r)| (*a, r.dir.clone()))
                .collect();
            let mut running: Vec<(AttemptId, f32)> = Vec::with_capacity(dirs.len());
            let mut statuses = Vec::new();
            for (a, d) in &dirs {
                let (progress, status) = read_report(d);
                running.push((*a, progress));
                statuses.extend(status.map(|s| (*a, s)));
            }
            crate::metrics::worker()
                .tasks_running
                .set(running.len() as i64);
            let req = JtRequest::Heartbeat {
                worker: self.host.clone(),
                slots: self.slots,
                running,
                statuses,
                wait_ms,
            };
            let jt = &self.config.jobtracker_addr;
            match call::<_, JtResponse>(jt, &self.credentials, &req, timeout).await {
                Ok(JtResponse::Commands(cmds)) => {
                    reported_down = false;
                    for cmd in cmds {
                        self.clone().command(cmd);
                    }
                }
                Ok(other) => {
                    tracing::error!("jobtracker refused the heartbeat: {other:?}");
                    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
                }
                Err(e) => {
                    if !reported_down {
                        tracing::warn!("heartbeat failed (retrying): {e}");
                        reported_down = true;
                    }
                    tokio::time::sleep(Duration::from_millis(wait_ms.min(500))).await;
                }
            }
        }
    }

    fn command(self: Arc<Self>, cmd: WorkerCommand) {
        match cmd {
            WorkerCommand::Launch(spec) => {
                let attempt = spec.attempt;
                let dir = attempt_local_dir(&self.work_dir, attempt);
                let (tx, rx) = oneshot::channel();
                self.lock().insert(
                    attempt,
                    Running {
                        dir: dir.clone(),
                        kill: Some(tx),
                    },
                );
                crate::metrics::worker().tasks_started.inc();
                tokio::spawn(async move { self.run_attempt(*spec, dir, rx).await });
            }
            WorkerCommand::Kill { attempt } => self.kill(|a| *a == attempt),
            WorkerCommand::Cleanup { job } => {
                self.kill(|a| a.task.job == job);
                let dir = self.work_dir.join("jobs").join(format!("job_{job:04}"));
                tokio::spawn(async move {
                    // Give killed children a moment to exit before their files go.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let _ = tokio::fs::remove_dir_all(&dir).await;
                    tracing::info!("cleaned up job {job}");
                });
            }
        }
    }

    fn kill(&self, which: impl Fn(&AttemptId) -> bool) {
        for (a, r) in self.lock().iter_mut().filter(|(a, _)| which(a)) {
            if let Some(tx) = r.kill.take() {
                tracing::info!("killing {a}");
                let _ = tx.send(());
            }
        }
    }

    async fn run_attempt(
        self: Arc<Self>,
        spec: TaskSpec,
        dir: PathBuf,
        kill: oneshot::Receiver<()>,
    ) {
        let attempt = spec.attempt;
        let keep_output = matches!(spec.work, TaskWork::Map { .. }) && spec.job.reduces > 0;
        let outcome = self.execute(spec, &dir, kill).await;
        if let Some(outcome) = outcome {
            self.report(attempt, outcome).await;
        }
        self.lock().remove(&attempt);
        if !keep_output || attempt.task.kind == TaskKind::Reduce {
            let _ = tokio::fs::remove_dir_all(&dir).await;
        }
    }

    /// Runs the child; `None` when it was killed (the jobtracker already knows).
    async fn execute(
        self: &Arc<Self>,
        spec: TaskSpec,
        dir: &Path,
        mut kill: oneshot::Receiver<()>,
    ) -> Option<AttemptOutcome> {
        let failed = |reason: String| Some(AttemptOutcome::Failed { reason });
        // The download runs on its own: a kill stops the attempt, not the download, so the
        // next attempt finds the binary cached instead of starting over.
        let me = self.clone();
        let (bin, user, token) = (
            spec.job.binary.clone(),
            spec.job.user.clone(),
            spec.token.clone(),
        );
        let download = tokio::spawn(async move { me.binary(&user, &bin, &token).await });
        let binary = tokio::select! {
            b = download => b,
            _ = &mut kill => return None,
        };
        let binary = match binary {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return failed(format!("getting the job binary: {e}")),
            Err(e) => return failed(format!("getting the job binary: {e}")),
        };
        let attempt = spec.attempt;
        let log_dir = task_log::attempt_log_dir(&self.work_dir, attempt);
        task_log::record_owner(&self.work_dir, attempt, &spec.job.user);
        let (mut child, captures) = match self.spawn_child(&binary, spec, dir, &log_dir) {
            Ok(c) => c,
            Err(e) => return failed(format!("starting the task process: {e}")),
        };
        self.started(attempt);
        let status = tokio::select! {
            s = child.wait() => s,
            _ = kill => {
                let _ = child.kill().await;
                return None;
            }
        };
        // The logs are complete once the process's pipes close; a grandchild still holding
        // one open does not hold up the report for long.
        let all_written = futures_join(captures);
        let _ = tokio::time::timeout(Duration::from_secs(5), all_written).await;
        match status {
            Ok(s) if s.success() => match read_file(&dir.join(files::RESULT)) {
                Ok(counters) => Some(AttemptOutcome::Succeeded { counters }),
                Err(e) => failed(format!("task process left no result: {e}")),
            },
            Ok(s) => failed(failure_reason(dir, &log_dir, &s)),
            Err(e) => failed(format!("waiting for the task process: {e}")),
        }
    }

    /// Starts the task process, its stdout and stderr piped into its bounded logs in
    /// `log_dir` (the returned tasks end when the streams do).
    fn spawn_child(
        &self,
        binary: &Path,
        task: TaskSpec,
        dir: &Path,
        log_dir: &Path,
    ) -> Result<(tokio::process::Child, Vec<JoinHandle<()>>)> {
        for d in [dir, log_dir] {
            std::fs::create_dir_all(d)
                .map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
        }
        let spec_path = dir.join(files::SPEC);
        write_spec(
            &spec_path,
            &ChildSpec {
                task,
                cluster: self.config.clone(),
                host: self.host.clone(),
                dir: dir.to_owned(),
                work_dir: self.work_dir.clone(),
            },
        )?;
        let mut child = tokio::process::Command::new(binary)
            .arg(TASK_ARG)
            .arg(&spec_path)
            .current_dir(dir)
            .env_clear()
            .envs(task_environment(
                &self.mapreduce.task_env_whitelist,
                std::env::vars_os(),
            ))
            .env("DFS_LOCAL_HOST", &self.host)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::io(format!("running {}", binary.display()), e))?;
        let keep = self.mapreduce.task_log_keep_bytes as usize;
        let mut captures = Vec::new();
        let stdout = child.stdout.take().map(|s| (s, LogStream::Stdout));
        if let Some((s, stream)) = stdout {
            captures.push(spawn_capture(s, log_dir.join(stream.file_name()), keep));
        }
        let stderr = child.stderr.take().map(|s| (s, LogStream::Stderr));
        if let Some((s, stream)) = stderr {
            captures.push(spawn_capture(s, log_dir.join(stream.file_name()), keep));
        }
        Ok((child, captures))
    }

    /// Tells the jobtracker (without waiting) that an attempt's process is running.
    fn started(&self, attempt: AttemptId) {
        let req = JtRequest::AttemptStarted {
            attempt,
            unix_ms: unix_ms(),
        };
        let addr = self.config.jobtracker_addr.clone();
        let timeout = Duration::from_millis(self.config.rpc_timeout_ms);
        let credentials = self.credentials.clone();
        tokio::spawn(async move {
            // Only a statistic: a lost report is not retried.
            let _ = call::<_, JtResponse>(&addr, &credentials, &req, timeout).await;
        });
    }

    /// Tells the jobtracker how an attempt ended, retrying while it is unreachable.
    async fn report(&self, attempt: AttemptId, outcome: AttemptOutcome) {
        let req = JtRequest::AttemptDone {
            worker: self.host.clone(),
            attempt,
            outcome,
        };
        let timeout = Duration::from_millis(self.config.rpc_timeout_ms);
        for i in 0..30u64 {
            let jt = &self.config.jobtracker_addr;
            match call::<_, JtResponse>(jt, &self.credentials, &req, timeout).await {
                Ok(_) => return,
                Err(e) => tracing::warn!("reporting {attempt} (try {i}): {e}"),
            }
            tokio::time::sleep(Duration::from_millis(200 * (i + 1).min(10))).await;
        }
    }

    /// The local copy of `user`'s job binary, downloaded from dfs on first use and checked
    /// against its SHA-256. The download acts as the job (its task token), so the namenode
    /// lets it read only what the job's user may read (G8); and the cache is per user (key
    /// `bin/<user>/<sha256>`), so a job never runs a copy another user's job fetched.
    async fn binary(&self, user: &str, bin: &BinaryRef, token: &TaskToken) -> Result<PathBuf> {
        if !is_sha256(&bin.sha256) {
            return Err(Error::BadSetting(format!(
                "bad binary hash {:?}",
                bin.sha256
            )));
        }
        dfs::auth::validate_user_name(user)?;
        let dir = self.work_dir.join("bin").join(user);
        let path = dir.join(&bin.sha256);
        if path.exists() {
            return Ok(path);
        }
        let _one_at_a_time = self.downloads.lock().await;
        if path.exists() {
            return Ok(path);
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let tmp = path.with_extension("part");
        let mut config = self.config.clone();
        config.secrets.set_credentials(token.credentials()?);
        let mut reader = DfsClient::new(config)
            .with_local_host(Some(self.host.clone()))
            .open(&bin.dfs_path)
            .await
            .map_err(|e| dfs_error(format_args!("opening dfs://{}", bin.dfs_path), e))?;
        let mut out = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
        let mut hasher = Sha256::new();
        loop {
            let chunk = reader
                .next_chunk()
                .await
                .map_err(|e| dfs_error(format_args!("reading dfs://{}", bin.dfs_path), e))?;
            if chunk.is_empty() {
                break;
            }
            hasher.update(&chunk);
            out.write_all(&chunk)
                .await
                .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
        }
        out.sync_all()
            .await
            .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
        drop(out);
        let got = hex(&hasher.finalize());
        if got != bin.sha256 {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::Corrupt {
                file: PathBuf::from(&bin.dfs_path),
                reason: format!("SHA-256 is {got}, expected {}", bin.sha256),
            });
        }
        set_executable(&tmp)?;
        // The audited rename (it fsyncs the directory too), so a cached name always holds
        // the whole, verified binary.
        dfs::durable::rename_durable(&tmp, &path).map_err(crate::fs::durable_error)?;
        tracing::info!("cached job binary {}", bin.sha256);
        Ok(path)
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io(format!("chmod {}", path.display()), e))
}

fn spawn_capture<R>(stream: R, path: PathBuf, keep_bytes: usize) -> JoinHandle<()>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = task_log::capture(stream, path, keep_bytes).await {
            tracing::warn!("keeping a task log: {e}");
        }
    })
}

/// Waits for every task.
async fn futures_join(tasks: Vec<JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

/// Why a task process failed: its own error text, or its exit status and
/// the end of its stderr (a panic message, for example).
fn failure_reason(dir: &Path, log_dir: &Path, status: &std::process::ExitStatus) -> String {
    if let Ok(line) = std::fs::read_to_string(dir.join(files::ERROR)) {
        if !line.trim().is_empty() {
            return line.trim().to_owned();
        }
    }
    // Bounded: the kept log is at most twice `task_log_keep_bytes` and a line.
    let stderr = std::fs::read(log_dir.join(LogStream::Stderr.file_name())).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    // A panic: its location line and message, not the backtrace after them.
    let tail: Vec<&str> = match lines.iter().position(|l| l.contains(" panicked at ")) {
        Some(i) => lines[i..].iter().take(2).copied().collect(),
        None => lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].to_vec(),
    };
    use std::os::unix::process::ExitStatusExt;
    let how = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "ended abnormally".to_owned(),
    };
    if tail.is_empty() {
        format!("task process {how}")
    } else {
        format!("task process {how}: {}", tail.join(" | "))
    }
}
