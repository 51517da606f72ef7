//! Submitting jobs to a cluster: stage the job binary in dfs (once per content hash), send the
//! job to the jobtracker, show its progress, and return its counters; plus the `status`,
//! `list` and `kill` calls.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use dfs::auth::Claim;
use dfs::client::{CreateOptions, DfsClient};
use dfs::config::ClusterConfig;

use crate::config::{Config, MapReduceConfig};
use crate::dfs_fs::DfsFs;
use crate::diagnosis::JobHistory;
use crate::error::{dfs_error, Error, Result};
use crate::job_binary::{staged_path, staging_dir, UploadCopy, STAGING_DIR_MODE};
use crate::job_conf::{JobConf, Registry};
use crate::protocol::{
    call, BinaryRef, ErrorKind, JobInfo, JobPhase, JobSpec, JtRequest, JtResponse, WorkerInfo,
};
use crate::runner::{JobReport, RunOptions};
use crate::scheduler::JobId;
use crate::worker::hex;

pub use crate::job_binary::BINARY_DIR;
/// How often a waiting submitter polls its job.
const POLL_MS: u64 = 50;

/// A connection to a cluster's jobtracker and dfs.
#[derive(Clone, Debug)]
pub struct ClusterClient {
    config: ClusterConfig,
    mapreduce: MapReduceConfig,
    fs: DfsFs,
}

impl ClusterClient {
    /// A client for `config`.
    pub fn new(config: Config) -> Result<ClusterClient> {
        let Config { cluster, mapreduce } = config;
        let fs = DfsFs::new(DfsClient::new(cluster.clone()), false)?;
        Ok(ClusterClient {
            config: cluster,
            mapreduce,
            fs,
        })
    }

    /// The cluster's dfs as a filesystem.
    pub fn fs(&self) -> &DfsFs {
        &self.fs
    }

