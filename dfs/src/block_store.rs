//! The datanode's on-disk block store.
//!
//! Each data directory (a "volume") holds:
//!
//! - `current/blk_<id>_<gen>.data`: the finalized block bytes;
//! - `current/blk_<id>_<gen>.meta`: its checksum sidecar (see [`crate::checksum`]);
//! - `tmp/`: replicas being written. Nothing in `tmp/` is ever reported or served.
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

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::checksum::{self, BYTES_PER_CHECKSUM, CHECKSUM_BYTES, HEADER_BYTES};
use crate::durable;
use crate::error::{Error, Result};
use crate::protocol::{Block, ReplicaState, ReportedReplica};

/// Most parked replicas kept; the oldest goes first beyond it (each holds an open file).
pub const MAX_PARKED_REPLICAS: usize = 256;

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

/// Verified bytes read from a replica, aligned to checksum chunks so they can be re-verified by
/// the receiver: `data` starts at `offset` (a multiple of 512) and `crcs` holds one CRC32 per
/// 512-byte chunk of `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedChunks {
    /// Offset of `data[0]` in the block; a multiple of [`BYTES_PER_CHECKSUM`].
    pub offset: u64,
    /// The data.
    pub data: Vec<u8>,
    /// Little-endian CRC32 per chunk of `data`.
    pub crcs: Vec<u8>,
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
    parked: Mutex<Vec<(Instant, BlockWriter)>>,
    /// Drop written replica bytes from the page cache once synced (see [`WriteBehind`]).
    drop_cache_behind_writes: bool,
}

/// File name stem of a replica.
fn stem(block_id: u64, gen_stamp: u64) -> String {
    format!("blk_{block_id}_{gen_stamp}")
}

/// Parses `blk_<id>_<gen>.<ext>` into (id, gen, ext).
fn parse_name(name: &str) -> Option<(u64, u64, &str)> {
    let rest = name.strip_prefix("blk_")?;
    let (stem, ext) = rest.split_once('.')?;
    let (id, gen) = stem.split_once('_')?;
    Some((id.parse().ok()?, gen.parse().ok()?, ext))
}

