//! The process's Prometheus metrics, served as text on every daemon's `/metrics`
//! ([`crate::http`]).
//!
//! A daemon is a process, so the registry is the process's: one static, to which each group of
//! metrics is added the first time it is used. A daemon touches its groups at start
//! ([`rpc`], [`namenode`], [`datanode`]; the mapreduce crate adds its own through
//! [`register`]), so a scrape shows them at zero before any work. Counting is an atomic add
//! where the work happens; nothing here takes a lock on a hot path (only registration and
//! rendering do).

use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::default()));

/// Adds `metric` to the process's registry as `name` (Prometheus adds `_total` to counters).
pub fn register(name: &str, help: &str, metric: impl Metric) {
    crate::lock::lock(&REGISTRY).register(name, help, metric);
}

/// The registry as Prometheus text exposition format.
pub fn render() -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; an error would be a bug in a metric's encoder.
    if let Err(e) =
        prometheus_client::encoding::text::encode(&mut out, &crate::lock::lock(&REGISTRY))
    {
        tracing::error!("encoding /metrics: {e}");
    }
    out
}

/// Latency buckets from 100 µs to about 26 s (x2 each), for RPCs and fsyncs alike.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 19))
}

/// The method label of an RPC metric: the request's variant name.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    /// The request kind, such as `AddBlock` or `Heartbeat`.
    pub method: &'static str,
}

type LatencyFamily = Family<MethodLabel, Histogram, fn() -> Histogram>;

/// RPCs a server answered, by method (namenode and jobtracker).
#[derive(Debug)]
pub struct RpcMetrics {
    requests: Family<MethodLabel, Counter>,
    seconds: LatencyFamily,
}

impl RpcMetrics {
    /// Counts one answered call of `method` that began at `started`.
    pub fn observe(&self, method: &'static str, started: Instant) {
        let label = MethodLabel { method };
        self.requests.get_or_create(&label).inc();
        self.seconds
            .get_or_create(&label)
            .observe(started.elapsed().as_secs_f64());
    }
}

/// The RPC metrics (registered on first use).
pub fn rpc() -> &'static RpcMetrics {
    static RPC: LazyLock<RpcMetrics> = LazyLock::new(|| {
        let m = RpcMetrics {
            requests: Family::default(),
            seconds: Family::new_with_constructor(latency_histogram),
        };
        register(
            "rpc_requests",
            "RPC calls answered, by method",
            m.requests.clone(),
        );
        register(
            "rpc_duration_seconds",
            "Time to answer an RPC call, by method",
            m.seconds.clone(),
        );
        m
    });
    &RPC
}

/// What a namenode counts.
#[derive(Debug)]
pub struct NamenodeMetrics {
    /// Entries proposed to Raft (namespace writes).
    pub raft_proposals: Counter,
    /// Time of each fsync of the Raft log.
    pub fsync_seconds: Histogram,
    /// Datanode heartbeats received.
    pub heartbeats: Counter,
    /// Replication commands queued for datanodes (re-replication of under-replicated blocks).
    pub rereplications_queued: Counter,
}

/// The namenode metrics (registered on first use).
pub fn namenode() -> &'static NamenodeMetrics {
    static NN: LazyLock<NamenodeMetrics> = LazyLock::new(|| {
        let m = NamenodeMetrics {
            raft_proposals: Counter::default(),
            fsync_seconds: latency_histogram(),
            heartbeats: Counter::default(),
            rereplications_queued: Counter::default(),
        };
        register(
            "dfs_raft_proposals",
            "Entries proposed to Raft",
            m.raft_proposals.clone(),
        );
        register(
            "dfs_raft_fsync_duration_seconds",
            "Time of one fsync of the Raft log",
            m.fsync_seconds.clone(),
        );
        register(
            "dfs_heartbeats",
            "Datanode heartbeats received",
            m.heartbeats.clone(),
        );
        register(
            "dfs_rereplications_queued",
            "Block copies ordered to repair under-replication",
            m.rereplications_queued.clone(),
        );
        m
    });
    &NN
}

/// What a datanode counts.
#[derive(Debug)]
pub struct DatanodeMetrics {
    /// Replica bytes sent to readers (checksums excluded).
    pub bytes_read: Counter,
    /// Replica bytes received and written (pipeline writes and replication).
    pub bytes_written: Counter,
    /// Checksum mismatches found (on write, on read, by the scanner).
    pub checksum_failures: Counter,
}

/// The datanode metrics (registered on first use).
pub fn datanode() -> &'static DatanodeMetrics {
    static DN: LazyLock<DatanodeMetrics> = LazyLock::new(|| {
        let m = DatanodeMetrics {
            bytes_read: Counter::default(),
            bytes_written: Counter::default(),
            checksum_failures: Counter::default(),
        };
        register(
            "dfs_datanode_read_bytes",
            "Replica bytes sent to readers",
            m.bytes_read.clone(),
        );
        register(
            "dfs_datanode_written_bytes",
            "Replica bytes received and written",
            m.bytes_written.clone(),
        );
        register(
            "dfs_checksum_failures",
            "Checksum mismatches found",
            m.checksum_failures.clone(),
        );
        m
    });
    &DN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_prometheus_text() {
        rpc().observe("Mkdirs", Instant::now());
        datanode().bytes_written.inc_by(512);
        let text = render();
        assert!(
            text.contains("rpc_requests_total{method=\"Mkdirs\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("dfs_datanode_written_bytes_total 512"),
            "{text}"
        );
        assert!(text.contains("rpc_duration_seconds_bucket{le="), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
