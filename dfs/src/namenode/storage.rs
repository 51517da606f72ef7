//! Durable Raft storage: the log and hard state in the [`crate::wal`], the latest namespace
//! snapshot in one file written with [`crate::durable::write_durable`].
//!
//! [`RaftStore`] is what raft-rs reads (it implements [`raft::Storage`] over an in-memory copy);
//! [`Persister`] is what the Raft driver writes through. Every change goes to the WAL first and
//! the driver calls [`Persister::sync`] before it sends persisted messages or answers a client.
//!
//! Recovery ([`Persister::open`]): load the snapshot file (if any), then replay the WAL:
//! a `Checkpoint` record resets the state (it is written when the log is compacted), `Entries`
//! append (overwriting a conflicting suffix exactly as raft-rs asked at the time), `HardState`
//! replaces the hard state. Entries the snapshot already covers are dropped.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use prost::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use serde::{Deserialize, Serialize};

use crate::durable::write_durable;
use crate::error::{Error, Result};
use crate::frame::{decode_msg, encode_msg};
use crate::wal::{Wal, DEFAULT_SEGMENT_BYTES};

const SNAPSHOT_FILE: &str = "snapshot.bin";

/// One WAL record of the Raft storage. Raft types travel as their protobuf bytes.
#[derive(Debug, Serialize, Deserialize)]
enum WalRecord {
    /// Full restart point: hard state, snapshot position, and the entries after it.
    Checkpoint {
        hard_state: Vec<u8>,
        snapshot_index: u64,
        snapshot_term: u64,
        entries: Vec<Vec<u8>>,
    },
    /// Entries to append (the first one's index may overwrite a suffix).
    Entries(Vec<Vec<u8>>),
    /// New hard state.
    HardState(Vec<u8>),
}

/// In-memory state shared between raft-rs (reads) and the driver (writes).
#[derive(Default)]
struct Core {
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    entries: Vec<Entry>,
}

impl Core {
    fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    fn first_index(&self) -> u64 {
        self.snapshot_index() + 1
    }

    fn last_index(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.snapshot_index(), |e| e.index)
    }

    fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.snapshot_index() {
            return Some(self.snapshot.get_metadata().term);
        }
        self.entries
            .binary_search_by_key(&index, |e| e.index)
            .ok()
            .map(|i| self.entries[i].term)
    }

    /// Appends, replacing any entries at or after the first new index (Raft's log matching).
    fn append(&mut self, ents: &[Entry]) {
        let Some(first) = ents.first() else { return };
        let keep_from = first.index.max(self.first_index());
        // The log is sorted by index, so the conflicting suffix is found by binary search: a
        // scan of the whole log on every append made the driver's cost grow with the log.
        let conflict = self.entries.partition_point(|e| e.index < first.index);
        self.entries.truncate(conflict);
        let skip = (keep_from - first.index) as usize;
        if let Some(last) = self.entries.last() {
            if last.index + 1 != keep_from {
                // A gap would break Raft's log invariants; raft-rs never asks for one.
                tracing::error!("raft log gap: last {} then {}", last.index, keep_from);
            }
        }
        self.entries.extend(ents.iter().skip(skip).cloned());
    }

    /// Installs a snapshot: entries it covers go; later ones stay only if they still match.
    fn install(&mut self, snap: Snapshot) {
        let meta = snap.get_metadata();
        let (index, term) = (meta.index, meta.term);
        if self.term_at(index) == Some(term) {
            self.entries.retain(|e| e.index > index);
        } else {
            self.entries.clear();
        }
        self.hard_state.commit = self.hard_state.commit.max(index);
        self.hard_state.term = self.hard_state.term.max(term);
        self.snapshot = snap;
    }
}

/// The raft-rs view of the storage (cheap to clone; shares the in-memory state).
#[derive(Clone)]
pub struct RaftStore {
    core: Arc<RwLock<Core>>,
}