    /// dfs's part of the cluster config.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    fn jt<T>(&self, req: &JtRequest, f: impl FnOnce(JtResponse) -> Option<T>) -> Result<T> {
        let resp = self.jt_raw(req).map_err(|e| Error::Unreachable {
            addr: self.config.jobtracker_addr.clone(),
            message: format!("cannot reach the jobtracker: {e} (is the cluster up?)"),
        })?;
        reply(resp, f)
    }

    /// One call; `Err` only when the jobtracker could not be reached or did not answer.
    fn jt_raw(&self, req: &JtRequest) -> Result<JtResponse> {
        let timeout = Duration::from_millis(self.config.rpc_timeout_ms);
        let addr = &self.config.jobtracker_addr;
        let credentials = self.config.secrets.credentials()?;
        self.fs.block_on(call(addr, credentials, req, timeout))
    }

    /// The user this client acts as in dfs and for the jobtracker: its key's user, the
    /// superuser for the cluster key, a token's user.
    pub fn user(&self) -> Result<String> {
        Ok(match self.config.secrets.credentials()?.claim() {
            Claim::Member(_) => dfs::auth::SUPERUSER.to_owned(),
            Claim::User(name) => name.clone(),
            Claim::Token(token) => token.user.clone(),
        })
    }

    /// Makes sure `user`'s staging directory exists, is `user`'s and is closed to others
    /// (mode 0700). A directory of that name that belongs to someone else (made first by
    /// another user, since the parent is shared) is refused: what it holds is not `user`'s.
    fn own_staging_dir(&self, user: &str) -> Result<String> {
        let dir = staging_dir(user);
        let client = self.fs.client();
        let status = self
            .fs
            .block_on(async {
                client.mkdirs(&dir).await?;
                client.stat(&dir).await
            })
            .map_err(|e| dfs_error(format_args!("making the staging directory {dir}"), e))?;
        if status.owner != user {
            return Err(Error::Refused(format!(
                "the staging directory dfs://{dir} belongs to {}, not to {user}: a job of \
                 {user} runs only what {user} staged; ask the cluster's admin to remove it \
                 (dfs rm -r {dir})",
                status.owner
            )));
        }
        if status.mode != STAGING_DIR_MODE {
            self.fs
                .block_on(client.set_permission(&dir, STAGING_DIR_MODE))
                .map_err(|e| dfs_error(format_args!("closing {dir} to other users"), e))?;
        }
        Ok(dir)
    }

    /// Copies this process's executable, without its debug info ([`UploadCopy`]), into this
    /// user's staging directory in dfs under the SHA-256 of the bytes uploaded, unless it is
    /// there: a second job of the same program by the same user uploads nothing.
    pub fn stage_binary(&self) -> Result<BinaryRef> {
        let exe = std::env::current_exe()
            .map_err(|e| Error::io("finding this program's executable".to_owned(), e))?;
        let copy = UploadCopy::of(&exe);
        let upload = copy.path();
        let sha256 = file_sha256(upload)?;
        let user = self.user()?;
        let dir = self.own_staging_dir(&user)?;
        let dfs_path = staged_path(&user, &sha256);
        let client = self.fs.client();
        let exists = self
            .fs
            .block_on(client.exists(&dfs_path))
            .map_err(|e| dfs_error("checking the staged binary", e))?;
        if !exists {
            let bytes = std::fs::read(upload)
                .map_err(|e| Error::io(format!("reading {}", upload.display()), e))?;
            // Write under a unique name, then rename: a reader never sees a partial binary.
            let tmp = format!("{dir}/.{sha256}.{}", std::process::id());
            self.fs
                .block_on(async {
                    let mut w = client.create(&tmp, CreateOptions::default()).await?;
                    w.write(&bytes).await?;
                    w.close().await?;
                    if client.rename(&tmp, &dfs_path).await.is_err() {
                        // Another submitter staged the same binary first.
                        let _ = client.delete(&tmp, false).await;
                    }
                    Ok::<(), dfs::Error>(())
                })
                .map_err(|e| dfs_error(format_args!("staging the job binary at {dfs_path}"), e))?;
        }
        Ok(BinaryRef { dfs_path, sha256 })
    }

    /// Submits the job `conf` describes and waits for it, showing progress.
    pub fn run(
        &self,
        registry: &Registry,
        conf: &JobConf,
        inputs: &[PathBuf],
        output: &Path,
        opts: &RunOptions,
    ) -> Result<JobReport> {
        let job = registry.build(conf)?;
        let output_str = output.to_string_lossy().into_owned();
        let spec = JobSpec {
            conf: conf.clone(),
            binary: self.stage_binary()?,
            inputs: inputs.to_vec(),
            output: output_str.clone(),
            input_format: job.input.clone(),
            reduces: job.settings.reducers,
            user: os_user(),
            submission: format!(
                "{:016x}{:016x}",
                rand::random::<u64>(),
                rand::random::<u64>()
            ),
        };
        let id = self.submit(spec, opts.progress)?;
        let _guard = KillOnInterrupt::install(self.clone(), id);
        if opts.progress {
            eprintln!(
                "Submitted job {id} ({}); output dfs://{output_str}",
                conf.job
            );
        }
        let info = self.wait(id, opts.progress)?;
        // The times shown are the jobtracker's, as `mrjob status` shows them: from when it
        // received the job, not from when this process started staging.
        match info.phase {
            JobPhase::Succeeded => Ok(JobReport {
                counters: info.counters,
                elapsed: Duration::from_millis(info.elapsed_ms),
                output: PathBuf::from(format!("dfs://{output_str}")),
                first_task_latency: info
                    .first_started_unix_ms
                    .map(|t| Duration::from_millis(t.saturating_sub(info.submitted_unix_ms))),
            }),
            JobPhase::Failed(reason) => Err(Error::JobFailed {
                job: format!("{id} ({})", conf.job),
                reason,
            }),
            JobPhase::Killed => Err(Error::JobFailed {
                job: format!("{id} ({})", conf.job),
                reason: "killed by its user (mrjob kill)".into(),
            }),
            JobPhase::Running => unreachable!("wait returns finished jobs"),
        }
    }

    /// Submits `spec` and returns the job's id. Accepting a job takes the jobtracker a few dfs
    /// writes, which can stall (a datanode of the pipeline vanishes, the namenode fails over)
    /// past one call's timeout; and the jobtracker may restart. So an unanswered submit is sent
    /// again, with the same submission token, for up to [`unreachable_limit`]: the jobtracker
    /// answers a repeated token with the job the first call created, never a second job.
    fn submit(&self, spec: JobSpec, show: bool) -> Result<JobId> {
        let limit = unreachable_limit(&self.mapreduce);
        let req = JtRequest::Submit(Box::new(spec));
        let mut outage: Option<Outage> = None;
        loop {
            match self.jt_raw(&req) {
                Ok(resp) => {
                    return reply(resp, |r| match r {
                        JtResponse::Submitted { job } => Some(job),
                        _ => None,
                    })
                }
                Err(e) => {
                    let o = outage.get_or_insert_with(|| Outage::new(show));
                    let pause = o.note(Waiting::Submit, &e, limit, None)?;
                    std::thread::sleep(pause);
                }
            }
        }
    }

    /// Waits until job `id` ends, drawing a progress line on a terminal. While the jobtracker
    /// is unreachable (it restarts: a restarted one resumes the job under the same id) the
    /// wait goes on, with a growing pause between tries, for up to [`unreachable_limit`].
    pub fn wait(&self, id: JobId, show: bool) -> Result<JobInfo> {
        let bar = if show && std::io::stderr().is_terminal() {
            let b = indicatif::ProgressBar::new(100);
            b.set_style(
                indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            Some(b)
        } else {
            None
        };
        let limit = unreachable_limit(&self.mapreduce);
        let mut outage: Option<Outage> = None;
        loop {
            let info = match self.poll(id, outage.is_some())? {
                Ok(info) => info,
                Err(e) => {
                    let o = outage.get_or_insert_with(|| Outage::new(show && bar.is_none()));
                    let pause = o.note(Waiting::Job(id), &e, limit, bar.as_ref())?;
                    std::thread::sleep(pause);
                    continue;
                }
            };
            if let Some(o) = outage.take() {
                o.back(id, &info);
            }
            if let Some(b) = &bar {
                let (pct, msg) = progress_line(&info);
                b.set_position(pct);
                b.set_message(msg);
            }
            if info.phase != JobPhase::Running {
                if let Some(b) = &bar {
                    b.finish_and_clear();
                }
                return Ok(info);
            }
            std::thread::sleep(Duration::from_millis(POLL_MS));
        }
    }

    /// One status call for `wait`: the job's status, or (inner `Err`) why the jobtracker
    /// could not be reached. An error answer ends the wait; after an outage it says so.
    fn poll(&self, id: JobId, after_outage: bool) -> Result<Result<JobInfo>> {
        let resp = match self.jt_raw(&JtRequest::JobStatus { job: id }) {
            Ok(resp) => resp,
            Err(e) => return Ok(Err(e)),
        };
        let info = reply(resp, |r| match r {
            JtResponse::Job(info) => Some(*info),
            _ => None,
        });
        match info {
            Ok(info) => Ok(Ok(info)),
            Err(e) if after_outage => Err(Error::Refused(format!(
                "the jobtracker came back without job {id}: {e}"
            ))),
            Err(e) => Err(e),
        }
    }

    /// One job's status.
    pub fn status(&self, id: JobId) -> Result<JobInfo> {
        self.jt(&JtRequest::JobStatus { job: id }, |r| match r {
            JtResponse::Job(info) => Some(*info),
            _ => None,
        })
    }

    /// Every job the jobtracker remembers.
    pub fn list(&self) -> Result<Vec<JobInfo>> {
        self.jt(&JtRequest::ListJobs, |r| match r {
            JtResponse::Jobs(v) => Some(v),
            _ => None,
        })
    }

    /// Kills a running job.
    pub fn kill(&self, id: JobId) -> Result<()> {
        self.jt(&JtRequest::KillJob { job: id }, |r| match r {
            JtResponse::Done => Some(()),
            _ => None,
        })
    }

    /// A job's status with its recorded events and attempts (for `mrjob why` and `mrjob logs`).
    pub fn history(&self, id: JobId) -> Result<(JobInfo, JobHistory)> {
        self.jt(&JtRequest::JobHistory { job: id }, |r| match r {
            JtResponse::History { info, history } => Some((*info, *history)),
            _ => None,
        })
    }

    /// The workers the jobtracker knows.
    pub fn workers(&self) -> Result<Vec<WorkerInfo>> {
        self.jt(&JtRequest::ListWorkers, |r| match r {
            JtResponse::Workers(v) => Some(v),
            _ => None,
        })
    }
}

