//! The job log lines `hadoop jar` prints on stderr, in the log4j layout Hadoop's job client
//! uses (`2026-12-06 15:50:00,123 INFO mapreduce.Job: ...`), which is what Yelp's mrjob
//! parses (mrjob/logs/step.py): the `Running job:` line with the job id, the
//! `map N% reduce M%` progress line, `Counters: N` followed by tab-indented groups and
//! `name=value` lines, the `Output directory:` URI, and on failure the error's lines (the
//! task's stderr tail, so a Python traceback) followed by `Streaming Command Failed!`.
//! Pure: callers print the lines.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::counters::Counters;

/// A Hadoop-shaped job id (`job_<ms>_0001`, the client's start time in milliseconds): the
/// Streaming entry point reports a finished job without its cluster id, and mrjob only needs
/// the shape (`job_\d+_\d{4}`) to name the job in its messages.
pub fn job_id(start: SystemTime) -> String {
    format!("job_{}_0001", millis(start))
}

/// One log4j line: `YYYY-MM-DD HH:MM:SS,mmm LEVEL LOGGER: MESSAGE`.
pub fn line(at: SystemTime, level: &str, logger: &str, message: &str) -> String {
    let ms = millis(at);
    let minutes = dfs::shell::format_time(ms);
    let (secs, frac) = ((ms / 1000) % 60, ms % 1000);
    format!("{minutes}:{secs:02},{frac:03} {level} {logger}: {message}")
}

/// The lines printed when a job starts.
pub fn started(at: SystemTime, job: &str) -> Vec<String> {
    vec![
        line(at, "INFO", "mapreduce.Job", &format!("Running job: {job}")),
        line(at, "INFO", "mapreduce.Job", " map 0% reduce 0%"),
    ]
}

/// The lines printed when a job has succeeded: progress, completion, the counters block and
/// the output directory (see [`output_uri`]).
pub fn succeeded(
    at: SystemTime,
    job: &str,
    counters: &Counters,
    output: &Path,
    on_dfs: bool,
) -> Vec<String> {
    let mut lines = vec![
        line(at, "INFO", "mapreduce.Job", " map 100% reduce 100%"),
        line(
            at,
            "INFO",
            "mapreduce.Job",
            &format!("Job {job} completed successfully"),
        ),
    ];
    let block = counter_block(counters, on_dfs);
    lines.push(line(at, "INFO", "mapreduce.Job", &block[0]));
    lines.extend(block[1..].iter().cloned());
    let dir = format!("Output directory: {}", output_uri(output, on_dfs));
    lines.push(line(at, "INFO", "streaming.StreamJob", &dir));
    lines
}

/// The lines printed when a job failed: when the error names a task, Hadoop's `Task Id :
/// attempt_..., Status : FAILED` record followed by the error (mrjob shows it as the "probable
/// cause of failure"); then the error as one log record (its later lines are the record's
/// continuation, so mrjob shows them together), and Streaming's closing line.
pub fn failed(at: SystemTime, job: &str, error: &str) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(attempt) = failed_attempt(job, error) {
        let status = format!("Task Id : {attempt}, Status : FAILED");
        lines.push(line(at, "INFO", "mapreduce.Job", &status));
        lines.extend(error.lines().map(str::to_owned));
    }
    lines.push(line(
        at,
        "ERROR",
        "streaming.StreamJob",
        &format!("Job {job} not successful! Error: {}", first_line(error)),
    ));
    lines.extend(error.lines().skip(1).map(str::to_owned));
    lines.push("Streaming Command Failed!".to_owned());
    lines
}

/// A Hadoop attempt id (`attempt_<job digits>_<job seq>_m_000001_0`) for the first task an
/// error names (`task_0001_m_000001` on a cluster, `m_000001` locally), or `None`. The
/// attempt number is not in the error; 0 stands for it.
fn failed_attempt(job: &str, error: &str) -> Option<String> {
    let job_part = job.strip_prefix("job_")?;
    let bytes = error.as_bytes();
    (1..bytes.len().saturating_sub(8)).find_map(|i| {
        let kind = bytes[i];
        let boundary = matches!(bytes[i - 1], b'_' | b' ');
        let digits = &bytes[i + 2..i + 8];
        let after = bytes.get(i + 8).is_none_or(|b| !b.is_ascii_digit());
        let is_task = matches!(kind, b'm' | b'r')
            && bytes[i + 1] == b'_'
            && digits.iter().all(u8::is_ascii_digit);
        (boundary && is_task && after).then(|| {
            let number = std::str::from_utf8(digits).unwrap_or("000000");
            format!("attempt_{job_part}_{}_{number}_0", kind as char)
        })
    })
}

