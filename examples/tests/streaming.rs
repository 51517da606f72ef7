//! Hadoop Streaming (`mrjob streaming`) with real Python 3 scripts as mapper, combiner and
//! reducer, run as real processes through real pipes: locally, and on one pseudo-distributed
//! cluster. Outputs are compared byte for byte with references computed here in Rust.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{names_in, part_files, rng, seed, sorted_output_lines};
use rand::Rng;

fn mrjob() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mrjob"));
    c.env_remove("MRJOB_CONF");
    c
}

const MAPPER: &str = r#"import sys
for line in sys.stdin:
    for word in line.split():
        print(word + "\t1")
"#;

const REDUCER: &str = r#"import sys
current, total = None, 0
for line in sys.stdin:
    key, value = line.rstrip("\n").split("\t", 1)
    if key != current:
        if current is not None:
            print(current + "\t" + str(total))
        current, total = key, 0
    total += int(value)
if current is not None:
    print(current + "\t" + str(total))
"#;

/// A work directory with the word count scripts and `files` input files of ASCII words.
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Work {
        let w = Work {
            dir: tempfile::tempdir().unwrap(),
        };
        w.write("mapper.py", MAPPER);
        w.write("reducer.py", REDUCER);
        w
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Writes `files` files of random words into `in/`; returns the text of all of them.
    fn corpus(&self, test: &str, files: usize, lines: usize) -> String {
        let mut r = rng(seed(test));
        let mut all = String::new();
        for f in 0..files {
            let mut text = String::new();
            for _ in 0..lines {
                for _ in 0..r.gen_range(0..10) {
                    let i = (r.gen::<f64>().powi(2) * 300.0) as usize;
                    text.push_str(&format!("w{i}"));
                    text.push_str([" ", "  ", "\t"][r.gen_range(0..3)]);
                }
                text.push('\n');
            }
            self.write(&format!("in/f{f}.txt"), &text);
            all.push_str(&text);
        }
        all
    }

    /// Runs `mrjob streaming ARGS` here (scripts are referenced relative to this directory).
    fn streaming(&self, args: &[&str]) -> Output {
        mrjob()
            .arg("streaming")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    fn must_streaming(&self, args: &[&str]) -> String {
        let out = self.streaming(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "streaming {args:?} failed: {stderr}");
        stderr
    }
}

/// The word count of `text` as `word\tcount` lines, sorted bytewise.
fn word_counts(text: &str) -> Vec<Vec<u8>> {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for w in text.split_ascii_whitespace() {
        *counts.entry(w).or_default() += 1;
    }
    let mut lines: Vec<Vec<u8>> = counts
        .iter()
        .map(|(w, n)| format!("{w}\t{n}").into_bytes())
        .collect();
    lines.sort();
    lines
}

/// Every part file, concatenated in name order.
fn concatenated(out: &Path) -> Vec<u8> {
    part_files(out)
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect()
}

const WORDCOUNT: &[&str] = &[
    "-input",
    "in",
    "-output",
    "out",
    "-mapper",
    "python3 mapper.py",
    "-reducer",
    "python3 reducer.py",
    "-files",
    "mapper.py,reducer.py",
];

#[test]
fn wordcount_equals_the_reference() {
    let w = Work::new();
    let text = w.corpus("wordcount_equals_the_reference", 3, 3000);
    let stderr = w.must_streaming(&[WORDCOUNT, &["-numReduceTasks", "3"]].concat());
    assert_eq!(sorted_output_lines(&w.path("out")), word_counts(&text));
    assert_eq!(part_files(&w.path("out")).len(), 3);
    // Each part file is sorted by key, as the reducer received its keys in order.
    for p in part_files(&w.path("out")) {
        let data = std::fs::read(&p).unwrap();
        let keys: Vec<&[u8]> = data
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| l.split(|&b| b == b'\t').next().unwrap())
            .collect();
        assert!(keys.windows(2).all(|k| k[0] < k[1]), "{}", p.display());
    }
    assert!(stderr.contains("Launched map tasks=3"), "{stderr}");
    assert!(stderr.contains("Combine input records=0"), "{stderr}");
}

