//! Length-prefixed frames: a big-endian `u32` length, then that many payload bytes.
//!
//! The length is checked against a limit before any buffer is grown, so a peer that
//! announces a 4 GiB frame costs us nothing (G7). Decoding is a pure function over a
//! `BytesMut` so it can be tested with random and truncated bytes; "not enough bytes yet"
//! is `Ok(None)`, never an error.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};

/// Size of the length prefix.
pub const HEADER_BYTES: usize = 4;

/// Default frame limit: a 64 KiB data packet plus its checksums and header fits many times over,
/// and a metadata message (a block report of a million blocks) still fits.
pub const DEFAULT_FRAME_LIMIT_BYTES: usize = 64 * 1024 * 1024;

/// Tries to take one whole frame off the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, and `FrameTooLarge` as soon as the header
/// announces more than `limit` bytes.
pub fn decode_frame(buf: &mut BytesMut, limit: usize) -> Result<Option<Bytes>> {
    if buf.len() < HEADER_BYTES {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > limit {
        return Err(Error::FrameTooLarge {
            len: len as u64,
            limit: limit as u64,
        });
    }
    if buf.len() < HEADER_BYTES + len {
        // Reserve only what the (already limit-checked) frame needs.
        buf.reserve(HEADER_BYTES + len - buf.len());
        return Ok(None);
    }
    buf.advance(HEADER_BYTES);
    Ok(Some(buf.split_to(len).freeze()))
}

/// Appends `payload` as one frame to `out`.
pub fn encode_frame(payload: &[u8], out: &mut BytesMut) -> Result<()> {
    let len = u32::try_from(payload.len()).map_err(|_| Error::FrameTooLarge {
        len: payload.len() as u64,
        limit: u32::MAX as u64,
    })?;
    out.reserve(HEADER_BYTES + payload.len());
    out.put_u32(len);
    out.put_slice(payload);
    Ok(())
}

/// Reads one frame from an async stream. `Ok(None)` means the peer closed cleanly between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<Option<Bytes>> {
    let mut header = [0u8; HEADER_BYTES];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(Error::io("reading frame header", e)),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > limit {
        return Err(Error::FrameTooLarge {
            len: len as u64,
            limit: limit as u64,
        });
    }
    let mut payload = BytesMut::zeroed(len);
    reader
        .read_exact(&mut payload)
        .await
        .map_err(|e| Error::io("reading frame payload (truncated frame?)", e))?;
    Ok(Some(payload.freeze()))
}

/// Writes one frame to an async stream (not flushed).
pub async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, payload: &[u8]) -> Result<()> {
    let len = u32::try_from(payload.len()).map_err(|_| Error::FrameTooLarge {
        len: payload.len() as u64,
        limit: u32::MAX as u64,
    })?;
    writer
        .write_all(&len.to_be_bytes())
        .await
        .map_err(|e| Error::io("writing frame header", e))?;
    writer
        .write_all(payload)
        .await
        .map_err(|e| Error::io("writing frame payload", e))
}

/// Encodes a message with the workspace's binary format (bincode).
pub fn encode_msg<T: Serialize>(msg: &T) -> Result<Vec<u8>> {
    bincode::serialize(msg).map_err(|e| Error::Malformed(format!("encode: {e}")))
}

/// Decodes a message, refusing to allocate more than the payload could possibly describe.
pub fn decode_msg<T: DeserializeOwned>(payload: &[u8]) -> Result<T> {
    use bincode::Options;
    bincode::options()
        .with_fixint_encoding()
        .with_limit(payload.len() as u64 * 8 + 1024)
        .deserialize(payload)
        .map_err(|e| Error::Malformed(format!("decode: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_partial() {
        let mut out = BytesMut::new();
        encode_frame(b"hello", &mut out).unwrap();
        encode_frame(b"", &mut out).unwrap();
        let mut partial = BytesMut::from(&out[..6]);
        assert_eq!(decode_frame(&mut partial, 100).unwrap(), None);
        assert_eq!(decode_frame(&mut out, 100).unwrap().unwrap(), &b"hello"[..]);
        assert_eq!(decode_frame(&mut out, 100).unwrap().unwrap(), &b""[..]);
        assert!(out.is_empty());
    }

    // Checks G7: an oversized length is refused before anything is allocated.
    #[test]
    fn oversized_is_refused() {
        let mut buf = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        let err = decode_frame(&mut buf, 1024).unwrap_err();
        assert!(matches!(err, Error::FrameTooLarge { .. }), "{err}");
        assert!(buf.capacity() < 1024);
    }

    proptest! {
        // Checks G7: random and truncated bytes never panic, and decode what was encoded.
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = decode_frame(&mut buf, 256) {}
            let _ = decode_msg::<(u64, String, Vec<u8>)>(&data);
        }

        #[test]
        fn truncations_are_incomplete(payload in proptest::collection::vec(any::<u8>(), 0..300), cut in 0usize..304) {
            let mut whole = BytesMut::new();
            encode_frame(&payload, &mut whole).unwrap();
            let cut = cut.min(whole.len());
            let mut part = BytesMut::from(&whole[..cut]);
            let got = decode_frame(&mut part, 1024).unwrap();
            if cut == whole.len() {
                prop_assert_eq!(got.unwrap(), &payload[..]);
            } else {
                prop_assert!(got.is_none());
            }
        }
    }
}
