//! The overview's block counts, reused for a while: counting them takes an fsck of the whole
//! namespace (every block of every file), too much to run on each 3-second reload of every
//! open overview page. A count is kept per viewer (what an fsck counts depends on what the
//! viewer may read) for [`MAX_AGE_MS`]; the page says how old it is. Pure: time comes in as
//! an argument.

use std::sync::Mutex;

use super::Summary;
use crate::auth::Principal;

/// How long a count is reused.
pub const MAX_AGE_MS: u64 = 15_000;
/// Viewers whose counts are kept (the oldest is dropped first).
pub const MAX_VIEWERS: usize = 16;

/// See the module docs.
#[derive(Debug, Default)]
pub struct SummaryCache {
    slots: Mutex<Vec<Slot>>,
}

#[derive(Debug, Clone)]
struct Slot {
    viewer: Principal,
    at_ms: u64,
    counts: Summary,
}

impl SummaryCache {
    /// `viewer`'s counts and their age, if made within [`MAX_AGE_MS`] of `now_ms`.
    pub fn get(&self, viewer: &Principal, now_ms: u64) -> Option<(Summary, u64)> {
        let slots = crate::lock::lock(&self.slots);
        let slot = slots.iter().find(|s| &s.viewer == viewer)?;
        let age_ms = now_ms.saturating_sub(slot.at_ms);
        (age_ms < MAX_AGE_MS).then(|| (slot.counts.clone(), age_ms))
    }

    /// Keeps `counts` for `viewer`, made at `now_ms`.
    pub fn put(&self, viewer: Principal, now_ms: u64, counts: Summary) {
        let mut slots = crate::lock::lock(&self.slots);
        slots.retain(|s| s.viewer != viewer);
        if slots.len() >= MAX_VIEWERS {
            if let Some(oldest) = (0..slots.len()).min_by_key(|&i| slots[i].at_ms) {
                slots.remove(oldest);
            }
        }
        slots.push(Slot {
            viewer,
            at_ms: now_ms,
            counts,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: &str) -> Principal {
        Principal::User(n.into())
    }

    #[test]
    fn counts_are_reused_per_viewer_until_they_age() {
        let cache = SummaryCache::default();
        let counts = Summary {
            files: 3,
            ..Summary::default()
        };
        cache.put(user("a"), 1_000, counts.clone());
        assert_eq!(cache.get(&user("a"), 1_500), Some((counts.clone(), 500)));
        assert_eq!(cache.get(&user("b"), 1_500), None, "another viewer's");
        assert_eq!(cache.get(&user("a"), 1_000 + MAX_AGE_MS), None, "too old");
        for i in 0..MAX_VIEWERS as u64 {
            cache.put(user(&format!("u{i}")), 2_000 + i, counts.clone());
        }
        assert_eq!(cache.get(&user("a"), 2_000), None, "the oldest went first");
        assert!(cache.get(&user("u0"), 2_100).is_some());
    }
}
