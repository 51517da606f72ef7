//! Cutting a Streaming line into key and value, and the key-field partitioner.
//!
//! Hadoop Streaming cuts each output line of a mapper at the Nth occurrence of a separator
//! (`stream.map.output.field.separator`, default TAB; N is
//! `stream.num.map.output.key.fields`, default 1): the key is what comes before it, the value
//! what comes after. A line with fewer separators is all key, with an empty value.
//!
//! For a secondary sort the key holds several fields (sorted bytewise as a whole) while
//! `KeyFieldBasedPartitioner` sends keys to reducers by some of those fields only
//! (`-k1,1`: the first), so all records of a primary key meet in one reducer, sorted by the
//! rest of the key.

use crate::error::{Error, Result};
use crate::job::Partitioner;

/// Where a line is cut into key and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldCut {
    separator: Vec<u8>,
    key_fields: usize,
}

impl FieldCut {
    /// Cuts after `key_fields` (at least 1) fields separated by `separator` (not empty).
    pub fn new(separator: &str, key_fields: u64) -> Result<FieldCut> {
        if separator.is_empty() {
            return Err(Error::BadSetting(
                "a Streaming field separator must not be empty".into(),
            ));
        }
        if key_fields == 0 || key_fields > 1000 {
            return Err(Error::BadSetting(format!(
                "the number of key fields must be 1 to 1000, not {key_fields}"
            )));
        }
        Ok(FieldCut {
            separator: separator.as_bytes().to_vec(),
            key_fields: key_fields as usize,
        })
    }

    /// The separator.
    pub fn separator(&self) -> &[u8] {
        &self.separator
    }

    /// Splits `line` into (key, value).
    #[inline]
    pub fn cut<'a>(&self, line: &'a [u8]) -> (&'a [u8], &'a [u8]) {
        match self.position(line) {
            Some(at) => (&line[..at], &line[at + self.separator.len()..]),
            None => (line, &[]),
        }
    }

    /// Offset of the separator that ends the key, if the line has that many.
    #[inline]
    fn position(&self, line: &[u8]) -> Option<usize> {
        if let [single] = self.separator[..] {
            return memchr::memchr_iter(single, line).nth(self.key_fields - 1);
        }
        memchr::memmem::find_iter(line, &self.separator).nth(self.key_fields - 1)
    }
}

/// `KeyFieldBasedPartitioner` with `-kSTART[,END]` (fields numbered from 1): partitions by
/// the CRC32 of the bytes from the start of field START to the end of field END (or of the
/// key), as [`crate::HashPartitioner`] hashes a whole key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFieldPartitioner {
    separator: Vec<u8>,
    first: usize,
    last: Option<usize>,
}

impl KeyFieldPartitioner {
    /// Parses `mapreduce.partition.keypartitioner.options` (e.g. `-k1,1`) with the key field
    /// separator (`mapreduce.map.output.key.field.separator`).
    pub fn parse(options: &str, separator: &str) -> Result<KeyFieldPartitioner> {
        let bad = |why: &str| {
            Error::BadSetting(format!(
                "-D mapreduce.partition.keypartitioner.options={options}: {why}"
            ))
        };
        if separator.is_empty() {
            return Err(bad("the key field separator must not be empty"));
        }
        let spec = options
            .trim()
            .strip_prefix("-k")
            .ok_or_else(|| bad("expected -kSTART[,END], e.g. -k1,1"))?;
        let field = |s: &str| -> Result<usize> {
            if s.contains('.') || s.ends_with(|c: char| c.is_ascii_alphabetic()) {
                return Err(bad(
                    "character positions and ordering flags are not supported, only field numbers",
                ));
            }
            match s.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(bad("field numbers start at 1")),
            }
        };
        let (first, last) = match spec.split_once(',') {
            Some((a, b)) => (field(a)?, Some(field(b)?)),
            None => (field(spec)?, None),
        };
        if last.is_some_and(|l| l < first) {
            return Err(bad("END is before START"));
        }
        Ok(KeyFieldPartitioner {
            separator: separator.as_bytes().to_vec(),
            first,
            last,
        })
    }

    /// The bytes of `key` the partition depends on.
    pub fn selected<'a>(&self, key: &'a [u8]) -> &'a [u8] {
        let sep = &self.separator[..];
        let mut starts = std::iter::once(0).chain(
            memchr::memmem::find_iter(key, sep)
                .map(|i| i + sep.len())
                .take(self.last.unwrap_or(usize::MAX).saturating_sub(1) + 1),
        );
        let Some(begin) = starts.nth(self.first - 1) else {
            return &[];
        };
        let Some(last) = self.last else {
            return &key[begin..];
        };
        // The end of field `last` is the separator that starts field `last + 1`.
        let end = starts
            .nth(last - self.first)
            .map_or(key.len(), |next| next - sep.len());
        &key[begin..end]
    }
}

impl Partitioner for KeyFieldPartitioner {
    fn partition(&self, key: &[u8], partitions: u32) -> u32 {
        crc32fast::hash(self.selected(key)) % partitions.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_after_the_key_fields() {
        let one = FieldCut::new("\t", 1).unwrap();
        assert_eq!(one.cut(b"a\tb\tc"), (&b"a"[..], &b"b\tc"[..]));
        assert_eq!(one.cut(b"no tab"), (&b"no tab"[..], &b""[..]));
        assert_eq!(one.cut(b"\tv"), (&b""[..], &b"v"[..]));
        let two = FieldCut::new("\t", 2).unwrap();
        assert_eq!(two.cut(b"a\tb\tc"), (&b"a\tb"[..], &b"c"[..]));
        assert_eq!(two.cut(b"a\tb"), (&b"a\tb"[..], &b""[..]));
        let multi = FieldCut::new("::", 1).unwrap();
        assert_eq!(multi.cut(b"k::v::w"), (&b"k"[..], &b"v::w"[..]));
        assert!(FieldCut::new("", 1).is_err());
        assert!(FieldCut::new("\t", 0).is_err());
    }

    #[test]
    fn key_field_partitioner_selects_fields() {
        let p = KeyFieldPartitioner::parse("-k1,1", "\t").unwrap();
        assert_eq!(p.selected(b"a\tb\tc"), b"a");
        assert_eq!(p.selected(b"abc"), b"abc");
        let p = KeyFieldPartitioner::parse("-k2,3", ".").unwrap();
        assert_eq!(p.selected(b"a.b.c.d"), b"b.c");
        assert_eq!(p.selected(b"a.b"), b"b");
        assert_eq!(p.selected(b"a"), b"");
        let p = KeyFieldPartitioner::parse("-k2", "\t").unwrap();
        assert_eq!(p.selected(b"a\tb\tc"), b"b\tc");
        // Checks the secondary-sort contract: equal first fields share a partition.
        let p = KeyFieldPartitioner::parse("-k1,1", "\t").unwrap();
        for second in ["1", "zz", "", "a\tb"] {
            let key = format!("user7\t{second}");
            assert_eq!(p.partition(key.as_bytes(), 13), p.partition(b"user7", 13));
        }
    }

    #[test]
    fn bad_partitioner_options_are_named() {
        for bad in ["k1,1", "-k0,1", "-k2,1", "-k1.2,1", "-k1n", "-kx"] {
            let e = KeyFieldPartitioner::parse(bad, "\t")
                .unwrap_err()
                .to_string();
            assert!(e.contains("keypartitioner.options"), "{bad}: {e}");
        }
    }
}
