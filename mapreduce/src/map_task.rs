//! A map task: read a split, run the mapper, buffer and spill its output, and merge the spills
//! into one run file with a segment per reduce partition. The local runner and the
//! distributed worker both run exactly this.

use std::cell::RefCell;
use std::path::Path;

use crate::counters::Counters;
use crate::error::{Error, Result};
use crate::input::{read_split_into, Record, RecordSink, Split};
use crate::job::{Job, Mapper};
use crate::lines::Lines;
use crate::merge::{open_merge, remove_temporaries, write_sorted, SegmentRef};
use crate::output::MapEmitter;
use crate::output::{OutputEmitter, OutputWriter};
use crate::run::{RunFile, RunWriter};
use crate::sort_buffer::{CombineBuffer, MapBuffer, SortBuffer};
use crate::task_context::TaskContext;

/// Collects mapper output into a buffer, spilling when it fills. I/O errors during a spill
/// are kept and reported when the mapper returns, since `emit` cannot fail.
struct Collector<'a, B: MapBuffer> {
    buffer: &'a mut B,
    counters: Counters,
    spills: Vec<RunFile>,
    dir: &'a Path,
    name: &'a str,
    error: Option<Error>,
}

impl<B: MapBuffer> Collector<'_, B> {
    fn spill(&mut self) -> Result<()> {
        let path = self
            .dir
            .join(format!("{}.spill{}", self.name, self.spills.len()));
        let run = self.buffer.spill(&path, &mut self.counters.task)?;
        self.counters.merge(&self.buffer.take_user_counters());
        self.spills.push(run);
        Ok(())
    }

    fn check(&mut self) -> Result<()> {
        self.error.take().map_or(Ok(()), Err)
    }
}

impl<B: MapBuffer> MapEmitter for Collector<'_, B> {
    #[inline]
    fn emit(&mut self, key: &[u8], value: &[u8]) {
        let t = &mut self.counters.task;
        t.map_output_records += 1;
        t.map_output_bytes += (key.len() + value.len()) as u64;
        if self.buffer.add(key, value, t) && self.error.is_none() {
            if let Err(e) = self.spill() {
                self.error = Some(e);
            }
        }
    }

    // The buffer's `add` is inlined into this one loop: per key, no call at all.
    fn emit_keys(&mut self, text: &[u8], keys: &[(usize, usize)], value: &[u8]) {
        let mut rest = keys;
        while !rest.is_empty() {
            let (added, full) = self
                .buffer
                .add_keys(text, rest, value, &mut self.counters.task);
            rest = &rest[added..];
            if full && self.error.is_none() {
                if let Err(e) = self.spill() {
                    self.error = Some(e);
                }
            }
        }
        let key_bytes: usize = keys.iter().map(|(start, end)| end - start).sum();
        let t = &mut self.counters.task;
        t.map_output_records += keys.len() as u64;
        t.map_output_bytes += (key_bytes + keys.len() * value.len()) as u64;
    }

    fn counters(&mut self) -> &mut Counters {
        &mut self.counters
    }
}

/// Feeds what a split's reader delivers to a mapper, counting records and checking the
/// emitter for a kept error after each call.
struct Feed<'m, E, C> {
    mapper: &'m mut dyn Mapper,
    out: &'m mut E,
    check: C,
    records: u64,
}

impl<E: MapEmitter, C: Fn(&mut E) -> Result<()>> RecordSink for Feed<'_, E, C> {
    fn record(&mut self, rec: Record<'_>) -> Result<()> {
        self.records += 1;
        self.mapper.map(rec, self.out)?;
        (self.check)(self.out)
    }

    fn lines(&mut self, lines: Lines<'_>) -> Result<()> {
        self.records += lines.count();
        self.mapper.map_lines(lines, self.out)?;
        (self.check)(self.out)
    }
}

/// Runs a fresh mapper over every record of `split` and its cleanup, checking `out` for a
/// kept error after each call. Returns the number of records read.
fn feed_mapper<E: MapEmitter>(
    ctx: &TaskContext<'_>,
    job: &Job,
    split: &Split,
    out: &mut E,
    check: impl Fn(&mut E) -> Result<()>,
) -> Result<u64> {
    let mut mapper = (job.mapper)();
    mapper.setup(ctx)?;
    let mut feed = Feed {
        mapper: &mut *mapper,
        out,
        check,
        records: 0,
    };
    read_split_into(
        ctx.fs,
        &job.input,
        split,
        job.settings.max_record_bytes,
        &mut feed,
    )?;
    let Feed { records, check, .. } = feed;
    mapper.cleanup(out)?;
    check(out)?;
    Ok(records)
}

thread_local! {
    // Each pool thread keeps its map buffers between tasks (see `reconfigure`).
    static COMBINE_BUFFER: RefCell<Option<CombineBuffer>> = const { RefCell::new(None) };
    static SORT_BUFFER: RefCell<Option<SortBuffer>> = const { RefCell::new(None) };
}

