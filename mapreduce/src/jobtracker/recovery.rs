//! Restarts (G6): every job has a record in dfs ([`crate::job_store`]), written before its
//! submission is acknowledged and rewritten when it ends. A jobtracker starts by reading the
//! records (before it answers any call): finished jobs are remembered for status calls, and
//! every job that was running is run again from scratch under the same id. Nothing a previous
//! incarnation started can be committed by this one: the output directory is emptied (its
//! committed part files and `_temporary` go), and the new run numbers its attempts above every
//! number an earlier run used, so an attempt still running from before is unknown to the
//! scheduler: workers listing it are told to kill it, and its late reports are refused.

use std::sync::Arc;
use std::time::Duration;

use crate::committer::COMMITTED_DIR;
use crate::counters::Counters;
use crate::error::{dfs_error, Result};
use crate::job_store::{
    first_attempt, next_job_id, plan_recovery, JobRecord, RecordState, Recovery, RESTART_REASON,
};
use crate::protocol::{unix_ms, JobInfo, JobPhase};
use crate::scheduler::{Event, JobState, JobStatus};

use super::admit::task_policy;
use super::{JobEntry, Jobtracker};

impl Jobtracker {
    /// Reads the job records and settles every job they name (see the module docs). Reading
    /// is retried until dfs answers: a jobtracker without its records must not accept jobs,
    /// since it could hand out an id that is taken or leave a job nobody resumes.
    pub(super) async fn recover(self: &Arc<Self>) {
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
        let (splits, hosts) = match self.splits_of(spec).await {
            Ok(s) => s,
            Err(e) => {
                let reason = format!("{RESTART_REASON}; its input cannot be read again: {e}");
                return self.fail_at_recovery(record, reason).await;
            }
        };
        // Nothing an earlier run wrote may stay in the output or be committed by this run.
        if let Err(e) = self.clear_output(&spec.user, record.id, &spec.output).await {
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
        let mut entry = JobEntry::new(
            record.spec.clone(),
            splits,
            record.submitted_unix_ms,
            record.runs,
        );
        // The earlier runs' attempts stay listed: their logs are still on the workers.
        entry.history = record.history.clone();
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
                policy: task_policy(&record.spec.conf.params).unwrap_or_default(),
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
        let entry = JobEntry::ended(record.spec, *info, record.history);
        st.jobs.insert(record.id, entry);
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
    /// As the job's user (see `dfs_as`), so the directory is the user's again.
    async fn clear_output(
        &self,
        user: &str,
        job: crate::scheduler::JobId,
        output: &str,
    ) -> Result<()> {
        let dfs = self.dfs_as(user, job)?;
        let mut tries = 0u32;
        loop {
            let r = async {
                dfs.delete(output, true).await?;
                dfs.mkdirs(&format!("{output}/{COMMITTED_DIR}")).await
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
        name: record.spec.conf.display_name().to_owned(),
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
