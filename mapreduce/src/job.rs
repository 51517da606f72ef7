//! The job API: what a user implements (mapper, reducer, combiner, partitioner) and how a
//! job is put together with its settings.
//!
//! Keys and values are bytes. Keys sort bytewise, so a job that wants another order encodes
//! its keys to sort that way (see [`crate::codec`] for helpers). A mapper and a reducer are
//! cloned once per task, so they may keep per-task state in `&mut self` and flush it in
//! `cleanup`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::compression::Codec;
use crate::error::{Error, Result};
use crate::input::{InputFormat, Record};
use crate::lines::Lines;
use crate::output::{MapEmitter, OutputFormat, ReduceEmitter};
use crate::task_context::TaskContext;

/// Turns input records into key/value pairs.
pub trait Mapper: Send + 'static {
    /// Called once before the first record, with what the task knows about itself.
    fn setup(&mut self, _ctx: &TaskContext<'_>) -> Result<()> {
        Ok(())
    }
    /// Called once per record.
    fn map(&mut self, record: Record<'_>, out: &mut dyn MapEmitter) -> Result<()>;
    /// Called with runs of whole lines when the input is lines, in place of [`Self::map`]
    /// per line. By default it calls `map` for each line; a mapper that scans text can
    /// override it to scan a whole run in one pass (every delimiter it splits on must then
    /// include `\n` and `\r`, which stay in [`Lines::bytes`]).
    fn map_lines(&mut self, lines: Lines<'_>, out: &mut dyn MapEmitter) -> Result<()> {
        lines.records().try_for_each(|r| self.map(r, out))
    }
    /// Called once after the last record of the task.
    fn cleanup(&mut self, _out: &mut dyn MapEmitter) -> Result<()> {
        Ok(())
    }
}

/// A reducer's view of the values of one key: a lending iterator over the merged map outputs.
pub trait ValueSource {
    /// The next value of the current key, or `None` when the key's values are exhausted.
    fn next_value(&mut self) -> Option<&[u8]>;
}

/// Turns a key and all its values into output records.
pub trait Reducer: Send + 'static {
    /// Called once before the first key, with what the task knows about itself.
    fn setup(&mut self, _ctx: &TaskContext<'_>) -> Result<()> {
        Ok(())
    }
    /// Called once per distinct key, in key order.
    fn reduce(
        &mut self,
        key: &[u8],
        values: &mut dyn ValueSource,
        out: &mut dyn ReduceEmitter,
    ) -> Result<()>;
    /// Called once after the last key of the task.
    fn cleanup(&mut self, _out: &mut dyn ReduceEmitter) -> Result<()> {
        Ok(())
    }
}

/// Folds values of one key together on the map side (and in merges) to shrink what is
/// spilled and shuffled.
///
/// Unlike Hadoop's reducer-shaped combiner this is a fold (as Spark's `reduceByKey`), which
/// lets the map-side buffer aggregate in a hash table instead of sorting every record. The
/// fold must be associative and commutative and the result must be a valid map output value:
/// the framework may apply it zero, one or many times.
pub trait Combiner: Send + Sync + 'static {
    /// Folds `value` into `acc` (both values of `key`).
    fn combine(&self, key: &[u8], acc: &mut Accumulator, value: &[u8]);

    /// Declares that this fold is exactly [`CombinerKind::SumU64`], so the map-side buffer can
    /// add counts in place without calling `combine` (the result must be identical).
    fn kind(&self) -> CombinerKind {
        CombinerKind::Custom
    }
}

/// What a combiner computes, for folds the framework can run natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CombinerKind {
    /// Only `combine` knows.
    Custom,
    /// Values are 8-byte little-endian `u64`s and the fold is their wrapping sum.
    SumU64,
}

/// A folded value: bytes kept inline up to 16 (a count, a small sum) so the map-side hash
/// table holds them without a heap pointer to chase; it derefs to `[u8]` and has `Vec`'s
/// `clear` and `extend_from_slice`.
pub type Accumulator = smallvec::SmallVec<[u8; 16]>;

