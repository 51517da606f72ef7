//! WordCount: how often each word occurs. Words are split as Hadoop's WordCount splits
//! them (see [`crate::tokenize`]), compared byte for byte, case-sensitive.

use mapreduce::codec::u64_value;
use mapreduce::{Job, MapEmitter, Mapper, Record, Result, Settings};

use crate::sum::{SumCombiner, SumReducer};
use crate::tokenize::for_each_token;

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
}

/// The wordcount job.
pub fn job(settings: Settings) -> Job {
    Job::new("wordcount", WordCountMapper)
        .combiner(SumCombiner)
        .reducer(SumReducer)
        .settings(settings)
}
