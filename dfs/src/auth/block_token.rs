//! Block access tokens: the namenode's signed word that the holder may read or write one
//! block until a deadline. The namenode hands them out with block locations, after checking
//! the caller's permissions on the file; a datanode serves a block to anyone but a member only
//! with a valid token for it, so knowing a block id is not enough to read it.

use serde::{Deserialize, Serialize};

use super::principal::Authority;
use crate::error::{Error, Result};

/// How long a token is good for. A reader or writer holding a file open longer gets fresh
/// tokens when it asks the namenode for locations again (as after any failed replica).
pub const BLOCK_TOKEN_LIFETIME_MS: u64 = 10 * 60 * 60 * 1000;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BlockAccess {
    /// Read the block.
    Read,
    /// Write the block (a pipeline); also allows reading it.
    Write,
}

/// See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlockToken {
    /// The block.
    pub block_id: u64,
    /// What it allows.
    pub access: BlockAccess,
    /// Milliseconds since the Unix epoch after which it is refused.
    pub expires_unix_ms: u64,
    /// MAC by the cluster key over the fields above.
    pub tag: [u8; 32],
}

fn fields(block_id: u64, access: BlockAccess, expires_unix_ms: u64) -> [[u8; 8]; 3] {
    let access = match access {
        BlockAccess::Read => 1u64,
        BlockAccess::Write => 2u64,
    };
    [
        block_id.to_be_bytes(),
        access.to_be_bytes(),
        expires_unix_ms.to_be_bytes(),
    ]
}

impl Authority {
    /// A token for `access` to `block_id`, good until `now_unix_ms` plus the lifetime.
    pub fn block_token(&self, block_id: u64, access: BlockAccess, now_unix_ms: u64) -> BlockToken {
        let expires_unix_ms = now_unix_ms.saturating_add(BLOCK_TOKEN_LIFETIME_MS);
        let f = fields(block_id, access, expires_unix_ms);
        BlockToken {
            block_id,
            access,
            expires_unix_ms,
            tag: self.sign("block", &[&f[0], &f[1], &f[2]]),
        }
    }

    /// Checks that `token` allows `access` to `block_id` now.
    pub fn check_block_token(
        &self,
        token: Option<&BlockToken>,
        block_id: u64,
        access: BlockAccess,
        now_unix_ms: u64,
    ) -> Result<()> {
        let denied = |why: &str| {
            Err(Error::PermissionDenied(format!(
                "block {block_id}: {why} (ask the namenode for the block's locations)"
            )))
        };
        let Some(t) = token else {
            return denied("no block access token");
        };
        let f = fields(t.block_id, t.access, t.expires_unix_ms);
        if !self.check("block", &[&f[0], &f[1], &f[2]], &t.tag) {
            return denied("a forged block access token");
        }
        if t.block_id != block_id {
            return denied(&format!("a token for block {}", t.block_id));
        }
        if access == BlockAccess::Write && t.access != BlockAccess::Write {
            return denied("a read token, not a write token");
        }
        if t.expires_unix_ms <= now_unix_ms {
            return denied("an expired block access token");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Key;

    #[test]
    fn a_token_allows_its_block_and_access_only() {
        let a = Authority::new(Key::generate());
        let read = a.block_token(7, BlockAccess::Read, 1_000);
        let write = a.block_token(7, BlockAccess::Write, 1_000);
        a.check_block_token(Some(&read), 7, BlockAccess::Read, 2_000)
            .unwrap();
        a.check_block_token(Some(&write), 7, BlockAccess::Read, 2_000)
            .unwrap();
        a.check_block_token(Some(&write), 7, BlockAccess::Write, 2_000)
            .unwrap();
        let refused = |t: Option<&BlockToken>, id, access, now| {
            a.check_block_token(t, id, access, now)
                .unwrap_err()
                .to_string()
        };
        assert!(refused(Some(&read), 7, BlockAccess::Write, 2_000).contains("read token"));
        assert!(refused(Some(&read), 8, BlockAccess::Read, 2_000).contains("for block 7"));
        assert!(refused(None, 7, BlockAccess::Read, 2_000).contains("no block access token"));
        let late = 1_000 + BLOCK_TOKEN_LIFETIME_MS;
        assert!(refused(Some(&read), 7, BlockAccess::Read, late).contains("expired"));
    }

    #[test]
    fn a_changed_or_foreign_token_is_forged() {
        let a = Authority::new(Key::generate());
        let mut t = a.block_token(7, BlockAccess::Read, 0);
        t.block_id = 8;
        let err = a
            .check_block_token(Some(&t), 8, BlockAccess::Read, 1)
            .unwrap_err();
        assert!(err.to_string().contains("forged"), "{err}");
        let foreign = Authority::new(Key::generate()).block_token(7, BlockAccess::Read, 0);
        assert!(a
            .check_block_token(Some(&foreign), 7, BlockAccess::Read, 1)
            .is_err());
    }
}
