//! The Raft driver: one task that owns the raft-rs `RawNode`, runs its Ready loop, persists,
//! sends messages, and applies committed entries to the namespace.
//!
//! Order inside one Ready, and why:
//! 1. Leader messages that raft-rs allows before persistence (`messages`) go out at once; the
//!    leader's own log write and the followers' run in parallel, as in the Raft thesis.
//! 2. A received snapshot is written (file, then WAL checkpoint) and the namespace restored.
//! 3. New entries and the hard state go to the WAL, which is fsynced — BEFORE any persisted
//!    message (votes, append acks) leaves, and before this node counts the entries as its own
//!    in the commit quorum. Clients are answered only for committed entries, so G1 holds: an
//!    acknowledgement implies a majority has the entry on disk.
//! 4. Committed entries are applied and the proposers answered; read states are answered.
//!    Entries that a Ready hands over as committed are applied first, before that Ready's new
//!    entries are fsynced: committed already means fsynced on a quorum (raft-rs counts the
//!    leader's own copy only after `advance`), and it lets one batch commit while the next
//!    one is being written.
//! 5. The log is compacted into a namespace snapshot every `snapshot_every_entries`.
//!
//! Every request batches: the loop drains up to [`MAX_BATCH`] queued requests before handling
//! one Ready, so concurrent clients share one fsync.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::{EntryType, Message};
use raft::{RawNode, ReadOnlyOption, StateRole};
use tokio::sync::{mpsc, oneshot, watch};

use crate::block_map::BlockMap;
use crate::error::{Error, Result};
use crate::frame::{decode_msg, encode_msg};
use crate::namenode::storage::{Persister, RaftStore};
use crate::namespace::{Entry, Namespace, OpResult, Outcome};
use crate::protocol::{NamenodeStatus, RaftRole};

/// Most queued requests handled before one Ready is processed.
pub const MAX_BATCH: usize = 512;
/// Capacity of the driver's request queue (callers wait when it is full).
pub const QUEUE_CAPACITY: usize = 4096;

/// State shared by the driver (writer) and the RPC handlers (readers).
pub struct Shared {
    /// This namenode's Raft id.
    pub id: u64,
    /// The namespace, as of `applied`.
    pub ns: RwLock<Namespace>,
    /// Highest applied log index.
    pub applied: watch::Sender<u64>,
    /// Raft status for `dfs report` and `NotLeader` hints.
    pub status: Mutex<NamenodeStatus>,
    /// Datanodes and replicas (soft state).
    pub block_map: Mutex<BlockMap>,
    /// Lease holder → last renewal (monotonic ms), kept by the leader only.
    pub leases: Mutex<HashMap<String, u64>>,
    /// When this process started (the monotonic clock's zero).
    pub started: Instant,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("id", &self.id).finish()
    }
}

impl Shared {
    /// Milliseconds since this process started (monotonic).
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// A copy of the current Raft status.
    pub fn status(&self) -> NamenodeStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Ok when this node is the leader, else `NotLeader` with the leader it believes in.
    pub fn check_leader(&self) -> Result<()> {
        let st = self.status();
        if st.role == RaftRole::Leader {
            return Ok(());
        }
        Err(Error::NotLeader {
            hint: (st.leader_id != 0 && st.leader_id != self.id).then_some(st.leader_id),
        })
    }

    /// Read access to the namespace.
    pub fn ns(&self) -> std::sync::RwLockReadGuard<'_, Namespace> {
        self.ns.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The block map.
    pub fn block_map(&self) -> std::sync::MutexGuard<'_, BlockMap> {
        self.block_map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Requests to the driver task.
pub enum DriverMsg {
    /// Replicate and apply an entry; the reply carries its result once applied.
    Propose {
        /// The entry.
        entry: Entry,
        /// Where the result goes.
        reply: oneshot::Sender<Result<OpResult>>,
    },
    /// Linearizable read barrier: replies with a commit index to wait for.
    ReadIndex {
        /// Where the index goes.
        reply: oneshot::Sender<Result<u64>>,
    },
    /// A Raft message from a peer.
    Raft(Message),
    /// The transport could not reach a peer.
    Unreachable(u64),
    /// A snapshot message to a peer was delivered (true) or not.
    SnapshotSent(u64, bool),
}

impl std::fmt::Debug for DriverMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DriverMsg::Propose { entry, .. } => write!(f, "Propose({:?})", entry.op),
            DriverMsg::ReadIndex { .. } => write!(f, "ReadIndex"),
            DriverMsg::Raft(m) => write!(f, "Raft({:?} from {})", m.get_msg_type(), m.from),
            DriverMsg::Unreachable(id) => write!(f, "Unreachable({id})"),
            DriverMsg::SnapshotSent(id, ok) => write!(f, "SnapshotSent({id}, {ok})"),
        }
    }
}

