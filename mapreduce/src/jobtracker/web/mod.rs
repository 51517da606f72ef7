//! The jobtracker's web pages and their JSON twins, on its web port ([`dfs::http`]).
//!
//! Each page is one serializable value, gathered from the jobtracker's state under its lock
//! (briefly: a copy is taken and the lock let go before anything is rendered); [`render`]
//! turns it into HTML and `/api/...` sends it as JSON. Routes (all GET; none changes anything,
//! so the port stays read-only and killing a job remains `mrjob kill`'s):
//!
//! - `/` and `/api/jobs`: running and recent jobs (state, user, submit time, duration,
//!   progress per phase) and the workers;
//! - `/job/{id}` and `/api/job/{id}`: one job: its tasks and every attempt (state, host,
//!   locality, start, duration, bytes and records), the [`timeline`] of attempts per host,
//!   counters, reduce-input skew and stragglers ([`analysis`]), and each failed attempt's
//!   error with a link to its logs (and the command that prints them);
//! - `/job/{id}/logs/{attempt}` and its `/api/` twin: the head and tail of an attempt's
//!   stdout and stderr ([`logs`]), for the job's user or the superuser, logged in;
//! - `/login?token=...&next=...`: the web login (`mrjob web` prints the URL;
//!   [`dfs::http::session`]).
//!
//! Pages of a running job reload themselves every few seconds.

pub mod analysis;
pub mod logs;
pub mod render;
pub mod timeline;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use dfs::http::page::{html_response, json_response, PageError};
use dfs::http::session::{with_login, WebAuth};
use serde::Serialize;

use super::history::{AttemptRow, AttemptState};
use super::{JobEntry, Jobtracker};
use crate::protocol::{unix_ms, JobPhase, WorkerInfo};
use crate::scheduler::{JobId, JobStatus, TaskKind};

use self::analysis::{Skew, Straggler};

/// The navigation links of every jobtracker page.
pub const LINKS: &[(&str, &str)] = &[("/", "Jobs")];

/// The command that prints a login URL for these pages.
pub const LOGIN_HINT: &str = "mrjob web JOB";

/// The jobtracker's routes.
pub fn router(jt: Arc<Jobtracker>) -> Router {
    let auth = WebAuth::new(jt.authority.clone(), LOGIN_HINT);
    let routes = Router::new()
        .route("/", get(jobs_page))
        .route("/api/jobs", get(jobs_api))
        .route("/job/{id}", get(job_page))
        .route("/api/job/{id}", get(job_api))
        .route("/job/{id}/logs/{attempt}", get(logs::page))
        .route("/api/job/{id}/logs/{attempt}", get(logs::api))
        .with_state(jt);
    with_login(routes, auth)
}

/// One job in the jobs list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRow {
    /// Job id.
    pub id: JobId,
    /// Its name.
    pub name: String,
    /// Who submitted it.
    pub user: String,
    /// `RUNNING`, `SUCCEEDED` or `FAILED`.
    pub state: &'static str,
    /// Why it failed.
    pub reason: Option<String>,
    /// When the jobtracker received it (ms since the Unix epoch).
    pub submitted_unix_ms: u64,
    /// Milliseconds since submission, until its end.
    pub elapsed_ms: u64,
    /// Map tasks done, running, in all.
    pub maps: (u32, u32, u32),
    /// Reduce tasks done, running, in all.
    pub reduces: (u32, u32, u32),
}

/// The jobs page's data.
#[derive(Debug, Clone, Serialize)]
pub struct JobsPage {
    /// Jobs, newest first.
    pub jobs: Vec<JobRow>,
    /// The workers.
    pub workers: Vec<WorkerInfo>,
}

/// One counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CounterRow {
    /// Its group.
    pub group: String,
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: u64,
}

/// One task, from its attempts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRow {
    /// `task_0007_m_000003`.
    pub task: String,
    /// Map or reduce.
    pub kind: TaskKind,
    /// Split or partition number.
    pub index: u32,
    /// Succeeded when an attempt did; else running when one runs; else its last attempt's end.
    pub state: AttemptState,
    /// Attempts launched.
    pub attempts: u32,
    /// Where the attempt that counts ran (the succeeded one, else the last).
    pub host: String,
}

