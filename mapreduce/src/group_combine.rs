//! Hadoop's reducer-shaped combiner on the map side: a sorted partition of a spill is run
//! through a fresh [`Reducer`] (a Streaming `-combiner` command), and what it emits is
//! written to the spill in its place.
//!
//! The engine's own [`crate::Combiner`] is a fold the hash buffer applies as records arrive;
//! a Streaming combiner is a program reading sorted `key<TAB>value` lines, so it can only run
//! over sorted data. Its output must keep the key order of its input (a run file is sorted):
//! that is checked while writing, and a combiner that breaks it fails the attempt with an
//! error saying so, where Hadoop would silently produce wrongly grouped output.

use crate::counters::{Counters, TaskCounters};
use crate::error::{Error, Result};
use crate::job::{ReducerFactory, ValueSource};
use crate::output::ReduceEmitter;
use crate::run::RunWriter;

/// Runs `records` (one partition, sorted by key) through a combiner made by `factory`,
/// appending its output to partition `partition` of `writer`; the user counters it reports
/// are added to `user` (Hadoop counts a combiner's counters with its task's).
pub fn combine_sorted<'a>(
    factory: &ReducerFactory,
    records: &mut dyn Iterator<Item = (&'a [u8], &'a [u8])>,
    writer: &mut RunWriter,
    partition: usize,
    counters: &mut TaskCounters,
    user: &mut Counters,
) -> Result<()> {
    let mut combiner = factory();
    let mut input = records.peekable();
    let mut out = SpillEmitter {
        writer,
        partition,
        last_key: Vec::new(),
        records: 0,
        error: None,
        counters: Counters::default(),
    };
    while let Some(&(key, _)) = input.peek() {
        let mut group = Group {
            input: &mut input,
            key,
            values: 0,
        };
        combiner.reduce(key, &mut group, &mut out)?;
        while group.next_value().is_some() {}
        counters.combine_input_records += group.values;
        out.take_error()?;
    }
    combiner.cleanup(&mut out)?;
    out.take_error()?;
    counters.combine_output_records += out.records;
    user.merge(&out.counters);
    Ok(())
}

/// The values of one key, straight off the sorted records.
struct Group<'a, 'i, I: Iterator<Item = (&'a [u8], &'a [u8])>> {
    input: &'i mut std::iter::Peekable<I>,
    key: &'a [u8],
    values: u64,
}

impl<'a, I: Iterator<Item = (&'a [u8], &'a [u8])>> ValueSource for Group<'a, '_, I> {
    fn next_value(&mut self) -> Option<&[u8]> {
        match self.input.peek() {
            Some(&(k, v)) if k == self.key => {
                self.input.next();
                self.values += 1;
                Some(v)
            }
            _ => None,
        }
    }
}

/// Writes a combiner's output into the spill, checking that keys stay in order.
struct SpillEmitter<'w> {
    writer: &'w mut RunWriter,
    partition: usize,
    last_key: Vec<u8>,
    records: u64,
    error: Option<Error>,
    /// The combiner's user counters, handed to the caller at the end.
    counters: Counters,
}

impl SpillEmitter<'_> {
    fn take_error(&mut self) -> Result<()> {
        self.error.take().map_or(Ok(()), Err)
    }
}

impl ReduceEmitter for SpillEmitter<'_> {
    fn emit(&mut self, key: &[u8], value: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if self.records > 0 && key < &self.last_key[..] {
            self.error = Some(Error::user(format!(
                "the combiner wrote key {:?} after {:?}: a combiner must keep the sorted \
                 order of its input keys",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(&self.last_key)
            )));
            return;
        }
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.records += 1;
        if let Err(e) = self.writer.append(self.partition, key, value) {
            self.error = Some(e);
        }
    }

    fn counters(&mut self) -> &mut Counters {
        &mut self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Reducer;
    use crate::run::SortedSource;
    use std::sync::Arc;

    /// Emits each key once with its number of values; or, reversed, breaks the order.
    #[derive(Clone)]
    struct Count {
        reverse: bool,
    }
    impl Reducer for Count {
        fn reduce(
            &mut self,
            key: &[u8],
            values: &mut dyn ValueSource,
            out: &mut dyn ReduceEmitter,
        ) -> Result<()> {
            let mut n = 0;
            while values.next_value().is_some() {
                n += 1;
            }
            let key: Vec<u8> = if self.reverse {
                vec![255 - key[0]]
            } else {
                key.to_vec()
            };
            out.emit(&key, n.to_string().as_bytes());
            Ok(())
        }
    }

    fn run(reverse: bool) -> (Result<()>, TaskCounters, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RunWriter::create(&dir.path().join("r"), 1).unwrap();
        let records: Vec<(&[u8], &[u8])> = vec![
            (b"a", b"1"),
            (b"a", b"1"),
            (b"b", b"1"),
            (b"c", b"1"),
            (b"c", b"1"),
        ];
        let factory: ReducerFactory = Arc::new(move || Box::new(Count { reverse }));
        let mut c = TaskCounters::default();
        let r = combine_sorted(
            &factory,
            &mut records.into_iter(),
            &mut w,
            0,
            &mut c,
            &mut Counters::default(),
        );
        if r.is_ok() {
            let run = w.finish().unwrap();
            let mut s = run.open_segment(0).unwrap();
            let mut got = Vec::new();
            while s.advance().unwrap() {
                got.push(format!(
                    "{}={}",
                    String::from_utf8_lossy(s.key()),
                    String::from_utf8_lossy(s.value())
                ));
            }
            assert_eq!(got, ["a=2", "b=1", "c=2"]);
        }
        (r, c, dir)
    }

    #[test]
    fn groups_are_combined_and_counted() {
        let (r, c, _dir) = run(false);
        r.unwrap();
        assert_eq!((c.combine_input_records, c.combine_output_records), (5, 3));
    }

    #[test]
    fn a_combiner_that_breaks_key_order_fails() {
        let (r, _, _dir) = run(true);
        let e = r.unwrap_err().to_string();
        assert!(e.contains("must keep the sorted order"), "{e}");
    }
}
