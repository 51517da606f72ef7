//! What the fuzz targets share: the round-trip check of a serde message, and the one small
//! Raft node the Raft target steps messages into.

use std::fmt::Debug;

use serde::{de::DeserializeOwned, Serialize};

pub mod raft_node;

/// Decodes `bytes` as a `T` in the workspace's wire format. Garbage must give an error, never a
/// panic; a message that decodes must encode, and decode again into the same encoding (compared
/// as bytes, since some messages hold floats and NaN is not equal to itself).
pub fn wire_round_trip<T: Serialize + DeserializeOwned + Debug>(bytes: &[u8]) -> Option<T> {
    let msg: T = dfs::frame::decode_msg(bytes).ok()?;
    let again = dfs::frame::encode_msg(&msg).expect("a decoded message encodes");
    let back: T = dfs::frame::decode_msg(&again).expect("an encoded message decodes");
    let third = dfs::frame::encode_msg(&back).expect("a decoded message encodes");
    assert_eq!(again, third, "re-encoding {msg:?} changed it");
    Some(msg)
}

/// The input split into length-prefixed parts (a `u16` big-endian length, then that many
/// bytes), so one input can hold a sequence of messages; a short tail is the last part.
pub fn parts(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
        let rest = &data[2..];
        let take = len.min(rest.len());
        out.push(&rest[..take]);
        data = &rest[take..];
    }
    out
}

/// The inverse of [`parts`], for writing seeds.
pub fn join_parts(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        let len = u16::try_from(p.len()).expect("a seed part under 64 KiB");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}