/// How long a waiting submitter keeps trying an unreachable jobtracker: five worker timeouts
/// (the time a restarted jobtracker needs to find its workers again, with room for its own
/// start), and at least 30 s.
pub fn unreachable_limit(config: &MapReduceConfig) -> Duration {
    Duration::from_millis(config.worker_timeout_ms.saturating_mul(5).max(30_000))
}

/// The jobtracker's answer to one call: its error as an [`Error`], or `f`'s pick of it.
fn reply<T>(resp: JtResponse, f: impl FnOnce(JtResponse) -> Option<T>) -> Result<T> {
    if let JtResponse::Error { kind, message } = resp {
        return Err(match kind {
            ErrorKind::OutputExists | ErrorKind::BadInput | ErrorKind::NotFound => {
                Error::Refused(message)
            }
            ErrorKind::PermissionDenied => Error::Refused(format!("permission denied: {message}")),
            _ => Error::Refused(format!("jobtracker: {message}")),
        });
    }
    let text = format!("{resp:?}");
    f(resp).ok_or_else(|| Error::Protocol(format!("unexpected jobtracker reply: {text}")))
}

/// What a submitter is waiting for while the jobtracker is unreachable.
#[derive(Clone, Copy)]
enum Waiting {
    /// The answer to its submit: no job id is known yet.
    Submit,
    /// The end of this submitted job.
    Job(JobId),
}

