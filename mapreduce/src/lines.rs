//! Runs of whole lines: how the line reader hands its buffer to a mapper, so that a mapper
//! which scans text (a word count) can scan a quarter megabyte in one pass instead of being
//! called, and finding each line's end, once per line.
//!
//! Why: at about 60 bytes a line, the call and the `memchr` per line cost more than the
//! words in it (profiled: about 190 instructions a line on Zipf text). A mapper that does
//! not override [`crate::Mapper::map_lines`] still gets one record per line, exactly as
//! before.

use crate::error::{Error, Result};
use crate::input::Record;

/// Whole lines of one file, back to back as they are in the file.
#[derive(Debug, Clone, Copy)]
pub struct Lines<'a> {
    /// The lines' bytes. Every line ends in `\n`, with any `\r` before it kept, except the
    /// last line of a file, which may have no `\n`. Never empty.
    pub bytes: &'a [u8],
    /// Byte offset of the first line in its file.
    pub offset: u64,
    /// The file the lines came from.
    pub file: &'a str,
}

impl<'a> Lines<'a> {
    /// The lines as records, as [`crate::Mapper::map`] gets them: each without its `\n` or
    /// `\r\n`, with its own offset.
    pub fn records(&self) -> impl Iterator<Item = Record<'a>> + 'a {
        let (bytes, base, file) = (self.bytes, self.offset, self.file);
        let mut at = 0usize;
        std::iter::from_fn(move || {
            if at >= bytes.len() {
                return None;
            }
            let rest = &bytes[at..];
            let (line, step) = match memchr::memchr(b'\n', rest) {
                Some(nl) => (&rest[..nl], nl + 1),
                None => (rest, rest.len()),
            };
            let rec = Record {
                value: strip_cr(line),
                offset: base + at as u64,
                file,
            };
            at += step;
            Some(rec)
        })
    }

    /// How many lines (records) there are.
    pub fn count(&self) -> u64 {
        let newlines = memchr::memchr_iter(b'\n', self.bytes).count() as u64;
        newlines + u64::from(self.bytes.last() != Some(&b'\n'))
    }
}

/// Drops one `\r` at the end of a line (a `\r\n` terminator).
#[inline]
pub(crate) fn strip_cr(line: &[u8]) -> &[u8] {
    match line.last() {
        Some(b'\r') => &line[..line.len() - 1],
        _ => line,
    }
}

/// How many bytes at the front of `data` are whole lines that a split reads: lines that
/// start less than `budget` bytes in (the split's end; at least 1). A line that starts
/// there but whose end is not in `data` yet is left for the next read, unless `eof` (the
/// file's last line, without `\n`). 0 means nothing can be handed over yet.
pub fn whole_lines_end(data: &[u8], budget: u64, eof: bool) -> usize {
    debug_assert!(budget > 0);
    let through = |found: Option<usize>, from: usize| match found {
        Some(nl) => from + nl + 1,
        None if eof => data.len(),
        None => 0,
    };
    match usize::try_from(budget) {
        // The split ends inside `data`: the last line to read is the one holding byte
        // `budget - 1`, which ends at the next '\n'.
        Ok(b) if b <= data.len() => through(memchr::memchr(b'\n', &data[b - 1..]), b - 1),
        _ => through(memchr::memrchr(b'\n', data), 0),
    }
}

/// Checks that no line of `run` (whole lines starting at file offset `offset`) is longer
/// than `max` bytes without its `\n`. Cheap in the usual case: a run no longer than `max`
/// cannot hold such a line.
pub fn check_line_lengths(
    run: &[u8],
    offset: u64,
    max: usize,
    file: &std::path::Path,
) -> Result<()> {
    if run.len() <= max {
        return Ok(());
    }
    let mut start = 0usize;
    for end in memchr::memchr_iter(b'\n', run).chain(std::iter::once(run.len())) {
        if end - start > max {
            return Err(Error::RecordTooLong {
                file: file.to_owned(),
                offset: offset + start as u64,
                limit_bytes: max,
            });
        }
        start = end + 1;
        if start >= run.len() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
        Lines {
            bytes,
            offset: 100,
            file: "f",
        }
        .records()
        .map(|r| (r.offset, r.value.to_vec()))
        .collect()
    }

    #[test]
    fn records_strip_terminators_and_keep_offsets() {
        assert_eq!(
            records(b"ab\r\n\ncd\nlast\r"),
            vec![
                (100, b"ab".to_vec()),
                (104, vec![]),
                (105, b"cd".to_vec()),
                (108, b"last".to_vec())
            ]
        );
        assert_eq!(records(b"\n"), vec![(100, vec![])]);
    }

    #[test]
    fn count_matches_the_records() {
        for bytes in [&b"a\nb\n"[..], b"a\nb", b"\n\n\n", b"x", b"\r\n"] {
            let lines = Lines {
                bytes,
                offset: 0,
                file: "",
            };
            assert_eq!(lines.count(), lines.records().count() as u64, "{bytes:?}");
        }
    }

    #[test]
    fn whole_lines_stop_at_the_split_end_or_the_last_newline() {
        let data = b"ab\ncd\nef";
        // The split's end falls inside: through the line holding its last byte.
        assert_eq!(whole_lines_end(data, 1, false), 3);
        assert_eq!(whole_lines_end(data, 3, false), 3);
        assert_eq!(whole_lines_end(data, 4, false), 6);
        // The split goes on: every whole line; the partial one waits for more bytes.
        assert_eq!(whole_lines_end(data, 100, false), 6);
        assert_eq!(whole_lines_end(b"partial", 100, false), 0);
        // At the end of the file, a last line without '\n' is whole.
        assert_eq!(whole_lines_end(b"partial", 100, true), 7);
        assert_eq!(whole_lines_end(data, 7, true), 8);
        assert_eq!(whole_lines_end(data, 7, false), 0);
        assert_eq!(whole_lines_end(b"", 5, true), 0);
    }

    #[test]
    fn long_lines_are_found_with_their_offset() {
        let path = std::path::Path::new("in");
        assert!(check_line_lengths(b"abc\nde\n", 0, 3, path).is_ok());
        assert!(check_line_lengths(b"abc\r\nde\n", 0, 4, path).is_ok());
        let err = check_line_lengths(b"abc\nde\nlong!", 10, 3, path).unwrap_err();
        assert!(
            matches!(err, Error::RecordTooLong { offset: 17, .. }),
            "{err}"
        );
        let err = check_line_lengths(b"abcd\n", 0, 3, path).unwrap_err();
        assert!(
            matches!(err, Error::RecordTooLong { offset: 0, .. }),
            "{err}"
        );
    }
}
