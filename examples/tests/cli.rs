//! The `mrjob` binary as a user runs it: help, success, and every bad-input case, each
//! checking the one-line error, the exit status, and that no output is left visible (G7).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::names_in;

fn mrjob(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mrjob"))
        .args(args)
        .current_dir(cwd)
        // Local mode: a cluster configured in the caller's environment must not matter.
        .env_remove("MRJOB_CONF")
        .output()
        .expect("run mrjob")
}

/// Asserts failure with a single `mrjob: error:` line containing `needle`.
fn assert_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one-line error expected, got: {stderr}");
    assert!(lines[0].starts_with("mrjob: error: "), "{stderr}");
    assert!(
        lines[0].contains(needle),
        "error should mention {needle:?}: {stderr}"
    );
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    std::fs::write(dir.path().join("in/a.txt"), b"to be or not to be\n").unwrap();
    dir
}

#[test]
fn help_lists_every_job() {
    let dir = setup();
    let out = mrjob(&["--help"], dir.path());
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for job in [
        "wordcount",
        "grep",
        "teragen",
        "terasort",
        "teravalidate",
        "invertedindex",
    ] {
        assert!(text.contains(job), "{job} missing from --help: {text}");
    }
    let out = mrjob(&["grep", "--help"], dir.path());
    assert!(String::from_utf8_lossy(&out.stdout).contains("sorted by count"));
}

