//! Pure replica-placement decisions: where a new block's replicas go, which under-replicated
//! blocks to copy first and where, and which excess or corrupt replicas to delete.
//!
//! Nothing here looks at a clock, a socket or the namespace: the leader's block map gathers a
//! [`NodeView`] per live datanode and a [`BlockHealth`] per block, calls these functions, and
//! turns the [`Action`]s into heartbeat-reply commands. Ties are broken by a seeded hash so that
//! tests are reproducible and load still spreads.

use std::collections::{BTreeMap, HashSet};

use crate::protocol::Block;

/// A live datanode as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// Host name.
    pub host: String,
    /// Rack name.
    pub rack: String,
    /// Free space.
    pub remaining_bytes: u64,
}

/// One block's replica situation (live datanodes only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHealth {
    /// The block.
    pub block: Block,
    /// Target replication factor.
    pub replication: u32,
    /// Hosts with a good replica.
    pub good: Vec<String>,
    /// Hosts with a corrupt or stale replica.
    pub corrupt: Vec<String>,
}

/// A decision for the leader to send to datanodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `source` copies `block` to `targets`.
    Replicate {
        /// The block.
        block: Block,
        /// A host with a good replica.
        source: String,
        /// New holders.
        targets: Vec<String>,
    },
    /// `host` deletes its replica of `block`.
    Delete {
        /// The holder.
        host: String,
        /// The block.
        block: Block,
    },
}

/// Free space a datanode must keep beyond the block it is asked to take. Its free space is
/// sampled for heartbeats (and cached a few seconds by the datanode), and other writes may land
/// on it meanwhile, so "exactly one block free" is not room for one block.
pub const RESERVED_BYTES: u64 = 16 << 20;

/// Whether a datanode with `remaining_bytes` free has room for a block of `block_bytes`: the
/// block plus [`RESERVED_BYTES`]. A full disk is never chosen, so a write is not placed on a
/// datanode that will fail it (and close under-replicated).
pub fn has_room(remaining_bytes: u64, block_bytes: u64) -> bool {
    remaining_bytes >= block_bytes.saturating_add(RESERVED_BYTES)
}

/// A tie-breaking rank of host `s` under `seed`: every order of the hosts must be about
/// equally likely across seeds. (An FNV-1a fold did not do that: names that differ in one
/// bit, like `h1`...`h4`, kept one fixed order for half of all seeds and its reverse for the
/// rest, so in a 2x2-rack cluster `h4` was only ever a pipeline's first node; found when
/// cluster-tests' corrupting link into `h4` never carried a byte.) SipHash with fixed keys
/// mixes every input bit into every output bit, and is deterministic within a process.
fn mix(seed: u64, s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    seed.hash(&mut h);
    s.hash(&mut h);
    h.finish()
}

/// Chooses up to `count` new holders among `nodes`.
///
/// The writer's host comes first when it is a candidate and the block has no replica yet (a
/// local write costs no network). Each next pick is on the rack holding the fewest of the
/// block's replicas so far, so replicas spread over racks and then hosts; among equals, the
/// seeded hash decides. Hosts in `existing` or `excluded` and nodes without room for a block
/// of `min_remaining_bytes` (see [`has_room`]) are never chosen.
pub fn choose_targets(
    nodes: &[NodeView],
    count: usize,
    writer_host: Option<&str>,
    existing: &[String],
    excluded: &[String],
    min_remaining_bytes: u64,
    seed: u64,
) -> Vec<String> {
    let mut taken: HashSet<&str> = existing
        .iter()
        .chain(excluded)
        .map(String::as_str)
        .collect();
    let mut rack_load: BTreeMap<&str, usize> = BTreeMap::new();
    for n in nodes.iter().filter(|n| existing.contains(&n.host)) {
        *rack_load.entry(n.rack.as_str()).or_default() += 1;
    }
    let mut chosen = Vec::new();
    let usable = |n: &&NodeView| has_room(n.remaining_bytes, min_remaining_bytes);
    if let Some(w) = writer_host.filter(|_| existing.is_empty() && count > 0) {
        if let Some(n) = nodes
            .iter()
            .filter(usable)
            .find(|n| n.host == w && !taken.contains(w))
        {
            taken.insert(&n.host);
            *rack_load.entry(&n.rack).or_default() += 1;
            chosen.push(n.host.clone());
        }
    }
    while chosen.len() < count {
        let best = nodes
            .iter()
            .filter(usable)
            .filter(|n| !taken.contains(n.host.as_str()))
            .min_by_key(|n| {
                (
                    rack_load.get(n.rack.as_str()).copied().unwrap_or(0),
                    mix(seed, &n.host),
                )
            });
        let Some(n) = best else { break };
        taken.insert(&n.host);
        *rack_load.entry(&n.rack).or_default() += 1;
        chosen.push(n.host.clone());
    }
    chosen
}

