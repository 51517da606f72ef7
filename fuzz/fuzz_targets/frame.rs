//! dfs frames: the length prefix every TCP port reads first (`dfs::frame`).
#![no_main]

use bytes::BytesMut;
use dfs::frame::{decode_frame, encode_frame, read_frame, READ_CHUNK_BYTES};
use libfuzzer_sys::fuzz_target;

const LIMIT_BYTES: usize = 1 << 20;

thread_local! {
    // One runtime for every input: building one per input cost most of the time.
    static RUNTIME: tokio::runtime::Runtime =
        tokio::runtime::Builder::new_current_thread().build().unwrap();
}

fuzz_target!(|data: &[u8]| {
    // The pure decoder: whole frames come off the front and re-encode to the bytes they came
    // from; a length over the limit is an error; what is reserved for a frame still arriving
    // stays within a chunk of what arrived, whatever length the header announces.
    let mut buf = BytesMut::from(data);
    let mut taken = BytesMut::new();
    while let Ok(Some(payload)) = decode_frame(&mut buf, LIMIT_BYTES) {
        assert!(payload.len() <= LIMIT_BYTES);
        encode_frame(&payload, &mut taken).unwrap();
    }
    assert_eq!(&data[..taken.len()], &taken[..]);
    assert!(buf.capacity() <= 2 * (data.len() + READ_CHUNK_BYTES));

    // The async reader over the same bytes: frames, an error, or the end; never a panic.
    RUNTIME.with(|rt| {
        rt.block_on(async {
            let mut reader = data;
            while let Ok(Some(payload)) = read_frame(&mut reader, LIMIT_BYTES).await {
                assert!(payload.len() <= LIMIT_BYTES);
            }
        })
    });
});