#[test]
fn wordcount_succeeds_and_prints_counters() {
    let dir = setup();
    let out = mrjob(&["wordcount", "in", "out"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Map input records=1"), "{stderr}");
    assert!(stderr.contains("Reduce input groups=4"), "{stderr}");
    // No progress bar when stderr is not a terminal.
    assert!(!stderr.contains("maps "), "{stderr}");
    let mut lines = common::sorted_output_lines(&dir.path().join("out"));
    lines.sort();
    assert_eq!(lines, [&b"be\t2"[..], b"not\t1", b"or\t1", b"to\t2"]);
}

// Checks G7: a missing input says where it was looked for, and how to look elsewhere.
#[test]
fn missing_input() {
    let dir = setup();
    let out = mrjob(&["wordcount", "nope", "out"], dir.path());
    assert_error(
        &out,
        "input nope: no such file or directory on this machine",
    );
    assert_error(&out, "MRJOB_CONF");
    // A dfs-looking path without a cluster: the same, for terasort's sampling too.
    let out = mrjob(&["terasort", "/in-nowhere", "out"], dir.path());
    assert_error(
        &out,
        "input /in-nowhere: no such file or directory on this machine",
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn teragen_help_lists_only_its_options() {
    let dir = setup();
    let out = mrjob(&["teragen", "--help"], dir.path());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    for applies in ["--maps", "--threads", "--no-sync", "--quiet", "--local"] {
        assert!(help.contains(applies), "{applies} missing: {help}");
    }
    for foreign in [
        "--no-combiner",
        "--sort-buffer",
        "--split-size",
        "--max-record-size",
        "--reducers",
        "--local-dir",
    ] {
        assert!(!help.contains(foreign), "{foreign} listed: {help}");
    }
    let out = mrjob(&["teragen", "1000", "gen", "-t", "2", "-q"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("gen/_SUCCESS").exists());
}

#[test]
fn empty_input_directory() {
    let dir = setup();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    assert_error(
        &mrjob(&["wordcount", "empty", "out"], dir.path()),
        "no input files",
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn output_exists_is_untouched() {
    let dir = setup();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    std::fs::write(dir.path().join("out/keep"), b"mine").unwrap();
    assert_error(
        &mrjob(&["wordcount", "in", "out"], dir.path()),
        "already exists",
    );
    assert_eq!(names_in(&dir.path().join("out")), ["keep"]);
}

#[test]
fn unwritable_output() {
    let dir = setup();
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    // A path under a regular file cannot be created, even by root.
    assert_error(
        &mrjob(&["wordcount", "in", "file/out"], dir.path()),
        "file/out: file is a file, not a directory",
    );
}

#[test]
fn invalid_regex() {
    let dir = setup();
    assert_error(
        &mrjob(&["grep", "in", "out", "a(b"], dir.path()),
        "invalid regex \"a(b\": unclosed group",
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn bad_numbers_in_options() {
    let dir = setup();
    for args in [
        &["wordcount", "in", "out", "--reducers", "abc"][..],
        &["wordcount", "in", "out", "--sort-buffer", "12XB"],
        &["wordcount", "in", "out", "--threads=-1"],
        &["teragen", "lots", "out"],
    ] {
        let out = mrjob(args, dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("invalid value"), "{args:?}: {stderr}");
        assert!(!dir.path().join("out").exists());
    }
    assert_error(
        &mrjob(&["wordcount", "in", "out", "--threads", "0"], dir.path()),
        "threads",
    );
    assert_error(
        &mrjob(
            &["wordcount", "in", "out", "--sort-buffer", "10"],
            dir.path(),
        ),
        "sort buffer",
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn line_longer_than_sort_buffer_is_handled() {
    let dir = setup();
    let long: Vec<u8> = b"word ".repeat(50_000); // 250 KB line, sort buffer 4 KiB
    std::fs::write(
        dir.path().join("in/long.txt"),
        [&long[..], b"\nend\n"].concat(),
    )
    .unwrap();
    let out = mrjob(
        &["wordcount", "in", "out", "--sort-buffer", "4KiB", "-q"],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = common::sorted_output_lines(&dir.path().join("out"));
    assert!(lines.contains(&b"word\t50000".to_vec()), "{lines:?}");
}

#[test]
fn line_longer_than_record_limit_names_file_and_offset() {
    let dir = setup();
    let long = vec![b'x'; 10_000];
    std::fs::write(
        dir.path().join("in/b.txt"),
        [&b"ok\n"[..], &long, b"\n"].concat(),
    )
    .unwrap();
    let out = mrjob(
        &["wordcount", "in", "out", "--max-record-size", "4KiB"],
        dir.path(),
    );
    // A byte offset said as one (not `file:3`, which reads as a line number), and the flag
    // that raises the limit.
    assert_error(
        &out,
        "b.txt: the record at byte offset 3 is longer than the limit of 4096 bytes \
         (raise it with --max-record-size)",
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn truncated_terasort_input_fails_cleanly() {
    let dir = setup();
    assert!(mrjob(&["teragen", "1000", "gen", "-q"], dir.path())
        .status
        .success());
    let part = dir.path().join("gen/part-m-00000");
    let bytes = std::fs::read(&part).unwrap();
    std::fs::write(&part, &bytes[..bytes.len() - 37]).unwrap();
    assert_error(
        &mrjob(&["teravalidate", "gen", "v", "-q"], dir.path()),
        "truncated record",
    );
    assert!(!dir.path().join("v").exists());
    assert_error(
        &mrjob(&["terasort", "gen", "s", "-q"], dir.path()),
        "truncated record",
    );
    assert!(!dir.path().join("s").exists());
}

#[test]
fn teravalidate_exit_status_reflects_order() {
    let dir = setup();
    assert!(mrjob(&["teragen", "5000", "gen", "-q"], dir.path())
        .status
        .success());
    assert!(mrjob(&["terasort", "gen", "sorted", "-q"], dir.path())
        .status
        .success());
    let ok = mrjob(&["teravalidate", "sorted", "v1", "-q"], dir.path());
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("OK: 5000 records"));
    // teragen output is random, so unsorted.
    let bad = mrjob(&["teravalidate", "gen", "v2", "-q"], dir.path());
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("misorder"));
}

#[test]
fn interrupted_job_leaves_no_output() {
    let dir = setup();
    // Enough input that the job is still running when the signal arrives.
    let big: Vec<u8> = b"alpha beta gamma delta\n".repeat(2_000_000);
    std::fs::write(dir.path().join("in/big.txt"), &big).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mrjob"))
        .args([
            "wordcount",
            "in",
            "out",
            "-q",
            "--threads",
            "1",
            "--split-size",
            "1MiB",
        ])
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out_dir = dir.path().join("out");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !out_dir.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(out_dir.exists(), "job never created its output directory");
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    if status.success() {
        // The job won the race; then its output must be complete.
        assert!(out_dir.join("_SUCCESS").exists());
        return;
    }
    assert_eq!(status.code(), Some(130));
    assert!(
        !out_dir.exists(),
        "interrupted job left {:?}",
        names_in(&out_dir)
    );
}

// Checks G7: dfs paths without a cluster, or with --local, are clear errors.
#[test]
fn dfs_paths_need_a_cluster() {
    let dir = setup();
    let out = mrjob(&["wordcount", "dfs:///in", "dfs:///out"], dir.path());
    assert_error(&out, "MRJOB_CONF");
    let out = mrjob(&["wordcount", "--local", "dfs:///in", "out"], dir.path());
    assert_error(&out, "--local");
    let out = mrjob(
        &["--conf", "/nonexistent.toml", "wordcount", "in", "out"],
        dir.path(),
    );
    assert_error(&out, "nonexistent.toml");
    assert!(!dir.path().join("out").exists());
}

// The exit status that says "submitted, outcome unknown" is documented where a user looks.
#[test]
fn help_documents_the_exit_statuses() {
    let dir = setup();
    let out = mrjob(&["--help"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Exit status"), "{text}");
    assert!(
        text.contains("3 a submitted job's outcome is unknown"),
        "{text}"
    );
    assert!(text.contains("mrjob status ID"), "{text}");
}

// Checks G7: `cluster` commands that cannot know which cluster, or where to put it, say so.
#[test]
fn cluster_commands_with_no_cluster_or_a_bad_layout_are_clear_errors() {
    let dir = setup();
    for cmd in ["status", "stop"] {
        let out = mrjob(&["cluster", cmd], dir.path());
        assert_error(&out, "--dir DIR, --conf FILE or set MRJOB_CONF");
    }
    let out = mrjob(
        &["cluster", "start", "--dir", "c", "--base-addr", "10.0.0.0"],
        dir.path(),
    );
    assert_error(&out, "--base-addr 10.0.0.0");
    let out = mrjob(
        &["cluster", "start", "--dir", "c", "--base-port", "65533"],
        dir.path(),
    );
    assert_error(&out, "--base-port 65533");
    assert!(
        !dir.path().join("c").exists(),
        "a refused start wrote a config"
    );
}

// grep runs two chained jobs; each shows its own counters, so the sort's output records are
// the result lines (not the sum of both jobs' records, which counted every match twice).
#[test]
fn grep_shows_each_steps_counters() {
    let dir = setup();
    let out = mrjob(&["grep", "in", "out", "[a-z]+"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let result = std::fs::read_to_string(dir.path().join("out/part-r-00000")).unwrap();
    // to, be, or, not.
    assert_eq!(result.lines().count(), 4, "{result}");
    let step1 = stderr.find("Step 1 of 2 (grep-count)").expect("step 1");
    let step2 = stderr.find("Step 2 of 2 (grep-sort)").expect("step 2");
    assert!(step1 < step2, "{stderr}");
    let records = |text: &str| -> Vec<u64> {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("Output records="))
            .map(|v| v.parse().unwrap())
            .collect()
    };
    assert_eq!(records(&stderr[step1..step2]), vec![4], "{stderr}");
    assert_eq!(records(&stderr[step2..]), vec![4], "{stderr}");
    assert!(
        stderr.contains("Job grep completed successfully in") && stderr.contains("(2 steps)"),
        "{stderr}"
    );
}

// Log output that is not a terminal carries no ANSI colour codes (a daemon's log file).
#[test]
fn logs_to_a_file_have_no_colour_codes() {
    let dir = setup();
    let out = Command::new(env!("CARGO_BIN_EXE_mrjob"))
        .args(["wordcount", "in", "out"])
        .current_dir(dir.path())
        .env_remove("MRJOB_CONF")
        .env("RUST_LOG", "debug")
        .output()
        .expect("run mrjob");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DEBUG") || stderr.contains("INFO"),
        "logging expected: {stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "escape codes in a log file: {stderr:?}"
    );
}

// A local run keeps each Streaming mapper's stderr (passed through to the terminal as well)
// bounded under the local directory, laid out as a worker's: mrjob/logs/JOB/ATTEMPT/stderr.
#[test]
fn a_local_streaming_tasks_stderr_is_kept_bounded() {
    let dir = setup();
    let tmp = tempfile::tempdir().unwrap();
    let mapper = "sh -c 'echo first-line >&2; yes flood | head -c 500000 >&2; cat'";
    let out = Command::new(env!("CARGO_BIN_EXE_mrjob"))
        .args([
            "streaming",
            "-input",
            "in",
            "-output",
            "out",
            "-mapper",
            mapper,
        ])
        .args(["-reducer", "NONE"])
        .current_dir(dir.path())
        .env_remove("MRJOB_CONF")
        .env("TMPDIR", tmp.path())
        .output()
        .expect("run mrjob");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}",
        &stderr[stderr.len().saturating_sub(2000)..]
    );
    assert!(stderr.contains("first-line"), "still passed through");
    let logs = tmp.path().join("mrjob/logs");
    let jobs: Vec<_> = std::fs::read_dir(&logs).unwrap().flatten().collect();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let attempts: Vec<_> = std::fs::read_dir(jobs[0].path())
        .unwrap()
        .flatten()
        .collect();
    let map = attempts
        .iter()
        .find(|a| a.file_name().to_string_lossy().ends_with("_m_000000_0"))
        .unwrap_or_else(|| panic!("{attempts:?}"));
    let kept = std::fs::read_to_string(map.path().join("stderr")).unwrap();
    assert!(kept.starts_with("first-line\n"), "{}", &kept[..100]);
    assert!(kept.contains("bytes cut"), "bounded");
    assert!(kept.len() <= 2 * 65_536 + 200, "{} bytes", kept.len());
}