/// Cheap handle for RPC handlers to talk to the driver.
#[derive(Clone, Debug)]
pub struct RaftHandle {
    tx: mpsc::Sender<DriverMsg>,
}

impl RaftHandle {
    /// Sends a message to the driver (used by the transport for incoming Raft messages).
    pub async fn send(&self, msg: DriverMsg) -> Result<()> {
        self.tx
            .send(msg)
            .await
            .map_err(|_| Error::Unavailable("the raft driver has stopped".into()))
    }

    /// Proposes `entry` and waits until it is committed, fsynced and applied.
    pub async fn propose(&self, entry: Entry) -> Result<Outcome> {
        let (reply, rx) = oneshot::channel();
        self.send(DriverMsg::Propose { entry, reply }).await?;
        let result = rx
            .await
            .map_err(|_| Error::Unavailable("the raft driver dropped the proposal".into()))??;
        result.map_err(Error::from)
    }

    /// Waits until this node's namespace reflects every write committed before the call
    /// (ReadIndex with `ReadOnlyOption::Safe`: the leader confirms it still leads a quorum).
    pub async fn read_barrier(&self, shared: &Shared) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.send(DriverMsg::ReadIndex { reply }).await?;
        let index = rx
            .await
            .map_err(|_| Error::Unavailable("the raft driver dropped the read".into()))??;
        let mut applied = shared.applied.subscribe();
        applied
            .wait_for(|&a| a >= index)
            .await
            .map_err(|_| Error::Unavailable("the raft driver has stopped".into()))?;
        Ok(())
    }
}

/// Raft timing and compaction settings.
#[derive(Debug, Clone, Copy)]
pub struct DriverSettings {
    /// Length of one tick.
    pub tick: Duration,
    /// Election timeout in ticks.
    pub election_ticks: usize,
    /// Heartbeat period in ticks.
    pub heartbeat_ticks: usize,
    /// Compact after this many applied entries.
    pub snapshot_every_entries: u64,
}

/// Sends Raft messages to peers (implemented by the transport).
pub trait MessageSink: Send + 'static {
    /// Queues messages for delivery; never blocks.
    fn send(&self, msgs: Vec<Message>);
}

struct Pending {
    proposals: HashMap<u64, oneshot::Sender<Result<OpResult>>>,
    reads: HashMap<u64, oneshot::Sender<Result<u64>>>,
    next_seq: u64,
}

/// The driver task's state.
pub struct Driver<S: MessageSink> {
    node: RawNode<RaftStore>,
    persister: Persister,
    shared: Arc<Shared>,
    sink: S,
    rx: mpsc::Receiver<DriverMsg>,
    settings: DriverSettings,
    /// Distinguishes this process's proposals from a previous incarnation's with equal seqs.
    incarnation: u64,
    pending: Pending,
    role: StateRole,
    /// (term, vote) last written, to tell whether a new hard state needs an fsync.
    last_hard_state: (u64, u64),
}

