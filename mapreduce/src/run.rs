//! Sorted run files: the on-disk form of every spill, merged map output and intermediate
//! merge.
//!
//! A run file is a sequence of partition segments. Each segment holds records
//! (`varint klen, varint vlen, key, value`) sorted by key, and is described by a
//! [`Segment`] (offset, length, record count, CRC32 of its bytes). The reader checks the
//! CRC when it reaches the end of a segment and refuses lengths that point past the segment,
//! so corrupt intermediate data is an error, never a wrong answer or a huge allocation.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::codec::{get_varint, put_record};
use crate::error::{Error, IoContext, Result};

/// Buffer size of run writers and readers.
pub const IO_BUFFER_BYTES: usize = 128 * 1024;

/// One partition's slice of a run file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Byte offset of the segment in the file.
    pub offset: u64,
    /// Length of the segment in bytes.
    pub len: u64,
    /// Number of records in the segment.
    pub records: u64,
    /// CRC32 of the segment's bytes.
    pub crc32: u32,
}

/// A run file with one segment per partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFile {
    /// Where the run lives.
    pub path: PathBuf,
    /// Segment `p` holds partition `p`.
    pub segments: Vec<Segment>,
}

impl RunFile {
    /// Total bytes over all segments.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// Total records over all segments.
    pub fn records(&self) -> u64 {
        self.segments.iter().map(|s| s.records).sum()
    }

    /// A reader of partition `p`.
    pub fn open_segment(&self, p: usize) -> Result<SegmentReader> {
        SegmentReader::open(&self.path, self.segments[p])
    }

    /// Writes the index beside the data file (`<path>.index`), for readers in other processes.
    pub fn write_index(&self) -> Result<PathBuf> {
        let index_path = index_path(&self.path);
        let bytes = dfs::frame::encode_msg(&self.segments)
            .map_err(|e| Error::user(format!("encoding run index: {e}")))?;
        std::fs::write(&index_path, bytes).ctx("writing", &index_path)?;
        Ok(index_path)
    }

    /// Reads a run's index written by [`RunFile::write_index`].
    pub fn read_index(path: &Path) -> Result<RunFile> {
        let index_path = index_path(path);
        let bytes = std::fs::read(&index_path).ctx("reading", &index_path)?;
        let segments = dfs::frame::decode_msg(&bytes).map_err(|e| Error::Corrupt {
            file: index_path.clone(),
            reason: e.to_string(),
        })?;
        Ok(RunFile {
            path: path.to_owned(),
            segments,
        })
    }
}

fn index_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".index");
    PathBuf::from(s)
}

/// Writes a run file partition by partition; partitions must be written in increasing order.
pub struct RunWriter {
    file: File,
    path: PathBuf,
    buf: Vec<u8>,
    segments: Vec<Segment>,
    offset: u64,
    current: usize,
    hasher: crc32fast::Hasher,
}

impl RunWriter {
    /// Creates `path` for a run of `partitions` segments.
    pub fn create(path: &Path, partitions: usize) -> Result<RunWriter> {
        let file = File::create(path).ctx("creating", path)?;
        Ok(RunWriter {
            file,
            path: path.to_owned(),
            buf: Vec::with_capacity(IO_BUFFER_BYTES + 1024),
            segments: vec![Segment::default(); partitions],
            offset: 0,
            current: 0,
            hasher: crc32fast::Hasher::new(),
        })
    }

    /// Appends a record to partition `p` (which must not be below the last one written).
    #[inline]
    pub fn append(&mut self, p: usize, key: &[u8], value: &[u8]) -> Result<()> {
        if p != self.current {
            self.switch_to(p)?;
        }
        put_record(&mut self.buf, key, value);
        self.segments[p].records += 1;
        if self.buf.len() >= IO_BUFFER_BYTES {
            self.flush_buf()?;
        }
        Ok(())
    }

    fn switch_to(&mut self, p: usize) -> Result<()> {
        debug_assert!(p > self.current, "partitions out of order");
        self.close_segment()?;
        for s in &mut self.segments[self.current + 1..=p] {
            s.offset = self.offset;
        }
        self.current = p;
        Ok(())
    }

