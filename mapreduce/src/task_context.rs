//! What a running task knows about itself: its job, its Hadoop-style names, its split, a
//! scratch directory and the filesystem it reads. Mappers and reducers get it once, in
//! `setup`, before the first record; Streaming turns it into the child's environment
//! (`mapreduce_task_id`, `mapreduce_map_input_file`, ...).

use std::path::{Path, PathBuf};

use crate::fs::FileSystem;
use crate::input::Split;
use crate::scheduler::{AttemptId, TaskKind};

/// One task attempt's view of itself.
pub struct TaskContext<'a> {
    /// `job_0007` on a cluster, `job_local<pid>_0001` in a local run (as Hadoop's local runner).
    pub job_id: String,
    /// The job's name.
    pub job_name: &'a str,
    /// `task_0007_m_000003`.
    pub task_id: String,
    /// `attempt_0007_m_000003_0`.
    pub attempt_id: String,
    /// Whether this is a map task.
    pub is_map: bool,
    /// The task's number: the split of a map, the partition of a reduce.
    pub partition: u32,
    /// Reduce tasks of the job (0 for a map-only job).
    pub reducers: u32,
    /// The split a map task reads (`None` for reduces).
    pub split: Option<&'a Split>,
    /// A directory of this attempt alone, existing, removed with the attempt's other files.
    pub dir: &'a Path,
    /// Where the job's input and output live (local files, or dfs on a cluster).
    pub fs: &'a dyn FileSystem,
    /// Where this attempt keeps its own logs when no worker captures its process's output
    /// (a local run: a Streaming child's stderr is kept there, bounded); `None` on a cluster,
    /// where the worker keeps the task process's stdout and stderr ([`crate::task_log`]).
    pub log_dir: Option<PathBuf>,
}

impl std::fmt::Debug for TaskContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskContext")
            .field("attempt_id", &self.attempt_id)
            .field("dir", &self.dir)
            .finish()
    }
}

/// The job part of local task names: `local<pid>_0001`, unique per process as in Hadoop's
/// local runner, so that side effects named after a task do not collide between runs.
pub fn local_job_tag() -> String {
    format!("local{}_0001", std::process::id())
}

/// Hadoop-style names `(job, task, attempt)` of attempt 0 of a local task.
pub fn local_names(tag: &str, is_map: bool, index: u32) -> (String, String, String) {
    let kind = if is_map { 'm' } else { 'r' };
    let task = format!("{tag}_{kind}_{index:06}");
    (
        format!("job_{tag}"),
        format!("task_{task}"),
        format!("attempt_{task}_0"),
    )
}

/// Hadoop-style names `(job, task, attempt)` of a cluster attempt.
pub fn cluster_names(attempt: AttemptId) -> (String, String, String) {
    (
        format!("job_{:04}", attempt.task.job),
        attempt.task.to_string(),
        attempt.to_string(),
    )
}

/// Whether an attempt maps.
pub fn is_map(attempt: AttemptId) -> bool {
    attempt.task.kind == TaskKind::Map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::TaskId;

    #[test]
    fn names_follow_hadoop_layout() {
        let (job, task, attempt) = local_names("local42_0001", true, 3);
        assert_eq!(job, "job_local42_0001");
        assert_eq!(task, "task_local42_0001_m_000003");
        assert_eq!(attempt, "attempt_local42_0001_m_000003_0");
        let a = AttemptId {
            task: TaskId {
                job: 7,
                kind: TaskKind::Reduce,
                index: 2,
            },
            attempt: 1,
        };
        let (job, task, attempt) = cluster_names(a);
        assert_eq!(
            (job.as_str(), task.as_str(), attempt.as_str()),
            ("job_0007", "task_0007_r_000002", "attempt_0007_r_000002_1")
        );
        assert!(!is_map(a));
    }
}
