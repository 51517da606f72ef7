//! The wall clock, in the one unit every timestamp field of the workspace uses.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it): the clock of the
/// `*_unix_ms` fields, log entries' timestamps and token expiry. Timed decisions within a
/// process use a monotonic clock instead.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