/// Paths of a finalized replica's data file and sidecar in a volume.
pub fn replica_paths(volume: &Path, block_id: u64, gen_stamp: u64) -> (PathBuf, PathBuf) {
    let cur = volume.join("current");
    let s = stem(block_id, gen_stamp);
    (cur.join(format!("{s}.data")), cur.join(format!("{s}.meta")))
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
            parked: Mutex::new(Vec::new()),
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
        let tmp = vol.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp)
                .map_err(|e| Error::io(format!("clearing {}", tmp.display()), e))?;
        }
        durable::create_dir_durable(&tmp)?;
        let cur = vol.join("current");
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
        let mut map = self.replicas.lock().unwrap();
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
        self.replicas.lock().unwrap().values().copied().collect()
    }

    /// The replica of `block_id`, if stored.
    pub fn get(&self, block_id: u64) -> Option<Replica> {
        self.replicas.lock().unwrap().get(&block_id).copied()
    }

    /// Bytes used by finalized replicas: each data file plus its checksum sidecar, as computed
    /// from the in-memory index (the sidecar's size follows from the data length), so a
    /// heartbeat costs no disk access. Replicas being written and parked ones are not counted.
    pub fn used_bytes(&self) -> u64 {
        self.replicas
            .lock()
            .unwrap()
            .values()
            .map(|r| {
                r.len_bytes
                    + HEADER_BYTES as u64
                    + checksum::chunk_count(r.len_bytes) * CHECKSUM_BYTES as u64
            })
            .sum()
    }

    /// Keeps a replica whose pipeline ended before its last packet, for lease recovery. A
    /// replica already superseded by a finalized one of the same or a newer stamp is dropped.
    pub fn park(&self, writer: BlockWriter) {
        let superseded = self
            .get(writer.block_id)
            .is_some_and(|r| r.gen_stamp >= writer.gen_stamp);
        if superseded || writer.file.is_none() {
            return; // Dropping the writer deletes its files.
        }
        let evicted = {
            let mut parked = self.parked.lock().unwrap();
            let evicted = (parked.len() >= MAX_PARKED_REPLICAS).then(|| parked.remove(0));
            parked.push((Instant::now(), writer));
            evicted
        };
        drop(evicted);
    }

    /// Drops parked replicas older than `age` (their writer's lease must have been recovered
    /// long since, so nobody will ask for them).
    pub fn drop_parked_older_than(&self, age: Duration) {
        let old: Vec<_> = {
            let mut parked = self.parked.lock().unwrap();
            let (old, keep) = std::mem::take(&mut *parked)
                .into_iter()
                .partition(|(at, _)| at.elapsed() > age);
            *parked = keep;
            old
        };
        drop(old);
    }

    /// Number of parked replicas (for tests and logs).
    pub fn parked_count(&self) -> usize {
        self.parked.lock().unwrap().len()
    }

    fn drop_parked_below(&self, block_id: u64, gen_stamp: u64) {
        let stale: Vec<_> = {
            let mut parked = self.parked.lock().unwrap();
            let (stale, keep) = std::mem::take(&mut *parked)
                .into_iter()
                .partition(|(_, w)| w.block_id == block_id && w.gen_stamp <= gen_stamp);
            *parked = keep;
            stale
        };
        drop(stale);
    }

    /// Lease recovery, step 1: every replica of `block_id` held here, the finalized one and the
    /// parked ones, with lengths made durable first (parked data is fsynced before it is
    /// reported, so the length the namenode plans with survives a crash of this machine).
    pub fn recovery_replicas(&self, block_id: u64) -> Result<Vec<ReportedReplica>> {
        let mut out = Vec::new();
        {
            let parked = self.parked.lock().unwrap();
            for (_, w) in parked.iter().filter(|(_, w)| w.block_id == block_id) {
                w.sync_data()?;
                out.push(ReportedReplica {
                    block: Block {
                        id: block_id,
                        gen_stamp: w.gen_stamp,
                        len_bytes: w.len_bytes,
                    },
                    state: ReplicaState::InProgress,
                });
            }
        }
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
                self.drop_parked_below(from.id, gen_stamp);
                return Ok(done);
            }
        }
        let found = {
            let mut parked = self.parked.lock().unwrap();
            parked
                .iter()
                .position(|(_, w)| w.block_id == from.id && w.gen_stamp == from.gen_stamp)
                .map(|i| parked.remove(i).1)
        };
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
        let tmp_dir = self.volumes[volume].join("tmp");
        // A unique temporary name per writer: two pipelines may carry the same replica at once
        // (a writer resending a block after a failure while the old pipeline is still being
        // torn down); each writes its own file, and either finalize yields the same bytes.
        let nonce = self.next_tmp_id.fetch_add(1, Ordering::Relaxed);
        let s = format!("{}.{nonce}", stem(block_id, gen_stamp));
        let tmp_data = tmp_dir.join(format!("{s}.data"));
        // `create_new` so two writers of the same replica never interleave in one file.
        // Readable too: lease recovery re-reads the last chunk when it cuts a parked replica.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp_data)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Error::AlreadyExists(format!(
                    "replica of block {block_id} gen {gen_stamp} is already being written"
                )),
                _ => Error::io(format!("creating {}", tmp_data.display()), e),
            })?;
        Ok(BlockWriter {
            block_id,
            gen_stamp,
            volume,
            file: Some(file),
            tmp_data,
            tmp_meta: tmp_dir.join(format!("{s}.meta")),
            sidecar: checksum::SidecarHeader {
                block_id,
                gen_stamp,
            }
            .encode()
            .to_vec(),
            len_bytes: 0,
            unsynced_bytes: 0,
            label: self.label.clone(),
            drop_cache_behind: self.drop_cache_behind_writes,
        })
    }

    /// Finalizes a fully written replica: fsync, rename into `current/`, fsync the directory, and
    /// only then make it visible (and drop any older generation of the same block).
    pub fn finalize(&self, mut writer: BlockWriter) -> Result<Replica> {
        let file = writer.file.take().ok_or_else(|| {
            Error::Malformed("replica writer was already finalized or failed".into())
        })?;
        let result = self.finalize_files(&writer, file);
        if result.is_err() {
            let _ = fs::remove_file(&writer.tmp_data);
            let _ = fs::remove_file(&writer.tmp_meta);
        }
        result
    }

    fn finalize_files(&self, w: &BlockWriter, file: File) -> Result<Replica> {
        durable::fsync_file(&file, &w.tmp_data)?;
        if w.drop_cache_behind {
            drop_cached(&file, 0);
        }
        drop(file);
        let mut meta = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&w.tmp_meta)
            .map_err(|e| Error::io(format!("creating {}", w.tmp_meta.display()), e))?;
        meta.write_all(&w.sidecar)
            .map_err(|e| Error::io(format!("writing {}", w.tmp_meta.display()), e))?;
        durable::fsync_file(&meta, &w.tmp_meta)?;
        drop(meta);
        let vol = &self.volumes[w.volume];
        let (data, meta_path) = replica_paths(vol, w.block_id, w.gen_stamp);
        // Data before sidecar: a `.data` without `.meta` marks an interrupted finalize.
        fs::rename(&w.tmp_data, &data)
            .map_err(|e| Error::io(format!("renaming into {}", data.display()), e))?;
        fs::rename(&w.tmp_meta, &meta_path)
            .map_err(|e| Error::io(format!("renaming into {}", meta_path.display()), e))?;
        durable::fsync_dir(&vol.join("current"))?;
        let replica = Replica {
            block_id: w.block_id,
            gen_stamp: w.gen_stamp,
            len_bytes: w.len_bytes,
            volume: w.volume,
        };
        let mut map = self.replicas.lock().unwrap();
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
        self.drop_parked_below(w.block_id, w.gen_stamp);
        Ok(replica)
    }

    /// Deletes a replica. Returns whether one was stored.
    ///
    /// The directory is not fsynced: if a crash resurrects the files, the replica is reported
    /// again and the namenode asks for its deletion again, so nothing is lost by skipping it.
    pub fn delete(&self, block_id: u64) -> bool {
        let removed = self.replicas.lock().unwrap().remove(&block_id);
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
        self.replicas.lock().unwrap().insert(block_id, replica);
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

/// Checks that a finalized replica's sidecar names it and has one CRC per chunk of data; returns
/// the data length. Contents are verified by reads and the scanner, not here, so restart stays
/// fast on a full disk.
fn check_consistent(data: &Path, meta: &Path, block_id: u64, gen_stamp: u64) -> Result<u64> {
    let len = fs::metadata(data)
        .map_err(|e| Error::io(format!("stat {}", data.display()), e))?
        .len();
    let meta_len = fs::metadata(meta)
        .map_err(|e| Error::io(format!("stat {}", meta.display()), e))?
        .len();
    let expected = HEADER_BYTES as u64 + checksum::chunk_count(len) * CHECKSUM_BYTES as u64;
    if meta_len != expected {
        return Err(Error::Malformed(format!(
            "sidecar is {meta_len} bytes, expected {expected}"
        )));
    }
    let mut header = [0u8; HEADER_BYTES];
    File::open(meta)
        .and_then(|f| f.read_exact_at(&mut header, 0))
        .map_err(|e| Error::io(format!("reading {}", meta.display()), e))?;
    let h = checksum::SidecarHeader::decode(&header)?;
    if h.block_id != block_id || h.gen_stamp != gen_stamp {
        return Err(Error::Malformed("sidecar names another replica".into()));
    }
    Ok(len)
}

/// Background work on a replica being written, from [`BlockWriter::write_behind`]: syncs the
/// bytes written so far, so that the fsync in [`BlockStore::finalize`] (which the pipeline waits
/// for) finds little left to do, and then, with `drop_cache_behind_writes`, drops them from
/// the page cache. Durability never depends on it.
#[derive(Debug)]
pub struct WriteBehind {
    file: File,
    written_bytes: u64,
    drop_cache: bool,
}

impl WriteBehind {
    /// Runs it (blocking). Errors are left to the final fsync, which reports them.
    pub fn run(self) {
        if self.file.sync_data().is_ok() && self.drop_cache {
            drop_cached(&self.file, self.written_bytes);
        }
    }
}

/// Asks the kernel to drop the file's first `len_bytes` (all of it when 0) from the page cache.
/// Only pages already written back are dropped, so it is called after a sync. Advice only: a
/// failure changes nothing but the cache, so it is ignored.
///
/// Why: a datanode writes each block once and rarely reads it back soon, and with replication
/// every byte a client writes lands in several datanodes' page caches. Cached block pages push
/// out what the host's other processes use (map outputs, shuffle segments), and on virtual
/// machines that return free memory to the host, every new page-cache page costs a fault on
/// the host: on the machine in ARCHITECTURE.md's measurements a replicated put ran 2.3x faster
/// with the dropped pages reused for the next writes.
fn drop_cached(file: &File, len_bytes: u64) {
    let len = i64::try_from(len_bytes).unwrap_or(0);
    let _ = nix::fcntl::posix_fadvise(
        file,
        0,
        len,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
}

/// A replica being written in `tmp/`. Dropping it without [`BlockStore::finalize`] deletes the
/// temporary files, so an aborted pipeline leaves nothing behind.
#[derive(Debug)]
pub struct BlockWriter {
    block_id: u64,
    gen_stamp: u64,
    volume: usize,
    file: Option<File>,
    tmp_data: PathBuf,
    tmp_meta: PathBuf,
    sidecar: Vec<u8>,
    len_bytes: u64,
    unsynced_bytes: u64,
    label: String,
    drop_cache_behind: bool,
}

impl BlockWriter {
    /// Once `every_bytes` were appended since the last call that returned one, work for the
    /// caller to run in the background: see [`WriteBehind`].
    pub fn write_behind(&mut self, every_bytes: u64) -> Option<WriteBehind> {
        if self.unsynced_bytes < every_bytes {
            return None;
        }
        self.unsynced_bytes = 0;
        Some(WriteBehind {
            file: self.file.as_ref()?.try_clone().ok()?,
            written_bytes: self.len_bytes,
            drop_cache: self.drop_cache_behind,
        })
    }

    /// Bytes written so far.
    pub fn len_bytes(&self) -> u64 {
        self.len_bytes
    }

    /// Makes the bytes written so far durable (lease recovery reports only durable lengths).
    /// Through [`durable::fsync_file`], the one audited fsync, like every other in the store.
    fn sync_data(&self) -> Result<()> {
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| Error::Malformed("replica writer is closed".into()))?;
        durable::fsync_file(file, &self.tmp_data)
    }

    /// Cuts the replica to `len_bytes` (lease recovery). The CRC of a chunk that the cut makes
    /// partial is recomputed from the bytes on disk, after those bytes were checked against the
    /// chunk's old CRC (pair assertion: nothing unverified gets a fresh checksum).
    fn cut(&mut self, len_bytes: u64) -> Result<()> {
        if len_bytes > self.len_bytes {
            return Err(Error::Unavailable(format!(
                "replica of block {} has {} bytes, recovery asks for {len_bytes}",
                self.block_id, self.len_bytes
            )));
        }
        let old_len = self.len_bytes;
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| Error::Malformed("replica writer is closed".into()))?;
        let chunk = BYTES_PER_CHECKSUM as u64;
        let partial = len_bytes % chunk;
        let new_crc = if partial != 0 && len_bytes < old_len {
            let start = len_bytes - partial;
            let mut buf = vec![0u8; ((start + chunk).min(old_len) - start) as usize];
            file.read_exact_at(&mut buf, start)
                .map_err(|e| Error::io(format!("reading {}", self.tmp_data.display()), e))?;
            let at = HEADER_BYTES + (start / chunk) as usize * CHECKSUM_BYTES;
            let old_crc = self
                .sidecar
                .get(at..at + CHECKSUM_BYTES)
                .ok_or_else(|| Error::Malformed("sidecar shorter than the data".into()))?;
            checksum::verify(&buf, old_crc, self.block_id, &self.label)?;
            let mut crc = Vec::new();
            checksum::append_crc_bytes(&buf[..partial as usize], &mut crc);
            Some(crc)
        } else {
            None
        };
        file.set_len(len_bytes)
            .map_err(|e| Error::io(format!("truncating {}", self.tmp_data.display()), e))?;
        let keep = HEADER_BYTES + checksum::chunk_count(len_bytes) as usize * CHECKSUM_BYTES;
        self.sidecar.truncate(keep);
        if let Some(crc) = new_crc {
            self.sidecar[keep - CHECKSUM_BYTES..].copy_from_slice(&crc);
        }
        self.len_bytes = len_bytes;
        Ok(())
    }

    /// Gives the replica a new generation stamp before it is finalized (lease recovery).
    fn restamp(&mut self, gen_stamp: u64) {
        self.gen_stamp = gen_stamp;
        self.sidecar[..HEADER_BYTES].copy_from_slice(
            &checksum::SidecarHeader {
                block_id: self.block_id,
                gen_stamp,
            }
            .encode(),
        );
    }

    /// Block id being written.
    pub fn block_id(&self) -> u64 {
        self.block_id
    }

    /// Verifies one packet's data against its chunk CRCs, then appends both.
    ///
    /// Every packet but the last of a block must hold whole 512-byte chunks, so the chunk
    /// boundaries of the packets line up with those of the sidecar.
    pub fn append(&mut self, data: &[u8], crcs: &[u8]) -> Result<()> {
        if data.is_empty() && crcs.is_empty() {
            return Ok(());
        }
        if !self.len_bytes.is_multiple_of(BYTES_PER_CHECKSUM as u64) {
            return Err(Error::Malformed(format!(
                "packet for block {} follows a partial chunk",
                self.block_id
            )));
        }
        // Pair assertion: what was checksummed by the writer is checked before we store it.
        checksum::verify(data, crcs, self.block_id, &self.label)?;
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| Error::Malformed("replica writer is closed".into()))?;
        file.write_all(data)
            .map_err(|e| Error::io(format!("writing {}", self.tmp_data.display()), e))?;
        self.sidecar.extend_from_slice(crcs);
        self.len_bytes += data.len() as u64;
        self.unsynced_bytes += data.len() as u64;
        Ok(())
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp_data);
            let _ = fs::remove_file(&self.tmp_meta);
        }
    }
}

