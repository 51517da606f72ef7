//! The example jobs on a real pseudo-distributed cluster: `mrjob cluster start` runs three
//! namenodes, N hosts (a datanode and a worker each, on their own 127.0.1.x address) and a
//! jobtracker as separate processes. Every check compares the cluster's output with local mode
//! on the same input, byte for byte; the fault tests inject failures with `MRJOB_FAULTS`
//! (see `mapreduce::fault`), SIGKILL and SIGSTOP.
//!
//! Clusters are heavy for a 2-core machine, so the tests of this file take turns.

mod common;
mod security;
mod user_job;
mod web;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{rng, seed, write_corpus};
use dfs::client::DfsClient;
use dfs::config::{local_config_with_ports, ClusterConfig, LocalPorts};
use mapreduce::config::{Config, MapReduceConfig};
use mapreduce::dfs_fs::DfsFs;
use rand::Rng;

/// One cluster at a time.
static TURN: Mutex<()> = Mutex::new(());
static PORT_SLOT: AtomicU16 = AtomicU16::new(0);

fn port_base() -> u16 {
    let slot = PORT_SLOT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id() as u16;
    // Below Linux's ephemeral range (32768-60999): a listener there can collide with the
    // local port of some outgoing loopback connection (seen once: the jobtracker could not bind).
    20_000 + (pid.wrapping_mul(89).wrapping_add(slot.wrapping_mul(10))) % 12_000
}

fn mrjob_bin() -> &'static str {
    env!("CARGO_BIN_EXE_mrjob")
}

/// A running cluster; stopped on drop. A failing test keeps its directory (logs, data) and
/// prints where it is.
struct Cluster {
    dir: Option<tempfile::TempDir>,
    conf: PathBuf,
    fs: DfsFs,
    config: ClusterConfig,
}

impl Cluster {
    fn start(hosts: usize, faults: &str, tweak: impl FnOnce(&mut MapReduceConfig)) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut c =
            local_config_with_ports(3, hosts, dir.path(), LocalPorts::from_base(port_base()));
        c = c.with_fast_timeouts();
        // Production's Raft tick, leases and replication check: a job's task processes load
        // this machine more than the dfs tests do (a 50 ms tick could start needless
        // elections), and nothing these tests check waits on an election or a lease.
        let production = ClusterConfig::default();
        c.raft_tick_ms = production.raft_tick_ms;
        c.lease_soft_limit_ms = production.lease_soft_limit_ms;
        c.lease_hard_limit_ms = production.lease_hard_limit_ms;
        c.replication_check_interval_ms = 500;
        let mut mr = MapReduceConfig::default().with_fast_timeouts();
        tweak(&mut mr);
        let whole = Config {
            cluster: c.clone(),
            mapreduce: mr,
        };
        let conf = dir.path().join("cluster.toml");
        whole.save(&conf).unwrap();
        let out = Command::new(mrjob_bin())
            .args(["cluster", "start", "--wait-secs", "90", "--dir"])
            .arg(dir.path())
            .env("MRJOB_FAULTS", faults)
            // Must not reach tasks (the workers' environment is not the job's: task_env).
            .env("MRJOB_TEST_WORKER_SECRET", "leaked")
            .env_remove("MRJOB_CONF")
            .output()
            .unwrap();
        let fs = DfsFs::new(DfsClient::new(c.clone()), false).unwrap();
        let cluster = Cluster {
            dir: Some(dir),
            conf,
            fs,
            config: c,
        };
        assert!(
            out.status.success(),
            "cluster start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    fn mrjob(&self, args: &[&str]) -> Output {
        Command::new(mrjob_bin())
            .arg("--conf")
            .arg(&self.conf)
            .args(args)
            .output()
            .unwrap()
    }

    /// Starts `mrjob --conf C ARGS` in the background, its output captured.
    fn spawn_job(&self, args: &[&str]) -> std::process::Child {
        Command::new(mrjob_bin())
            .arg("--conf")
            .arg(&self.conf)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn must_mrjob(&self, args: &[&str]) -> String {
        let out = self.mrjob(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "mrjob {args:?} failed: {stderr}");
        stderr
    }

    /// Copies a local directory tree into dfs under `dst`.
    fn put(&self, src: &Path, dst: &str) {
        for entry in std::fs::read_dir(src).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let target = format!("{dst}/{name}");
            if p.is_dir() {
                self.put(&p, &target);
                continue;
            }
            let data = std::fs::read(&p).unwrap();
            let client = self.fs.client();
            self.fs
                .block_on(client.write_file(&target, &data, false))
                .unwrap_or_else(|e| panic!("put {target}: {e}"));
        }
    }

    /// Every file directly in a dfs directory, by name.
    fn files(&self, dir: &str) -> BTreeMap<String, Vec<u8>> {
        let client = self.fs.client();
        let list = self.fs.block_on(client.list(dir)).unwrap();
        list.into_iter()
            .map(|s| {
                let name = s.path.rsplit('/').next().unwrap().to_owned();
                let data = self.fs.block_on(client.read_file(&s.path)).unwrap();
                (name, data)
            })
            .collect()
    }

    /// The files the superuser staged (`/mrjob/bin/admin`): name, length and modification
    /// time.
    fn staged_binaries(&self) -> Vec<(String, u64, u64)> {
        let client = self.fs.client();
        let dir = mapreduce::job_binary::staging_dir(dfs::auth::SUPERUSER);
        let list = self.fs.block_on(client.list(&dir)).unwrap();
        list.into_iter()
            .map(|s| {
                let name = s.path.rsplit('/').next().unwrap().to_owned();
                (name, s.len_bytes, s.mtime_ms)
            })
            .collect()
    }

    fn exists(&self, p: &str) -> bool {
        self.fs.block_on(self.fs.client().exists(p)).unwrap()
    }

    /// The pid of a daemon started by `cluster start`.
    fn pid(&self, name: &str) -> u32 {
        let text =
            std::fs::read_to_string(self.path().join("pids").join(format!("{name}.pid"))).unwrap();
        text.trim().parse().unwrap()
    }

    /// Sends `sig` to a daemon's whole process group (the worker and its task processes).
    fn signal_group(&self, name: &str, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg("--")
            .arg(format!("-{}", self.pid(name)))
            .status()
            .unwrap();
        assert!(status.success(), "kill -{sig} {name}");
    }

