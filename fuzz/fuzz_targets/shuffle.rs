//! Shuffle requests a worker's shuffle server reads, and the reply header a reduce reads
//! (`mapreduce::protocol::{FetchRequest, FetchHeader}`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mapreduce::protocol::{FetchHeader, FetchRequest};

fuzz_target!(|data: &[u8]| {
    fuzz::wire_round_trip::<FetchRequest>(data);
    fuzz::wire_round_trip::<FetchHeader>(data);
});
