//! Job records in dfs: what lets a restarted jobtracker resume the jobs it was running and
//! still answer for the ones it finished.
//!
//! Every submitted job has one record, `/mrjob/jobs/job_NNNN`, holding its [`JobSpec`], how
//! many runs it has started, and once it ended the [`JobInfo`] that status calls answer. The
//! jobtracker writes the record before it acknowledges a submission, rewrites it when a run
//! starts after a restart and when the job ends, and keeps the records of the last
//! [`FINISHED_RECORDS_KEPT`] finished jobs.
//!
//! A record is `MRJR`, a format version, the CRC32 of the payload, and the payload (`dfs::frame::encode_msg`).
//! A new job's first record is written in place. dfs's rename does not replace an existing
//! file, so an update writes `job_NNNN.tmp` in full
//! (durable when `close` returns, G2), deletes `job_NNNN`, and renames the new file into its
//! place. A reader therefore prefers a `.tmp` that decodes (the update got past its write) and
//! otherwise reads `job_NNNN` (the update died while writing; the old record is intact).
//!
//! The decisions (which id comes next, which records go, what a restarted jobtracker does with
//! each record) are pure functions, tested without dfs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use dfs::client::DfsClient;

use crate::diagnosis::JobHistory;
use crate::error::{dfs_error, Error, Result};
use crate::protocol::{JobInfo, JobPhase, JobSpec, CONTROL_FRAME_LIMIT_BYTES};
use crate::scheduler::JobId;

/// The dfs directory holding the job records.
pub const JOBS_DIR: &str = "/mrjob/jobs";
/// Records of finished jobs kept (the newest by id); older ones are deleted, so `mrjob list`
/// after a restart shows at most this many finished jobs.
pub const FINISHED_RECORDS_KEPT: usize = 100;
/// Attempt numbers reserved for one run of a job: run `n` (from 1) numbers its attempts from
/// `(n - 1) * ATTEMPTS_PER_RUN`. A task would need this many attempts in one run (killed
/// ones included) before its numbers met the next run's.
pub const ATTEMPTS_PER_RUN: u32 = 1_000_000;
/// Runs a job may start: the first, and resumes after jobtracker restarts. A job whose runs
/// keep ending in a jobtracker crash (it may be the cause) fails instead of looping.
pub const MAX_RUNS: u32 = 4;
/// The reason of every job a restarted jobtracker could not resume starts with this.
pub const RESTART_REASON: &str = "jobtracker restarted while the job ran";

const MAGIC: &[u8; 4] = b"MRJR";
// Version 2 added the submission token to the spec; version 3 is the postcard encoding;
// version 4 added the job's history (events and attempts, for `mrjob why` and `mrjob logs`)
// and the killed state.
const FORMAT_VERSION: u32 = 4;
const HEADER_BYTES: usize = 12;
const TMP_SUFFIX: &str = ".tmp";

/// One job as the jobtracker persists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job's id.
    pub id: JobId,
    /// The job as submitted (its output path without a trailing `/`).
    pub spec: JobSpec,
    /// When the jobtracker accepted it (ms since the Unix epoch).
    pub submitted_unix_ms: u64,
    /// Runs started so far: 1 after the submission, one more per resume.
    pub runs: u32,
    /// Running or ended.
    pub state: RecordState,
    /// What happened while it ran (events and attempts), as of the last save: empty at
    /// submission, whole once it ended.
    pub history: JobHistory,
}

/// Where a persisted job stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RecordState {
    /// A run is (or was, when the jobtracker died) in progress.
    Running,
    /// The job ended.
    Ended {
        /// What status calls answer from now on; its phase is the job's final state.
        info: Box<JobInfo>,
        /// For a failed job: whether its output directory is already removed. The record is
        /// written before the removal, so a restart in between finishes it.
        output_removed: bool,
    },
}

/// What a restarted jobtracker does with one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Recovery {
    /// The job ended and nothing is left to do: remember it for status calls.
    Keep,
    /// The job failed and its output directory may still be there: remove it, then keep.
    RemoveOutput,
    /// `_SUCCESS` was written before the jobtracker died: the output is complete, so the job
    /// succeeded (the record had no time to say so; its counters are lost).
    Succeeded,
    /// Run the job again from scratch under the same id, as run `runs + 1`.
    Resume,
    /// Do not resume: fail the job with this reason and remove its output directory.
    Fail(String),
}

