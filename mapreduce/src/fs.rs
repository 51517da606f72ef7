//! Where a job's input and output files live. Tasks read and write through [`FileSystem`], so
//! the same map and reduce code runs on local files (the local runner) and on dfs (a cluster
//! task, see [`crate::dfs_fs`]); the [`crate::committer`] publishes output through it too, so
//! one commit protocol serves both, as Hadoop's `FileOutputCommitter` works over `FileSystem`.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::glob::{is_pattern, no_match, DirEntry, Expansion};

/// A readable, seekable input file.
pub trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

/// An output file being written. `finish` makes it durable (when `sync`) and visible.
pub trait OutputSink: Write + Send {
    /// Flushes and closes the file; with `sync`, returns only once the bytes are durable.
    fn finish(self: Box<Self>, sync: bool) -> std::io::Result<()>;
}

/// One input file: its path, the name mappers see (relative to the input root), its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// Path in the filesystem.
    pub path: PathBuf,
    /// Path relative to the input argument it was found under.
    pub name: String,
    /// Length in bytes.
    pub len: u64,
}

/// The operations tasks and the committer need from a filesystem.
pub trait FileSystem: Send + Sync {
    /// Lists the data files under each input path, sorted; hidden files (`.x`, `_x`) are
    /// skipped as Hadoop skips them. An input may be a pattern (see [`crate::glob`]): its
    /// files are named relative to the pattern's literal prefix. A missing path, a pattern
    /// matching nothing, or input with no files at all, is an error.
    fn list_input_files(&self, inputs: &[PathBuf]) -> Result<Vec<InputFile>>;
    /// Opens a file for reading.
    fn open(&self, path: &Path) -> Result<Box<dyn ReadSeek>>;
    /// Creates (truncating) a file for writing.
    fn create(&self, path: &Path) -> Result<Box<dyn OutputSink>>;
    /// Renames a file or directory. Callers make sure `to` does not exist: a local rename
    /// replaces a file there, and dfs moves `from` into a directory there (as `mv` does).
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    /// Creates a directory and its missing parents; a directory already there is fine.
    fn mkdirs(&self, dir: &Path) -> Result<()>;
    /// Deletes a file, or a directory (a non-empty one only when `recursive`); returns whether
    /// there was something to delete.
    fn delete(&self, path: &Path, recursive: bool) -> Result<bool>;
    /// Whether a path exists.
    fn exists(&self, path: &Path) -> Result<bool>;
    /// The paths of a directory's entries, hidden ones included, sorted by name.
    fn list_dir(&self, dir: &Path) -> Result<Vec<PathBuf>>;
    /// A directory's entries with their kinds and lengths, hidden ones included.
    fn list_entries(&self, dir: &Path) -> Result<Vec<DirEntry>>;
    /// Makes the creations and renames inside `dir` survive a crash. Local files need the
    /// directory fsynced; a dfs namespace change is durable once acknowledged (it is in the
    /// namenodes' replicated log), so there it does nothing.
    fn sync_dir(&self, dir: &Path) -> Result<()>;
}

/// The local filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalFs;

impl FileSystem for LocalFs {
    fn list_input_files(&self, inputs: &[PathBuf]) -> Result<Vec<InputFile>> {
        let mut files = Vec::new();
        for input in inputs {
            if is_pattern(input) {
                let (root, matches) = expand(self, input)?;
                let before = files.len();
                for m in matches {
                    if m.is_dir {
                        walk(&root, &m.path, &mut files)?;
                    } else {
                        files.push(matched_file(&root, m));
                    }
                }
                if files.len() == before {
                    return Err(no_match(input));
                }
                continue;
            }
            let meta = std::fs::metadata(input).map_err(|e| Error::BadInput {
                path: input.clone(),
                reason: if e.kind() == std::io::ErrorKind::NotFound {
                    "no such file or directory".to_owned()
                } else {
                    e.to_string()
                },
            })?;
            if meta.is_file() {
                let name = input
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                files.push(InputFile {
                    path: input.clone(),
                    name,
                    len: meta.len(),
                });
                continue;
            }
            let before = files.len();
            walk(input, input, &mut files)?;
            if files.len() == before {
                return Err(no_files(input));
            }
        }
        check_nonempty(files)
    }

    fn open(&self, path: &Path) -> Result<Box<dyn ReadSeek>> {
        Ok(Box::new(File::open(path).ctx("opening", path)?))
    }

    fn create(&self, path: &Path) -> Result<Box<dyn OutputSink>> {
        let file = File::create(path).ctx("creating output file", path)?;
        Ok(Box::new(BufWriter::with_capacity(256 * 1024, file)))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        std::fs::rename(from, to).map_err(|e| {
            Error::io(
                format!("renaming {} to {}", from.display(), to.display()),
                e,
            )
        })
    }

    fn mkdirs(&self, dir: &Path) -> Result<()> {
        let creating = |e| Error::io(format!("creating directory {}", dir.display()), e);
        // Name the real obstacle: "File exists" from mkdir under a regular file misleads.
        if let Some(blocker) = dir.ancestors().find(|a| a.is_file()) {
            return Err(creating(std::io::Error::other(format!(
                "{} is a file, not a directory",
                blocker.display()
            ))));
        }
        std::fs::create_dir_all(dir).map_err(creating)
    }

