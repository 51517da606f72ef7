//! Yelp's mrjob (from PyPI, in the venv `scripts/python-env.sh` builds) drives a real
//! pseudo-distributed cluster through the Hadoop front door, `mrjob hadoop ...`, exactly as it
//! drives Hadoop: `python job.py -r hadoop --hadoop-bin '<mrjob> --conf C hadoop'
//! --hadoop-streaming-jar ANY input`. Each job's output must equal mrjob's own `-r inline`
//! runner's on the same input. One cluster serves every check of the file (clusters are
//! heavy on a 2-core machine); the checks that need none run on their own.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn mrjob_bin() -> &'static str {
    env!("CARGO_BIN_EXE_mrjob")
}

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

/// The venv's python, built by the project's script (a failed install fails the test).
fn must_python() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/python-env.sh");
    let out = Command::new(&script).output().unwrap();
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A cluster started with `mrjob cluster start` (3 hosts) on its own loopback network and
/// ports; stopped on drop, its directory kept when the test failed.
struct Cluster {
    dir: Option<tempfile::TempDir>,
    conf: PathBuf,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        // Ports below the ephemeral range, apart for concurrent test binaries.
        let port = 20_000 + (std::process::id() as u16).wrapping_mul(97) % 12_000;
        let out = Command::new(mrjob_bin())
            .args(["cluster", "start", "--hosts", "3", "--wait-secs", "90"])
            .args(["--base-addr", "127.0.9.0", "--base-port", &port.to_string()])
            .arg("--dir")
            .arg(dir.path())
            .env_remove("MRJOB_CONF")
            .output()
            .unwrap();
        let conf = dir.path().join("cluster.toml");
        let cluster = Cluster {
            dir: Some(dir),
            conf,
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "cluster start failed: {stderr}");
        cluster
    }

    /// `mrjob --conf C hadoop ARGS`.
    fn hadoop(&self, args: &[&str]) -> Output {
        Command::new(mrjob_bin())
            .arg("--conf")
            .arg(&self.conf)
            .arg("hadoop")
            .args(args)
            .env_remove("MRJOB_CONF")
            .output()
            .unwrap()
    }

    fn must_hadoop(&self, args: &[&str]) -> String {
        let out = self.hadoop(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "hadoop {args:?} failed: {stderr}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// The command mrjob is given as `--hadoop-bin` (it splits it as a shell would).
    fn hadoop_bin(&self) -> String {
        format!("{} --conf {} hadoop", mrjob_bin(), self.conf.display())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let dir = self.dir.as_ref().unwrap().path().to_owned();
        let _ = Command::new(mrjob_bin())
            .args(["cluster", "stop", "--dir"])
            .arg(&dir)
            .stderr(Stdio::null())
            .status();
        if std::thread::panicking() {
            let kept = self.dir.take().unwrap().keep();
            eprintln!("cluster logs and data kept in {}", kept.display());
        }
    }
}

/// Runs `python JOB.py -r RUNNER [extra] INPUT` with mrjob's config files ignored.
fn run_job(python: &Path, job: &str, runner: &[&str], input: &Path) -> Output {
    Command::new(python)
        .arg(python_dir().join(job))
        .arg("--no-conf")
        .args(runner)
        .arg(input)
        .env_remove("MRJOB_CONF")
        .output()
        .unwrap()
}

/// mrjob's output lines (`JSON-key<TAB>JSON-value`), sorted: the order of reduce partitions
/// is not part of the result.
fn sorted_lines(out: &Output) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

fn write_input(dir: &Path) -> PathBuf {
    let input = dir.join("input");
    std::fs::create_dir_all(&input).unwrap();
    let mut a = String::new();
    for i in 0..400 {
        a.push_str(&format!(
            "The quick brown fox {i} jumps over the lazy dog and the cat\n"
        ));
    }
    std::fs::write(input.join("a.txt"), a).unwrap();
    std::fs::write(
        input.join("b.txt"),
        "It is a truth universally acknowledged\nthat a single man in possession of a good \
         fortune\nmust be in want of a wife\n\n  Quick QUICK quick brown Brown\n",
    )
    .unwrap();
    std::fs::write(input.join("c.txt"), "").unwrap();
    input
}

fn hadoop_runner<'a>(cluster_bin: &'a str, python: &'a str) -> Vec<&'a str> {
    vec![
        "-r",
        "hadoop",
        "--hadoop-bin",
        cluster_bin,
        // Any path: `mrjob hadoop jar` does not read the jar.
        "--hadoop-streaming-jar",
        "/nonexistent/hadoop-streaming.jar",
        "--python-bin",
        python,
    ]
}

/// Checks that job `job` gives through `-r hadoop` on the cluster what `-r inline` gives, and
/// returns the hadoop run (its stderr is mrjob's log).
fn check_same_as_inline(cluster: &Cluster, python: &Path, job: &str, input: &Path) -> Output {
    let bin = cluster.hadoop_bin();
    let py = python.to_str().unwrap();
    let hadoop = run_job(python, job, &hadoop_runner(&bin, py), input);
    must_match_inline(python, job, input, &hadoop);
    hadoop
}

fn must_match_inline(python: &Path, job: &str, input: &Path, hadoop: &Output) {
    let inline = run_job(python, job, &["-r", "inline"], input);
    assert!(
        inline.status.success(),
        "{job} -r inline: {}",
        String::from_utf8_lossy(&inline.stderr)
    );
    let log = String::from_utf8_lossy(&hadoop.stderr);
    assert!(hadoop.status.success(), "{job} -r hadoop: {log}");
    let expected = sorted_lines(&inline);
    assert!(
        !expected.is_empty(),
        "{job}: the inline run printed nothing"
    );
    assert_eq!(
        sorted_lines(hadoop),
        expected,
        "{job}: -r hadoop vs -r inline"
    );
}

/// `-r hadoop` without `--hadoop-bin`: mrjob finds `hadoop` on `PATH` (a link to the binary,
/// which then answers as Hadoop) and the cluster comes from `MRJOB_CONF`.
fn run_with_hadoop_on_path(cluster: &Cluster, python: &Path, job: &str, input: &Path) -> Output {
    let bin_dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(mrjob_bin(), bin_dir.path().join("hadoop")).unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(python)
        .arg(python_dir().join(job))
        .args(["--no-conf", "-r", "hadoop", "--python-bin"])
        .arg(python)
        .args([
            "--hadoop-streaming-jar",
            "/nonexistent/hadoop-streaming.jar",
        ])
        .arg(input)
        .env("PATH", path)
        .env("MRJOB_CONF", &cluster.conf)
        .output()
        .unwrap()
}

/// The counter mrjob printed from our job log (`\t\tNAME=VALUE` under `Counters: N`).
fn counter_in_log(log: &str, name: &str) -> Option<u64> {
    let start = log.find("Counters: ")?;
    log[start..]
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}=")))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn hadoop_version_usage_and_the_hadoop_name() {
    let out = Command::new(mrjob_bin())
        .args(["hadoop", "version"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().next(), Some("Hadoop 3.3.6"), "{text}");

    let help = Command::new(mrjob_bin())
        .args(["hadoop", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("jar JAR STREAMING-ARGS"));

    // Run under the name `hadoop`, as a link on PATH is.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("hadoop");
    std::os::unix::fs::symlink(mrjob_bin(), &link).unwrap();
    let out = Command::new(&link).arg("version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Hadoop 3.3.6\n"));

    let bad: [(&[&str], u8, &str); 4] = [
        (&["hadoop", "frobnicate"], 1, "unknown command"),
        (
            &["hadoop", "fs", "-frobnicate", "/"],
            255,
            "-frobnicate: Unknown command",
        ),
        (
            &["hadoop", "fs", "-ls", "-Q", "/"],
            255,
            "Illegal option -Q",
        ),
        (&["hadoop", "fs", "-ls", "/"], 1, "no cluster configured"),
    ];
    for (args, code, message) in bad {
        let out = Command::new(mrjob_bin())
            .args(args)
            .env_remove("MRJOB_CONF")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(i32::from(code)),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

/// The `hadoop fs` commands mrjob calls, with the output and exit status it reads.
fn check_fs_commands(cluster: &Cluster, work: &Path) {
    let local = work.join("one.txt");
    std::fs::write(&local, "one line\n").unwrap();
    cluster.must_hadoop(&["fs", "-mkdir", "-p", "hdfs:///user/t/a/b"]);
    cluster.must_hadoop(&["fs", "-mkdir", "-p", "hdfs:///user/t/a/b"]);
    cluster.must_hadoop(&[
        "fs",
        "-put",
        local.to_str().unwrap(),
        "hdfs:///user/t/a/b/one.txt",
    ]);
    cluster.must_hadoop(&["fs", "-touchz", "/user/t/a/_SUCCESS"]);
    let listing = cluster.must_hadoop(&["fs", "-ls", "-R", "hdfs:///user/t"]);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 4, "{listing}");
    // Depth first, a directory before what is in it, each path after the HH:MM field.
    let paths: Vec<&str> = lines
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/user/t/a",
            "/user/t/a/_SUCCESS",
            "/user/t/a/b",
            "/user/t/a/b/one.txt"
        ]
    );
    assert!(lines[0].starts_with("drwxr-xr-x   - "), "{listing}");
    let file: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!((file[0], file[4]), ("-rw-r--r--", "9"), "{listing}");
    assert_eq!(file[6].len(), 5, "HH:MM: {listing}");
    let found = cluster.must_hadoop(&["fs", "-ls", "/user/t/a"]);
    assert!(found.starts_with("Found 2 items\n"), "{found}");
    assert_eq!(
        cluster.must_hadoop(&["fs", "-cat", "hdfs:///user/t/a/b/one.txt"]),
        "one line\n"
    );
    let du = cluster.must_hadoop(&["fs", "-du", "hdfs:///user/t/a/b"]);
    assert_eq!(du.split_whitespace().next(), Some("9"), "{du}");

    // What mrjob's exists() and rm() accept: `ls: ... No such file`, `rm -f` quiet.
    let missing = cluster.hadoop(&["fs", "-ls", "hdfs:///user/t/nope"]);
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.starts_with("ls: ") && stderr.contains("No such file"),
        "{stderr}"
    );
    let test = |flag: &str, p: &str| cluster.hadoop(&["fs", "-test", flag, p]).status.code();
    assert_eq!(test("-e", "/user/t/a/b/one.txt"), Some(0));
    assert_eq!(test("-d", "/user/t/a/b/one.txt"), Some(1));
    assert_eq!(test("-e", "/user/t/nope"), Some(1));
    assert_eq!(test("-z", "/user/t/a/_SUCCESS"), Some(0));
    let quiet = cluster.hadoop(&["fs", "-rm", "-R", "-f", "-skipTrash", "hdfs:///user/t/nope"]);
    assert!(quiet.status.success() && quiet.stderr.is_empty());
    check_fs_patterns(cluster);
    let dir_without_r = cluster.hadoop(&["fs", "-rm", "/user/t/a"]);
    assert_eq!(dir_without_r.status.code(), Some(1));
    cluster.must_hadoop(&["fs", "-rm", "-R", "-f", "-skipTrash", "hdfs:///user/t"]);
    assert_eq!(test("-e", "/user/t"), Some(1));
}

