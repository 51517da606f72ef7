//! The secrets a loaded `cluster.toml` leads to: the cluster key (for daemons and the admin)
//! and the credentials this process's clients present. Kept beside the config, never written
//! into it.

use std::path::Path;

use super::key::{Key, KeyFile};
use super::principal::{Authority, Credentials, SUPERUSER};
use super::USER_KEY_ENV;
use crate::error::{Error, Result};

/// See the module docs. Equality is always true: two configs are equal when their files say
/// the same, whatever keys this process could read.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    cluster_key: Option<Key>,
    credentials: Option<Credentials>,
    /// Why there is no cluster key (shown when one is needed).
    missing: Option<String>,
}

impl PartialEq for Secrets {
    fn eq(&self, _: &Secrets) -> bool {
        true
    }
}

impl Eq for Secrets {}

impl Secrets {
    /// A new cluster's secrets: a fresh cluster key, and the superuser's credentials.
    pub fn generated() -> Secrets {
        Secrets::with_key(Key::generate())
    }

    /// The secrets of a member holding `cluster_key`, acting as the superuser.
    pub fn with_key(cluster_key: Key) -> Secrets {
        Secrets {
            credentials: Some(Credentials::member(SUPERUSER, &cluster_key)),
            cluster_key: Some(cluster_key),
            missing: None,
        }
    }

    /// Reads the cluster key from `key_file` when this process may, and picks the
    /// credentials: the user key named by `$MRJOB_USER_KEY` if set, else the superuser's
    /// (from the cluster key). Errors are kept for when a key is needed, since a user's
    /// tools run without the cluster key.
    pub fn load(key_file: &Path) -> Secrets {
        let mut secrets = match KeyFile::read(key_file).and_then(|f| f.key()) {
            Ok(key) => Secrets::with_key(key),
            Err(e) => Secrets {
                missing: Some(format!("the cluster key: {e}")),
                ..Secrets::default()
            },
        };
        if let Some(path) = std::env::var_os(USER_KEY_ENV).filter(|p| !p.is_empty()) {
            match user_credentials(Path::new(&path)) {
                Ok(c) => secrets.credentials = Some(c),
                Err(e) => {
                    secrets.credentials = None;
                    secrets.missing = Some(format!("${USER_KEY_ENV}: {e}"));
                }
            }
        }
        secrets
    }

    /// The cluster key: only members (daemons, the admin) have it.
    pub fn cluster_key(&self) -> Result<&Key> {
        self.cluster_key
            .as_ref()
            .ok_or_else(|| self.missing_error())
    }

    /// A server's authority (the cluster key).
    pub fn authority(&self) -> Result<Authority> {
        self.cluster_key().cloned().map(Authority::new)
    }

    /// The credentials this process's clients present.
    pub fn credentials(&self) -> Result<&Credentials> {
        self.credentials
            .as_ref()
            .ok_or_else(|| self.missing_error())
    }

    /// Replaces the credentials (a daemon names itself; a task uses its job's token).
    pub fn set_credentials(&mut self, credentials: Credentials) {
        self.credentials = Some(credentials);
    }

    /// Writes the cluster key to `path` (mode 0600) unless the file exists already.
    pub fn write_key_file(&self, path: &Path) -> Result<()> {
        if path.exists() {
            return Ok(());
        }
        let file = KeyFile {
            user: None,
            key: self.cluster_key()?.to_hex(),
        };
        file.create(path)
    }

    fn missing_error(&self) -> Error {
        Error::Unauthenticated(format!(
            "no credentials for this cluster ({}). The cluster admin's tools read the cluster \
             key named by `key_file` in cluster.toml; a user sets {USER_KEY_ENV} to the key \
             file `dfs user add NAME` made",
            self.missing.as_deref().unwrap_or("no key was loaded")
        ))
    }
}

/// Credentials from a user's key file.
pub fn user_credentials(path: &Path) -> Result<Credentials> {
    let file = KeyFile::read(path)?;
    let user = file.user.clone().ok_or_else(|| {
        Error::Config(format!(
            "{} is the cluster key, not a user's key file",
            path.display()
        ))
    })?;
    Ok(Credentials::user(&user, file.key()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_key_is_explained_when_needed() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = Secrets::load(&dir.path().join("cluster.key"));
        let err = secrets.credentials().unwrap_err().to_string();
        assert!(
            err.contains("cluster.key") && err.contains(USER_KEY_ENV),
            "{err}"
        );
        assert!(secrets.authority().is_err());
    }

    #[test]
    fn a_written_key_loads_back_as_the_superuser() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.key");
        let secrets = Secrets::generated();
        secrets.write_key_file(&path).unwrap();
        // Writing again keeps the first key.
        Secrets::generated().write_key_file(&path).unwrap();
        let loaded = Secrets::load(&path);
        assert_eq!(
            loaded.cluster_key().unwrap(),
            secrets.cluster_key().unwrap()
        );
        assert_eq!(
            loaded.credentials().unwrap(),
            secrets.credentials().unwrap()
        );
    }
}