/// A spell of the jobtracker being unreachable, as a waiting submitter sees it.
struct Outage {
    since: Instant,
    pause: Duration,
    /// Whether to print lines (no progress bar, and progress wanted).
    print: bool,
    printed: bool,
}

impl Outage {
    /// First and longest pause between tries.
    const FIRST_PAUSE: Duration = Duration::from_millis(100);
    const MAX_PAUSE: Duration = Duration::from_secs(2);

    fn new(print: bool) -> Outage {
        Outage {
            since: Instant::now(),
            pause: Self::FIRST_PAUSE,
            print,
            printed: false,
        }
    }

    fn next_pause(&mut self) -> Duration {
        let pause = self.pause;
        self.pause = (self.pause * 2).min(Self::MAX_PAUSE);
        pause
    }

    /// Notes a failed call: shows it, and returns the pause before the next try, or the
    /// error that ends the wait once the outage has lasted `limit`. Past the submit, that
    /// error says the job may still be running ([`Error::OutcomeUnknown`]): the jobtracker
    /// keeps running it, or resumes it after a restart, whether or not anyone follows it.
    fn note(
        &mut self,
        waiting: Waiting,
        e: &Error,
        limit: Duration,
        bar: Option<&indicatif::ProgressBar>,
    ) -> Result<Duration> {
        let down = self.since.elapsed();
        if down > limit {
            return Err(match waiting {
                Waiting::Submit => Error::Timeout {
                    what: format!(
                        "jobtracker unreachable for {}s, stopped submitting the job: {e}",
                        down.as_secs()
                    ),
                },
                Waiting::Job(job) => Error::OutcomeUnknown {
                    job,
                    unreachable_secs: down.as_secs(),
                    cause: e.to_string(),
                },
            });
        }
        let line = format!(
            "jobtracker unreachable, retrying ({}s of {}s): {e}",
            down.as_secs(),
            limit.as_secs()
        );
        match bar {
            Some(b) => b.set_message(line),
            None => self.print_once(&line),
        }
        Ok(self.next_pause())
    }

    fn print_once(&mut self, line: &str) {
        if self.print && !self.printed {
            eprintln!("{line}");
            self.printed = true;
        }
    }

    /// The jobtracker answers again.
    fn back(self, id: JobId, info: &JobInfo) {
        if !self.print {
            return;
        }
        let resumed = if info.runs > 1 {
            format!(", resumed from scratch (run {})", info.runs)
        } else {
            String::new()
        };
        eprintln!(
            "jobtracker reachable again after {}s; following job {id}{resumed}",
            self.since.elapsed().as_secs()
        );
    }
}

/// The submitting user as recorded in the job: `$USER`, else the name of this process's uid,
/// else the uid itself. (Authenticated connections will later supply a verified name.)
pub fn os_user() -> String {
    if let Some(user) = std::env::var("USER").ok().filter(|u| !u.is_empty()) {
        return user;
    }
    let uid = nix::unistd::Uid::current();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => format!("uid {uid}"),
    }
}

/// Percent done and a one-line summary: maps, reduces, locality.
pub fn progress_line(info: &JobInfo) -> (u64, String) {
    let s = &info.status;
    let total = u64::from(s.maps_total) + u64::from(s.reduces_total);
    let done = u64::from(s.maps_done) + u64::from(s.reduces_done);
    let pct = (done * 100).checked_div(total).unwrap_or(0);
    let msg = format!(
        "job {} {}: maps {}/{} ({} running), reduces {}/{} ({} running), {} data-local",
        info.id,
        info.name,
        s.maps_done,
        s.maps_total,
        s.maps_running,
        s.reduces_done,
        s.reduces_total,
        s.reduces_running,
        s.data_local_maps,
    );
    (pct, msg)
}