/// How the surviving pipeline of a block under construction changed, as a writer reports it in
/// `AddDatanode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineChange {
    /// Hosts still in the pipeline, in pipeline order.
    pub existing: Vec<String>,
    /// Hosts that failed (the namenode suspects them, see the block map).
    pub failed: Vec<String>,
    /// Hosts the writer will not use again for this block.
    pub excluded: Vec<String>,
}

/// A rebuilt pipeline: the surviving hosts, then the replacements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineRebuild {
    /// The new hosts, in pipeline order after the surviving ones.
    pub replacements: Vec<String>,
    /// The whole new pipeline.
    pub pipeline: Vec<String>,
}

/// Replacements that bring a pipeline back to `replication` hosts after `change`: never a
/// failed or excluded host nor one already in the pipeline, and only nodes with room for a
/// block of `block_size_bytes` ([`choose_targets`] decides among the rest).
pub fn rebuild_pipeline(
    nodes: &[NodeView],
    replication: usize,
    change: &PipelineChange,
    block_size_bytes: u64,
    seed: u64,
) -> PipelineRebuild {
    let wanted = replication.saturating_sub(change.existing.len());
    let avoid: Vec<String> = change
        .excluded
        .iter()
        .chain(&change.failed)
        .cloned()
        .collect();
    let replacements = choose_targets(
        nodes,
        wanted,
        None,
        &change.existing,
        &avoid,
        block_size_bytes,
        seed,
    );
    let mut pipeline = change.existing.clone();
    pipeline.extend(replacements.iter().cloned());
    PipelineRebuild {
        replacements,
        pipeline,
    }
}

/// Plans re-replication and deletions for the given blocks.
///
/// - Under-replicated blocks (some good replica, fewer than the factor) are served fewest good
///   replicas first, at most `max_replications` of them, onto datanodes with room for the block
///   (at least `min_remaining_bytes`, see [`has_room`]). New holders are hosts without any
///   replica of the block; when too few remain (3 hosts, replication 3), the hosts of corrupt
///   replicas are targets too (see [`copy_targets`]).
/// - Corrupt replicas are deleted only once the good ones reach the factor: until then a corrupt
///   copy is still the last resort for an operator.
/// - Excess good replicas are deleted from the most crowded rack first.
pub fn plan(
    blocks: &[BlockHealth],
    nodes: &[NodeView],
    max_replications: usize,
    min_remaining_bytes: u64,
    seed: u64,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut under: Vec<&BlockHealth> = blocks
        .iter()
        .filter(|b| !b.good.is_empty() && b.good.len() < b.replication as usize)
        .collect();
    under.sort_by_key(|b| (b.good.len(), b.block.id));
    for b in under.into_iter().take(max_replications) {
        // The copy is exactly the block's length: a target needs room for that much.
        let room = min_remaining_bytes.max(b.block.len_bytes);
        let targets = copy_targets(b, nodes, room, seed ^ b.block.id);
        if targets.is_empty() {
            continue;
        }
        let source = b
            .good
            .iter()
            .min_by_key(|h| mix(seed ^ b.block.id, h))
            .expect("good is non-empty")
            .clone();
        actions.push(Action::Replicate {
            block: b.block,
            source,
            targets,
        });
    }
    for b in blocks {
        if b.good.len() >= b.replication as usize {
            actions.extend(b.corrupt.iter().map(|h| Action::Delete {
                host: h.clone(),
                block: b.block,
            }));
        }
        for host in excess(b, nodes) {
            actions.push(Action::Delete {
                host,
                block: b.block,
            });
        }
    }
    actions
}

