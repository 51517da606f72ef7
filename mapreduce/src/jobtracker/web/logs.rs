//! The page of one attempt's logs: the head and tail of its stdout and stderr, fetched from
//! the worker that ran it.
//!
//! Logs are the job user's data (G8), so unlike the other pages this one needs a login
//! ([`dfs::http::session`]): an anonymous visitor gets a 401 saying how to log in, and a
//! logged-in user who is neither the job's user nor the superuser a 403, both before anything
//! is fetched. The jobtracker then asks the worker as the logged-in user (it can derive any
//! user's key from the cluster key), through the same `TaskLog` request as `mrjob logs`, so
//! the worker applies its own check ([`crate::task_log::may_read`]) as well.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use dfs::auth::{Authority, Credentials, Principal};
use dfs::http::page::{html_response, json_response, PageError};
use dfs::http::session::Viewer;
use maud::{html, Markup};
use serde::Serialize;

use super::LINKS;
use crate::job_inspect::{read_log, LogRange};
use crate::jobtracker::Jobtracker;
use crate::protocol::LogStream;
use crate::scheduler::{AttemptId, JobId};
use crate::task_log;

/// Bytes of a log's head, and of its tail, the page shows (a worker keeps at most 64 KiB of
/// each by default, so a kept log is usually shown whole).
pub const SHOWN_BYTES: u64 = 64 * 1024;

/// The path of the logs page of `attempt` of `job`.
pub fn url(job: JobId, attempt: &str) -> String {
    format!("/job/{job}/logs/{attempt}")
}

/// One stream of an attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamLog {
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    /// The kept log's length on the worker.
    pub total_bytes: u64,
    /// Its first [`SHOWN_BYTES`] (all of it when shorter).
    pub head: String,
    /// Bytes between the head and the tail not shown.
    pub not_shown_bytes: u64,
    /// Its last [`SHOWN_BYTES`], when the log is longer than the head.
    pub tail: Option<String>,
    /// Why it could not be fetched.
    pub error: Option<String>,
}

/// The logs page's data.
#[derive(Debug, Clone, Serialize)]
pub struct LogsPage {
    /// The job.
    pub job: JobId,
    /// The attempt.
    pub attempt: String,
    /// The worker it ran on.
    pub host: String,
    /// The job's user.
    pub user: String,
    /// Whom the page was fetched for.
    pub viewer: String,
    /// Its stdout, then its stderr.
    pub streams: Vec<StreamLog>,
}

/// Where an attempt ran and whose it is.
struct Target {
    id: AttemptId,
    host: String,
    user: String,
}

fn find(jt: &Jobtracker, job: JobId, attempt: &str) -> Result<Target, PageError> {
    let st = jt.lock();
    let entry = st.jobs.get(&job).ok_or_else(|| {
        PageError::not_found(format!("no job {job} (it may be older than the jobs kept)"))
    })?;
    let row = entry
        .attempt_rows
        .rows()
        .iter()
        .find(|r| r.attempt == attempt)
        .ok_or_else(|| PageError::not_found(format!("job {job} has no attempt {attempt:?}")))?;
    let id = row
        .id()
        .ok_or_else(|| PageError::not_found(format!("attempt {attempt} is not known here")))?;
    Ok(Target {
        id,
        host: row.host.clone(),
        user: entry.spec.user.clone(),
    })
}

/// Whether `viewer` may see the logs of a job of `owner`: 401 when not logged in, 403 when
/// logged in as someone else (pure).
pub fn authorize<'v>(
    viewer: &'v Viewer,
    owner: &str,
    what: &str,
) -> Result<&'v Principal, PageError> {
    let principal = viewer.require(what)?;
    if task_log::may_read(principal, Some(owner)) {
        return Ok(principal);
    }
    Err(PageError {
        status: StatusCode::FORBIDDEN,
        error: format!("{what} are user {owner}'s: {} may not see them", principal),
        see: None,
    })
}

/// The credentials the jobtracker asks a worker with on behalf of `principal`.
fn acting_for(authority: &Authority, principal: &Principal) -> Credentials {
    match principal {
        Principal::Member(name) => authority.member_credentials(name),
        Principal::User(user) | Principal::Task { user, .. } => {
            Credentials::user(user, authority.user_key(user))
        }
    }
}

/// The head and tail of one stream.
async fn read_stream(
    addr: &str,
    credentials: &Credentials,
    attempt: AttemptId,
    stream: LogStream,
    timeout: Duration,
) -> StreamLog {
    let mut log = StreamLog {
        stream: stream.file_name(),
        total_bytes: 0,
        head: String::new(),
        not_shown_bytes: 0,
        tail: None,
        error: None,
    };
    let range = |offset| LogRange {
        attempt,
        stream,
        offset,
        max_bytes: SHOWN_BYTES,
    };
    let (head, total) = match read_log(addr, credentials, range(0), timeout).await {
        Ok(r) => r,
        Err(e) => {
            log.error = Some(e.to_string());
            return log;
        }
    };
    log.total_bytes = total;
    log.head = String::from_utf8_lossy(&head).into_owned();
    if total > SHOWN_BYTES {
        let from = total.saturating_sub(SHOWN_BYTES).max(SHOWN_BYTES);
        log.not_shown_bytes = from - SHOWN_BYTES;
        match read_log(addr, credentials, range(from), timeout).await {
            Ok((tail, _)) => log.tail = Some(String::from_utf8_lossy(&tail).into_owned()),
            Err(e) => log.error = Some(e.to_string()),
        }
    }
    log
}

