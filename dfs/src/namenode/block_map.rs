//! The block map: which datanode holds which replica, and how healthy each datanode is.
//!
//! Soft state, rebuilt from heartbeats and block reports and never persisted. Every datanode
//! reports to every namenode, so a newly elected leader already knows where all blocks are.
//! Time enters as `now_ms` arguments (a monotonic clock owned by the caller), so everything here
//! is testable without clocks. The decisions themselves are in [`crate::namenode::placement`]; this
//! module gathers their inputs and queues their outputs as [`DatanodeCommand`]s that the leader
//! hands out in heartbeat replies.

use std::collections::{BTreeMap, HashMap};

use crate::namenode::completion::{self, Verdict};
use crate::namenode::namespace::{BlockOwner, Namespace};
use crate::namenode::placement::{self, Action, BlockHealth, NodeView};
use crate::protocol::{
    Block, DatanodeCommand, DatanodeRef, DatanodeStatus, DatanodeUsage, ReplicaState,
    ReportedReplica,
};

/// Most commands queued for one datanode; the oldest are dropped beyond this (the next
/// replication check re-plans anything still needed).
pub const MAX_QUEUED_COMMANDS: usize = 10_000;

#[derive(Debug, Clone)]
struct NodeEntry {
    node: DatanodeRef,
    usage: DatanodeUsage,
    last_heartbeat_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Replica {
    block: Block,
    state: ReplicaState,
    corrupt: bool,
}

/// A file being closed, as [`BlockMap::plan_close`] judges it.
#[derive(Debug, Clone, Copy)]
pub struct ClosingFile<'a> {
    /// Its blocks with the namespace's stamps and final lengths (the last one as the writer
    /// reports it).
    pub blocks: &'a [Block],
    /// Its replication factor.
    pub replication: u32,
    /// Its block size: a datanode with less room cannot take a copy.
    pub block_size_bytes: u64,
}

/// A copy ordered so that a block of a file being closed reaches G2's bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOrder {
    /// The block (namespace stamp and length).
    pub block: Block,
    /// A host with a good replica.
    pub source: String,
    /// New holders (empty when no datanode can take one now).
    pub targets: Vec<String>,
}

/// What closing a file needs: whether every block is durable now, and the copies to order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosePlan {
    /// Every block has enough good replicas: the file may be closed.
    pub ready: bool,
    /// Copies for blocks short of replicas that their pipelines will not produce.
    pub copies: Vec<CopyOrder>,
}

/// Datanodes and replicas as reported.
#[derive(Debug, Default)]
pub struct BlockMap {
    nodes: BTreeMap<String, NodeEntry>,
    replicas: HashMap<u64, BTreeMap<String, Replica>>,
    commands: HashMap<String, Vec<DatanodeCommand>>,
    /// Replications handed out and not yet confirmed: block id → retry after this time.
    in_flight_until_ms: HashMap<u64, u64>,
    /// Datanodes a writer reported failed, with how many heartbeats (or registrations) of
    /// theirs arrived since; cleared by the second (see [`Self::suspect`]).
    suspects: HashMap<String, u32>,
    /// Blocks being written: the hosts of the current pipeline, and every host any pipeline of
    /// the block went through (lease recovery asks them all).
    pipelines: HashMap<u64, Pipeline>,
}

/// The pipelines of one block under construction, as the writer told the leader.
#[derive(Debug, Clone, Default)]
struct Pipeline {
    current: Vec<String>,
    ever: Vec<String>,
}

/// Most blocks whose pipelines are remembered; beyond it the record is cleared. Losing it only
/// costs precision (see [`crate::namenode::completion`]): `Complete` then copies instead of waiting.
pub const MAX_RECORDED_PIPELINES: usize = 100_000;