    fn flush_buf(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.hasher.update(&self.buf);
        self.file.write_all(&self.buf).ctx("writing", &self.path)?;
        self.offset += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    fn close_segment(&mut self) -> Result<()> {
        self.flush_buf()?;
        let hasher = std::mem::replace(&mut self.hasher, crc32fast::Hasher::new());
        let seg = &mut self.segments[self.current];
        seg.len = self.offset - seg.offset;
        seg.crc32 = hasher.finalize();
        Ok(())
    }

    /// Finishes the last segment and returns the run's description.
    pub fn finish(mut self) -> Result<RunFile> {
        self.close_segment()?;
        let last = self.segments.len();
        for s in &mut self.segments[(self.current + 1).min(last)..] {
            s.offset = self.offset;
        }
        Ok(RunFile {
            path: self.path,
            segments: self.segments,
        })
    }
}

/// Anything that yields records in key order: a segment, or a merge of segments.
pub trait SortedSource {
    /// Moves to the next record; `false` at the end.
    fn advance(&mut self) -> Result<bool>;
    /// Key of the current record.
    fn key(&self) -> &[u8];
    /// Value of the current record.
    fn value(&self) -> &[u8];
}

/// Streams the records of one segment, verifying its length, record count and CRC.
pub struct SegmentReader {
    file: Box<dyn Read + Send>,
    path: PathBuf,
    segment: Segment,
    unread: u64,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    key: (usize, usize),
    value: (usize, usize),
    records: u64,
    hasher: crc32fast::Hasher,
}

impl SegmentReader {
    /// Opens `segment` of the run file at `path`.
    pub fn open(path: &Path, segment: Segment) -> Result<SegmentReader> {
        let mut file = File::open(path).ctx("opening", path)?;
        file.seek(SeekFrom::Start(segment.offset))
            .ctx("seeking in", path)?;
        Ok(SegmentReader::from_reader(Box::new(file), path, segment))
    }

    /// A reader of a segment held in memory (a fetched map output); `name` is for errors.
    pub fn from_memory(name: &Path, data: bytes::Bytes, segment: Segment) -> SegmentReader {
        SegmentReader::from_reader(Box::new(std::io::Cursor::new(data)), name, segment)
    }

    fn from_reader(file: Box<dyn Read + Send>, path: &Path, segment: Segment) -> SegmentReader {
        let cap = (segment.len as usize).clamp(64, IO_BUFFER_BYTES);
        SegmentReader {
            file,
            path: path.to_owned(),
            segment,
            unread: segment.len,
            buf: vec![0; cap],
            pos: 0,
            end: 0,
            key: (0, 0),
            value: (0, 0),
            records: 0,
            hasher: crc32fast::Hasher::new(),
        }
    }

