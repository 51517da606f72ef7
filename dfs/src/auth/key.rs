//! Secrets: the cluster key every member holds, the keys derived from it, and the files they
//! live in.
//!
//! Every other secret is derived from the cluster key with HMAC-SHA256 under a label and a
//! name (a user's key, a member's key, a token's password), so any daemon can check any
//! principal without a user database to replicate, and a user's key reveals nothing of the
//! cluster key or of another user's.

use std::fmt;
use std::io::Write;
use std::path::Path;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{Error, Result};

/// Bytes in a key and in a MAC tag.
pub const KEY_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// A 256-bit secret. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; KEY_BYTES]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A fresh random key from the OS generator.
    pub fn generate() -> Key {
        Key(rand::random())
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Key> {
        let bytes = hex::decode(text.trim())
            .map_err(|e| Error::Config(format!("a key is not hex: {e}")))?;
        let bytes: [u8; KEY_BYTES] = bytes.try_into().map_err(|b: Vec<u8>| {
            Error::Config(format!(
                "a key must be {KEY_BYTES} bytes ({} hex digits), not {}",
                KEY_BYTES * 2,
                b.len()
            ))
        })?;
        Ok(Key(bytes))
    }

    /// The key as 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// HMAC-SHA256 of `parts`, each prefixed by its length so that no two different lists
    /// of parts give the same input.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; KEY_BYTES] {
        self.hmac(parts).finalize().into_bytes().into()
    }

    /// Whether `tag` is the MAC of `parts`, compared in constant time.
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        self.hmac(parts).verify_slice(tag).is_ok()
    }

    /// The key derived from this one for `label` (what it is for) and `name` (whose).
    pub fn derive(&self, label: &str, name: &[u8]) -> Key {
        Key(self.mac(&[b"dfs key derivation v1", label.as_bytes(), name]))
    }

    fn hmac(&self, parts: &[&[u8]]) -> HmacSha256 {
        // Any key length is valid for HMAC, so this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0).expect("HMAC takes any key");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }
}

/// What a key file holds: the cluster key (no `user`), or a user's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// The user this key belongs to; absent in the cluster key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The key, as hex.
    pub key: String,
}

impl KeyFile {
    /// The key it holds.
    pub fn key(&self) -> Result<Key> {
        Key::from_hex(&self.key)
    }

    /// Reads a key file, refusing one that others may read (as ssh does with private keys):
    /// a key anyone on the machine can copy authenticates nobody.
    pub fn read(path: &Path) -> Result<KeyFile> {
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::io(format!("reading key file {}", path.display()), e))?;
        check_private(path, &meta)?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading key file {}", path.display()), e))?;
        let file: KeyFile = toml::from_str(&text)
            .map_err(|e| Error::Config(format!("key file {}: {e}", path.display())))?;
        file.key()
            .map_err(|e| Error::Config(format!("key file {}: {e}", path.display())))?;
        Ok(file)
    }

    /// Writes a new key file with mode 0600. An existing file is never overwritten: a key
    /// replaced by mistake locks every member or user holding the old one out.
    pub fn create(&self, path: &Path) -> Result<()> {
        let text = format!(
            "# Secret: whoever holds this key acts as {}. Keep it mode 0600.\n{}",
            self.user
                .as_deref()
                .map_or("a member of the cluster (the superuser)".to_string(), |u| {
                    format!("user {u}")
                }),
            toml::to_string(self).map_err(|e| Error::Config(e.to_string()))?
        );
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(path)
            .map_err(|e| Error::io(format!("creating key file {}", path.display()), e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(format!("writing key file {}", path.display()), e))
    }
}

#[cfg(unix)]
fn check_private(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Config(format!(
            "key file {} is readable by others (mode {mode:o}): run `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path, _: &std::fs::Metadata) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_hex_and_never_print() {
        let k = Key::generate();
        assert_eq!(Key::from_hex(&k.to_hex()).unwrap(), k);
        assert_eq!(format!("{k:?}"), "Key(..)");
        assert!(Key::from_hex("abcd")
            .unwrap_err()
            .to_string()
            .contains("32 bytes"));
        assert!(Key::from_hex("zz").is_err());
        assert_ne!(Key::generate(), k, "fresh keys differ");
    }

    #[test]
    fn macs_separate_their_parts_and_verify() {
        let k = Key::generate();
        let tag = k.mac(&[b"ab", b"c"]);
        assert!(k.verify(&[b"ab", b"c"], &tag));
        assert!(!k.verify(&[b"a", b"bc"], &tag), "parts are length-prefixed");
        assert!(!Key::generate().verify(&[b"ab", b"c"], &tag), "another key");
        assert!(!k.verify(&[b"ab", b"c"], &tag[..31]), "a short tag");
    }

    #[test]
    fn derived_keys_depend_on_label_and_name() {
        let k = Key::generate();
        assert_eq!(k.derive("user", b"alice"), k.derive("user", b"alice"));
        assert_ne!(k.derive("user", b"alice"), k.derive("user", b"bob"));
        assert_ne!(k.derive("user", b"alice"), k.derive("member", b"alice"));
        assert_ne!(k.derive("user", b"alice"), k);
    }

    #[test]
    fn key_files_are_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.key");
        let file = KeyFile {
            user: Some("alice".into()),
            key: Key::generate().to_hex(),
        };
        file.create(&path).unwrap();
        assert_eq!(KeyFile::read(&path).unwrap(), file);
        let err = file.create(&path).unwrap_err();
        assert!(err.to_string().contains("creating key file"), "{err}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let perms = std::fs::Permissions::from_mode(0o644);
            std::fs::set_permissions(&path, perms).unwrap();
            let err = KeyFile::read(&path).unwrap_err().to_string();
            assert!(
                err.contains("readable by others") && err.contains("chmod 600"),
                "{err}"
            );
        }
    }
}
