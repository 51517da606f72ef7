//! One running Streaming command (a mapper, reducer or combiner process) and its pipes.
//!
//! The job's thread is called once per record or key and must return, while the child reads
//! its stdin and writes its stdout at its own pace: feeding it and reading it from one thread
//! with blocking pipes deadlocks as soon as both pipes are full. So a writer thread owns the
//! child's stdin and a reader thread its stdout, each behind a bounded channel of 64 KiB
//! chunks; the job's thread waits on both channels at once (`crossbeam_channel::Select`), so
//! it takes output whenever it cannot hand over input. Memory stays bounded by the channel
//! capacities, the chunk size and the longest output line.
//!
//! A child that closes its stdin early (`head -n 1`) makes the writer stop writing and throw
//! the rest away; only its exit status decides whether it failed. A third thread reads
//! stderr (see [`super::reporter`]).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Select, Sender, TrySendError};

use super::reporter::{self, StderrSummary};
use crate::error::{Error, Result};
use crate::task_log::{BoundedFile, LOCAL_KEEP_BYTES};

/// Bytes handed to or taken from a child at once: big enough that a pipe write or read
/// moves many lines per system call.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks in flight in each direction.
const CHANNEL_CHUNKS: usize = 4;

/// What a Streaming command is, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The `-mapper` command.
    Mapper,
    /// The `-reducer` command.
    Reducer,
    /// The `-combiner` command.
    Combiner,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Mapper => "mapper",
            Role::Reducer => "reducer",
            Role::Combiner => "combiner",
        })
    }
}

/// How to start a child.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    /// Its role.
    pub role: Role,
    /// The command line as the user gave it.
    pub command: &'a str,
    /// The task's working directory (shipped files are there).
    pub dir: &'a Path,
    /// Environment variables added to this process's own.
    pub env: &'a [(String, String)],
    /// Whether a non-zero exit status fails the task (`stream.non.zero.exit.is.failure`).
    pub exit_is_failure: bool,
    /// Longest output line accepted.
    pub max_line_bytes: usize,
    /// A file that also keeps the child's stderr, bounded (a local run's task log).
    pub stderr_log: Option<&'a Path>,
}

/// The child's stderr as passed through: to this process's stderr, and to the task's kept
/// log when there is one. A failing log write does not stop the pass-through.
struct Tee {
    out: std::io::Stderr,
    log: Option<BoundedFile>,
}

