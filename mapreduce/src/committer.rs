//! Output commit, after Hadoop's `FileOutputCommitter`: one protocol over any [`FileSystem`],
//! local files for the local runner and dfs for the jobtracker.
//!
//! Every task attempt writes under `OUT/_temporary/ATTEMPT/`. Committing a task renames its
//! attempt directory to `OUT/_temporary/committed/TASK`, refusing when that directory exists,
//! so at most one attempt per task is ever committed (G6; on a cluster the scheduler also asks
//! for at most one commit per task). Committing the job moves the committed files into `OUT`,
//! removes `_temporary`, writes `_SUCCESS`, and makes all of it durable (locally: the marker
//! and the directory are fsynced; dfs makes files durable at `close`, G2, and namespace changes
//! once acknowledged). Aborting removes `OUT` altogether, so a failed job leaves nothing
//! visible.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fs::FileSystem;

/// Name of the marker a successful job writes.
pub const SUCCESS_MARKER: &str = "_SUCCESS";
/// Name of the directory holding uncommitted output.
pub const TEMPORARY_DIR: &str = "_temporary";
/// Where committed tasks wait for the job commit, relative to `OUT`. Whoever creates the
/// output directory creates this one too ([`Committer::setup`], or the jobtracker): a task
/// commit never creates it, so a commit arriving after its job's output was removed fails
/// instead of bringing the directory back.
pub const COMMITTED_DIR: &str = "_temporary/committed";

/// Commits the output of one job into one output directory.
pub struct Committer<'a> {
    fs: &'a dyn FileSystem,
    out: PathBuf,
}

impl std::fmt::Debug for Committer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("out", &self.out)
            .finish_non_exhaustive()
    }
}

