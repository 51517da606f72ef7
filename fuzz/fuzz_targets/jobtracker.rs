//! Messages to and from the jobtracker: submissions, worker heartbeats and attempt reports
//! (`JtRequest`), and the replies clients and workers read (`JtResponse`, with the workers'
//! commands).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mapreduce::protocol::{JtRequest, JtResponse};

fuzz_target!(|data: &[u8]| {
    fuzz::wire_round_trip::<JtRequest>(data);
    fuzz::wire_round_trip::<JtResponse>(data);
});