/// The two open files of one finalized replica. Used by the datanode and by short-circuit
/// readers on the same host; every read is verified against the sidecar before it is returned.
#[derive(Debug)]
pub struct ReplicaFiles {
    data: File,
    meta: File,
    len_bytes: u64,
    block_id: u64,
    label: String,
}

impl ReplicaFiles {
    /// Opens a replica's files and checks the sidecar header names it.
    pub fn open(
        data_path: &Path,
        meta_path: &Path,
        block_id: u64,
        gen_stamp: u64,
        label: &str,
    ) -> Result<Self> {
        let data = File::open(data_path)
            .map_err(|e| Error::io(format!("opening {}", data_path.display()), e))?;
        let meta = File::open(meta_path)
            .map_err(|e| Error::io(format!("opening {}", meta_path.display()), e))?;
        let len_bytes = data
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", data_path.display()), e))?
            .len();
        let corrupt = |detail: String| Error::Corrupt {
            block: block_id,
            replica: label.to_string(),
            detail,
        };
        let mut header = [0u8; HEADER_BYTES];
        meta.read_exact_at(&mut header, 0)
            .map_err(|e| corrupt(format!("sidecar header unreadable: {e}")))?;
        let h = checksum::SidecarHeader::decode(&header).map_err(|e| corrupt(e.to_string()))?;
        if h.block_id != block_id || h.gen_stamp != gen_stamp {
            return Err(corrupt("sidecar names another replica".into()));
        }
        Ok(ReplicaFiles {
            data,
            meta,
            len_bytes,
            block_id,
            label: label.to_string(),
        })
    }