    fn delete(&self, path: &Path, recursive: bool) -> Result<bool> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io(format!("deleting {}", path.display()), e)),
        };
        let removed = match (meta.is_dir(), recursive) {
            (true, true) => std::fs::remove_dir_all(path),
            (true, false) => std::fs::remove_dir(path),
            (false, _) => std::fs::remove_file(path),
        };
        removed.ctx("deleting", path)?;
        Ok(true)
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        // A path that cannot even be looked up (one under a regular file) does not exist for
        // the caller: creating it reports the real obstacle.
        Ok(std::fs::symlink_metadata(path).is_ok())
    }

    fn list_dir(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .ctx("listing", dir)?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .ctx("listing", dir)?;
        paths.sort();
        Ok(paths)
    }

    fn list_entries(&self, dir: &Path) -> Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).ctx("listing", dir)? {
            let path = e.ctx("listing", dir)?.path();
            // Followed links: a link to a directory of logs is a directory of logs.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue; // a dangling link holds no input
            };
            out.push(DirEntry {
                is_dir: meta.is_dir(),
                len: meta.len(),
                path,
            });
        }
        Ok(out)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        // dfs's audited fsync, which also reports to the test-only power-loss model.
        dfs::durable::fsync_dir(dir).map_err(durable_error)
    }
}

impl OutputSink for BufWriter<File> {
    fn finish(self: Box<Self>, sync: bool) -> std::io::Result<()> {
        let file = self.into_inner().map_err(|e| e.into_error())?;
        if sync {
            file.sync_all()?;
        }
        Ok(())
    }
}

/// This crate's error for a failed [`dfs::durable`] call (local file I/O, whatever the name).
pub fn durable_error(e: dfs::Error) -> Error {
    match e {
        dfs::Error::Io { context, source } => Error::io(context, source),
        e => Error::io("durable write", std::io::Error::other(e)),
    }
}

/// The error for an input directory without data files.
pub fn no_files(input: &Path) -> Error {
    Error::BadInput {
        path: input.to_owned(),
        reason: "directory contains no input files".to_owned(),
    }
}

/// `files`, or the error for a job given no input at all.
pub fn check_nonempty(files: Vec<InputFile>) -> Result<Vec<InputFile>> {
    if files.is_empty() {
        return Err(Error::BadInput {
            path: PathBuf::new(),
            reason: "no input paths given".to_owned(),
        });
    }
    Ok(files)
}

/// Expands an input pattern over `fs`: the pattern's root and what it matched (not empty).
pub fn expand(fs: &dyn FileSystem, pattern: &Path) -> Result<(PathBuf, Vec<DirEntry>)> {
    let mut exp = Expansion::new(pattern)?;
    let root = exp.root().to_owned();
    if !fs.exists(&root)? {
        return Err(no_match(pattern));
    }
    while let Some((dir, depth)) = exp.next_dir() {
        exp.listed(depth, fs.list_entries(&dir)?)?;
    }
    Ok((root, exp.finish()?))
}

/// A file a pattern matched, named relative to the pattern's root.
pub fn matched_file(root: &Path, m: DirEntry) -> InputFile {
    let name = m.path.strip_prefix(root).unwrap_or(&m.path);
    InputFile {
        name: name.to_string_lossy().into_owned(),
        len: m.len,
        path: m.path,
    }
}

/// Whether a file or directory name is hidden from job input (`.x`, `_x`, as in Hadoop).
pub fn is_hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<InputFile>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .ctx("listing", dir)?
        .collect::<std::io::Result<Vec<_>>>()
        .ctx("listing", dir)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if is_hidden(&e.file_name().to_string_lossy()) {
            continue;
        }
        let path = e.path();
        let meta = std::fs::metadata(&path).ctx("reading metadata of", &path)?;
        if meta.is_dir() {
            walk(root, &path, out)?;
        } else if meta.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push(InputFile {
                name: rel.to_string_lossy().into_owned(),
                path,
                len: meta.len(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_mkdirs_exists_list_rename_delete() {
        let dir = tempfile::tempdir().unwrap();
        let fs = LocalFs;
        let a = dir.path().join("a/b/c");
        fs.mkdirs(&a).unwrap();
        fs.mkdirs(&a).unwrap();
        assert!(fs.exists(&a).unwrap());
        std::fs::write(a.join("_hidden"), b"h").unwrap();
        std::fs::write(a.join("part"), b"p").unwrap();
        assert_eq!(
            fs.list_dir(&a).unwrap(),
            [a.join("_hidden"), a.join("part")]
        );
        let moved = dir.path().join("a/moved");
        fs.rename(&a, &moved).unwrap();
        assert!(!fs.exists(&a).unwrap());
        assert_eq!(std::fs::read(moved.join("part")).unwrap(), b"p");
        fs.sync_dir(&dir.path().join("a")).unwrap();
        assert!(fs.delete(&moved.join("part"), false).unwrap());
        assert!(
            fs.delete(&moved, false).is_err(),
            "not empty, not recursive"
        );
        assert!(fs.delete(&moved, true).unwrap());
        assert!(!fs.delete(&moved, true).unwrap(), "nothing left to delete");
        assert!(fs.list_dir(&moved).is_err());
    }

    #[test]
    fn local_mkdirs_names_a_file_in_the_way() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        let under = dir.path().join("file/out");
        assert!(!LocalFs.exists(&under).unwrap());
        let err = LocalFs.mkdirs(&under).unwrap_err().to_string();
        assert!(err.contains("file is a file, not a directory"), "{err}");
    }
}
