//! WordCount: how often each word occurs. Words are split as Hadoop's WordCount splits
//! them (see [`crate::tokenize`]), compared byte for byte, case-sensitive.

use mapreduce::codec::u64_value;
use mapreduce::{Job, Lines, MapEmitter, Mapper, Record, Result, Settings};

use crate::sum::{SumCombiner, SumReducer};
use crate::tokenize::{for_each_token, for_each_token_at};

/// Words per [`MapEmitter::emit_keys`] call: their offsets stay in the L1 cache.
const WORD_BATCH: usize = 512;

/// Emits `(word, 1)` for every word of a line.
#[derive(Debug, Clone, Copy, Default)]
pub struct WordCountMapper;

impl Mapper for WordCountMapper {
    #[inline]
    fn map(&mut self, record: Record<'_>, out: &mut dyn MapEmitter) -> Result<()> {
        let one = u64_value(1);
        for_each_token(record.value, |w| out.emit(w, &one));
        Ok(())
    }

    /// A whole run of lines in one pass: '\n' and '\r' are delimiters, so the words are
    /// those of each line, and no line's end is searched for. Words go out a batch at a
    /// time: a dynamic call per word cost a seventh of the map side's instructions.
    fn map_lines(&mut self, lines: Lines<'_>, out: &mut dyn MapEmitter) -> Result<()> {
        let one = u64_value(1);
        let text = lines.bytes;
        let mut batch = [(0, 0); WORD_BATCH];
        let mut n = 0;
        for_each_token_at(text, |start, end| {
            batch[n] = (start, end);
            n += 1;
            if n == WORD_BATCH {
                out.emit_keys(text, &batch, &one);
                n = 0;
            }
        });
        out.emit_keys(text, &batch[..n], &one);
        Ok(())
    }
}

/// The wordcount job.
pub fn job(settings: Settings) -> Job {
    Job::new("wordcount", WordCountMapper)
        .combiner(SumCombiner)
        .reducer(SumReducer)
        .settings(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mapreduce::Counters;
    use proptest::prelude::*;

    #[derive(Default)]
    struct Keys {
        keys: Vec<Vec<u8>>,
        counters: Counters,
    }

    impl MapEmitter for Keys {
        fn emit(&mut self, key: &[u8], value: &[u8]) {
            assert_eq!(value, u64_value(1));
            self.keys.push(key.to_vec());
        }
        fn counters(&mut self) -> &mut Counters {
            &mut self.counters
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// A run of lines in one pass emits the words that one `map` call per line emits,
        /// in the same order, across batch boundaries too (the text starts with more words
        /// than a batch holds).
        #[test]
        fn a_run_of_lines_emits_what_its_lines_emit(tail in proptest::collection::vec(
            prop_oneof![Just(b'\n'), Just(b'\r'), Just(b' '), Just(b'\t'), Just(0x0c), Just(b'a'), any::<u8>()],
            0..1000,
        )) {
            let mut text = b"w\r\n".repeat(WORD_BATCH + 7);
            text.extend_from_slice(&tail);
            let lines = Lines { bytes: &text, offset: 0, file: "f" };
            let (mut whole, mut each) = (Keys::default(), Keys::default());
            WordCountMapper.map_lines(lines, &mut whole).unwrap();
            for record in lines.records() {
                WordCountMapper.map(record, &mut each).unwrap();
            }
            prop_assert_eq!(whole.keys, each.keys);
        }
    }
}