/// The output directory as the URI mrjob expects (`\S+://\S+`): a dfs path (`/p`, or
/// `dfs://HOST:PORT/p`) as `hdfs://HOST:PORT/p` or `hdfs:///p`; a local one as `file:///p`
/// (the caller makes it absolute).
pub fn output_uri(output: &Path, on_dfs: bool) -> String {
    let text = output.to_string_lossy();
    match dfs::path::strip_scheme(&text) {
        Some(rest) => format!("hdfs://{rest}"),
        None if on_dfs => format!("hdfs://{text}"),
        None => format!("file://{text}"),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// `Counters: N`, then each group indented by one tab and its counters by two, as Hadoop's
/// job client prints them. Hadoop's names for the framework counters (the filesystem ones
/// prefixed `DFS:` on a cluster, `FILE:` locally, as Hadoop prefixes `HDFS:` and `FILE:`);
/// user counters (from `reporter:counter:` lines) under their own groups.
pub fn counter_block(c: &Counters, on_dfs: bool) -> Vec<String> {
    let t = &c.task;
    let (read, written) = if on_dfs {
        ("DFS: Number of bytes read", "DFS: Number of bytes written")
    } else {
        (
            "FILE: Number of bytes read",
            "FILE: Number of bytes written",
        )
    };
    let groups: Vec<(&str, Vec<(&str, u64)>)> = vec![
        (
            "File System Counters",
            vec![(read, t.map_input_bytes), (written, t.output_bytes)],
        ),
        (
            "Job Counters ",
            vec![
                ("Launched map tasks", c.map_tasks),
                ("Launched reduce tasks", c.reduce_tasks),
            ],
        ),
        (
            "Map-Reduce Framework",
            vec![
                ("Map input records", t.map_input_records),
                ("Map output records", t.map_output_records),
                ("Map output bytes", t.map_output_bytes),
                ("Combine input records", t.combine_input_records),
                ("Combine output records", t.combine_output_records),
                ("Reduce input groups", t.reduce_input_groups),
                ("Reduce shuffle bytes", t.reduce_shuffle_bytes),
                ("Reduce input records", t.reduce_input_records),
                ("Reduce output records", t.output_records),
                ("Spilled Records", t.spilled_records),
            ],
        ),
    ];
    let count = groups.iter().map(|(_, v)| v.len()).sum::<usize>() + c.user.len();
    let mut lines = vec![format!("Counters: {count}")];
    for (group, counters) in groups {
        lines.push(format!("\t{group}"));
        lines.extend(counters.iter().map(|(n, v)| format!("\t\t{n}={v}")));
    }
    let mut current = None;
    for ((group, name), value) in &c.user {
        if current != Some(group) {
            lines.push(format!("\t{group}"));
            current = Some(group);
        }
        lines.push(format!("\t\t{name}={value}"));
    }
    lines
}

fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
    }

    /// mrjob/logs/log4j.py's record pattern, in words: a timestamp, an upper-case level, a
    /// logger without spaces, `: `, the message.
    fn message_of(line: &str) -> Option<&str> {
        let mut parts = line.splitn(5, ' ');
        let (_date, _time) = (parts.next()?, parts.next()?);
        let level = parts.next()?;
        let logger = parts.next()?.strip_suffix(':')?;
        let upper = !level.is_empty() && level.chars().all(|c| c.is_ascii_uppercase());
        (upper && !logger.is_empty()).then(|| parts.next().unwrap_or(""))
    }

    #[test]
    fn lines_are_log4j_records() {
        let l = line(at(), "INFO", "mapreduce.Job", "Running job: job_1_0001");
        assert_eq!(
            l,
            "2023-11-14 22:13:20,123 INFO mapreduce.Job: Running job: job_1_0001"
        );
        assert_eq!(message_of(&l), Some("Running job: job_1_0001"));
        assert_eq!(job_id(at()), "job_1700000000123_0001");
        let start = started(at(), "job_1_0001");
        assert_eq!(message_of(&start[1]), Some(" map 0% reduce 0%"));
    }

    #[test]
    fn counters_block_parses_as_mrjob_parses_it() {
        let mut c = Counters::default();
        c.task.map_input_records = 7;
        c.map_tasks = 2;
        c.incr("wordcount", "lines=seen", 5);
        c.incr("wordcount", "empty", 1);
        let lines = succeeded(at(), "job_1_0001", &c, Path::new("/user/a/out"), true);
        let start = lines
            .iter()
            .position(|l| message_of(l).is_some_and(|m| m.starts_with("Counters: ")))
            .unwrap();
        let n: usize = message_of(&lines[start]).unwrap()["Counters: ".len()..]
            .parse()
            .unwrap();
        // The block is the lines after the record that are not records themselves.
        let block: Vec<&String> = lines[start + 1..]
            .iter()
            .take_while(|l| message_of(l).is_none())
            .collect();
        let counters: Vec<&&String> = block.iter().filter(|l| l.starts_with("\t\t")).collect();
        assert_eq!(counters.len(), n, "{block:#?}");
        assert!(block.contains(&&"\t\tMap input records=7".to_owned()));
        assert!(block.contains(&&"\t\tLaunched map tasks=2".to_owned()));
        let user = block.iter().position(|l| *l == "\twordcount").unwrap();
        assert_eq!(block[user + 1], "\t\tempty=1");
        assert_eq!(block[user + 2], "\t\tlines=seen=5");
        let out = message_of(lines.last().unwrap()).unwrap();
        assert_eq!(out, "Output directory: hdfs:///user/a/out");
    }

    #[test]
    fn output_uris_have_a_scheme() {
        let uri = |p: &str, on_dfs| output_uri(Path::new(p), on_dfs);
        assert_eq!(uri("dfs:///user/a/out", true), "hdfs:///user/a/out");
        assert_eq!(
            uri("dfs://127.0.0.1:8020/o", true),
            "hdfs://127.0.0.1:8020/o"
        );
        assert_eq!(uri("/user/a/out", true), "hdfs:///user/a/out");
        assert_eq!(uri("/tmp/out", false), "file:///tmp/out");
    }

    #[test]
    fn a_failure_carries_the_whole_error_then_streamings_last_line() {
        let error = "task m_000001 failed: exit status 1; stderr tail:\nTraceback (most recent call last):\n  File \"x.py\", line 3\nValueError: boom";
        let lines = failed(at(), "job_1_0001", error);
        // mrjob's pattern: `^Task Id *: (attempt_\d+_\d{4}_[mr]_\d+_\d+), Status *: FAILED$`.
        let status = message_of(&lines[0]).unwrap();
        assert_eq!(
            status,
            "Task Id : attempt_1_0001_m_000001_0, Status : FAILED"
        );
        assert_eq!(lines[1], error.lines().next().unwrap());
        assert_eq!(lines[2], "Traceback (most recent call last):");
        let end = lines
            .iter()
            .position(|l| l.contains("not successful"))
            .unwrap();
        assert!(message_of(&lines[end])
            .unwrap()
            .contains("task m_000001 failed"));
        assert_eq!(lines[end + 1], "Traceback (most recent call last):");
        assert!(lines
            .iter()
            .all(|l| l != "ValueError: boom" || message_of(l).is_none()));
        assert_eq!(lines.last().unwrap(), "Streaming Command Failed!");
        let cluster = "job 1 (streaming) failed: task_0001_r_000012 failed 4 times; last error: x";
        let attempt = failed_attempt("job_17_0001", cluster);
        assert_eq!(attempt.as_deref(), Some("attempt_17_0001_r_000012_0"));
        assert_eq!(
            failed_attempt("job_17_0001", "no task here: m_12 am_000001"),
            None
        );
        assert_eq!(failed(at(), "job_1_0001", "bad input").len(), 2);
    }
}
