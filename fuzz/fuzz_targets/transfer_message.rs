//! Control messages on a datanode transfer connection: the request a datanode reads first and
//! the replies a client or an upstream datanode reads (`dfs::transfer::decode_message`).
#![no_main]

use dfs::transfer::{decode_message, encode_message, TransferReply, TransferRequest};
use libfuzzer_sys::fuzz_target;

fn round_trip<T>(data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(msg) = decode_message::<T>(data) {
        let again = encode_message(&msg).unwrap();
        assert_eq!(decode_message::<T>(&again).unwrap(), msg);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<TransferRequest>(data);
    round_trip::<TransferReply>(data);
});
