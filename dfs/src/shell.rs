//! The `dfs` shell: `ls`, `mkdir`, `put`, `get`, `cat`, `rm`, `mv`, `stat`, `du`, `setrep`,
//! `chmod`, `chown` (in `ownership`), `fsck`, `report` (`dfs cluster start|stop` is in [`crate::local_cluster`]).
//!
//! Paths are `/path`, `dfs://HOST:PORT/path` (HOST:PORT must be one of the configured
//! namenodes), or relative to the working directory `/user/NAME` (see [`crate::path::resolve`]);
//! the cluster comes from `--conf` or `MRJOB_CONF`. A closed stdout (`| head`) ends a command
//! quietly (see [`crate::stdout`]). Every failure is one line on
//! stderr and a non-zero exit code; a progress bar is drawn for long transfers only when stderr
//! is a terminal.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use clap::Subcommand;

use crate::client::{CreateOptions, DfsClient};
use crate::config::{self, ClusterConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::FileKind;
use crate::stdout::error as stdout_err;
use crate::units::{human, parse_size, SizeFormat};

mod destination;
mod listing;
mod ownership;

use listing::{format_status, fsck_lines, FsckTotals};
// Hadoop's listing (`mrjob hadoop fs -ls`) prints times the same way.
pub use listing::format_time;

/// Transfers at least this long get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_BYTES: u64 = 16 << 20;
/// Local read buffer for `put`.
const PUT_BUFFER_BYTES: usize = 4 << 20;
/// How much `get` and `cat` gather before one hand-off to a blocking writer thread.
const SINK_BATCH_BYTES: usize = 4 << 20;

/// Where `get` and `cat` write: a local file or stdout, written on the blocking pool in
/// batches of [`SINK_BATCH_BYTES`] while the next batch is read. Writing each verified chunk
/// (64 KiB) through tokio's file or stdout cost a thread hand-off per chunk, which made
/// `dfs get` several times slower than reading alone.
struct LocalSink {
    file: Option<std::fs::File>,
    batch: Vec<bytes::Bytes>,
    batch_bytes: usize,
    writing: Option<tokio::task::JoinHandle<std::io::Result<std::fs::File>>>,
}

impl LocalSink {
    fn new(file: std::fs::File) -> LocalSink {
        LocalSink {
            file: Some(file),
            batch: Vec::new(),
            batch_bytes: 0,
            writing: None,
        }
    }

    async fn push(&mut self, chunk: bytes::Bytes) -> std::io::Result<()> {
        self.batch_bytes += chunk.len();
        self.batch.push(chunk);
        if self.batch_bytes >= SINK_BATCH_BYTES {
            self.write_batch().await?;
        }
        Ok(())
    }

    /// Waits for the batch being written, then hands the gathered one to a blocking thread.
    async fn write_batch(&mut self) -> std::io::Result<()> {
        let mut file = match self.file.take() {
            Some(f) => f,
            None => self.wait().await?,
        };
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        self.writing = Some(tokio::task::spawn_blocking(move || {
            for chunk in &batch {
                file.write_all(chunk)?;
            }
            Ok(file)
        }));
        Ok(())
    }

    async fn wait(&mut self) -> std::io::Result<std::fs::File> {
        let handle = self
            .writing
            .take()
            .ok_or_else(|| std::io::Error::other("local writer lost its file"))?;
        handle.await.map_err(std::io::Error::other)?
    }

    /// Writes what is left and waits for every write.
    async fn finish(mut self) -> std::io::Result<()> {
        self.write_batch().await?;
        self.wait().await.map(drop)
    }
}

/// The shell's commands.
#[derive(Debug, Subcommand)]
pub enum ShellCommand {
    /// List a directory (or show a file): `Found N items`, then one line per entry: kind (`d`
    /// or `-`), replication, size, modification time (UTC), path.
    // `-h` means human-readable sizes, as in `hdfs dfs -ls -h`, so help is `--help` only.
    #[command(disable_help_flag = true)]
    Ls {
        /// List subdirectories recursively (without the `Found N items` lines).
        #[arg(short = 'R', long)]
        recursive: bool,
        /// Sizes in human-readable units (1.5KiB, 64.0MiB).
        #[arg(short = 'h', long = "human-readable")]
        human: bool,
        /// Print help.
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
        /// Paths (default `/`).
        paths: Vec<String>,
    },
    /// Create directories (and missing parents).
    Mkdir {
        /// Accepted for familiarity; parents are always created.
        #[arg(short = 'p')]
        parents: bool,
        /// Directories to create.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Copy local files or directories into the filesystem (a destination ending in `/` is a
    /// directory, created when missing).
    Put {
        /// Replace existing files.
        #[arg(short = 'f', long)]
        force: bool,
        /// Replication factor of new files.
        #[arg(short = 'r', long)]
        replication: Option<u32>,
        /// Block size of new files: bytes, or with a unit (128MiB, 64K).
        #[arg(long, visible_alias = "block-size", value_name = "SIZE", value_parser = parse_size)]
        block_size_bytes: Option<u64>,
        /// Local files or directories.
        #[arg(required = true, value_name = "SRC")]
        srcs: Vec<String>,
        /// Destination path (an existing directory receives the sources under their names).
        #[arg(value_name = "DST")]
        dst: String,
    },
    /// Copy a file or directory out of the filesystem.
    Get {
        /// Source path.
        src: String,
        /// Local destination (file or existing directory).
        dst: PathBuf,
    },
    /// Print files to stdout.
    Cat {
        /// Files.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Delete files or directories.
    Rm {
        /// Delete non-empty directories.
        #[arg(short = 'r', short_alias = 'R', long)]
        recursive: bool,
        /// Paths.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Rename or move.
    Mv {
        /// Source.
        src: String,
        /// Destination (an existing directory receives the source under its name).
        dst: String,
    },
    /// Show a path's status.
    Stat {
        /// Paths.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Space used under paths: size, raw size (every replica), path; one line per child.
    // `-h` means human-readable sizes, as in `hdfs dfs -du -h`, so help is `--help` only.
    #[command(disable_help_flag = true)]
    Du {
        /// One total per argument instead of one line per child.
        #[arg(short = 's')]
        summary: bool,
        /// Sizes in human-readable units (1.5KiB, 64.0MiB).
        #[arg(short = 'h', long = "human-readable")]
        human: bool,
        /// Print a header line naming the columns (as `hdfs dfs -du -v`).
        #[arg(short = 'v')]
        header: bool,
        /// Print help.
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
        /// Paths (default `/`).
        paths: Vec<String>,
    },
    /// Change a file's replication factor.
    Setrep {
        /// Wait until every block has this many live replicas.
        #[arg(short = 'w')]
        wait: bool,
        /// New factor.
        replication: u32,
        /// Files.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Change permission bits (octal MODE, e.g. 755, 0600, 1777).
    Chmod {
        /// Also everything below each directory.
        #[arg(short = 'R')]
        recursive: bool,
        /// Octal mode.
        mode: String,
        /// Paths.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Change owner and/or group: USER, USER:GROUP or :GROUP (owner: superuser only).
    Chown {
        /// Also everything below each directory.
        #[arg(short = 'R')]
        recursive: bool,
        /// USER[:GROUP] or :GROUP.
        owner: String,
        /// Paths.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Block health per file: blocks, replicas, missing, corrupt, under-replicated.
    Fsck {
        /// Path (default `/`).
        path: Option<String>,
        /// Print every block, not only the unhealthy ones.
        #[arg(long)]
        blocks: bool,
    },
    /// Namenodes with their Raft role and datanodes with their state.
    Report,
}

/// Runs one shell command against the configured cluster.
pub async fn run(conf: Option<&Path>, cmd: ShellCommand) -> Result<()> {
    let config = ClusterConfig::discover(conf)?.ok_or_else(|| {
        Error::Config(format!(
            "no cluster configured: pass --conf FILE or set {}",
            config::CONF_ENV
        ))
    })?;
    let shell = Shell {
        client: DfsClient::new(config.clone()),
        config,
    };
    shell.dispatch(cmd).await
}

struct Shell {
    client: DfsClient,
    config: ClusterConfig,
}

impl Shell {
    async fn dispatch(&self, cmd: ShellCommand) -> Result<()> {
        match cmd {
            ShellCommand::Ls {
                recursive,
                human,
                paths,
                ..
            } => {
                self.ls(paths, recursive, SizeFormat::from_flag(human))
                    .await
            }
            ShellCommand::Mkdir { paths, .. } => {
                for p in paths {
                    self.client.mkdirs(&self.path(&p)?).await?;
                }
                Ok(())
            }
            ShellCommand::Put {
                force,
                replication,
                block_size_bytes,
                srcs,
                dst,
            } => {
                let opts = CreateOptions {
                    overwrite: force,
                    replication,
                    block_size_bytes,
                    ..Default::default()
                };
                self.put(srcs, &dst, opts).await
            }
            ShellCommand::Get { src, dst } => self.get(&self.path(&src)?, &dst).await,
            ShellCommand::Cat { paths } => self.cat(paths).await,
            ShellCommand::Rm { recursive, paths } => self.rm(paths, recursive).await,
            ShellCommand::Mv { src, dst } => self.mv(&src, &dst).await,
            ShellCommand::Stat { paths } => self.stat(paths).await,
            ShellCommand::Du {
                summary,
                human,
                header,
                paths,
                ..
            } => {
                let format = SizeFormat::from_flag(human);
                self.du(paths, summary, header, format).await
            }
            ShellCommand::Setrep {
                wait,
                replication,
                paths,
            } => self.setrep(paths, replication, wait).await,
            ShellCommand::Fsck { path, blocks } => {
                let p = self.path(path.as_deref().unwrap_or("/"))?;
                self.fsck(&p, blocks).await
            }
            ShellCommand::Chmod {
                recursive,
                mode,
                paths,
            } => self.chmod(&mode, paths, recursive).await,
            ShellCommand::Chown {
                recursive,
                owner,
                paths,
            } => self.chown(&owner, paths, recursive).await,
            ShellCommand::Report => self.report().await,
        }
    }

    /// Accepts `/path`, `dfs://HOST:PORT/path` naming one of our namenodes, or a path
    /// relative to the working directory.
    fn path(&self, arg: &str) -> Result<String> {
        crate::path::resolve(&self.config, arg)
    }

    async fn ls(&self, paths: Vec<String>, recursive: bool, size: SizeFormat) -> Result<()> {
        let paths = if paths.is_empty() {
            vec!["/".into()]
        } else {
            paths
        };
        let mut out = std::io::stdout().lock();
        for p in paths {
            let p = self.path(&p)?;
            // As `hdfs dfs -ls`: a directory listed on its own is introduced by a count.
            if !recursive && self.client.stat(&p).await?.kind == FileKind::Dir {
                let entries = self.client.list(&p).await?;
                writeln!(out, "Found {} items", entries.len()).map_err(stdout_err)?;
                for e in &entries {
                    writeln!(out, "{}", format_status(e, size)).map_err(stdout_err)?;
                }
                continue;
            }
            let mut todo = vec![p];
            while let Some(dir) = todo.pop() {
                let entries = self.client.list(&dir).await?;
                for e in &entries {
                    writeln!(out, "{}", format_status(e, size)).map_err(stdout_err)?;
                }
                if recursive {
                    todo.extend(
                        entries
                            .iter()
                            .rev()
                            .filter(|e| e.kind == FileKind::Dir && e.path != dir)
                            .map(|e| e.path.clone()),
                    );
                }
            }
        }
        Ok(())
    }

    /// Copies local sources to the destination by [`destination::plan`]'s rule.
    async fn put(&self, srcs: Vec<String>, raw: &str, opts: CreateOptions) -> Result<()> {
        let mut dst = self.path(raw)?;
        // The trailing '/' is what makes a missing destination a directory: keep it through
        // path resolution, which may spell the path canonically.
        if raw.ends_with('/') && !dst.ends_with('/') {
            dst.push('/');
        }
        let existing = match self.client.stat(&dst).await {
            Ok(s) if s.kind == FileKind::Dir => destination::Existing::Dir,
            Ok(_) => destination::Existing::File,
            Err(e) if e.kind() == ErrorKind::NotFound => destination::Existing::Missing,
            Err(e) => return Err(e),
        };
        let sources: Vec<PathBuf> = srcs.into_iter().map(PathBuf::from).collect();
        // Every source is looked at before anything is written, so a mistyped one copies none.
        let is_dir = sources
            .iter()
            .map(|s| {
                std::fs::metadata(s)
                    .map(|m| m.is_dir())
                    .map_err(|e| Error::io(format!("{}", s.display()), e))
            })
            .collect::<Result<Vec<bool>>>()?;
        let names = sources
            .iter()
            .map(|s| source_name(s))
            .collect::<Result<Vec<String>>>()?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let plan = destination::plan(&names, &dst, existing)?;
        if let Some(dir) = &plan.mkdir {
            self.client.mkdirs(dir).await?;
        }
        for ((src, target), is_dir) in sources.iter().zip(&plan.targets).zip(is_dir) {
            if is_dir {
                self.put_dir(src, target, &opts).await?;
            } else {
                self.put_file(src, target, &opts).await?;
            }
        }
        Ok(())
    }

    async fn put_dir(&self, src: &Path, dst: &str, opts: &CreateOptions) -> Result<()> {
        self.client.mkdirs(dst).await?;
        let mut entries: Vec<_> = std::fs::read_dir(src)
            .map_err(|e| Error::io(format!("{}", src.display()), e))?
            .filter_map(|e| e.ok())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let target = join(dst, &name);
            if path.is_dir() {
                Box::pin(self.put_dir(&path, &target, opts)).await?;
            } else {
                self.put_file(&path, &target, opts).await?;
            }
        }
        Ok(())
    }

    async fn put_file(&self, src: &Path, dst: &str, opts: &CreateOptions) -> Result<()> {
        let io = |e| Error::io(format!("{}", src.display()), e);
        let file = std::fs::File::open(src).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let bar = progress(len, &format!("put {dst}"));
        let mut w = self.client.create(dst, opts.clone()).await?;
        // A blocking thread reads the file in large chunks, each into a buffer of its own that
        // then travels as packets without another copy (`write_bytes`); the channel lets the
        // next chunk be read while this one is sent.
        let (tx, mut rx) = tokio::sync::mpsc::channel(2);
        tokio::task::spawn_blocking(move || read_chunks(file, &tx));
        while let Some(chunk) = rx.recv().await {
            let chunk: Bytes = chunk.map_err(io)?;
            let n = chunk.len() as u64;
            w.write_bytes(chunk).await?;
            if let Some(b) = &bar {
                b.inc(n);
            }
        }
        w.close().await?;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        Ok(())
    }

    async fn get(&self, src: &str, dst: &Path) -> Result<()> {
        let status = self.client.stat(src).await?;
        let name = src
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("root");
        let target = if dst.is_dir() {
            dst.join(name)
        } else {
            dst.to_path_buf()
        };
        match status.kind {
            FileKind::File => self.get_file(src, &target).await,
            FileKind::Dir => self.get_dir(src, &target).await,
        }
    }

    async fn get_dir(&self, src: &str, dst: &Path) -> Result<()> {
        std::fs::create_dir_all(dst).map_err(|e| Error::io(format!("{}", dst.display()), e))?;
        for entry in self.client.list(src).await? {
            let name = entry.path.rsplit('/').next().unwrap_or("").to_string();
            let target = dst.join(&name);
            match entry.kind {
                FileKind::File => self.get_file(&entry.path, &target).await?,
                FileKind::Dir => Box::pin(self.get_dir(&entry.path, &target)).await?,
            }
        }
        Ok(())
    }

    /// Copies one file out; on any failure after the output was created (a read error, a full
    /// local disk) the partial output is removed, so a file that exists is a whole copy. Only a
    /// regular file is removed: `get FILE /dev/full` must not delete the device.
    async fn get_file(&self, src: &str, dst: &Path) -> Result<()> {
        let mut reader = self.client.open(src).await?;
        let file =
            std::fs::File::create(dst).map_err(|e| Error::io(format!("{}", dst.display()), e))?;
        let copied = self.copy_out(src, &mut reader, file, dst).await;
        if copied.is_err() && std::fs::symlink_metadata(dst).is_ok_and(|m| m.file_type().is_file())
        {
            let _ = std::fs::remove_file(dst);
        }
        copied
    }

    async fn copy_out(
        &self,
        src: &str,
        reader: &mut crate::client::FileReader,
        file: std::fs::File,
        dst: &Path,
    ) -> Result<()> {
        let io = |e| Error::io(format!("{}", dst.display()), e);
        let bar = progress(reader.len_bytes(), &format!("get {src}"));
        let mut out = LocalSink::new(file);
        loop {
            let chunk = reader.next_chunk().await?;
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len() as u64;
            out.push(chunk).await.map_err(io)?;
            if let Some(b) = &bar {
                b.inc(n);
            }
        }
        out.finish().await.map_err(io)?;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        Ok(())
    }

    async fn cat(&self, paths: Vec<String>) -> Result<()> {
        // Straight to file descriptor 1 (a duplicate of it): std's stdout is line-buffered,
        // which would cut binary data at every newline into extra writes.
        let fd = std::io::stdout().as_fd().try_clone_to_owned();
        let mut out = LocalSink::new(std::fs::File::from(fd.map_err(stdout_err)?));
        for p in paths {
            let mut reader = self.client.open(&self.path(&p)?).await?;
            loop {
                let chunk = reader.next_chunk().await?;
                if chunk.is_empty() {
                    break;
                }
                out.push(chunk).await.map_err(stdout_err)?;
            }
        }
        out.finish().await.map_err(stdout_err)
    }

    async fn rm(&self, paths: Vec<String>, recursive: bool) -> Result<()> {
        for p in paths {
            let p = self.path(&p)?;
            if !self.client.delete(&p, recursive).await? {
                return Err(Error::NotFound(p));
            }
        }
        Ok(())
    }

    async fn mv(&self, src: &str, dst: &str) -> Result<()> {
        let src = self.path(src)?;
        let mut dst = self.path(dst)?;
        if matches!(self.client.stat(&dst).await, Ok(s) if s.kind == FileKind::Dir) {
            let name = src.rsplit('/').next().unwrap_or("");
            dst = join(&dst, name);
        }
        self.client.rename(&src, &dst).await
    }

    async fn stat(&self, paths: Vec<String>) -> Result<()> {
        for p in paths {
            let s = self.client.stat(&self.path(&p)?).await?;
            println!("path: {}", s.path);
            println!(
                "kind: {}",
                if s.kind == FileKind::Dir {
                    "directory"
                } else {
                    "file"
                }
            );
            println!("length: {}", s.len_bytes);
            if s.kind == FileKind::File {
                println!("replication: {}", s.replication);
                println!("block size: {}", s.block_size_bytes);
                println!("blocks: {}", s.count);
                println!("under construction: {}", s.under_construction);
            } else {
                println!("children: {}", s.count);
            }
            println!("modified: {}", format_time(s.mtime_ms));
            let mode = crate::namenode::permission::mode_string(s.mode);
            println!(
                "permission: {mode} ({:04o}) {}:{}",
                s.mode, s.owner, s.group
            );
        }
        Ok(())
    }

    async fn du(
        &self,
        paths: Vec<String>,
        summary: bool,
        header: bool,
        size: SizeFormat,
    ) -> Result<()> {
        let paths = if paths.is_empty() {
            vec!["/".into()]
        } else {
            paths
        };
        let mut out = std::io::stdout().lock();
        if header {
            let (a, b) = ("SIZE", "RAW_SIZE_ALL_REPLICAS");
            writeln!(out, "{a:<14} {b:<14} PATH").map_err(stdout_err)?;
        }
        for p in paths {
            let p = self.path(&p)?;
            let targets: Vec<String> = if summary {
                vec![p]
            } else {
                self.client
                    .list(&p)
                    .await?
                    .into_iter()
                    .map(|s| s.path)
                    .collect()
            };
            for t in targets {
                let s = self.client.du(&t).await?;
                let (len, raw) = (size.show(s.len_bytes), size.show(s.raw_len_bytes));
                writeln!(out, "{len:<14} {raw:<14} {t}").map_err(stdout_err)?;
            }
        }
        Ok(())
    }

    async fn setrep(&self, paths: Vec<String>, replication: u32, wait: bool) -> Result<()> {
        let paths: Vec<String> = paths.iter().map(|p| self.path(p)).collect::<Result<_>>()?;
        for p in &paths {
            self.client.set_replication(p, replication).await?;
            println!("replication of {p} set to {replication}");
        }
        if !wait {
            return Ok(());
        }
        for p in &paths {
            let mut checked_live_at = None;
            loop {
                let files = self.client.fsck(p).await?;
                let done = files.iter().all(|f| {
                    f.blocks
                        .iter()
                        .all(|b| b.live.len() == replication as usize)
                });
                if done {
                    break;
                }
                // A factor above the live datanodes is never reached (one replica per host):
                // say so instead of waiting forever. Checked again every few seconds, since
                // datanodes may die while we wait.
                if checked_live_at.is_none_or(|t: std::time::Instant| t.elapsed().as_secs() >= 5) {
                    self.check_reachable(replication).await?;
                    checked_live_at = Some(std::time::Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Ok(())
    }

    /// Fails when fewer live datanodes exist than `replication`, so `setrep -w` cannot end.
    async fn check_reachable(&self, replication: u32) -> Result<()> {
        let live = self
            .client
            .datanode_report()
            .await?
            .iter()
            .filter(|d| d.live)
            .count();
        if live >= replication as usize {
            return Ok(());
        }
        Err(Error::Unavailable(format!(
            "replication {replication} cannot be reached with {live} live datanodes (one \
             replica per datanode); the factor is set and is reached once enough datanodes \
             run, but -w does not wait for that"
        )))
    }

    async fn fsck(&self, path: &str, all_blocks: bool) -> Result<()> {
        let files = self.client.fsck(path).await?;
        let mut totals = FsckTotals::default();
        let mut out = std::io::stdout().lock();
        for f in &files {
            for line in fsck_lines(f, all_blocks, &mut totals) {
                writeln!(out, "{line}").map_err(stdout_err)?;
            }
        }
        let status = if totals.missing > 0 {
            "CORRUPT"
        } else if totals.under > 0 || totals.corrupt > 0 {
            "DEGRADED"
        } else {
            "HEALTHY"
        };
        writeln!(
            out,
            "files: {}  blocks: {}  missing: {}  with corrupt replicas: {}  under-replicated: {}\nstatus: {status}",
            files.len(),
            totals.blocks,
            totals.missing,
            totals.corrupt,
            totals.under
        )
        .map_err(stdout_err)?;
        if totals.missing > 0 {
            return Err(Error::Corrupt {
                block: 0,
                replica: "fsck".into(),
                detail: format!(
                    "{} block(s) under {path} have no live good replica",
                    totals.missing
                ),
            });
        }
        Ok(())
    }

    async fn report(&self) -> Result<()> {
        println!("namenodes:");
        for (id, status) in self.client.namenode_statuses().await {
            let (addr, web) = self
                .config
                .namenode(id)
                .map(|n| (n.addr.clone(), n.web_addr()))
                .unwrap_or_default();
            match status {
                Ok(s) => println!(
                    "  {id} {addr:<22} {:<12} term {} leader {} commit {} applied {} snapshot {} inodes {} web http://{web}/",
                    format!("{:?}", s.role),
                    s.term,
                    s.leader_id,
                    s.commit_index,
                    s.applied_index,
                    s.snapshot_index,
                    s.inodes
                ),
                Err(e) => println!("  {id} {addr:<22} unreachable: {e}"),
            }
        }
        let nodes = self.client.datanode_report().await?;
        let live = nodes.iter().filter(|d| d.live).count();
        println!("datanodes: {live} live, {} dead", nodes.len() - live);
        for d in nodes {
            let seen = if d.last_heartbeat_ago_ms == u64::MAX {
                "never".to_string()
            } else {
                format!("{:.1}s ago", d.last_heartbeat_ago_ms as f64 / 1000.0)
            };
            let web = self
                .config
                .host(&d.node.host)
                .map(|h| format!(" metrics http://{}/metrics", h.datanode_web_addr()))
                .unwrap_or_default();
            println!(
                "  {:<10} {:<22} {:<8} {:<4} capacity {} used {} remaining {} blocks {} transfers {} heartbeat {seen}{web}",
                d.node.host,
                d.node.addr,
                d.node.rack,
                if d.live { "live" } else { "dead" },
                human(d.usage.capacity_bytes),
                human(d.usage.used_bytes),
                human(d.usage.remaining_bytes),
                d.blocks,
                d.usage.active_transfers
            );
        }
        Ok(())
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The name a local source gets inside a destination directory: its last component, or for
/// `.` and `..` the name of the directory they stand for.
fn source_name(src: &Path) -> Result<String> {
    let named = match src.file_name() {
        Some(n) => Some(n.to_os_string()),
        None => std::fs::canonicalize(src)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_os_string())),
    };
    named
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::InvalidPath {
            path: src.display().to_string(),
            reason: "has no file name to copy it under".into(),
        })
}

/// Sends `file`'s bytes into `tx` in chunks of [`PUT_BUFFER_BYTES`] (the last one shorter), then
/// an error if reading failed; stops early once the receiver is gone.
fn read_chunks(mut file: std::fs::File, tx: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>) {
    loop {
        // `take` + `read_to_end` fills the fresh buffer without zeroing it first.
        let mut chunk = Vec::with_capacity(PUT_BUFFER_BYTES);
        let read = (&mut file)
            .take(PUT_BUFFER_BYTES as u64)
            .read_to_end(&mut chunk);
        let item = match read {
            Ok(0) => return,
            Ok(_) => Ok(Bytes::from(chunk)),
            Err(e) => Err(e),
        };
        let failed = item.is_err();
        if tx.blocking_send(item).is_err() || failed {
            return;
        }
    }
}

fn progress(len: u64, what: &str) -> Option<indicatif::ProgressBar> {
    if len < PROGRESS_MIN_BYTES || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    Some(bar)
}

/// The one-line message for an error: a remote error shows the peer's message without the
/// wire-kind prefix, which only matters to programs.
pub fn describe(err: &Error) -> String {
    match err {
        Error::Remote { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// The exit code for an error: 2 for bad input, 1 for everything else.
pub fn exit_code(err: &Error) -> i32 {
    match err.kind() {
        ErrorKind::InvalidPath | ErrorKind::Config => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_in_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00");
        assert_eq!(format_time(1_700_000_000_000), "2023-11-14 22:13");
    }
}
