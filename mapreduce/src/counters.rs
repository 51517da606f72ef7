//! Job counters: the built-in framework counters (plain integers on the hot path) and
//! user-defined ones (named, in groups). Tasks keep their own and the runner adds up the
//! counters of committed attempts only.

use std::collections::BTreeMap;
use std::fmt;

/// The framework's built-in counters, named as Hadoop names them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskCounters {
    /// Records read by map tasks.
    pub map_input_records: u64,
    /// Bytes read by map tasks.
    pub map_input_bytes: u64,
    /// Records emitted by mappers.
    pub map_output_records: u64,
    /// Key + value bytes emitted by mappers.
    pub map_output_bytes: u64,
    /// Values fed to the combiner.
    pub combine_input_records: u64,
    /// Records the combiner left.
    pub combine_output_records: u64,
    /// Records written to spill files (map side) or intermediate merge files (reduce side).
    pub spilled_records: u64,
    /// Number of spills on the map side.
    pub spills: u64,
    /// Distinct keys seen by reducers.
    pub reduce_input_groups: u64,
    /// Values seen by reducers.
    pub reduce_input_records: u64,
    /// Records written by reducers (or by mappers in a map-only job).
    pub output_records: u64,
    /// Bytes of intermediate data read by reducers.
    pub reduce_shuffle_bytes: u64,
    /// Bytes written to the job's output.
    pub output_bytes: u64,
}

impl TaskCounters {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &TaskCounters) {
        self.map_input_records += other.map_input_records;
        self.map_input_bytes += other.map_input_bytes;
        self.map_output_records += other.map_output_records;
        self.map_output_bytes += other.map_output_bytes;
        self.combine_input_records += other.combine_input_records;
        self.combine_output_records += other.combine_output_records;
        self.spilled_records += other.spilled_records;
        self.spills += other.spills;
        self.reduce_input_groups += other.reduce_input_groups;
        self.reduce_input_records += other.reduce_input_records;
        self.output_records += other.output_records;
        self.reduce_shuffle_bytes += other.reduce_shuffle_bytes;
        self.output_bytes += other.output_bytes;
    }
}

/// All counters of a job: built-in ones plus user-defined `(group, name) -> value`.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    /// Framework counters.
    pub task: TaskCounters,
    /// User-defined counters.
    pub user: BTreeMap<(String, String), u64>,
    /// Map tasks that ran.
    pub map_tasks: u64,
    /// Reduce tasks that ran.
    pub reduce_tasks: u64,
}

impl Counters {
    /// Adds `n` to the user counter `group`/`name`.
    pub fn incr(&mut self, group: &str, name: &str, n: u64) {
        if let Some(v) = self.user.get_mut(&(group.to_owned(), name.to_owned())) {
            *v += n;
            return;
        }
        self.user.insert((group.to_owned(), name.to_owned()), n);
    }

    /// Reads a user counter (0 when never incremented).
    pub fn get(&self, group: &str, name: &str) -> u64 {
        self.user
            .get(&(group.to_owned(), name.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Adds all of `other` into `self`.
    pub fn merge(&mut self, other: &Counters) {
        self.task.add(&other.task);
        self.map_tasks += other.map_tasks;
        self.reduce_tasks += other.reduce_tasks;
        for ((g, n), v) in &other.user {
            self.incr(g, n, *v);
        }
    }
}

impl Counters {
    /// Every counter as `(group, name, value)`, in the order `Display` prints them: the job
    /// counters, the framework's, the file system's, then user groups by name.
    pub fn rows(&self) -> Vec<(&str, &str, u64)> {
        let t = &self.task;
        let mut out = vec![
            ("Job Counters", "Launched map tasks", self.map_tasks),
            ("Job Counters", "Launched reduce tasks", self.reduce_tasks),
        ];
        let framework = [
            ("Map input records", t.map_input_records),
            ("Map input bytes", t.map_input_bytes),
            ("Map output records", t.map_output_records),
            ("Map output bytes", t.map_output_bytes),
            ("Combine input records", t.combine_input_records),
            ("Combine output records", t.combine_output_records),
            ("Spilled records", t.spilled_records),
            ("Spills", t.spills),
            ("Reduce shuffle bytes", t.reduce_shuffle_bytes),
            ("Reduce input groups", t.reduce_input_groups),
            ("Reduce input records", t.reduce_input_records),
            ("Output records", t.output_records),
        ];
        out.extend(framework.map(|(n, v)| ("Map-Reduce Framework", n, v)));
        out.push(("File System Counters", "Bytes read", t.map_input_bytes));
        out.push(("File System Counters", "Bytes written", t.output_bytes));
        out.extend(
            self.user
                .iter()
                .map(|((g, n), v)| (g.as_str(), n.as_str(), *v)),
        );
        out
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Counters:")?;
        let mut group = None;
        for (g, n, v) in self.rows() {
            if group != Some(g) {
                writeln!(f, "  {g}")?;
                group = Some(g);
            }
            writeln!(f, "    {n}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_builtin_and_user() {
        let mut a = Counters::default();
        a.task.map_input_records = 2;
        a.incr("g", "x", 1);
        let mut b = Counters::default();
        b.task.map_input_records = 3;
        b.incr("g", "x", 4);
        b.incr("g", "y", 1);
        a.merge(&b);
        assert_eq!(a.task.map_input_records, 5);
        assert_eq!(a.get("g", "x"), 5);
        assert_eq!(a.get("g", "y"), 1);
        let text = a.to_string();
        assert!(text.contains("Map input records=5"), "{text}");
        assert!(text.contains("    x=5"), "{text}");
    }
}