    fn corrupt(&self, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            file: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// Makes at least `need` bytes available from `pos`, growing the buffer only up to what
    /// the segment can still hold. Returns false at the end of the segment.
    fn fill(&mut self, need: usize) -> Result<bool> {
        if self.end - self.pos >= need {
            return Ok(true);
        }
        if ((self.end - self.pos) as u64 + self.unread) < need as u64 {
            return Ok(false);
        }
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        if self.buf.len() < need {
            self.buf.resize(need.max(self.buf.len() * 2), 0);
        }
        while self.end < need {
            let room = (self.buf.len() - self.end).min(self.unread as usize);
            let n = self
                .file
                .read(&mut self.buf[self.end..self.end + room])
                .ctx("reading", &self.path)?;
            if n == 0 {
                return Err(self.corrupt("file ends inside a segment"));
            }
            self.hasher.update(&self.buf[self.end..self.end + n]);
            self.end += n;
            self.unread -= n as u64;
        }
        Ok(true)
    }

    fn finish_segment(&mut self) -> Result<bool> {
        let crc = std::mem::replace(&mut self.hasher, crc32fast::Hasher::new()).finalize();
        if crc != self.segment.crc32 {
            return Err(self.corrupt(format!(
                "segment at offset {} fails its checksum",
                self.segment.offset
            )));
        }
        if self.records != self.segment.records {
            return Err(self.corrupt(format!(
                "segment has {} records, index says {}",
                self.records, self.segment.records
            )));
        }
        Ok(false)
    }
}

impl SortedSource for SegmentReader {
    fn advance(&mut self) -> Result<bool> {
        if self.pos == self.end && self.unread == 0 {
            if self.segment.len == u64::MAX {
                return Ok(false);
            }
            self.finish_segment()?;
            // Mark finished so further calls stay at the end without re-checking.
            self.segment.len = u64::MAX;
            return Ok(false);
        }
        // Two varints take at most 20 bytes; ask for what the segment can give.
        let avail = (self.end - self.pos) as u64 + self.unread;
        self.fill(avail.min(20) as usize)?;
        let header = &self.buf[self.pos..self.end];
        let Some((klen, a)) = get_varint(header) else {
            return Err(self.corrupt("bad key length"));
        };
        let Some((vlen, b)) = get_varint(&header[a..]) else {
            return Err(self.corrupt("bad value length"));
        };
        let body = klen.saturating_add(vlen).saturating_add((a + b) as u64);
        if body > avail {
            return Err(self.corrupt("record runs past the end of its segment"));
        }
        self.fill(body as usize)?;
        let start = self.pos + a + b;
        self.key = (start, klen as usize);
        self.value = (start + klen as usize, vlen as usize);
        self.pos += body as usize;
        self.records += 1;
        Ok(true)
    }

    #[inline]
    fn key(&self) -> &[u8] {
        &self.buf[self.key.0..self.key.0 + self.key.1]
    }

    #[inline]
    fn value(&self) -> &[u8] {
        &self.buf[self.value.0..self.value.0 + self.value.1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_run(dir: &Path, parts: &[&[(&[u8], &[u8])]]) -> RunFile {
        let mut w = RunWriter::create(&dir.join("run"), parts.len()).unwrap();
        for (p, recs) in parts.iter().enumerate() {
            for (k, v) in recs.iter() {
                w.append(p, k, v).unwrap();
            }
        }
        w.finish().unwrap()
    }

    fn read_all(run: &RunFile, p: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut r = run.open_segment(p)?;
        let mut out = Vec::new();
        while r.advance()? {
            out.push((r.key().to_vec(), r.value().to_vec()));
        }
        Ok(out)
    }

    #[test]
    fn round_trip_with_empty_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![7u8; 300_000];
        let run = write_run(
            dir.path(),
            &[&[], &[(b"a", b"1"), (b"b", &big)], &[], &[(b"", b"")]],
        );
        assert_eq!(run.records(), 3);
        assert!(read_all(&run, 0).unwrap().is_empty());
        let p1 = read_all(&run, 1).unwrap();
        assert_eq!(p1[0], (b"a".to_vec(), b"1".to_vec()));
        assert_eq!(p1[1].1, big);
        assert!(read_all(&run, 2).unwrap().is_empty());
        assert_eq!(read_all(&run, 3).unwrap(), vec![(vec![], vec![])]);
        run.write_index().unwrap();
        assert_eq!(RunFile::read_index(&run.path).unwrap(), run);
    }

    #[test]
    fn flipped_byte_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let run = write_run(dir.path(), &[&[(b"key", b"value"), (b"key2", b"v")]]);
        let clean = std::fs::read(&run.path).unwrap();
        for i in 0..clean.len() {
            let mut bytes = clean.clone();
            bytes[i] ^= 0x5a;
            std::fs::write(&run.path, &bytes).unwrap();
            let err = read_all(&run, 0).unwrap_err();
            assert!(matches!(err, Error::Corrupt { .. }), "byte {i}: {err}");
        }
    }

    #[test]
    fn truncated_file_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let run = write_run(dir.path(), &[&[(b"key", b"value"), (b"key2", b"v")]]);
        let clean = std::fs::read(&run.path).unwrap();
        std::fs::write(&run.path, &clean[..clean.len() - 3]).unwrap();
        assert!(read_all(&run, 0).is_err());
    }
}
