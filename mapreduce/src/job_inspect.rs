//! `mrjob why` and `mrjob logs`: a job's history from the jobtracker, explained by
//! [`crate::diagnosis::explain`], and its attempts' logs fetched from the workers that ran
//! them (the jobtracker's attempt list says which).

use std::io::Write;
use std::time::Duration;

use crate::diagnosis::why::JobOutcome;
use crate::diagnosis::{explain, AttemptRun};
use crate::error::{Error, Result};
use crate::protocol::{
    call, LogStream, WorkerCall, WorkerRequest, WorkerResponse, TASK_LOG_CHUNK_BYTES,
};
use crate::scheduler::{AttemptId, JobId};
use crate::submit::ClusterClient;
use dfs::auth::Credentials;

/// Most bytes of one log `mrjob logs` prints (a kept log is far smaller; this bounds a
/// misbehaving worker's replies).
const MAX_PRINTED_LOG_BYTES: u64 = 16 << 20;

/// The lines `mrjob why JOB` prints.
pub fn why(client: &ClusterClient, job: JobId) -> Result<Vec<String>> {
    let (info, history) = client.history(job)?;
    let outcome = JobOutcome {
        id: info.id,
        phase: &info.phase,
        elapsed_ms: info.elapsed_ms,
        submitted_unix_ms: info.submitted_unix_ms,
    };
    Ok(explain(&outcome, &history))
}

/// The attempts `which` names among a job's: every attempt (`None`), a task's attempts
/// (`task_0003_m_000001`, or the short `m_000001`), or one attempt (`attempt_0003_m_000001_0`).
pub fn select<'a>(
    job: JobId,
    attempts: &'a [AttemptRun],
    which: Option<&str>,
) -> Result<Vec<&'a AttemptRun>> {
    let Some(which) = which else {
        return Ok(attempts.iter().collect());
    };
    let picked: Vec<&AttemptRun> = attempts
        .iter()
        .filter(|r| {
            let a = r.attempt.to_string();
            let t = r.attempt.task.to_string();
            a == which || t == which || t.ends_with(&format!("_{which}"))
        })
        .collect();
    if picked.is_empty() {
        return Err(Error::Refused(format!(
            "job {job} has no task or attempt {which:?} (task ids look like task_{job:04}_m_000001 \
             or m_000001; attempt ids like attempt_{job:04}_m_000001_0)"
        )));
    }
    Ok(picked)
}

/// Prints the kept stdout and stderr of the attempts `which` names (see [`select`]) to `out`.
pub fn print_logs(
    client: &ClusterClient,
    job: JobId,
    which: Option<&str>,
    out: &mut dyn Write,
) -> Result<()> {
    let (_, history) = client.history(job)?;
    let io = |e: std::io::Error| Error::io("writing the logs".to_owned(), e);
    for run in select(job, &history.attempts, which)? {
        writeln!(
            out,
            "==> {} on {} ({:?}) <==",
            run.attempt, run.host, run.end
        )
        .map_err(io)?;
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            writeln!(out, "--- {} ---", stream.file_name()).map_err(io)?;
            match fetch_log(client, &run.host, run.attempt, stream) {
                Ok(bytes) => out.write_all(&bytes).map_err(io)?,
                Err(e) => writeln!(out, "(not available: {e})").map_err(io)?,
            }
        }
    }
    Ok(())
}

/// One attempt's kept log from the worker of `host`, in chunks.
pub fn fetch_log(
    client: &ClusterClient,
    host: &str,
    attempt: AttemptId,
    stream: LogStream,
) -> Result<Vec<u8>> {
    let addr = client
        .config()
        .host(host)
        .map_err(|e| Error::BadSetting(e.to_string()))?
        .worker_addr
        .clone();
    let timeout = Duration::from_millis(client.config().rpc_timeout_ms);
    let credentials = client.config().secrets.credentials()?;
    let asked = LogRange {
        attempt,
        stream,
        offset: 0,
        max_bytes: MAX_PRINTED_LOG_BYTES,
    };
    let read = read_log(&addr, credentials, asked, timeout);
    Ok(client.fs().block_on(read)?.0)
}

/// Which part of which attempt's log [`read_log`] reads.
#[derive(Debug, Clone, Copy)]
pub struct LogRange {
    /// The attempt.
    pub attempt: AttemptId,
    /// Which stream.
    pub stream: LogStream,
    /// From this byte.
    pub offset: u64,
    /// At most this many bytes.
    pub max_bytes: u64,
}

/// Part of an attempt's kept log from the worker at `addr`, asked as `credentials` (the
/// worker shows a job's logs only to its user or a member), in chunks; and the log's whole
/// length.
pub async fn read_log(
    addr: &str,
    credentials: &Credentials,
    range: LogRange,
    timeout: Duration,
) -> Result<(Vec<u8>, u64)> {
    let mut data = Vec::new();
    loop {
        let req = WorkerRequest::new(WorkerCall::TaskLog {
            attempt: range.attempt,
            stream: range.stream,
            offset: range.offset + data.len() as u64,
        });
        let resp: WorkerResponse = call(addr, credentials, &req, timeout).await?;
        match resp {
            WorkerResponse::TaskLog {
                data: chunk,
                total_bytes,
            } => {
                let got = chunk.len();
                let room = range.max_bytes.saturating_sub(data.len() as u64) as usize;
                data.extend_from_slice(&chunk[..got.min(room)]);
                let at_end = range.offset + data.len() as u64 >= total_bytes
                    || data.len() as u64 >= range.max_bytes;
                // An empty or oversized chunk ends it too: a misbehaving worker cannot loop us.
                if at_end || got == 0 || got > TASK_LOG_CHUNK_BYTES as usize {
                    return Ok((data, total_bytes));
                }
            }
            WorkerResponse::Error { message, .. } => return Err(Error::Refused(message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::AttemptEnd;
    use crate::scheduler::{Locality, TaskId, TaskKind};

    fn run(kind: TaskKind, index: u32, n: u32) -> AttemptRun {
        AttemptRun {
            attempt: AttemptId {
                task: TaskId {
                    job: 3,
                    kind,
                    index,
                },
                attempt: n,
            },
            host: "h1".into(),
            locality: Locality::Other,
            launched_unix_ms: 0,
            started_unix_ms: None,
            ended_unix_ms: None,
            end: AttemptEnd::Running,
        }
    }

    #[test]
    fn attempts_are_picked_by_task_short_task_or_attempt_id() {
        let runs = [
            run(TaskKind::Map, 1, 0),
            run(TaskKind::Map, 1, 1),
            run(TaskKind::Map, 11, 0),
            run(TaskKind::Reduce, 1, 0),
        ];
        assert_eq!(select(3, &runs, None).unwrap().len(), 4);
        assert_eq!(select(3, &runs, Some("m_000001")).unwrap().len(), 2);
        assert_eq!(
            select(3, &runs, Some("task_0003_r_000001")).unwrap().len(),
            1
        );
        let one = select(3, &runs, Some("attempt_0003_m_000001_1")).unwrap();
        assert_eq!(one[0].attempt.attempt, 1);
        let err = select(3, &runs, Some("m_9")).unwrap_err().to_string();
        assert!(err.contains("no task or attempt \"m_9\""), "{err}");
    }
}