/// Runs map task `name` over `split` (reading through `ctx.fs`), writing its output run (and
/// index) into `dir`. Returns the run and the task's counters.
pub fn run_map_task(
    ctx: &TaskContext<'_>,
    job: &Job,
    split: &Split,
    dir: &Path,
    name: &str,
) -> Result<(RunFile, Counters)> {
    let partitions = job.partitions();
    let limit = job.settings.sort_buffer_bytes;
    let partitioner = job.partitioner.clone();
    match job.active_combiner() {
        Some(c) => {
            let mut buffer = match COMBINE_BUFFER.with(|b| b.borrow_mut().take()) {
                Some(mut b) => {
                    b.reconfigure(limit, c.clone(), partitioner, partitions);
                    b
                }
                None => CombineBuffer::new(limit, c.clone(), partitioner, partitions),
            };
            let r = map_into(ctx, job, split, dir, name, &mut buffer);
            buffer.clear();
            COMBINE_BUFFER.with(|b| *b.borrow_mut() = Some(buffer));
            r
        }
        None => {
            let mut buffer = match SORT_BUFFER.with(|b| b.borrow_mut().take()) {
                Some(mut b) => {
                    b.reconfigure(limit, partitioner, partitions);
                    b
                }
                None => SortBuffer::new(limit, partitioner, partitions),
            };
            buffer.set_group_combiner(job.active_group_combiner().cloned());
            let r = map_into(ctx, job, split, dir, name, &mut buffer);
            buffer.clear();
            // The next task of this thread may belong to another job.
            buffer.set_group_combiner(None);
            SORT_BUFFER.with(|b| *b.borrow_mut() = Some(buffer));
            r
        }
    }
}

fn map_into<B: MapBuffer>(
    ctx: &TaskContext<'_>,
    job: &Job,
    split: &Split,
    dir: &Path,
    name: &str,
    buffer: &mut B,
) -> Result<(RunFile, Counters)> {
    let mut c = Collector {
        buffer,
        counters: Counters::default(),
        spills: Vec::new(),
        dir,
        name,
        error: None,
    };
    let records = feed_mapper(ctx, job, split, &mut c, |c| c.check())?;
    c.counters.task.map_input_records += records;
    if job.active_combiner().is_some() {
        // Every map output record went through the combining buffer.
        c.counters.task.combine_input_records += c.counters.task.map_output_records;
    }
    c.counters.task.map_input_bytes += split_bytes(split);
    c.counters.map_tasks = 1;
    let final_path = dir.join(format!("{name}.out"));
    if c.spills.is_empty() || !c.buffer.is_empty() {
        c.spill()?;
    }
    let run = if c.spills.len() == 1 {
        let mut run = c.spills.pop().expect("one spill");
        std::fs::rename(&run.path, &final_path)
            .map_err(|e| Error::io(format!("renaming spill to {}", final_path.display()), e))?;
        run.path = final_path;
        run
    } else {
        merge_spills(job, &c.spills, dir, name, &final_path, &mut c.counters)?
    };
    run.write_index()?;
    Ok((run, c.counters))
}

fn split_bytes(split: &Split) -> u64 {
    match split {
        Split::File { len, .. } => *len,
        Split::Rows { .. } => 0,
    }
}

/// Merges the spills partition by partition into the task's single output run.
fn merge_spills(
    job: &Job,
    spills: &[RunFile],
    dir: &Path,
    name: &str,
    final_path: &Path,
    counters: &mut Counters,
) -> Result<RunFile> {
    let partitions = job.partitions() as usize;
    let combiner = job.active_combiner().map(|c| c.as_ref());
    let mut writer = RunWriter::create(final_path, partitions)?;
    for p in 0..partitions {
        let segments: Vec<SegmentRef> = spills
            .iter()
            .filter(|s| s.segments[p].records > 0)
            .map(|s| SegmentRef::file(s.path.clone(), s.segments[p], false))
            .collect();
        let (mut merger, segments) = open_merge(
            segments,
            job.settings.merge_factor,
            dir,
            &format!("{name}.p{p}"),
            combiner,
            &mut counters.task,
        )?;
        counters.task.spilled_records +=
            write_sorted(&mut merger, &mut writer, p, combiner, &mut counters.task)?;
        remove_temporaries(&segments);
    }
    for s in spills {
        // Best effort: the whole work directory is removed when the job ends.
        let _ = std::fs::remove_file(&s.path);
    }
    writer.finish()
}

/// Runs a map task of a map-only job, writing its output to the part file `out_file`.
pub fn run_map_only_task(
    ctx: &TaskContext<'_>,
    job: &Job,
    split: &Split,
    out: OutputWriter,
) -> Result<Counters> {
    let mut e = OutputEmitter::new(out);
    let records = feed_mapper(ctx, job, split, &mut e, OutputEmitter::take_error)?;
    let (out_records, out_bytes) = e.out.finish(job.settings.sync_output)?;
    let t = &mut e.counters.task;
    t.map_input_records += records;
    t.map_input_bytes += split_bytes(split);
    t.output_records += out_records;
    t.output_bytes += out_bytes;
    e.counters.map_tasks = 1;
    Ok(e.counters)
}