/// Builds the shared state, the handle and the driver for namenode `id`.
///
/// `persister` and `snapshot_data` come from [`Persister::open`]; the namespace is restored from
/// the snapshot (empty data = empty namespace) and the log's committed tail is re-applied by
/// raft-rs after start.
pub fn build<S: MessageSink>(
    id: u64,
    persister: Persister,
    snapshot: raft::eraftpb::Snapshot,
    settings: DriverSettings,
    sink: S,
) -> Result<(Arc<Shared>, RaftHandle, Driver<S>)> {
    let applied = snapshot.get_metadata().index;
    let ns = if snapshot.data.is_empty() {
        Namespace::new()
    } else {
        Namespace::from_snapshot(&snapshot.data)?
    };
    let cfg = raft::Config {
        id,
        election_tick: settings.election_ticks,
        heartbeat_tick: settings.heartbeat_ticks,
        applied,
        check_quorum: true,
        pre_vote: true,
        read_only_option: ReadOnlyOption::Safe,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        ..Default::default()
    };
    cfg.validate().map_err(|e| Error::Raft(e.to_string()))?;
    let hard_state = raft::Storage::initial_state(&persister.store())
        .map_err(|e| Error::Raft(e.to_string()))?
        .hard_state;
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let node =
        RawNode::new(&cfg, persister.store(), &logger).map_err(|e| Error::Raft(e.to_string()))?;
    let status = NamenodeStatus {
        id,
        role: RaftRole::Follower,
        term: 0,
        leader_id: 0,
        commit_index: 0,
        applied_index: applied,
        snapshot_index: applied,
        inodes: ns.inode_count(),
    };
    let (applied_tx, _) = watch::channel(applied);
    let shared = Arc::new(Shared {
        id,
        ns: RwLock::new(ns),
        applied: applied_tx,
        status: Mutex::new(status),
        block_map: Mutex::new(BlockMap::new()),
        leases: Mutex::new(HashMap::new()),
        started: Instant::now(),
    });
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    let driver = Driver {
        node,
        persister,
        shared: shared.clone(),
        sink,
        rx,
        settings,
        incarnation: rand::random(),
        pending: Pending {
            proposals: HashMap::new(),
            reads: HashMap::new(),
            next_seq: 1,
        },
        role: StateRole::Follower,
        last_hard_state: (hard_state.term, hard_state.vote),
    };
    Ok((shared, RaftHandle { tx }, driver))
}

