//! dfs: a replicated block filesystem.
//!
//! # Layout
//!
//! - [`auth`]: keys, principals and the HMAC handshake every connection begins with;
//!   `auth::web_token`, the web pages' login tokens and session cookies.
//! - [`error`]: the crate's one error type and its wire kinds.
//! - [`frame`]: length-prefixed framing with limits, and the binary message format.
//! - [`clock`]: the wall clock in milliseconds since the epoch, the one timestamp unit.
//! - [`config`]: `cluster.toml` (namenodes, hosts, sizes, timeouts; the `[mapreduce]` table is
//!   the mapreduce crate's) and the local generator.
//! - [`protocol`]: messages to and from the namenodes (start here to talk to them).
//! - [`listener`]: the one bounded TCP server of every port: connection limit, handshake hook,
//!   idle and read timeouts, accept back-off, graceful shutdown (and SIGTERM for daemons).
//! - [`rpc`]: request/response serving on [`listener`], and the leader-following namenode client.
//! - [`path`]: filesystem path validation.
//! - [`wal`]: write-ahead log segments with a CRC per record and torn-tail cutting.
//! - [`namenode`]: the Raft-replicated namenode daemon. Its pure core (no I/O, no clock):
//!   [`namenode::namespace`] (the replicated state machine: directories, files, blocks, leases),
//!   [`namenode::block_map`] (soft state of datanodes and replicas), [`namenode::placement`]
//!   (replica placement, re-replication, deletion), [`namenode::completion`] (when a file may
//!   be closed, G2) and [`namenode::block_recovery`] (the length a dead writer's last block is
//!   closed at); around it the I/O shell: storage, Raft driver, transport, RPC service, lease
//!   recovery.
//! - [`durable`]: the one audited durable write (tmp → fsync → rename → fsync dir).
//! - [`power_loss`]: test-only model of what survives a power loss (what was fsynced), and `materialize`.
//! - [`checksum`]: CRC32 per 512-byte chunk and the block checksum sidecar format.
//! - [`block_store`]: the datanode's on-disk replicas: the store (index, finalize, restart cleanup,
//!   scan, lease recovery) in `mod.rs`; `replica` (the on-disk format, also read by clients'
//!   short-circuit reads), `writer` (a replica being written), `parked` (replicas kept for lease
//!   recovery).
//! - [`transfer`]: the datanode data-transfer protocol: `wire` (messages, packets, framing),
//!   `server` (accept and dispatch), `pipeline` (pipeline writes, both ends, and replication),
//!   `read` (verified reads, both ends), `recovery` (lease recovery's two steps).
//! - [`datanode`]: the datanode daemon: store, transfer server, reports to every namenode, commands, scanner.
//! - [`client`]: `DfsClient` and its metadata calls (`mod.rs`); `writer` (`FileWriter`: pipeline
//!   writes with recovery), `reader` (`FileReader`: verified reads with failover and
//!   short-circuit).
//! - [`shell`]: the `dfs` shell commands (`ls`, `put`, `get`, `fsck`, ...).
//! - [`stdout`]: the tools' standard output: a closed pipe (`| head`) ends a command quietly.
//! - [`local_cluster`]: `dfs cluster start|stop` and the daemon process control behind it.
//! - [`units`]: sizes with units: the workspace's one size parser, and human-readable sizes.
//! - [`lock`]: the one policy for poisoned locks (the process ends), and the helpers that apply it.
//! - [`http`]: every daemon's read-only web port (axum on hyper, through [`listener`]): pages,
//!   their JSON twins, `/metrics`; `http::page` is the common HTML frame, `http::session` the
//!   login (`/login`, the session cookie, whom a request acts for).
//! - [`metrics`]: the process's Prometheus registry and the dfs daemons' metrics.
#![deny(missing_docs)]

pub mod auth;
pub mod block_store;
pub mod checksum;
pub mod client;
pub mod clock;
pub mod config;
pub mod datanode;
pub mod durable;
pub mod error;
pub mod frame;
pub mod http;
pub mod listener;
pub mod local_cluster;
pub mod lock;
pub mod metrics;
pub mod namenode;
pub mod path;
pub mod power_loss;
pub mod protocol;
pub mod rpc;
pub mod shell;
pub mod stdout;
pub mod transfer;
pub mod units;
pub mod wal;

pub use error::{Error, ErrorKind, Result};
