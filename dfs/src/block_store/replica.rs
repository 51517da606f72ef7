//! The on-disk format of a replica, shared by the datanode's store and by clients reading a
//! replica on their own host (short-circuit reads).
//!
//! Each data directory (a "volume") holds:
//!
//! - `current/blk_<id>_<gen>.data`: the finalized block bytes;
//! - `current/blk_<id>_<gen>.meta`: its checksum sidecar (see [`crate::checksum`]): a header
//!   naming the replica, then one CRC32 per 512-byte chunk of the data;
//! - `tmp/`: replicas being written, as `blk_<id>_<gen>.<nonce>.data` and `.meta`. Nothing in
//!   `tmp/` is ever reported or served.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::checksum::{self, BYTES_PER_CHECKSUM, CHECKSUM_BYTES, HEADER_BYTES};
use crate::error::{Error, Result};

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

/// The directory of finalized replicas in a volume.
pub(super) fn current_dir(volume: &Path) -> PathBuf {
    volume.join("current")
}

/// The directory of replicas being written in a volume.
pub(super) fn tmp_dir(volume: &Path) -> PathBuf {
    volume.join("tmp")
}

/// File name stem of a replica.
fn stem(block_id: u64, gen_stamp: u64) -> String {
    format!("blk_{block_id}_{gen_stamp}")
}

/// Parses `blk_<id>_<gen>.<ext>` into (id, gen, ext).
pub(super) fn parse_name(name: &str) -> Option<(u64, u64, &str)> {
    let rest = name.strip_prefix("blk_")?;
    let (stem, ext) = rest.split_once('.')?;
    let (id, gen) = stem.split_once('_')?;
    Some((id.parse().ok()?, gen.parse().ok()?, ext))
}

/// Paths of a finalized replica's data file and sidecar in a volume.
pub fn replica_paths(volume: &Path, block_id: u64, gen_stamp: u64) -> (PathBuf, PathBuf) {
    let cur = current_dir(volume);
    let s = stem(block_id, gen_stamp);
    (cur.join(format!("{s}.data")), cur.join(format!("{s}.meta")))
}

/// Paths of a replica being written in a volume's `tmp/`. The `nonce` makes the name unique
/// per writer: two pipelines may carry the same replica at once (a writer resending a block
/// after a failure while the old pipeline is still being torn down); each writes its own file,
/// and either finalize yields the same bytes.
pub(super) fn tmp_paths(
    volume: &Path,
    block_id: u64,
    gen_stamp: u64,
    nonce: usize,
) -> (PathBuf, PathBuf) {
    let tmp = tmp_dir(volume);
    let s = format!("{}.{nonce}", stem(block_id, gen_stamp));
    (tmp.join(format!("{s}.data")), tmp.join(format!("{s}.meta")))
}

/// Size of the sidecar of a replica of `data_len_bytes`: its header and one CRC per chunk.
pub(super) fn sidecar_len_bytes(data_len_bytes: u64) -> u64 {
    HEADER_BYTES as u64 + checksum::chunk_count(data_len_bytes) * CHECKSUM_BYTES as u64
}

/// Checks that a finalized replica's sidecar names it and has one CRC per chunk of data; returns
/// the data length. Contents are verified by reads and the scanner, not here, so restart stays
/// fast on a full disk.
pub(super) fn check_consistent(
    data: &Path,
    meta: &Path,
    block_id: u64,
    gen_stamp: u64,
) -> Result<u64> {
    let len = fs::metadata(data)
        .map_err(|e| Error::io(format!("stat {}", data.display()), e))?
        .len();
    let meta_len = fs::metadata(meta)
        .map_err(|e| Error::io(format!("stat {}", meta.display()), e))?
        .len();
    let expected = sidecar_len_bytes(len);
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
        // One CRC per chunk of data, exactly: bytes appended to the data file (or a truncated
        // sidecar) show here, even where no read would reach the chunks no CRC covers.
        let meta_len = meta
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", meta_path.display()), e))?
            .len();
        let expected = sidecar_len_bytes(len_bytes);
        if meta_len != expected {
            return Err(corrupt(format!(
                "sidecar is {meta_len} bytes for {len_bytes} bytes of data, expected {expected}"
            )));
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
            crate::metrics::datanode().checksum_failures.inc();
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
