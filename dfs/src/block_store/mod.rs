//! The datanode's on-disk block store.
//!
//! Each data directory (a "volume") holds finalized replicas in `current/` and replicas being
//! written in `tmp/`; [`replica`] describes the files. Nothing in `tmp/` is ever reported or
//! served.
//!
//! A replica whose pipeline ended before its last packet (the writer or a neighbour died) is
//! *parked*: kept open in `tmp/`, in memory, for lease recovery, which asks for its durable
//! length, cuts it and finalizes it under a new generation stamp
//! ([`BlockStore::recovery_replicas`], [`BlockStore::recover`]). Parked replicas are dropped when
//! a newer generation of the block is finalized, when they are older than the datanode's
//! retention, beyond [`MAX_PARKED_REPLICAS`], and at restart (`tmp/` is cleared, so a datanode
//! restarted before lease recovery contributes nothing to it).
//!
//! A replica is finalized by fsyncing both files in `tmp/`, renaming the data file and then the
//! sidecar into `current/`, and fsyncing `current/`. Because the sidecar is renamed last, a
//! `.data` without its `.meta` is an interrupted finalize and is deleted on restart, together with
//! everything left in `tmp/`. Only replicas whose sidecar header and size match their data file
//! are reported; their contents are checked by every read and by the background scanner.
//!
//! The store is synchronous (std::fs); async callers run it on the blocking pool.
//!
//! # Layout
//!
//! - this file: [`BlockStore`], the index of finalized replicas (restart cleanup, finalize,
//!   delete, restamp, scan) and lease recovery.
//! - [`replica`]: the on-disk format of a replica (file names, sidecar size, verified reads),
//!   shared with clients' short-circuit reads.
//! - `writer`: [`BlockWriter`], a replica being written (background sync, drop-behind, commit).
//! - `parked`: replicas whose pipeline ended early, kept for lease recovery.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::checksum::{self, HEADER_BYTES};
use crate::durable;
use crate::error::{Error, Result};
use crate::protocol::{Block, ReplicaState, ReportedReplica};

mod parked;
pub mod replica;
#[cfg(test)]
mod tests;
mod writer;

pub use parked::MAX_PARKED_REPLICAS;
pub use writer::{BlockWriter, WriteBehind};

use parked::ParkedReplicas;
use replica::{check_consistent, parse_name, replica_paths, ReplicaFiles};

/// One finalized replica as the store knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replica {
    /// Block id.
    pub block_id: u64,
    /// Generation stamp; a higher stamp supersedes a lower one for the same block.
    pub gen_stamp: u64,
    /// Length of the block data.
    pub len_bytes: u64,
    volume: usize,
}

/// The on-disk store of one datanode.
#[derive(Debug)]
pub struct BlockStore {
    volumes: Vec<PathBuf>,
    replicas: Mutex<HashMap<u64, Replica>>,
    next_volume: AtomicUsize,
    next_tmp_id: AtomicUsize,
    label: String,
    /// Replicas whose pipeline ended early, oldest first (see the module docs).
    parked: ParkedReplicas,
    /// Drop written replica bytes from the page cache once synced (see [`WriteBehind`]).
    drop_cache_behind_writes: bool,
}

impl BlockStore {
    /// Opens (creating if needed) the store over `data_dirs`: removes leftover temporary files,
    /// drops incomplete or inconsistent replicas, and keeps the highest generation of each block.
    /// `label` names this datanode in corruption errors.
    pub fn open(data_dirs: &[PathBuf], label: &str) -> Result<Self> {
        if data_dirs.is_empty() {
            return Err(Error::Config(
                "a datanode needs at least one data dir".into(),
            ));
        }
        let store = BlockStore {
            volumes: data_dirs.to_vec(),
            replicas: Mutex::new(HashMap::new()),
            next_volume: AtomicUsize::new(0),
            next_tmp_id: AtomicUsize::new(0),
            label: label.to_string(),
            parked: ParkedReplicas::default(),
            drop_cache_behind_writes: false,
        };
        for (i, vol) in data_dirs.iter().enumerate() {
            store.load_volume(i, vol)?;
        }
        Ok(store)
    }

