//! [`FileSystem`] on dfs, for code that runs outside an async runtime (task processes, the
//! submitting command): each call drives the async [`DfsClient`] on a small runtime of its own.
//! Async code (the jobtracker's commits) runs such code through [`on_blocking_thread`], which
//! drives the calls on the caller's runtime instead.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dfs::client::{CreateOptions, DfsClient, FileReader, FileWriter};
use dfs::protocol::FileKind;

use crate::error::{dfs_error, Error, Result};
use crate::fs::{
    check_nonempty, is_hidden, matched_file, no_files, FileSystem, InputFile, OutputSink, ReadSeek,
};
use crate::glob::{is_pattern, no_match, DirEntry, Expansion};

/// Bytes buffered before a write goes to the dfs pipeline.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// dfs as a [`FileSystem`].
#[derive(Clone)]
pub struct DfsFs {
    client: DfsClient,
    /// The runtime that drives the client's calls.
    handle: tokio::runtime::Handle,
    /// The runtime of its own, when this filesystem has one (kept alive while any clone is).
    _rt: Option<Arc<tokio::runtime::Runtime>>,
    /// Whether `create` refuses to create missing parent directories (task output: the
    /// attempt directory must still exist, so a stale attempt cannot recreate it).
    require_parent: bool,
}

impl std::fmt::Debug for DfsFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DfsFs").finish_non_exhaustive()
    }
}

impl DfsFs {
    /// A filesystem over `client`, with its own runtime.
    pub fn new(client: DfsClient, require_parent: bool) -> Result<DfsFs> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the dfs client runtime".to_owned(), e))?;
        Ok(DfsFs {
            client,
            handle: rt.handle().clone(),
            _rt: Some(Arc::new(rt)),
            require_parent,
        })
    }

    /// The client.
    pub fn client(&self) -> &DfsClient {
        &self.client
    }

    /// Runs `f` on this filesystem's runtime and waits for it.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.handle.block_on(f)
    }
}

/// Runs blocking filesystem code (the committer) from async code: on a blocking thread, with
/// the dfs calls driven by the caller's runtime, so no async worker thread waits on them.
/// Files are created with missing parents (`require_parent` off).
pub async fn on_blocking_thread<T: Send + 'static>(
    client: DfsClient,
    f: impl FnOnce(&DfsFs) -> Result<T> + Send + 'static,
) -> Result<T> {
    let fs = DfsFs {
        client,
        handle: tokio::runtime::Handle::current(),
        _rt: None,
        require_parent: false,
    };
    tokio::task::spawn_blocking(move || f(&fs))
        .await
        .map_err(|e| {
            Error::io(
                "a dfs filesystem call on a blocking thread",
                std::io::Error::other(e),
            )
        })?
}

impl FileSystem for DfsFs {
    fn list_input_files(&self, inputs: &[PathBuf]) -> Result<Vec<InputFile>> {
        self.block_on(list_input_files(&self.client, inputs))
    }

    fn open(&self, path: &Path) -> Result<Box<dyn ReadSeek>> {
        let p = path_str(path)?;
        let reader = self
            .block_on(self.client.open(p))
            .map_err(|e| dfs_error(format_args!("opening dfs://{p}"), e))?;
        Ok(Box::new(DfsRead {
            fs: self.clone(),
            reader,
            path: p.to_owned(),
        }))
    }

