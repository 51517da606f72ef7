//! The Streaming reducer and combiner: each value of each key, in key order, goes to the
//! command's stdin as `key<TAB>value`. A reducer's output lines are written to the part file
//! as they are; a combiner's are cut into key and value like a mapper's, to be spilled.

use std::sync::Arc;

use super::child::Role;
use super::conf::StreamConf;
use super::task::{self, Placement, Running};
use crate::error::Result;
use crate::job::{Reducer, ValueSource};
use crate::output::ReduceEmitter;
use crate::task_context::TaskContext;

/// Runs the `-reducer` (or `-combiner`) command of one task, or passes pairs through.
pub struct StreamReducer {
    conf: Arc<StreamConf>,
    role: Role,
    placement: Placement,
    running: Option<Running>,
    scratch: Vec<u8>,
}

impl StreamReducer {
    /// A reducer (or combiner, by `role`) for one task.
    pub fn new(conf: Arc<StreamConf>, role: Role) -> StreamReducer {
        StreamReducer {
            conf,
            role,
            placement: Placement::default(),
            running: None,
            scratch: Vec::new(),
        }
    }

    /// Starts the command, if there is one and it is not running yet. A combiner runs inside
    /// a map task's spill and takes that task's placement.
    fn ensure_started(&mut self) -> Result<()> {
        if self.running.is_some() || self.conf.command(self.role).is_none() {
            return Ok(());
        }
        if self.role == Role::Combiner && self.placement.info.job_id.is_empty() {
            if let Some(p) = task::current_map_task() {
                self.placement = p;
            }
        }
        let info = &mut self.placement.info;
        if info.job_id.is_empty() {
            // Not set up by a task (a test driving the reducer directly).
            info.job_id = task::local_job_id();
            info.job_name.clone_from(&self.conf.job_name);
            info.is_map = self.role == Role::Combiner;
            info.reducers = self.conf.reducers;
        }
        self.running = Some(task::start(&self.conf, self.role, &self.placement)?);
        Ok(())
    }
}

/// Sends one output line on: as text for a reducer, cut into key and value for a combiner.
#[inline]
fn emit_line(
    conf: &StreamConf,
    role: Role,
    scratch: &mut Vec<u8>,
    out: &mut dyn ReduceEmitter,
    line: &[u8],
) -> Result<()> {
    if role == Role::Combiner {
        let (k, v) = conf.map_output.cut(line);
        out.emit(k, v);
    } else {
        out.emit(task::text_line(&conf.reduce_output, line, scratch), b"\n");
    }
    Ok(())
}

impl Reducer for StreamReducer {
    fn setup(&mut self, ctx: &TaskContext<'_>) -> Result<()> {
        self.placement = task::prepare(&self.conf, ctx)?;
        // As Hadoop, the command starts with the task, so it runs even without input.
        self.ensure_started()
    }

    fn reduce(
        &mut self,
        key: &[u8],
        values: &mut dyn ValueSource,
        out: &mut dyn ReduceEmitter,
    ) -> Result<()> {
        self.ensure_started()?;
        let conf = &self.conf;
        let role = self.role;
        let scratch = &mut self.scratch;
        let sep = &conf.reduce_input_separator[..];
        let Some(running) = &mut self.running else {
            // No command: Hadoop's identity reducer, one line per value.
            while let Some(v) = values.next_value() {
                scratch.clear();
                scratch.extend_from_slice(key);
                scratch.extend_from_slice(sep);
                scratch.extend_from_slice(v);
                let line = std::mem::take(scratch);
                emit_line(conf, role, scratch, out, &line)?;
                *scratch = line;
            }
            return Ok(());
        };
        while let Some(v) = values.next_value() {
            running.child.write_line(&[key, sep, v], &mut |line| {
                emit_line(conf, role, scratch, out, line)
            })?;
        }
        Ok(())
    }

    fn cleanup(&mut self, out: &mut dyn ReduceEmitter) -> Result<()> {
        let Some(running) = self.running.take() else {
            return Ok(());
        };
        let conf = &self.conf;
        let role = self.role;
        let scratch = &mut self.scratch;
        let summary = running
            .child
            .finish(&mut |line| emit_line(conf, role, scratch, out, line))?;
        for ((g, n), v) in &summary.counters {
            out.counters().incr(g, n, *v);
        }
        Ok(())
    }
}
