//! The jobtracker's RPC service: each request becomes a scheduler event or a look at the
//! jobtracker's state, and a heartbeat is held as a long poll until there is a command.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dfs::auth::Principal;
use dfs::rpc::Service;

use crate::diagnosis::AttemptEnd;
use crate::protocol::{
    AttemptOutcome, ErrorKind, JobPhase, JtRequest, JtResponse, MapOutputLoc, WorkerCommand,
    WorkerInfo,
};
use crate::scheduler::{AttemptId, Event, JobId};

use super::{forget_launch, Jobtracker, WorkerSeen};

impl Jobtracker {
    /// Keeps the status messages a worker reported for its running attempts (job pages).
    fn note_statuses(&self, statuses: Vec<(AttemptId, String)>) {
        if statuses.is_empty() {
            return;
        }
        let mut st = self.lock();
        for (attempt, status) in statuses {
            if let Some(e) = st.jobs.get_mut(&attempt.task.job) {
                e.attempt_rows.status(attempt, status);
            }
        }
    }

    /// A live attempt's process started (statistics only).
    fn attempt_started(&self, attempt: AttemptId, unix_ms: u64) {
        let mut st = self.lock();
        let live = st.sched.is_live(attempt);
        if let Some(e) = st.jobs.get_mut(&attempt.task.job).filter(|_| live) {
            let first = e.first_started_unix_ms.get_or_insert(unix_ms);
            *first = (*first).min(unix_ms);
            e.history.started(attempt, unix_ms);
        }
    }

