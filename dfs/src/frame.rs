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
        // Reserve at most one chunk ahead of the bytes that arrived: a peer that announces a big
        // frame and sends nothing must not cost the announced length (G7).
        buf.reserve((HEADER_BYTES + len - buf.len()).min(READ_CHUNK_BYTES));
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

/// Reads one frame from an async stream. `Ok(None)` means the peer closed cleanly between frames;
/// a stream that ends inside a header or a payload is a truncated frame (an error).
///
/// The payload buffer grows as bytes arrive, at most [`READ_CHUNK_BYTES`] ahead of what the peer
/// actually sent: a peer that announces a big frame and then stalls or hangs up costs one chunk,
/// not the announced length (G7).
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<Option<Bytes>> {
    let mut header = [0u8; HEADER_BYTES];
    let first = reader
        .read(&mut header)
        .await
        .map_err(|e| Error::io("reading frame header", e))?;
    if first == 0 {
        return Ok(None);
    }
    reader
        .read_exact(&mut header[first..])
        .await
        .map_err(|e| Error::io("reading frame header (truncated frame)", e))?;
    let len = u32::from_be_bytes(header) as usize;
    if len > limit {
        return Err(Error::FrameTooLarge {
            len: len as u64,
            limit: limit as u64,
        });
    }
    let mut payload = BytesMut::new();
    read_payload(reader, len, &mut payload).await?;
    Ok(Some(payload.freeze()))
}

/// Most bytes the payload buffer is grown by before they have arrived.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Appends exactly `len` bytes from `reader` to `buf`, growing `buf` one chunk at a time.
async fn read_payload<R: AsyncRead + Unpin>(
    reader: &mut R,
    len: usize,
    buf: &mut BytesMut,
) -> Result<()> {
    let end = buf.len() + len;
    while buf.len() < end {
        let want = (end - buf.len()).min(READ_CHUNK_BYTES);
        buf.reserve(want);
        // `take` keeps the read inside this frame: the spare capacity may be larger than `want`.
        let n = (&mut *reader)
            .take(want as u64)
            .read_buf(buf)
            .await
            .map_err(|e| Error::io("reading frame payload", e))?;
        if n == 0 {
            let missing = end - buf.len();
            return Err(Error::io(
                format!(
                    "reading frame payload (truncated frame: {missing} of {len} bytes missing)"
                ),
                std::io::ErrorKind::UnexpectedEof.into(),
            ));
        }
    }
    Ok(())
}

/// Writes one frame to an async stream (not flushed).
pub async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, payload: &[u8]) -> Result<()> {
    let len = u32::try_from(payload.len()).map_err(|_| Error::FrameTooLarge {
        len: payload.len() as u64,
        limit: u32::MAX as u64,
    })?;
    // One vectored write: through a `BufWriter`, a payload larger than its buffer would
    // otherwise go out as two syscalls (and, with TCP_NODELAY, two segments).
    let len = len.to_be_bytes();
    writer
        .write_all_buf(&mut Buf::chain(&len[..], payload))
        .await
        .map_err(|e| Error::io("writing frame", e))
}

/// Encodes a message with the workspace's binary format (postcard: varint integers,
/// length-prefixed sequences).
pub fn encode_msg<T: Serialize>(msg: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(msg).map_err(|e| Error::Malformed(format!("encode: {e}")))
}