fn file_sha256(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if n == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// While alive, Ctrl-C or SIGTERM kills the submitted job before the process exits, so an
/// interrupted submit leaves no job running and no output behind.
struct KillOnInterrupt;

static INTERRUPT_TARGET: std::sync::Mutex<Option<(ClusterClient, JobId)>> =
    std::sync::Mutex::new(None);

impl KillOnInterrupt {
    fn install(client: ClusterClient, id: JobId) -> KillOnInterrupt {
        *dfs::lock::lock(&INTERRUPT_TARGET) = Some((client, id));
        KillOnInterrupt
    }
}

impl Drop for KillOnInterrupt {
    fn drop(&mut self) {
        *dfs::lock::lock(&INTERRUPT_TARGET) = None;
    }
}

/// Called by a binary's interrupt handler: kills the job being waited for, if any, and
/// returns its id.
pub fn kill_submitted_job() -> Option<JobId> {
    let target = dfs::lock::lock(&INTERRUPT_TARGET).clone();
    let (client, id) = target?;
    let _ = client.kill(id);
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outage_pauses_grow_to_a_cap_and_the_wait_is_bounded() {
        let mut o = Outage::new(false);
        let pauses: Vec<u64> = (0..8).map(|_| o.next_pause().as_millis() as u64).collect();
        assert_eq!(pauses, vec![100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        let mut config = MapReduceConfig {
            worker_timeout_ms: 3_000,
            ..MapReduceConfig::default()
        };
        assert_eq!(unreachable_limit(&config), Duration::from_secs(30));
        config.worker_timeout_ms = 10_000;
        assert_eq!(unreachable_limit(&config), Duration::from_secs(50));
        config.worker_timeout_ms = u64::MAX;
        assert_eq!(unreachable_limit(&config), Duration::from_millis(u64::MAX));
    }

    #[test]
    fn an_outage_longer_than_the_limit_ends_the_wait() {
        let limit = Duration::from_secs(30);
        let e = Error::Unreachable {
            addr: "127.0.0.1:1".into(),
            message: "connection refused".into(),
        };
        let mut fresh = Outage::new(false);
        assert_eq!(
            fresh.note(Waiting::Job(7), &e, limit, None).unwrap(),
            Duration::from_millis(100)
        );
        let Some(long_ago) = Instant::now().checked_sub(Duration::from_secs(40)) else {
            return; // A monotonic clock this young cannot go back 40 s; nothing to check.
        };
        let mut old = Outage {
            since: long_ago,
            ..Outage::new(false)
        };
        let err = old
            .note(Waiting::Submit, &e, limit, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("jobtracker unreachable for 40s"), "{err}");
        assert!(
            err.contains("submitting") && err.contains("connection refused"),
            "{err}"
        );
    }

    // A submitter that loses the jobtracker while following its job does not call the job
    // failed: the job may still succeed. It says so, names the job and how to follow it, and
    // exits with its own status.
    #[test]
    fn an_outage_after_the_submit_leaves_the_outcome_unknown() {
        let Some(long_ago) = Instant::now().checked_sub(Duration::from_secs(40)) else {
            return; // A monotonic clock this young cannot go back 40 s; nothing to check.
        };
        let e = Error::Unreachable {
            addr: "127.0.0.1:1".into(),
            message: "connection refused".into(),
        };
        let mut old = Outage {
            since: long_ago,
            ..Outage::new(false)
        };
        let err = old
            .note(Waiting::Job(7), &e, Duration::from_secs(30), None)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::OutcomeUnknown {
                    job: 7,
                    unreachable_secs: 40,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.exit_code(), crate::error::EXIT_OUTCOME_UNKNOWN);
        assert_ne!(err.exit_code(), 1);
        let text = err.to_string();
        assert!(text.contains("job 7 was submitted"), "{text}");
        assert!(text.contains("may still be running"), "{text}");
        assert!(text.contains("`mrjob status 7`"), "{text}");
        assert!(text.contains("connection refused"), "{text}");
        assert!(!text.contains("failed"), "{text}");
    }
}
