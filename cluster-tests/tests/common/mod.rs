//! Helpers shared by the scenarios: seeded inputs, local-mode reference outputs, `must_*`
//! checks that panic with a clear message.
#![allow(dead_code)] // Each test binary uses its own subset.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cluster_tests::cluster::{mrjob_bin, Cluster};
use dfs::client::DfsClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Seeded bytes.
pub fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}

/// Writes `files` seeded text files of about `bytes` each (a Zipf-ish vocabulary plus rare
/// words) into `dir`.
pub fn write_corpus(dir: &Path, seed: u64, files: usize, bytes: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    for f in 0..files {
        let mut text = String::with_capacity(bytes + 64);
        while text.len() < bytes {
            let r: f64 = rng.gen();
            let word = if r < 0.9 {
                format!("w{}", (r * r * 300.0) as u32)
            } else {
                format!("rare{}", rng.gen_range(0..50_000))
            };
            text.push_str(&word);
            text.push(if rng.gen_range(0..12) == 0 { '\n' } else { ' ' });
        }
        std::fs::write(dir.join(format!("part-{f:03}.txt")), text).unwrap();
    }
}

/// Runs `mrjob JOB IN OUT --local` (plus `extra`) and returns the output's part files.
pub fn local_output(
    job: &str,
    input: &Path,
    out: &Path,
    extra: &[&str],
) -> BTreeMap<String, Vec<u8>> {
    let st = Command::new(mrjob_bin())
        .arg(job)
        .arg(input)
        .arg(out)
        .arg("--local")
        .args(extra)
        .env_remove("MRJOB_CONF")
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "local {job}: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(out).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("part-") {
            files.insert(name, std::fs::read(&p).unwrap());
        }
    }
    files
}

/// Copies every file of a local directory into dfs directory `dst`.
pub fn must_put_dir(c: &Cluster, src: &Path, dst: &str) {
    let client = c.client();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&p).unwrap();
        must_put(c, &client, &format!("{dst}/{name}"), &data);
    }
}

/// Writes a dfs file (retrying while a fault is in progress, up to a minute).
pub fn must_put(c: &Cluster, client: &DfsClient, path: &str, data: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match c.block_on(client.write_file(path, data, true)) {
            Ok(()) => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("put {path}: {e} (retrying)");
                std::thread::sleep(Duration::from_millis(300));
            }
            Err(e) => panic!("put {path}: {e}"),
        }
    }
}

/// Reads a dfs file.
pub fn must_read(c: &Cluster, client: &DfsClient, path: &str) -> Vec<u8> {
    c.block_on(client.read_file(path))
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// The `part-*` files of a dfs output directory, and whether `_SUCCESS` is there.
pub fn dfs_output(c: &Cluster, dir: &str) -> (BTreeMap<String, Vec<u8>>, bool) {
    let client = c.client();
    let list = c
        .block_on(client.list(dir))
        .unwrap_or_else(|e| panic!("list {dir}: {e}"));
    let mut files = BTreeMap::new();
    let mut success = false;
    for st in list {
        let name = st.path.rsplit('/').next().unwrap().to_string();
        if name == "_SUCCESS" {
            success = true;
        } else if name.starts_with("part-") {
            files.insert(name, must_read(c, &client, &st.path));
        } else {
            panic!("unexpected entry {} in job output {dir}", st.path);
        }
    }
    (files, success)
}

/// Asserts that the cluster job's output equals local mode's, part file by part file.
pub fn must_equal_output(c: &Cluster, dir: &str, want: &BTreeMap<String, Vec<u8>>) {
    let (got, success) = dfs_output(c, dir);
    assert!(success, "{dir}/_SUCCESS is missing");
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "part files of {dir}"
    );
    for (name, bytes) in want {
        assert!(got[name] == *bytes, "{dir}/{name} differs from local mode");
    }
}

/// Waits until every block of every file under `dir` has `want` live replicas and no corrupt
/// one (G4's "restores the replication factor").
pub fn must_be_fully_replicated(c: &Cluster, dir: &str, want: usize, within: Duration) {
    let client = c.client();
    let deadline = Instant::now() + within;
    loop {
        let report = c.block_on(client.fsck(dir));
        let bad: Vec<String> = match &report {
            Ok(files) => files
                .iter()
                .flat_map(|f| {
                    f.blocks
                        .iter()
                        .filter(|b| b.live.len() < want || !b.corrupt.is_empty())
                        .map(move |b| {
                            format!(
                                "{} block {}: live {:?}, corrupt {:?}",
                                f.path, b.block.id, b.live, b.corrupt
                            )
                        })
                })
                .collect(),
            Err(e) => vec![format!("fsck: {e}")],
        };
        if bad.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not {want} good replicas within {within:?}: {}",
            bad.join("; ")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Polls `f` until it returns true.
pub fn must_eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