    /// Whether replicas written from now on leave the page cache once synced (the
    /// `drop_cache_behind_writes` setting; off by default for a store opened directly).
    pub fn drop_cache_behind_writes(mut self, on: bool) -> Self {
        self.drop_cache_behind_writes = on;
        self
    }

    fn load_volume(&self, index: usize, vol: &Path) -> Result<()> {
        let tmp = replica::tmp_dir(vol);
        if tmp.exists() {
            fs::remove_dir_all(&tmp)
                .map_err(|e| Error::io(format!("clearing {}", tmp.display()), e))?;
        }
        durable::create_dir_durable(&tmp)?;
        let cur = replica::current_dir(vol);
        durable::create_dir_durable(&cur)?;
        let entries =
            fs::read_dir(&cur).map_err(|e| Error::io(format!("listing {}", cur.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(format!("listing {}", cur.display()), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            match parse_name(&name) {
                Some((id, gen, "data")) => self.load_replica(index, vol, id, gen),
                Some((_, _, "meta")) => {} // Judged with its data file.
                _ => {
                    tracing::warn!(file = %entry.path().display(), "removing stray file");
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        // Sidecars whose data file is gone or superseded.
        for entry in fs::read_dir(&cur).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some((id, gen, "meta")) = parse_name(&name) {
                if !replica_paths(vol, id, gen).0.exists() {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        Ok(())
    }

    fn load_replica(&self, volume: usize, vol: &Path, block_id: u64, gen_stamp: u64) {
        let (data, meta) = replica_paths(vol, block_id, gen_stamp);
        let len_bytes = match check_consistent(&data, &meta, block_id, gen_stamp) {
            Ok(len) => len,
            Err(e) => {
                tracing::warn!(block_id, gen_stamp, error = %e, "dropping incomplete replica");
                let _ = fs::remove_file(&data);
                let _ = fs::remove_file(&meta);
                return;
            }
        };
        let replica = Replica {
            block_id,
            gen_stamp,
            len_bytes,
            volume,
        };
        let mut map = crate::lock::lock(&self.replicas);
        let stale = match map.get(&block_id) {
            Some(old) if old.gen_stamp >= gen_stamp => Some(replica),
            Some(old) => {
                let old = *old;
                map.insert(block_id, replica);
                Some(old)
            }
            None => {
                map.insert(block_id, replica);
                None
            }
        };
        drop(map);
        if let Some(stale) = stale {
            self.remove_files(&stale);
        }
    }

    /// Every finalized replica (for a full block report).
    pub fn replicas(&self) -> Vec<Replica> {
        crate::lock::lock(&self.replicas)
            .values()
            .copied()
            .collect()
    }

    /// The replica of `block_id`, if stored.
    pub fn get(&self, block_id: u64) -> Option<Replica> {
        crate::lock::lock(&self.replicas).get(&block_id).copied()
    }

    /// Bytes used by finalized replicas: each data file plus its checksum sidecar, as computed
    /// from the in-memory index (the sidecar's size follows from the data length), so a
    /// heartbeat costs no disk access. Replicas being written and parked ones are not counted.
    pub fn used_bytes(&self) -> u64 {
        crate::lock::lock(&self.replicas)
            .values()
            .map(|r| r.len_bytes + replica::sidecar_len_bytes(r.len_bytes))
            .sum()
    }

    /// Keeps a replica whose pipeline ended before its last packet, for lease recovery. A
    /// replica already superseded by a finalized one of the same or a newer stamp is dropped.
    pub fn park(&self, writer: BlockWriter) {
        let superseded = self
            .get(writer.block_id())
            .is_some_and(|r| r.gen_stamp >= writer.gen_stamp());
        if superseded || !writer.is_open() {
            return; // Dropping the writer deletes its files.
        }
        self.parked.park(writer);
    }

    /// Drops parked replicas older than `age` (their writer's lease must have been recovered
    /// long since, so nobody will ask for them).
    pub fn drop_parked_older_than(&self, age: Duration) {
        self.parked.drop_older_than(age);
    }

    /// Number of parked replicas (for tests and logs).
    pub fn parked_count(&self) -> usize {
        self.parked.count()
    }

    /// Lease recovery, step 1: every replica of `block_id` held here, the finalized one and the
    /// parked ones, with lengths made durable first (parked data is fsynced before it is
    /// reported, so the length the namenode plans with survives a crash of this machine).
    pub fn recovery_replicas(&self, block_id: u64) -> Result<Vec<ReportedReplica>> {
        let mut out = self.parked.report(block_id)?;
        if let Some(r) = self.get(block_id) {
            out.push(ReportedReplica {
                block: Block {
                    id: block_id,
                    gen_stamp: r.gen_stamp,
                    len_bytes: r.len_bytes,
                },
                state: ReplicaState::Finalized,
            });
        }
        Ok(out)
    }

    /// Lease recovery, step 2: cuts the replica `from` (id and stamp) to `from.len_bytes`,
    /// gives it `gen_stamp` and finalizes it. Idempotent: a replica already recovered to that
    /// stamp and length is returned as it is. A finalized replica can only be restamped at its
    /// own length.
    pub fn recover(&self, from: Block, gen_stamp: u64) -> Result<Replica> {
        if let Some(r) = self.get(from.id) {
            if r.gen_stamp == gen_stamp && r.len_bytes == from.len_bytes {
                return Ok(r);
            }
            if r.gen_stamp == from.gen_stamp {
                let done = self.restamp(from.id, gen_stamp, from.len_bytes)?;
                self.parked.drop_below(from.id, gen_stamp);
                return Ok(done);
            }
        }
        let found = self.parked.take(from.id, from.gen_stamp);
        let mut writer = found.ok_or_else(|| {
            Error::NotFound(format!(
                "no replica of block {} gen {} on {}",
                from.id, from.gen_stamp, self.label
            ))
        })?;
        writer.cut(from.len_bytes)?;
        writer.restamp(gen_stamp);
        self.finalize(writer)
    }

    /// The data directories.
    pub fn volumes(&self) -> &[PathBuf] {
        &self.volumes
    }

    /// Starts writing a new replica in `tmp/`. A replica of the same block with an equal or lower
    /// generation stamp is replaced when the new one is finalized.
    pub fn create(&self, block_id: u64, gen_stamp: u64) -> Result<BlockWriter> {
        let volume = self.next_volume.fetch_add(1, Ordering::Relaxed) % self.volumes.len();
        let nonce = self.next_tmp_id.fetch_add(1, Ordering::Relaxed);
        BlockWriter::create(
            &self.volumes[volume],
            volume,
            nonce,
            block_id,
            gen_stamp,
            &self.label,
            self.drop_cache_behind_writes,
        )
    }

    /// Finalizes a fully written replica: fsync, rename into `current/`, fsync the directory, and
    /// only then make it visible (and drop any older generation of the same block).
    pub fn finalize(&self, writer: BlockWriter) -> Result<Replica> {
        let replica = writer.commit(&self.volumes)?;
        self.index_finalized(replica)
    }

    /// Makes a committed replica visible, unless a newer generation won meanwhile.
    fn index_finalized(&self, replica: Replica) -> Result<Replica> {
        let w = replica;
        let mut map = crate::lock::lock(&self.replicas);
        // A slow pipeline of an older generation may finish after a newer one: it loses.
        if let Some(newer) = map.get(&w.block_id).filter(|o| o.gen_stamp > w.gen_stamp) {
            let newer_gen = newer.gen_stamp;
            drop(map);
            self.remove_files(&replica);
            return Err(Error::Unavailable(format!(
                "block {} gen {} is superseded by gen {newer_gen}",
                w.block_id, w.gen_stamp
            )));
        }
        let old = map.insert(w.block_id, replica);
        drop(map);
        if let Some(old) = old.filter(|o| o.gen_stamp != w.gen_stamp || o.volume != w.volume) {
            self.remove_files(&old);
        }
        self.parked.drop_below(w.block_id, w.gen_stamp);
        Ok(replica)
    }

    /// Deletes a replica. Returns whether one was stored.
    ///
    /// The directory is not fsynced: if a crash resurrects the files, the replica is reported
    /// again and the namenode asks for its deletion again, so nothing is lost by skipping it.
    pub fn delete(&self, block_id: u64) -> bool {
        let removed = crate::lock::lock(&self.replicas).remove(&block_id);
        match removed {
            Some(r) => {
                self.remove_files(&r);
                true
            }
            None => false,
        }
    }

    fn remove_files(&self, r: &Replica) {
        let (data, meta) = replica_paths(&self.volumes[r.volume], r.block_id, r.gen_stamp);
        let _ = fs::remove_file(data);
        let _ = fs::remove_file(meta);
    }

    /// Gives a finalized replica a new generation stamp (lease recovery), provided it has
    /// exactly `len_bytes`. The new name is hard-linked and its sidecar written durably before
    /// the old files go, so a crash at any point leaves one complete replica.
    pub fn restamp(&self, block_id: u64, gen_stamp: u64, len_bytes: u64) -> Result<Replica> {
        let old = self
            .get(block_id)
            .ok_or_else(|| Error::NotFound(format!("block {block_id} on {}", self.label)))?;
        if old.gen_stamp == gen_stamp && old.len_bytes == len_bytes {
            return Ok(old);
        }
        if old.gen_stamp > gen_stamp || old.len_bytes != len_bytes {
            return Err(Error::Unavailable(format!(
                "replica of block {block_id} has gen {} and {} bytes; asked for gen {gen_stamp} and {len_bytes} bytes",
                old.gen_stamp, old.len_bytes
            )));
        }
        let vol = &self.volumes[old.volume];
        let (old_data, old_meta) = replica_paths(vol, block_id, old.gen_stamp);
        let (new_data, new_meta) = replica_paths(vol, block_id, gen_stamp);
        let mut sidecar = fs::read(&old_meta)
            .map_err(|e| Error::io(format!("reading {}", old_meta.display()), e))?;
        if sidecar.len() < HEADER_BYTES {
            return Err(Error::Malformed("sidecar too short".into()));
        }
        sidecar[..HEADER_BYTES].copy_from_slice(
            &checksum::SidecarHeader {
                block_id,
                gen_stamp,
            }
            .encode(),
        );
        let _ = fs::remove_file(&new_data);
        fs::hard_link(&old_data, &new_data)
            .map_err(|e| Error::io(format!("linking {}", new_data.display()), e))?;
        durable::write_durable(&new_meta, &sidecar)?;
        let replica = Replica { gen_stamp, ..old };
        crate::lock::lock(&self.replicas).insert(block_id, replica);
        self.remove_files(&old);
        Ok(replica)
    }

    /// Opens a stored replica for reading.
    pub fn open_replica(&self, block_id: u64) -> Result<ReplicaFiles> {
        let r = self
            .get(block_id)
            .ok_or_else(|| Error::NotFound(format!("block {block_id} on {}", self.label)))?;
        let (data, meta) = replica_paths(&self.volumes[r.volume], r.block_id, r.gen_stamp);
        ReplicaFiles::open(&data, &meta, r.block_id, r.gen_stamp, &self.label)
    }

    /// Verifies every byte of one replica against its sidecar.
    pub fn verify_replica(&self, block_id: u64) -> Result<()> {
        let files = self.open_replica(block_id)?;
        let len = files.len_bytes();
        let step = 1 << 20;
        let mut offset = 0;
        while offset < len {
            files.read_verified(offset, step.min(len - offset))?;
            offset += step;
        }
        Ok(())
    }

    /// Verifies every stored replica; returns the ones found corrupt (the scanner's one pass).
    /// `pause` runs between replicas so a scan does not starve foreground I/O.
    pub fn scan(&self, mut pause: impl FnMut()) -> Vec<Replica> {
        let mut corrupt = Vec::new();
        for r in self.replicas() {
            match self.verify_replica(r.block_id) {
                Ok(()) | Err(Error::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(block_id = r.block_id, error = %e, "scanner found a corrupt replica");
                    corrupt.push(r);
                }
            }
            pause();
        }
        corrupt
    }
}