impl RaftStore {
    fn rl(&self) -> RwLockReadGuard<'_, Core> {
        crate::lock::read(&self.core)
    }

    fn wl(&self) -> RwLockWriteGuard<'_, Core> {
        crate::lock::write(&self.core)
    }

    /// Index of the latest snapshot.
    pub fn snapshot_index(&self) -> u64 {
        self.rl().snapshot_index()
    }
}

impl raft::Storage for RaftStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let core = self.rl();
        Ok(RaftState::new(
            core.hard_state.clone(),
            core.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _ctx: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let core = self.rl();
        if low < core.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > core.last_index() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let offset = core.first_index();
        let mut ents = core.entries[(low - offset) as usize..(high - offset) as usize].to_vec();
        limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let core = self.rl();
        if idx == core.snapshot_index() {
            return Ok(core.snapshot.get_metadata().term);
        }
        if idx < core.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > core.last_index() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(core.entries[(idx - core.first_index()) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.rl().first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.rl().last_index())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let core = self.rl();
        if core.snapshot_index() < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let mut snap = core.snapshot.clone();
        // The snapshot always carries the current (fixed) membership.
        snap.mut_metadata().set_conf_state(core.conf_state.clone());
        Ok(snap)
    }
}

/// Keeps at least one entry and at most `max` bytes of entries.
fn limit_size(ents: &mut Vec<Entry>, max: Option<u64>) {
    let Some(max) = max else { return };
    let mut size = 0u64;
    let keep = ents
        .iter()
        .take_while(|e| {
            size += e.encoded_len() as u64;
            size <= max
        })
        .count();
    ents.truncate(keep.max(1));
}

// Raft types are encoded with prost (raft's `prost-codec`), never protobuf 2.x's parser.
fn pb<M: prost::Message>(m: &M) -> Result<Vec<u8>> {
    Ok(m.encode_to_vec())
}

fn unpb<M: prost::Message + Default>(bytes: &[u8]) -> Result<M> {
    M::decode(bytes).map_err(|e| Error::Malformed(format!("raft record: {e}")))
}

/// An entry from the WAL, refused if its type is outside the enum (raft-rs would panic on it).
fn unpb_entry(bytes: &[u8]) -> Result<Entry> {
    let e = unpb(bytes)?;
    crate::namenode::raft_driver::check_entry_type(&e)?;
    Ok(e)
}

/// The driver's write side of the storage.
pub struct Persister {
    dir: PathBuf,
    wal: Wal,
    store: RaftStore,
}

impl std::fmt::Debug for Persister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persister").field("dir", &self.dir).finish()
    }
}

impl Persister {
    /// Opens (or creates) the storage in `dir` for a cluster of `voters`. Returns the persister
    /// and the snapshot data to restore the namespace from (empty when there is none).
    pub fn open(dir: &Path, voters: Vec<u64>) -> Result<(Persister, Snapshot)> {
        crate::durable::create_dir_durable(dir)?;
        let snapshot = load_snapshot(&dir.join(SNAPSHOT_FILE))?;
        let (wal, records) = Wal::open(&dir.join("wal"), DEFAULT_SEGMENT_BYTES)?;
        let mut core = Core {
            conf_state: ConfState {
                voters,
                ..Default::default()
            },
            ..Default::default()
        };
        replay_records(&mut core, &records)?;
        // A snapshot file newer than the WAL's checkpoint (crash between the two writes, or a
        // snapshot received from the leader) wins; `install` drops what it covers.
        let snap_index = snapshot.get_metadata().index;
        if snap_index > 0 && snap_index >= core.snapshot_index() {
            core.install(snapshot.clone());
        }
        let restored = core.snapshot.clone();
        let store = RaftStore {
            core: Arc::new(RwLock::new(core)),
        };
        Ok((
            Persister {
                dir: dir.to_path_buf(),
                wal,
                store,
            },
            restored,
        ))
    }