    /// Length of the replica's data.
    pub fn len_bytes(&self) -> u64 {
        self.len_bytes
    }

    /// Reads the chunks covering `[offset, offset + len)` (clamped to the replica) and verifies
    /// them. A mismatch is `Error::Corrupt`; unverified bytes never leave this function.
    pub fn read_verified(&self, offset: u64, len: u64) -> Result<VerifiedChunks> {
        let bpc = BYTES_PER_CHECKSUM as u64;
        // Widen to whole chunks: a CRC covers its whole chunk, so that is what we must read.
        let wanted_end = offset.saturating_add(len).min(self.len_bytes);
        let end = wanted_end
            .div_ceil(bpc)
            .saturating_mul(bpc)
            .min(self.len_bytes);
        let start = (offset.min(wanted_end) / bpc) * bpc;
        let mut data = vec![0u8; (end - start) as usize];
        let corrupt = |detail: String| Error::Corrupt {
            block: self.block_id,
            replica: self.label.clone(),
            detail,
        };
        self.data
            .read_exact_at(&mut data, start)
            .map_err(|e| corrupt(format!("data unreadable at {start}: {e}")))?;
        let first_chunk = start / bpc;
        let mut crcs = vec![0u8; checksum::chunk_count(end - start) as usize * CHECKSUM_BYTES];
        self.meta
            .read_exact_at(
                &mut crcs,
                HEADER_BYTES as u64 + first_chunk * CHECKSUM_BYTES as u64,
            )
            .map_err(|e| corrupt(format!("sidecar unreadable: {e}")))?;
        if let Some(bad) = checksum::first_bad_chunk(&data, &crcs) {
            return Err(corrupt(format!(
                "checksum mismatch in chunk {}",
                first_chunk + bad as u64
            )));
        }
        Ok(VerifiedChunks {
            offset: start,
            data,
            crcs,
        })
    }
}

