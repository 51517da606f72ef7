//! A reduce task: merge partition `r` of every map output, group by key, run the reducer, and
//! write a part file. The local runner and the distributed worker both run exactly this.

use std::path::Path;

use crate::counters::Counters;
use crate::error::{Error, Result};
use crate::job::{Job, ValueSource};
use crate::merge::{open_merge, remove_temporaries, Merger, SegmentRef};
use crate::output::{OutputEmitter, OutputWriter};
use crate::run::{SegmentReader, SortedSource};
use crate::task_context::TaskContext;

/// The values of the current key, read straight off the merge.
struct Group<'a> {
    merger: &'a mut Merger<SegmentReader>,
    key: &'a [u8],
    first: bool,
    /// The merge moved past this key: `Some(true)` if onto another key, `Some(false)` at end.
    ended: Option<bool>,
    values: u64,
    error: Option<Error>,
}

impl ValueSource for Group<'_> {
    fn next_value(&mut self) -> Option<&[u8]> {
        if self.ended.is_some() {
            return None;
        }
        if self.first {
            self.first = false;
        } else {
            match self.merger.advance() {
                Ok(true) if self.merger.key() == self.key => {}
                Ok(more) => {
                    self.ended = Some(more);
                    return None;
                }
                Err(e) => {
                    self.error = Some(e);
                    self.ended = Some(false);
                    return None;
                }
            }
        }
        self.values += 1;
        Some(self.merger.value())
    }
}

/// Runs reduce task `name` over `segments` (partition `r` of each map output), writing the
/// part file `out`. Intermediate merge passes, if any, go into `dir`.
pub fn run_reduce_task(
    ctx: &TaskContext<'_>,
    job: &Job,
    segments: Vec<SegmentRef>,
    dir: &Path,
    name: &str,
    out: OutputWriter,
) -> Result<Counters> {
    let mut counters = Counters {
        reduce_tasks: 1,
        ..Counters::default()
    };
    counters.task.reduce_shuffle_bytes = segments.iter().map(|s| s.segment.len).sum();
    let combiner = job.active_combiner().map(|c| c.as_ref());
    let (mut merger, segments) = open_merge(
        segments,
        job.settings.merge_factor,
        dir,
        name,
        combiner,
        &mut counters.task,
    )?;
    let reducer_factory = job
        .reducer
        .as_ref()
        .ok_or_else(|| Error::BadSetting("reduce task without a reducer".into()))?;
    let mut reducer = reducer_factory();
    reducer.setup(ctx)?;
    let mut emitter = OutputEmitter::new(out);
    let mut key = Vec::new();
    let mut more = merger.advance()?;
    while more {
        key.clear();
        key.extend_from_slice(merger.key());
        let mut group = Group {
            merger: &mut merger,
            key: &key,
            first: true,
            ended: None,
            values: 0,
            error: None,
        };
        reducer.reduce(&key, &mut group, &mut emitter)?;
        // Skip whatever values the reducer did not read.
        while group.next_value().is_some() {}
        if let Some(e) = group.error.take() {
            return Err(e);
        }
        counters.task.reduce_input_groups += 1;
        counters.task.reduce_input_records += group.values;
        more = group.ended == Some(true);
        emitter.take_error()?;
    }
    reducer.cleanup(&mut emitter)?;
    emitter.take_error()?;
    let (records, bytes) = emitter.out.finish(job.settings.sync_output)?;
    counters.task.output_records += records;
    counters.task.output_bytes += bytes;
    counters.merge(&emitter.counters);
    remove_temporaries(&segments);
    Ok(counters)
}