/// Decides what happens to `record` when a jobtracker starts; `success_exists` says whether
/// the job's `OUT/_SUCCESS` exists (only asked for running records).
pub fn plan_recovery(record: &JobRecord, success_exists: bool) -> Recovery {
    match &record.state {
        RecordState::Ended {
            info,
            output_removed,
        } => match info.phase {
            JobPhase::Failed(_) | JobPhase::Killed if !output_removed => Recovery::RemoveOutput,
            _ => Recovery::Keep,
        },
        RecordState::Running if success_exists => Recovery::Succeeded,
        RecordState::Running if record.runs >= MAX_RUNS => Recovery::Fail(format!(
            "{RESTART_REASON}; not resumed again after {} runs",
            record.runs
        )),
        RecordState::Running => Recovery::Resume,
    }
}

/// The number of the first attempt of every task in run `run` (1 for the first run).
pub fn first_attempt(run: u32) -> u32 {
    run.saturating_sub(1).saturating_mul(ATTEMPTS_PER_RUN)
}

/// The id after every id that has a record (readable or not), so that no id is ever reused.
pub fn next_job_id(ids: &BTreeSet<JobId>) -> JobId {
    ids.last().map_or(1, |last| last.saturating_add(1))
}

/// The finished jobs whose records go: all but the newest `keep` of them. The newest id is
/// never among them, so [`next_job_id`] still sees it after a restart.
pub fn records_to_prune(finished: &BTreeSet<JobId>, keep: usize) -> Vec<JobId> {
    let excess = finished.len().saturating_sub(keep);
    finished.iter().take(excess).copied().collect()
}

/// The dfs path of job `id`'s record.
pub fn record_path(id: JobId) -> String {
    format!("{JOBS_DIR}/job_{id:04}")
}

/// The job id and whether it is an update in progress (`.tmp`), from a record's file name;
/// `None` for anything else.
pub fn parse_record_name(name: &str) -> Option<(JobId, bool)> {
    let (stem, tmp) = match name.strip_suffix(TMP_SUFFIX) {
        Some(stem) => (stem, true),
        None => (name, false),
    };
    let digits = stem.strip_prefix("job_")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, tmp))
}

/// A record's bytes: magic, format version, CRC32 of the payload, payload.
pub fn encode(record: &JobRecord) -> Result<Vec<u8>> {
    let payload = dfs::frame::encode_msg(record)
        .map_err(|e| Error::Protocol(format!("encoding the record of job {}: {e}", record.id)))?;
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes a record, refusing a wrong magic or version, a torn or corrupt payload, or one
/// larger than a control message may be.
pub fn decode(bytes: &[u8]) -> Result<JobRecord> {
    let bad = |reason: String| Error::Protocol(format!("bad job record: {reason}"));
    if bytes.len() < HEADER_BYTES {
        return Err(bad(format!(
            "{} bytes, shorter than its header",
            bytes.len()
        )));
    }
    if bytes.len() > HEADER_BYTES + CONTROL_FRAME_LIMIT_BYTES {
        return Err(bad(format!("{} bytes, over the limit", bytes.len())));
    }
    let (header, payload) = bytes.split_at(HEADER_BYTES);
    if &header[..4] != MAGIC {
        return Err(bad("not a job record (bad magic)".into()));
    }
    let word =
        |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    if word(4) != FORMAT_VERSION {
        return Err(bad(format!(
            "format version {} is not {FORMAT_VERSION}",
            word(4)
        )));
    }
    if word(8) != crc32fast::hash(payload) {
        return Err(bad("checksum mismatch (torn or corrupt)".into()));
    }
    dfs::frame::decode_msg(payload).map_err(|e| bad(e.to_string()))
}

/// What [`JobStore::load`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The readable records, by id.
    pub records: BTreeMap<JobId, JobRecord>,
    /// Every id that has a record file, readable or not.
    pub ids: BTreeSet<JobId>,
    /// One line per unreadable record.
    pub unreadable: Vec<String>,
}

/// Reads and writes job records in dfs, retrying through short dfs outages.
#[derive(Clone)]
pub struct JobStore {
    dfs: DfsClient,
}

/// Tries of one store operation before its error is returned.
const TRIES: u32 = 5;

impl JobStore {
    /// A store on `dfs`.
    pub fn new(dfs: DfsClient) -> JobStore {
        JobStore { dfs }
    }

    /// Writes `record`, replacing the previous one (see the module docs for the order).
    pub async fn save(&self, record: &JobRecord) -> Result<()> {
        let bytes = encode(record)?;
        let path = record_path(record.id);
        let tmp = format!("{path}{TMP_SUFFIX}");
        retry(&format!("writing dfs://{path}"), || async {
            // (`create` makes the missing parent directories.)
            // Deleted rather than overwritten: a `.tmp` left by a jobtracker that died while
            // writing it is still leased to that writer, and dfs refuses to overwrite it.
            self.dfs.delete(&tmp, false).await?;
            self.dfs.write_file(&tmp, &bytes, false).await?;
            self.dfs.delete(&path, false).await?;
            self.dfs.rename(&tmp, &path).await
        })
        .await
    }