#[test]
fn combiner_runs_on_the_map_side_and_is_counted() {
    let w = Work::new();
    let text = w.corpus("combiner_runs_on_the_map_side_and_is_counted", 2, 2000);
    // The reducer, counting each group it writes: a combiner's counters are the task's.
    let counting = REDUCER.replace(
        "print(current + ",
        "sys.stderr.write('reporter:counter:Combiner,groups,1\\n'); print(current + ",
    );
    w.write("comb.py", &counting);
    let combiner = ["-combiner", "python3 comb.py", "-files", "comb.py"];
    let args = [WORDCOUNT, &combiner].concat();
    let stderr = w.must_streaming(&args);
    assert_eq!(sorted_output_lines(&w.path("out")), word_counts(&text));
    let counter = |name: &str| -> u64 {
        let line = stderr
            .lines()
            .find(|l| l.trim().starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {stderr}"));
        line.rsplit('=').next().unwrap().parse().unwrap()
    };
    let words = text.split_ascii_whitespace().count() as u64;
    assert_eq!(counter("Combine input records"), words);
    let out = counter("Combine output records");
    assert!(out > 0 && out < words / 4, "{out} of {words}: {stderr}");
    assert_eq!(counter("Reduce input records"), out);
    assert_eq!(counter("groups"), out, "{stderr}");
}

#[test]
fn a_combiner_that_reorders_keys_fails_clearly() {
    let w = Work::new();
    w.corpus("a_combiner_that_reorders_keys_fails_clearly", 1, 200);
    w.write(
        "rev.py",
        "import sys\nfor l in reversed(sys.stdin.readlines()):\n    sys.stdout.write(l)\n",
    );
    let args = [
        WORDCOUNT,
        &["-combiner", "python3 rev.py", "-file", "rev.py"],
    ]
    .concat();
    let out = w.streaming(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("must keep the sorted order"), "{stderr}");
    assert!(!w.path("out").exists());
}

#[test]
fn map_only_jobs_write_mapper_lines_as_they_are() {
    let w = Work::new();
    w.write("in/a.txt", "b x\tk\nno tab here\n\na\n");
    w.write(
        "upper.py",
        "import sys\nfor l in sys.stdin:\n    sys.stdout.write(l.upper())\n",
    );
    for extra in [&["-reducer", "NONE"][..], &["-numReduceTasks", "0"]] {
        let _ = std::fs::remove_dir_all(w.path("out"));
        let args = [
            &[
                "-input",
                "in",
                "-output",
                "out",
                "-mapper",
                "python3 upper.py",
            ][..],
            &["-file", "upper.py", "-q"],
            extra,
        ]
        .concat();
        w.must_streaming(&args);
        assert_eq!(names_in(&w.path("out")), ["_SUCCESS", "part-m-00000"]);
        // Lines without a tab stay without one (Hadoop would add a trailing tab).
        assert_eq!(concatenated(&w.path("out")), b"B X\tK\nNO TAB HERE\n\nA\n");
    }
}

#[test]
fn secondary_sort_groups_by_the_first_field_and_sorts_by_both() {
    let w = Work::new();
    let mut r = rng(seed("secondary_sort"));
    let mut text = String::new();
    let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for _ in 0..3000 {
        let (user, t) = (format!("u{}", r.gen_range(0..40)), r.gen_range(0..1000));
        text.push_str(&format!("{user} {t:04}\n"));
        want.entry(user).or_default().push(format!("{t:04}"));
    }
    w.write("in/events.txt", &text);
    w.write(
        "m.py",
        "import sys\nfor l in sys.stdin:\n    u, t = l.split()\n    print(u + '\\t' + t + '\\tx')\n",
    );
    // Joins each user's times in the order they arrive: sorted only if the sort is secondary.
    w.write(
        "r.py",
        "import sys\ncur, ts = None, []\nfor l in sys.stdin:\n    u, t, _ = l.rstrip('\\n').split('\\t')\n    if u != cur:\n        if cur: print(cur + '\\t' + ','.join(ts))\n        cur, ts = u, []\n    ts.append(t)\nif cur: print(cur + '\\t' + ','.join(ts))\n",
    );
    w.must_streaming(&[
        "-input",
        "in",
        "-output",
        "out",
        "-mapper",
        "python3 m.py",
        "-reducer",
        "python3 r.py",
        "-files",
        "m.py,r.py",
        "-numReduceTasks",
        "4",
        "-partitioner",
        "org.apache.hadoop.mapred.lib.KeyFieldBasedPartitioner",
        "-D",
        "mapreduce.partition.keypartitioner.options=-k1,1",
        "-D",
        "stream.num.map.output.key.fields=2",
        "-q",
    ]);
    let lines = sorted_output_lines(&w.path("out"));
    let got: BTreeMap<String, Vec<String>> = lines
        .iter()
        .map(|l| {
            let l = String::from_utf8(l.clone()).unwrap();
            let (u, ts) = l.split_once('\t').unwrap();
            (u.to_owned(), ts.split(',').map(str::to_owned).collect())
        })
        .collect();
    // One line per user: all of a user's records met in one reducer.
    assert_eq!(lines.len(), want.len());
    for (user, mut times) in want {
        times.sort();
        assert_eq!(got[&user], times, "{user}");
    }
}

#[test]
fn side_files_env_and_counters_reach_the_commands() {
    let w = Work::new();
    w.write("in/one.txt", "a\nb\nc\n");
    w.write("in/two.txt", "d\n");
    w.write("words.txt", "hello\n");
    w.write(
        "env.py",
        r#"import os, sys
greeting = open("data").read().strip()
executable = os.access("data", os.X_OK)
for line in sys.stdin:
    sys.stderr.write("reporter:counter:Lines,seen,1\n")
print("\t".join([os.path.basename(os.environ["mapreduce_map_input_file"]),
                 os.environ["map_input_file"] == os.environ["mapreduce_map_input_file"] and "same" or "differ",
                 os.environ["mapreduce_task_ismap"], os.environ["mapreduce_job_id"][:9],
                 os.environ["mapreduce_task_attempt_id"][:8], os.environ["MY_VAR"],
                 os.environ["stream_num_map_output_key_fields"], greeting, str(executable)]))
sys.stderr.write("reporter:status:done\n")
"#,
    );
    let stderr = w.must_streaming(&[
        "-input",
        "in",
        "-output",
        "out",
        "-mapper",
        "python3 env.py",
        "-reducer",
        "NONE",
        "-files",
        "env.py",
        "-files",
        "words.txt#data",
        "-cmdenv",
        "MY_VAR=v=1",
        "-D",
        "stream.num.map.output.key.fields=1",
    ]);
    let lines: Vec<String> = sorted_output_lines(&w.path("out"))
        .into_iter()
        .map(|l| String::from_utf8(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            "one.txt\tsame\ttrue\tjob_local\tattempt_\tv=1\t1\thello\tTrue",
            "two.txt\tsame\ttrue\tjob_local\tattempt_\tv=1\t1\thello\tTrue"
        ]
    );
    assert!(stderr.contains("  Lines\n    seen=4\n"), "{stderr}");
}

#[test]
fn a_failing_script_shows_its_traceback_and_leaves_no_output() {
    let w = Work::new();
    w.corpus("a_failing_script", 1, 10);
    w.write(
        "bad.py",
        "import sys\ndef parse(line):\n    raise ValueError('cannot parse ' + line.strip()[:5])\nfor l in sys.stdin:\n    parse(l)\n",
    );
    let out = w.streaming(&[
        "-input",
        "in",
        "-output",
        "out",
        "-mapper",
        "python3 bad.py",
        "-file",
        "bad.py",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let error = stderr
        .lines()
        .skip_while(|l| !l.starts_with("mrjob: error:"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        error.contains("mapper `python3 bad.py` failed with exit status 1"),
        "{stderr}"
    );
    assert!(
        error.contains("Traceback (most recent call last):"),
        "{error}"
    );
    assert!(error.contains("ValueError: cannot parse"), "{error}");
    assert!(error.contains("m_000000"), "the task is named: {error}");
    assert!(!w.path("out").exists());
    // A command that does not exist is named too.
    let out = w.streaming(&["-input", "in", "-output", "out", "-mapper", "no-such-cmd-x"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot run no-such-cmd-x"), "{stderr}");
    // With stream.non.zero.exit.is.failure=false the exit status is ignored.
    w.write(
        "exit3.py",
        "import sys\nsys.stdin.read()\nprint('k\\tv')\nsys.exit(3)\n",
    );
    w.must_streaming(&[
        "-input",
        "in",
        "-output",
        "out",
        "-mapper",
        "python3 exit3.py",
        "-reducer",
        "NONE",
        "-file",
        "exit3.py",
        "-D",
        "stream.non.zero.exit.is.failure=false",
        "-q",
    ]);
    assert_eq!(concatenated(&w.path("out")), b"k\tv\n");
}

#[test]
fn children_that_stop_reading_or_write_nothing_do_not_hang() {
    let w = Work::new();
    // Far more than a pipe holds, so the writer meets a closed pipe.
    let line = "x".repeat(99);
    let text: String = (0..40_000).map(|i| format!("{i} {line}\n")).collect();
    w.write("in/big.txt", &text);
    let started = std::time::Instant::now();
    w.must_streaming(&[
        "-input",
        "in",
        "-output",
        "out",
        "-mapper",
        "head -n 1",
        "-reducer",
        "NONE",
        "-D",
        "mapreduce.input.fileinputformat.split.maxsize=1000000",
        "-q",
    ]);
    // Each map task's child printed the first line of its split and stopped reading.
    let parts = part_files(&w.path("out"));
    assert!(
        parts.len() >= 2,
        "4 MB is cut into several splits: {parts:?}"
    );
    for p in &parts {
        let text = std::fs::read_to_string(p).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.ends_with(&format!(" {line}\n")), "{text}");
    }
    assert!(std::fs::read_to_string(&parts[0])
        .unwrap()
        .starts_with("0 "));
    w.must_streaming(&[
        "-input",
        "in",
        "-output",
        "out2",
        "-mapper",
        "python3 -c pass",
        "-reducer",
        "cat",
        "-q",
    ]);
    assert!(concatenated(&w.path("out2")).is_empty());
    // A mapper that writes more than it reads, while still reading: no deadlock.
    w.write(
        "many.py",
        "import sys\nfor l in sys.stdin:\n    for i in range(20):\n        print(l.strip()[:6] + '\\t' + str(i))\n",
    );
    w.must_streaming(&[
        "-input",
        "in",
        "-output",
        "out3",
        "-mapper",
        "python3 many.py",
        "-reducer",
        "NONE",
        "-file",
        "many.py",
        "-q",
    ]);
    assert_eq!(sorted_output_lines(&w.path("out3")).len(), 20 * 40_000);
    assert!(started.elapsed().as_secs() < 120);
}

#[test]
fn lines_are_binary_safe_and_crlf_is_cut() {
    let w = Work::new();
    let mut data: Vec<u8> = Vec::new();
    data.extend_from_slice(b"caf\xc3\xa9\tv1\r\n");
    data.extend_from_slice(b"\xff\xfe\x00raw\tv2\n");
    data.extend_from_slice(b"k\tv\x01\x7f\r\n");
    data.extend_from_slice(b"last line without newline");
    std::fs::create_dir_all(w.path("in")).unwrap();
    std::fs::write(w.path("in/bin.dat"), &data).unwrap();
    w.must_streaming(&[
        "-input",
        "in",
        "-output",
        "out",
        "-mapper",
        "cat",
        "-reducer",
        "cat",
        "-numReduceTasks",
        "1",
        "-q",
    ]);
    let mut want: Vec<&[u8]> = vec![
        b"caf\xc3\xa9\tv1",
        b"\xff\xfe\x00raw\tv2",
        b"k\tv\x01\x7f",
        // A line without a tab is a key with an empty value: the reducer reads `key<TAB>`.
        b"last line without newline\t",
    ];
    want.sort();
    let want: Vec<u8> = want.iter().flat_map(|l| [*l, b"\n"].concat()).collect();
    assert_eq!(concatenated(&w.path("out")), want);
    // Without -mapper and -reducer both are identities, with the same result.
    w.must_streaming(&[
        "-input",
        "in",
        "-output",
        "out2",
        "-numReduceTasks",
        "1",
        "-q",
    ]);
    assert_eq!(concatenated(&w.path("out2")), want);
}

// Checks G7: bad arguments are errors that name what is wrong, and nothing runs.
#[test]
fn bad_arguments_are_named() {
    let w = Work::new();
    w.write("in/a.txt", "a\n");
    let cases: &[(&[&str], &str)] = &[
        (
            &["-input", "in", "-output", "o", "-bogus", "1"],
            "unknown option -bogus",
        ),
        (&["-input", "in", "-mapper", "cat"], "-output is required"),
        (
            &[
                "-input",
                "in",
                "-output",
                "o",
                "-D",
                "mapreduce.job.reduce=2",
            ],
            "did you mean mapreduce.job.reduces",
        ),
        (
            &[
                "-input",
                "in",
                "-output",
                "o",
                "-D",
                "stream.num.map.output.key.fields=x",
            ],
            "key.fields=x",
        ),
        (
            &["-input", "in", "-output", "o", "-libjars", "a.jar"],
            "-libjars",
        ),
        (&["-input", "nope", "-output", "o"], "nope"),
        (
            &["-input", "in", "-output", "o", "-files", "missing.py"],
            "missing.py",
        ),
    ];
    for (args, want) in cases {
        let out = w.streaming(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(!w.path("o").exists(), "{args:?}");
    }
    let out = w.streaming(&["-help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("-numReduceTasks"));
}

/// A pseudo-distributed cluster (3 namenodes, 3 hosts, a jobtracker) started with
/// `mrjob cluster start`; stopped on drop, its directory kept when the test fails.
struct Cluster {
    dir: Option<tempfile::TempDir>,
    conf: PathBuf,
    fs: mapreduce::dfs_fs::DfsFs,
}

impl Cluster {
    fn start() -> Cluster {
        use dfs::config::{local_config_with_ports, ClusterConfig, LocalPorts};
        use mapreduce::config::{Config, MapReduceConfig};
        let dir = tempfile::tempdir().unwrap();
        let base = 20_000 + (std::process::id() as u16).wrapping_mul(97) % 12_000;
        let mut c = local_config_with_ports(3, 3, dir.path(), LocalPorts::from_base(base))
            .with_fast_timeouts();
        // Production's Raft tick and leases: Python task processes load this machine.
        let production = ClusterConfig::default();
        c.raft_tick_ms = production.raft_tick_ms;
        c.lease_soft_limit_ms = production.lease_soft_limit_ms;
        c.lease_hard_limit_ms = production.lease_hard_limit_ms;
        let mut mr = MapReduceConfig::default().with_fast_timeouts();
        mr.task_max_attempts = 2;
        let whole = Config {
            cluster: c.clone(),
            mapreduce: mr,
        };
        let conf = dir.path().join("cluster.toml");
        whole.save(&conf).unwrap();
        let out = mrjob()
            .args(["cluster", "start", "--wait-secs", "90", "--dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        let fs = mapreduce::dfs_fs::DfsFs::new(dfs::client::DfsClient::new(c), false).unwrap();
        let cluster = Cluster {
            dir: Some(dir),
            conf,
            fs,
        };
        assert!(
            out.status.success(),
            "cluster start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    fn put(&self, path: &str, data: &[u8]) {
        let client = self.fs.client();
        self.fs
            .block_on(client.write_file(path, data, false))
            .unwrap_or_else(|e| panic!("put {path}: {e}"));
    }

    /// Names and contents of the files directly in a dfs directory (empty when missing).
    fn files(&self, dir: &str) -> BTreeMap<String, Vec<u8>> {
        let client = self.fs.client();
        let Ok(list) = self.fs.block_on(client.list(dir)) else {
            return BTreeMap::new();
        };
        list.into_iter()
            .map(|s| {
                let name = s.path.rsplit('/').next().unwrap().to_owned();
                (name, self.fs.block_on(client.read_file(&s.path)).unwrap())
            })
            .collect()
    }

    /// The names in a dfs directory (none if it is missing).
    fn names(&self, dir: &str) -> Vec<String> {
        let client = self.fs.client();
        let list = self.fs.block_on(client.list(dir)).unwrap_or_default();
        list.into_iter()
            .map(|s| s.path.rsplit('/').next().unwrap().to_owned())
            .collect()
    }

    fn streaming(&self, work: &Work, args: &[&str]) -> Output {
        mrjob()
            .arg("--conf")
            .arg(&self.conf)
            .arg("streaming")
            .args(args)
            .current_dir(work.dir.path())
            .output()
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let dir = self.dir.as_ref().unwrap().path().to_owned();
        let _ = mrjob()
            .args(["cluster", "stop", "--dir"])
            .arg(&dir)
            .output();
        if std::thread::panicking() {
            let kept = self.dir.take().unwrap().keep();
            eprintln!("cluster logs and data kept in {}", kept.display());
        }
    }
}

/// On a cluster: the word count with local side files (uploaded once, removed after) and a
/// dfs side file with an alias equals the reference; a failing script is retried and its
/// traceback reaches the submitter's terminal; nothing of either job is left behind.
#[test]
fn on_a_cluster_side_files_and_failures_work() {
    let w = Work::new();
    let text = w.corpus("on_a_cluster", 3, 2000);
    let cluster = Cluster::start();
    for f in 0..3 {
        let data = std::fs::read(w.path(&format!("in/f{f}.txt"))).unwrap();
        cluster.put(&format!("/in/f{f}.txt"), &data);
    }
    cluster.put("/side/stop.txt", b"w0\nw1\n");
    w.write(
        "stop_mapper.py",
        "import sys\nstop = set(open('stop').read().split())\nfor l in sys.stdin:\n    for x in l.split():\n        if x not in stop: print(x + '\\t1')\n",
    );
    let out = cluster.streaming(
        &w,
        &[
            "-input",
            "/in",
            "-output",
            "/out",
            "-mapper",
            "python3 stop_mapper.py",
            "-reducer",
            "python3 reducer.py",
            "-combiner",
            "python3 reducer.py",
            "-files",
            "stop_mapper.py,reducer.py",
            "-files",
            "dfs:///side/stop.txt#stop",
            "-numReduceTasks",
            "2",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let filtered: String = text
        .split_ascii_whitespace()
        .filter(|x| *x != "w0" && *x != "w1")
        .map(|x| format!("{x} "))
        .collect();
    let mut got: Vec<Vec<u8>> = cluster
        .files("/out")
        .into_iter()
        .filter(|(name, _)| name.starts_with("part-"))
        .flat_map(|(_, data)| {
            data.split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect();
    got.sort();
    assert_eq!(got, word_counts(&filtered));
    assert!(
        !cluster
            .files("/tmp")
            .keys()
            .any(|n| n.starts_with("mrjob-files")),
        "the staged side files are removed: {:?}",
        cluster.files("/tmp").keys()
    );
    w.write(
        "bad.py",
        "import sys\nfor l in sys.stdin:\n    raise KeyError('no such user: ' + l.strip()[:3])\n",
    );
    let out = cluster.streaming(
        &w,
        &[
            "-input",
            "/in/f1.txt",
            "-output",
            "/bad",
            "-mapper",
            "python3 bad.py",
            "-file",
            "bad.py",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("failed 2 times"), "retried: {stderr}");
    assert!(
        stderr.contains("\n  Traceback (most recent call last):"),
        "{stderr}"
    );
    assert!(stderr.contains("KeyError: 'no such user: "), "{stderr}");
    assert!(cluster.files("/bad").is_empty(), "no output is left");
    check_interrupted_job_leaves_no_side_files(&cluster, &w);
}

/// Ctrl-C on a cluster Streaming job kills the job and exits at once; the side files it
/// uploaded are removed by the jobtracker when the job ends, not left in /tmp.
fn check_interrupted_job_leaves_no_side_files(cluster: &Cluster, w: &Work) {
    let staged = || {
        cluster
            .names("/tmp")
            .into_iter()
            .filter(|n| n.starts_with("mrjob-files"))
            .count()
    };
    let mut child = mrjob()
        .arg("--conf")
        .arg(&cluster.conf)
        .args(["streaming", "-input", "/in/f1.txt", "-output", "/slow"])
        .args(["-mapper", "sh -c 'sleep 60; cat'", "-files", "reducer.py"])
        .current_dir(w.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while staged() == 0 {
        assert!(
            Instant::now() < deadline,
            "the side files were never staged"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Submitted (the job's id is known) before interrupting, so the job itself must clean up.
    std::thread::sleep(Duration::from_secs(2));
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let deadline = Instant::now() + Duration::from_secs(30);
    while staged() > 0 {
        assert!(
            Instant::now() < deadline,
            "side files left after the job was killed: {:?}",
            cluster.names("/tmp")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
