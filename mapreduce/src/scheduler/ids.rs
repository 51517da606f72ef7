//! Names of jobs, tasks and attempts. They travel in messages and name directories, so their
//! `Display` follows Hadoop's layout (`task_0007_m_000003`, `attempt_0007_m_000003_0`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A job's id, unique within one jobtracker run.
pub type JobId = u64;

/// Whether a task maps or reduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TaskKind {
    /// Reads one input split and writes partitioned, sorted output.
    Map,
    /// Fetches one partition of every map's output and writes one output file.
    Reduce,
}

impl TaskKind {
    /// The letter in task and attempt names, as in Hadoop's.
    fn letter(self) -> char {
        match self {
            TaskKind::Map => 'm',
            TaskKind::Reduce => 'r',
        }
    }
}

/// One task of a job: map `index` reads split `index`, reduce `index` writes partition `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskId {
    /// The job the task belongs to.
    pub job: JobId,
    /// Map or reduce.
    pub kind: TaskKind,
    /// The split (maps) or partition (reduces) number, from 0.
    pub index: u32,
}

impl fmt::Display for TaskId {
    /// `task_0007_m_000003`, Hadoop's layout, so that logs and directory names read alike.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind.letter();
        write!(f, "task_{:04}_{kind}_{:06}", self.job, self.index)
    }
}

/// One try at running a task. Attempts of a task are numbered from 0 in launch order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AttemptId {
    /// The task this attempt runs.
    pub task: TaskId,
    /// Its number among the task's attempts.
    pub attempt: u32,
}

impl fmt::Display for AttemptId {
    /// `attempt_0007_m_000003_0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.task;
        let kind = t.kind.letter();
        write!(
            f,
            "attempt_{:04}_{kind}_{:06}_{}",
            t.job, t.index, self.attempt
        )
    }
}

/// Map task `index` of `job`.
pub(super) fn map_task(job: JobId, index: u32) -> TaskId {
    TaskId {
        job,
        kind: TaskKind::Map,
        index,
    }
}
