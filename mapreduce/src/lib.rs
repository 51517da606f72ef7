//! mapreduce: the MapReduce runtime.
//!
//! # Layout
//!
//! - [`job`]: the API a job is written against: [`Mapper`], [`Reducer`], [`Combiner`],
//!   [`Partitioner`], [`Job`] and its [`Settings`].
//! - [`job_conf`]: a job's portable description ([`JobConf`]) and the [`Registry`] that rebuilds it.
//! - [`fs`]: where input and output files live (local files, or dfs on a cluster): reading,
//!   writing, and the namespace operations (rename, mkdirs, delete) the committer needs.
//! - [`dfs_fs`]: the filesystem trait on dfs, for task processes, submitters and the
//!   jobtracker's commits.
//! - [`glob`]: input patterns in Hadoop's glob syntax, expanded one path component at a time
//!   over any filesystem's listings.
//! - [`split`]: cutting input into splits (pieces of a local file, or one per dfs block), with
//!   the one record-alignment rule both use.
//! - [`compression`]: Hadoop's codecs (gzip, bzip2, zstd, deflate): compressed input by
//!   extension (one split per file), compressed output on request.
//! - [`input`]: input files, the [`Record`] a mapper gets, and record readers (lines,
//!   fixed-length, generated rows); [`lines`]: runs of whole lines, handed to mappers that
//!   scan a buffer at a time.
//! - [`sort_buffer`]: the bounded map-side buffer (sorting or hash-combining) that spills runs;
//!   [`combine_table`]: the hash-combining buffer's table (inline short keys, an arena for
//!   long ones, slots loaded a batch at a time);
//!   [`group_combine`]: a reducer-shaped combiner (Hadoop's) run over each sorted spill.
//! - [`run`]: sorted run files with per-partition segments and CRC32s.
//! - [`merge`]: k-way merge and multi-pass merging bounded by the merge factor.
//! - [`map_task`] / [`reduce_task`]: one task each, the same code locally and on a cluster;
//!   [`task_context`]: what a task knows about itself (names, split, scratch directory).
//! - [`output`]: where map and reduce output goes ([`MapEmitter`], [`ReduceEmitter`]) and
//!   output formats; [`committer`]: attempt directories and the commit protocol, one for both
//!   local and dfs output (it works over [`fs::FileSystem`]).
//! - [`runner`]: the local runner (thread pool); [`progress`]: what the user sees.
//! - [`streaming`]: Hadoop Streaming (any executable as mapper, combiner, reducer), with
//!   `run_cli` for `mrjob streaming` and the Hadoop front door.
//! - [`properties`]: per-job `-D key=value` settings by their Hadoop names, validated, in
//!   one table; [`properties::JobProperties`] reads the ones kept in a job's parameters back
//!   typed (name, output codec, split hints, the scheduler's per-job [`scheduler::TaskPolicy`]).
//! - [`counters`]: built-in and user-defined counters; [`codec`]: byte encodings.
//! - [`engine`]: where a job runs (this machine, or the configured cluster).
//! - [`config`]: the `[mapreduce]` table of `cluster.toml` (scheduling and retry settings),
//!   read together with dfs's part of the file.
//! - Cluster runtime: [`protocol`] (messages), [`scheduler`] (the pure scheduling state
//!   machine, in rooms: ids, events and actions, config, the job table, assignment, failure
//!   handling), [`jobtracker`] (its daemon: `admit` submissions, `commit` tasks and jobs,
//!   `recovery` after a restart, `rpc`, `history` of every attempt, `web` pages, with
//!   `web::logs`, an attempt's logs for its logged-in user), [`job_store`] (job records in dfs that a
//!   restarted jobtracker resumes from), [`worker`] (task slots, child processes),
//!   [`task_process`] (one attempt in a child), [`shuffle`] (`server` of map outputs, and
//!   `fetch`, the reduce's fetch loop),
//!   [`submit`] (staging, submitting, status), [`job_binary`] (what is staged, where: each
//!   user's own staging directory, which binary a job may name, and which staged binaries
//!   the jobtracker removes), [`pseudo_cluster`] (a cluster on this machine),
//!   [`task_env`] (what of a worker's environment its tasks keep), [`fault`] (test fault
//!   hooks), [`task_log`] (each attempt's stdout and stderr kept
//!   bounded on its worker, and pruned by age and total size).
//! - [`diagnosis`]: the typed events the jobtracker records per job (failed attempts, lost
//!   workers, re-run maps, backups, slow attempts, skewed partitions) and the pure rule that
//!   turns them into `mrjob why`'s root cause; [`job_inspect`]: `mrjob why` and `mrjob logs`
//!   (its `read_log` also serves the web logs page).
//! - [`hadoop`]: the Hadoop front door (`mrjob hadoop version | fs ... | jar ...`) that Yelp's
//!   mrjob `-r hadoop` drives: `fs` commands on dfs printed as Hadoop prints them, Streaming
//!   jobs reported with Hadoop's job log lines.
//! - [`cli`]: command-line pieces shared by job binaries, including the cluster commands;
//!   [`logging`]: log setup for every process a job binary becomes.
//! - [`error`]: the crate's one error type, and the one mapping of dfs errors into it.
//! - [`metrics`]: the jobtracker's and workers' Prometheus metrics (on `/metrics`).
#![deny(missing_docs)]

pub mod cli;
pub mod codec;
pub mod combine_table;
pub mod committer;
pub mod compression;
pub mod config;
pub mod counters;
pub mod dfs_fs;
pub mod diagnosis;
pub mod engine;
pub mod error;
pub mod fault;
pub mod fs;
pub mod glob;
pub mod group_combine;
pub mod hadoop;
pub mod input;
pub mod job;
pub mod job_binary;
pub mod job_conf;
pub mod job_inspect;
pub mod job_store;
pub mod jobtracker;
pub mod lines;
pub mod logging;
pub mod map_task;
pub mod merge;
pub mod metrics;
pub mod output;
pub mod progress;
pub mod properties;
pub mod protocol;
pub mod pseudo_cluster;
pub mod reduce_task;
pub mod run;
pub mod runner;
pub mod scheduler;
pub mod shuffle;
pub mod sort_buffer;
pub mod split;
pub mod streaming;
pub mod submit;
pub mod task_context;
pub mod task_env;
pub mod task_log;
pub mod task_process;
pub mod worker;

pub use counters::{Counters, TaskCounters};
pub use engine::{ConfSource, Engine};
pub use error::{Error, Result};
pub use input::{InputFormat, Record, Split};
pub use job::{
    Accumulator, Combiner, CombinerKind, HashPartitioner, Job, Mapper, Partitioner, Reducer,
    Settings, ValueSource,
};
pub use job_conf::{JobConf, Registry};
pub use lines::Lines;
pub use output::{MapEmitter, OutputFormat, ReduceEmitter};
pub use runner::{run_local, JobReport, RunOptions};
pub use task_context::TaskContext;
