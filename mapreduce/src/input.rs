//! Input: listing input files and reading the records of a split (splits are cut by the
//! `split` module).
//!
//! The rule for every format: a record belongs to the split in which it starts. A line
//! reader for a split `[start, end)` skips the partial line it starts in (unless
//! `start == 0`) and reads past `end` to finish the last line that starts before `end`, so
//! every line is read exactly once however the file is cut.

use std::io::{Read, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::compression::Codec;
use crate::error::{Error, IoContext, Result};
use crate::fs::{FileSystem, LocalFs};
use crate::lines::{check_line_lengths, whole_lines_end, Lines};

/// How a job's input is cut and read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputFormat {
    /// Lines ending in `\n` (a `\r` before it is dropped); any bytes, no UTF-8 requirement.
    Lines,
    /// Records of exactly this many bytes (e.g. 100 for the Sort Benchmark format).
    FixedLength(usize),
    /// No files: `rows` generated records numbered `0..rows`, cut into `maps` splits.
    Generated {
        /// Number of rows.
        rows: u64,
        /// Number of map tasks.
        maps: u32,
    },
}

/// One input record handed to a mapper.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The record's bytes (a line without its terminator, or a fixed-length record).
    pub value: &'a [u8],
    /// Byte offset of the record in its file (for generated input: the row number).
    pub offset: u64,
    /// The file the record came from (empty for generated input).
    pub file: &'a str,
}

/// A unit of map work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Split {
    /// A byte range of a file.
    File {
        /// The file.
        path: PathBuf,
        /// Name shown to mappers: the path relative to the input root.
        name: String,
        /// First byte.
        start: u64,
        /// Number of bytes.
        len: u64,
    },
    /// A range of generated rows.
    Rows {
        /// First row.
        start: u64,
        /// Number of rows.
        count: u64,
    },
}

impl Split {
    /// Bytes (or rows) this split covers, for progress.
    pub fn size(&self) -> u64 {
        match self {
            Split::File { len, .. } => *len,
            Split::Rows { count, .. } => *count,
        }
    }
}

/// Lists the data files under each local input path; see [`FileSystem::list_input_files`].
pub fn list_input_files(inputs: &[PathBuf]) -> Result<Vec<(PathBuf, String)>> {
    Ok(LocalFs
        .list_input_files(inputs)?
        .into_iter()
        .map(|f| (f.path, f.name))
        .collect())
}

/// Reads buffer size of the record readers.
const READ_CHUNK_BYTES: usize = 256 * 1024;

