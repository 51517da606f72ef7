//! K-way merge of sorted sources, and multi-pass merging that keeps the number of open
//! runs (and so memory) bounded by the merge factor.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use crate::counters::TaskCounters;
use crate::error::Result;
use crate::job::{Accumulator, Combiner};
use crate::run::{RunFile, RunWriter, Segment, SegmentReader, SortedSource};
use crate::sort_buffer::key_prefix;

/// Merges sorted sources into one sorted stream. Equal keys come out in source order, so a
/// merge is stable and its output deterministic.
pub struct Merger<S: SortedSource> {
    sources: Vec<S>,
    heap: Vec<HeapEntry>,
    started: bool,
}

/// A source in the heap with its current key's first 8 bytes: most comparisons end on them
/// without reaching into the source's buffer or calling `memcmp`.
#[derive(Clone, Copy)]
struct HeapEntry {
    prefix: u64,
    source: usize,
}

impl<S: SortedSource> Merger<S> {
    /// A merge of `sources`.
    pub fn new(sources: Vec<S>) -> Merger<S> {
        Merger {
            sources,
            heap: Vec::new(),
            started: false,
        }
    }

    #[inline]
    fn less(&self, a: HeapEntry, b: HeapEntry) -> bool {
        if a.prefix != b.prefix {
            return a.prefix < b.prefix;
        }
        match self.sources[a.source]
            .key()
            .cmp(self.sources[b.source].key())
        {
            Ordering::Less => true,
            Ordering::Equal => a.source < b.source,
            Ordering::Greater => false,
        }
    }

    fn entry(&self, source: usize) -> HeapEntry {
        HeapEntry {
            prefix: key_prefix(self.sources[source].key()),
            source,
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let l = 2 * i + 1;
            if l >= n {
                return;
            }
            let r = l + 1;
            let c = if r < n && self.less(self.heap[r], self.heap[l]) {
                r
            } else {
                l
            };
            if !self.less(self.heap[c], self.heap[i]) {
                return;
            }
            self.heap.swap(c, i);
            i = c;
        }
    }

    fn start(&mut self) -> Result<()> {
        self.started = true;
        for i in 0..self.sources.len() {
            if self.sources[i].advance()? {
                let e = self.entry(i);
                self.heap.push(e);
            }
        }
        for i in (0..self.heap.len() / 2).rev() {
            self.sift_down(i);
        }
        Ok(())
    }
}

impl<S: SortedSource> SortedSource for Merger<S> {
    fn advance(&mut self) -> Result<bool> {
        if !self.started {
            self.start()?;
            return Ok(!self.heap.is_empty());
        }
        let Some(&top) = self.heap.first() else {
            return Ok(false);
        };
        if self.sources[top.source].advance()? {
            self.heap[0].prefix = key_prefix(self.sources[top.source].key());
        } else {
            let last = self.heap.pop().unwrap_or(top);
            if self.heap.is_empty() {
                return Ok(false);
            }
            self.heap[0] = last;
        }
        self.sift_down(0);
        Ok(true)
    }

    fn key(&self) -> &[u8] {
        self.sources[self.heap[0].source].key()
    }

    fn value(&self) -> &[u8] {
        self.sources[self.heap[0].source].value()
    }
}

/// Copies `source` into partition `p` of `writer`, folding equal keys with `combiner` if given.
/// Returns the number of records written.
pub fn write_sorted(
    source: &mut dyn SortedSource,
    writer: &mut RunWriter,
    p: usize,
    combiner: Option<&dyn Combiner>,
    counters: &mut TaskCounters,
) -> Result<u64> {
    let mut written = 0;
    let Some(combiner) = combiner else {
        while source.advance()? {
            writer.append(p, source.key(), source.value())?;
            written += 1;
        }
        return Ok(written);
    };
    let mut key: Vec<u8> = Vec::new();
    let mut acc = Accumulator::new();
    let mut have = false;
    while source.advance()? {
        counters.combine_input_records += 1;
        if have && source.key() == key.as_slice() {
            combiner.combine(&key, &mut acc, source.value());
            continue;
        }
        if have {
            writer.append(p, &key, &acc)?;
            written += 1;
        }
        key.clear();
        key.extend_from_slice(source.key());
        acc.clear();
        acc.extend_from_slice(source.value());
        have = true;
    }
    if have {
        writer.append(p, &key, &acc)?;
        written += 1;
    }
    counters.combine_output_records += written;
    Ok(written)
}

