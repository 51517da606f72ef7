//! Where a job's input and output files live. Tasks read and write through [`FileSystem`], so
//! the same map and reduce code runs on local files (the local runner) and on dfs (a cluster
//! task, see [`crate::dfs_fs`]).

use std::fs::File;
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

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

/// The operations tasks need from a filesystem.
pub trait FileSystem: Send + Sync {
    /// Lists the data files under each input path, sorted; hidden files (`.x`, `_x`) are
    /// skipped as Hadoop skips them. A missing path, or input with no files at all, is an error.
    fn list_input_files(&self, inputs: &[PathBuf]) -> Result<Vec<InputFile>>;
    /// Opens a file for reading.
    fn open(&self, path: &Path) -> Result<Box<dyn ReadSeek>>;
    /// Creates (truncating) a file for writing.
    fn create(&self, path: &Path) -> Result<Box<dyn OutputSink>>;
}

/// The local filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalFs;

impl FileSystem for LocalFs {
    fn list_input_files(&self, inputs: &[PathBuf]) -> Result<Vec<InputFile>> {
        let mut files = Vec::new();
        for input in inputs {
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