impl Write for Tee {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Some(log) = &mut self.log {
            let _ = log.write_all(data);
        }
        self.out.write(data)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Splits a command into words as Hadoop does (shell quoting, no shell), and finds the
/// program: a file of that name in the working directory (a shipped script) comes first,
/// then `PATH`.
pub fn command_words(command: &str, dir: &Path) -> Result<(PathBuf, Vec<String>)> {
    let words = shlex::split(command)
        .ok_or_else(|| Error::BadSetting(format!("command {command:?} has unbalanced quotes")))?;
    let Some((first, rest)) = words.split_first() else {
        return Err(Error::BadSetting("a Streaming command is empty".into()));
    };
    let local = dir.join(first);
    let program = if !first.starts_with('/') && local.is_file() {
        local
    } else {
        PathBuf::from(first)
    };
    Ok((program, rest.to_vec()))
}

/// A running child with its pipe threads.
pub struct StreamChild {
    role: Role,
    command: String,
    exit_is_failure: bool,
    max_line_bytes: usize,
    child: Child,
    /// Input not yet handed to the writer.
    pending: Vec<u8>,
    to_child: Option<Sender<Vec<u8>>>,
    /// Emptied input chunks coming back from the writer, for reuse.
    spent_input: Receiver<Vec<u8>>,
    from_child: Option<Receiver<Vec<u8>>>,
    /// Output chunks going back to the reader once their lines are taken.
    spent_output: Sender<Vec<u8>>,
    /// The start of an output line whose end has not arrived yet.
    partial: Vec<u8>,
    writer: Option<JoinHandle<()>>,
    /// Set by the writer when the child closed its stdin: further input is not even buffered.
    input_closed: Arc<AtomicBool>,
    reader: Option<JoinHandle<std::io::Result<()>>>,
    stderr: Option<JoinHandle<StderrSummary>>,
}

impl StreamChild {
    /// Starts the command with piped stdin, stdout and stderr.
    pub fn start(launch: &Launch<'_>) -> Result<StreamChild> {
        let (program, args) = command_words(launch.command, launch.dir)?;
        let mut child = std::process::Command::new(&program)
            .args(&args)
            .current_dir(launch.dir)
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::user(format!(
                    "{} `{}`: cannot run {}: {e} (looked in the task's working directory {} \
                     and PATH)",
                    launch.role,
                    launch.command,
                    program.display(),
                    launch.dir.display()
                ))
            })?;
        let (stdin, stdout, stderr) =
            match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
                (Some(i), Some(o), Some(e)) => (i, o, e),
                _ => return Err(Error::user("child process without pipes".to_owned())),
            };
        let (in_tx, in_rx) = bounded(CHANNEL_CHUNKS);
        let (spent_in_tx, spent_in_rx) = bounded(CHANNEL_CHUNKS + 1);
        let (out_tx, out_rx) = bounded(CHANNEL_CHUNKS);
        let (spent_out_tx, spent_out_rx) = bounded(CHANNEL_CHUNKS + 1);
        let input_closed = Arc::new(AtomicBool::new(false));
        let closed = input_closed.clone();
        let writer = std::thread::spawn(move || write_input(stdin, in_rx, spent_in_tx, &closed));
        let reader = std::thread::spawn(move || read_output(stdout, out_tx, spent_out_rx));
        let log = match launch.stderr_log {
            Some(path) => Some(BoundedFile::create(path, LOCAL_KEEP_BYTES)?),
            None => None,
        };
        let stderr = std::thread::spawn(move || {
            let mut own = Tee {
                out: std::io::stderr(),
                log,
            };
            reporter::read_stderr(stderr, &mut own)
        });
        Ok(StreamChild {
            role: launch.role,
            command: launch.command.to_owned(),
            exit_is_failure: launch.exit_is_failure,
            max_line_bytes: launch.max_line_bytes,
            child,
            pending: Vec::with_capacity(2 * CHUNK_BYTES),
            to_child: Some(in_tx),
            spent_input: spent_in_rx,
            from_child: Some(out_rx),
            spent_output: spent_out_tx,
            partial: Vec::new(),
            writer: Some(writer),
            input_closed,
            reader: Some(reader),
            stderr: Some(stderr),
        })
    }

    /// Queues one input line made of `parts` (a `\n` is added); output lines that arrive
    /// meanwhile go to `on_line`.
    #[inline]
    pub fn write_line(
        &mut self,
        parts: &[&[u8]],
        on_line: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        if self.input_closed.load(Ordering::Relaxed) {
            self.pending.clear();
            return Ok(());
        }
        for p in parts {
            self.pending.extend_from_slice(p);
        }
        self.pending.push(b'\n');
        if self.pending.len() >= CHUNK_BYTES {
            self.hand_over(on_line)?;
        }
        Ok(())
    }

    /// Hands the pending input to the writer, taking output while the writer is busy.
    fn hand_over(&mut self, on_line: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let Some(tx) = self.to_child.clone() else {
            self.pending.clear();
            return Ok(());
        };
        let next = self
            .spent_input
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(2 * CHUNK_BYTES));
        let mut chunk = std::mem::replace(&mut self.pending, next);
        // The usual case: the writer keeps up, and no wait is needed.
        match tx.try_send(chunk) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Disconnected(_)) => {
                self.to_child = None;
                return Ok(());
            }
            Err(TrySendError::Full(c)) => chunk = c,
        }
        loop {
            let Some(rx) = self.from_child.clone() else {
                // The child closed its stdout: the writer still drains (or discards) input.
                if tx.send(chunk).is_err() {
                    self.to_child = None;
                }
                return Ok(());
            };
            let mut select = Select::new();
            let send = select.send(&tx);
            select.recv(&rx);
            let op = select.select();
            if op.index() == send {
                if op.send(&tx, chunk).is_err() {
                    self.to_child = None;
                }
                return Ok(());
            }
            match op.recv(&rx) {
                Ok(out) => self.take_output(out, on_line)?,
                Err(_) => self.from_child = None,
            }
        }
    }

    /// Cuts an output chunk into lines for `on_line`, keeping an unfinished last line.
    fn take_output(
        &mut self,
        chunk: Vec<u8>,
        on_line: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut rest = &chunk[..];
        if !self.partial.is_empty() {
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    self.partial.extend_from_slice(&rest[..i]);
                    rest = &rest[i + 1..];
                    let line = std::mem::take(&mut self.partial);
                    self.check_length(line.len())?;
                    on_line(trim_cr(&line))?;
                    self.partial = line;
                    self.partial.clear();
                }
                None => {
                    self.partial.extend_from_slice(rest);
                    rest = &[];
                }
            }
        }
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', rest) {
            on_line(trim_cr(&rest[start..end]))?;
            start = end + 1;
        }
        self.partial.extend_from_slice(&rest[start..]);
        self.check_length(self.partial.len())?;
        let _ = self.spent_output.try_send(chunk);
        Ok(())
    }

    fn check_length(&self, len: usize) -> Result<()> {
        if len <= self.max_line_bytes {
            return Ok(());
        }
        Err(Error::user(format!(
            "{} `{}` wrote a line longer than the limit of {} bytes (setting max_record_bytes)",
            self.role, self.command, self.max_line_bytes
        )))
    }

    /// Closes the child's stdin, takes the rest of its output, waits for it, and fails if it
    /// failed. Returns what its stderr reported (counters, status).
    pub fn finish(mut self, on_line: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<StderrSummary> {
        if !self.pending.is_empty() {
            self.hand_over(on_line)?;
        }
        // Closing the channel makes the writer close the child's stdin.
        self.to_child = None;
        while let Some(rx) = &self.from_child {
            match rx.recv() {
                Ok(chunk) => self.take_output(chunk, on_line)?,
                Err(_) => self.from_child = None,
            }
        }
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            on_line(trim_cr(&line))?;
        }
        let read = self.reader.take().map(JoinHandle::join);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        let status = self
            .child
            .wait()
            .map_err(|e| Error::io(format!("waiting for {} `{}`", self.role, self.command), e))?;
        let summary = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if let Some(Ok(Err(e))) = read {
            return Err(Error::io(
                format!("reading the output of {} `{}`", self.role, self.command),
                e,
            ));
        }
        if !status.success() && (self.exit_is_failure || status.code().is_none()) {
            return Err(self.failure(&status, &summary));
        }
        Ok(summary)
    }

    fn failure(&self, status: &std::process::ExitStatus, summary: &StderrSummary) -> Error {
        use std::os::unix::process::ExitStatusExt;
        let how = match (status.code(), status.signal()) {
            (Some(c), _) => format!("failed with exit status {c}"),
            (None, Some(s)) => format!("was killed by signal {s}"),
            _ => "ended abnormally".to_owned(),
        };
        let mut msg = format!("{} `{}` {how}", self.role, self.command);
        if summary.tail.is_empty() {
            msg.push_str(" (its stderr was empty)");
        } else {
            msg.push_str("; the last lines of its stderr:");
            for line in &summary.tail {
                msg.push_str("\n  ");
                msg.push_str(line);
            }
        }
        Error::user(msg)
    }
}