/// Chooses the reduce partition of a key.
pub trait Partitioner: Send + Sync + 'static {
    /// Returns a partition in `0..partitions`.
    fn partition(&self, key: &[u8], partitions: u32) -> u32;
}

/// The default partitioner: CRC32 of the key, which is stable across processes and machines
/// (a distributed job's maps must agree on it).
#[derive(Debug, Default, Clone, Copy)]
pub struct HashPartitioner;

impl Partitioner for HashPartitioner {
    fn partition(&self, key: &[u8], partitions: u32) -> u32 {
        crc32fast::hash(key) % partitions.max(1)
    }
}

/// Per-job settings. Every field has a default; [`Settings::validate`] checks them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    /// Number of reduce tasks (0 = map-only job).
    pub reducers: u32,
    /// Worker threads of the local runner.
    pub threads: usize,
    /// Map-side buffer for output before it is sorted and spilled.
    pub sort_buffer_bytes: usize,
    /// Largest split of a local run: files are cut into splits of at most this many bytes.
    /// 0 (the default): chosen from the input's size and the threads, so that every thread
    /// has work (see [`crate::split::local_split_size`]). A cluster cuts one split per block.
    pub split_size_bytes: u64,
    /// Whether the job's combiner (if any) runs.
    pub combiner_enabled: bool,
    /// Longest record a reader accepts; longer ones are an error naming file and offset.
    pub max_record_bytes: usize,
    /// Most sorted runs merged at once; more runs are merged in several passes.
    pub merge_factor: usize,
    /// Directory for intermediate files (default: the system temp directory).
    pub local_dir: Option<PathBuf>,
    /// Whether output files are fsynced before the job is committed.
    pub sync_output: bool,
}

/// The default map-side sort buffer, as Hadoop's `mapreduce.task.io.sort.mb`.
pub const DEFAULT_SORT_BUFFER_BYTES: usize = 100 << 20;
/// The largest split the local runner picks by itself (a dfs block).
pub const DEFAULT_SPLIT_SIZE_BYTES: u64 = 64 << 20;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            reducers: 1,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            sort_buffer_bytes: DEFAULT_SORT_BUFFER_BYTES,
            split_size_bytes: 0,
            combiner_enabled: true,
            max_record_bytes: 64 << 20,
            merge_factor: 64,
            local_dir: None,
            sync_output: true,
        }
    }
}

impl Settings {
    /// Checks ranges; the error names the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::BadSetting(m.to_owned()));
        if self.threads == 0 || self.threads > 4096 {
            return bad("threads must be between 1 and 4096");
        }
        if self.reducers > 100_000 {
            return bad("reducers must be at most 100000");
        }
        if self.sort_buffer_bytes < 1024 {
            return bad("sort buffer must be at least 1 KiB");
        }
        if self.max_record_bytes == 0 {
            return bad("max record size must be at least 1 byte");
        }
        if self.merge_factor < 2 {
            return bad("merge factor must be at least 2");
        }
        Ok(())
    }
}

/// Makes a fresh mapper for each task.
pub type MapperFactory = Arc<dyn Fn() -> Box<dyn Mapper> + Send + Sync>;
/// Makes a fresh reducer for each task.
pub type ReducerFactory = Arc<dyn Fn() -> Box<dyn Reducer> + Send + Sync>;

