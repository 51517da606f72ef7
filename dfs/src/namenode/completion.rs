//! Completion: when the namenode may close a file (`Complete`), which is what makes G2 hold.
//!
//! G2 asks that after `close()` every byte be on at least min(replication, live datanodes)
//! datanodes, fsynced. The namenode answers `Complete` with "yes" only when every block has that
//! many *good* replicas: finalized (fsynced and renamed), not corrupt, of the block's current
//! generation stamp and exact length, on a datanode that is live and not suspected.
//!
//! "Live" is the namenode's view (a heartbeat within `datanode_dead_after_ms`), minus the
//! datanodes a writer reported as failed and that have not heartbeated twice since (suspects, see
//! [`crate::namenode::block_map::BlockMap::suspect`]): a datanode killed mid-write stops counting at once
//! instead of after the dead-node timeout, while one that was only slow for the writer is back
//! in the count at its second heartbeat. A datanode without room for a block (less free space
//! than the block size) counts for that block only if it already holds a replica of it: a
//! full datanode cannot take a copy, so waiting for one would only end in a timeout.
//!
//! When a block has fewer good replicas than needed, the pipeline hosts recorded for it that
//! have not reported yet are waited for (their reports are on the way); any remaining shortfall
//! is copied from a good replica to new datanodes by the namenode right away, so `Complete`
//! converges without the writer's help. The writer polls `Complete` for a bounded time and then
//! fails with a clear error; `close` never returns Ok early.

use crate::protocol::{Block, ReplicaState};

/// One reported replica, as the completion rule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaView {
    /// The holding datanode.
    pub host: String,
    /// The replica as reported (stamp, length).
    pub block: Block,
    /// Finalized or in progress.
    pub state: ReplicaState,
    /// Reported corrupt.
    pub corrupt: bool,
    /// The holder is live and not suspected.
    pub usable: bool,
}

/// What one block still needs before the file may be completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Enough good replicas.
    Durable,
    /// Not yet: `have` good of `need`, and the rest is expected from the pipeline's reports.
    Waiting {
        /// Good replicas now.
        have: usize,
        /// Good replicas required.
        need: usize,
    },
    /// Not yet, and `missing` more replicas must be made: copy from one of `sources`.
    Short {
        /// Good replicas now.
        have: usize,
        /// Good replicas required.
        need: usize,
        /// Copies to make beyond what the pipeline will report.
        missing: usize,
        /// Hosts with a good replica (empty: nothing to copy from yet).
        sources: Vec<String>,
    },
}

/// Good replicas a block needs: min(replication, usable datanodes), and at least one (a file is
/// never closed with a block nobody holds).
pub fn required_replicas(replication: u32, usable_datanodes: usize) -> usize {
    (replication as usize).min(usable_datanodes).max(1)
}

/// Judges one block of the file being completed. `block` carries the namespace's stamp and the
/// final length; `pipeline` lists the usable hosts the writer's current pipeline for it went
/// through (empty when unknown, e.g. after a leader change).
pub fn judge(block: &Block, replicas: &[ReplicaView], pipeline: &[String], need: usize) -> Verdict {
    let good: Vec<&ReplicaView> = replicas
        .iter()
        .filter(|r| {
            r.usable
                && !r.corrupt
                && r.state == ReplicaState::Finalized
                && r.block.gen_stamp == block.gen_stamp
                && r.block.len_bytes == block.len_bytes
        })
        .collect();
    let have = good.len();
    if have >= need {
        return Verdict::Durable;
    }
    let bad_holder = |h: &String| {
        replicas
            .iter()
            .any(|r| &r.host == h && (r.corrupt || !r.usable))
    };
    let expected = pipeline
        .iter()
        .filter(|h| !good.iter().any(|g| &g.host == *h) && !bad_holder(h))
        .count();
    let missing = need.saturating_sub(have + expected);
    if missing == 0 {
        return Verdict::Waiting { have, need };
    }
    Verdict::Short {
        have,
        need,
        missing,
        sources: good.iter().map(|r| r.host.clone()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Block = Block {
        id: 1,
        gen_stamp: 9,
        len_bytes: 1000,
    };

    fn fin(host: &str) -> ReplicaView {
        ReplicaView {
            host: host.into(),
            block: B,
            state: ReplicaState::Finalized,
            corrupt: false,
            usable: true,
        }
    }

    fn hosts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_bar_is_min_of_replication_and_usable_datanodes() {
        assert_eq!(required_replicas(3, 4), 3);
        assert_eq!(required_replicas(3, 2), 2);
        assert_eq!(required_replicas(3, 0), 1);
        assert_eq!(required_replicas(1, 5), 1);
    }

    // Checks G2: a replica only counts when finalized, current, of the right length, healthy
    // and on a usable datanode.
    #[test]
    fn only_good_replicas_count() {
        let mut stale = fin("b");
        stale.block.gen_stamp = 8;
        let mut short = fin("c");
        short.block.len_bytes = 999;
        let mut writing = fin("d");
        writing.state = ReplicaState::InProgress;
        let mut corrupt = fin("e");
        corrupt.corrupt = true;
        let mut suspect = fin("f");
        suspect.usable = false;
        let all = [fin("a"), stale, short, writing, corrupt, suspect];
        assert_eq!(judge(&B, &all, &[], 1), Verdict::Durable);
        assert_eq!(
            judge(&B, &all, &[], 2),
            Verdict::Short {
                have: 1,
                need: 2,
                missing: 1,
                sources: hosts(&["a"])
            }
        );
    }

    #[test]
    fn pipeline_hosts_that_have_not_reported_are_waited_for() {
        let v = judge(&B, &[fin("a")], &hosts(&["a", "b", "c"]), 3);
        assert_eq!(v, Verdict::Waiting { have: 1, need: 3 });
    }

    // Checks G2: a node that held a replica and was then reported failed by the writer no
    // longer counts, and the missing copy is planned from a good one.
    #[test]
    fn a_suspected_pipeline_host_is_not_waited_for() {
        let mut gone = fin("c");
        gone.usable = false;
        let v = judge(&B, &[fin("a"), fin("b"), gone], &hosts(&["a", "b", "c"]), 3);
        assert_eq!(
            v,
            Verdict::Short {
                have: 2,
                need: 3,
                missing: 1,
                sources: hosts(&["a", "b"])
            }
        );
    }

    #[test]
    fn nothing_to_copy_from_yet_still_says_short() {
        let v = judge(&B, &[], &[], 2);
        assert_eq!(
            v,
            Verdict::Short {
                have: 0,
                need: 2,
                missing: 2,
                sources: vec![]
            }
        );
    }
}
