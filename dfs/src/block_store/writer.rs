//! A replica being written: appended packet by packet (each verified first), synced and
//! dropped from the page cache behind the writer, and finally made durable under its final
//! name. Lease recovery may also cut and restamp one whose pipeline ended early.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::replica::{current_dir, replica_paths, tmp_paths};
use super::Replica;
use crate::checksum::{self, BYTES_PER_CHECKSUM, CHECKSUM_BYTES, HEADER_BYTES};
use crate::durable;
use crate::error::{Error, Result};

/// Background work on a replica being written, from [`BlockWriter::write_behind`]: syncs the
/// bytes written so far, so that the fsync in [`super::BlockStore::finalize`] (which the pipeline waits
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
#[cfg(target_os = "linux")]
fn drop_cached(file: &File, len_bytes: u64) {
    let len = i64::try_from(len_bytes).unwrap_or(0);
    let _ = nix::fcntl::posix_fadvise(
        file,
        0,
        len,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
}

/// `posix_fadvise` is used on Linux only (macOS has none): elsewhere
/// `drop_cache_behind_writes` does nothing, and written blocks stay in the page cache until the
/// kernel evicts them, which costs memory, never correctness.
#[cfg(not(target_os = "linux"))]
fn drop_cached(_file: &File, _len_bytes: u64) {}

/// A replica being written in `tmp/`. Dropping it without [`super::BlockStore::finalize`] deletes the
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
    /// Starts writing a new replica in the `tmp/` of `volume` (the store's volume number
    /// `volume_index`); `nonce` makes its file name unique (see [`tmp_paths`]).
    pub(super) fn create(
        volume: &Path,
        volume_index: usize,
        nonce: usize,
        block_id: u64,
        gen_stamp: u64,
        label: &str,
        drop_cache_behind: bool,
    ) -> Result<Self> {
        let (tmp_data, tmp_meta) = tmp_paths(volume, block_id, gen_stamp, nonce);
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
            volume: volume_index,
            file: Some(file),
            tmp_data,
            tmp_meta,
            sidecar: checksum::SidecarHeader {
                block_id,
                gen_stamp,
            }
            .encode()
            .to_vec(),
            len_bytes: 0,
            unsynced_bytes: 0,
            label: label.to_string(),
            drop_cache_behind,
        })
    }

    /// Makes a fully written replica durable under its final name in its volume (one of the
    /// store's `volumes`): fsync, rename into `current/`, fsync the directory. On failure the
    /// temporary files are removed. The store decides afterwards whether it becomes visible.
    pub(super) fn commit(mut self, volumes: &[PathBuf]) -> Result<Replica> {
        let file = self.file.take().ok_or_else(|| {
            Error::Malformed("replica writer was already finalized or failed".into())
        })?;
        let result = self.commit_files(file, &volumes[self.volume]);
        if result.is_err() {
            let _ = fs::remove_file(&self.tmp_data);
            let _ = fs::remove_file(&self.tmp_meta);
        }
        result
    }

    fn commit_files(&self, file: File, volume: &Path) -> Result<Replica> {
        durable::fsync_file(&file, &self.tmp_data)?;
        if self.drop_cache_behind {
            drop_cached(&file, 0);
        }
        drop(file);
        let mut meta = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&self.tmp_meta)
            .map_err(|e| Error::io(format!("creating {}", self.tmp_meta.display()), e))?;
        meta.write_all(&self.sidecar)
            .map_err(|e| Error::io(format!("writing {}", self.tmp_meta.display()), e))?;
        durable::fsync_file(&meta, &self.tmp_meta)?;
        drop(meta);
        let (data, meta_path) = replica_paths(volume, self.block_id, self.gen_stamp);
        // Data before sidecar: a `.data` without `.meta` marks an interrupted finalize.
        fs::rename(&self.tmp_data, &data)
            .map_err(|e| Error::io(format!("renaming into {}", data.display()), e))?;
        fs::rename(&self.tmp_meta, &meta_path)
            .map_err(|e| Error::io(format!("renaming into {}", meta_path.display()), e))?;
        durable::fsync_dir(&current_dir(volume))?;
        Ok(Replica {
            block_id: self.block_id,
            gen_stamp: self.gen_stamp,
            len_bytes: self.len_bytes,
            volume: self.volume,
        })
    }

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
    pub(super) fn sync_data(&self) -> Result<()> {
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| Error::Malformed("replica writer is closed".into()))?;
        durable::fsync_file(file, &self.tmp_data)
    }

    /// Cuts the replica to `len_bytes` (lease recovery). The CRC of a chunk that the cut makes
    /// partial is recomputed from the bytes on disk, after those bytes were checked against the
    /// chunk's old CRC (pair assertion: nothing unverified gets a fresh checksum).
    pub(super) fn cut(&mut self, len_bytes: u64) -> Result<()> {
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
    pub(super) fn restamp(&mut self, gen_stamp: u64) {
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

    /// Generation stamp being written.
    pub(super) fn gen_stamp(&self) -> u64 {
        self.gen_stamp
    }

    /// Whether the replica's file is still open (neither finalized nor failed).
    pub(super) fn is_open(&self) -> bool {
        self.file.is_some()
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
