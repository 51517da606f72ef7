//! The authentication handshake, server side (`dfs::auth::handshake::accept`): the first bytes
//! any stranger may send to any port, before anything else of a connection is read.
#![no_main]

use dfs::auth::{handshake, Authority, Key};
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncWriteExt;

/// What a stranger can send fits in the duplex buffer whole (the server reads at most two
/// 1 KiB frames of it anyway).
const MAX_INPUT_BYTES: usize = 32 * 1024;

thread_local! {
    static RUNTIME: tokio::runtime::Runtime =
        tokio::runtime::Builder::new_current_thread().build().unwrap();
    static AUTHORITY: Authority = Authority::new(Key::from_hex(&"5a".repeat(32)).unwrap());
}

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(MAX_INPUT_BYTES)];
    RUNTIME.with(|rt| {
        AUTHORITY.with(|authority| {
            rt.block_on(async {
                let (mut server, mut client) = tokio::io::duplex(2 * MAX_INPUT_BYTES);
                client.write_all(data).await.unwrap();
                // Half-closed: the server reads the input then an end, and its own answers
                // still fit in the buffer, so it never waits.
                client.shutdown().await.unwrap();
                // Without the key no input can answer the server's fresh challenge.
                let outcome = handshake::accept(&mut server, authority, 0).await;
                assert!(outcome.is_err(), "authenticated without the key: {outcome:?}");
            })
        })
    });
});
