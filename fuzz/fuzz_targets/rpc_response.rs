//! Replies from a namenode (`dfs::protocol::ResponseFrame`, as clients decode them).
#![no_main]

use dfs::protocol::ResponseFrame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz::wire_round_trip::<ResponseFrame>(data);
});