impl BlockMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// A datanode (re)starts.
    pub fn register(&mut self, node: DatanodeRef, usage: DatanodeUsage, now_ms: u64) {
        let host = node.host.clone();
        self.heard_from(&host);
        self.nodes.insert(
            host,
            NodeEntry {
                node,
                usage,
                last_heartbeat_ms: now_ms,
            },
        );
    }

    /// Whether `host` registered (since this namenode started or forgot it).
    pub fn is_registered(&self, host: &str) -> bool {
        self.nodes.contains_key(host)
    }

    /// A heartbeat; false when the datanode is unknown (it must register again).
    pub fn heartbeat(&mut self, host: &str, usage: DatanodeUsage, now_ms: u64) -> bool {
        match self.nodes.get_mut(host) {
            Some(n) => {
                n.usage = usage;
                n.last_heartbeat_ms = now_ms;
                self.heard_from(host);
                true
            }
            None => false,
        }
    }

    /// A writer reported `host` failed in its pipeline. Until the datanode has heartbeated
    /// twice since, it is not counted as live by [`Self::is_usable`] nor chosen by placement:
    /// a SIGKILLed datanode keeps "live" status for `datanode_dead_after_ms`, and counting it
    /// would let `Complete` count its replicas (G2 then short by one) or make it wait for a
    /// replica that cannot come, or let placement pick it again.
    ///
    /// Why twice: the first heartbeat handled after the report may have been sent before the
    /// datanode died and handled late (seen with a namenode slowed by load: the killed node's
    /// replica counted again and a file closed with two live replicas of three). A datanode
    /// sends its heartbeats to a namenode one at a time, each after the answer to the one
    /// before, so the second was sent after the report was handled: the datanode is alive.
    pub fn suspect(&mut self, host: &str) {
        if self.nodes.contains_key(host) {
            self.suspects.insert(host.to_string(), 0);
        }
    }

    /// A heartbeat or registration of `host` arrived: the second since it became a suspect
    /// clears it (see [`Self::suspect`]).
    fn heard_from(&mut self, host: &str) {
        let Some(heard) = self.suspects.get_mut(host) else {
            return;
        };
        *heard += 1;
        if *heard >= 2 {
            self.suspects.remove(host);
        }
    }

    /// Live and not suspected: counts toward min(replication, live datanodes) for `Complete`.
    pub fn is_usable(&self, host: &str, now_ms: u64, dead_after_ms: u64) -> bool {
        self.is_live(host, now_ms, dead_after_ms) && !self.suspects.contains_key(host)
    }

    /// How many datanodes are usable (see [`Self::is_usable`]).
    pub fn usable_count(&self, now_ms: u64, dead_after_ms: u64) -> usize {
        self.nodes
            .keys()
            .filter(|h| self.is_usable(h, now_ms, dead_after_ms))
            .count()
    }

    /// How many usable datanodes could hold a replica of `block_id`: those that already hold
    /// one, and those with room for `room_bytes` (see [`placement::has_room`]). A full datanode cannot take a copy, so
    /// counting it would make `Complete` wait for a replica that can never be made.
    pub fn usable_count_for(
        &self,
        block_id: u64,
        room_bytes: u64,
        now_ms: u64,
        dead_after_ms: u64,
    ) -> usize {
        let holders = self.replicas.get(&block_id);
        self.nodes
            .iter()
            .filter(|(h, n)| {
                self.is_usable(h, now_ms, dead_after_ms)
                    && (placement::has_room(n.usage.remaining_bytes, room_bytes)
                        || holders.is_some_and(|r| r.contains_key(*h)))
            })
            .count()
    }

    /// Records the pipeline a writer uses for a block under construction.
    pub fn record_pipeline(&mut self, block_id: u64, hosts: &[String]) {
        if self.pipelines.len() >= MAX_RECORDED_PIPELINES && !self.pipelines.contains_key(&block_id)
        {
            self.pipelines.clear();
        }
        let p = self.pipelines.entry(block_id).or_default();
        p.current = hosts.to_vec();
        for h in hosts {
            if !p.ever.contains(h) {
                p.ever.push(h.clone());
            }
        }
    }

    /// The current pipeline recorded for a block (empty when unknown).
    pub fn pipeline(&self, block_id: u64) -> Vec<String> {
        self.pipelines
            .get(&block_id)
            .map(|p| p.current.clone())
            .unwrap_or_default()
    }

    /// Every host any recorded pipeline of the block went through; `None` when unknown.
    pub fn pipeline_hosts_ever(&self, block_id: u64) -> Option<Vec<String>> {
        self.pipelines.get(&block_id).map(|p| p.ever.clone())
    }

    /// Forgets the pipelines of blocks whose file was closed.
    pub fn forget_pipelines(&mut self, block_ids: impl IntoIterator<Item = u64>) {
        for id in block_ids {
            self.pipelines.remove(&id);
        }
    }

    /// Every reported replica of `block_id`, for the completion rule.
    pub fn replica_views(
        &self,
        block_id: u64,
        now_ms: u64,
        dead_after_ms: u64,
    ) -> Vec<crate::namenode::completion::ReplicaView> {
        let Some(holders) = self.replicas.get(&block_id) else {
            return Vec::new();
        };
        holders
            .iter()
            .map(|(host, r)| crate::namenode::completion::ReplicaView {
                host: host.clone(),
                block: r.block,
                state: r.state,
                corrupt: r.corrupt,
                usable: self.is_usable(host, now_ms, dead_after_ms),
            })
            .collect()
    }

    /// Queues a copy of `block` from `source` to `targets` unless one is already under way;
    /// returns whether it was queued. Used by `Complete` for files under construction, which
    /// the periodic replication check leaves alone.
    pub fn request_copy(
        &mut self,
        block: Block,
        source: &str,
        targets: &[String],
        now_ms: u64,
        retry_after_ms: u64,
    ) -> bool {
        let busy = self
            .in_flight_until_ms
            .get(&block.id)
            .is_some_and(|&t| t > now_ms);
        if busy || targets.is_empty() {
            return false;
        }
        self.in_flight_until_ms
            .insert(block.id, now_ms + retry_after_ms);
        let targets = self.refs(targets);
        self.push_command(source, DatanodeCommand::Replicate { block, targets });
        crate::metrics::namenode().rereplications_queued.inc();
        true
    }

    /// Judges each block of a file being closed by the completion rule (G2) and plans the copies
    /// that blocks short of it need beyond what their recorded pipelines will report. Pure: the
    /// caller queues the copies ([`Self::request_copy`]) and answers the writer.
    pub fn plan_close(
        &self,
        file: &ClosingFile<'_>,
        now_ms: u64,
        dead_after_ms: u64,
        seed: u64,
    ) -> ClosePlan {
        let mut plan = ClosePlan {
            ready: true,
            copies: Vec::new(),
        };
        for (i, block) in file.blocks.iter().enumerate() {
            let could_hold =
                self.usable_count_for(block.id, file.block_size_bytes, now_ms, dead_after_ms);
            let need = completion::required_replicas(file.replication, could_hold);
            let pipeline: Vec<String> = self
                .pipeline(block.id)
                .into_iter()
                .filter(|h| self.is_usable(h, now_ms, dead_after_ms))
                .collect();
            let views = self.replica_views(block.id, now_ms, dead_after_ms);
            let (missing, sources) = match completion::judge(block, &views, &pipeline, need) {
                Verdict::Durable => continue,
                Verdict::Waiting { .. } => {
                    plan.ready = false;
                    continue;
                }
                Verdict::Short {
                    missing, sources, ..
                } => (missing, sources),
            };
            plan.ready = false;
            let Some(source) = sources.into_iter().next() else {
                continue;
            };
            let mut taken = self.holders(block.id);
            taken.extend(pipeline);
            let nodes = self.live_views(now_ms, dead_after_ms);
            let seed = seed.wrapping_add(i as u64);
            let room = file.block_size_bytes;
            let mut targets =
                placement::choose_targets(&nodes, missing, None, &taken, &[], room, seed);
            if targets.len() < missing {
                // Every host holds a replica: overwrite corrupt ones, as re-replication does.
                let corrupt: Vec<String> = views
                    .iter()
                    .filter(|v| v.corrupt && v.usable)
                    .map(|v| v.host.clone())
                    .collect();
                let mut existing: Vec<String> = taken
                    .iter()
                    .filter(|h| !corrupt.contains(h))
                    .cloned()
                    .collect();
                existing.extend(targets.iter().cloned());
                let more = missing - targets.len();
                targets.extend(placement::overwrite_targets(
                    &nodes, more, &existing, &corrupt, room, seed,
                ));
            }
            plan.copies.push(CopyOrder {
                block: *block,
                source,
                targets,
            });
        }
        plan
    }

    /// Hosts holding any reported replica of `block_id`.
    pub fn holders(&self, block_id: u64) -> Vec<String> {
        self.replicas
            .get(&block_id)
            .map(|h| h.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// A full block report replaces everything known about the host's replicas.
    pub fn full_report(&mut self, host: &str, replicas: &[ReportedReplica]) {
        for holders in self.replicas.values_mut() {
            holders.remove(host);
        }
        self.replicas.retain(|_, h| !h.is_empty());
        self.received(host, replicas);
    }

    /// Replicas received (or updated) and deleted on a host.
    pub fn incremental(&mut self, host: &str, received: &[ReportedReplica], deleted: &[u64]) {
        for id in deleted {
            if let Some(holders) = self.replicas.get_mut(id) {
                holders.remove(host);
                if holders.is_empty() {
                    self.replicas.remove(id);
                }
            }
        }
        self.received(host, received);
    }

    fn received(&mut self, host: &str, replicas: &[ReportedReplica]) {
        for r in replicas {
            let holders = self.replicas.entry(r.block.id).or_default();
            let replica = Replica {
                block: r.block,
                state: r.state,
                corrupt: false,
            };
            holders.insert(host.to_string(), replica);
            if r.state == ReplicaState::Finalized {
                self.in_flight_until_ms.remove(&r.block.id);
            }
        }
    }

    /// A replica failed its checksum.
    pub fn mark_corrupt(&mut self, host: &str, block: &Block) {
        if let Some(r) = self
            .replicas
            .get_mut(&block.id)
            .and_then(|h| h.get_mut(host))
        {
            r.corrupt = true;
        }
    }

    /// Whether `host` has sent a heartbeat within `dead_after_ms`.
    pub fn is_live(&self, host: &str, now_ms: u64, dead_after_ms: u64) -> bool {
        self.nodes
            .get(host)
            .is_some_and(|n| now_ms.saturating_sub(n.last_heartbeat_ms) < dead_after_ms)
    }

    /// The datanode named `host`, if registered.
    pub fn node(&self, host: &str) -> Option<&DatanodeRef> {
        self.nodes.get(host).map(|n| &n.node)
    }

    /// Live, unsuspected datanodes for placement.
    pub fn live_views(&self, now_ms: u64, dead_after_ms: u64) -> Vec<NodeView> {
        self.nodes
            .values()
            .filter(|n| now_ms.saturating_sub(n.last_heartbeat_ms) < dead_after_ms)
            .filter(|n| !self.suspects.contains_key(&n.node.host))
            .map(|n| NodeView {
                host: n.node.host.clone(),
                rack: n.node.rack.clone(),
                remaining_bytes: n.usage.remaining_bytes,
            })
            .collect()
    }

    /// Splits the live holders of `owner.block` into good and corrupt-or-stale hosts.
    ///
    /// A replica is good when it is not marked corrupt, has the namespace's generation stamp,
    /// and (for a complete block) is finalized with the namespace's length. For the block being
    /// written any current-stamp replica counts as good.
    pub fn health(
        &self,
        owner: &BlockOwner,
        now_ms: u64,
        dead_after_ms: u64,
    ) -> (Vec<String>, Vec<String>) {
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        let Some(holders) = self.replicas.get(&owner.block.id) else {
            return (good, bad);
        };
        for (host, r) in holders {
            if !self.is_live(host, now_ms, dead_after_ms) {
                continue;
            }
            let current = r.block.gen_stamp == owner.block.gen_stamp;
            let complete_ok =
                r.state == ReplicaState::Finalized && r.block.len_bytes == owner.block.len_bytes;
            if !r.corrupt && current && (owner.under_construction || complete_ok) {
                good.push(host.clone());
            } else if !owner.under_construction || r.block.gen_stamp > owner.block.gen_stamp {
                bad.push(host.clone());
            }
        }
        (good, bad)
    }

    /// Finalized, current replicas of `block` with exactly its length (for `complete`).
    pub fn finalized_count(&self, block: &Block) -> usize {
        self.replicas.get(&block.id).map_or(0, |h| {
            h.values()
                .filter(|r| {
                    !r.corrupt
                        && r.state == ReplicaState::Finalized
                        && r.block.gen_stamp == block.gen_stamp
                        && r.block.len_bytes == block.len_bytes
                })
                .count()
        })
    }

    /// Reported replicas of a block under construction: (host, block as reported).
    pub fn reported(&self, block_id: u64) -> Vec<(String, Block, ReplicaState)> {
        self.replicas
            .get(&block_id)
            .map(|h| {
                h.iter()
                    .map(|(host, r)| (host.clone(), r.block, r.state))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Datanode references for hosts, in the given order, skipping unknown ones.
    pub fn refs(&self, hosts: &[String]) -> Vec<DatanodeRef> {
        hosts.iter().filter_map(|h| self.node(h).cloned()).collect()
    }

    /// Orders `hosts` for a reader: its own host first, then its rack, then the rest.
    pub fn sort_for_reader(&self, hosts: &mut [String], reader: Option<&str>) {
        let reader_rack = reader.and_then(|r| self.node(r)).map(|n| n.rack.clone());
        hosts.sort_by_key(|h| {
            let own = Some(h.as_str()) == reader;
            let rack =
                reader_rack.is_some() && self.node(h).map(|n| &n.rack) == reader_rack.as_ref();
            (!own, !rack)
        });
    }

    /// Queues a command for a datanode's next heartbeat.
    pub fn push_command(&mut self, host: &str, cmd: DatanodeCommand) {
        let queue = self.commands.entry(host.to_string()).or_default();
        if queue.len() >= MAX_QUEUED_COMMANDS {
            queue.remove(0);
        }
        queue.push(cmd);
    }

    /// Takes the commands queued for a datanode.
    pub fn take_commands(&mut self, host: &str) -> Vec<DatanodeCommand> {
        self.commands.remove(host).unwrap_or_default()
    }

    /// One replication check: plans re-replication, excess and corrupt deletions, and garbage
    /// removal (replicas of deleted blocks), and queues the commands. Returns how many commands
    /// were queued.
    pub fn check_replication(
        &mut self,
        ns: &Namespace,
        now_ms: u64,
        dead_after_ms: u64,
        retry_after_ms: u64,
        seed: u64,
    ) -> usize {
        let nodes = self.live_views(now_ms, dead_after_ms);
        let mut healths = Vec::new();
        let mut garbage: Vec<(String, Block)> = Vec::new();
        for (&id, holders) in &self.replicas {
            match ns.block(id) {
                Some(owner) if !owner.under_construction => {
                    let (good, corrupt) = self.health(&owner, now_ms, dead_after_ms);
                    let busy = self
                        .in_flight_until_ms
                        .get(&id)
                        .is_some_and(|&t| t > now_ms);
                    let mut h = BlockHealth {
                        block: owner.block,
                        replication: owner.replication,
                        good,
                        corrupt,
                    };
                    if busy {
                        // A copy is under way: do not plan another, but still allow deletions
                        // of excess good replicas. Not of corrupt ones: the lowered factor
                        // would make them look redundant before the copy landed, and the copy
                        // may be the one overwriting a corrupt replica (see `placement::plan`).
                        h.replication = h.replication.min(h.good.len() as u32);
                        h.corrupt.clear();
                    }
                    healths.push(h);
                }
                Some(_) => {}
                None if ns.is_deleted_block(id) => {
                    garbage.extend(holders.iter().map(|(host, r)| (host.clone(), r.block)));
                }
                None => {}
            }
        }
        let actions = placement::plan(&healths, &nodes, 1_000, 0, seed);
        let mut queued = 0;
        for action in actions {
            match action {
                Action::Replicate {
                    block,
                    source,
                    targets,
                } => {
                    self.in_flight_until_ms
                        .insert(block.id, now_ms + retry_after_ms);
                    let targets = self.refs(&targets);
                    self.push_command(&source, DatanodeCommand::Replicate { block, targets });
                    crate::metrics::namenode().rereplications_queued.inc();
                }
                Action::Delete { host, block } => self.delete_replica(&host, block),
            }
            queued += 1;
        }
        for (host, block) in garbage {
            self.delete_replica(&host, block);
            queued += 1;
        }
        queued
    }

    fn delete_replica(&mut self, host: &str, block: Block) {
        self.push_command(
            host,
            DatanodeCommand::Delete {
                blocks: vec![block],
            },
        );
        // Forget it now so the next check does not ask again; a datanode that did not delete
        // it will report it again in its next full report.
        if let Some(holders) = self.replicas.get_mut(&block.id) {
            holders.remove(host);
            if holders.is_empty() {
                self.replicas.remove(&block.id);
            }
        }
    }

    /// Every datanode for `dfs report`.
    pub fn report(&self, now_ms: u64, dead_after_ms: u64) -> Vec<DatanodeStatus> {
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for holders in self.replicas.values() {
            for host in holders.keys() {
                *counts.entry(host.as_str()).or_default() += 1;
            }
        }
        self.nodes
            .values()
            .map(|n| {
                let ago = now_ms.saturating_sub(n.last_heartbeat_ms);
                DatanodeStatus {
                    node: n.node.clone(),
                    live: ago < dead_after_ms,
                    last_heartbeat_ago_ms: ago,
                    usage: n.usage,
                    blocks: counts.get(n.node.host.as_str()).copied().unwrap_or(0),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namenode::namespace::{Entry, Op, Outcome};

    const DEAD_MS: u64 = 1000;

    fn node(i: usize) -> DatanodeRef {
        DatanodeRef {
            host: format!("h{i}"),
            addr: format!("127.0.1.{i}:1"),
            rack: format!("r{}", i % 2),
        }
    }

    fn usage() -> DatanodeUsage {
        DatanodeUsage {
            remaining_bytes: 1 << 30,
            ..Default::default()
        }
    }

    fn fin(b: Block) -> ReportedReplica {
        ReportedReplica {
            block: b,
            state: ReplicaState::Finalized,
        }
    }

    /// A namespace with one complete file of one block (replication 3).
    fn ns_with_block() -> (Namespace, Block) {
        let mut ns = Namespace::new();
        let e = |op| Entry {
            now_ms: 0,
            call: None,
            caller: None,
            op,
        };
        ns.apply(&e(Op::Create {
            owner: "admin".into(),
            path: "/f".into(),
            replication: 3,
            block_size_bytes: 1024,
            overwrite: false,
            require_parent: false,
            client_name: "c".into(),
        }))
        .unwrap();
        let Ok(Outcome::Block(b)) = ns.apply(&e(Op::AddBlock {
            path: "/f".into(),
            client_name: "c".into(),
            previous: None,
        })) else {
            panic!()
        };
        let b = Block {
            len_bytes: 100,
            ..b
        };
        ns.apply(&e(Op::Complete {
            path: "/f".into(),
            client_name: "c".into(),
            last: Some(b),
        }))
        .unwrap();
        (ns, b)
    }

    fn replicate_targets(map: &mut BlockMap, host: &str) -> Vec<String> {
        map.take_commands(host)
            .into_iter()
            .flat_map(|c| match c {
                DatanodeCommand::Replicate { targets, .. } => {
                    targets.into_iter().map(|t| t.host).collect()
                }
                _ => vec![],
            })
            .collect()
    }

    // Checks G2: a datanode a writer reported failed stops counting as usable at once (no
    // dead-node timeout), is not placed on, and counts again after two more heartbeats (the
    // first may have left it before it died).
    #[test]
    fn suspects_stop_counting_until_they_heartbeat() {
        let mut map = BlockMap::new();
        for i in 0..3 {
            map.register(node(i), usage(), 0);
        }
        assert_eq!(map.usable_count(10, DEAD_MS), 3);
        map.suspect("h1");
        assert_eq!(map.usable_count(10, DEAD_MS), 2);
        assert!(map.is_live("h1", 10, DEAD_MS), "still live for readers");
        assert!(!map.is_usable("h1", 10, DEAD_MS));
        assert!(map.live_views(10, DEAD_MS).iter().all(|n| n.host != "h1"));
        map.suspect("nobody"); // Unknown hosts are ignored.
        assert!(map.heartbeat("h1", usage(), 15));
        assert!(
            !map.is_usable("h1", 15, DEAD_MS),
            "one heartbeat may predate its death"
        );
        assert!(map.heartbeat("h1", usage(), 20));
        assert!(map.is_usable("h1", 20, DEAD_MS));
        assert_eq!(map.usable_count(20, DEAD_MS), 3);
        // A full datanode counts for a block only if it already holds a replica of it.
        let full = DatanodeUsage {
            remaining_bytes: 10,
            ..Default::default()
        };
        assert!(map.heartbeat("h2", full, 30));
        assert_eq!(map.usable_count_for(8, 1024, 30, DEAD_MS), 2);
        let b = Block {
            id: 8,
            gen_stamp: 1,
            len_bytes: 5,
        };
        map.incremental("h2", &[fin(b)], &[]);
        assert_eq!(map.usable_count_for(8, 1024, 30, DEAD_MS), 3);
    }

    // Checks G2: a file is closed only when every block has min(replication, usable datanodes)
    // good replicas; a block short of them beyond its pipeline gets a copy from a good replica
    // to a datanode that does not hold one yet, and a block whose pipeline will still report
    // is waited for without a copy.
    #[test]
    fn plan_close_waits_for_the_pipeline_and_copies_what_it_will_not_bring() {
        let mut map = BlockMap::new();
        for i in 0..4 {
            map.register(node(i), usage(), 0);
        }
        let short = Block {
            id: 5,
            gen_stamp: 1,
            len_bytes: 10,
        };
        let waiting = Block { id: 6, ..short };
        // Block 5: one good replica, a pipeline of only that host: 2 copies to make.
        map.incremental("h0", &[fin(short)], &[]);
        map.record_pipeline(5, &["h0".into()]);
        // Block 6: one good replica, the two other pipeline hosts have not reported yet.
        map.incremental("h1", &[fin(waiting)], &[]);
        map.record_pipeline(6, &["h1".into(), "h2".into(), "h3".into()]);
        let blocks = [short, waiting];
        let file = ClosingFile {
            blocks: &blocks,
            replication: 3,
            block_size_bytes: 1024,
        };
        let plan = map.plan_close(&file, 10, DEAD_MS, 7);
        assert!(!plan.ready);
        assert_eq!(
            plan.copies.len(),
            1,
            "only the short block is copied: {plan:?}"
        );
        let copy = &plan.copies[0];
        assert_eq!((copy.block, copy.source.as_str()), (short, "h0"));
        assert_eq!(copy.targets.len(), 2);
        assert!(!copy.targets.contains(&"h0".to_string()));
        // Once every replica reported, the file may be closed and nothing is copied.
        for h in ["h1", "h2"] {
            map.incremental(h, &[fin(short)], &[]);
        }
        for h in ["h2", "h3"] {
            map.incremental(h, &[fin(waiting)], &[]);
        }
        let plan = map.plan_close(&file, 20, DEAD_MS, 7);
        assert_eq!(
            plan,
            ClosePlan {
                ready: true,
                copies: Vec::new()
            }
        );
        // A replica of another length is not good: the block is short again.
        let longer = Block {
            len_bytes: 11,
            ..short
        };
        let blocks = [longer];
        let file = ClosingFile {
            blocks: &blocks,
            ..file
        };
        assert!(!map.plan_close(&file, 30, DEAD_MS, 7).ready);
    }

    // Checks G2 and G3 together: a file closing on 3 datanodes, replication 3, whose block has
    // a corrupt replica on the third host: the copy goes to that host (overwriting it), since
    // no other host is left; before, `Complete` waited for a copy that had no target.
    #[test]
    fn plan_close_overwrites_a_corrupt_replica_when_every_host_holds_one() {
        let mut map = BlockMap::new();
        for i in 0..3 {
            map.register(node(i), usage(), 0);
        }
        let b = Block {
            id: 5,
            gen_stamp: 1,
            len_bytes: 10,
        };
        for h in ["h0", "h1", "h2"] {
            map.incremental(h, &[fin(b)], &[]);
        }
        map.mark_corrupt("h1", &b);
        let blocks = [b];
        let file = ClosingFile {
            blocks: &blocks,
            replication: 3,
            block_size_bytes: 1024,
        };
        let plan = map.plan_close(&file, 10, DEAD_MS, 7);
        assert!(!plan.ready);
        let [copy] = &plan.copies[..] else {
            panic!("{plan:?}")
        };
        assert_eq!(copy.targets, vec!["h1".to_string()]);
        assert_ne!(copy.source, "h1");
    }

    #[test]
    fn copies_at_close_are_not_doubled_while_one_is_under_way() {
        let mut map = BlockMap::new();
        for i in 0..3 {
            map.register(node(i), usage(), 0);
        }
        let b = Block {
            id: 5,
            gen_stamp: 1,
            len_bytes: 10,
        };
        map.record_pipeline(5, &["h0".into(), "h1".into()]);
        map.record_pipeline(5, &["h0".into(), "h2".into()]);
        assert_eq!(map.pipeline(5), vec!["h0", "h2"]);
        assert_eq!(map.pipeline_hosts_ever(5).unwrap(), vec!["h0", "h1", "h2"]);
        assert!(map.request_copy(b, "h0", &["h1".into()], 0, 100));
        assert!(!map.request_copy(b, "h0", &["h1".into()], 50, 100));
        assert_eq!(replicate_targets(&mut map, "h0"), vec!["h1"]);
        assert!(
            map.request_copy(b, "h0", &["h1".into()], 150, 100),
            "retried later"
        );
        map.forget_pipelines([5]);
        assert!(map.pipeline_hosts_ever(5).is_none());
    }

    // Checks G4: replicas on a dead datanode stop counting and the block is copied elsewhere.
    #[test]
    fn dead_datanode_triggers_re_replication() {
        let (ns, b) = ns_with_block();
        let mut map = BlockMap::new();
        for i in 1..=4 {
            map.register(node(i), usage(), 0);
        }
        for i in 1..=3 {
            map.full_report(&format!("h{i}"), &[fin(b)]);
        }
        assert_eq!(map.check_replication(&ns, 500, DEAD_MS, 10_000, 1), 0);
        for i in [1, 2, 4] {
            map.heartbeat(&format!("h{i}"), usage(), 1500);
        }
        assert!(!map.is_live("h3", 1600, DEAD_MS));
        map.check_replication(&ns, 1600, DEAD_MS, 10_000, 1);
        let mut targets = replicate_targets(&mut map, "h1");
        targets.extend(replicate_targets(&mut map, "h2"));
        assert_eq!(targets, vec!["h4".to_string()]);
        // Not planned twice while in flight.
        assert_eq!(map.check_replication(&ns, 1700, DEAD_MS, 10_000, 1), 0);
        map.incremental("h4", &[fin(b)], &[]);
        assert_eq!(
            map.health(&ns.block(b.id).unwrap(), 1700, DEAD_MS).0.len(),
            3
        );
    }

    // Checks G3: a corrupt replica is not served, and is deleted once enough good copies exist.
    #[test]
    fn corrupt_replica_is_replaced_then_deleted() {
        let (ns, b) = ns_with_block();
        let mut map = BlockMap::new();
        for i in 1..=4 {
            map.register(node(i), usage(), 0);
            if i <= 3 {
                map.full_report(&format!("h{i}"), &[fin(b)]);
            }
        }
        map.mark_corrupt("h2", &b);
        let (good, bad) = map.health(&ns.block(b.id).unwrap(), 10, DEAD_MS);
        assert_eq!((good.len(), bad), (2, vec!["h2".to_string()]));
        map.check_replication(&ns, 10, DEAD_MS, 10_000, 7);
        assert!(
            map.take_commands("h2").is_empty(),
            "corrupt copy kept while under-replicated"
        );
        map.take_commands("h1");
        map.take_commands("h3");
        map.incremental("h4", &[fin(b)], &[]);
        map.check_replication(&ns, 20, DEAD_MS, 10_000, 7);
        assert_eq!(
            map.take_commands("h2"),
            vec![DatanodeCommand::Delete { blocks: vec![b] }]
        );
    }

    // Checks G3's "replaced" on 3 hosts with replication 3: the host of the corrupt replica is
    // sent a copy (overwriting it once complete, never deleted first), and the copy it reports
    // counts as good, so the block is back to 3 good replicas and nothing is deleted.
    #[test]
    fn corrupt_replica_is_overwritten_when_every_host_holds_the_block() {
        let (ns, b) = ns_with_block();
        let mut map = BlockMap::new();
        for i in 1..=3 {
            map.register(node(i), usage(), 0);
            map.full_report(&format!("h{i}"), &[fin(b)]);
        }
        map.mark_corrupt("h2", &b);
        map.check_replication(&ns, 10, DEAD_MS, 10_000, 7);
        assert!(
            map.take_commands("h2").is_empty(),
            "corrupt copy neither deleted nor used as a source"
        );
        let mut targets = replicate_targets(&mut map, "h1");
        targets.extend(replicate_targets(&mut map, "h3"));
        assert_eq!(targets, vec!["h2".to_string()]);
        // The copy is under way: no second one before the retry time.
        assert_eq!(map.check_replication(&ns, 20, DEAD_MS, 10_000, 7), 0);
        // h2 finalizes the copy over its corrupt replica and reports it.
        map.incremental("h2", &[fin(b)], &[]);
        let (good, bad) = map.health(&ns.block(b.id).unwrap(), 30, DEAD_MS);
        assert_eq!((good.len(), bad.len()), (3, 0));
        assert_eq!(map.check_replication(&ns, 30, DEAD_MS, 10_000, 7), 0);
    }

    #[test]
    fn replicas_of_deleted_files_are_garbage() {
        let (mut ns, b) = ns_with_block();
        let mut map = BlockMap::new();
        map.register(node(1), usage(), 0);
        map.full_report("h1", &[fin(b)]);
        ns.apply(&Entry {
            now_ms: 1,
            call: None,
            caller: None,
            op: Op::Delete {
                path: "/f".into(),
                recursive: false,
            },
        })
        .unwrap();
        map.check_replication(&ns, 10, DEAD_MS, 10_000, 1);
        assert_eq!(
            map.take_commands("h1"),
            vec![DatanodeCommand::Delete { blocks: vec![b] }]
        );
        // A block id the namespace has not allocated yet is left alone.
        let future = Block {
            id: b.id + 100,
            ..b
        };
        map.full_report("h1", &[fin(future)]);
        map.check_replication(&ns, 10, DEAD_MS, 10_000, 1);
        assert!(map.take_commands("h1").is_empty());
    }

    #[test]
    fn reader_gets_its_own_host_first() {
        let mut map = BlockMap::new();
        for i in 1..=4 {
            map.register(node(i), usage(), 0);
        }
        let mut hosts = vec!["h1".to_string(), "h2".into(), "h4".into()];
        map.sort_for_reader(&mut hosts, Some("h4"));
        assert_eq!(hosts[0], "h4");
        assert_eq!(hosts[1], "h2", "same rack next");
    }
}
