//! Block checksums: one CRC32 (crc32fast) per 512-byte chunk, and the sidecar file that stores
//! them next to each block file.
//!
//! Sidecar layout (all integers little-endian):
//!
//! | bytes | field                                   |
//! |-------|-----------------------------------------|
//! | 4     | magic `DFSC`                            |
//! | 4     | format version (1)                      |
//! | 4     | bytes per checksum (512)                |
//! | 8     | block id                                |
//! | 8     | generation stamp                        |
//! | 4 × n | CRC32 of chunk i, n = ceil(len / 512)   |
//!
//! The header names the block so a sidecar renamed or copied next to the wrong block file is
//! caught, and the header's fields are checked against what the caller expects, so flipping any
//! byte of the sidecar or of the block is detected.

use crate::error::{Error, Result};

/// Bytes covered by one CRC32.
pub const BYTES_PER_CHECKSUM: usize = 512;
/// Size of one stored checksum.
pub const CHECKSUM_BYTES: usize = 4;
/// Sidecar magic.
pub const MAGIC: [u8; 4] = *b"DFSC";
/// Current sidecar format version.
pub const VERSION: u32 = 1;
/// Size of the sidecar header.
pub const HEADER_BYTES: usize = 4 + 4 + 4 + 8 + 8;

/// Number of chunks (and so checksums) covering `len_bytes` of data.
pub fn chunk_count(len_bytes: u64) -> u64 {
    len_bytes.div_ceil(BYTES_PER_CHECKSUM as u64)
}

/// CRC32 of every 512-byte chunk of `data` (the last chunk may be short).
pub fn chunk_crcs(data: &[u8]) -> Vec<u32> {
    data.chunks(BYTES_PER_CHECKSUM)
        .map(crc32fast::hash)
        .collect()
}

/// Appends the CRCs of `data`'s chunks to `out` as little-endian bytes (the wire and disk form).
pub fn append_crc_bytes(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(chunk_count(data.len() as u64) as usize * CHECKSUM_BYTES);
    for chunk in data.chunks(BYTES_PER_CHECKSUM) {
        out.extend_from_slice(&crc32fast::hash(chunk).to_le_bytes());
    }
}

/// Checks `data` against `crc_bytes` (little-endian CRC32s, one per chunk).
///
/// Returns the index of the first chunk that does not match, or of the first missing or extra
/// checksum, so the caller can say where the corruption is.
pub fn first_bad_chunk(data: &[u8], crc_bytes: &[u8]) -> Option<usize> {
    let expected = chunk_count(data.len() as u64) as usize;
    let have = crc_bytes.len() / CHECKSUM_BYTES;
    if !crc_bytes.len().is_multiple_of(CHECKSUM_BYTES) || have != expected {
        return Some(have.min(expected));
    }
    data.chunks(BYTES_PER_CHECKSUM)
        .zip(crc_bytes.chunks_exact(CHECKSUM_BYTES))
        .position(|(chunk, crc)| crc32fast::hash(chunk).to_le_bytes() != crc)
}

/// Verifies `data` against `crc_bytes`, naming the block and replica in the error.
pub fn verify(data: &[u8], crc_bytes: &[u8], block: u64, replica: &str) -> Result<()> {
    match first_bad_chunk(data, crc_bytes) {
        None => Ok(()),
        Some(chunk) => {
            crate::metrics::datanode().checksum_failures.inc();
            Err(Error::Corrupt {
                block,
                replica: replica.to_string(),
                detail: format!("checksum mismatch in chunk {chunk}"),
            })
        }
    }
}

/// The parsed header of a sidecar file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SidecarHeader {
    /// Block id the sidecar belongs to.
    pub block_id: u64,
    /// Generation stamp of the replica.
    pub gen_stamp: u64,
}