impl<S: MessageSink> Driver<S> {
    /// Runs until every handle is dropped or storage fails. A storage failure is fatal: the
    /// process must stop rather than acknowledge anything it could not make durable.
    pub async fn run(mut self) -> Result<()> {
        let mut ticker = tokio::time::interval(self.settings.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    self.node.tick();
                }
                msg = self.rx.recv() => {
                    let Some(msg) = msg else { return Ok(()) };
                    self.handle(msg);
                    for _ in 0..MAX_BATCH {
                        match self.rx.try_recv() {
                            Ok(msg) => self.handle(msg),
                            Err(_) => break,
                        }
                    }
                }
            }
            self.on_ready()?;
            self.update_status();
        }
    }

    fn handle(&mut self, msg: DriverMsg) {
        match msg {
            DriverMsg::Propose { entry, reply } => self.propose(entry, reply),
            DriverMsg::ReadIndex { reply } => self.read_index(reply),
            DriverMsg::Raft(mut m) => {
                if m.to != self.shared.id {
                    return;
                }
                if m.get_msg_type() == raft::eraftpb::MessageType::MsgHeartbeat {
                    // A leader's heartbeat carries min(its commit, what it believes we have).
                    // After our disk was wiped that belief is stale and raft-rs would panic on a
                    // commit index beyond our log. Knowing less is committed is always safe; our
                    // answer then shows the leader our real log, and it sends a snapshot.
                    m.commit = m.commit.min(self.node.raft.raft_log.last_index());
                }
                if let Err(e) = self.node.step(m) {
                    tracing::debug!("raft step: {e}");
                }
            }
            DriverMsg::Unreachable(id) => self.node.report_unreachable(id),
            DriverMsg::SnapshotSent(id, ok) => {
                let status = if ok {
                    raft::SnapshotStatus::Finish
                } else {
                    raft::SnapshotStatus::Failure
                };
                self.node.report_snapshot(id, status);
            }
        }
    }

    fn not_leader(&self) -> Error {
        let leader = self.node.raft.leader_id;
        Error::NotLeader {
            hint: (leader != 0 && leader != self.shared.id).then_some(leader),
        }
    }

    fn next_seq(&mut self) -> u64 {
        let seq = self.pending.next_seq;
        self.pending.next_seq += 1;
        seq
    }

    fn propose(&mut self, entry: Entry, reply: oneshot::Sender<Result<OpResult>>) {
        if self.node.raft.state != StateRole::Leader {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        let data = match encode_msg(&entry) {
            Ok(d) => d,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let seq = self.next_seq();
        let ctx = encode_msg(&(self.incarnation, seq)).unwrap_or_default();
        match self.node.propose(ctx, data) {
            Ok(()) => {
                self.pending.proposals.insert(seq, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(Error::Unavailable(format!("proposal dropped: {e}"))));
            }
        }
    }

    fn read_index(&mut self, reply: oneshot::Sender<Result<u64>>) {
        if self.node.raft.state != StateRole::Leader {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        let seq = self.next_seq();
        self.pending.reads.insert(seq, reply);
        self.node
            .read_index(encode_msg(&(self.incarnation, seq)).unwrap_or_default());
    }

    fn on_ready(&mut self) -> Result<()> {
        if !self.node.has_ready() {
            return Ok(());
        }
        let mut ready = self.node.ready();
        self.sink.send(ready.take_messages());
        if !ready.snapshot().is_empty() {
            self.install_snapshot(ready.snapshot().clone())?;
        }
        // Entries in this Ready's committed list are already on a quorum's fsynced logs
        // (raft-rs counts the leader's own copy only once it was persisted: `advance` below),
        // so answering their clients now keeps G1 and does not make them wait for the fsync of
        // the next batch.
        self.apply(ready.take_committed_entries())?;
        let mut dirty = !ready.entries().is_empty();
        self.persister.append(ready.entries())?;
        if let Some(hs) = ready.hs() {
            // Term and vote must be durable before we act on them (no double vote after a
            // crash). A commit-index-only change need not be: a restarted node re-learns the
            // commit index from the leader, so it rides along with the next fsync instead of
            // costing one of its own.
            dirty |= hs.term != self.last_hard_state.0 || hs.vote != self.last_hard_state.1;
            self.last_hard_state = (hs.term, hs.vote);
            self.persister.set_hard_state(hs)?;
        }
        if dirty {
            sync_off_the_reactor(&mut self.persister)?;
        }
        let read_states = ready.take_read_states();
        self.sink.send(ready.take_persisted_messages());
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.persister.set_commit(commit);
        }
        self.sink.send(light.take_messages());
        self.apply(light.take_committed_entries())?;
        self.node.advance_apply();
        for rs in read_states {
            if let Ok((inc, seq)) = decode_msg::<(u64, u64)>(&rs.request_ctx) {
                if inc == self.incarnation {
                    if let Some(reply) = self.pending.reads.remove(&seq) {
                        let _ = reply.send(Ok(rs.index));
                    }
                }
            }
        }
        self.maybe_compact()
    }

    fn install_snapshot(&mut self, snap: raft::eraftpb::Snapshot) -> Result<()> {
        let index = snap.get_metadata().index;
        let ns = Namespace::from_snapshot(&snap.data)?;
        self.persister.apply_snapshot(snap)?;
        *self.shared.ns.write().unwrap_or_else(|e| e.into_inner()) = ns;
        self.shared.applied.send_replace(index);
        tracing::info!("installed snapshot at index {index}");
        Ok(())
    }

    fn apply(&mut self, entries: Vec<raft::eraftpb::Entry>) -> Result<()> {
        let Some(last) = entries.last().map(|e| e.index) else {
            return Ok(());
        };
        {
            let mut ns = self.shared.ns.write().unwrap_or_else(|e| e.into_inner());
            for e in &entries {
                if e.get_entry_type() != EntryType::EntryNormal || e.data.is_empty() {
                    continue;
                }
                let result = match decode_msg::<Entry>(&e.data) {
                    Ok(entry) => Ok(ns.apply(&entry)),
                    // Every node decodes the same bytes the same way, so skipping keeps them
                    // identical; this only happens if a newer version wrote the entry.
                    Err(err) => Err(err),
                };
                if let Ok((inc, seq)) = decode_msg::<(u64, u64)>(&e.context) {
                    if inc == self.incarnation {
                        if let Some(reply) = self.pending.proposals.remove(&seq) {
                            let _ = reply.send(result);
                        }
                    }
                }
            }
        }
        self.shared.applied.send_replace(last);
        Ok(())
    }

    fn maybe_compact(&mut self) -> Result<()> {
        let applied = *self.shared.applied.borrow();
        let snap_index = self.persister.store().snapshot_index();
        if applied < snap_index + self.settings.snapshot_every_entries {
            return Ok(());
        }
        let data = self.shared.ns().to_snapshot()?;
        self.persister.compact(applied, data)?;
        tracing::info!("compacted the log into a snapshot at index {applied}");
        Ok(())
    }

    fn update_status(&mut self) {
        let raft = &self.node.raft;
        if self.role == StateRole::Leader && raft.state != StateRole::Leader {
            // Lost leadership: pending calls may or may not commit. Tell the clients to retry
            // elsewhere; their CallIds make a retry of an already-committed call harmless.
            let err = || Error::NotLeader {
                hint: (raft.leader_id != 0).then_some(raft.leader_id),
            };
            for (_, reply) in self.pending.proposals.drain() {
                let _ = reply.send(Err(err()));
            }
            for (_, reply) in self.pending.reads.drain() {
                let _ = reply.send(Err(err()));
            }
        }
        if self.role != raft.state {
            tracing::info!(
                "namenode {} is now {:?} in term {}",
                self.shared.id,
                raft.state,
                raft.term
            );
        }
        self.role = raft.state;
        let role = match raft.state {
            StateRole::Leader => RaftRole::Leader,
            StateRole::Follower => RaftRole::Follower,
            StateRole::Candidate => RaftRole::Candidate,
            StateRole::PreCandidate => RaftRole::PreCandidate,
        };
        let inodes = self.shared.ns().inode_count();
        let mut st = self.shared.status.lock().unwrap_or_else(|e| e.into_inner());
        st.role = role;
        st.term = raft.term;
        st.leader_id = raft.leader_id;
        st.commit_index = raft.raft_log.committed;
        st.applied_index = *self.shared.applied.borrow();
        st.snapshot_index = self.persister.store().snapshot_index();
        st.inodes = inodes;
    }
}

/// fsyncs the WAL. On a multi-threaded runtime the wait is announced with `block_in_place`, so
/// the worker's other tasks (RPC handlers, the transport) move to another thread for the few
/// milliseconds an fsync takes instead of stalling behind it.
fn sync_off_the_reactor(persister: &mut Persister) -> Result<()> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if multi {
        tokio::task::block_in_place(|| persister.sync())
    } else {
        persister.sync()
    }
}