    /// The raft-rs view of this storage.
    pub fn store(&self) -> RaftStore {
        self.store.clone()
    }

    /// Appends entries (WAL first, then memory). Not durable until [`Persister::sync`].
    pub fn append(&mut self, ents: &[Entry]) -> Result<()> {
        if ents.is_empty() {
            return Ok(());
        }
        let encoded = ents.iter().map(pb).collect::<Result<Vec<_>>>()?;
        self.wal
            .append(&[&encode_msg(&WalRecord::Entries(encoded))?])?;
        self.store.wl().append(ents);
        Ok(())
    }

    /// Records a new hard state. Not durable until [`Persister::sync`].
    pub fn set_hard_state(&mut self, hs: &HardState) -> Result<()> {
        self.wal
            .append(&[&encode_msg(&WalRecord::HardState(pb(hs)?))?])?;
        self.store.wl().hard_state = hs.clone();
        Ok(())
    }

    /// Raises the commit index in memory (raft-rs re-learns it after a restart, so it need not
    /// be logged on every advance).
    pub fn set_commit(&mut self, commit: u64) {
        let mut core = self.store.wl();
        core.hard_state.commit = core.hard_state.commit.max(commit);
    }

    /// Makes everything appended so far durable.
    pub fn sync(&mut self) -> Result<()> {
        self.wal.sync()
    }

    /// Hands everything appended so far to the OS and returns a handle whose `sync_data` makes
    /// it durable, for an fsync on another thread (see [`crate::wal::Wal::flush_for_sync`]).
    pub fn flush_for_sync(&mut self) -> Result<crate::wal::SegmentSync> {
        self.wal.flush_for_sync()
    }

    /// Installs a snapshot received from the leader: the file first, then the log is reset.
    pub fn apply_snapshot(&mut self, snap: Snapshot) -> Result<()> {
        self.save_snapshot_file(&snap)?;
        self.store.wl().install(snap);
        self.checkpoint()
    }

    /// Compacts the log: `data` is the namespace as of `index` (which must be applied).
    pub fn compact(&mut self, index: u64, data: Vec<u8>) -> Result<()> {
        let term =
            raft::Storage::term(&self.store, index).map_err(|e| Error::Raft(e.to_string()))?;
        let mut snap = Snapshot {
            data,
            ..Default::default()
        };
        let meta: &mut SnapshotMetadata = snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.store.rl().conf_state.clone());
        self.save_snapshot_file(&snap)?;
        self.store.wl().install(snap);
        self.checkpoint()
    }

    fn save_snapshot_file(&self, snap: &Snapshot) -> Result<()> {
        let body = pb(snap)?;
        let mut bytes = crc32fast::hash(&body).to_le_bytes().to_vec();
        bytes.extend_from_slice(&body);
        write_durable(&self.dir.join(SNAPSHOT_FILE), &bytes)
    }

    /// Rewrites the WAL as one checkpoint of the current in-memory state.
    fn checkpoint(&mut self) -> Result<()> {
        let record = {
            let core = self.store.rl();
            WalRecord::Checkpoint {
                hard_state: pb(&core.hard_state)?,
                snapshot_index: core.snapshot_index(),
                snapshot_term: core.snapshot.get_metadata().term,
                entries: core.entries.iter().map(pb).collect::<Result<_>>()?,
            }
        };
        self.wal.rewrite(&[&encode_msg(&record)?])
    }
}

/// Decodes WAL records and replays them, in order, onto the raft-rs view of a fresh store of
/// `voters`, as [`Persister::open`] does (public for the fuzz targets: any bytes give a store or
/// an error, never a panic).
pub fn replay_wal_records(voters: Vec<u64>, records: &[Vec<u8>]) -> Result<RaftStore> {
    let mut core = Core {
        conf_state: ConfState {
            voters,
            ..Default::default()
        },
        ..Default::default()
    };
    replay_records(&mut core, records)?;
    Ok(RaftStore {
        core: Arc::new(RwLock::new(core)),
    })
}

