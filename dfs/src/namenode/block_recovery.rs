//! Block recovery: the rule that decides at which length the last block of a file is closed
//! when its writer died (its lease expired), and which replicas are kept.
//!
//! When a writer dies mid-block, its last block exists only as replicas being written, possibly
//! of several generation stamps: every pipeline rebuild gives the block a new stamp and the
//! writer resends the block from its first byte to the new pipeline (see [`crate::client`]), and
//! each datanode stopped wherever the crash left it. All these replicas hold prefixes of the
//! same byte stream (the writer resends the very same packets), so any length that every replica
//! of a chosen set holds is a consistent end for the file.
//!
//! **The rule.** Group the replicas that answered by generation stamp. Within a group, the length
//! every member can provide is the group's shortest replica (as HDFS does: bytes past it were
//! never on every node of that pipeline). Choose the group whose shortest replica is longest;
//! on a tie, the group with more replicas, then the newer stamp. The chosen replicas are cut to
//! that length and finalized under a fresh generation stamp; the others become stale and are
//! deleted like any stale replica.
//!
//! **Why acknowledged bytes survive.** A datanode acks a packet upstream only after the node
//! below it acked it, and stores it before that, so when the writer received the ack for byte
//! `N`, every node of that pipeline held at least `N` bytes under that pipeline's stamp. Each of
//! them that is still alive reports at least `N`, so that group's shortest replica is at least
//! `N`, and the longest group minimum the rule picks is at least `N` too. (A pipeline's stamp is
//! never reused for a different set of nodes while the block is the file's last: the client
//! takes a new stamp for every rebuild of the last block.)

use crate::protocol::{Block, ReplicaState};

/// One replica of the block being recovered, as a datanode reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaReport {
    /// The datanode holding it.
    pub host: String,
    /// Its generation stamp and its durable length (fsynced before it was reported).
    pub block: Block,
    /// Finalized, or still being written (its writer went away).
    pub state: ReplicaState,
}

/// What recovery keeps: the length and the replicas to cut to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPlan {
    /// Generation stamp of the chosen replicas (before recovery restamps them).
    pub from_gen_stamp: u64,
    /// The length every chosen replica can provide: the file's last block ends here.
    pub len_bytes: u64,
    /// Hosts of the chosen replicas.
    pub hosts: Vec<String>,
}

/// Chooses the recovered length and replicas by the rule in the module docs; `None` when no
/// replica was reported. Replicas of another block id, or of a stamp newer than `newest_gen_stamp`
/// (the stamp recovery is about to hand out), are ignored.
pub fn plan(
    block_id: u64,
    newest_gen_stamp: u64,
    replicas: &[ReplicaReport],
) -> Option<RecoveryPlan> {
    let mut groups: std::collections::BTreeMap<u64, (u64, Vec<String>)> = Default::default();
    for r in replicas {
        if r.block.id != block_id || r.block.gen_stamp > newest_gen_stamp {
            continue;
        }
        let g = groups
            .entry(r.block.gen_stamp)
            .or_insert((u64::MAX, Vec::new()));
        g.0 = g.0.min(r.block.len_bytes);
        if !g.1.contains(&r.host) {
            g.1.push(r.host.clone());
        }
    }
    groups
        .into_iter()
        .max_by_key(|(gen, (len, hosts))| (*len, hosts.len(), *gen))
        .map(|(gen, (len, mut hosts))| {
            hosts.sort();
            RecoveryPlan {
                from_gen_stamp: gen,
                len_bytes: len,
                hosts,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rbw(host: &str, gen: u64, len: u64) -> ReplicaReport {
        ReplicaReport {
            host: host.into(),
            block: Block {
                id: 7,
                gen_stamp: gen,
                len_bytes: len,
            },
            state: ReplicaState::InProgress,
        }
    }

    #[test]
    fn nothing_reported_means_nothing_to_keep() {
        assert_eq!(plan(7, 100, &[]), None);
        assert_eq!(plan(8, 100, &[rbw("a", 5, 10)]), None, "another block");
    }

    #[test]
    fn one_pipeline_is_cut_to_its_shortest_replica() {
        let p = plan(
            7,
            100,
            &[rbw("a", 5, 4096), rbw("b", 5, 3072), rbw("c", 5, 4096)],
        )
        .unwrap();
        assert_eq!(p.len_bytes, 3072);
        assert_eq!(p.from_gen_stamp, 5);
        assert_eq!(p.hosts, vec!["a", "b", "c"]);
    }

    // Checks G2: a crash in the middle of resending to a rebuilt pipeline (new stamp, short
    // replicas) must not lose the bytes the old pipeline's survivors acknowledged.
    #[test]
    fn acked_bytes_of_an_older_pipeline_win_over_a_short_resend() {
        let replicas = [
            rbw("a", 5, 65536), // survivors of the pipeline that acked 64 KiB
            rbw("b", 5, 70000),
            rbw("a", 6, 1024), // the resend under the new stamp had just started
            rbw("b", 6, 2048),
            rbw("d", 6, 512),
        ];
        let p = plan(7, 100, &replicas).unwrap();
        assert_eq!((p.from_gen_stamp, p.len_bytes), (5, 65536));
        assert_eq!(p.hosts, vec!["a", "b"]);
    }

    #[test]
    fn ties_prefer_more_replicas_then_the_newer_stamp() {
        let p = plan(
            7,
            100,
            &[rbw("a", 5, 512), rbw("b", 6, 512), rbw("c", 6, 512)],
        )
        .unwrap();
        assert_eq!((p.from_gen_stamp, p.hosts.len()), (6, 2));
        let p = plan(7, 100, &[rbw("a", 5, 512), rbw("b", 6, 512)]).unwrap();
        assert_eq!(p.from_gen_stamp, 6);
    }

    #[test]
    fn finalized_replicas_count_with_their_length_and_future_stamps_are_ignored() {
        let mut fin = rbw("a", 5, 8192);
        fin.state = ReplicaState::Finalized;
        let p = plan(7, 10, &[fin, rbw("b", 5, 8192), rbw("c", 11, 99999)]).unwrap();
        assert_eq!((p.from_gen_stamp, p.len_bytes), (5, 8192));
        assert_eq!(p.hosts, vec!["a", "b"]);
    }

    #[test]
    fn an_empty_replica_is_a_valid_zero_length() {
        let p = plan(7, 100, &[rbw("a", 5, 0)]).unwrap();
        assert_eq!(p.len_bytes, 0);
    }
}
