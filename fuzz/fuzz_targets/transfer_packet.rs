//! Data packets on a datanode transfer connection (`dfs::transfer::Packet::decode`).
#![no_main]

use bytes::Bytes;
use dfs::transfer::{Packet, MAX_PACKET_DATA_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    assert!(packet.data.len() <= MAX_PACKET_DATA_BYTES);
    // Every field is fixed-width or bounded by the frame: the encoding is the input.
    assert_eq!(&packet.encode()[..], data);
    // A mismatch is an error naming the chunk, never a panic.
    let _ = packet.verify(7, "fuzz");
});
