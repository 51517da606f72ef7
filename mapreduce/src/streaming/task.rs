//! One task's Streaming command: its working directory (with the side files), its
//! environment, and the running child.

use std::cell::RefCell;
use std::path::PathBuf;

use super::child::{Launch, Role, StreamChild};
use super::conf::StreamConf;
use super::env::{child_env, TaskInfo};
use super::files::{self, Origin, SideFile};
use crate::error::{Error, IoContext, Result};
use crate::fs::LocalFs;
use crate::input::Split;
use crate::task_context::TaskContext;

/// Where a task is, as far as its children are concerned.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// The task's identity and input.
    pub info: TaskInfo,
    /// A per-attempt scratch directory that exists (working directories go under it).
    pub dir: Option<PathBuf>,
    /// Where this task's copies of the side files are, once fetched.
    pub files_dir: Option<PathBuf>,
    /// Where the mapper's or reducer's stderr is also kept, bounded, when no worker keeps
    /// the task's own (a local run; see [`TaskContext::log_dir`]).
    pub stderr_log: Option<PathBuf>,
}

thread_local! {
    // The placement of the map task this thread runs: a combiner runs inside the map task's
    // spills, where no task context is passed, and takes the task's identity and fetched side
    // files from here.
    static MAP_TASK: RefCell<Option<Placement>> = const { RefCell::new(None) };
}

/// The placement of a task from its context: its identity, and the side files fetched once
/// into its scratch directory (through the task's filesystem: dfs on a cluster).
pub fn prepare(conf: &StreamConf, ctx: &TaskContext<'_>) -> Result<Placement> {
    let input = match ctx.split {
        Some(Split::File {
            path, start, len, ..
        }) => Some((path.to_string_lossy().into_owned(), *start, *len)),
        _ => None,
    };
    let info = TaskInfo {
        job_id: ctx.job_id.clone(),
        job_name: ctx.job_name.to_owned(),
        task_id: ctx.task_id.clone(),
        attempt_id: ctx.attempt_id.clone(),
        is_map: ctx.is_map,
        partition: ctx.partition,
        reducers: ctx.reducers,
        input,
    };
    let mut files_dir = None;
    if !conf.files.is_empty() {
        let d = ctx.dir.join("streaming-files");
        std::fs::create_dir_all(&d).ctx("creating", &d)?;
        files::place(&conf.files, conf.files_origin, ctx.fs, &d)?;
        files_dir = Some(d);
    }
    let placement = Placement {
        info,
        dir: Some(ctx.dir.to_owned()),
        files_dir,
        stderr_log: ctx.log_dir.as_ref().map(|d| d.join("stderr")),
    };
    if ctx.is_map {
        MAP_TASK.with(|t| *t.borrow_mut() = Some(placement.clone()));
    }
    Ok(placement)
}

/// The placement of the map task running on this thread (for its combiner), if any.
pub fn current_map_task() -> Option<Placement> {
    MAP_TASK.with(|t| t.borrow().clone())
}

/// A started child and the working directory it runs in.
pub struct Running {
    /// The child.
    pub child: StreamChild,
    /// The working directory, removed when the task is done with the child.
    _work: tempfile::TempDir,
}

/// Starts `role`'s command for a task placed at `placement`, in a fresh working directory
/// holding the side files.
pub fn start(conf: &StreamConf, role: Role, placement: &Placement) -> Result<Running> {
    let command = conf
        .command(role)
        .ok_or_else(|| Error::BadSetting(format!("the job has no {role} command")))?;
    let work = working_dir(conf, role, placement)?;
    let dir = work.path();
    match (&placement.files_dir, conf.files_origin) {
        (Some(fetched), _) => {
            let links: Vec<SideFile> = conf
                .files
                .iter()
                .map(|f| SideFile {
                    source: fetched.join(&f.alias).to_string_lossy().into_owned(),
                    alias: f.alias.clone(),
                })
                .collect();
            files::place(&links, Origin::Local, &LocalFs, dir)?;
        }
        (None, Origin::Local) => files::place(&conf.files, Origin::Local, &LocalFs, dir)?,
        (None, Origin::Dfs) if conf.files.is_empty() => {}
        (None, Origin::Dfs) => {
            return Err(Error::BadSetting(format!(
                "the {role} has no task context to fetch -files from dfs"
            )))
        }
    }
    let env = child_env(&conf.params, &placement.info, &conf.cmdenv);
    // A combiner runs once per spill: only the mapper's and the reducer's stderr is kept,
    // so the kept log stays one bounded file per task.
    let stderr_log = match role {
        Role::Combiner => None,
        _ => placement.stderr_log.as_deref(),
    };
    let child = StreamChild::start(&Launch {
        role,
        command,
        dir,
        stderr_log,
        env: &env,
        exit_is_failure: conf.exit_is_failure,
        max_line_bytes: conf.max_line_bytes,
    })?;
    Ok(Running { child, _work: work })
}

/// A fresh working directory for the child, under the task's own directory when it has one.
fn working_dir(conf: &StreamConf, role: Role, placement: &Placement) -> Result<tempfile::TempDir> {
    let base = placement.dir.clone().unwrap_or_else(|| conf.scratch_base());
    tempfile::Builder::new()
        .prefix(&format!("{role}-work-"))
        .tempdir_in(&base)
        .map_err(|e| {
            Error::io(
                format!("creating a working directory in {}", base.display()),
                e,
            )
        })
}

/// Writes a line to the output as Streaming writes text: with the default TAB separator the
/// line is written as it is; with another separator the key and value are joined by a TAB, as
/// Hadoop's `TextOutputFormat` joins them.
#[inline]
pub fn text_line<'a>(
    cut: &super::key_fields::FieldCut,
    line: &'a [u8],
    scratch: &'a mut Vec<u8>,
) -> &'a [u8] {
    if cut.separator() == b"\t" {
        return line;
    }
    let (k, v) = cut.cut(line);
    if k.len() == line.len() {
        return line;
    }
    scratch.clear();
    scratch.extend_from_slice(k);
    scratch.push(b'\t');
    scratch.extend_from_slice(v);
    scratch
}

/// The job id of a task that was not set up (a local run's, as Hadoop's local runner).
pub fn local_job_id() -> String {
    format!("job_{}", crate::task_context::local_job_tag())
}
