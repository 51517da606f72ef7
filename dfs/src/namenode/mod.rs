//! The namenode daemon: the namespace replicated with Raft, the block map, and the RPC server.
//!
//! The pure core (plain structs and functions, no sockets, threads or clocks; tested alone):
//!
//! - [`namespace`]: the replicated state machine: directories, files, their blocks and leases.
//! - [`block_map`]: the soft state of datanodes and replicas, and the commands queued for them.
//! - [`placement`]: replica placement, re-replication and deletion decisions.
//! - [`completion`]: the rule for when a file may be closed (G2: enough good replicas).
//! - [`block_recovery`]: the rule for the length a dead writer's last block is closed at.
//! - [`permission`]: users' permissions (owner, group, mode; the sticky bit): may this user
//!   do this to this path.
//! - [`raft_guard`]: which Raft messages from the network may reach raft-rs at all.
//!
//! The I/O shell around it:
//!
//! - [`storage`]: durable Raft log, hard state and snapshots (WAL + snapshot file).
//! - [`raft_driver`]: the raft-rs Ready loop: persist, send, apply, compact.
//! - [`batch`]: proposals and reads collected in one drain of the driver's queue, handed to
//!   raft-rs together.
//! - [`transport`]: Raft messages between namenodes (protobuf bytes in frames).
//! - [`access`]: which permission each RPC needs of its paths, checked before it runs.
//! - [`server`]: the RPC service; `daemon`: [`run`], which starts a namenode's storage, Raft
//!   node and the servers of its ports.
//! - [`lease_recovery`]: the leader's periodic duties: replication check and lease recovery.
//! - [`web`]: the namenode's read-only web pages and their JSON twins (`render`: the HTML).

pub mod access;
pub mod batch;
pub mod block_map;
pub mod block_recovery;
pub mod completion;
mod daemon;
pub mod lease_recovery;
pub mod namespace;
pub mod permission;
pub mod placement;
pub mod raft_driver;
pub mod raft_guard;
pub mod server;
pub mod storage;
pub mod transport;
pub mod web;

pub use daemon::run;

/// The tokio runtime a namenode daemon runs on: ONE thread for everything async (RPC handlers,
/// the Raft transport and the driver), plus tokio's blocking pool, where the driver's WAL fsyncs
/// run.
///
/// Why not a multi-threaded runtime: the Raft driver is one task, so the write path gains
/// nothing from more threads, while every hop between an RPC handler, the driver and the
/// transport becomes a cross-thread wakeup (a futex call and often a context switch). Measured
/// with `bench_namespace_ops` (dfs/tests/namenode_cluster.rs) on 2 cores: the namenodes' CPU per
/// create + complete fell by about a fifth and per `stat` by about two thirds, with matching
/// throughput gains. Reads are a lookup under a read lock after the shared ReadIndex, cheap
/// enough that one thread serves tens of thousands a second.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