/// New holders for the replicas `b` is missing: hosts without any replica first, then hosts
/// whose replica is corrupt.
///
/// A copy sent to the host of a corrupt replica overwrites it: the datanode writes the incoming
/// replica in `tmp/`, verifies every packet's checksums, and only renames it over the corrupt
/// one once it is complete and durable (see [`crate::block_store`]). So the corrupt copy is
/// never removed before a good one stands in its place, and "a corrupt replica is kept until
/// enough good ones exist" still holds when it is the last one: with no good replica there is
/// no source and no copy at all. Deleting the corrupt replica first and copying afterwards
/// would open a window with one copy fewer, and two commands to two datanodes can run in
/// either order, so the delete could even remove the fresh good copy.
fn copy_targets(
    b: &BlockHealth,
    nodes: &[NodeView],
    min_remaining_bytes: u64,
    seed: u64,
) -> Vec<String> {
    let missing = (b.replication as usize).saturating_sub(b.good.len());
    let holders: Vec<String> = b.good.iter().chain(&b.corrupt).cloned().collect();
    let mut targets = choose_targets(
        nodes,
        missing,
        None,
        &holders,
        &[],
        min_remaining_bytes,
        seed,
    );
    if targets.len() < missing {
        let mut existing = b.good.clone();
        existing.extend(targets.iter().cloned());
        targets.extend(overwrite_targets(
            nodes,
            missing - targets.len(),
            &existing,
            &b.corrupt,
            min_remaining_bytes,
            seed,
        ));
    }
    targets
}

/// Up to `count` hosts among `corrupt` (holders of a corrupt replica) to receive a good copy
/// that overwrites theirs, spread over racks given the `existing` good holders. For when no host
/// without a replica is left; see [`copy_targets`] for why overwriting is safe.
pub fn overwrite_targets(
    nodes: &[NodeView],
    count: usize,
    existing: &[String],
    corrupt: &[String],
    min_remaining_bytes: u64,
    seed: u64,
) -> Vec<String> {
    if count == 0 || corrupt.is_empty() {
        return Vec::new();
    }
    // Only the corrupt replicas' hosts are candidates.
    let others: Vec<String> = nodes
        .iter()
        .filter(|n| !corrupt.contains(&n.host))
        .map(|n| n.host.clone())
        .collect();
    choose_targets(
        nodes,
        count,
        None,
        existing,
        &others,
        min_remaining_bytes,
        seed,
    )
}

