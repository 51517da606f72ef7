//! The environment of a Streaming child: the job's configuration as variables, as Hadoop
//! exports it (`mapreduce.job.id` becomes `mapreduce_job_id`), the task's identity, and the
//! user's `-cmdenv K=V`.

use std::collections::BTreeMap;

/// What a task tells its child about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskInfo {
    /// Hadoop-style job id (`job_local1234_0001`).
    pub job_id: String,
    /// The job's name.
    pub job_name: String,
    /// Hadoop-style task id (`task_..._m_000003`).
    pub task_id: String,
    /// Hadoop-style attempt id (`attempt_..._m_000003_0`).
    pub attempt_id: String,
    /// Whether this is a map task.
    pub is_map: bool,
    /// The task's index.
    pub partition: u32,
    /// The job's number of reduce tasks.
    pub reducers: u32,
    /// A map task's input: file, first byte, length.
    pub input: Option<(String, u64, u64)>,
}

/// A property name as an environment variable name: every character other than an ASCII
/// letter or digit becomes `_`, as Hadoop Streaming does.
pub fn var_name(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The variables of one task's child: the job's parameters, the task's identity under its
/// Hadoop 2 and Hadoop 1 names, then `cmdenv` (the user's word is last, so it wins).
pub fn child_env(
    params: &BTreeMap<String, String>,
    task: &TaskInfo,
    cmdenv: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = params
        .iter()
        .filter(|(_, v)| !v.contains('\0'))
        .map(|(k, v)| (var_name(k), v.clone()))
        .collect();
    let mut set = |names: &[&str], value: String| {
        for n in names {
            env.push(((*n).to_owned(), value.clone()));
        }
    };
    set(&["mapreduce_job_id", "mapred_job_id"], task.job_id.clone());
    set(&["mapreduce_job_name"], task.job_name.clone());
    set(
        &["mapreduce_task_id", "mapred_tip_id"],
        task.task_id.clone(),
    );
    set(
        &["mapreduce_task_attempt_id", "mapred_task_id"],
        task.attempt_id.clone(),
    );
    set(
        &["mapreduce_task_ismap", "mapred_task_is_map"],
        task.is_map.to_string(),
    );
    set(
        &["mapreduce_task_partition", "mapred_task_partition"],
        task.partition.to_string(),
    );
    set(
        &["mapreduce_job_reduces", "mapred_reduce_tasks"],
        task.reducers.to_string(),
    );
    if let Some((file, start, len)) = &task.input {
        set(
            &["mapreduce_map_input_file", "map_input_file"],
            file.clone(),
        );
        set(
            &["mapreduce_map_input_start", "map_input_start"],
            start.to_string(),
        );
        set(
            &["mapreduce_map_input_length", "map_input_length"],
            len.to_string(),
        );
    }
    env.extend(cmdenv.iter().cloned());
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_become_variables_and_cmdenv_wins() {
        let params = BTreeMap::from([
            (
                "stream.num.map.output.key.fields".to_owned(),
                "2".to_owned(),
            ),
            ("my-key.x".to_owned(), "v".to_owned()),
        ]);
        let task = TaskInfo {
            job_id: "job_local1_0001".into(),
            attempt_id: "attempt_local1_0001_m_000002_0".into(),
            is_map: true,
            partition: 2,
            input: Some(("/in/a.txt".into(), 10, 20)),
            ..TaskInfo::default()
        };
        let cmdenv = [("mapreduce_task_partition".to_owned(), "9".to_owned())];
        let env = child_env(&params, &task, &cmdenv);
        let get = |k: &str| {
            env.iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("stream_num_map_output_key_fields"), Some("2"));
        assert_eq!(get("my_key_x"), Some("v"));
        assert_eq!(get("mapreduce_job_id"), Some("job_local1_0001"));
        assert_eq!(get("mapred_task_id"), get("mapreduce_task_attempt_id"));
        assert_eq!(get("mapreduce_map_input_file"), Some("/in/a.txt"));
        assert_eq!(get("map_input_start"), Some("10"));
        assert_eq!(get("mapreduce_task_ismap"), Some("true"));
        // The last definition of a name is the one a process sees.
        assert_eq!(get("mapreduce_task_partition"), Some("9"));
    }
}
