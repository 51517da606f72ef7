//! Task commits and job ends.
//!
//! Commit protocol (G6): an attempt writes its part file under `OUT/_temporary/ATTEMPT/`,
//! a directory the jobtracker creates before launching it. When the scheduler picks an
//! attempt to commit (at most one per task), the [`Committer`] commits it as the task's output.
//! When every task is done the committer's job commit moves the files into `OUT`, removes
//! `OUT/_temporary` and writes `OUT/_SUCCESS`; when a job fails the jobtracker removes `OUT`.
//! A stale attempt (timed out, on a lost worker, a lost speculative race) is never committed,
//! and once its directory is gone it cannot even write a file there, because task output is
//! created with `require_parent`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::committer::{Committer, TEMPORARY_DIR};
use crate::dfs_fs::on_blocking_thread;
use crate::diagnosis::{skewed_partitions, slow_attempts};
use crate::error::Result;
use crate::job_store::{JobRecord, RecordState};
use crate::protocol::unix_ms;
use crate::protocol::{JobPhase, WorkerCommand};
use crate::scheduler::{AttemptId, Event, JobId, JobState, TaskKind, KILLED_BY_USER};

use super::{forget_old_jobs, JobEntry, Jobtracker, State};

/// Records, once a job ends, which of its attempts were slow against their median and
/// whether its reduce partitions were skewed (the measured events of `mrjob why`).
fn measure_run(entry: &mut JobEntry) {
    let now = unix_ms();
    for event in slow_attempts(&entry.history.attempts) {
        entry.history.push_event(now, event);
    }
    let partitions: Vec<(u32, u64)> = entry
        .accepted
        .iter()
        .filter(|(task, _)| task.kind == TaskKind::Reduce)
        .map(|(task, c)| (task.index, c.task.reduce_shuffle_bytes))
        .collect();
    if let Some(event) = skewed_partitions(&partitions) {
        entry.history.push_event(now, event);
    }
}

/// The dfs directory an attempt writes its part file into.
pub fn attempt_dir(output: &str, attempt: AttemptId) -> String {
    format!("{}/{TEMPORARY_DIR}/{attempt}", output.trim_end_matches('/'))
}

impl Jobtracker {
    /// Commits an attempt's output as its task's.
    pub(super) async fn commit(self: Arc<Self>, output: String, attempt: AttemptId) {
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

    /// Ends a job: `end` is its failed or killed phase, `None` when it is to be committed.
    pub(super) fn end_job(self: &Arc<Self>, st: &mut State, job: JobId, end: Option<JobPhase>) {
        let Some(entry) = st.jobs.get_mut(&job) else {
            return;
        };
        measure_run(entry);
        entry.attempt_rows.job_ended(crate::protocol::unix_ms());
        crate::metrics::jobtracker().jobs_finished.inc();
        let output = entry.spec.output.clone();
        let user = entry.spec.user.clone();
        let workers: Vec<String> = st.workers.keys().cloned().collect();
        for w in workers {
            self.send(st, &w, WorkerCommand::Cleanup { job });
        }
        let jt = self.clone();
        tokio::spawn(async move {
            let phase = match end {
                None => match jt.write_success(&user, job, &output).await {
                    Ok(()) => JobPhase::Succeeded,
                    Err(e) => JobPhase::Failed(format!("job commit failed: {e}")),
                },
                Some(phase) => phase,
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
                JobPhase::Killed => JobState::Failed(KILLED_BY_USER.to_owned()),
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
        if phase.is_unsuccessful_end() {
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
        self.prune_binaries().await;
        self.remove_side_files(job).await;
    }

    /// Removes the dfs directory a Streaming job's local `-files` were uploaded into, as the
    /// job's user: the job no longer needs them, and a submitter interrupted after submitting
    /// (Ctrl-C kills the job and exits) cannot remove them itself.
    async fn remove_side_files(&self, job: JobId) {
        let (user, dir) = {
            let st = self.lock();
            let Some(e) = st.jobs.get(&job) else {
                return;
            };
            let params = &e.spec.conf.params;
            let Some(dir) = params.get(crate::streaming::conf::FILES_STAGING) else {
                return;
            };
            (e.spec.user.clone(), dir.clone())
        };
        let removed = match self.dfs_as(&user, job) {
            Ok(dfs) => dfs.delete(&dir, true).await.map(|_| ()),
            Err(e) => Err(dfs::error::Error::Config(e.to_string())),
        };
        if let Err(e) = removed {
            tracing::warn!("job {job}: cannot remove its side files in {dir}: {e}");
        }
    }

    /// Commits the job (files into `OUT`, `OUT/_SUCCESS`), retrying through short outages.
    /// As the job's user (see `dfs_as`): `_SUCCESS` is the user's, as the rest of the output.
    async fn write_success(&self, user: &str, job: JobId, output: &str) -> Result<()> {
        let dfs = self.dfs_as(user, job)?;
        let out = output.trim_end_matches('/');
        let mut last = None;
        for i in 0..5u32 {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(200 << i)).await;
            }
            let dir = PathBuf::from(out);
            let r = on_blocking_thread(dfs.clone(), move |fs| {
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

    pub(super) async fn remove_output(&self, output: &str) {
        for i in 0..5u32 {
            match self.dfs.delete(output, true).await {
                Ok(_) => return,
                Err(e) => tracing::warn!("removing dfs://{output} (try {i}): {e}"),
            }
            tokio::time::sleep(Duration::from_millis(200 << i)).await;
        }
    }
}