/// A complete job: functions, formats and settings.
#[derive(Clone)]
pub struct Job {
    /// Name shown in progress and logs.
    pub name: String,
    /// Makes the mapper of each map task.
    pub mapper: MapperFactory,
    /// Makes the reducer of each reduce task; `None` with `reducers == 0` for map-only jobs.
    pub reducer: Option<ReducerFactory>,
    /// Optional map-side fold.
    pub combiner: Option<Arc<dyn Combiner>>,
    /// Optional reducer-shaped map-side combine, as Hadoop's (a Streaming `-combiner`): each
    /// sorted partition of a spill is run through a fresh one before it is written (see
    /// [`crate::group_combine`]). Used only when `combiner` is `None`.
    pub group_combiner: Option<ReducerFactory>,
    /// Chooses each key's reduce partition.
    pub partitioner: Arc<dyn Partitioner>,
    /// How input is cut and read.
    pub input: InputFormat,
    /// How output records are written.
    pub output: OutputFormat,
    /// Tunables.
    pub settings: Settings,
    /// Compress output files with this codec (their names get its extension).
    pub output_codec: Option<Codec>,
    /// Smallest split of a local run (`mapreduce.input.fileinputformat.split.minsize`).
    pub split_min_bytes: u64,
    /// Number of maps wanted by a local run (`mapreduce.job.maps`; a hint for the split size).
    pub maps_hint: Option<u32>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("combiner", &self.combiner.is_some())
            .field("group_combiner", &self.group_combiner.is_some())
            .field("input", &self.input)
            .field("output", &self.output)
            .field("settings", &self.settings)
            .field("output_codec", &self.output_codec)
            .finish()
    }
}

impl Job {
    /// A job with this mapper, no reducer yet, default formats and settings.
    pub fn new<M: Mapper + Clone + Sync>(name: &str, mapper: M) -> Job {
        Job {
            name: name.to_owned(),
            mapper: Arc::new(move || Box::new(mapper.clone())),
            reducer: None,
            combiner: None,
            group_combiner: None,
            partitioner: Arc::new(HashPartitioner),
            input: InputFormat::Lines,
            output: OutputFormat::Text,
            settings: Settings::default(),
            output_codec: None,
            split_min_bytes: 0,
            maps_hint: None,
        }
    }

    /// Sets the reducer.
    pub fn reducer<R: Reducer + Clone + Sync>(mut self, reducer: R) -> Job {
        self.reducer = Some(Arc::new(move || Box::new(reducer.clone())));
        self
    }

    /// Sets the combiner.
    pub fn combiner<C: Combiner>(mut self, combiner: C) -> Job {
        self.combiner = Some(Arc::new(combiner));
        self
    }

    /// Sets the partitioner.
    pub fn partitioner<P: Partitioner>(mut self, partitioner: P) -> Job {
        self.partitioner = Arc::new(partitioner);
        self
    }

    /// Sets the input format.
    pub fn input(mut self, input: InputFormat) -> Job {
        self.input = input;
        self
    }

    /// Sets the output format.
    pub fn output(mut self, output: OutputFormat) -> Job {
        self.output = output;
        self
    }

    /// Compresses the job's output files with `codec`.
    pub fn compress_output(mut self, codec: Codec) -> Job {
        self.output_codec = Some(codec);
        self
    }

    /// Replaces the settings.
    pub fn settings(mut self, settings: Settings) -> Job {
        self.settings = settings;
        self
    }

    /// The combiner if one is set and enabled.
    pub fn active_combiner(&self) -> Option<&Arc<dyn Combiner>> {
        self.combiner
            .as_ref()
            .filter(|_| self.settings.combiner_enabled)
    }

    /// The reducer-shaped combiner if one is set and enabled (and no fold is).
    pub fn active_group_combiner(&self) -> Option<&ReducerFactory> {
        self.group_combiner
            .as_ref()
            .filter(|_| self.settings.combiner_enabled && self.combiner.is_none())
    }

    /// Number of reduce partitions map output is cut into (1 for a map-only job, unused).
    pub fn partitions(&self) -> u32 {
        self.settings.reducers.max(1)
    }

    /// Checks that the job is complete and its settings valid.
    pub fn validate(&self) -> Result<()> {
        self.settings.validate()?;
        if self.settings.reducers > 0 && self.reducer.is_none() {
            return Err(Error::BadSetting(format!(
                "job {} has {} reducers but no reducer function",
                self.name, self.settings.reducers
            )));
        }
        Ok(())
    }
}