fn replay_records(core: &mut Core, records: &[Vec<u8>]) -> Result<()> {
    for rec in records {
        replay(core, decode_msg(rec)?)?;
    }
    check_contiguous(core)
}

/// The log read back must hold consecutive indices right after the snapshot: raft-rs and
/// [`RaftStore`] index into it by position, and a damaged WAL whose records still pass their
/// CRC (found by the wal fuzz target) made that slicing panic.
fn check_contiguous(core: &Core) -> Result<()> {
    let mut expected = core.snapshot_index();
    for e in &core.entries {
        expected = expected.checked_add(1).unwrap_or(0);
        if e.index != expected {
            return Err(Error::Malformed(format!(
                "raft WAL: entry {} where entry {expected} belongs (the log is damaged)",
                e.index
            )));
        }
    }
    Ok(())
}

fn replay(core: &mut Core, rec: WalRecord) -> Result<()> {
    match rec {
        WalRecord::Checkpoint {
            hard_state,
            snapshot_index,
            snapshot_term,
            entries,
        } => {
            core.hard_state = unpb(&hard_state)?;
            let meta = core.snapshot.mut_metadata();
            meta.index = snapshot_index;
            meta.term = snapshot_term;
            core.entries = entries
                .iter()
                .map(|e| unpb_entry(e))
                .collect::<Result<_>>()?;
        }
        WalRecord::Entries(ents) => {
            let ents: Vec<Entry> = ents.iter().map(|e| unpb_entry(e)).collect::<Result<_>>()?;
            core.append(&ents);
        }
        WalRecord::HardState(hs) => core.hard_state = unpb(&hs)?,
    }
    Ok(())
}