/// Good replicas beyond the factor, taken from the racks with the most replicas.
fn excess(b: &BlockHealth, nodes: &[NodeView]) -> Vec<String> {
    let extra = b.good.len().saturating_sub(b.replication as usize);
    let rack_of = |h: &str| {
        nodes
            .iter()
            .find(|n| n.host == h)
            .map_or("", |n| n.rack.as_str())
    };
    let mut remaining: Vec<&String> = b.good.iter().collect();
    let mut out = Vec::new();
    for _ in 0..extra {
        let mut per_rack: BTreeMap<&str, usize> = BTreeMap::new();
        for h in &remaining {
            *per_rack.entry(rack_of(h)).or_default() += 1;
        }
        let victim = remaining
            .iter()
            .enumerate()
            .max_by_key(|(_, h)| (per_rack[rack_of(h)], h.as_str()))
            .map(|(i, _)| i)
            .expect("extra > 0 means replicas remain");
        out.push(remaining.remove(victim).clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<NodeView> {
        (1..=n)
            .map(|i| NodeView {
                host: format!("h{i}"),
                rack: format!("r{}", i % 2),
                remaining_bytes: 1 << 30,
            })
            .collect()
    }

    fn block(id: u64) -> Block {
        Block {
            id,
            gen_stamp: 1,
            len_bytes: 10,
        }
    }

    fn seed() -> u64 {
        let seed = std::env::var("SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(rand::random);
        println!("SEED={seed}");
        seed
    }

    // Checks G2's pipeline recovery: replacements bring the pipeline back to the replication
    // factor after the survivors, and never reuse a failed, excluded or surviving host.
    #[test]
    fn rebuilt_pipelines_keep_survivors_and_avoid_failed_hosts() {
        let seed = seed();
        let change = PipelineChange {
            existing: vec!["h2".into()],
            failed: vec!["h1".into()],
            excluded: vec!["h3".into()],
        };
        let rebuilt = rebuild_pipeline(&nodes(6), 3, &change, 1024, seed);
        assert_eq!(rebuilt.replacements.len(), 2);
        assert_eq!(rebuilt.pipeline[0], "h2", "survivors first");
        assert_eq!(rebuilt.pipeline[1..], rebuilt.replacements[..]);
        for h in ["h1", "h2", "h3"] {
            assert!(!rebuilt.replacements.contains(&h.to_string()), "{h} reused");
        }
        // Too few candidates: as many as there are. A full pipeline: none.
        let few = rebuild_pipeline(&nodes(3), 3, &change, 1024, seed);
        assert_eq!(few.pipeline, vec!["h2"]);
        let full = PipelineChange {
            existing: vec!["h1".into(), "h2".into(), "h4".into()],
            failed: Vec::new(),
            excluded: Vec::new(),
        };
        assert!(rebuild_pipeline(&nodes(6), 3, &full, 1024, seed)
            .replacements
            .is_empty());
        // No room for a block: not chosen.
        let rebuilt = rebuild_pipeline(&nodes(6), 3, &change, 2 << 30, seed);
        assert!(rebuilt.replacements.is_empty());
    }

    // Checks G4's spreading: without a writer on a datanode, every host is often enough a
    // downstream node of a pipeline (second or third), and with racks of equal size every
    // host takes every position. The old tie-breaking hash put `h4` of four hosts in two racks
    // only ever first. 3 to 6 hosts in two racks, 1,000 seeds per host; a (host, position)
    // must get at least a fifth of a fair share.
    #[test]
    fn every_host_takes_every_pipeline_position() {
        let base = seed();
        for n in [3, 4, 5, 6] {
            let nodes = nodes(n);
            let mut seen: std::collections::HashMap<(String, usize), usize> = Default::default();
            let rounds = 1000 * n;
            for i in 0..rounds as u64 {
                let t = choose_targets(&nodes, 3, None, &[], &[], 0, base.wrapping_add(i));
                assert_eq!(t.len(), 3);
                for (pos, h) in t.into_iter().enumerate() {
                    *seen.entry((h, pos)).or_default() += 1;
                }
            }
            let count = |h: &str, pos: usize| seen.get(&(h.to_string(), pos)).copied().unwrap_or(0);
            let fair = rounds / n;
            for node in &nodes {
                let downstream = count(&node.host, 1) + count(&node.host, 2);
                assert!(
                    downstream * 5 >= fair,
                    "{n} hosts: {} downstream only {downstream} times in {rounds}",
                    node.host
                );
                // Rack balance decides positions when racks differ in size (with 3 hosts, the
                // one alone in its rack is never third); with equal racks, any position.
                if n % 2 == 0 {
                    for pos in 0..3 {
                        let got = count(&node.host, pos);
                        assert!(
                            got * 5 >= fair,
                            "{n} hosts: {} at position {pos} only {got} times in {rounds}",
                            node.host
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn writer_first_then_other_rack() {
        let seed = seed();
        let nodes = nodes(4);
        let t = choose_targets(&nodes, 3, Some("h2"), &[], &[], 0, seed);
        assert_eq!(t.len(), 3);
        assert_eq!(t[0], "h2");
        let rack = |h: &str| nodes.iter().find(|n| n.host == h).unwrap().rack.clone();
        assert_ne!(
            rack(&t[0]),
            rack(&t[1]),
            "second replica leaves the writer's rack"
        );
        let distinct: HashSet<_> = t.iter().collect();
        assert_eq!(distinct.len(), 3);
    }

    #[test]
    fn never_more_targets_than_usable_nodes() {
        let seed = seed();
        let mut nodes = nodes(3);
        nodes[2].remaining_bytes = 0;
        let t = choose_targets(&nodes, 3, Some("nowhere"), &[], &["h1".into()], 1, seed);
        assert_eq!(t, vec!["h2".to_string()]);
    }

    // Checks G4: a datanode whose disk is full (less free than a block plus the reserve) is
    // never chosen, neither for a new block nor for a re-replication copy.
    #[test]
    fn full_datanodes_are_never_chosen() {
        let seed = seed();
        let mut nodes = nodes(4);
        nodes[0].remaining_bytes = 0;
        nodes[1].remaining_bytes = RESERVED_BYTES + 5;
        for i in 0..50 {
            let t = choose_targets(&nodes, 3, Some("h1"), &[], &[], 1024, seed + i);
            assert_eq!(t.len(), 2, "only h3 and h4 have room: {t:?}");
            assert!(
                !t.contains(&"h1".into()) && !t.contains(&"h2".into()),
                "{t:?}"
            );
        }
        assert!(has_room(1024 + RESERVED_BYTES, 1024));
        assert!(!has_room(u64::MAX - 1, u64::MAX), "no overflow");
        // Re-replication of a 10-byte block: h1 and h2 are still too full for a copy.
        let b = BlockHealth {
            block: block(1),
            replication: 3,
            good: vec!["h3".into()],
            corrupt: vec![],
        };
        let actions = plan(&[b], &nodes, 10, 0, seed);
        assert!(
            matches!(&actions[..], [Action::Replicate { targets, .. }] if targets == &vec!["h4".to_string()]),
            "{actions:?}"
        );
    }

    // Checks G4: the blocks with the fewest live replicas are repaired first.
    #[test]
    fn fewest_replicas_first() {
        let seed = seed();
        let nodes = nodes(5);
        let blocks = vec![
            BlockHealth {
                block: block(1),
                replication: 3,
                good: vec!["h1".into(), "h2".into()],
                corrupt: vec![],
            },
            BlockHealth {
                block: block(2),
                replication: 3,
                good: vec!["h3".into()],
                corrupt: vec![],
            },
            BlockHealth {
                block: block(3),
                replication: 3,
                good: vec![],
                corrupt: vec!["h4".into()],
            },
        ];
        let actions = plan(&blocks, &nodes, 1, 0, seed);
        assert_eq!(actions.len(), 1);
        let Action::Replicate {
            block,
            source,
            targets,
        } = &actions[0]
        else {
            panic!()
        };
        assert_eq!((block.id, source.as_str(), targets.len()), (2, "h3", 2));
        assert!(!targets.contains(&"h3".to_string()));
        // The block with only a corrupt replica keeps it.
        let all = plan(&blocks, &nodes, 10, 0, seed);
        assert!(!all.iter().any(|a| matches!(a, Action::Delete { .. })));
    }

    // Checks G3: a corrupt replica is deleted only once enough good replicas exist.
    #[test]
    fn corrupt_replica_kept_until_enough_good() {
        let seed = seed();
        let nodes = nodes(4);
        let mut b = BlockHealth {
            block: block(1),
            replication: 2,
            good: vec!["h1".into()],
            corrupt: vec!["h2".into()],
        };
        let actions = plan(std::slice::from_ref(&b), &nodes, 10, 0, seed);
        assert!(
            matches!(&actions[..], [Action::Replicate { targets, .. }] if !targets.contains(&"h2".to_string()))
        );
        b.good.push("h3".into());
        let actions = plan(&[b], &nodes, 10, 0, seed);
        assert_eq!(
            actions,
            vec![Action::Delete {
                host: "h2".into(),
                block: block(1)
            }]
        );
    }

    // Checks G3's "replaced" when every host already holds the block: with 3 hosts and
    // replication 3, the host of the corrupt replica is the target of the copy (which
    // overwrites it once complete), and the corrupt replica is not deleted first.
    #[test]
    fn corrupt_replica_host_is_a_target_when_no_other_host_is_left() {
        let seed = seed();
        let nodes = nodes(3);
        let b = BlockHealth {
            block: block(1),
            replication: 3,
            good: vec!["h1".into(), "h3".into()],
            corrupt: vec!["h2".into()],
        };
        let actions = plan(std::slice::from_ref(&b), &nodes, 10, 0, seed);
        let [Action::Replicate {
            source, targets, ..
        }] = &actions[..]
        else {
            panic!("{actions:?}")
        };
        assert_eq!(targets, &vec!["h2".to_string()]);
        assert!(source == "h1" || source == "h3", "{source}");
        // A free host is still preferred over overwriting a corrupt replica.
        let actions = plan(
            std::slice::from_ref(&b),
            &super::tests::nodes(4),
            10,
            0,
            seed,
        );
        assert!(
            matches!(&actions[..], [Action::Replicate { targets, .. }] if targets == &vec!["h4".to_string()]),
            "{actions:?}"
        );
        // Two corrupt, one good, no free host: both corrupt hosts get the copy.
        let two = BlockHealth {
            good: vec!["h1".into()],
            corrupt: vec!["h2".into(), "h3".into()],
            ..b.clone()
        };
        let actions = plan(&[two], &nodes, 10, 0, seed);
        let [Action::Replicate { targets, .. }] = &actions[..] else {
            panic!("{actions:?}")
        };
        let mut sorted = targets.clone();
        sorted.sort();
        assert_eq!(sorted, vec!["h2".to_string(), "h3".to_string()]);
        // No good replica: nothing to copy from, and the corrupt ones are kept.
        let none = BlockHealth {
            good: vec![],
            corrupt: vec!["h1".into(), "h2".into(), "h3".into()],
            ..b
        };
        assert!(plan(&[none], &nodes, 10, 0, seed).is_empty());
    }

    #[test]
    fn excess_replicas_leave_the_crowded_rack() {
        let seed = seed();
        let nodes = nodes(4); // racks: h1,h3 -> r1; h2,h4 -> r0
        let b = BlockHealth {
            block: block(1),
            replication: 2,
            good: vec!["h1".into(), "h2".into(), "h3".into()],
            corrupt: vec![],
        };
        let actions = plan(&[b], &nodes, 10, 0, seed);
        assert_eq!(actions.len(), 1);
        let Action::Delete { host, .. } = &actions[0] else {
            panic!()
        };
        assert!(host == "h1" || host == "h3", "{host}");
    }
}