    /// Hosts whose worker has (or had) files of an attempt of `kind` ('m' or 'r') of job 1.
    fn hosts_with_attempts(&self, kind: char) -> Vec<String> {
        let mut hosts = Vec::new();
        for h in &self.config.hosts {
            let jobs = h.work_dir.join("jobs").join("job_0001");
            let Ok(entries) = std::fs::read_dir(&jobs) else {
                continue;
            };
            let tag = format!("_{kind}_");
            if entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().contains(&tag))
            {
                hosts.push(h.name.clone());
            }
        }
        hosts
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(mrjob_bin())
            .args(["cluster", "stop", "--dir"])
            .arg(self.path())
            .stderr(Stdio::null())
            .status();
        if std::thread::panicking() {
            let dir = self.dir.take().unwrap().keep();
            eprintln!("cluster logs and data kept in {}", dir.display());
        }
    }
}

/// Runs job `args[0]` in local mode with positional arguments `before` the output directory
/// and options `args[1..]` after it, returning the output files by name.
fn local_run(args: &[&str], before: &[&Path], work: &Path) -> BTreeMap<String, Vec<u8>> {
    let out_dir = work.join(format!("local-out-{}", args[0]));
    let out = Command::new(mrjob_bin())
        .arg(args[0])
        .arg("--local")
        .args(before)
        .arg(&out_dir)
        .args(&args[1..])
        .arg("-q")
        .env_remove("MRJOB_CONF")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "local {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(&out_dir).unwrap() {
        let p = e.unwrap().path();
        files.insert(
            p.file_name().unwrap().to_string_lossy().into_owned(),
            std::fs::read(&p).unwrap(),
        );
    }
    files
}

/// Sends a frame claiming 4 GiB, then random bytes, to `addr`, and waits for the server to
/// close the connection.
fn send_garbage(addr: &str) {
    use std::io::{Read, Write};
    for payload in [vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3], {
        let mut r = rng(7);
        (0..4096).map(|_| r.gen::<u8>()).collect::<Vec<u8>>()
    }] {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(&payload);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
}

fn counter(stderr: &str, name: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix('=')?.parse().ok())
        .unwrap_or_else(|| panic!("no counter {name:?} in: {stderr}"))
}

fn assert_same(cluster: BTreeMap<String, Vec<u8>>, local: &BTreeMap<String, Vec<u8>>, what: &str) {
    let names: Vec<&String> = cluster.keys().collect();
    let want: Vec<&String> = local.keys().collect();
    assert_eq!(names, want, "{what}: output files differ");
    for (name, data) in &cluster {
        assert!(
            data == &local[name],
            "{what}: {name} differs from local mode"
        );
    }
}

/// A corpus of several 64 KiB blocks per file.
fn corpus(work: &Path, test: &str) -> PathBuf {
    let seed = seed(test);
    let input = work.join("in");
    write_corpus(&input, &mut rng(seed), 4, 2_500);
    let mut r = rng(seed ^ 1);
    // One more plain file so every run has several full blocks.
    let words: Vec<String> = (0..60_000)
        .map(|_| format!("k{}", (r.gen::<f64>().powi(2) * 5000.0) as u32))
        .collect();
    std::fs::write(input.join("plain.txt"), words.join(" ") + "\n").unwrap();
    input
}

// Checks G6 (no faults): every example job gives byte-identical output on the cluster and in
// local mode, and with 4 hosts and replication 3 at least 90% of maps are data-local.
#[test]
fn every_example_job_matches_local_mode() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let work = tempfile::tempdir().unwrap();
    let input = corpus(work.path(), "every_example_job_matches_local_mode");
    // A short grace for unused staged binaries, so that the pruning of users' staging
    // directories is seen within the test.
    let grace = Duration::from_secs(3);
    let cluster = Cluster::start(4, "", |m| {
        m.staged_binary_grace_ms = grace.as_millis() as u64;
    });
    let written_before = web::datanode_bytes_written(&cluster.config);
    let tasks_before = web::tasks_succeeded(&cluster.config);
    cluster.put(&input, "/in");
    // The datanodes' /metrics count every replica's bytes.
    let written = web::datanode_bytes_written(&cluster.config) - written_before;
    let want = tree_bytes(&input) * u64::from(cluster.config.replication);
    assert!(written >= want as f64, "{written} bytes written for {want}");
    // G7: garbage and oversized frames to the jobtracker and a shuffle server harm nothing;
    // the jobs below still run.
    send_garbage(&cluster.config.jobtracker_addr);
    send_garbage(&cluster.config.hosts[0].worker_addr);
    security::strangers_are_refused_everywhere(&cluster.fs, &cluster.config);
    security::replayed_handshakes_are_refused(&cluster.fs, &cluster.config);
    // G7 and G8: 2,000+ strangers holding connections on every port (issue 14: 6,000 on the
    // shuffle ports stalled a job for 125 s) while the first job below runs and writes.
    let squatters = security::Squatters::start(&cluster.config, 200);

    let started = Instant::now();
    let stderr = cluster.must_mrjob(&["wordcount", "/in", "dfs:///out/wc", "-r", "3"]);
    let took = started.elapsed();
    let opened = squatters.stop();
    assert!(
        opened >= 2_000,
        "only {opened} squatting connections were opened"
    );
    assert!(
        took < Duration::from_secs(60),
        "the job took {took:?} among squatters"
    );
    let wordcount_stderr = stderr.clone();
    let staged_first = cluster.staged_binaries();
    let local = local_run(&["wordcount", "-r", "3"], &[&input], work.path());
    assert_same(cluster.files("/out/wc"), &local, "wordcount");
    let maps = counter(&stderr, "Launched map tasks");
    let local_maps = counter(&stderr, "Data-local map tasks");
    assert!(maps >= 8, "several blocks expected, got {maps} maps");
    assert!(
        local_maps * 10 >= maps * 9,
        "{local_maps}/{maps} maps data-local: {stderr}"
    );

    // G8: a user's job runs as that user, on what the user may write.
    user_job::user_job_runs_as_its_user(&cluster, "/out/wc", "3");
    user_job::staged_binaries_are_their_users(&cluster, grace);

    cluster.must_mrjob(&["grep", "/in", "/out/grep", "w1[0-9]*|k7", "-r", "2"]);
    let local = local_run(&["grep", "w1[0-9]*|k7", "-r", "2"], &[&input], work.path());
    assert_same(cluster.files("/out/grep"), &local, "grep");

    // A relative output is under the working directory /user/NAME, as in Hadoop.
    cluster.must_mrjob(&["invertedindex", "/in", "out-ii", "-r", "3"]);
    let local = local_run(&["invertedindex", "-r", "3"], &[&input], work.path());
    let home = dfs::path::working_dir();
    assert_same(
        cluster.files(&format!("{home}/out-ii")),
        &local,
        "invertedindex",
    );
    assert!(!cluster.exists("/out-ii"));
    check_missing_inputs_say_where(&cluster, &input);
    check_patterns_compression_and_properties(&cluster, &input, work.path());

    cluster.must_mrjob(&["teragen", "20000", "/gen", "--maps", "3"]);
    let local_gen = work.path().join("local-out-teragen");
    let local = local_run(
        &["teragen", "--maps", "3"],
        &[Path::new("20000")],
        work.path(),
    );
    assert_same(cluster.files("/gen"), &local, "teragen");
    cluster.must_mrjob(&["terasort", "/gen", "/sorted", "-r", "3"]);
    let local = local_run(&["terasort", "-r", "3"], &[&local_gen], work.path());
    assert_same(cluster.files("/sorted"), &local, "terasort");
    let out = cluster.mrjob(&["teravalidate", "/sorted", "/validated"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK: 20000 records"));

    // The jobs above staged the mrjob binary once: one file, written by the first job and
    // untouched since (the later jobs found it under its hash), without the debug info of the
    // binary on disk. The workers ran it, so its name is the SHA-256 of what was uploaded.
    assert_eq!(cluster.staged_binaries(), staged_first);
    let [(name, len, _)] = &staged_first[..] else {
        panic!("one staged binary expected: {staged_first:?}");
    };
    assert_eq!(name.len(), 64, "named by its SHA-256: {name}");
    let exe_len = std::fs::metadata(mrjob_bin()).unwrap().len();
    eprintln!("staged job binary: {len} bytes; mrjob on disk: {exe_len} bytes");
    assert!(
        *len < exe_len,
        "staged {len} bytes of a {exe_len}-byte binary"
    );

    // Job control commands see the finished jobs.
    let list = cluster.mrjob(&["list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("wordcount") && text.contains("SUCCEEDED"),
        "{text}"
    );
    let status = cluster.mrjob(&["status", "1"]);
    let text = String::from_utf8_lossy(&status.stdout);
    // The client and `mrjob status` show the same times, from the jobtracker's record: the
    // duration and the first task's start after submission, to the millisecond.
    let between = |text: &str, before: &str, after: &str| -> String {
        let from = text.find(before).map(|i| i + before.len());
        let from = from.unwrap_or_else(|| panic!("no {before:?} in {text}"));
        text[from..].split(after).next().unwrap().to_owned()
    };
    let client = &wordcount_stderr;
    assert_eq!(
        between(client, "completed successfully in ", " s"),
        between(&text, "% done, ", " s"),
        "{client}\n{text}"
    );
    assert_eq!(
        between(client, "First task started ", " ms"),
        between(&text, "first task started ", " ms"),
        "{client}\n{text}"
    );
    // G8: the job runs as the user the submitter authenticated as (here the cluster admin,
    // whose tools hold the cluster key), whatever the client's $USER says.
    assert!(text.contains("submitted by admin"), "{text}");
    // `mrjob list | head` with the reader gone before the first line: a quiet end, status 0.
    let mut list = cluster.spawn_job(&["list"]);
    drop(list.stdout.take());
    let out = list.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "{:?}: {stderr}",
        out.status
    );
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("/job/1"),
        "mrjob status names the job's page"
    );

    // The web pages of this cluster and its finished jobs; /metrics counted every task.
    let web_started = Instant::now();
    let tasks = web::tasks_succeeded(&cluster.config) - tasks_before;
    assert!(tasks >= (maps + 3) as f64, "{tasks} tasks succeeded");
    web::check_namenode_pages(&cluster.config, "/in/plain.txt");
    web::login::check_namenode_login(&cluster.config, &cluster.fs);
    web::check_job_page(&cluster.config, 1, "wordcount");
    web::check_bad_input(&cluster.config.jobtracker_web_addr());
    web::check_bad_input(&cluster.config.namenodes[0].web_addr());
    eprintln!("web page checks took {:?}", web_started.elapsed());
}