fn load_snapshot(path: &Path) -> Result<Snapshot> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Snapshot::default()),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    let corrupt = |detail: &str| Error::Corrupt {
        block: 0,
        replica: path.display().to_string(),
        detail: detail.to_string(),
    };
    if bytes.len() < 4 {
        return Err(corrupt("snapshot file too short"));
    }
    let (crc, body) = bytes.split_at(4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(corrupt("snapshot checksum mismatch"));
    }
    unpb(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8],
            ..Default::default()
        }
    }

    /// WALs written before the switch to prost held protobuf 2.x's bytes. Both encode the same
    /// eraftpb schema in the protobuf wire format, so the records (spelled out here byte by byte
    /// as protobuf 2.28 wrote them) read back unchanged: no format version was needed.
    #[test]
    fn wal_written_with_protobuf_2_reads_back_with_prost() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(&dir.path().join("wal"), DEFAULT_SEGMENT_BYTES).unwrap();
            // Entry { term: 1, index: 1, data: [1] } and HardState { term: 5, vote: 2, commit: 1 }.
            let entry = vec![0x10, 1, 0x18, 1, 0x22, 1, 1];
            let hard_state = vec![0x08, 5, 0x10, 2, 0x18, 1];
            let recs = [
                encode_msg(&WalRecord::Entries(vec![entry])).unwrap(),
                encode_msg(&WalRecord::HardState(hard_state)).unwrap(),
            ];
            wal.append(&[&recs[0], &recs[1]]).unwrap();
            wal.sync().unwrap();
        }
        let (p, _) = Persister::open(dir.path(), vec![1, 2, 3]).unwrap();
        let s = p.store();
        let state = s.initial_state().unwrap();
        assert_eq!(
            (
                state.hard_state.term,
                state.hard_state.vote,
                state.hard_state.commit
            ),
            (5, 2, 1)
        );
        let ents = s
            .entries(1, 2, None, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(ents, vec![ent(1, 1)]);
    }

    // Found by the wal fuzz target: records that pass their CRC but hold entries out of order
    // made `entries` slice past the log. Such a WAL is refused when it is read.
    #[test]
    fn wal_with_entries_out_of_order_is_refused_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut p, _) = Persister::open(dir.path(), vec![1, 2, 3]).unwrap();
            p.append(&[ent(1, 1), ent(2, 1)]).unwrap();
            // What a bug or a damaged disk could leave: entry 7 after entry 2.
            p.append(&[ent(7, 1)]).unwrap();
            p.sync().unwrap();
        }
        let err = Persister::open(dir.path(), vec![1, 2, 3]).unwrap_err();
        assert!(
            err.to_string().contains("entry 7 where entry 3 belongs"),
            "{err}"
        );
        let rec = encode_msg(&WalRecord::Entries(vec![pb(&ent(5, 1)).unwrap()])).unwrap();
        assert!(replay_wal_records(vec![1, 2, 3], &[rec]).is_err());
    }

    #[test]
    fn log_and_hard_state_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut p, _) = Persister::open(dir.path(), vec![1, 2, 3]).unwrap();
            p.append(&[ent(1, 1), ent(2, 1), ent(3, 1)]).unwrap();
            // A new leader overwrites the uncommitted suffix.
            p.append(&[ent(3, 2), ent(4, 2)]).unwrap();
            p.set_hard_state(&HardState {
                term: 2,
                vote: 3,
                commit: 2,
            })
            .unwrap();
            p.sync().unwrap();
        }
        let (p, snap) = Persister::open(dir.path(), vec![1, 2, 3]).unwrap();
        let s = p.store();
        assert_eq!(snap.get_metadata().index, 0);
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (1, 4));
        assert_eq!(s.term(3).unwrap(), 2);
        let state = s.initial_state().unwrap();
        assert_eq!((state.hard_state.vote, state.hard_state.commit), (3, 2));
        assert_eq!(state.conf_state.voters, vec![1, 2, 3]);
    }

    #[test]
    fn compaction_keeps_the_tail_and_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut p, _) = Persister::open(dir.path(), vec![1]).unwrap();
            p.append(&(1..=10).map(|i| ent(i, 1)).collect::<Vec<_>>())
                .unwrap();
            p.set_hard_state(&HardState {
                term: 1,
                vote: 1,
                commit: 10,
            })
            .unwrap();
            p.sync().unwrap();
            p.compact(7, b"ns@7".to_vec()).unwrap();
            p.append(&[ent(11, 1)]).unwrap();
            p.sync().unwrap();
        }
        let (p, snap) = Persister::open(dir.path(), vec![1]).unwrap();
        let s = p.store();
        assert_eq!(&snap.data[..], b"ns@7");
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (8, 11));
        assert_eq!(s.term(7).unwrap(), 1);
        assert!(s
            .entries(5, 9, None, GetEntriesContext::empty(false))
            .is_err());
        assert_eq!(
            s.entries(8, 12, None, GetEntriesContext::empty(false))
                .unwrap()
                .len(),
            4
        );
        assert_eq!(s.snapshot(0, 2).unwrap().get_metadata().index, 7);
    }

    #[test]
    fn received_snapshot_replaces_a_diverged_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut p, _) = Persister::open(dir.path(), vec![1, 2, 3]).unwrap();
        p.append(&[ent(1, 1), ent(2, 1)]).unwrap();
        let mut snap = Snapshot {
            data: b"leader ns".to_vec(),
            ..Default::default()
        };
        snap.mut_metadata().index = 20;
        snap.mut_metadata().term = 3;
        p.apply_snapshot(snap).unwrap();
        drop(p);
        let (p, snap) = Persister::open(dir.path(), vec![1, 2, 3]).unwrap();
        assert_eq!(&snap.data[..], b"leader ns");
        assert_eq!(p.store().last_index().unwrap(), 20);
        assert_eq!(p.store().initial_state().unwrap().hard_state.commit, 20);
    }
}