/// Encodes a Raft message as its protobuf bytes (the payload of a Raft frame).
pub fn encode_raft_message(m: &Message) -> Result<Vec<u8>> {
    m.write_to_bytes()
        .map_err(|e| Error::Raft(format!("protobuf encode: {e}")))
}

/// Decodes a Raft frame payload.
pub fn decode_raft_message(bytes: &[u8]) -> Result<Message> {
    Message::parse_from_bytes(bytes).map_err(|e| Error::Malformed(format!("raft message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespace::Op;
    use std::sync::Mutex as StdMutex;

    /// A sink that loops messages between in-process drivers.
    #[derive(Clone, Default)]
    struct Bus(Arc<StdMutex<Vec<Message>>>);
    impl MessageSink for Bus {
        fn send(&self, msgs: Vec<Message>) {
            self.0.lock().unwrap().extend(msgs);
        }
    }

    fn settings() -> DriverSettings {
        DriverSettings {
            tick: Duration::from_millis(10),
            election_ticks: 10,
            heartbeat_ticks: 2,
            snapshot_every_entries: 5,
        }
    }

    // Checks G1: a single-node cluster acknowledges only applied, fsynced writes, and the
    // namespace (snapshot + log tail) survives a restart.
    #[tokio::test]
    async fn single_node_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..2u32 {
            let (p, snap) = Persister::open(dir.path(), vec![1]).unwrap();
            let (shared, handle, driver) = build(1, p, snap, settings(), Bus::default()).unwrap();
            let task = tokio::spawn(driver.run());
            let deadline = Instant::now() + Duration::from_secs(10);
            while shared.check_leader().is_err() {
                assert!(Instant::now() < deadline, "no leader");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            for i in 0..7 {
                let op = Op::Mkdirs {
                    path: format!("/r{round}/d{i}"),
                };
                handle
                    .propose(Entry {
                        now_ms: 0,
                        call: None,
                        op,
                    })
                    .await
                    .unwrap();
            }
            handle.read_barrier(&shared).await.unwrap();
            for r in 0..=round {
                assert_eq!(
                    shared
                        .ns()
                        .list(&format!("/r{r}"), None, 100)
                        .unwrap()
                        .len(),
                    7
                );
            }
            drop(handle);
            task.await.unwrap().unwrap();
        }
    }
}