/// Bytes of the files under `dir`.
fn tree_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() {
                tree_bytes(&p)
            } else {
                std::fs::metadata(&p).unwrap().len()
            }
        })
        .sum()
}

/// On dfs: a pattern over directories holding a gzip file that spans several blocks (read
/// whole, as one map) and a plain file, plus a second input; gzip output; per-job
/// properties. The output equals local mode on the same files byte for byte (gzip output
/// included: the same encoder compresses the same bytes). A pattern matching nothing is an
/// error naming it and the cluster.
fn check_patterns_compression_and_properties(cluster: &Cluster, input: &Path, work: &Path) {
    use std::io::Write;
    let logs = work.join("logs");
    std::fs::create_dir_all(logs.join("2026-01")).unwrap();
    std::fs::create_dir_all(logs.join("2026-02")).unwrap();
    let big = std::fs::read(input.join("plain.txt")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&big).unwrap();
    let gz = gz.finish().unwrap();
    let block = cluster.config.block_size_bytes;
    assert!(
        gz.len() as u64 > block,
        "the .gz must span blocks: {} bytes",
        gz.len()
    );
    std::fs::write(logs.join("2026-01/plain.txt.gz"), &gz).unwrap();
    std::fs::copy(input.join("file01.txt"), logs.join("2026-02/file01.txt")).unwrap();
    std::fs::write(logs.join("2026-02/_hidden"), b"not input\n").unwrap();
    cluster.put(&logs, "/logs");
    let props = [
        "-r",
        "2",
        "--compress",
        "gzip",
        "-D",
        "mapreduce.job.name=logs-2026",
        "-D",
        "mapreduce.map.speculative=false",
        "-D",
        "mapreduce.reduce.maxattempts=2",
    ];
    let mut args = vec![
        "wordcount",
        "/logs/2026-0[12]/*",
        "/in/file02.txt",
        "/out/logs",
    ];
    args.extend(props);
    let stderr = cluster.must_mrjob(&args);
    assert!(stderr.contains("Job logs-2026 completed"), "{stderr}");
    let file_len = |p: &Path| std::fs::metadata(p).unwrap().len();
    let plain_maps = [logs.join("2026-02/file01.txt"), input.join("file02.txt")]
        .iter()
        .map(|p| file_len(p).div_ceil(block))
        .sum::<u64>();
    assert_eq!(
        counter(&stderr, "Launched map tasks"),
        1 + plain_maps,
        "{stderr}"
    );
    let pattern = logs.join("2026-0[12]/*");
    let extra = input.join("file02.txt");
    let mut local_args = vec!["wordcount"];
    local_args.extend(props);
    // A directory of its own: the local wordcount run above wrote `local-out-wordcount`.
    let own = work.join("logs-run");
    std::fs::create_dir_all(&own).unwrap();
    let local = local_run(&local_args, &[&pattern, &extra], &own);
    assert!(local.contains_key("part-r-00000.gz"), "{:?}", local.keys());
    assert_same(
        cluster.files("/out/logs"),
        &local,
        "wordcount over a pattern",
    );
    let list = cluster.mrjob(&["list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("logs-2026"));

    let out = cluster.mrjob(&["wordcount", "/logs/2027-*/*", "/out/none"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("/logs/2027-*/*: input pattern matches 0 files (in the cluster of"),
        "{stderr}"
    );
    assert!(!cluster.exists("/out/none"));
}

/// With a cluster configured, an input that is not in dfs is named as the dfs path that was
/// looked up, with the config that chose the cluster and the way to run locally.
fn check_missing_inputs_say_where(cluster: &Cluster, local_input: &Path) {
    let home = dfs::path::working_dir();
    let conf = cluster.conf.display().to_string();
    for (input, sought, hint) in [
        ("input/", format!("dfs://{home}/input/"), "use --local"),
        (
            local_input.to_str().unwrap(),
            format!("dfs://{}", local_input.display()),
            "add --local to read it",
        ),
    ] {
        let out = cluster.mrjob(&["wordcount", input, "out-missing"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        let want =
            format!("mrjob: error: input {sought}: not found in the cluster of {conf} (--conf)");
        assert!(
            stderr.starts_with(&want) && stderr.contains(hint),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    assert!(!cluster.exists(&format!("{home}/out-missing")));
}

// Checks G6: a map attempt that fails once and a reduce attempt killed in the middle of
// writing its part file are retried; the output equals local mode, holds exactly the part
// files and `_SUCCESS`, and the counters show each retry.
#[test]
fn failed_attempts_are_retried_and_output_is_exact() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let work = tempfile::tempdir().unwrap();
    let input = corpus(
        work.path(),
        "failed_attempts_are_retried_and_output_is_exact",
    );
    let cluster = Cluster::start(3, "fail:m:1:0,abort-output:r:0:0", |_| {});
    cluster.put(&input, "/in");
    let stderr = cluster.must_mrjob(&["wordcount", "/in", "/out", "-r", "3"]);
    let local = local_run(&["wordcount", "-r", "3"], &[&input], work.path());
    assert_same(cluster.files("/out"), &local, "wordcount with failures");
    assert_eq!(counter(&stderr, "Failed map attempts"), 1, "{stderr}");
    assert_eq!(counter(&stderr, "Failed reduce attempts"), 1, "{stderr}");
    // A job's own attempt limit reaches the jobtracker's scheduler: with one attempt per map,
    // the same injected failure fails the job (the cluster's default would retry it), and
    // its output directory is removed.
    let out = cluster.mrjob(&[
        "wordcount",
        "/in",
        "/out-once",
        "-D",
        "mapreduce.map.maxattempts=1",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("m_000001 failed 1 times"), "{stderr}");
    assert!(!cluster.exists("/out-once"));
}

// Checks G6: a worker SIGKILLed after its maps completed but before the reducers fetched
// their outputs: the jobtracker re-runs those maps elsewhere and the output is unchanged.
#[test]
fn worker_killed_after_its_maps_is_recovered() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let work = tempfile::tempdir().unwrap();
    let input = corpus(work.path(), "worker_killed_after_its_maps_is_recovered");
    // Reduces start only after every map, and their first attempts wait before fetching.
    let cluster = Cluster::start(3, "sleep:r:*:0:6000", |c| {
        c.reduce_slowstart_percent = 100;
        c.speculative = false;
    });
    cluster.put(&input, "/in");
    let job = cluster.spawn_job(&["wordcount", "/in", "/out", "-r", "2"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let victim = loop {
        assert!(Instant::now() < deadline, "maps never finished");
        let status = cluster.mrjob(&["status", "1"]);
        let text = String::from_utf8_lossy(&status.stdout).into_owned();
        if let Some(maps) = text.split("maps ").nth(1) {
            let (done, total) = maps.split_once('/').unwrap();
            let total: String = total.chars().take_while(char::is_ascii_digit).collect();
            if done == total && !cluster.hosts_with_attempts('r').is_empty() {
                // A worker with map outputs and no reduce attempt of its own.
                let reducers = cluster.hosts_with_attempts('r');
                let mappers = cluster.hosts_with_attempts('m');
                if let Some(h) = mappers.into_iter().find(|h| !reducers.contains(h)) {
                    break h;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    cluster.signal_group(&format!("worker-{victim}"), "KILL");
    let out = job.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let local = local_run(&["wordcount", "-r", "2"], &[&input], work.path());
    assert_same(
        cluster.files("/out"),
        &local,
        "wordcount after a lost worker",
    );
    assert!(
        counter(&stderr, "Re-run maps (output lost)") >= 1,
        "{stderr}"
    );
}

// Checks G6: a worker paused (SIGSTOP) past the worker timeout while running a reduce: its
// attempt is re-run elsewhere, and when it resumes (SIGCONT) its late result is refused; the
// output stays exactly the part files and `_SUCCESS`, equal to local mode.
#[test]
fn paused_worker_cannot_commit_late() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let work = tempfile::tempdir().unwrap();
    let input = corpus(work.path(), "paused_worker_cannot_commit_late");
    let cluster = Cluster::start(3, "sleep:r:*:0:4000", |c| c.speculative = false);
    cluster.put(&input, "/in");
    let job = cluster.spawn_job(&["wordcount", "/in", "/out", "-r", "3"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let victim = loop {
        assert!(Instant::now() < deadline, "no reduce started");
        if let Some(h) = cluster.hosts_with_attempts('r').into_iter().next() {
            break h;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    cluster.signal_group(&format!("worker-{victim}"), "STOP");
    let out = job.wait_with_output().unwrap();
    cluster.signal_group(&format!("worker-{victim}"), "CONT");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(counter(&stderr, "Killed attempts") >= 1, "{stderr}");
    // Give the resumed attempt time to finish and try to report.
    std::thread::sleep(Duration::from_secs(6));
    let local = local_run(&["wordcount", "-r", "3"], &[&input], work.path());
    assert_same(
        cluster.files("/out"),
        &local,
        "wordcount after a paused worker",
    );

    // `mrjob kill`: the job fails as killed and its output directory is removed.
    let job = cluster.spawn_job(&["wordcount", "/in", "/out2", "-r", "3"]);
    // The jobtracker knows job 2 (and can kill it) once `status 2` answers; its output
    // directory appears a moment earlier, while the submission is still being accepted.
    cluster.status_once_answered("2");
    let killed = cluster.must_mrjob(&["kill", "2"]);
    assert!(
        killed.contains("job 2 killed; its output directory was removed"),
        "{killed}"
    );
    assert!(!killed.contains("Failed("), "no debug formatting: {killed}");
    let out = job.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("killed by its user"), "{stderr}");
    assert!(
        !cluster.exists("/out2"),
        "a killed job leaves no output directory"
    );
    // KILLED is its own state, not FAILED.
    let list = cluster.mrjob(&["list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("2 "))
        .unwrap();
    assert!(row.contains("KILLED"), "{text}");
    let status = cluster.mrjob(&["status", "2"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("state KILLED"));
}

// Checks G6: a task process that stops making progress (SIGSTOP on the task process alone,
// while its worker keeps heartbeating) is timed out after the task timeout, killed, and its
// task re-run; the output equals local mode and the failure shows in the counters.
#[test]
fn stalled_task_times_out_and_is_retried() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let work = tempfile::tempdir().unwrap();
    let input = corpus(work.path(), "stalled_task_times_out_and_is_retried");
    // Reduce attempts 0 wait before starting, so there is a process to stop.
    let cluster = Cluster::start(3, "sleep:r:*:0:2000", |c| {
        c.task_timeout_ms = 5_000;
        c.speculative = false;
    });
    cluster.put(&input, "/in");
    let job = cluster.spawn_job(&["wordcount", "/in", "/out", "-r", "2"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let stopped = loop {
        assert!(Instant::now() < deadline, "no reduce task process found");
        let ps = Command::new("pgrep")
            .args(["-f", &format!("__mrjob-task {}", cluster.path().display())])
            .output()
            .unwrap();
        let pids: Vec<String> = String::from_utf8_lossy(&ps.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        let reduce = pids.into_iter().find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.contains("_r_"))
        });
        if let Some(pid) = reduce {
            break pid;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(Command::new("kill")
        .args(["-STOP", &stopped])
        .status()
        .unwrap()
        .success());
    let out = job.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(counter(&stderr, "Failed reduce attempts") >= 1, "{stderr}");
    let local = local_run(&["wordcount", "-r", "2"], &[&input], work.path());
    assert_same(
        cluster.files("/out"),
        &local,
        "wordcount after a stalled task",
    );
}

// Checks G6 and G7: a mapper that always panics fails the job after the attempt limit, with
// an error naming the task; no part file and no `_SUCCESS` are left.
#[test]
fn always_panicking_mapper_fails_the_job_cleanly() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let work = tempfile::tempdir().unwrap();
    let input = corpus(work.path(), "always_panicking_mapper_fails_the_job_cleanly");
    let cluster = Cluster::start(3, "panic-record:m:0:*", |_| {});
    cluster.put(&input, "/in");
    let out = cluster.mrjob(&["wordcount", "/in", "/out", "-r", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the job should fail: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("mrjob: error: job 1"), "{stderr}");
    assert!(last.contains("task_0001_m_000000"), "{stderr}");
    assert!(last.contains("injected panic"), "{stderr}");
    assert!(
        !cluster.exists("/out"),
        "a failed job leaves no output directory"
    );
    web::check_failed_job_page(&cluster.config, 1, "task_0001_m_000000", "injected panic");
    // The job is the admin's, as is this client: `mrjob web` logs a browser in as the admin.
    let started = Instant::now();
    let login = must_stdout(&cluster, &["web", "1"]);
    web::login::check_log_links(&cluster.config, 1, login.trim(), "injected panic");
    eprintln!("login and log link checks took {:?}", started.elapsed());
}

impl Cluster {
    /// SIGKILLs the jobtracker and starts it again with the same config, as an operator (or a
    /// service manager) would: `mrjob --conf C jobtracker`, logging where the first one did.
    fn restart_jobtracker(&self) {
        let pid = self.kill_jobtracker();
        self.start_jobtracker();
        assert_ne!(self.pid("jobtracker"), pid, "no new jobtracker started");
    }

    /// `mrjob status JOB`'s output once the jobtracker answers it: a restarted one answers
    /// after it has read the job records, and a new job once its submission was accepted.
    fn status_once_answered(&self, job: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = self.mrjob(&["status", job]);
            if status.status.success() {
                return String::from_utf8_lossy(&status.stdout).into_owned();
            }
            assert!(
                Instant::now() < deadline,
                "the jobtracker never answered for job {job}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGKILLs the jobtracker and waits until it is gone; returns its pid.
    fn kill_jobtracker(&self) -> u32 {
        let pid = self.pid("jobtracker");
        self.signal_group("jobtracker", "KILL");
        let deadline = Instant::now() + Duration::from_secs(10);
        while dfs::local_cluster::process_alive(pid) {
            assert!(
                Instant::now() < deadline,
                "jobtracker {pid} survived SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        pid
    }

    /// Starts `mrjob --conf C jobtracker` in the background, as `cluster start` did.
    fn start_jobtracker(&self) {
        dfs::local_cluster::spawn_daemon(
            Path::new(mrjob_bin()),
            &self.conf,
            &["jobtracker".to_owned()],
            "jobtracker",
            &self.path().join("logs"),
            &self.path().join("pids"),
        )
        .unwrap();
    }

    /// `mrjob status JOB`'s "maps D/T" as (D, T), if the jobtracker answers.
    fn maps_done(&self, job: &str) -> Option<(u32, u32)> {
        let status = self.mrjob(&["status", job]);
        let text = String::from_utf8_lossy(&status.stdout).into_owned();
        let maps = text.split("maps ").nth(1)?;
        let (done, rest) = maps.split_once('/')?;
        let total: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some((done.parse().ok()?, total.parse().ok()?))
    }
}

/// Runs a wordcount, restarts the jobtracker (SIGKILL) once `ready` says so, and checks that
/// the submitter follows the job through the restart to success with output equal to local
/// mode, and that the restarted jobtracker resumed it as its second run.
fn wordcount_survives_jobtracker_restart(
    test: &str,
    faults: &str,
    ready: impl Fn(&Cluster) -> bool,
) -> Cluster {
    let work = tempfile::tempdir().unwrap();
    let input = corpus(work.path(), test);
    let cluster = Cluster::start(3, faults, |c| {
        c.reduce_slowstart_percent = 100;
        c.speculative = false;
    });
    cluster.put(&input, "/in");
    let job = cluster.spawn_job(&["wordcount", "/in", "dfs:///out", "-r", "3"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready(&cluster) {
        assert!(
            Instant::now() < deadline,
            "the job never reached the restart point"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.restart_jobtracker();
    let out = job.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Submitted job 1 "), "{stderr}");
    let local = local_run(&["wordcount", "-r", "3"], &[&input], work.path());
    assert_same(
        cluster.files("/out"),
        &local,
        "wordcount through a jobtracker restart",
    );
    assert!(cluster.exists("/out/_SUCCESS"));
    let status = cluster.mrjob(&["status", "1"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("SUCCEEDED") && text.contains("run 2 of the job"),
        "{text}"
    );
    cluster
}

// Checks G6: the jobtracker SIGKILLed while reduces run (every map done, first reduce
// attempts slowed by a sleep) and restarted: it resumes job 1 from scratch under the same id,
// the earlier run's attempts are killed and can commit nothing, and the submitter, which kept
// following the job through the outage, exits 0 with output byte-identical to local mode.
#[test]
fn jobtracker_restart_while_reduces_run_resumes_the_job() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let test = "jobtracker_restart_while_reduces_run_resumes_the_job";
    // Only the first run's reduce attempts (number 0) sleep; the resumed run's do not.
    let cluster = wordcount_survives_jobtracker_restart(test, "sleep:r:*:0:5000", |c| {
        let maps_done = c.maps_done("1").is_some_and(|(d, t)| t > 0 && d == t);
        maps_done && !c.hosts_with_attempts('r').is_empty()
    });
    // The earlier run's reduces wake up after the job ended: still nothing of theirs lands.
    std::thread::sleep(Duration::from_secs(3));
    let names: Vec<String> = cluster.files("/out").into_keys().collect();
    assert!(
        names
            .iter()
            .all(|n| n == "_SUCCESS" || n.starts_with("part-r-"))
            && names.len() == 4,
        "{names:?}"
    );
}

// Checks G6: the jobtracker SIGKILLed in the map phase and restarted resumes the job; after
// a second restart with no job running, the finished job's status still answers from its
// record, and the next job gets the next id (ids are never reused).
#[test]
fn jobtracker_restart_during_maps_resumes_and_keeps_ids() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let test = "jobtracker_restart_during_maps_resumes_and_keeps_ids";
    // The first attempts of the first six maps sleep (of every job: job 2's too, so not all).
    let faults: Vec<String> = (0..6).map(|i| format!("sleep:m:{i}:0:3000")).collect();
    let cluster = wordcount_survives_jobtracker_restart(test, &faults.join(","), |c| {
        c.maps_done("1").is_some_and(|(_, t)| t > 0) && !c.hosts_with_attempts('m').is_empty()
    });
    cluster.restart_jobtracker();
    let text = cluster.status_once_answered("1");
    assert!(text.contains("SUCCEEDED"), "{text}");
    assert!(
        text.contains("Launched map attempts"),
        "counters kept: {text}"
    );
    let stderr = cluster.must_mrjob(&["wordcount", "/in", "/out2", "-r", "3"]);
    assert!(stderr.contains("Submitted job 2 "), "{stderr}");
    // Job 1's output already equals local mode.
    assert_same(
        cluster.files("/out2"),
        &cluster.files("/out"),
        "wordcount after a restart",
    );
    let list = cluster.mrjob(&["list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert_eq!(text.matches("SUCCEEDED").count(), 2, "{text}");
}

// Checks G6 and G7: a job the restarted jobtracker cannot resume (its input was deleted while
// the jobtracker was down) fails with a reason that says so, its output directory is removed,
// and the submitter, which followed the job through the outage, exits non-zero with it.
#[test]
fn jobtracker_restart_that_cannot_resume_fails_the_job_cleanly() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let work = tempfile::tempdir().unwrap();
    let test = "jobtracker_restart_that_cannot_resume_fails_the_job_cleanly";
    let input = corpus(work.path(), test);
    let cluster = Cluster::start(3, "sleep:m:*:0:3000", |_| {});
    cluster.put(&input, "/in");
    let job = cluster.spawn_job(&["wordcount", "/in", "/out", "-r", "2"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cluster.exists("/out") || cluster.hosts_with_attempts('m').is_empty() {
        assert!(Instant::now() < deadline, "the job never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.kill_jobtracker();
    let client = cluster.fs.client();
    assert!(cluster.fs.block_on(client.delete("/in", true)).unwrap());
    cluster.start_jobtracker();
    let out = job.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("jobtracker restarted while the job ran; its input cannot be read again"),
        "{stderr}"
    );
    assert!(
        !cluster.exists("/out"),
        "a failed job leaves no output directory"
    );
    let status = cluster.mrjob(&["status", "1"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("FAILED: jobtracker restarted"), "{text}");
}

/// Sends one raw submit for `spec` to the cluster's jobtracker; its answer, printed.
fn raw_submit(cluster: &Cluster, spec: &mapreduce::protocol::JobSpec) -> String {
    use mapreduce::protocol::{call, JtRequest, JtResponse};
    let req = JtRequest::Submit(Box::new(spec.clone()));
    let addr = &cluster.config.jobtracker_addr;
    let resp: JtResponse = cluster
        .fs
        .block_on(call(
            addr,
            cluster.config.secrets.credentials().unwrap(),
            &req,
            Duration::from_secs(60),
        ))
        .unwrap();
    format!("{resp:?}")
}

// Checks G6: a submission sent again (its answer lost, or slower than the caller's timeout)
// is one job, not two, also when the repeats race the first and after a jobtracker restart;
// a different submission for the same output is refused. The job's output equals local mode.
#[test]
fn repeated_submission_is_one_job() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let work = tempfile::tempdir().unwrap();
    let input = corpus(work.path(), "repeated_submission_is_one_job");
    // Maps sleep, so the job is still running at the restart below.
    let cluster = Cluster::start(3, "sleep:m:*:0:1500", |_| {});
    cluster.put(&input, "/in");
    // A first job stages the mrjob binary, which the raw submissions below reuse.
    cluster.must_mrjob(&["wordcount", "/in", "/out0", "-r", "2"]);
    let client = cluster.fs.client();
    let dir = mapreduce::job_binary::staging_dir(dfs::auth::SUPERUSER);
    let staged = cluster.fs.block_on(client.list(&dir)).unwrap();
    let binary = staged
        .iter()
        .map(|s| s.path.clone())
        .find(|p| !p.rsplit('/').next().unwrap().starts_with('.'))
        .expect("a staged binary");
    let sha256 = binary.rsplit('/').next().unwrap().to_owned();
    let settings = mapreduce::job::Settings {
        reducers: 2,
        ..mapreduce::job::Settings::default()
    };
    let spec = mapreduce::protocol::JobSpec {
        conf: mapreduce::job_conf::JobConf::new("wordcount", settings),
        binary: mapreduce::protocol::BinaryRef {
            dfs_path: binary,
            sha256,
        },
        inputs: vec![PathBuf::from("/in")],
        output: "/out".into(),
        input_format: mapreduce::input::InputFormat::Lines,
        reduces: 2,
        user: "test".into(),
        submission: "0123456789abcdef0123456789abcdef".into(),
    };
    let answers: Vec<String> = std::thread::scope(|s| {
        let racers: Vec<_> = (0..3)
            .map(|_| s.spawn(|| raw_submit(&cluster, &spec)))
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert!(
        answers.iter().all(|a| a == "Submitted { job: 2 }"),
        "{answers:?}"
    );
    let other = mapreduce::protocol::JobSpec {
        submission: "another".into(),
        ..spec.clone()
    };
    let refused = raw_submit(&cluster, &other);
    assert!(refused.contains("OutputExists"), "{refused}");
    cluster.restart_jobtracker();
    cluster.status_once_answered("2");
    assert_eq!(raw_submit(&cluster, &spec), "Submitted { job: 2 }");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        let out = cluster.mrjob(&["status", "2"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("SUCCEEDED") {
            break text;
        }
        assert!(!text.contains("FAILED"), "{text}");
        assert!(Instant::now() < deadline, "job 2 never finished: {text}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let list = cluster.mrjob(&["list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert_eq!(
        text.lines().filter(|l| l.contains("wordcount")).count(),
        2,
        "{text}\n{status}"
    );
    let local = local_run(&["wordcount", "-r", "2"], &[&input], work.path());
    assert_same(cluster.files("/out"), &local, "a repeated submission");
}

/// `mrjob [--conf C] ARGS` with `MRJOB_CONF` set to `env_conf` (or unset), its output
/// captured.
fn mrjob_cli(args: &[&str], env_conf: Option<&Path>) -> Output {
    let mut cmd = Command::new(mrjob_bin());
    cmd.args(args).env_remove("MRJOB_CONF");
    if let Some(conf) = env_conf {
        cmd.env("MRJOB_CONF", conf);
    }
    cmd.output().unwrap()
}

/// Stops the cluster of a directory on drop, so a failing test leaves no daemons behind.
struct StopOnDrop(PathBuf);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = Command::new(mrjob_bin())
            .args(["cluster", "stop", "--dir"])
            .arg(&self.0)
            .stderr(Stdio::null())
            .status();
    }
}

/// Whether `dir` exists in the dfs of the cluster whose config is `conf`.
fn dfs_exists(conf: &Path, dir: &str) -> bool {
    let config = ClusterConfig::load(conf).unwrap();
    let fs = DfsFs::new(DfsClient::new(config), false).unwrap();
    fs.block_on(fs.client().exists(dir)).unwrap()
}

#[test]
fn two_clusters_side_by_side_then_start_again_status_and_stop() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let _stop = (StopOnDrop(a.path().into()), StopOnDrop(b.path().into()));
    let port = port_base().to_string();
    // The same ports on another loopback network (127.0.6.x / 127.0.7.x), and the default
    // network on the same ports: two generated configs that share nothing.
    for (dir, extra) in [(&a, vec![]), (&b, vec!["--base-addr", "127.0.6.0"])] {
        let dir = dir.path().to_str().unwrap();
        let args = [
            &["cluster", "start", "--hosts", "1", "--dir", dir],
            &["--base-port", port.as_str()][..],
            &extra,
        ]
        .concat();
        let out = mrjob_cli(&args, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "start {args:?}: {stderr}");
        assert!(stderr.contains("cluster is up"), "{stderr}");
    }
    let (conf_a, conf_b) = (a.path().join("cluster.toml"), b.path().join("cluster.toml"));
    let text = std::fs::read_to_string(&conf_b).unwrap();
    assert!(text.contains(&format!("\"127.0.6.1:{port}\"")), "{text}");
    // Both work, and each is its own: a directory made in one is absent from the other.
    let config_a = ClusterConfig::load(&conf_a).unwrap();
    let fs_a = DfsFs::new(DfsClient::new(config_a), false).unwrap();
    fs_a.block_on(fs_a.client().mkdirs("/only-in-a")).unwrap();
    assert!(dfs_exists(&conf_a, "/only-in-a"));
    assert!(!dfs_exists(&conf_b, "/only-in-a"));

    // A second start says so once, without a summary of daemons it did not start.
    let again = mrjob_cli(
        &["cluster", "start", "--dir", a.path().to_str().unwrap()],
        None,
    );
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(stderr.contains("is already running"), "{stderr}");
    assert!(!stderr.contains("started"), "{stderr}");

    // Status finds the cluster from MRJOB_CONF or --conf, without --dir.
    let up = mrjob_cli(&["cluster", "status"], Some(&conf_a));
    let stdout = String::from_utf8_lossy(&up.stdout);
    assert!(up.status.success(), "{stdout}");
    assert!(stdout.contains("6/6 daemons up"), "{stdout}");
    let conf_b_arg = conf_b.to_str().unwrap();
    let up_b = mrjob_cli(&["--conf", conf_b_arg, "cluster", "status"], None);
    assert!(
        up_b.status.success(),
        "{}",
        String::from_utf8_lossy(&up_b.stdout)
    );

    // After a stop (also found from MRJOB_CONF), status says so and fails, at once.
    let stop = mrjob_cli(&["cluster", "stop"], Some(&conf_a));
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    let t0 = Instant::now();
    let down = mrjob_cli(&["cluster", "status"], Some(&conf_a));
    let stdout = String::from_utf8_lossy(&down.stdout);
    assert_eq!(down.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("0/6 daemons up"), "{stdout}");
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "status took {:?}",
        t0.elapsed()
    );
    // B never noticed.
    let up_b = mrjob_cli(&["--conf", conf_b_arg, "cluster", "status"], None);
    assert!(
        up_b.status.success(),
        "{}",
        String::from_utf8_lossy(&up_b.stdout)
    );
}

#[test]
fn cluster_start_on_a_taken_port_fails_at_once_and_leaves_nothing_running() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let _stop = StopOnDrop(dir.path().into());
    let port = port_base();
    // Someone else's listener where the second namenode's client port would be.
    let _holder = std::net::TcpListener::bind(("127.0.0.2", port)).unwrap();
    let t0 = Instant::now();
    let out = mrjob_cli(
        &[
            "cluster",
            "start",
            "--hosts",
            "1",
            "--base-port",
            &port.to_string(),
            "--dir",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    assert!(stderr.contains(&format!("127.0.0.2:{port}")), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let pids = dir.path().join("pids");
    let running: Vec<_> = std::fs::read_dir(&pids)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(running.is_empty(), "daemons left: {running:?}");
    // The config this start wrote is gone, so a retry with another --base-port takes effect.
    assert!(!dir.path().join("cluster.toml").exists());
}

/// Hosts whose worker has attempt files of a map of job `job` right now.
fn hosts_running_maps(cluster: &Cluster, job: u32) -> Vec<String> {
    let mut hosts = Vec::new();
    for h in &cluster.config.hosts {
        let dir = h.work_dir.join("jobs").join(format!("job_{job:04}"));
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        if entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains("_m_"))
        {
            hosts.push(h.name.clone());
        }
    }
    hosts
}

/// `mrjob ARGS`'s stdout, asserting success.
fn must_stdout(cluster: &Cluster, args: &[&str]) -> String {
    let out = cluster.mrjob(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "mrjob {args:?} failed: {stderr}\n{stdout}"
    );
    stdout
}

// `mrjob why` names the injected cause in three fault cases on one shared cluster (each
// fault is scoped to its job): a task that always fails (its id and its error), a slow task
// (its id, and whether it was data-local), a killed worker (its host). `mrjob logs` returns a
// failed Rust task's and a Streaming task's stderr after their jobs ended, and a task that
// floods its stderr leaves only the bounded head and tail on its worker's disk.
#[test]
fn why_names_the_injected_cause_and_logs_outlive_their_jobs() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let t0 = Instant::now();
    let lap = |what: &str| eprintln!("{:>6.1} s  {what}", t0.elapsed().as_secs_f64());
    let work = tempfile::tempdir().unwrap();
    let input = corpus(work.path(), "why_names_the_injected_cause");
    // Maps 0-2 of job 4 are the first three launched, one per host: whichever host is
    // killed was running one.
    let faults = "job1/fail:m:1:*,job2/sleep:m:0:*:6000,\
                  job4/sleep:m:0:0:8000,job4/sleep:m:1:0:8000,job4/sleep:m:2:0:8000";
    let cluster = Cluster::start(3, faults, |c| c.speculative = false);
    // One file of a few blocks: a handful of maps per job keeps the test short.
    cluster.put(&input, "/in");
    let plain = "/in/plain.txt";

    lap("cluster up");
    // Job 1: map 1 fails every time.
    let out = cluster.mrjob(&[
        "wordcount",
        plain,
        "/out1",
        "-D",
        "mapreduce.map.maxattempts=2",
    ]);
    assert_eq!(out.status.code(), Some(1));
    lap("job 1 ended");
    let why = must_stdout(&cluster, &["why", "1"]);
    eprintln!("{why}");
    assert!(why.starts_with("job 1 failed after"), "{why}");
    assert!(
        why.contains("cause: task task_0001_m_000001 failed 2 time(s)"),
        "{why}"
    );
    assert!(
        why.contains("injected failure of attempt_0001_m_000001_1"),
        "{why}"
    );
    let logs = must_stdout(&cluster, &["logs", "1", "m_000001"]);
    assert!(logs.contains("==> attempt_0001_m_000001_0 on "), "{logs}");
    assert!(logs.contains("==> attempt_0001_m_000001_1 on "), "{logs}");
    assert!(
        logs.contains("task failed: injected failure of attempt_0001_m_000001_0"),
        "{logs}"
    );
    // Unknown jobs and tasks are clear errors.
    let out = cluster.mrjob(&["logs", "1", "m_999999"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("no task or attempt \"m_999999\""),
        "{stderr}"
    );
    let out = cluster.mrjob(&["why", "99"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("no job 99"),
        "{stderr}"
    );

    lap("job 1 done");
    // Job 2: map 0 sleeps 6 s; the others take well under a second.
    cluster.must_mrjob(&[
        "wordcount",
        plain,
        "/out2",
        "-D",
        "mapreduce.map.speculative=false",
    ]);
    let why = must_stdout(&cluster, &["why", "2"]);
    assert!(why.starts_with("job 2 succeeded in"), "{why}");
    let slow = why
        .lines()
        .find(|l| l.contains(" was slow: "))
        .unwrap_or_else(|| panic!("{why}"));
    assert!(slow.contains("attempt_0002_m_000000_0"), "{why}");
    assert!(slow.contains("data-local"), "{why}");

    lap("job 2 done");
    // Job 3: a Streaming mapper floods its stderr with 3 MB, and says what of the worker's
    // environment it got (only the whitelist, plus the job's own variables).
    let flood = "sh -c 'yes spam-spam-spam | head -c 3000000 >&2; \
                 echo \"env: secret=${MRJOB_TEST_WORKER_SECRET:-absent} job=$mapreduce_job_id\"; \
                 echo reporter:status:flooded stderr >&2; sleep 2; cat'";
    cluster.must_mrjob(&[
        "streaming",
        "-input",
        "/in/plain.txt",
        "-output",
        "/out3",
        "-mapper",
        flood,
        "-reducer",
        "NONE",
    ]);
    let envs: Vec<String> = cluster
        .files("/out3")
        .values()
        .flat_map(|b| {
            String::from_utf8_lossy(b)
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.starts_with("env: "))
        .collect();
    assert!(!envs.is_empty(), "no env line in /out3");
    for line in envs {
        assert!(line.starts_with("env: secret=absent job=job_"), "{line}");
    }
    // The status its mapper reported (`reporter:status:`) is on the job page's attempts.
    let api = web::get_json(&cluster.config.jobtracker_web_addr(), "/api/job/3");
    let statuses: Vec<&str> = api["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("{api}"))
        .iter()
        .filter_map(|a| a["status"].as_str())
        .collect();
    assert!(statuses.contains(&"flooded stderr"), "{api}");
    let logs = must_stdout(&cluster, &["logs", "3", "m_000000"]);
    assert!(
        logs.contains("spam-spam-spam"),
        "{}",
        &logs[..logs.len().min(2000)]
    );
    assert!(logs.contains("bytes cut: the worker keeps the first and the last 65536 bytes"));
    assert!(logs.len() < 400_000, "{} bytes of logs", logs.len());
    for h in &cluster.config.hosts {
        let dir = h.work_dir.join("logs").join("job_0003");
        // Each attempt's directory (beside them, the file naming the job's user).
        let attempts = std::fs::read_dir(&dir).into_iter().flatten().flatten();
        for attempt in attempts.filter(|e| e.path().is_dir()) {
            let len = std::fs::metadata(attempt.path().join("stderr"))
                .unwrap()
                .len();
            assert!(
                len <= 2 * 65_536 + 200,
                "{}: {len} bytes",
                attempt.path().display()
            );
        }
    }

    lap("job 3 done");
    // Job 4: maps 0-2 sleep in their first attempts; a worker running one is SIGKILLed.
    let job = cluster.spawn_job(&[
        "wordcount",
        plain,
        "/out4",
        "-D",
        "mapreduce.map.speculative=false",
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let victim = loop {
        assert!(Instant::now() < deadline, "no map of job 4 started");
        if let Some(h) = hosts_running_maps(&cluster, 4).into_iter().next() {
            break h;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    cluster.signal_group(&format!("worker-{victim}"), "KILL");
    let out = job.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lap("job 4 done");
    let why = must_stdout(&cluster, &["why", "4"]);
    eprintln!("{why}");
    assert!(why.contains(&format!("worker {victim} was lost")), "{why}");
}