/// A segment of a run file, as an input to a merge.
#[derive(Debug, Clone)]
pub struct SegmentRef {
    /// The run file.
    pub path: PathBuf,
    /// The segment in it.
    pub segment: Segment,
    /// Whether the run file is an intermediate merge result to delete once merged again.
    pub temporary: bool,
    /// The segment's bytes when it is held in memory (a fetched map output); `path` then
    /// only names it, and `segment.offset` is 0.
    pub memory: Option<bytes::Bytes>,
}

impl SegmentRef {
    /// A segment of a run file.
    pub fn file(path: PathBuf, segment: Segment, temporary: bool) -> SegmentRef {
        SegmentRef {
            path,
            segment,
            temporary,
            memory: None,
        }
    }

    /// Opens a reader of this segment.
    pub fn open(&self) -> Result<SegmentReader> {
        match &self.memory {
            Some(data) => Ok(SegmentReader::from_memory(
                &self.path,
                data.clone(),
                self.segment,
            )),
            None => SegmentReader::open(&self.path, self.segment),
        }
    }
}

/// Merges segments in passes until at most `factor` remain, writing intermediate runs into
/// `dir`. Smallest segments are merged first, as Hadoop does, so each byte is rewritten as
/// few times as possible.
pub fn reduce_to_factor(
    mut segments: Vec<SegmentRef>,
    factor: usize,
    dir: &Path,
    name: &str,
    combiner: Option<&dyn Combiner>,
    counters: &mut TaskCounters,
) -> Result<Vec<SegmentRef>> {
    let mut pass = 0;
    while segments.len() > factor {
        segments.sort_by_key(|s| std::cmp::Reverse(s.segment.len));
        // Merge just enough that the next pass (or the final merge) fits in `factor`.
        let take = (segments.len() - factor + 1).min(factor).max(2);
        let batch: Vec<SegmentRef> = segments.split_off(segments.len() - take);
        let path = dir.join(format!("{name}.merge{pass}"));
        pass += 1;
        let readers = batch
            .iter()
            .map(SegmentRef::open)
            .collect::<Result<Vec<_>>>()?;
        let mut merger = Merger::new(readers);
        let mut writer = RunWriter::create(&path, 1)?;
        counters.spilled_records += write_sorted(&mut merger, &mut writer, 0, combiner, counters)?;
        let run: RunFile = writer.finish()?;
        remove_temporaries(&batch);
        segments.push(SegmentRef::file(run.path, run.segments[0], true));
    }
    Ok(segments)
}

/// Brings `segments` down to `factor` runs (see [`reduce_to_factor`]) and opens one merge
/// over them. Returns the merge and the segments it reads, to pass to
/// [`remove_temporaries`] once the merge is consumed.
pub fn open_merge(
    segments: Vec<SegmentRef>,
    factor: usize,
    dir: &Path,
    name: &str,
    combiner: Option<&dyn Combiner>,
    counters: &mut TaskCounters,
) -> Result<(Merger<SegmentReader>, Vec<SegmentRef>)> {
    let segments = reduce_to_factor(segments, factor, dir, name, combiner, counters)?;
    let readers = segments
        .iter()
        .map(SegmentRef::open)
        .collect::<Result<Vec<_>>>()?;
    Ok((Merger::new(readers), segments))
}