/// Decodes a message. A length prefix larger than the bytes that follow is an error, not an
/// allocation: strings and byte strings are checked against the payload, and serde
/// pre-allocates sequences only up to a small cap, so a forged length cannot take memory.
/// Bytes left over after the message are an error too (a frame holds one message).
pub fn decode_msg<T: DeserializeOwned>(payload: &[u8]) -> Result<T> {
    let (msg, rest) =
        postcard::take_from_bytes(payload).map_err(|e| Error::Malformed(format!("decode: {e}")))?;
    if !rest.is_empty() {
        return Err(Error::Malformed(format!(
            "decode: {} bytes after the message",
            rest.len()
        )));
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Checks G7: a forged length announces more than the payload holds: an error, at once,
    // with no allocation of what it announced; trailing bytes are refused too.
    #[test]
    fn forged_lengths_and_trailing_bytes_are_refused() {
        let huge_len = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(decode_msg::<Vec<u64>>(&huge_len).is_err());
        assert!(decode_msg::<Vec<Vec<u8>>>(&huge_len).is_err());
        assert!(decode_msg::<String>(&huge_len).is_err());
        let mut bytes = encode_msg(&(7u64, "x".to_string())).unwrap();
        assert_eq!(
            decode_msg::<(u64, String)>(&bytes).unwrap(),
            (7, "x".into())
        );
        bytes.push(0);
        let err = decode_msg::<(u64, String)>(&bytes).unwrap_err().to_string();
        assert!(err.contains("1 bytes after the message"), "{err}");
    }

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

    /// A reader that delivers `data`, then either ends (`stall = false`) or never answers again,
    /// and records the largest buffer it was ever offered (a lower bound on what the caller
    /// allocated for the frame).
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        stall: bool,
        largest_offer: usize,
    }

    impl Trickle {
        fn new(data: Vec<u8>, stall: bool) -> Self {
            Trickle {
                data,
                pos: 0,
                stall,
                largest_offer: 0,
            }
        }
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            self.largest_offer = self.largest_offer.max(buf.remaining());
            if self.pos == self.data.len() {
                return if self.stall {
                    std::task::Poll::Pending
                } else {
                    std::task::Poll::Ready(Ok(()))
                };
            }
            // A few bytes per call, like a slow peer.
            let n = buf.remaining().min(self.data.len() - self.pos).min(7);
            buf.put_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            std::task::Poll::Ready(Ok(()))
        }
    }

    fn announce(len: u32, sent: &[u8]) -> Vec<u8> {
        [&len.to_be_bytes()[..], sent].concat()
    }

    const ANNOUNCED: usize = 256 * 1024 * 1024;

    // Checks G7: a frame that announces 256 MiB (under the limit) and then stalls costs about
    // one read chunk, not the announced length.
    #[tokio::test]
    async fn stalled_big_frame_does_not_allocate_its_length() {
        let mut r = Trickle::new(announce(ANNOUNCED as u32, b"only a few bytes"), true);
        let mut header = [0u8; HEADER_BYTES];
        r.read_exact(&mut header).await.unwrap();
        let mut buf = BytesMut::new();
        let read = read_payload(&mut r, ANNOUNCED, &mut buf);
        let timed_out = tokio::time::timeout(std::time::Duration::from_millis(50), read).await;
        assert!(timed_out.is_err(), "a stalled frame must not complete");
        assert_eq!(&buf[..], b"only a few bytes");
        assert!(
            buf.capacity() <= 2 * READ_CHUNK_BYTES,
            "buffer grew to {} bytes for {} received",
            buf.capacity(),
            buf.len()
        );
        // The same through the public entry point: it never offers the reader a buffer the size
        // of the announced frame.
        let mut r = Trickle::new(announce(ANNOUNCED as u32, b"abc"), true);
        let read = read_frame(&mut r, ANNOUNCED);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), read)
                .await
                .is_err()
        );
        assert!(
            r.largest_offer <= 2 * READ_CHUNK_BYTES,
            "{}",
            r.largest_offer
        );
    }

    // Checks G7: the decode path also reserves at most one chunk ahead of the bytes it holds.
    #[test]
    fn partial_big_frame_does_not_reserve_its_length() {
        let mut buf = BytesMut::from(&announce(ANNOUNCED as u32, b"xyz")[..]);
        assert_eq!(decode_frame(&mut buf, ANNOUNCED).unwrap(), None);
        assert!(buf.capacity() <= 2 * READ_CHUNK_BYTES, "{}", buf.capacity());
    }

    // Checks G7: a stream that ends inside a payload or a header is an error (not a frame and not
    // a clean close); a stream that ends between frames is a clean close; whole frames larger
    // than one chunk arrive intact.
    #[tokio::test]
    async fn truncated_frames_are_errors() {
        let mut r = Trickle::new(announce(100, b"short"), false);
        let err = read_frame(&mut r, 1024).await.unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let mut r = Trickle::new(vec![0, 0], false);
        let err = read_frame(&mut r, 1024).await.unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let mut r = Trickle::new(Vec::new(), false);
        assert_eq!(read_frame(&mut r, 1024).await.unwrap(), None);
        let payload: Vec<u8> = (0..3 * READ_CHUNK_BYTES + 5).map(|i| i as u8).collect();
        let mut wire = BytesMut::new();
        encode_frame(&payload, &mut wire).unwrap();
        encode_frame(b"next", &mut wire).unwrap();
        let mut r = &wire[..];
        assert_eq!(
            read_frame(&mut r, 1 << 20).await.unwrap().unwrap(),
            &payload[..]
        );
        assert_eq!(
            read_frame(&mut r, 1 << 20).await.unwrap().unwrap(),
            &b"next"[..]
        );
        assert_eq!(read_frame(&mut r, 1 << 20).await.unwrap(), None);
        let mut r = Trickle::new(announce(2000, &[1u8; 1999]), false);
        assert!(read_frame(&mut r, 4096).await.is_err());
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