/// A failed attempt and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedAttempt {
    /// The attempt.
    pub attempt: String,
    /// Where it ran.
    pub host: String,
    /// Its error (the tail).
    pub error: String,
    /// The command that prints its logs.
    pub logs: String,
    /// The page of its logs (for the job's user, logged in).
    pub logs_url: String,
}

/// The job page's data.
#[derive(Debug, Clone, Serialize)]
pub struct JobPage {
    /// The job's summary.
    pub job: JobRow,
    /// Its output directory.
    pub output: String,
    /// Input bytes over all splits.
    pub input_bytes: u64,
    /// Scheduler statistics (attempts launched, failed, killed, speculative, locality).
    pub status: JobStatus,
    /// Counters of the accepted attempts.
    pub counters: Vec<CounterRow>,
    /// Tasks that had an attempt, maps first.
    pub tasks: Vec<TaskRow>,
    /// Every attempt, in launch order.
    pub attempts: Vec<AttemptRow>,
    /// Attempts launched but not kept (beyond the history's bound).
    pub attempts_not_kept: u64,
    /// Reduce-input skew, with two or more finished reduces.
    pub skew: Option<Skew>,
    /// Attempts much slower than their kind's median.
    pub stragglers: Vec<Straggler>,
    /// Failed attempts with their errors.
    pub failed: Vec<FailedAttempt>,
    /// When the page was gathered (ms since the Unix epoch).
    pub now_unix_ms: u64,
}

fn job_row(jt: &Jobtracker, st: &super::State, id: JobId) -> Option<JobRow> {
    let info = jt.job_info(st, id)?;
    let (state, reason) = match &info.phase {
        JobPhase::Running => ("RUNNING", None),
        JobPhase::Succeeded => ("SUCCEEDED", None),
        JobPhase::Failed(r) => ("FAILED", Some(r.clone())),
        JobPhase::Killed => ("KILLED", None),
    };
    let s = &info.status;
    Some(JobRow {
        id,
        name: info.name,
        user: info.user,
        state,
        reason,
        submitted_unix_ms: info.submitted_unix_ms,
        elapsed_ms: info.elapsed_ms,
        maps: (s.maps_done, s.maps_running, s.maps_total),
        reduces: (s.reduces_done, s.reduces_running, s.reduces_total),
    })
}

fn gather_jobs(jt: &Jobtracker) -> JobsPage {
    let jobs = {
        let st = jt.lock();
        let ids: Vec<JobId> = st.jobs.keys().rev().copied().collect();
        ids.into_iter()
            .filter_map(|id| job_row(jt, &st, id))
            .collect()
    };
    JobsPage {
        jobs,
        workers: jt.workers(),
    }
}

/// Tasks from their attempts: one row per task, maps then reduces, by index.
pub fn tasks(attempts: &[AttemptRow]) -> Vec<TaskRow> {
    let mut by_task: BTreeMap<(TaskKind, u32), TaskRow> = BTreeMap::new();
    for a in attempts {
        let row = by_task.entry((a.kind, a.index)).or_insert_with(|| TaskRow {
            task: a.task.clone(),
            kind: a.kind,
            index: a.index,
            state: a.state,
            attempts: 0,
            host: a.host.clone(),
        });
        row.attempts += 1;
        let rank = |s: AttemptState| match s {
            AttemptState::Succeeded => 2,
            AttemptState::Running => 1,
            _ => 0,
        };
        if rank(a.state) >= rank(row.state) {
            row.state = a.state;
            row.host = a.host.clone();
        }
    }
    by_task.into_values().collect()
}