    async fn heartbeat(
        self: &Arc<Self>,
        worker: String,
        slots: u32,
        running: Vec<(AttemptId, f32)>,
        wait_ms: u64,
    ) -> JtResponse {
        let Ok(host) = self.config.host(&worker) else {
            return JtResponse::error(
                ErrorKind::BadRequest,
                format!("{worker:?} is not a host in the cluster config"),
            );
        };
        let rack = host.rack.clone();
        {
            let mut st = self.lock();
            let mut running = running;
            if let Some(pending) = st.launching.get(&worker) {
                running.extend(pending.iter().map(|a| (*a, 0.0)));
            }
            st.workers.insert(
                worker.clone(),
                WorkerSeen {
                    last: Instant::now(),
                    slots,
                    running: running.len() as u32,
                },
            );
            let busy: u32 = st.workers.values().map(|w| w.running).sum();
            crate::metrics::jobtracker()
                .tasks_running
                .set(i64::from(busy));
            self.step_locked(
                &mut st,
                Event::Heartbeat {
                    worker: worker.clone(),
                    rack,
                    slots,
                    running,
                },
            );
        }
        // Long poll: hold the reply until there is a command or the wait is over.
        let deadline = Instant::now() + Duration::from_millis(wait_ms.min(5_000));
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(cmds) = self.take_commands(&worker) {
                return JtResponse::Commands(cmds);
            }
            let now = Instant::now();
            if now >= deadline {
                return JtResponse::Commands(Vec::new());
            }
            let _ = tokio::time::timeout(deadline - now, notified).await;
        }
    }

    /// The commands queued for `worker`, if any.
    fn take_commands(&self, worker: &str) -> Option<Vec<WorkerCommand>> {
        let mut st = self.lock();
        let cmds = st.outbox.remove(worker)?;
        for c in &cmds {
            if let WorkerCommand::Launch(spec) = c {
                forget_launch(&mut st, worker, spec.attempt);
            }
        }
        Some(cmds)
    }

    fn attempt_done(self: &Arc<Self>, worker: &str, attempt: AttemptId, outcome: AttemptOutcome) {
        let mut st = self.lock();
        // Only the worker running an attempt reports its end. (Until connections are
        // authenticated, a worker's name is only claimed; this stops mistakes and blind
        // forgeries, and the committer's part-file check stops an empty success.)
        if let Some(runs_on) = st.sched.worker_of(attempt).filter(|w| *w != worker) {
            tracing::warn!(
                "ignoring the end of {attempt} reported by {worker}: it runs on {runs_on}"
            );
            return;
        }
        let now = crate::protocol::unix_ms();
        let event = match outcome {
            AttemptOutcome::Succeeded { counters } => {
                // A stale attempt (killed, superseded, or from before a restart: unknown to this
                // scheduler) is refused there; its counters are not kept.
                if !st.sched.is_live(attempt) {
                    tracing::info!("ignoring the late success of {attempt} on {worker}");
                } else if let Some(job) = st.jobs.get_mut(&attempt.task.job) {
                    let m = crate::metrics::jobtracker();
                    m.tasks_succeeded.inc();
                    m.spills.inc_by(counters.task.spills);
                    m.shuffle_bytes.inc_by(counters.task.reduce_shuffle_bytes);
                    job.attempt_rows.succeeded(attempt, &counters, now);
                    job.pending.insert(attempt, counters);
                    job.history
                        .ended(attempt, AttemptEnd::Succeeded, crate::protocol::unix_ms());
                }
                Event::AttemptSucceeded { attempt }
            }
            AttemptOutcome::Failed { reason } => {
                tracing::warn!("{attempt} failed on {worker}: {reason}");
                crate::metrics::jobtracker().tasks_failed.inc();
                if let Some(job) = st.jobs.get_mut(&attempt.task.job) {
                    job.attempt_rows.failed(attempt, &reason, now);
                }
                Event::AttemptFailed { attempt, reason }
            }
        };
        self.step_locked(&mut st, event);
    }

    fn map_outputs(&self, reduce: AttemptId) -> JtResponse {
        let st = self.lock();
        let live = st.sched.is_live(reduce);
        let outputs = st
            .sched
            .map_outputs(reduce.task.job)
            .unwrap_or_default()
            .into_iter()
            .map(|o| {
                o.and_then(|(attempt, host)| {
                    let h = self.config.host(&host).ok()?;
                    Some(MapOutputLoc {
                        attempt,
                        host,
                        shuffle_addr: h.worker_addr.clone(),
                    })
                })
            })
            .collect();
        JtResponse::MapOutputs { outputs, live }
    }

    pub(super) fn workers(&self) -> Vec<WorkerInfo> {
        let st = self.lock();
        let timeout = Duration::from_millis(self.mapreduce.worker_timeout_ms);
        st.workers
            .iter()
            .map(|(host, w)| WorkerInfo {
                host: host.clone(),
                rack: self
                    .config
                    .host(host)
                    .map(|h| h.rack.clone())
                    .unwrap_or_default(),
                slots: w.slots,
                running: w.running,
                last_heartbeat_ms: w.last.elapsed().as_millis() as u64,
                live: w.last.elapsed() < timeout,
                cluster_id: self.config.cluster_id.clone(),
            })
            .collect()
    }

    /// Who may send what (G8): a worker speaks only for itself, an attempt's calls come from
    /// its job's token (or a member), a job is killed only by its user or the superuser.
    fn authorize(&self, caller: &Principal, req: &JtRequest) -> std::result::Result<(), String> {
        let of_job = |job: JobId| match caller {
            Principal::Member(_) => true,
            Principal::Task { job: j, .. } => *j == job.to_string(),
            Principal::User(_) => false,
        };
        let ok = match req {
            JtRequest::Heartbeat { worker, .. } | JtRequest::AttemptDone { worker, .. } => {
                caller.worker_host() == Some(worker.as_str())
            }
            JtRequest::AttemptStarted { attempt, .. } => of_job(attempt.task.job),
            JtRequest::MapOutputs { reduce } | JtRequest::FetchFailure { reduce, .. } => {
                of_job(reduce.task.job)
            }
            JtRequest::KillJob { job } => {
                let st = self.lock();
                let owner = st.jobs.get(job).map(|e| e.spec.user.clone());
                caller.is_superuser() || owner.is_none_or(|u| u == caller.user())
            }
            JtRequest::Submit(_) => !matches!(caller, Principal::Task { .. }),
            JtRequest::JobStatus { .. }
            | JtRequest::JobHistory { .. }
            | JtRequest::ListJobs
            | JtRequest::ListWorkers => true,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("{caller} may not send {}", req.name()))
        }
    }

    async fn handle(self: &Arc<Self>, req: JtRequest) -> JtResponse {
        match req {
            JtRequest::Submit(spec) => match self.submit(*spec).await {
                Ok(job) => JtResponse::Submitted { job },
                Err((kind, message)) => JtResponse::Error { kind, message },
            },
            JtRequest::JobStatus { job } => {
                let st = self.lock();
                match self.job_info(&st, job) {
                    Some(info) => JtResponse::Job(Box::new(info)),
                    None => JtResponse::error(ErrorKind::NotFound, format!("no job {job}")),
                }
            }
            JtRequest::ListJobs => {
                let st = self.lock();
                let ids: Vec<JobId> = st.jobs.keys().copied().collect();
                JtResponse::Jobs(
                    ids.into_iter()
                        .filter_map(|j| self.job_info(&st, j))
                        .collect(),
                )
            }
            JtRequest::KillJob { job } => {
                let mut st = self.lock();
                match st.jobs.get(&job).map(|e| e.phase.clone()) {
                    None => JtResponse::error(ErrorKind::NotFound, format!("no job {job}")),
                    Some(JobPhase::Running) => {
                        self.step_locked(&mut st, Event::KillJob { job });
                        JtResponse::Done
                    }
                    Some(_) => JtResponse::error(
                        ErrorKind::BadRequest,
                        format!("job {job} has already ended"),
                    ),
                }
            }
            JtRequest::Heartbeat {
                worker,
                slots,
                running,
                statuses,
                wait_ms,
            } => {
                self.note_statuses(statuses);
                self.heartbeat(worker, slots, running, wait_ms).await
            }
            JtRequest::AttemptDone {
                worker,
                attempt,
                outcome,
            } => {
                self.attempt_done(&worker, attempt, outcome);
                JtResponse::Done
            }
            JtRequest::AttemptStarted { attempt, unix_ms } => {
                self.attempt_started(attempt, unix_ms);
                JtResponse::Done
            }
            JtRequest::MapOutputs { reduce } => self.map_outputs(reduce),
            JtRequest::FetchFailure { reduce, map } => {
                tracing::warn!("{reduce} could not fetch the output of {map}");
                crate::metrics::jobtracker().fetch_failures.inc();
                self.step(Event::FetchFailure { reduce, map });
                JtResponse::Done
            }
            JtRequest::ListWorkers => JtResponse::Workers(self.workers()),
            JtRequest::JobHistory { job } => {
                let st = self.lock();
                match (self.job_info(&st, job), st.jobs.get(&job)) {
                    (Some(info), Some(entry)) => JtResponse::History {
                        info: Box::new(info),
                        history: Box::new(entry.history.clone()),
                    },
                    _ => JtResponse::error(ErrorKind::NotFound, format!("no job {job}")),
                }
            }
        }
    }
}