    /// Writes the first record of a new job. A new job has no record to keep intact, so the
    /// record is written in place: one dfs create instead of an update's four calls, which
    /// every submission waits for. Should that fail, the full update follows.
    pub async fn create(&self, record: &JobRecord) -> Result<()> {
        let bytes = encode(record)?;
        let path = record_path(record.id);
        match self.dfs.write_file(&path, &bytes, false).await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::warn!("writing dfs://{path} (retrying as an update): {e}");
                self.save(record).await
            }
        }
    }

    /// Deletes job `id`'s record.
    pub async fn remove(&self, id: JobId) -> Result<()> {
        let path = record_path(id);
        retry(&format!("deleting dfs://{path}"), || async {
            self.dfs
                .delete(&format!("{path}{TMP_SUFFIX}"), false)
                .await?;
            self.dfs.delete(&path, false).await.map(|_| ())
        })
        .await
    }

    /// Every record in [`JOBS_DIR`].
    pub async fn load(&self) -> Result<Loaded> {
        let listed = retry(&format!("listing dfs://{JOBS_DIR}"), || async {
            match self.dfs.list(JOBS_DIR).await {
                Err(e) if e.kind() == dfs::ErrorKind::NotFound => Ok(Vec::new()),
                other => other,
            }
        })
        .await?;
        // Per id: whether the record and an update in progress exist.
        let mut files: BTreeMap<JobId, (bool, bool)> = BTreeMap::new();
        for f in &listed {
            let name = f.path.rsplit('/').next().unwrap_or_default();
            if let Some((id, tmp)) = parse_record_name(name) {
                let entry = files.entry(id).or_default();
                *(if tmp { &mut entry.1 } else { &mut entry.0 }) = true;
            }
        }
        let mut loaded = Loaded {
            ids: files.keys().copied().collect(),
            ..Loaded::default()
        };
        for (id, (main, tmp)) in files {
            let path = record_path(id);
            let mut last_error = String::new();
            let candidates = [(tmp, format!("{path}{TMP_SUFFIX}")), (main, path.clone())];
            for (_, p) in candidates.iter().filter(|(present, _)| *present) {
                match self.read(p).await {
                    Ok(rec) if rec.id == id => {
                        loaded.records.insert(id, rec);
                        break;
                    }
                    Ok(rec) => last_error = format!("dfs://{p} holds job {}", rec.id),
                    Err(e) => last_error = e.to_string(),
                }
            }
            if !loaded.records.contains_key(&id) {
                loaded.unreadable.push(format!("job {id}: {last_error}"));
            }
        }
        Ok(loaded)
    }

    async fn read(&self, path: &str) -> Result<JobRecord> {
        let bytes = retry(&format!("reading dfs://{path}"), || {
            self.dfs.read_file(path)
        })
        .await?;
        decode(&bytes)
    }
}