fn gather_job(jt: &Jobtracker, id: JobId) -> Result<JobPage, PageError> {
    let now_unix_ms = unix_ms();
    let (job, info, attempts, dropped, partitions) = {
        let st = jt.lock();
        let missing =
            || PageError::not_found(format!("no job {id} (it may be older than the jobs kept)"));
        let entry: &JobEntry = st.jobs.get(&id).ok_or_else(missing)?;
        let attempts = entry.attempt_rows.snapshot(|a| st.sched.is_live(a));
        let partitions: Vec<(u32, u64, u64)> = entry
            .accepted
            .iter()
            .filter(|(t, _)| t.kind == TaskKind::Reduce)
            .map(|(t, c)| {
                (
                    t.index,
                    c.task.reduce_input_records,
                    c.task.reduce_shuffle_bytes,
                )
            })
            .collect();
        let job = job_row(jt, &st, id).ok_or_else(missing)?;
        let info = jt.job_info(&st, id).ok_or_else(missing)?;
        (job, info, attempts, entry.attempt_rows.dropped, partitions)
    };
    let failed = attempts
        .iter()
        .filter(|a| a.state == AttemptState::Failed)
        .map(|a| FailedAttempt {
            attempt: a.attempt.clone(),
            host: a.host.clone(),
            error: a.error.clone().unwrap_or_default(),
            logs: format!("mrjob logs {id} {}", a.attempt),
            logs_url: logs::url(id, &a.attempt),
        })
        .collect();
    let counters = info
        .counters
        .rows()
        .into_iter()
        .map(|(g, n, v)| CounterRow {
            group: g.to_owned(),
            name: n.to_owned(),
            value: v,
        })
        .collect();
    Ok(JobPage {
        job,
        output: info.output,
        input_bytes: info.input_bytes,
        status: info.status,
        counters,
        tasks: tasks(&attempts),
        stragglers: analysis::stragglers(&attempts, now_unix_ms),
        attempts,
        attempts_not_kept: dropped,
        skew: analysis::skew(&partitions),
        failed,
        now_unix_ms,
    })
}

async fn jobs_page(State(jt): State<Arc<Jobtracker>>) -> Response {
    let data = gather_jobs(&jt);
    html_response("Jobtracker", LINKS, Ok(data), |p| {
        let running = p.jobs.iter().any(|j| j.state == "RUNNING");
        (render::jobs(p), running)
    })
}

async fn jobs_api(State(jt): State<Arc<Jobtracker>>) -> Response {
    json_response::<JobsPage>(Ok(gather_jobs(&jt)))
}

async fn job_page(State(jt): State<Arc<Jobtracker>>, Path(id): Path<JobId>) -> Response {
    let data = gather_job(&jt, id);
    let title = match &data {
        Ok(p) => format!("Job {id}: {}", p.job.name),
        Err(_) => format!("Job {id}"),
    };
    html_response(&title, LINKS, data, |p| {
        (render::job(p), p.job.state == "RUNNING")
    })
}

async fn job_api(State(jt): State<Arc<Jobtracker>>, Path(id): Path<JobId>) -> Response {
    json_response(gather_job(&jt, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobtracker::history::History;
    use crate::scheduler::{AttemptId, Locality, TaskId};

    #[test]
    fn a_task_shows_its_best_attempt() {
        let mut h = History::default();
        let a = |kind, index, attempt| AttemptId {
            task: TaskId {
                job: 1,
                kind,
                index,
            },
            attempt,
        };
        h.launched(a(TaskKind::Reduce, 0, 0), "h1", Locality::Other, 0);
        h.launched(a(TaskKind::Map, 0, 0), "h1", Locality::DataLocal, 0);
        h.failed(a(TaskKind::Map, 0, 0), "x", 1);
        h.launched(a(TaskKind::Map, 0, 1), "h2", Locality::RackLocal, 2);
        h.succeeded(a(TaskKind::Map, 0, 1), &Default::default(), 3);
        let rows = tasks(h.rows());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].task, "task_0001_m_000000");
        assert_eq!(
            (rows[0].state, rows[0].attempts),
            (AttemptState::Succeeded, 2)
        );
        assert_eq!(rows[0].host, "h2");
        assert_eq!(rows[1].state, AttemptState::Running);
    }
}