/// The jobtracker as an RPC [`Service`].
pub(super) struct JtService(pub(super) Arc<Jobtracker>);

impl JtService {
    /// Handles `req` if `caller` may send it.
    async fn authorized(&self, caller: &Principal, req: JtRequest) -> JtResponse {
        if let Err(message) = self.0.authorize(caller, &req) {
            tracing::warn!("refused {caller}: {message}");
            return JtResponse::error(ErrorKind::PermissionDenied, message);
        }
        let req = match req {
            // The job runs as whoever authenticated, whatever the client wrote.
            JtRequest::Submit(mut spec) => {
                spec.user = caller.user().to_string();
                JtRequest::Submit(spec)
            }
            other => other,
        };
        self.0.handle(req).await
    }
}

impl Service for JtService {
    type Request = JtRequest;
    type Response = JtResponse;

    async fn call(&self, caller: &Principal, req: JtRequest) -> JtResponse {
        let started = std::time::Instant::now();
        let method: &'static str = (&req).into();
        let reply = self.authorized(caller, req).await;
        dfs::metrics::rpc().observe(method, started);
        reply
    }

    fn malformed(&self, err: &dfs::Error) -> JtResponse {
        JtResponse::error(ErrorKind::BadRequest, format!("malformed request: {err}"))
    }
}
