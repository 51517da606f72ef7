//! A user's own job binary on a cluster started by `mrjob`: the cluster is not rebuilt for
//! it; the binary is staged in dfs under its content hash and the workers run it from their
//! cache. Its output must equal its own local mode on the same input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use dfs::client::DfsClient;
use dfs::config::{local_config_with_ports, LocalPorts};
use mapreduce::config::{Config, MapReduceConfig};
use mapreduce::dfs_fs::DfsFs;

/// The `mrjob` binary of the same build (it runs the cluster's daemons).
fn mrjob_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("mrjob");
    if !bin.exists() {
        // `cargo test --workspace` builds it; a lone `cargo test -p custom-job` may not have.
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "examples", "--bin", "mrjob"])
            .status()
            .unwrap();
        assert!(status.success(), "building mrjob failed");
    }
    bin
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.env_remove("MRJOB_CONF").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{cmd:?} failed: {stderr}");
    stderr
}

#[test]
fn user_binary_runs_on_a_cluster_started_by_mrjob() {
    let dir = tempfile::tempdir().unwrap();
    // Below Linux's ephemeral range (32768-60999), where outgoing connections take ports.
    let base = 20_000 + (std::process::id() as u16).wrapping_mul(83) % 12_000;
    let c =
        local_config_with_ports(3, 3, dir.path(), LocalPorts::from_base(base)).with_fast_timeouts();
    let whole = Config {
        cluster: c.clone(),
        mapreduce: MapReduceConfig::default().with_fast_timeouts(),
    };
    let conf = dir.path().join("cluster.toml");
    whole.save(&conf).unwrap();
    let mrjob = mrjob_bin();
    let stop = || {
        let _ = Command::new(&mrjob)
            .args(["cluster", "stop", "--dir"])
            .arg(dir.path())
            .output();
    };
    run(Command::new(&mrjob)
        .args(["cluster", "start", "--dir"])
        .arg(dir.path()));

    let input = dir.path().join("input.txt");
    let text: String = (0..40_000)
        .map(|i| format!("{} ", "x".repeat(1 + (i * 7919) % 13)))
        .collect();
    std::fs::write(&input, text.as_bytes()).unwrap();
    let fs = DfsFs::new(DfsClient::new(c.clone()), false).unwrap();
    fs.block_on(
        fs.client()
            .write_file("/in/input.txt", text.as_bytes(), false),
    )
    .unwrap();

    let wordlen = env!("CARGO_BIN_EXE_wordlen");
    for out in ["/out1", "/out2"] {
        run(Command::new(wordlen)
            .arg("--conf")
            .arg(&conf)
            .args(["/in", out, "-r", "2", "-q"]));
    }
    let local_out = dir.path().join("local-out");
    run(Command::new(wordlen)
        .arg("--local")
        .arg(&input)
        .arg(&local_out)
        .args(["-r", "2", "-q"]));

    let read_dfs = |d: &str| -> BTreeMap<String, Vec<u8>> {
        let client = fs.client();
        fs.block_on(client.list(d))
            .unwrap()
            .into_iter()
            .map(|s| {
                let name = s.path.rsplit('/').next().unwrap().to_owned();
                (name, fs.block_on(client.read_file(&s.path)).unwrap())
            })
            .collect()
    };
    let local: BTreeMap<String, Vec<u8>> = std::fs::read_dir(&local_out)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    let cluster_ok = read_dfs("/out1") == local && read_dfs("/out2") == local;
    // One staged binary (this one, not mrjob), in the staging directory of the superuser
    // (who ran both jobs), cached once per worker across both jobs.
    let staged = read_dfs(&mapreduce::job_binary::staging_dir("admin"));
    let cached: Vec<usize> = c
        .hosts
        .iter()
        .map(|h| count_files(&h.work_dir.join("bin").join("admin")))
        .collect();
    stop();
    assert!(cluster_ok, "cluster output differs from local mode");
    assert_eq!(staged.len(), 1, "{:?}", staged.keys());
    // What is staged is this binary stripped of its debug info (a smaller ELF file), named
    // by the hash of the stripped bytes that workers download and check.
    let wordlen_bytes = std::fs::read(wordlen).unwrap();
    let (name, bytes) = staged.iter().next().unwrap();
    assert!(
        bytes.starts_with(b"\x7fELF"),
        "staged file is no executable"
    );
    assert!(
        bytes.len() <= wordlen_bytes.len(),
        "{} > {}",
        bytes.len(),
        wordlen_bytes.len()
    );
    assert!(
        name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()),
        "{name}"
    );
    assert!(cached.iter().all(|&n| n <= 1), "{cached:?}");
    assert!(cached.contains(&1), "{cached:?}");
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}