async fn gather(
    jt: &Jobtracker,
    viewer: &Viewer,
    job: JobId,
    attempt: &str,
) -> Result<LogsPage, PageError> {
    let target = find(jt, job, attempt)?;
    let what = format!("the logs of {attempt}");
    let principal = authorize(viewer, &target.user, &what)?;
    let addr = jt
        .config
        .host(&target.host)
        .map_err(|e| PageError::from_dfs(&e, None))?
        .worker_addr
        .clone();
    let credentials = acting_for(&jt.authority, principal);
    let timeout = Duration::from_millis(jt.config.rpc_timeout_ms);
    let mut streams = Vec::new();
    for stream in [LogStream::Stdout, LogStream::Stderr] {
        streams.push(read_stream(&addr, &credentials, target.id, stream, timeout).await);
    }
    Ok(LogsPage {
        job,
        attempt: attempt.to_owned(),
        host: target.host,
        user: target.user,
        viewer: principal.user().to_owned(),
        streams,
    })
}

/// Logs are private: no cache keeps them after the session ends.
fn private(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `/job/{id}/logs/{attempt}`.
pub async fn page(
    State(jt): State<Arc<Jobtracker>>,
    viewer: Viewer,
    Path((job, attempt)): Path<(JobId, String)>,
) -> Response {
    let data = gather(&jt, &viewer, job, &attempt).await;
    let title = format!("Logs of {attempt}");
    private(html_response(&title, LINKS, data, |p| (render(p), false)))
}

/// `/api/job/{id}/logs/{attempt}`.
pub async fn api(
    State(jt): State<Arc<Jobtracker>>,
    viewer: Viewer,
    Path((job, attempt)): Path<(JobId, String)>,
) -> Response {
    private(json_response(gather(&jt, &viewer, job, &attempt).await))
}

fn render(p: &LogsPage) -> Markup {
    html! {
        p {
            "job " a href=(format!("/job/{}", p.job)) { (p.job) }
            " of user " (p.user) ", ran on " (p.host) "; shown to " (p.viewer)
        }
        @for s in &p.streams {
            h2 { (s.stream) }
            @if let Some(e) = &s.error { p.bad { "not available: " (e) } }
            @else {
                p { (dfs::http::page::bytes(s.total_bytes)) " kept on the worker" }
                pre id=(s.stream) { (s.head) }
                @if let Some(tail) = &s.tail {
                    p { "[" (s.not_shown_bytes) " bytes not shown]" }
                    pre id=(format!("{}-tail", s.stream)) { (tail) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs::auth::Key;

    fn viewer(principal: Option<Principal>) -> Viewer {
        Viewer {
            principal,
            refused: None,
            login_hint: "mrjob web JOB",
        }
    }

    #[test]
    fn only_the_jobs_user_or_the_superuser_sees_its_logs() {
        let what = "the logs of attempt_0001_m_000000_0";
        let err = authorize(&viewer(None), "alice", what).unwrap_err();
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
        assert!(err.error.contains("mrjob web JOB"), "{}", err.error);
        let bob = viewer(Some(Principal::User("bob".into())));
        let err = authorize(&bob, "alice", what).unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);
        assert!(err.error.contains("user alice's"), "{}", err.error);
        let alice = viewer(Some(Principal::User("alice".into())));
        assert!(authorize(&alice, "alice", what).is_ok());
        let admin = viewer(Some(Principal::Member("admin".into())));
        assert!(authorize(&admin, "alice", what).is_ok());
    }

    #[test]
    fn the_worker_is_asked_as_the_viewer() {
        let authority = Authority::new(Key::generate());
        let alice = acting_for(&authority, &Principal::User("alice".into()));
        assert_eq!(
            alice,
            Credentials::user("alice", authority.user_key("alice"))
        );
        let admin = acting_for(&authority, &Principal::Member("admin".into()));
        assert_eq!(admin, authority.member_credentials("admin"));
    }

    #[test]
    fn the_page_escapes_log_text() {
        let p = LogsPage {
            job: 1,
            attempt: "attempt_0001_m_000000_0".into(),
            host: "h1".into(),
            user: "alice".into(),
            viewer: "alice".into(),
            streams: vec![StreamLog {
                stream: "stderr",
                total_bytes: 20,
                head: "<script>x</script>".into(),
                not_shown_bytes: 0,
                tail: None,
                error: None,
            }],
        };
        let html = render(&p).into_string();
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
    }
}
