//! mapreduce: the MapReduce runtime.
//!
//! # Layout
//!
//! - [`job`]: the API a job is written against: [`Mapper`], [`Reducer`], [`Combiner`],
//!   [`Partitioner`], [`Job`] and its [`Settings`].
//! - [`input`]: input files, splits, and record readers (lines, fixed-length, generated rows).
//! - [`sort_buffer`]: the bounded map-side buffer (sorting or hash-combining) that spills runs.
//! - [`run`]: sorted run files with per-partition segments and CRC32s.
//! - [`merge`]: k-way merge and multi-pass merging bounded by the merge factor.
//! - [`map_task`] / [`reduce_task`]: one task each, the same code locally and on a cluster.
//! - [`output`]: output formats; [`committer`]: attempt directories and the commit protocol.
//! - [`runner`]: the local runner (thread pool); [`progress`]: what the user sees.
//! - [`counters`]: built-in and user-defined counters; [`codec`]: byte encodings.
//! - [`cli`]: command-line pieces shared by job binaries.
//! - [`error`]: the crate's one error type.
#![deny(missing_docs)]

pub mod cli;
pub mod codec;
pub mod committer;
pub mod counters;
pub mod error;
pub mod input;
pub mod job;
pub mod map_task;
pub mod merge;
pub mod output;
pub mod progress;
pub mod reduce_task;
pub mod run;
pub mod runner;
pub mod sort_buffer;

pub use counters::{Counters, TaskCounters};
pub use error::{Error, Result};
pub use input::{InputFormat, Split};
pub use job::{
    Accumulator, Combiner, CombinerKind, HashPartitioner, Job, MapEmitter, Mapper, Partitioner,
    Record, ReduceEmitter, Reducer, Settings, ValueSource,
};
pub use output::OutputFormat;
pub use runner::{run_local, JobReport, RunOptions};
