//! One task's Streaming command: its working directory (with the side files), its
//! environment, and the running child.

use std::path::{Path, PathBuf};

use super::child::{Launch, Role, StreamChild};
use super::conf::StreamConf;
use super::env::{child_env, TaskInfo};
use super::files;
use crate::error::{Error, Result};
use crate::fs::{FileSystem, LocalFs};

/// Where a task is, as far as its child is concerned: set by `setup` when the framework
/// provides a task context, else worked out when the child starts.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// The task's identity and input.
    pub info: TaskInfo,
    /// A per-attempt scratch directory that exists (the working directory goes under it).
    pub dir: Option<PathBuf>,
}

/// A started child and the working directory it runs in.
pub struct Running {
    /// The child.
    pub child: StreamChild,
    /// Removed when the task ends, when it was made here.
    _scratch: Option<tempfile::TempDir>,
}

/// Starts `role`'s command for a task placed at `placement`, reading side files through `fs`.
pub fn start(
    conf: &StreamConf,
    role: Role,
    placement: &Placement,
    fs: Option<&dyn FileSystem>,
) -> Result<Running> {
    let command = conf
        .command(role)
        .ok_or_else(|| Error::BadSetting(format!("the job has no {role} command")))?;
    let (dir, scratch) = working_dir(conf, role, placement)?;
    let fs = match (fs, conf.files_origin) {
        (Some(fs), _) => fs,
        (None, files::Origin::Local) => &LocalFs,
        (None, files::Origin::Dfs) => {
            return Err(Error::BadSetting(
                "this task has no filesystem to fetch -files from".into(),
            ))
        }
    };
    files::place(&conf.files, conf.files_origin, fs, &dir)?;
    let env = child_env(&conf.params, &placement.info, &conf.cmdenv);
    let child = StreamChild::start(&Launch {
        role,
        command,
        dir: &dir,
        env: &env,
        exit_is_failure: conf.exit_is_failure,
        max_line_bytes: conf.max_line_bytes,
    })?;
    Ok(Running {
        child,
        _scratch: scratch,
    })
}

/// A fresh directory for the child: under the task's own directory when it has one, else a
/// temporary one removed with the task.
fn working_dir(
    conf: &StreamConf,
    role: Role,
    placement: &Placement,
) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    let base = placement.dir.clone().unwrap_or_else(|| conf.scratch_base());
    let made = tempfile::Builder::new()
        .prefix(&format!("{role}-work-"))
        .tempdir_in(&base)
        .map_err(|e| {
            Error::io(
                format!("creating a working directory in {}", base.display()),
                e,
            )
        })?;
    let dir = made.path().to_owned();
    Ok((dir, Some(made)))
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

/// A placeholder for a task that was not set up: the job id of a local run.
pub fn local_job_id() -> String {
    format!("job_local{}_0001", std::process::id())
}

/// The name of a task's input file as children see it.
pub fn input_name(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
