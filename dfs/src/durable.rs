//! The one audited durable write: every piece of state that must survive a crash goes through
//! [`write_durable`] (or, for files written incrementally, through [`fsync_file`] + rename +
//! [`fsync_dir`] in the same order).
//!
//! Why this order: a crash may happen between any two system calls.
//! 1. The bytes go to a temporary file in the *same directory* first, so a crash mid-write leaves
//!    the old file untouched and at worst an orphan `*.tmp` that startup code removes.
//! 2. The temporary file is fsynced *before* the rename. Without this, many filesystems may
//!    persist the rename before the data, and a crash would leave the final name pointing at an
//!    empty or partial file.
//! 3. `rename` atomically replaces the final name: readers see either the old or the new file.
//! 4. The directory is fsynced after the rename, because the rename is a change to the
//!    directory's entries; until the directory is on disk, a crash may forget the new name (or
//!    resurrect the old one) even though the file's data is safe.
//!
//! Every fsync here also reports to the test-only [`crate::power_loss`] model when it is on, so
//! tests can simulate a power loss that keeps exactly what was synced.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::power_loss;

/// Suffix of temporary files created by [`write_durable`]; startup code may delete leftovers.
pub const TMP_SUFFIX: &str = ".tmp";

/// Atomically and durably replaces `path` with `bytes` (tmp → fsync file → rename → fsync dir).
///
/// When this returns `Ok`, the new contents survive a crash or power loss; when it fails or the
/// process dies midway, `path` still holds its previous contents (or still does not exist).
pub fn write_durable(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let result = write_tmp_and_rename(&tmp, path, bytes);
    if result.is_err() {
        // Best effort: a leftover tmp is harmless (startup removes it) but wastes space.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_tmp_and_rename(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
    file.write_all(bytes)
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    fsync_file(&file, tmp)?;
    drop(file);
    rename_durable(tmp, path)
}

/// Renames `from` to `to` and fsyncs the destination's directory (and the source's, when it
/// differs), so the new name is itself durable. `from` must already be fsynced.
pub fn rename_durable(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| {
        Error::io(
            format!("renaming {} to {}", from.display(), to.display()),
            e,
        )
    })?;
    let to_dir = parent_dir(to);
    fsync_dir(&to_dir)?;
    let from_dir = parent_dir(from);
    if from_dir != to_dir {
        fsync_dir(&from_dir)?;
    }
    Ok(())
}

/// Flushes a file's data and metadata to stable storage.
pub fn fsync_file(file: &File, path: &Path) -> Result<()> {
    file.sync_all()
        .map_err(|e| Error::io(format!("fsync {}", path.display()), e))?;
    match power_loss::global() {
        Some(model) => model.file_synced(file, path),
        None => Ok(()),
    }
}

/// Flushes a directory's entries (creations, renames, deletions) to stable storage.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    // The model lists the entries before the fsync: an entry made while it runs is not
    // credited to it.
    let model = power_loss::global();
    let listing = match model {
        Some(model) => model.dir_listing(dir)?,
        None => None,
    };
    let handle =
        File::open(dir).map_err(|e| Error::io(format!("opening dir {}", dir.display()), e))?;
    handle
        .sync_all()
        .map_err(|e| Error::io(format!("fsync dir {}", dir.display()), e))?;
    match (model, listing) {
        (Some(model), Some(listing)) => model.dir_synced(listing),
        _ => Ok(()),
    }
}

/// Creates `dir` and its parents, then fsyncs it, its parent, and the parent of every directory
/// this call created, so the new entries are durable.
///
/// Each new directory's name is an entry of its parent: fsyncing only `dir` and its parent would
/// leave a newly created grandparent to be forgotten by a power loss, taking `dir` with it.
pub fn create_dir_durable(dir: &Path) -> Result<()> {
    let mut to_sync = vec![parent_dir(dir)];
    let mut missing = dir.to_path_buf();
    while !missing.exists() {
        let parent = parent_dir(&missing);
        if parent == missing {
            break;
        }
        if !to_sync.contains(&parent) {
            to_sync.push(parent.clone());
        }
        missing = parent;
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating dir {}", dir.display()), e))?;
    fsync_dir(dir)?;
    // Deepest first: a parent's entry for its child is only useful once the child's own
    // entries are durable.
    for parent in to_sync {
        fsync_dir(&parent)?;
    }
    Ok(())
}

/// The temporary sibling used while writing `path`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(TMP_SUFFIX);
    path.with_file_name(name)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_contents_and_leaves_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_durable(&path, b"one").unwrap();
        write_durable(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn create_dir_durable_creates_every_missing_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a").join("b").join("c");
        create_dir_durable(&deep).unwrap();
        assert!(deep.is_dir());
        // Existing directories are fine too.
        create_dir_durable(&deep).unwrap();
        create_dir_durable(dir.path()).unwrap();
    }

    #[test]
    fn failure_keeps_old_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("state");
        assert!(write_durable(&path, b"x").is_err());
        assert!(!path.exists());
    }
}
