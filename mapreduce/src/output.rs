//! Output formats: how a task's output records become bytes in a part file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::compression::Codec;
use crate::counters::Counters;
use crate::error::{Error, IoContext, Result};
use crate::fs::{FileSystem, OutputSink};
use crate::job::Job;

/// How output records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputFormat {
    /// `key\tvalue\n`, as Hadoop's `TextOutputFormat`.
    Text,
    /// `key` then `value` with nothing between or after (fixed-length records).
    Raw,
}

/// Where a mapper sends its output. Implemented by the map-side sort buffer, and by the
/// direct writer of a map-only job.
pub trait MapEmitter {
    /// Emits one key/value pair.
    fn emit(&mut self, key: &[u8], value: &[u8]);
    /// Emits `(&text[start..end], value)` for each `(start, end)` of `keys`, in order: one
    /// call for many keys that share a value (a word count's words and their 1), so that a
    /// mapper scanning a buffer pays one dynamic call per batch rather than per key.
    fn emit_keys(&mut self, text: &[u8], keys: &[(usize, usize)], value: &[u8]) {
        for &(start, end) in keys {
            self.emit(&text[start..end], value);
        }
    }
    /// Counters of this task, for user-defined counters.
    fn counters(&mut self) -> &mut Counters;
}

/// Where a reducer sends its output.
pub trait ReduceEmitter {
    /// Writes one output record.
    fn emit(&mut self, key: &[u8], value: &[u8]);
    /// Counters of this task, for user-defined counters.
    fn counters(&mut self) -> &mut Counters;
}

/// Writes records of one part file.
pub struct OutputWriter {
    out: Box<dyn OutputSink>,
    path: PathBuf,
    format: OutputFormat,
    bytes: u64,
    records: u64,
    /// Bytes that reached the file, when a codec stands between: Hadoop's "Bytes written"
    /// counts what the filesystem got, not what the job emitted.
    stored: Option<Arc<AtomicU64>>,
}

impl OutputWriter {
    /// Creates the part file `path` of `job` in `fs`: with the job's output codec, the file
    /// is compressed and its name gets the codec's extension (`part-r-00000.gz`).
    pub fn create(fs: &dyn FileSystem, path: &Path, job: &Job) -> Result<OutputWriter> {
        OutputWriter::create_as(fs, path, job.output, job.output_codec)
    }

    /// Creates the part file `path` (plus the codec's extension) in `fs`.
    pub fn create_as(
        fs: &dyn FileSystem,
        path: &Path,
        format: OutputFormat,
        codec: Option<Codec>,
    ) -> Result<OutputWriter> {
        let (out, path, stored) = match codec {
            None => (fs.create(path)?, path.to_owned(), None),
            Some(codec) => {
                let mut name = path.as_os_str().to_owned();
                name.push(format!(".{}", codec.extension()));
                let path = PathBuf::from(name);
                let stored = Arc::new(AtomicU64::new(0));
                let sink = Box::new(CountingSink {
                    inner: fs.create(&path)?,
                    count: stored.clone(),
                });
                let out = codec.encoder(sink).ctx("compressing", &path)?;
                (out, path, Some(stored))
            }
        };
        Ok(OutputWriter {
            out,
            path,
            format,
            bytes: 0,
            records: 0,
            stored,
        })
    }

    /// Writes one record.
    #[inline]
    pub fn write(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let r = match self.format {
            OutputFormat::Text => self
                .out
                .write_all(key)
                .and_then(|_| self.out.write_all(b"\t"))
                .and_then(|_| self.out.write_all(value))
                .and_then(|_| self.out.write_all(b"\n")),
            OutputFormat::Raw => self
                .out
                .write_all(key)
                .and_then(|_| self.out.write_all(value)),
        };
        r.ctx("writing", &self.path)?;
        self.records += 1;
        self.bytes += (key.len() + value.len()) as u64
            + if self.format == OutputFormat::Text {
                2
            } else {
                0
            };
        Ok(())
    }

    /// Flushes, optionally fsyncs, and returns (records, bytes written to the file: after
    /// compression, if any).
    pub fn finish(self, sync: bool) -> Result<(u64, u64)> {
        self.out.finish(sync).ctx("closing", &self.path)?;
        let bytes = match &self.stored {
            Some(n) => n.load(Ordering::Relaxed),
            None => self.bytes,
        };
        Ok((self.records, bytes))
    }
}

/// A file that counts the bytes written into it (under a compressor).
struct CountingSink {
    inner: Box<dyn OutputSink>,
    count: Arc<AtomicU64>,
}

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl OutputSink for CountingSink {
    fn finish(self: Box<Self>, sync: bool) -> std::io::Result<()> {
        self.inner.finish(sync)
    }
}

/// Sends task output straight to a part file: the emitter of reducers and of map-only maps.
/// A write error is kept and reported by [`OutputEmitter::take_error`], since `emit` cannot fail.
pub struct OutputEmitter {
    /// The part file.
    pub out: OutputWriter,
    /// The task's counters (user counters, and map output counts in a map-only job).
    pub counters: Counters,
    error: Option<Error>,
}

impl OutputEmitter {
    /// An emitter writing to `out`.
    pub fn new(out: OutputWriter) -> OutputEmitter {
        OutputEmitter {
            out,
            counters: Counters::default(),
            error: None,
        }
    }

    /// The first write error since the last call, if any.
    pub fn take_error(&mut self) -> Result<()> {
        self.error.take().map_or(Ok(()), Err)
    }

    #[inline]
    fn write(&mut self, key: &[u8], value: &[u8]) {
        if self.error.is_none() {
            if let Err(e) = self.out.write(key, value) {
                self.error = Some(e);
            }
        }
    }
}

impl MapEmitter for OutputEmitter {
    fn emit(&mut self, key: &[u8], value: &[u8]) {
        self.counters.task.map_output_records += 1;
        self.counters.task.map_output_bytes += (key.len() + value.len()) as u64;
        self.write(key, value);
    }

    fn counters(&mut self) -> &mut Counters {
        &mut self.counters
    }
}

impl ReduceEmitter for OutputEmitter {
    #[inline]
    fn emit(&mut self, key: &[u8], value: &[u8]) {
        self.write(key, value);
    }

    fn counters(&mut self) -> &mut Counters {
        &mut self.counters
    }
}