impl<'a> Committer<'a> {
    /// The committer of an output directory that was set up already (no I/O).
    pub fn new(fs: &'a dyn FileSystem, out: &Path) -> Committer<'a> {
        Committer {
            fs,
            out: out.to_owned(),
        }
    }

    /// Creates `out` (which must not exist) and its `_temporary/committed` directory.
    pub fn setup(fs: &'a dyn FileSystem, out: &Path) -> Result<Committer<'a>> {
        if fs.exists(out)? {
            return Err(Error::OutputExists(out.to_owned()));
        }
        // Say which directory was being made: the one the user named.
        fs.mkdirs(out).map_err(|e| match e {
            Error::Io { source, .. } => Error::io(
                format!("creating output directory {}", out.display()),
                source,
            ),
            e => e,
        })?;
        let c = Committer::new(fs, out);
        if let Err(e) = fs.mkdirs(&c.committed()) {
            c.abort();
            return Err(e);
        }
        Ok(c)
    }

    /// The output directory.
    pub fn output_dir(&self) -> &Path {
        &self.out
    }

    /// The directory of a task attempt, e.g. `OUT/_temporary/attempt_r_000003_0` (no I/O).
    pub fn attempt_path(out: &Path, attempt: &str) -> PathBuf {
        out.join(TEMPORARY_DIR).join(attempt)
    }

    /// Creates and returns the directory of a task attempt, e.g. `attempt_r_000003_0`.
    pub fn attempt_dir(&self, attempt: &str) -> Result<PathBuf> {
        let dir = Committer::attempt_path(&self.out, attempt);
        self.fs.mkdirs(&dir)?;
        Ok(dir)
    }

    fn committed(&self) -> PathBuf {
        self.out.join(COMMITTED_DIR)
    }

    /// Commits an attempt's output as the output of `task`. Fails if the task was already
    /// committed by another attempt.
    pub fn commit_task(&self, task: &str, attempt_dir: &Path) -> Result<()> {
        // Every attempt writes its part file (empty when it has no records), so a directory
        // without one is an attempt that never ran or a forged success: committing it would
        // publish a job with a missing part (G6).
        let has_part = self.fs.list_dir(attempt_dir)?.iter().any(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
        });
        if !has_part {
            return Err(Error::user(format!(
                "{} holds no part file: the attempt of task {task} did not write its output",
                attempt_dir.display()
            )));
        }
        let target = self.committed().join(task);
        if self.fs.exists(&target)? {
            return Err(Error::user(format!(
                "task {task} was already committed by another attempt"
            )));
        }
        self.fs.rename(attempt_dir, &target)
    }

    /// Moves every committed file into the output directory, removes `_temporary`, then
    /// writes `_SUCCESS`. With `sync`, all of it is durable when this returns. Safe to call
    /// again after a failure (the jobtracker retries through short dfs outages): files moved
    /// already are not moved twice, and the marker is written afresh.
    pub fn commit_job(&self, sync: bool) -> Result<()> {
        let committed = self.committed();
        if self.fs.exists(&committed)? {
            for task in self.fs.list_dir(&committed)? {
                self.publish(&task)?;
            }
        }
        self.fs.delete(&self.out.join(TEMPORARY_DIR), true)?;
        let marker = self.out.join(SUCCESS_MARKER);
        // A marker left by an earlier try may be unfinished: write it again.
        self.fs.delete(&marker, false)?;
        // The marker promises the part files are there: make the files' renames and the
        // marker itself durable before anyone can see it.
        self.fs
            .create(&marker)?
            .finish(sync)
            .map_err(|e| Error::io(format!("creating {}", marker.display()), e))?;
        if sync {
            self.fs.sync_dir(&self.out)?;
        }
        Ok(())
    }

    /// Moves the files of one committed task into the output directory.
    fn publish(&self, task: &Path) -> Result<()> {
        for file in self.fs.list_dir(task)? {
            let Some(name) = file.file_name() else {
                continue;
            };
            let dest = self.out.join(name);
            if self.fs.exists(&dest)? {
                return Err(Error::user(format!(
                    "two tasks wrote the same output file {}",
                    dest.display()
                )));
            }
            self.fs.rename(&file, &dest)?;
        }
        Ok(())
    }

    /// Removes the output directory and everything in it (best effort).
    pub fn abort(&self) {
        if let Err(e) = self.fs.delete(&self.out, true) {
            tracing::warn!("could not remove output {}: {e}", self.out.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::LocalFs;

    #[test]
    fn one_attempt_per_task_commits_and_job_commit_publishes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let c = Committer::setup(&LocalFs, &out).unwrap();
        assert!(matches!(
            Committer::setup(&LocalFs, &out),
            Err(Error::OutputExists(_))
        ));
        let a0 = c.attempt_dir("attempt_r_000000_0").unwrap();
        let a1 = c.attempt_dir("attempt_r_000000_1").unwrap();
        std::fs::write(a0.join("part-r-00000"), b"first").unwrap();
        // Checks G6: an attempt that wrote no part file is never committed.
        let err = c.commit_task("task_r_000000", &a1).unwrap_err().to_string();
        assert!(err.contains("holds no part file"), "{err}");
        std::fs::write(a1.join("part-r-00000"), b"second").unwrap();
        c.commit_task("task_r_000000", &a1).unwrap();
        assert!(c.commit_task("task_r_000000", &a0).is_err());
        c.commit_job(true).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["_SUCCESS", "part-r-00000"]);
        assert_eq!(std::fs::read(out.join("part-r-00000")).unwrap(), b"second");
    }

    #[test]
    fn abort_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let c = Committer::setup(&LocalFs, &out).unwrap();
        std::fs::write(c.attempt_dir("a").unwrap().join("x"), b"x").unwrap();
        c.abort();
        assert!(!out.exists());
    }

    #[test]
    fn job_commit_tried_again_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let c = Committer::setup(&LocalFs, &out).unwrap();
        let a = c.attempt_dir("attempt_m_000000_0").unwrap();
        std::fs::write(a.join("part-m-00000"), b"x").unwrap();
        c.commit_task("task_m_000000", &a).unwrap();
        c.commit_job(false).unwrap();
        c.commit_job(true).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["_SUCCESS", "part-m-00000"]);
    }

    #[test]
    fn commit_after_abort_fails() {
        // Checks G6: a commit arriving after the output was removed brings nothing back.
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let c = Committer::setup(&LocalFs, &out).unwrap();
        let a = c.attempt_dir("attempt_r_000000_0").unwrap();
        c.abort();
        assert!(c.commit_task("task_r_000000", &a).is_err());
        assert!(!out.exists());
    }
}