/// Where a record reader delivers what it reads.
pub trait RecordSink {
    /// One record.
    fn record(&mut self, rec: Record<'_>) -> Result<()>;
    /// A run of whole lines (line input only); by default, one [`Self::record`] per line.
    fn lines(&mut self, lines: Lines<'_>) -> Result<()> {
        lines.records().try_for_each(|r| self.record(r))
    }
}

/// A closure as a sink of single records.
struct EachRecord<'f>(&'f mut dyn FnMut(Record<'_>) -> Result<()>);

impl RecordSink for EachRecord<'_> {
    fn record(&mut self, rec: Record<'_>) -> Result<()> {
        (self.0)(rec)
    }
}

/// Calls `f` for every record of `split`, returning the number of bytes read.
pub fn read_split(
    fs: &dyn FileSystem,
    format: &InputFormat,
    split: &Split,
    max_record_bytes: usize,
    f: &mut dyn FnMut(Record<'_>) -> Result<()>,
) -> Result<u64> {
    read_split_into(fs, format, split, max_record_bytes, &mut EachRecord(f))
}

/// Reads every record of `split` into `sink` (lines as runs of whole lines), returning the
/// number of bytes read.
pub fn read_split_into(
    fs: &dyn FileSystem,
    format: &InputFormat,
    split: &Split,
    max_record_bytes: usize,
    sink: &mut dyn RecordSink,
) -> Result<u64> {
    match (format, split) {
        (_, Split::Rows { start, count }) => {
            for row in *start..*start + *count {
                sink.record(Record {
                    value: &[],
                    offset: row,
                    file: "",
                })?;
            }
            Ok(0)
        }
        (
            format,
            Split::File {
                path,
                name,
                start,
                len,
            },
        ) => {
            let piece = Piece {
                path,
                name,
                start: *start,
                len: *len,
            };
            read_file_split(fs, format, piece, max_record_bytes, sink)
        }
    }
}

/// A byte range of one file, as a reader sees it.
#[derive(Debug, Clone, Copy)]
struct Piece<'a> {
    path: &'a Path,
    name: &'a str,
    start: u64,
    len: u64,
}

/// Reads the records of a file split: a compressed file (always one whole-file split)
/// through its decoder, any other file from its byte range.
fn read_file_split(
    fs: &dyn FileSystem,
    format: &InputFormat,
    piece: Piece<'_>,
    max_record_bytes: usize,
    f: &mut dyn RecordSink,
) -> Result<u64> {
    let mut file = fs.open(piece.path)?;
    if let Some(codec) = Codec::of_path(piece.path) {
        // Offsets are in the decompressed stream, which is read to its end.
        let whole = Piece {
            start: 0,
            len: u64::MAX,
            ..piece
        };
        let decoded = codec.decoder(file);
        return match format {
            InputFormat::FixedLength(n) => read_fixed(decoded, whole, *n, true, f),
            _ => read_lines(decoded, whole, max_record_bytes, f),
        };
    }
    match format {
        InputFormat::FixedLength(n) => {
            file.seek(SeekFrom::Start(piece.start))
                .ctx("seeking in", piece.path)?;
            read_fixed(file, piece, *n, false, f)
        }
        _ => {
            // Start one byte early: if that byte is '\n', a line starts exactly at `start`.
            file.seek(SeekFrom::Start(piece.start.saturating_sub(1)))
                .ctx("seeking in", piece.path)?;
            read_lines(file, piece, max_record_bytes, f)
        }
    }
}

/// Reads the lines that start in `[start, start + len)` from `file`, positioned one byte
/// before `start` (at 0 when `start` is 0), handing them to `sink` a run of whole lines at
/// a time.
fn read_lines(
    mut file: impl Read,
    piece: Piece<'_>,
    max_record_bytes: usize,
    sink: &mut dyn RecordSink,
) -> Result<u64> {
    let Piece {
        path,
        name,
        start,
        len,
    } = piece;
    let end = start.saturating_add(len);
    let mut pos = start.saturating_sub(1);
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut lo = 0; // first unconsumed byte in buf
    let mut hi = 0; // end of valid bytes in buf
    let mut eof = false;
    let mut skipping = start > 0;
    let mut bytes_read = 0u64;
    loop {
        if skipping {
            // The partial line belongs to the previous split: drop it as we go.
            if let Some(nl) = memchr::memchr(b'\n', &buf[lo..hi]) {
                lo += nl + 1;
                pos += nl as u64 + 1;
                skipping = false;
                continue;
            }
            pos += (hi - lo) as u64;
            lo = hi;
        } else {
            if pos >= end {
                break;
            }
            let run = whole_lines_end(&buf[lo..hi], end - pos, eof);
            if run > 0 {
                let bytes = &buf[lo..lo + run];
                check_line_lengths(bytes, pos, max_record_bytes, path)?;
                sink.lines(Lines {
                    bytes,
                    offset: pos,
                    file: name,
                })?;
                lo += run;
                pos += run as u64;
                continue;
            }
            if hi - lo > max_record_bytes {
                return Err(Error::RecordTooLong {
                    file: path.to_owned(),
                    offset: pos,
                    limit_bytes: max_record_bytes,
                });
            }
        }
        if eof {
            break;
        }
        // Make room: move the partial line to the front, grow if it fills the buffer.
        buf.copy_within(lo..hi, 0);
        hi -= lo;
        lo = 0;
        if hi == buf.len() {
            buf.resize((buf.len() * 2).min(max_record_bytes + 2).max(hi + 1), 0);
        }
        let n = file.read(&mut buf[hi..]).ctx("reading", path)?;
        bytes_read += n as u64;
        hi += n;
        eof = n == 0;
    }
    Ok(bytes_read)
}

/// Reads fixed-length records from `[start, start + len)` of `file`, positioned at `start`
/// (a record boundary); with `to_eof`, the end of the file ends the range early (a
/// decompressed stream, whose length is not known in advance).
fn read_fixed(
    mut file: impl Read,
    piece: Piece<'_>,
    record_bytes: usize,
    to_eof: bool,
    f: &mut dyn RecordSink,
) -> Result<u64> {
    let Piece {
        path,
        name,
        start,
        len,
    } = piece;
    let per_read = (READ_CHUNK_BYTES / record_bytes).max(1) * record_bytes;
    let mut buf = vec![0u8; per_read];
    let mut done = 0u64;
    while done < len {
        let want = per_read.min((len - done) as usize);
        let mut got = 0;
        while got < want {
            let n = file.read(&mut buf[got..want]).ctx("reading", path)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        let whole = got / record_bytes * record_bytes;
        if to_eof && got == 0 {
            break;
        }
        for (i, rec) in buf[..whole].chunks_exact(record_bytes).enumerate() {
            f.record(Record {
                value: rec,
                offset: start + done + (i * record_bytes) as u64,
                file: name,
            })?;
        }
        if whole < want && !(to_eof && whole == got) {
            return Err(Error::BadRecord {
                file: path.to_owned(),
                offset: start + done + whole as u64,
                reason: format!(
                    "truncated record: {} bytes where {record_bytes} were expected",
                    if to_eof {
                        got - whole
                    } else {
                        (got - whole).max(want - whole)
                    }
                ),
            });
        }
        done += got as u64;
        if got < want {
            break; // the end of a decompressed stream, at a record boundary
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lines::strip_cr;
    use crate::split::compute_splits;

    fn lines_of(content: &[u8], split_size: u64) -> Vec<(u64, Vec<u8>)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, content).unwrap();
        let splits = compute_splits(&LocalFs, &InputFormat::Lines, &[path], split_size).unwrap();
        let mut out = Vec::new();
        for s in &splits {
            read_split(&LocalFs, &InputFormat::Lines, s, 1 << 20, &mut |r| {
                out.push((r.offset, r.value.to_vec()));
                Ok(())
            })
            .unwrap();
        }
        out
    }

    fn reference_lines(content: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut pos = 0;
        for piece in content.split_inclusive(|&b| b == b'\n') {
            let line = piece.strip_suffix(b"\n").unwrap_or(piece);
            out.push((pos as u64, strip_cr(line).to_vec()));
            pos += piece.len();
        }
        out
    }

    #[test]
    fn every_split_size_reads_each_line_once() {
        let content: &[u8] = b"alpha\r\n\n\nbeta gamma\n\xff\xfe bytes\nlast-without-newline";
        let want = reference_lines(content);
        for split in 1..=content.len() as u64 + 1 {
            assert_eq!(lines_of(content, split), want, "split size {split}");
        }
    }

    #[test]
    fn trailing_newline_adds_no_empty_record() {
        assert_eq!(
            lines_of(b"a\nb\n", 1),
            vec![(0, b"a".to_vec()), (2, b"b".to_vec())]
        );
        assert!(lines_of(b"", 3).is_empty());
        assert_eq!(lines_of(b"\n", 1), vec![(0, vec![])]);
    }

    #[test]
    fn long_line_is_an_error_naming_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut content = b"short\n".to_vec();
        content.extend(std::iter::repeat_n(b'x', 5000));
        content.extend_from_slice(b"\nafter\n");
        std::fs::write(&path, &content).unwrap();
        let split = &compute_splits(&LocalFs, &InputFormat::Lines, &[path], 1 << 20).unwrap()[0];
        let err =
            read_split(&LocalFs, &InputFormat::Lines, split, 1000, &mut |_| Ok(())).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, Error::RecordTooLong { offset: 6, .. }),
            "{msg}"
        );
        assert!(
            msg.contains("f: the record at byte offset 6 is longer"),
            "{msg}"
        );
        assert!(msg.contains("--max-record-size"), "{msg}");
    }

    #[test]
    fn fixed_records_split_on_boundaries_and_truncation_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let content: Vec<u8> = (0..1000u32).map(|i| (i / 10) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let fmt = InputFormat::FixedLength(10);
        let splits = compute_splits(&LocalFs, &fmt, std::slice::from_ref(&path), 35).unwrap();
        let mut recs = Vec::new();
        for s in &splits {
            read_split(&LocalFs, &fmt, s, 100, &mut |r| {
                recs.push(r.value.to_vec());
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(recs.len(), 100);
        assert!(recs
            .iter()
            .enumerate()
            .all(|(i, r)| r == &vec![i as u8; 10]));
        std::fs::write(&path, &content[..995]).unwrap();
        let splits = compute_splits(&LocalFs, &fmt, &[path], 1000).unwrap();
        let err = read_split(&LocalFs, &fmt, &splits[0], 100, &mut |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("truncated record"), "{err}");
    }

    // Checks G7: compressed input is read through its decoder (never as raw bytes), and a
    // corrupt file is an error naming it.
    #[test]
    fn compressed_files_read_like_their_plain_text() {
        let dir = tempfile::tempdir().unwrap();
        let content: &[u8] = b"alpha\r\nbeta gamma\n\xff bytes\nlast";
        let fixed: Vec<u8> = (0..50u8).flat_map(|i| [i; 10]).collect();
        for codec in [Codec::Gzip, Codec::Bzip2, Codec::Zstd, Codec::Deflate] {
            let path = dir.path().join(format!("f.{}", codec.extension()));
            let packed = crate::compression::compress_bytes(codec, content).unwrap();
            std::fs::write(&path, &packed).unwrap();
            let splits = compute_splits(
                &LocalFs,
                &InputFormat::Lines,
                std::slice::from_ref(&path),
                5,
            )
            .unwrap();
            assert_eq!(splits.len(), 1, "{codec:?}");
            let mut got = Vec::new();
            read_split(&LocalFs, &InputFormat::Lines, &splits[0], 100, &mut |r| {
                got.push((r.offset, r.value.to_vec()));
                Ok(())
            })
            .unwrap();
            assert_eq!(got, reference_lines(content), "{codec:?}");

            let packed = crate::compression::compress_bytes(codec, &fixed).unwrap();
            std::fs::write(&path, &packed).unwrap();
            let fmt = InputFormat::FixedLength(10);
            let split = &compute_splits(&LocalFs, &fmt, std::slice::from_ref(&path), 5).unwrap()[0];
            let mut recs = 0u8;
            read_split(&LocalFs, &fmt, split, 100, &mut |r| {
                assert_eq!(r.value, [recs; 10]);
                recs += 1;
                Ok(())
            })
            .unwrap();
            assert_eq!(recs, 50, "{codec:?}");

            std::fs::write(&path, &packed[..packed.len() - 4]).unwrap();
            let err = read_split(&LocalFs, &fmt, split, 100, &mut |_| Ok(())).unwrap_err();
            assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
        }
    }

    #[test]
    fn missing_and_empty_inputs_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = list_input_files(&[dir.path().join("nope")]).unwrap_err();
        assert!(err.to_string().contains("no such file"), "{err}");
        let err = list_input_files(&[dir.path().to_owned()]).unwrap_err();
        assert!(err.to_string().contains("no input files"), "{err}");
        std::fs::write(dir.path().join("_SUCCESS"), b"").unwrap();
        assert!(list_input_files(&[dir.path().to_owned()]).is_err());
    }
}
