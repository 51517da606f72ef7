//! The Streaming mapper: each input line goes to the command's stdin; each line it writes is
//! cut into key and value (or, in a map-only job, written to the output as it is).

use std::sync::Arc;

use super::child::Role;
use super::conf::StreamConf;
use super::task::{self, Placement, Running};
use crate::error::Result;
use crate::input::Record;
use crate::job::Mapper;
use crate::output::MapEmitter;
use crate::task_context::TaskContext;

/// Runs the `-mapper` command of one map task (or passes lines through without one).
pub struct StreamMapper {
    conf: Arc<StreamConf>,
    placement: Placement,
    running: Option<Running>,
    scratch: Vec<u8>,
}

impl StreamMapper {
    /// A mapper for one task.
    pub fn new(conf: Arc<StreamConf>) -> StreamMapper {
        StreamMapper {
            conf,
            placement: Placement::default(),
            running: None,
            scratch: Vec::new(),
        }
    }

    /// Starts the command, if there is one and it is not running yet.
    fn ensure_started(&mut self) -> Result<()> {
        if self.running.is_some() || self.conf.mapper.is_none() {
            return Ok(());
        }
        let info = &mut self.placement.info;
        if info.job_id.is_empty() {
            // Not set up by a task (a test driving the mapper directly).
            info.job_id = task::local_job_id();
            info.job_name.clone_from(&self.conf.job_name);
            info.is_map = true;
            info.reducers = self.conf.reducers;
        }
        self.running = Some(task::start(&self.conf, Role::Mapper, &self.placement)?);
        Ok(())
    }
}

/// Sends one output line of the mapper on: cut into key and value for the sort, or as text
/// to the part file of a map-only job.
#[inline]
fn emit_line(
    conf: &StreamConf,
    scratch: &mut Vec<u8>,
    out: &mut dyn MapEmitter,
    line: &[u8],
) -> Result<()> {
    if conf.reducers == 0 {
        out.emit(task::text_line(&conf.map_output, line, scratch), b"\n");
    } else {
        let (k, v) = conf.map_output.cut(line);
        out.emit(k, v);
    }
    Ok(())
}

impl Mapper for StreamMapper {
    fn setup(&mut self, ctx: &TaskContext<'_>) -> Result<()> {
        self.placement = task::prepare(&self.conf, ctx)?;
        // As Hadoop, the command starts with the task, so it runs even over an empty split.
        self.ensure_started()
    }

    fn map(&mut self, record: Record<'_>, out: &mut dyn MapEmitter) -> Result<()> {
        self.ensure_started()?;
        let conf = &self.conf;
        let scratch = &mut self.scratch;
        match &mut self.running {
            Some(r) => r.child.write_line(&[record.value], &mut |line| {
                emit_line(conf, scratch, out, line)
            }),
            None => emit_line(conf, scratch, out, record.value),
        }
    }

    fn cleanup(&mut self, out: &mut dyn MapEmitter) -> Result<()> {
        self.ensure_started()?;
        let Some(running) = self.running.take() else {
            return Ok(());
        };
        let conf = &self.conf;
        let scratch = &mut self.scratch;
        let summary = running
            .child
            .finish(&mut |line| emit_line(conf, scratch, out, line))?;
        for ((g, n), v) in &summary.counters {
            out.counters().incr(g, n, *v);
        }
        Ok(())
    }
}
