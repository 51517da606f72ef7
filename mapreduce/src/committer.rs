//! Output commit for local-filesystem output, after Hadoop's `FileOutputCommitter`.
//!
//! Every task attempt writes under `OUT/_temporary/ATTEMPT/`. Committing a task renames its
//! attempt directory to `OUT/_temporary/committed/TASK`; a rename onto an existing task
//! directory fails, so at most one attempt per task is ever committed (G6). Committing the job
//! moves the committed files into `OUT`, fsyncs the directory, writes `_SUCCESS`, and removes
//! `_temporary`. Aborting removes `OUT` altogether, so a failed job leaves nothing visible.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Name of the marker a successful job writes.
pub const SUCCESS_MARKER: &str = "_SUCCESS";
/// Name of the directory holding uncommitted output.
pub const TEMPORARY_DIR: &str = "_temporary";

/// Commits the output of one job into a local directory.
#[derive(Debug)]
pub struct Committer {
    out: PathBuf,
    temporary: PathBuf,
    committed: PathBuf,
}

impl Committer {
    /// Creates `out` (which must not exist) and its `_temporary` directory.
    pub fn setup(out: &Path) -> Result<Committer> {
        if std::fs::symlink_metadata(out).is_ok() {
            return Err(Error::OutputExists(out.to_owned()));
        }
        let creating = |e: std::io::Error| {
            Error::io(format!("creating output directory {}", out.display()), e)
        };
        // Name the real obstacle: "File exists" from mkdir under a regular file misleads.
        if let Some(blocker) = out.ancestors().skip(1).find(|a| a.is_file()) {
            return Err(creating(std::io::Error::other(format!(
                "{} is a file, not a directory",
                blocker.display()
            ))));
        }
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(creating)?;
        }
        std::fs::create_dir(out).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::OutputExists(out.to_owned())
            } else {
                creating(e)
            }
        })?;
        let c = Committer {
            out: out.to_owned(),
            temporary: out.join(TEMPORARY_DIR),
            committed: out.join(TEMPORARY_DIR).join("committed"),
        };
        let made = std::fs::create_dir_all(&c.committed).ctx("creating", &c.committed);
        if let Err(e) = made {
            c.abort();
            return Err(e);
        }
        Ok(c)
    }

    /// The output directory.
    pub fn output_dir(&self) -> &Path {
        &self.out
    }

    /// Creates and returns the directory of a task attempt, e.g. `attempt_r_000003_0`.
    pub fn attempt_dir(&self, attempt: &str) -> Result<PathBuf> {
        let dir = self.temporary.join(attempt);
        std::fs::create_dir_all(&dir).ctx("creating", &dir)?;
        Ok(dir)
    }

    /// Commits an attempt's output as the output of `task`. Fails if the task was already
    /// committed by another attempt.
    pub fn commit_task(&self, task: &str, attempt_dir: &Path) -> Result<()> {
        let target = self.committed.join(task);
        if target.exists() {
            return Err(Error::user(format!(
                "task {task} was already committed by another attempt"
            )));
        }
        std::fs::rename(attempt_dir, &target).ctx("committing task output", attempt_dir)
    }

    /// Moves every committed file into the output directory, then writes `_SUCCESS`.
    pub fn commit_job(self, sync: bool) -> Result<()> {
        let mut tasks: Vec<PathBuf> = std::fs::read_dir(&self.committed)
            .ctx("listing", &self.committed)?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .ctx("listing", &self.committed)?;
        tasks.sort();
        for task in tasks {
            for file in std::fs::read_dir(&task).ctx("listing", &task)? {
                let file = file.ctx("listing", &task)?.path();
                let Some(name) = file.file_name() else {
                    continue;
                };
                let dest = self.out.join(name);
                if dest.exists() {
                    return Err(Error::user(format!(
                        "two tasks wrote the same output file {}",
                        dest.display()
                    )));
                }
                std::fs::rename(&file, &dest).ctx("moving output file", &file)?;
            }
        }
        std::fs::remove_dir_all(&self.temporary).ctx("removing", &self.temporary)?;
        let marker = self.out.join(SUCCESS_MARKER);
        let f = std::fs::File::create(&marker).ctx("creating", &marker)?;
        if sync {
            // The marker promises the part files are there: make the files' renames and the
            // marker itself durable before anyone can see it.
            f.sync_all().ctx("fsyncing", &marker)?;
            fsync_dir(&self.out)?;
        }
        Ok(())
    }

    /// Removes the output directory and everything in it (best effort).
    pub fn abort(self) {
        if let Err(e) = std::fs::remove_dir_all(&self.out) {
            tracing::warn!("could not remove output {}: {e}", self.out.display());
        }
    }
}

/// Fsyncs a directory so that renames and creations inside it survive a crash.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("fsyncing directory", dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_attempt_per_task_commits_and_job_commit_publishes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let c = Committer::setup(&out).unwrap();
        assert!(matches!(
            Committer::setup(&out),
            Err(Error::OutputExists(_))
        ));
        let a0 = c.attempt_dir("attempt_r_000000_0").unwrap();
        let a1 = c.attempt_dir("attempt_r_000000_1").unwrap();
        std::fs::write(a0.join("part-r-00000"), b"first").unwrap();
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
        let c = Committer::setup(&out).unwrap();
        std::fs::write(c.attempt_dir("a").unwrap().join("x"), b"x").unwrap();
        c.abort();
        assert!(!out.exists());
    }
}