/// Finds a finalized replica in a host's data directories without asking its datanode: the
/// short-circuit read path for a client on the same host. Tries `gen_stamp` exactly.
pub fn find_local_replica(
    data_dirs: &[PathBuf],
    block_id: u64,
    gen_stamp: u64,
) -> Option<(PathBuf, PathBuf)> {
    data_dirs
        .iter()
        .map(|vol| replica_paths(vol, block_id, gen_stamp))
        .find(|(data, meta)| data.exists() && meta.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn write_block(store: &BlockStore, id: u64, gen: u64, data: &[u8]) -> Replica {
        let mut w = store.create(id, gen).unwrap();
        for packet in data.chunks(64 * 1024) {
            let mut crcs = Vec::new();
            checksum::append_crc_bytes(packet, &mut crcs);
            w.append(packet, &crcs).unwrap();
        }
        store.finalize(w).unwrap()
    }

    fn append_all(w: &mut BlockWriter, data: &[u8]) {
        for packet in data.chunks(64 * 1024) {
            let mut crcs = Vec::new();
            checksum::append_crc_bytes(packet, &mut crcs);
            w.append(packet, &crcs).unwrap();
        }
    }

    // Checks G2 (lease recovery): a parked partial replica reports its durable length, is cut
    // to a length inside a chunk, restamped and finalized, and reads back verified.
    #[test]
    fn parked_replica_is_cut_restamped_and_finalized() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::open(&[dir.path().to_path_buf()], "dn").unwrap();
        let data = bytes(10_240);
        let mut w = store.create(9, 3).unwrap();
        append_all(&mut w, &data);
        store.park(w);
        assert_eq!(store.parked_count(), 1);
        assert!(store.get(9).is_none(), "a parked replica is never served");
        let reported = store.recovery_replicas(9).unwrap();
        assert_eq!(reported.len(), 1);
        assert_eq!(reported[0].state, ReplicaState::InProgress);
        assert_eq!(reported[0].block.len_bytes, 10_240);
        let from = Block {
            id: 9,
            gen_stamp: 3,
            len_bytes: 5_000, // inside the tenth chunk
        };
        let r = store.recover(from, 7).unwrap();
        assert_eq!((r.gen_stamp, r.len_bytes), (7, 5_000));
        assert_eq!(store.parked_count(), 0);
        store.verify_replica(9).unwrap();
        let got = store
            .open_replica(9)
            .unwrap()
            .read_verified(0, 5_000)
            .unwrap();
        assert_eq!(&got.data[..5_000], &data[..5_000]);
        // Asking again (a retried recovery) is answered with the same replica.
        assert_eq!(store.recover(from, 7).unwrap(), r);
        // Asking for more than a replica holds fails instead of inventing bytes.
        let mut w = store.create(10, 1).unwrap();
        append_all(&mut w, &data[..1000]);
        store.park(w);
        let too_long = Block {
            id: 10,
            gen_stamp: 1,
            len_bytes: 2000,
        };
        assert!(store.recover(too_long, 2).is_err());
    }

    /// Bytes of `path` in the page cache, from util-linux's `fincore`; `None` without it.
    fn cached_bytes(path: &Path) -> Option<u64> {
        let out = std::process::Command::new("fincore")
            .args(["--bytes", "--noheadings", "--output", "RES"])
            .arg(path)
            .output()
            .ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    }

    // A store that drops written replicas from the page cache still stores them exactly
    // (G2); with `fincore` present, the cache is checked too: dropped with the setting on,
    // kept with it off.
    #[test]
    fn dropped_cache_behind_writes_keeps_the_bytes() {
        let data = bytes(4 << 20);
        for drop in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let store = BlockStore::open(&[dir.path().to_path_buf()], "dn")
                .unwrap()
                .drop_cache_behind_writes(drop);
            let mut w = store.create(5, 1).unwrap();
            append_all(&mut w, &data[..3 << 20]);
            let behind = w
                .write_behind(1 << 20)
                .expect("3 MiB written since the last");
            assert!(w.write_behind(1 << 20).is_none(), "nothing new since");
            behind.run();
            append_all(&mut w, &data[3 << 20..]);
            let r = store.finalize(w).unwrap();
            assert_eq!(r.len_bytes, data.len() as u64);
            let (path, _) = replica_paths(dir.path(), 5, 1);
            match cached_bytes(&path) {
                Some(cached) if drop => assert_eq!(cached, 0, "dropped after finalize"),
                Some(cached) => assert!(cached > 0, "kept in the cache when not dropping"),
                None => eprintln!("fincore missing: page cache not checked"),
            }
            let got = store.open_replica(5).unwrap();
            let read = got.read_verified(0, data.len() as u64).unwrap();
            assert_eq!(read.data, data);
        }
    }

    #[test]
    fn a_finalized_replica_is_recovered_by_restamping_at_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::open(&[dir.path().to_path_buf()], "dn").unwrap();
        write_block(&store, 6, 2, &bytes(3000));
        let reported = store.recovery_replicas(6).unwrap();
        assert_eq!(reported.len(), 1);
        assert_eq!(reported[0].state, ReplicaState::Finalized);
        let at = |len_bytes| Block {
            id: 6,
            gen_stamp: 2,
            len_bytes,
        };
        assert!(
            store.recover(at(1000), 9).is_err(),
            "no cutting of finalized replicas"
        );
        let r = store.recover(at(3000), 9).unwrap();
        assert_eq!((r.gen_stamp, r.len_bytes), (9, 3000));
        store.verify_replica(6).unwrap();
    }

    #[test]
    fn parked_replicas_go_when_superseded() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::open(&[dir.path().to_path_buf()], "dn").unwrap();
        let mut w = store.create(4, 1).unwrap();
        append_all(&mut w, &bytes(3000));
        store.park(w);
        write_block(&store, 4, 2, &bytes(4000));
        assert_eq!(store.parked_count(), 0);
        // A late old-stamp replica is not kept either.
        let mut w = store.create(4, 1).unwrap();
        append_all(&mut w, &bytes(100));
        store.park(w);
        assert_eq!(store.parked_count(), 0);
        assert_eq!(
            store.used_bytes(),
            4000 + HEADER_BYTES as u64 + 8 * CHECKSUM_BYTES as u64
        );
    }

    #[test]
    fn finalize_then_read_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::open(&[dir.path().to_path_buf()], "dn").unwrap();
        let data = bytes(200_000);
        let r = write_block(&store, 5, 1, &data);
        assert_eq!(r.len_bytes, 200_000);
        let files = store.open_replica(5).unwrap();
        for (off, len) in [
            (0, 1),
            (511, 2),
            (1000, 70_000),
            (199_999, 10),
            (0, 200_000),
        ] {
            let got = files.read_verified(off, len).unwrap();
            let skip = (off - got.offset) as usize;
            let want_end = (off + len).min(200_000) as usize;
            let want = &data[off as usize..want_end];
            assert_eq!(&got.data[skip..skip + want.len()], want);
            assert!(got.offset.is_multiple_of(512));
        }
        store.verify_replica(5).unwrap();
    }

    #[test]
    fn bad_packet_checksum_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::open(&[dir.path().to_path_buf()], "dn").unwrap();
        let mut w = store.create(1, 1).unwrap();
        let data = bytes(1024);
        let mut crcs = Vec::new();
        checksum::append_crc_bytes(&data, &mut crcs);
        crcs[0] ^= 1;
        assert!(matches!(w.append(&data, &crcs), Err(Error::Corrupt { .. })));
    }

    // Checks G3: a flipped byte on disk is caught by reads and by the scanner.
    #[test]
    fn corruption_is_detected_by_read_and_scan() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::open(&[dir.path().to_path_buf()], "dn").unwrap();
        write_block(&store, 9, 2, &bytes(5000));
        write_block(&store, 10, 2, &bytes(5000));
        let (data, _) = replica_paths(dir.path(), 9, 2);
        let mut raw = fs::read(&data).unwrap();
        raw[4321] ^= 0x40;
        fs::write(&data, raw).unwrap();
        let files = store.open_replica(9).unwrap();
        assert!(
            files.read_verified(0, 1000).is_ok(),
            "untouched chunks still read"
        );
        let err = files.read_verified(4000, 1000).unwrap_err();
        assert!(matches!(err, Error::Corrupt { block: 9, .. }), "{err}");
        let bad: Vec<u64> = store.scan(|| {}).iter().map(|r| r.block_id).collect();
        assert_eq!(bad, vec![9]);
    }

    // Checks G2: after a restart, temporary and half-finalized replicas are gone, finalized ones
    // are reported, and an older generation is superseded by a newer one.
    #[test]
    fn restart_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().to_path_buf();
        {
            let store = BlockStore::open(std::slice::from_ref(&vol), "dn").unwrap();
            write_block(&store, 1, 1, &bytes(700));
            write_block(&store, 2, 1, &bytes(0));
            let mut w = store.create(3, 1).unwrap();
            let d = bytes(512);
            let mut crcs = Vec::new();
            checksum::append_crc_bytes(&d, &mut crcs);
            w.append(&d, &crcs).unwrap();
            // Simulate a crash: the writer is leaked, so its tmp file stays.
            std::mem::forget(w);
        }
        // An interrupted finalize (data renamed, sidecar not) and a stale older generation.
        fs::write(replica_paths(&vol, 4, 1).0, b"abc").unwrap();
        let (d, m) = replica_paths(&vol, 1, 1);
        fs::copy(&d, replica_paths(&vol, 1, 0).0).unwrap();
        let mut old_meta = checksum::build_sidecar(1, 0, &bytes(700));
        old_meta.truncate(old_meta.len());
        fs::write(replica_paths(&vol, 1, 0).1, old_meta).unwrap();
        assert!(m.exists());

        let store = BlockStore::open(std::slice::from_ref(&vol), "dn").unwrap();
        let mut ids: Vec<(u64, u64, u64)> = store
            .replicas()
            .iter()
            .map(|r| (r.block_id, r.gen_stamp, r.len_bytes))
            .collect();
        ids.sort();
        assert_eq!(ids, vec![(1, 1, 700), (2, 1, 0)]);
        assert_eq!(fs::read_dir(vol.join("tmp")).unwrap().count(), 0);
        assert!(!replica_paths(&vol, 4, 1).0.exists());
        assert!(!replica_paths(&vol, 1, 0).0.exists());
        store.verify_replica(1).unwrap();
    }

    // Checks G2: lease recovery re-stamps a replica without ever leaving zero copies, and the
    // result survives a restart.
    #[test]
    fn restamp_keeps_data_and_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().to_path_buf();
        let data = bytes(3000);
        {
            let store = BlockStore::open(std::slice::from_ref(&vol), "dn").unwrap();
            write_block(&store, 8, 1, &data);
            assert!(
                store.restamp(8, 2, 2999).is_err(),
                "wrong length is refused"
            );
            let r = store.restamp(8, 5, 3000).unwrap();
            assert_eq!((r.gen_stamp, r.len_bytes), (5, 3000));
            assert!(!replica_paths(&vol, 8, 1).0.exists());
        }
        let store = BlockStore::open(std::slice::from_ref(&vol), "dn").unwrap();
        assert_eq!(store.get(8).unwrap().gen_stamp, 5);
        let got = store
            .open_replica(8)
            .unwrap()
            .read_verified(0, 3000)
            .unwrap();
        assert_eq!(got.data, data);
    }

    #[test]
    fn dropped_writer_leaves_nothing_and_delete_works() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::open(&[dir.path().to_path_buf()], "dn").unwrap();
        drop(store.create(1, 1).unwrap());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        write_block(&store, 2, 1, &bytes(10));
        assert!(find_local_replica(&[dir.path().to_path_buf()], 2, 1).is_some());
        assert!(store.delete(2));
        assert!(!store.delete(2));
        assert!(find_local_replica(&[dir.path().to_path_buf()], 2, 1).is_none());
    }
}