impl Drop for StreamChild {
    /// A task that fails before `finish` (a bad record, a full disk) must not leave its child
    /// running or its threads blocked: kill the child and let the threads see end of file.
    fn drop(&mut self) {
        if self.writer.is_none() {
            return;
        }
        let _ = self.child.kill();
        self.to_child = None;
        self.from_child = None;
        let _ = self.child.wait();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        if let Some(e) = self.stderr.take() {
            let _ = e.join();
        }
    }
}

#[inline]
fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The writer thread: writes chunks to the child's stdin until the channel closes. After the
/// child closed its stdin (a broken pipe) it keeps taking chunks and drops them, so the job's
/// thread never blocks on a child that stopped reading.
fn write_input(
    mut stdin: ChildStdin,
    chunks: Receiver<Vec<u8>>,
    spent: Sender<Vec<u8>>,
    closed: &AtomicBool,
) {
    let mut open = true;
    for mut chunk in chunks {
        if open && stdin.write_all(&chunk).is_err() {
            // Broken pipe: the child stopped reading. Its exit status decides the outcome.
            open = false;
            closed.store(true, Ordering::Relaxed);
        }
        chunk.clear();
        let _ = spent.try_send(chunk);
    }
    drop(stdin);
}

/// The reader thread: reads the child's stdout in chunks until end of file. A chunk is handed
/// on once at least half full (a child typically writes 4-8 KiB at a time), so the job's
/// thread is woken once per tens of KiB; withholding part of the output never blocks the
/// child, since this thread keeps draining its pipe.
fn read_output(
    mut stdout: ChildStdout,
    chunks: Sender<Vec<u8>>,
    spent: Receiver<Vec<u8>>,
) -> std::io::Result<()> {
    loop {
        let mut buf = spent
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK_BYTES));
        buf.resize(CHUNK_BYTES, 0);
        let mut filled = 0;
        let mut eof = false;
        while filled < CHUNK_BYTES / 2 {
            match stdout.read(&mut buf[filled..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(filled);
        if filled > 0 && chunks.send(buf).is_err() {
            // The task stopped listening (it failed); the child is being killed.
            return Ok(());
        }
        if eof {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch<'a>(command: &'a str, dir: &'a Path) -> Launch<'a> {
        Launch {
            role: Role::Mapper,
            command,
            dir,
            env: &[],
            exit_is_failure: true,
            max_line_bytes: 1 << 20,
            stderr_log: None,
        }
    }

    #[test]
    fn commands_split_like_a_shell_and_prefer_shipped_files() {
        let dir = tempfile::tempdir().unwrap();
        let (p, args) = command_words("python3 -c 'print(1)' \"a b\"", dir.path()).unwrap();
        assert_eq!(p, PathBuf::from("python3"));
        assert_eq!(args, ["-c", "print(1)", "a b"]);
        std::fs::write(dir.path().join("cat"), "").unwrap();
        let (p, _) = command_words("cat -n", dir.path()).unwrap();
        assert_eq!(
            p,
            dir.path().join("cat"),
            "a shipped file comes before PATH"
        );
        assert!(command_words("a 'b", dir.path()).is_err());
        assert!(command_words("  ", dir.path()).is_err());
    }

    /// Feeds `lines` lines through `command`, returning the output lines.
    fn pipe(command: &str, lines: usize) -> Result<Vec<Vec<u8>>> {
        let dir = tempfile::tempdir().unwrap();
        let mut child = StreamChild::start(&launch(command, dir.path()))?;
        let mut got = Vec::new();
        let mut take = |l: &[u8]| {
            got.push(l.to_vec());
            Ok(())
        };
        for i in 0..lines {
            child.write_line(&[format!("line {i}").as_bytes(), b"\tv"], &mut take)?;
        }
        child.finish(&mut take)?;
        Ok(got)
    }

    #[test]
    fn output_is_taken_while_input_is_given_without_deadlock() {
        // 200k lines is several MiB each way: far more than the pipes and channels hold.
        let got = pipe("cat", 200_000).unwrap();
        assert_eq!(got.len(), 200_000);
        assert_eq!(got[123_456], b"line 123456\tv");
        let got = pipe("head -n 2", 200_000).unwrap();
        assert_eq!(got, [&b"line 0\tv"[..], b"line 1\tv"]);
        assert!(pipe("true", 10).unwrap().is_empty());
    }

    #[test]
    fn failures_name_the_role_command_status_and_stderr() {
        let e = pipe("sh -c 'echo oops >&2; echo more >&2; exit 7'", 3)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("mapper `sh -c"), "{e}");
        assert!(e.contains("exit status 7"), "{e}");
        assert!(e.ends_with("\n  oops\n  more"), "{e}");
        let e = pipe("sh -c 'kill -9 $$'", 1).unwrap_err().to_string();
        assert!(e.contains("killed by signal 9"), "{e}");
        let e = pipe("/no/such/program", 1).unwrap_err().to_string();
        assert!(e.contains("cannot run /no/such/program"), "{e}");
    }
}
