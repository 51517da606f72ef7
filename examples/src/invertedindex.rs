//! Inverted index: for every word, the sorted list of input files it occurs in.
//! Output lines are `word\tfile1,file2,...` with file names relative to the input directory.

use mapreduce::{
    Accumulator, Combiner, Job, MapEmitter, Mapper, Record, ReduceEmitter, Reducer, Result,
    Settings, ValueSource,
};

use crate::tokenize::for_each_token;

/// Separates file names inside a map output value (file names never contain NUL).
const SEP: u8 = 0;

/// Emits `(word, file)` for every word of a line.
#[derive(Debug, Clone, Copy, Default)]
pub struct IndexMapper;

impl Mapper for IndexMapper {
    fn map(&mut self, record: Record<'_>, out: &mut dyn MapEmitter) -> Result<()> {
        let file = record.file.as_bytes();
        for_each_token(record.value, |w| out.emit(w, file));
        Ok(())
    }
}

/// Unions two NUL-separated sorted sets of file names into `acc`.
fn union_into(acc: &mut Accumulator, value: &[u8]) {
    if acc.as_slice() == value {
        return;
    }
    let mut names: Vec<&[u8]> = acc
        .split(|&b| b == SEP)
        .chain(value.split(|&b| b == SEP))
        .collect();
    names.sort_unstable();
    names.dedup();
    let joined = names.join(&SEP);
    acc.clear();
    acc.extend_from_slice(&joined);
}

/// Unions the file sets of one word.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnionCombiner;

impl Combiner for UnionCombiner {
    fn combine(&self, _key: &[u8], acc: &mut Accumulator, value: &[u8]) {
        union_into(acc, value);
    }
}

/// Writes each word with its sorted, comma-separated file list.
#[derive(Debug, Clone, Copy, Default)]
pub struct IndexReducer;

impl Reducer for IndexReducer {
    fn reduce(
        &mut self,
        key: &[u8],
        values: &mut dyn ValueSource,
        out: &mut dyn ReduceEmitter,
    ) -> Result<()> {
        let mut acc: Option<Accumulator> = None;
        while let Some(v) = values.next_value() {
            match acc.as_mut() {
                Some(a) => union_into(a, v),
                None => acc = Some(Accumulator::from_slice(v)),
            }
        }
        let mut list = acc.unwrap_or_default();
        for b in &mut list {
            if *b == SEP {
                *b = b',';
            }
        }
        out.emit(key, &list);
        Ok(())
    }
}

/// The invertedindex job.
pub fn job(settings: Settings) -> Job {
    Job::new("invertedindex", IndexMapper)
        .combiner(UnionCombiner)
        .reducer(IndexReducer)
        .settings(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_is_sorted_and_deduplicated() {
        let mut acc = Accumulator::from_slice(b"b\0d");
        union_into(&mut acc, b"a\0d\0e");
        assert_eq!(acc.as_slice(), b"a\0b\0d\0e");
        union_into(&mut acc, b"b");
        assert_eq!(acc.as_slice(), b"a\0b\0d\0e");
    }
}
