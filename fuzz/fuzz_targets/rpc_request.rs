//! Requests to a namenode (`dfs::protocol::RequestFrame`, as `dfs::rpc` decodes them).
#![no_main]

use dfs::protocol::RequestFrame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz::wire_round_trip::<RequestFrame>(data);
});
