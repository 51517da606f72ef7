//! dfs: a replicated block filesystem.
//!
//! # Layout
//!
//! - [`error`]: the crate's one error type and its wire kinds.
//! - [`frame`]: length-prefixed framing with limits, and the binary message format.
//! - [`config`]: `cluster.toml` (namenodes, hosts, sizes, timeouts; the `[mapreduce]` table is
//!   the mapreduce crate's) and the local generator.
//! - [`protocol`]: messages to and from the namenodes (start here to talk to them).
//! - [`rpc`]: request/response server helper and the leader-following namenode client.
//! - [`path`]: filesystem path validation.
//! - [`wal`]: write-ahead log segments with a CRC per record and torn-tail cutting.
//! - [`namenode`]: the Raft-replicated namenode daemon (storage, driver, server).
//! - [`block_map`]: the namenode's soft state of datanodes and replicas, and its commands.
//! - [`placement`]: pure replica placement, re-replication and deletion decisions.
//! - [`completion`]: the pure rule for when a file may be closed (G2: enough good replicas).
//! - [`block_recovery`]: the pure rule for the length a dead writer's last block is closed at.
//! - [`namespace`]: the namenode's pure state machine (directories, files, blocks, leases).
//! - [`durable`]: the one audited durable write (tmp → fsync → rename → fsync dir).
//! - [`power_loss`]: test-only model of what survives a power loss (what was fsynced), and `materialize`.
//! - [`checksum`]: CRC32 per 512-byte chunk and the block checksum sidecar format.
//! - [`block_store`]: the datanode's on-disk replicas (finalize, restart cleanup, verified reads, scan).
//! - [`transfer`]: the datanode data-transfer protocol: verified reads, pipeline writes, replication.
//! - [`datanode`]: the datanode daemon: store, transfer server, reports to every namenode, commands, scanner.
//! - [`client`]: `DfsClient`: metadata calls, pipeline writes with recovery, verified reads with failover.
//! - [`shell`]: the `dfs` shell commands and `dfs cluster start|stop`.
#![deny(missing_docs)]

pub mod block_map;
pub mod block_recovery;
pub mod block_store;
pub mod checksum;
pub mod client;
pub mod completion;
pub mod config;
pub mod datanode;
pub mod durable;
pub mod error;
pub mod frame;
pub mod namenode;
pub mod namespace;
pub mod path;
pub mod placement;
pub mod power_loss;
pub mod protocol;
pub mod rpc;
pub mod shell;
pub mod transfer;
pub mod wal;

pub use error::{Error, ErrorKind, Result};
