//! Raft messages from the network, as a namenode takes them: each part of the input is one
//! frame's payload, decoded as `namenode/transport.rs` does, checked by `raft_guard` as the
//! driver does, and (when admitted) stepped into a Raft node, whose ready state is then handled.
//! A byte before each part lets time pass (ticks), so elections and leadership are reached.
//! Checks that no admitted message can make raft-rs panic (issue 14: "term should not be set").
#![no_main]

use dfs::namenode::raft_driver::{decode_raft_message, encode_raft_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut node = fuzz::raft_node::node();
    for part in fuzz::parts(data) {
        let Some((&ticks, payload)) = part.split_first() else {
            continue;
        };
        fuzz::raft_node::tick(&mut node, ticks % 32);
        let Ok(m) = decode_raft_message(payload) else {
            continue;
        };
        let again = encode_raft_message(&m).unwrap();
        assert_eq!(decode_raft_message(&again).unwrap(), m);
        if fuzz::raft_node::admitted(&node, &m) {
            fuzz::raft_node::step(&mut node, m);
        }
    }
});
