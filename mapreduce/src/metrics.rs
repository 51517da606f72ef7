//! The MapReduce daemons' Prometheus metrics, in the process registry of [`dfs::metrics`]
//! (served on `/metrics` of the jobtracker's and each worker's web port). Counted where the
//! work is decided (the jobtracker) or done (the worker's shuffle server); tasks run in child
//! processes, so what they count (spills) reaches here through their counters.

use std::sync::LazyLock;

use dfs::metrics::register;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

/// What the jobtracker counts.
#[derive(Debug)]
pub struct JobtrackerMetrics {
    /// Jobs accepted.
    pub jobs_submitted: Counter,
    /// Jobs that ended (succeeded, failed or killed).
    pub jobs_finished: Counter,
    /// Attempts launched.
    pub tasks_launched: Counter,
    /// Attempts that succeeded.
    pub tasks_succeeded: Counter,
    /// Attempts that failed.
    pub tasks_failed: Counter,
    /// Attempts running or committing now, over all jobs.
    pub tasks_running: Gauge,
    /// Reduce attempts that could not fetch a map's output.
    pub fetch_failures: Counter,
    /// Map-side spills of succeeded attempts.
    pub spills: Counter,
    /// Shuffle bytes read by succeeded reduce attempts.
    pub shuffle_bytes: Counter,
}

/// The jobtracker metrics (registered on first use).
pub fn jobtracker() -> &'static JobtrackerMetrics {
    static JT: LazyLock<JobtrackerMetrics> = LazyLock::new(|| {
        let m = JobtrackerMetrics {
            jobs_submitted: Counter::default(),
            jobs_finished: Counter::default(),
            tasks_launched: Counter::default(),
            tasks_succeeded: Counter::default(),
            tasks_failed: Counter::default(),
            tasks_running: Gauge::default(),
            fetch_failures: Counter::default(),
            spills: Counter::default(),
            shuffle_bytes: Counter::default(),
        };
        let c = |name: &str, help: &str, metric: &Counter| register(name, help, metric.clone());
        c(
            "mapreduce_jobs_submitted",
            "Jobs accepted",
            &m.jobs_submitted,
        );
        c(
            "mapreduce_jobs_finished",
            "Jobs that ended",
            &m.jobs_finished,
        );
        c(
            "mapreduce_tasks_launched",
            "Attempts launched",
            &m.tasks_launched,
        );
        c(
            "mapreduce_tasks_succeeded",
            "Attempts that succeeded",
            &m.tasks_succeeded,
        );
        c(
            "mapreduce_tasks_failed",
            "Attempts that failed",
            &m.tasks_failed,
        );
        c(
            "mapreduce_fetch_failures",
            "Reduce attempts that could not fetch a map output",
            &m.fetch_failures,
        );
        c(
            "mapreduce_spills",
            "Map-side spills of succeeded attempts",
            &m.spills,
        );
        c(
            "mapreduce_shuffle_read_bytes",
            "Shuffle bytes read by succeeded reduce attempts",
            &m.shuffle_bytes,
        );
        register(
            "mapreduce_tasks_running",
            "Attempts running or committing",
            m.tasks_running.clone(),
        );
        m
    });
    &JT
}

/// What a worker counts.
#[derive(Debug)]
pub struct WorkerMetrics {
    /// Attempt processes running here now.
    pub tasks_running: Gauge,
    /// Attempts started here.
    pub tasks_started: Counter,
    /// Map-output bytes sent to reducers by this worker's shuffle server.
    pub shuffle_bytes_served: Counter,
}

/// The worker metrics (registered on first use).
pub fn worker() -> &'static WorkerMetrics {
    static W: LazyLock<WorkerMetrics> = LazyLock::new(|| {
        let m = WorkerMetrics {
            tasks_running: Gauge::default(),
            tasks_started: Counter::default(),
            shuffle_bytes_served: Counter::default(),
        };
        register(
            "mapreduce_worker_tasks_running",
            "Attempt processes running on this worker",
            m.tasks_running.clone(),
        );
        register(
            "mapreduce_worker_tasks_started",
            "Attempts started on this worker",
            m.tasks_started.clone(),
        );
        register(
            "mapreduce_shuffle_served_bytes",
            "Map-output bytes sent to reducers",
            m.shuffle_bytes_served.clone(),
        );
        m
    });
    &W
}