/// Glob patterns, as Hadoop's shell expands them (mrjob checks an input glob with `-ls` and
/// sizes it with `-du`); a pattern that matches nothing is reported like a missing path.
fn check_fs_patterns(cluster: &Cluster) {
    let listing = cluster.must_hadoop(&["fs", "-ls", "hdfs:///user/t/a/*/one.*"]);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 1, "{listing}");
    assert!(lines[0].ends_with(" /user/t/a/b/one.txt"), "{listing}");
    let none = cluster.hadoop(&["fs", "-ls", "hdfs:///user/t/a/zz*"]);
    assert_eq!(none.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&none.stderr);
    assert!(
        stderr.contains("`hdfs:///user/t/a/zz*': No such file or directory"),
        "{stderr}"
    );
    assert_eq!(
        cluster.must_hadoop(&["fs", "-cat", "/user/t/a/[ab]/*.txt"]),
        "one line\n"
    );
    let du = cluster.must_hadoop(&["fs", "-du", "-s", "hdfs:///user/t/a/{b,c}"]);
    assert_eq!(du.split_whitespace().next(), Some("9"), "{du}");
    let test = |flag: &str, p: &str| cluster.hadoop(&["fs", "-test", flag, p]).status.code();
    assert_eq!(test("-e", "hdfs:///user/t/a/b/*.txt"), Some(0));
    assert_eq!(test("-d", "/user/t/a/?"), Some(0));
    assert_eq!(test("-f", "/user/t/a/?"), Some(1));
    assert_eq!(test("-e", "/user/t/a/b/*.gz"), Some(1));
    let bad = cluster.hadoop(&["fs", "-ls", "/user/t/a/[b"]);
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn yelp_mrjob_runs_unchanged_on_the_cluster() {
    let python = must_python();
    let work = tempfile::tempdir().unwrap();
    let input = write_input(work.path());
    let cluster = Cluster::start();
    check_fs_commands(&cluster, work.path());

    // A word count with a combiner; mrjob shows the counters our job log carries.
    let run = check_same_as_inline(&cluster, &python, "mr_wordcount.py", &input);
    let log = String::from_utf8_lossy(&run.stderr);
    // 400 lines in a.txt, 5 in b.txt (one empty), none in c.txt.
    assert_eq!(counter_in_log(&log, "lines"), Some(405), "{log}");
    assert!(counter_in_log(&log, "Map input records").is_some(), "{log}");

    // Input already in dfs, named by a glob: mrjob checks that it exists with `fs -ls GLOB`.
    cluster.must_hadoop(&["fs", "-mkdir", "-p", "hdfs:///user/g/in"]);
    for f in ["a.txt", "b.txt", "c.txt"] {
        let src = input.join(f);
        let dst = format!("hdfs:///user/g/in/{f}");
        cluster.must_hadoop(&["fs", "-put", src.to_str().unwrap(), &dst]);
    }
    let (bin, py) = (cluster.hadoop_bin(), python.to_str().unwrap());
    let globbed = Path::new("hdfs:///user/g/in/*.txt");
    let run = run_job(
        &python,
        "mr_wordcount.py",
        &hadoop_runner(&bin, py),
        globbed,
    );
    must_match_inline(&python, "mr_wordcount.py", &input, &run);

    check_same_as_inline(&cluster, &python, "mr_multistep.py", &input);
    check_same_as_inline(&cluster, &python, "mr_sidefile.py", &input);
    let on_path = run_with_hadoop_on_path(&cluster, &python, "mr_inputfile.py", &input);
    must_match_inline(&python, "mr_inputfile.py", &input, &on_path);
    check_same_as_inline(&cluster, &python, "mr_sortvalues.py", &input);

    // A failing job: non-zero exit, and the Python traceback in what mrjob prints.
    std::fs::write(input.join("d.txt"), "fine\nplease explode here\n").unwrap();
    let bin = cluster.hadoop_bin();
    let py = python.to_str().unwrap();
    let failed = run_job(&python, "mr_failing.py", &hadoop_runner(&bin, py), &input);
    let log = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success(), "{log}");
    assert!(log.contains("Traceback (most recent call last)"), "{log}");
    assert!(log.contains("the mapper was told to explode"), "{log}");
    // From our `Task Id : attempt_..., Status : FAILED` record, as from Hadoop's.
    assert!(log.contains("Probable cause of failure"), "{log}");
}