/// Runs `op` up to [`TRIES`] times with a growing pause, returning the last error.
async fn retry<T, F, Fut>(what: &str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = dfs::Result<T>>,
{
    let mut tries = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            // A missing file does not appear by waiting.
            Err(e) if e.kind() == dfs::ErrorKind::NotFound => return Err(dfs_error(what, e)),
            Err(e) if tries + 1 >= TRIES => return Err(dfs_error(what, e)),
            Err(e) => tracing::warn!("{what} (try {tries}): {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200 << tries)).await;
        tries += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::InputFormat;
    use crate::job_conf::JobConf;
    use crate::protocol::BinaryRef;
    use crate::scheduler::JobStatus;
    use std::path::PathBuf;

    fn record(id: JobId, runs: u32, state: RecordState) -> JobRecord {
        JobRecord {
            id,
            spec: JobSpec {
                conf: JobConf::new("wordcount", crate::job::Settings::default()),
                binary: BinaryRef {
                    dfs_path: "/mrjob/bin/ab".into(),
                    sha256: "ab".repeat(32),
                },
                inputs: vec![PathBuf::from("/in")],
                output: "/out".into(),
                input_format: InputFormat::Lines,
                reduces: 3,
                user: "ann".into(),
                submission: "token".into(),
            },
            submitted_unix_ms: 1_700_000_000_000,
            runs,
            state,
            history: JobHistory::default(),
        }
    }

    fn ended(phase: JobPhase, output_removed: bool) -> RecordState {
        let info = JobInfo {
            id: 7,
            name: "wordcount".into(),
            user: "ann".into(),
            output: "/out".into(),
            phase,
            status: JobStatus::default(),
            counters: Default::default(),
            elapsed_ms: 1234,
            first_launch_ms: Some(5),
            first_started_unix_ms: None,
            submitted_unix_ms: 1_700_000_000_000,
            input_bytes: 99,
            runs: 2,
        };
        RecordState::Ended {
            info: Box::new(info),
            output_removed,
        }
    }

    #[test]
    fn record_round_trips() {
        for state in [
            RecordState::Running,
            ended(JobPhase::Succeeded, false),
            ended(JobPhase::Failed("m_1 failed".into()), true),
            ended(JobPhase::Killed, true),
        ] {
            let mut rec = record(7, 2, state);
            // The history travels with the record (format version 4).
            rec.history.push_event(
                5,
                crate::diagnosis::JobEvent::WorkerLost {
                    host: "h1".into(),
                    attempts: Vec::new(),
                    outputs: Vec::new(),
                },
            );
            let bytes = encode(&rec).unwrap();
            assert_eq!(&bytes[..4], MAGIC);
            assert_eq!(decode(&bytes).unwrap(), rec);
        }
    }

    // A torn write (any prefix) or a flipped bit is refused, never decoded into a record.
    #[test]
    fn torn_or_corrupt_records_are_refused() {
        let bytes = encode(&record(7, 1, ended(JobPhase::Succeeded, false))).unwrap();
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes[..cut]).is_err(),
                "prefix of {cut} bytes decoded"
            );
        }
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x10;
            assert!(decode(&flipped).is_err(), "flip at byte {i} decoded");
        }
        let mut other_version = bytes.clone();
        other_version[7] = 1;
        let err = decode(&other_version).unwrap_err().to_string();
        assert!(err.contains("format version 1 is not 4"), "{err}");
    }

    #[test]
    fn ids_continue_past_every_record() {
        assert_eq!(next_job_id(&BTreeSet::new()), 1);
        assert_eq!(next_job_id(&BTreeSet::from([3, 9, 4])), 10);
        assert_eq!(next_job_id(&BTreeSet::from([JobId::MAX])), JobId::MAX);
        // Pruning keeps the newest finished records, so the next id survives any pruning.
        let finished: BTreeSet<JobId> = (1..=150).collect();
        let pruned = records_to_prune(&finished, FINISHED_RECORDS_KEPT);
        assert_eq!(pruned, (1..=50).collect::<Vec<_>>());
        let left: BTreeSet<JobId> = finished
            .difference(&pruned.into_iter().collect())
            .copied()
            .collect();
        assert_eq!(next_job_id(&left), 151);
        assert!(records_to_prune(&finished, 1000).is_empty());
    }

    #[test]
    fn record_names_parse_back() {
        assert_eq!(parse_record_name("job_0007"), Some((7, false)));
        assert_eq!(parse_record_name("job_0007.tmp"), Some((7, true)));
        assert_eq!(parse_record_name("job_123456"), Some((123_456, false)));
        let name = record_path(42);
        assert_eq!(
            parse_record_name(name.rsplit('/').next().unwrap()),
            Some((42, false))
        );
        for junk in [
            "job_",
            "job_x1",
            "job_1.tmp.tmp",
            "other",
            "job_-1",
            "job_99999999999999999999999",
        ] {
            assert_eq!(parse_record_name(junk), None, "{junk}");
        }
    }

    #[test]
    fn attempt_numbers_of_runs_never_meet() {
        assert_eq!(first_attempt(1), 0);
        assert_eq!(first_attempt(2), ATTEMPTS_PER_RUN);
        assert!(first_attempt(MAX_RUNS) < u32::MAX - ATTEMPTS_PER_RUN);
        assert_eq!(first_attempt(0), 0);
    }

    #[test]
    fn recovery_plan_per_record() {
        let running = |runs| record(7, runs, RecordState::Running);
        assert_eq!(plan_recovery(&running(1), false), Recovery::Resume);
        assert_eq!(
            plan_recovery(&running(MAX_RUNS - 1), false),
            Recovery::Resume
        );
        // A complete output is never re-run or removed.
        assert_eq!(plan_recovery(&running(1), true), Recovery::Succeeded);
        assert_eq!(plan_recovery(&running(MAX_RUNS), true), Recovery::Succeeded);
        match plan_recovery(&running(MAX_RUNS), false) {
            Recovery::Fail(reason) => assert!(reason.starts_with(RESTART_REASON), "{reason}"),
            other => panic!("expected a failure, got {other:?}"),
        }
        let failed = |removed| record(7, 1, ended(JobPhase::Failed("x".into()), removed));
        assert_eq!(plan_recovery(&failed(false), false), Recovery::RemoveOutput);
        assert_eq!(plan_recovery(&failed(true), false), Recovery::Keep);
        let succeeded = record(7, 1, ended(JobPhase::Succeeded, false));
        assert_eq!(plan_recovery(&succeeded, true), Recovery::Keep);
    }
}
