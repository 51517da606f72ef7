//! Example MapReduce jobs, and the `mrjob` binary that runs them.
//!
//! # Layout
//!
//! - [`tokenize`]: Hadoop `StringTokenizer` word splitting, byte-exact.
//! - [`wordcount`]: count of each word.
//! - [`grep`]: count of each regex match, sorted by count (two jobs, as Hadoop's grep).
//! - [`terasort`]: teragen, terasort (total-order partitioning from sampled keys), teravalidate.
//! - [`invertedindex`]: each word and the sorted list of files it occurs in.
//! - [`sum`]: the shared u64 summing combiner and reducer.
#![deny(missing_docs)]

use mapreduce::{JobConf, Registry, Result};

pub mod grep;
pub mod invertedindex;
pub mod sum;
pub mod terasort;
pub mod tokenize;
pub mod wordcount;

/// Registered name of wordcount.
pub const WORDCOUNT_JOB: &str = "wordcount";
/// Registered name of invertedindex.
pub const INVERTEDINDEX_JOB: &str = "invertedindex";

/// Every example job by name (and Streaming jobs, see `mapreduce::streaming`): how `mrjob` and its task processes rebuild a job from its
/// [`JobConf`].
pub fn registry() -> Registry {
    fn wc(c: &JobConf) -> Result<mapreduce::Job> {
        Ok(wordcount::job(c.settings.clone()))
    }
    fn ii(c: &JobConf) -> Result<mapreduce::Job> {
        Ok(invertedindex::job(c.settings.clone()))
    }
    Registry::new()
        .register(WORDCOUNT_JOB, wc)
        .register(INVERTEDINDEX_JOB, ii)
        .register(grep::COUNT_JOB, grep::build_count)
        .register(grep::SORT_JOB, grep::build_sort)
        .register(terasort::TERAGEN_JOB, terasort::build_teragen)
        .register(terasort::TERASORT_JOB, terasort::build_terasort)
        .register(terasort::TERAVALIDATE_JOB, terasort::build_teravalidate)
        .register(mapreduce::streaming::JOB_NAME, mapreduce::streaming::build)
}
