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

pub mod grep;
pub mod invertedindex;
pub mod sum;
pub mod terasort;
pub mod tokenize;
pub mod wordcount;