/// Deletes the intermediate merge runs among `segments` (best effort: the task's work
/// directory is removed at the end of the job anyway).
pub fn remove_temporaries(segments: &[SegmentRef]) {
    for s in segments.iter().filter(|s| s.temporary) {
        let _ = std::fs::remove_file(&s.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::RunWriter;

    struct VecSource {
        recs: Vec<(Vec<u8>, Vec<u8>)>,
        i: usize,
    }
    impl SortedSource for VecSource {
        fn advance(&mut self) -> Result<bool> {
            self.i += 1;
            Ok(self.i <= self.recs.len())
        }
        fn key(&self) -> &[u8] {
            &self.recs[self.i - 1].0
        }
        fn value(&self) -> &[u8] {
            &self.recs[self.i - 1].1
        }
    }

    fn src(keys: &[&str], tag: u8) -> VecSource {
        VecSource {
            recs: keys
                .iter()
                .map(|k| (k.as_bytes().to_vec(), vec![tag]))
                .collect(),
            i: 0,
        }
    }

    #[test]
    fn merge_is_sorted_and_stable() {
        let mut m = Merger::new(vec![
            src(&["a", "c", "e"], 0),
            src(&[], 1),
            src(&["a", "b", "e", "f"], 2),
        ]);
        let mut got = Vec::new();
        while m.advance().unwrap() {
            got.push((String::from_utf8(m.key().to_vec()).unwrap(), m.value()[0]));
        }
        let want: Vec<(String, u8)> = [
            ("a", 0),
            ("a", 2),
            ("b", 2),
            ("c", 0),
            ("e", 0),
            ("e", 2),
            ("f", 2),
        ]
        .iter()
        .map(|(k, t)| (k.to_string(), *t))
        .collect();
        assert_eq!(got, want);
        assert!(!m.advance().unwrap());
    }

    /// Keys that share their first 8 bytes, or differ only by trailing zero bytes, are
    /// ordered by their whole bytes (the heap's 8-byte prefixes are equal for them).
    #[test]
    fn merge_orders_keys_with_equal_prefixes_bytewise() {
        let keys: [&[u8]; 8] = [
            b"",
            b"\0",
            b"abcdefgh",
            b"abcdefgh\0",
            b"abcdefghA",
            b"abcdefghB",
            b"abcdefgi",
            b"ab",
        ];
        let mut sorted: Vec<&[u8]> = keys.to_vec();
        sorted.sort();
        let sources: Vec<VecSource> = (0..3u8)
            .map(|s| VecSource {
                recs: sorted
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % 3 != usize::from(s))
                    .map(|(_, k)| (k.to_vec(), vec![s]))
                    .collect(),
                i: 0,
            })
            .collect();
        let mut m = Merger::new(sources);
        let mut got = Vec::new();
        while m.advance().unwrap() {
            got.push((m.key().to_vec(), m.value()[0]));
        }
        let mut want = Vec::new();
        for (i, k) in sorted.iter().enumerate() {
            for s in (0..3u8).filter(|&s| i % 3 != usize::from(s)) {
                want.push((k.to_vec(), s));
            }
        }
        assert_eq!(got, want);
    }

    #[test]
    fn multi_pass_merge_keeps_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut segs = Vec::new();
        for i in 0..23u32 {
            let mut w = RunWriter::create(&dir.path().join(format!("r{i}")), 1).unwrap();
            for j in 0..50u32 {
                let k = format!("{:05}", j * 23 + i);
                w.append(0, k.as_bytes(), b"v").unwrap();
            }
            let run = w.finish().unwrap();
            segs.push(SegmentRef::file(run.path, run.segments[0], false));
        }
        let mut c = TaskCounters::default();
        let segs = reduce_to_factor(segs, 4, dir.path(), "t", None, &mut c).unwrap();
        assert!(segs.len() <= 4);
        let readers = segs
            .iter()
            .map(SegmentRef::open)
            .collect::<Result<Vec<_>>>()
            .unwrap();
        let mut m = Merger::new(readers);
        let mut n = 0u32;
        while m.advance().unwrap() {
            assert_eq!(m.key(), format!("{n:05}").as_bytes());
            n += 1;
        }
        assert_eq!(n, 23 * 50);
    }
}