impl SidecarHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut out = [0u8; HEADER_BYTES];
        out[0..4].copy_from_slice(&MAGIC);
        out[4..8].copy_from_slice(&VERSION.to_le_bytes());
        out[8..12].copy_from_slice(&(BYTES_PER_CHECKSUM as u32).to_le_bytes());
        out[12..20].copy_from_slice(&self.block_id.to_le_bytes());
        out[20..28].copy_from_slice(&self.gen_stamp.to_le_bytes());
        out
    }

    /// Parses and validates a header: magic, version and chunk size must be ours.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < HEADER_BYTES {
            return Err(Error::Malformed(format!(
                "checksum sidecar header truncated at {} bytes",
                bytes.len()
            )));
        }
        if bytes[0..4] != MAGIC {
            return Err(Error::Malformed("checksum sidecar has a bad magic".into()));
        }
        let version = u32::from_le_bytes(take4(&bytes[4..8]));
        if version != VERSION {
            return Err(Error::Malformed(format!(
                "checksum sidecar version {version} unknown"
            )));
        }
        let bpc = u32::from_le_bytes(take4(&bytes[8..12]));
        if bpc as usize != BYTES_PER_CHECKSUM {
            return Err(Error::Malformed(format!(
                "checksum sidecar chunk size {bpc} unsupported"
            )));
        }
        Ok(SidecarHeader {
            block_id: u64::from_le_bytes(take8(&bytes[12..20])),
            gen_stamp: u64::from_le_bytes(take8(&bytes[20..28])),
        })
    }
}

/// Builds a whole sidecar file for `data`.
pub fn build_sidecar(block_id: u64, gen_stamp: u64, data: &[u8]) -> Vec<u8> {
    let mut out = SidecarHeader {
        block_id,
        gen_stamp,
    }
    .encode()
    .to_vec();
    append_crc_bytes(data, &mut out);
    out
}

/// Verifies a whole block against its whole sidecar, including the header's identity.
pub fn verify_sidecar(
    sidecar: &[u8],
    data: &[u8],
    block_id: u64,
    gen_stamp: u64,
    replica: &str,
) -> Result<()> {
    let corrupt = |detail: String| Error::Corrupt {
        block: block_id,
        replica: replica.to_string(),
        detail,
    };
    let header = SidecarHeader::decode(sidecar).map_err(|e| corrupt(e.to_string()))?;
    if header.block_id != block_id || header.gen_stamp != gen_stamp {
        return Err(corrupt(format!(
            "sidecar names block {} gen {}, expected gen {gen_stamp}",
            header.block_id, header.gen_stamp
        )));
    }
    verify(data, &sidecar[HEADER_BYTES..], block_id, replica)
}

fn take4(b: &[u8]) -> [u8; 4] {
    let mut out = [0u8; 4];
    out.copy_from_slice(&b[..4]);
    out
}

fn take8(b: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&b[..8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn data_of(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn round_trip_at_chunk_edges() {
        for len in [0, 1, 511, 512, 513, 4096, 65536 + 7] {
            let data = data_of(len, 3);
            let sidecar = build_sidecar(7, 9, &data);
            assert_eq!(
                sidecar.len(),
                HEADER_BYTES + chunk_count(len as u64) as usize * CHECKSUM_BYTES
            );
            verify_sidecar(&sidecar, &data, 7, 9, "test").unwrap();
        }
    }

    #[test]
    fn wrong_identity_is_detected() {
        let data = data_of(1000, 1);
        let sidecar = build_sidecar(7, 9, &data);
        assert!(verify_sidecar(&sidecar, &data, 8, 9, "t").is_err());
        assert!(verify_sidecar(&sidecar, &data, 7, 10, "t").is_err());
        assert!(verify_sidecar(&sidecar[..HEADER_BYTES - 1], &[], 7, 9, "t").is_err());
    }

    proptest! {
        // Checks G3: flipping any bit of the block or its sidecar is detected.
        #[test]
        fn any_flip_is_detected(len in 0usize..3000, pos in any::<usize>(), bit in 0u8..8, in_sidecar in any::<bool>()) {
            let mut data = data_of(len, 5);
            let mut sidecar = build_sidecar(42, 3, &data);
            if in_sidecar || data.is_empty() {
                let i = pos % sidecar.len();
                sidecar[i] ^= 1 << bit;
            } else {
                let i = pos % data.len();
                data[i] ^= 1 << bit;
            }
            let err = verify_sidecar(&sidecar, &data, 42, 3, "t").unwrap_err();
            prop_assert!(matches!(err, Error::Corrupt { block: 42, .. }), "{}", err);
        }

        // Checks G7: random sidecar bytes never panic.
        #[test]
        fn random_sidecar_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = verify_sidecar(&bytes, &data, 1, 1, "t");
            let _ = first_bad_chunk(&data, &bytes);
        }
    }
}