    fn create(&self, path: &Path) -> Result<Box<dyn OutputSink>> {
        let p = path_str(path)?;
        let opts = CreateOptions {
            require_parent: self.require_parent,
            ..Default::default()
        };
        let writer = self
            .block_on(self.client.create(p, opts))
            .map_err(|e| dfs_error(format_args!("creating dfs://{p}"), e))?;
        Ok(Box::new(DfsWrite {
            fs: self.clone(),
            writer: Some(writer),
            buf: Vec::with_capacity(WRITE_BUFFER_BYTES),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let (f, t) = (path_str(from)?, path_str(to)?);
        self.block_on(self.client.rename(f, t))
            .map_err(|e| dfs_error(format_args!("renaming dfs://{f} to {t}"), e))
    }

    fn mkdirs(&self, dir: &Path) -> Result<()> {
        let p = path_str(dir)?;
        self.block_on(self.client.mkdirs(p))
            .map_err(|e| dfs_error(format_args!("creating dfs://{p}"), e))
    }

    fn delete(&self, path: &Path, recursive: bool) -> Result<bool> {
        let p = path_str(path)?;
        self.block_on(self.client.delete(p, recursive))
            .map_err(|e| dfs_error(format_args!("deleting dfs://{p}"), e))
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        let p = path_str(path)?;
        self.block_on(self.client.exists(p))
            .map_err(|e| dfs_error(format_args!("checking dfs://{p}"), e))
    }

    fn list_dir(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let p = path_str(dir)?;
        let entries = self
            .block_on(self.client.list(p))
            .map_err(|e| dfs_error(format_args!("listing dfs://{p}"), e))?;
        // The namenode lists in name order already.
        Ok(entries.into_iter().map(|e| PathBuf::from(e.path)).collect())
    }

    fn list_entries(&self, dir: &Path) -> Result<Vec<DirEntry>> {
        self.block_on(list_entries(&self.client, path_str(dir)?))
    }

    fn sync_dir(&self, _dir: &Path) -> Result<()> {
        // A namespace change is in the namenodes' replicated log once acknowledged.
        Ok(())
    }
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| Error::BadInput {
        path: path.to_owned(),
        reason: "dfs paths must be valid UTF-8".to_owned(),
    })
}

/// Lists the data files under each dfs input path, sorted, hidden names skipped, patterns
/// expanded (the rules of [`FileSystem::list_input_files`]).
pub async fn list_input_files(client: &DfsClient, inputs: &[PathBuf]) -> Result<Vec<InputFile>> {
    let mut files = Vec::new();
    for input in inputs {
        if is_pattern(input) {
            let before = files.len();
            let (root, matches) = expand(client, input).await?;
            for m in matches {
                if m.is_dir {
                    files.extend(walk(client, &root, path_str(&m.path)?).await?);
                } else {
                    files.push(matched_file(&root, m));
                }
            }
            if files.len() == before {
                return Err(no_match(input));
            }
            continue;
        }
        let p = path_str(input)?;
        let status = client.stat(p).await.map_err(|e| Error::BadInput {
            path: input.clone(),
            reason: e.to_string(),
        })?;
        if status.kind == FileKind::File {
            let name = p.rsplit('/').next().unwrap_or(p).to_owned();
            files.push(InputFile {
                path: input.clone(),
                name,
                len: status.len_bytes,
            });
            continue;
        }
        let found = walk(client, Path::new(p), p).await?;
        if found.is_empty() {
            return Err(no_files(input));
        }
        files.extend(found);
    }
    check_nonempty(files)
}

/// The visible files under dfs directory `dir`, sorted, named relative to `root`.
async fn walk(client: &DfsClient, root: &Path, dir: &str) -> Result<Vec<InputFile>> {
    // Depth-first with an explicit stack; children come back in name order.
    let mut stack = vec![dir.trim_end_matches('/').to_owned()];
    let mut found = Vec::new();
    while let Some(dir) = stack.pop() {
        for e in list_entries(client, &dir).await? {
            let name = e.path.file_name().map(|n| n.to_string_lossy().into_owned());
            let hidden = match name.as_deref() {
                Some(n) => is_hidden(n),
                None => true,
            };
            if hidden {
                continue;
            }
            if e.is_dir {
                stack.push(path_str(&e.path)?.to_owned());
            } else {
                found.push(e);
            }
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found.into_iter().map(|e| matched_file(root, e)).collect())
}

/// A dfs directory's entries.
async fn list_entries(client: &DfsClient, dir: &str) -> Result<Vec<DirEntry>> {
    let entries = client
        .list(dir)
        .await
        .map_err(|e| dfs_error(format_args!("listing dfs://{dir}"), e))?;
    Ok(entries
        .into_iter()
        .map(|e| DirEntry {
            is_dir: e.kind == FileKind::Dir,
            len: e.len_bytes,
            path: PathBuf::from(e.path),
        })
        .collect())
}

/// Expands an input pattern in dfs (see [`crate::fs::expand`]).
pub async fn expand(client: &DfsClient, pattern: &Path) -> Result<(PathBuf, Vec<DirEntry>)> {
    let mut exp = Expansion::new(pattern)?;
    let root = exp.root().to_owned();
    let exists = client
        .exists(path_str(&root)?)
        .await
        .map_err(|e| dfs_error(format_args!("checking dfs://{}", root.display()), e))?;
    if !exists {
        return Err(no_match(pattern));
    }
    while let Some((dir, depth)) = exp.next_dir() {
        exp.listed(depth, list_entries(client, path_str(&dir)?).await?)?;
    }
    Ok((root, exp.finish()?))
}

/// A dfs file as [`Read`] + [`Seek`].
struct DfsRead {
    fs: DfsFs,
    reader: FileReader,
    path: String,
}

impl Read for DfsRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let DfsRead { fs, reader, path } = self;
        fs.block_on(reader.read(buf))
            .map_err(|e| std::io::Error::other(format!("reading dfs://{path}: {e}")))
    }
}

impl Seek for DfsRead {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let len = self.reader.len_bytes() as i128;
        let target = match pos {
            SeekFrom::Start(n) => n as i128,
            SeekFrom::End(d) => len + d as i128,
            SeekFrom::Current(d) => self.reader.position() as i128 + d as i128,
        };
        if target < 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            ));
        }
        let target = target.min(len) as u64;
        self.reader.seek(target);
        Ok(target)
    }
}

/// A dfs file being written, buffered so pipeline packets are full.
struct DfsWrite {
    fs: DfsFs,
    writer: Option<FileWriter>,
    buf: Vec<u8>,
}

impl DfsWrite {
    fn flush_buf(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let w = self
            .writer
            .as_mut()
            .ok_or_else(|| std::io::Error::other("file already closed"))?;
        self.fs
            .block_on(w.write(&self.buf))
            .map_err(std::io::Error::other)?;
        self.buf.clear();
        Ok(())
    }
}

impl Write for DfsWrite {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > WRITE_BUFFER_BYTES {
            self.flush_buf()?;
        }
        if data.len() >= WRITE_BUFFER_BYTES {
            let w = self
                .writer
                .as_mut()
                .ok_or_else(|| std::io::Error::other("file already closed"))?;
            self.fs
                .block_on(w.write(data))
                .map_err(std::io::Error::other)?;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Bytes reach datanodes in full buffers; durability comes from `finish`.
        Ok(())
    }
}

impl OutputSink for DfsWrite {
    /// Closes the file: `close` returns once every block is on enough fsynced replicas (G2),
    /// so dfs output is always durable and `sync` changes nothing.
    fn finish(mut self: Box<Self>, _sync: bool) -> std::io::Result<()> {
        self.flush_buf()?;
        let w = self
            .writer
            .take()
            .ok_or_else(|| std::io::Error::other("file already closed"))?;
        self.fs.block_on(w.close()).map_err(std::io::Error::other)
    }
}
