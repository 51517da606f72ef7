//! Write-ahead log segments (`dfs::wal`) and the namenode's Raft storage records in them
//! (`dfs::namenode::storage`): what a namenode reads back from its disk at start.
#![no_main]

use dfs::namenode::storage::replay_wal_records;
use dfs::wal::{decode_records, MAX_RECORD_BYTES};
use libfuzzer_sys::fuzz_target;
use raft::{GetEntriesContext, Storage};

fn replay(records: &[Vec<u8>]) {
    let Ok(store) = replay_wal_records(vec![1, 2, 3], records) else {
        return;
    };
    // What raft-rs asks of the storage right after a restart.
    let state = store.initial_state().unwrap();
    let (first, last) = (store.first_index().unwrap(), store.last_index().unwrap());
    let _ = store.term(state.hard_state.commit);
    let _ = store.term(first.saturating_sub(1));
    let _ = store.entries(
        first,
        last.saturating_add(1),
        None,
        GetEntriesContext::empty(false),
    );
}

fuzz_target!(|data: &[u8]| {
    // A segment file: records with CRCs; a bad one ends the valid prefix.
    let (records, valid_to) = decode_records(data);
    assert!(valid_to <= data.len());
    assert!(records.iter().all(|r| r.len() <= MAX_RECORD_BYTES));
    replay(&records);
    // The CRC keeps most fuzzed bytes out of the records; these are the records themselves.
    let parts: Vec<Vec<u8>> = fuzz::parts(data).into_iter().map(<[u8]>::to_vec).collect();
    replay(&parts);
});
