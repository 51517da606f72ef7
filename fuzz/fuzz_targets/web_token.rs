//! Web login tokens (from a URL) and sessions (from a cookie): hex of postcard, decoded and
//! checked by every web port before anything else; a decoded value encodes back to itself.
#![no_main]

use dfs::auth::web_token::{decode, encode};
use dfs::auth::{Authority, Key, LoginToken, Session};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let authority = Authority::new(Key::from_hex(&"5a".repeat(32)).unwrap());
    let now = 1_700_000_000_000;
    if let Ok(token) = decode::<LoginToken>(text, "login token") {
        assert_eq!(decode::<LoginToken>(&encode(&token), "again").unwrap(), token);
        let _ = authority.check_login(&token, now);
    }
    if let Ok(session) = decode::<Session>(text, "session") {
        assert_eq!(decode::<Session>(&encode(&session), "again").unwrap(), session);
        let _ = authority.check_session(&session, now);
    }
});
