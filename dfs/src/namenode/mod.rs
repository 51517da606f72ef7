//! The namenode daemon: the namespace replicated with Raft, the block map, and the RPC server.
//!
//! - [`storage`]: durable Raft log, hard state and snapshots (WAL + snapshot file).
//! - [`raft_driver`]: the raft-rs Ready loop: persist, send, apply, compact.
//! - [`batch`]: proposals and reads collected in one drain of the driver's queue, handed to
//!   raft-rs together.
//! - [`transport`]: Raft messages between namenodes (protobuf bytes in frames).
//! - [`server`]: the RPC service, the leader's duties, and [`run`] to start a namenode.

pub mod batch;
pub mod raft_driver;
pub mod server;
pub mod storage;
pub mod transport;

pub use server::run;
