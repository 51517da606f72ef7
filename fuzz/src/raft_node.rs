//! A Raft node as a namenode runs it (id 1 of voters 1, 2, 3; raft-rs with the namenode's
//! settings), on raft-rs's in-memory storage, for stepping fuzzed messages through the same
//! guard the namenode applies ([`dfs::namenode::raft_guard::check`]).

use dfs::namenode::namespace::Namespace;
use dfs::namenode::raft_guard;
use raft::eraftpb::Message;
use raft::storage::MemStorage;
use raft::{Config, RawNode};

/// This node's id.
pub const ME: u64 = 1;
/// The voters.
pub const VOTERS: [u64; 3] = [1, 2, 3];

/// A fresh node of a three-voter cluster.
pub fn node() -> RawNode<MemStorage> {
    let storage = MemStorage::new_with_conf_state((VOTERS.to_vec(), vec![]));
    let config = Config {
        id: ME,
        election_tick: 10,
        heartbeat_tick: 2,
        pre_vote: true,
        check_quorum: true,
        read_only_option: raft::ReadOnlyOption::Safe,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        skip_bcast_commit: true,
        ..Default::default()
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    RawNode::new(&config, storage, &logger).expect("a valid config")
}

/// Whether the namenode's guard lets `m` reach raft-rs (what its driver asks).
pub fn admitted(node: &RawNode<MemStorage>, m: &Message) -> bool {
    raft_guard::admit(m, &node.raft, |data| {
        Namespace::from_snapshot(data)
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .is_ok()
}

/// Steps `m` and then handles the ready state as the namenode's driver does (persist, apply a
/// snapshot, advance), so that what raft-rs asserts while doing so is reached too.
pub fn step(node: &mut RawNode<MemStorage>, m: Message) {
    // What the driver does to an admitted message before stepping it.
    let mut m = m;
    raft_guard::clamp_heartbeat_commit(&mut m, node.raft.raft_log.last_index());
    // An error (a message raft-rs refuses) is fine; only a panic is a finding.
    let _ = node.step(m);
    handle_ready(node);
}

/// Lets ticks pass (elections, heartbeats), as time does.
pub fn tick(node: &mut RawNode<MemStorage>, ticks: u8) {
    for _ in 0..ticks {
        node.tick();
    }
    handle_ready(node);
}

fn handle_ready(node: &mut RawNode<MemStorage>) {
    if !node.has_ready() {
        return;
    }
    let mut ready = node.ready();
    let store = node.raft.raft_log.store.clone();
    if !ready.snapshot().is_empty() {
        store
            .wl()
            .apply_snapshot(ready.snapshot().clone())
            .expect("raft-rs hands over a snapshot newer than the log");
    }
    store
        .wl()
        .append(ready.entries())
        .expect("raft-rs appends without a gap");
    if let Some(hs) = ready.hs() {
        store.wl().set_hardstate(hs.clone());
    }
    let _ = ready.take_committed_entries();
    let mut light = node.advance(ready);
    if let Some(commit) = light.commit_index() {
        store.wl().mut_hard_state().set_commit(commit);
    }
    let _ = light.take_committed_entries();
    node.advance_apply();
}
