//! Parked replicas: replicas whose pipeline ended before its last packet (the writer or a
//! neighbour died), kept open in `tmp/`, in memory, for lease recovery (see the store's module
//! docs for when they go).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::writer::BlockWriter;
use crate::error::Result;
use crate::protocol::{Block, ReplicaState, ReportedReplica};

/// Most parked replicas kept; the oldest goes first beyond it (each holds an open file).
pub const MAX_PARKED_REPLICAS: usize = 256;

/// The parked replicas of one store, oldest first. Dropping a replica taken out of here (or
/// evicted) deletes its files.
#[derive(Debug, Default)]
pub(super) struct ParkedReplicas {
    replicas: Mutex<Vec<(Instant, BlockWriter)>>,
}

impl ParkedReplicas {
    /// Keeps `writer`, evicting the oldest beyond [`MAX_PARKED_REPLICAS`].
    pub(super) fn park(&self, writer: BlockWriter) {
        let evicted = {
            let mut parked = crate::lock::lock(&self.replicas);
            let evicted = (parked.len() >= MAX_PARKED_REPLICAS).then(|| parked.remove(0));
            parked.push((Instant::now(), writer));
            evicted
        };
        drop(evicted);
    }

    /// Drops those parked longer than `age` ago.
    pub(super) fn drop_older_than(&self, age: Duration) {
        let old: Vec<_> = {
            let mut parked = crate::lock::lock(&self.replicas);
            let (old, keep) = std::mem::take(&mut *parked)
                .into_iter()
                .partition(|(at, _)| at.elapsed() > age);
            *parked = keep;
            old
        };
        drop(old);
    }

    /// How many are parked.
    pub(super) fn count(&self) -> usize {
        crate::lock::lock(&self.replicas).len()
    }

    /// Drops those of `block_id` with a stamp up to `gen_stamp` (superseded by a finalized one).
    pub(super) fn drop_below(&self, block_id: u64, gen_stamp: u64) {
        let stale: Vec<_> = {
            let mut parked = crate::lock::lock(&self.replicas);
            let (stale, keep) = std::mem::take(&mut *parked)
                .into_iter()
                .partition(|(_, w)| w.block_id() == block_id && w.gen_stamp() <= gen_stamp);
            *parked = keep;
            stale
        };
        drop(stale);
    }

    /// Takes out the one of `block_id` with exactly `gen_stamp`, if parked.
    pub(super) fn take(&self, block_id: u64, gen_stamp: u64) -> Option<BlockWriter> {
        let mut parked = crate::lock::lock(&self.replicas);
        parked
            .iter()
            .position(|(_, w)| w.block_id() == block_id && w.gen_stamp() == gen_stamp)
            .map(|i| parked.remove(i).1)
    }

    /// Those of `block_id`, each fsynced first so the reported length is durable.
    pub(super) fn report(&self, block_id: u64) -> Result<Vec<ReportedReplica>> {
        let mut out = Vec::new();
        let parked = crate::lock::lock(&self.replicas);
        for (_, w) in parked.iter().filter(|(_, w)| w.block_id() == block_id) {
            w.sync_data()?;
            out.push(ReportedReplica {
                block: Block {
                    id: block_id,
                    gen_stamp: w.gen_stamp(),
                    len_bytes: w.len_bytes(),
                },
                state: ReplicaState::InProgress,
            });
        }
        Ok(out)
    }
}
