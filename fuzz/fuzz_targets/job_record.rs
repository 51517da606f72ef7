//! Job records the jobtracker keeps in dfs and reads back after a restart
//! (`mapreduce::job_store::{encode, decode}`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mapreduce::job_store::{decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(record) = decode(data) else {
        return;
    };
    let again = encode(&record).unwrap();
    let back = decode(&again).unwrap();
    assert_eq!(encode(&back).unwrap(), again);
});
