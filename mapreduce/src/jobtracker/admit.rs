//! Accepting a submission: the output check, the splits (one per dfs block, cut by
//! [`crate::split`]), the job's durable record, and submit tokens that make a repeated submit
//! return the job the first one created.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::committer::COMMITTED_DIR;
use crate::dfs_fs::list_input_files;
use crate::error::{dfs_error, Error, Result};
use crate::fs::LocalFs;
use crate::input::{InputFormat, Split};
use crate::job_binary::{check_binary_ref, staging_dir};
use crate::job_store::{first_attempt, RecordState};
use crate::properties::JobProperties;
use crate::protocol::{unix_ms, ErrorKind, JobSpec};
use crate::scheduler::{Event, JobId, TaskPolicy};
use crate::split::{block_splits, cluster_split_max, compute_splits};
use crate::streaming;

use super::{JobEntry, Jobtracker, Submitted};

/// Lifetime of the token with which a submission's staged files are checked: the check
/// takes a few calls.
const SUBMIT_CHECK_TOKEN_MS: u64 = 10 * 60 * 1000;

impl Jobtracker {
    /// Accepts a submission once per token: a submit sent again (its answer was lost, or
    /// outlived the caller's timeout) gets the job the first one created, waiting for it if
    /// the first is still being accepted. Acceptance runs in its own task, so a caller that
    /// goes away cannot cut it off halfway.
    pub(super) async fn submit(self: &Arc<Self>, spec: JobSpec) -> Submitted {
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
        let policy =
            task_policy(&spec.conf.params).map_err(|e| (ErrorKind::BadRequest, e.to_string()))?;
        self.check_staged(&spec).await?;
        let output = self.check_output(&spec).await?;
        let (splits, hosts) = self.splits_of(&spec).await.map_err(|e| match e {
            Error::BadInput { .. } => (ErrorKind::BadInput, e.to_string()),
            e => dfs_refusal(e),
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
        self.record_new_job(id, &entry, &output)
            .await
            .map_err(dfs_refusal)?;
        let reduces = entry.spec.reduces;
        tracing::info!(
            "job {id} ({}) submitted: {} maps, {reduces} reduces, output dfs://{output}",
            entry.spec.conf.job,
            entry.splits.len()
        );
        let mut st = self.lock();
        st.jobs.insert(id, entry);
        crate::metrics::jobtracker().jobs_submitted.inc();
        self.step_locked(
            &mut st,
            Event::SubmitJob {
                job: id,
                map_hosts: hosts,
                reduces,
                first_attempt: first_attempt(1),
                policy,
            },
        );
        Ok(id)
    }

    /// A job runs only what its user staged and may read (G8): its binary must be the one in
    /// its user's staging directory that it names ([`check_binary_ref`]), and the binary and
    /// the Streaming side files must be readable by the user, as the namenode judges when
    /// asked with the user's identity. So a user cannot have the workers run, or hand its
    /// tasks, another user's files.
    async fn check_staged(&self, spec: &JobSpec) -> Result<(), (ErrorKind, String)> {
        let user = &spec.user;
        check_binary_ref(user, &spec.binary).map_err(|m| (ErrorKind::PermissionDenied, m))?;
        let side = side_files(&spec.conf.params).map_err(|e| (ErrorKind::BadRequest, e))?;
        let dfs = self
            .user_dfs(user, "submit", SUBMIT_CHECK_TOKEN_MS)
            .map_err(dfs_refusal)?;
        // The binary and its directory must also be the user's own: a directory of its name
        // made by someone else first (the parent is shared) holds what they put there.
        let binary = &spec.binary.dfs_path;
        for path in [staging_dir(user), binary.clone()] {
            if let Ok(status) = dfs.stat(&path).await {
                if status.owner != *user {
                    let owner = status.owner;
                    return Err((
                        ErrorKind::PermissionDenied,
                        format!(
                            "dfs://{path} belongs to {owner}, not to {user}, whose job names it"
                        ),
                    ));
                }
            }
        }
        for path in std::iter::once(binary.clone()).chain(side) {
            match dfs.block_locations(&path).await {
                Ok(_) => {}
                Err(e) if e.kind() == dfs::ErrorKind::PermissionDenied => {
                    return Err((
                        ErrorKind::PermissionDenied,
                        format!("{user} may not read dfs://{path}, which the job names: {e}"),
                    ))
                }
                Err(e) if e.kind() == dfs::ErrorKind::NotFound => {
                    return Err((
                        ErrorKind::BadInput,
                        format!("dfs://{path}, which the job names, does not exist"),
                    ))
                }
                Err(e) => {
                    let what = format_args!("checking that {user} may read dfs://{path}");
                    return Err(dfs_refusal(dfs_error(what, e)));
                }
            }
        }
        Ok(())
    }

    /// The submission's output directory, trimmed, if it is a valid one that does not exist
    /// yet (with the reducer count checked on the way).
    async fn check_output(&self, spec: &JobSpec) -> Result<String, (ErrorKind, String)> {
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
            Ok(true) => Err((
                ErrorKind::OutputExists,
                format!("output directory dfs://{output} already exists"),
            )),
            Ok(false) => Ok(output),
            Err(e) => Err(dfs_refusal(dfs_error("checking the output directory", e))),
        }
    }

    /// Makes job `id` durable, then creates its output directory; on failure undoes both and
    /// frees the output for another job.
    ///
    /// The record is durable before the job is acknowledged, so a restarted jobtracker
    /// knows every job a submitter may be waiting for. It goes before the output directory,
    /// so that the directory never exists without a job to answer for it: a restart between
    /// the two resumes the job, which creates the directory.
    async fn record_new_job(&self, id: JobId, entry: &JobEntry, output: &str) -> Result<()> {
        let saved = self
            .store
            .create(&entry.record(id, RecordState::Running))
            .await;
        let made = match saved {
            Ok(()) => match self.dfs_as(&entry.spec.user, id) {
                Ok(dfs) => dfs
                    .mkdirs(&format!("{output}/{COMMITTED_DIR}"))
                    .await
                    .map_err(|e| dfs_error("creating the output directory", e)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = made {
            // Part of the record may have landed: take it away, or a restart would resume a
            // job its submitter was told had failed.
            if let Err(e) = self.store.remove(id).await {
                tracing::error!("removing the record of refused job {id}: {e}");
            }
            self.remove_output(output).await;
            self.lock().outputs.remove(output);
            return Err(e);
        }
        Ok(())
    }

    /// One split per dfs block (or per run of blocks holding the job's minimum split size),
    /// with the hosts holding it (record-aligned for fixed-length records: a record belongs
    /// to the block in which it starts).
    pub(super) async fn splits_of(&self, spec: &JobSpec) -> Result<(Vec<Split>, Vec<Vec<String>>)> {
        let (format, inputs) = (&spec.input_format, &spec.inputs);
        let min_bytes = JobProperties::from_params(&spec.conf.params)?.split_min_bytes;
        if let InputFormat::Generated { .. } = format {
            let splits = compute_splits(&LocalFs, format, &[], 1)?;
            let hosts = vec![Vec::new(); splits.len()];
            return Ok((splits, hosts));
        }
        let mut splits = Vec::new();
        let mut hosts = Vec::new();
        let files = list_input_files(&self.dfs, inputs).await?;
        let total: u64 = files.iter().map(|f| f.len).sum();
        let slots: u32 = self.lock().workers.values().map(|w| w.slots).sum();
        let max_bytes = cluster_split_max(spec.conf.settings.split_size_bytes, total, slots);
        for file in files {
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
            for (split, h) in block_splits(
                format,
                &file,
                located.len_bytes,
                blocks,
                min_bytes,
                max_bytes,
            ) {
                splits.push(split);
                hosts.push(h);
            }
        }
        Ok((splits, hosts))
    }
}

/// The job's own scheduling settings, from its `-D` properties.
pub(super) fn task_policy(params: &BTreeMap<String, String>) -> Result<TaskPolicy> {
    Ok(JobProperties::from_params(params)?.tasks)
}

/// The dfs paths of a Streaming job's side files (`-files`), which its tasks will read.
fn side_files(params: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
    if params
        .get(streaming::conf::FILES_ORIGIN)
        .map(String::as_str)
        != Some("dfs")
    {
        return Ok(Vec::new());
    }
    let text = params
        .get(streaming::conf::FILES)
        .map_or("", String::as_str);
    let files = streaming::files::decode(text).map_err(|e| e.to_string())?;
    Ok(files.into_iter().map(|f| f.source).collect())
}

/// A refusal for a dfs failure while accepting a job.
fn dfs_refusal(e: Error) -> (ErrorKind, String) {
    (ErrorKind::Dfs, e.to_string())
}
