//! Shared helpers for the multi-process tests: start a cluster of real `dfs` processes on
//! 127.0.0.x / 127.0.1.x with tiny blocks and short timeouts, kill and restart its members,
//! wait for health, and `must_*` helpers that panic with a clear message.
//!
//! Two harnesses run the same test bodies (see `Harness`): the real Raft namenodes, and an
//! in-process fake namenode (`fake_namenode`) that lets the datanode and client be tested on
//! their own.
#![allow(dead_code)] // Each test binary uses a different subset of the helpers.

pub mod fake_namenode;
pub mod scenarios;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dfs::client::{CreateOptions, DfsClient};
use dfs::config::{local_config_with_ports, ClusterConfig, LocalPorts};
use rand::{RngCore, SeedableRng};

/// Block size used by the tests.
pub const BLOCK: usize = 64 * 1024;

/// Which namenode the cluster runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Harness {
    /// Three real `dfs namenode` processes (Raft).
    Real,
    /// One in-process fake (no Raft, no re-replication).
    Fake,
}

/// A running test cluster; every process is killed on drop.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub config: ClusterConfig,
    pub conf_path: PathBuf,
    pub harness: Harness,
    pub fake: Option<Arc<fake_namenode::FakeNamenode>>,
    /// Whether each process runs with the power-loss model on (see [`Cluster::power_loss`]).
    pub power_loss: bool,
    namenodes: BTreeMap<u64, Child>,
    datanodes: BTreeMap<String, Child>,
}

static PORT_SLOT: AtomicU16 = AtomicU16::new(0);

/// A port base unlikely to collide with other tests running at the same time.
pub fn port_base() -> u16 {
    let slot = PORT_SLOT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id() as u16;
    // Below Linux's ephemeral range (32768-60999): a listener there can collide with the
    // local port of some outgoing loopback connection.
    20_000 + (pid.wrapping_mul(97).wrapping_add(slot.wrapping_mul(10))) % 12_000
}

/// The test config: tiny blocks, fast heartbeats and failure detection
/// ([`ClusterConfig::with_fast_timeouts`]).
pub fn test_config(dir: &Path, namenodes: usize, hosts: usize) -> ClusterConfig {
    let mut c = local_config_with_ports(namenodes, hosts, dir, LocalPorts::from_base(port_base()));
    c = c.with_fast_timeouts();
    // The tests' own block-size arithmetic uses BLOCK.
    c.block_size_bytes = BLOCK as u64;
    // These tests kill datanodes and clients and wait for that to be noticed; no MapReduce
    // load competes here, so detection can be quicker than in the shared fast config.
    c.datanode_dead_after_ms = 2_000;
    c.rpc_timeout_ms = 2_000;
    c.idle_timeout_ms = 30_000;
    c
}

impl Cluster {
    /// Starts `hosts` datanodes and the namenode(s) of `harness`, and waits until every
    /// datanode is live.
    pub async fn start(harness: Harness, hosts: usize) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let namenodes = if harness == Harness::Real { 3 } else { 1 };
        let config = test_config(dir.path(), namenodes, hosts);
        Self::start_with(harness, dir, config).await
    }

    /// Starts a cluster from an explicit config (written to `dir/cluster.toml`).
    pub async fn start_with(
        harness: Harness,
        dir: tempfile::TempDir,
        config: ClusterConfig,
    ) -> Cluster {
        Self::start_inner(harness, dir, config, false).await
    }

    /// Starts real namenodes and datanodes, each with the power-loss model on and its own
    /// shadow dir ([`Cluster::shadow_dir`]), so [`Cluster::power_loss`] can be simulated.
    pub async fn start_with_power_loss(dir: tempfile::TempDir, config: ClusterConfig) -> Cluster {
        Self::start_inner(Harness::Real, dir, config, true).await
    }

    async fn start_inner(
        harness: Harness,
        dir: tempfile::TempDir,
        config: ClusterConfig,
        power_loss: bool,
    ) -> Cluster {
        let conf_path = dir.path().join("cluster.toml");
        config.save(&conf_path).unwrap();
        let mut cluster = Cluster {
            dir,
            config,
            conf_path,
            harness,
            fake: None,
            power_loss,
            namenodes: BTreeMap::new(),
            datanodes: BTreeMap::new(),
        };
        match harness {
            Harness::Real => {
                for id in cluster.namenode_ids() {
                    cluster.start_namenode(id);
                }
            }
            Harness::Fake => {
                let nn = &cluster.config.namenodes[0];
                let dead = Duration::from_millis(cluster.config.datanode_dead_after_ms);
                let authority = cluster.config.secrets.authority().unwrap();
                let fake = fake_namenode::start(&nn.addr, dead, BLOCK as u64, authority).await;
                cluster.fake = Some(fake);
            }
        }
        for host in cluster.host_names() {
            cluster.start_datanode(&host);
        }
        cluster
            .must_wait_live(cluster.config.hosts.len(), Duration::from_secs(30))
            .await;
        cluster
    }

    pub fn namenode_ids(&self) -> Vec<u64> {
        self.config.namenodes.iter().map(|n| n.id).collect()
    }

    pub fn host_names(&self) -> Vec<String> {
        self.config.hosts.iter().map(|h| h.name.clone()).collect()
    }

    fn spawn(&self, args: &[&str], log: &str) -> Child {
        let log_path = self.dir.path().join(format!("{log}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let err = out.try_clone().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_dfs"));
        if self.power_loss {
            let shadow = self.shadow_dir(log);
            std::fs::create_dir_all(&shadow).unwrap();
            command.env(dfs::power_loss::ENV_VAR, shadow);
        }
        command
            .arg("--conf")
            .arg(&self.conf_path)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn dfs")
    }

    /// The power-loss shadow dir of the process logging to `log` (`nn1`, a host name).
    pub fn shadow_dir(&self, log: &str) -> PathBuf {
        self.dir.path().join("power-loss").join(log)
    }

    /// Simulated power loss of one datanode: SIGKILL, then its state rewritten to what its
    /// power-loss model says survived. Restart it with [`Cluster::start_datanode`].
    pub fn power_loss_datanode(&mut self, host: &str) {
        assert!(
            self.power_loss,
            "the cluster was not started with the power-loss model"
        );
        self.kill_datanode(host);
        let shadow = self.shadow_dir(host);
        dfs::power_loss::materialize(&shadow)
            .unwrap_or_else(|e| panic!("materializing {}: {e}", shadow.display()));
    }

    /// Simulated power loss of one namenode: SIGKILL, then its state rewritten to what its
    /// power-loss model says survived. Restart it with [`Cluster::start_namenode`].
    pub fn power_loss_namenode(&mut self, id: u64) {
        assert!(
            self.power_loss,
            "the cluster was not started with the power-loss model"
        );
        self.kill_namenode(id);
        let shadow = self.shadow_dir(&format!("nn{id}"));
        dfs::power_loss::materialize(&shadow)
            .unwrap_or_else(|e| panic!("materializing {}: {e}", shadow.display()));
    }

    /// Simulated power loss of every process at once: SIGKILL all of them, then rewrite each
    /// one's state to what its power-loss model says survived. Restart them afterwards.
    pub fn power_loss(&mut self) {
        assert!(
            self.power_loss,
            "the cluster was not started with the power-loss model"
        );
        let mut children: Vec<Child> = std::mem::take(&mut self.namenodes).into_values().collect();
        children.extend(std::mem::take(&mut self.datanodes).into_values());
        // Every signal first, then the waits: no process outlives another by a wait.
        for c in &mut children {
            let _ = c.kill();
        }
        for c in &mut children {
            let _ = c.wait();
        }
        let logs = self
            .namenode_ids()
            .into_iter()
            .map(|id| format!("nn{id}"))
            .chain(self.host_names());
        for log in logs {
            let shadow = self.shadow_dir(&log);
            dfs::power_loss::materialize(&shadow)
                .unwrap_or_else(|e| panic!("materializing {}: {e}", shadow.display()));
        }
    }

    pub fn start_namenode(&mut self, id: u64) {
        let child = self.spawn(&["namenode", "--id", &id.to_string()], &format!("nn{id}"));
        self.namenodes.insert(id, child);
    }

    pub fn start_datanode(&mut self, host: &str) {
        let child = self.spawn(&["datanode", "--host", host], host);
        self.datanodes.insert(host.to_string(), child);
    }

    /// SIGKILL a datanode.
    pub fn kill_datanode(&mut self, host: &str) {
        if let Some(mut c) = self.datanodes.remove(host) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP (`resume = false`) or SIGCONT (`resume = true`) a datanode: a hung process.
    pub fn pause_datanode(&self, host: &str, resume: bool) {
        let pid = self.datanodes[host].id();
        let sig = if resume { "-CONT" } else { "-STOP" };
        let status = Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill {sig} {pid}");
    }

    /// SIGKILL a namenode.
    pub fn kill_namenode(&mut self, id: u64) {
        if let Some(mut c) = self.namenodes.remove(&id) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGKILL every process (the fake namenode, being in-process, survives).
    pub fn kill_all(&mut self) {
        for id in self.namenode_ids() {
            self.kill_namenode(id);
        }
        for h in self.host_names() {
            self.kill_datanode(&h);
        }
    }

    pub fn client(&self) -> DfsClient {
        DfsClient::new(self.config.clone()).with_local_host(None)
    }

    /// A client that believes it runs on `host` (short-circuit reads).
    pub fn client_on(&self, host: &str) -> DfsClient {
        DfsClient::new(self.config.clone()).with_local_host(Some(host.to_string()))
    }

    /// Data directory of a host.
    pub fn data_dir(&self, host: &str) -> PathBuf {
        self.config.host(host).unwrap().data_dirs[0].clone()
    }

    /// Path of the finalized replica of `block_id` on `host`, if there is one.
    pub fn replica_file(&self, host: &str, block_id: u64) -> Option<PathBuf> {
        let cur = self.data_dir(host).join("current");
        let prefix = format!("blk_{block_id}_");
        std::fs::read_dir(cur)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.starts_with(&prefix) && name.ends_with(".data")
            })
    }

    /// Runs the `dfs` shell with this cluster's config.
    pub fn dfs(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_dfs"))
            .arg("--conf")
            .arg(&self.conf_path)
            .args(args)
            .output()
            .expect("run dfs")
    }

    /// Waits until at least `n` datanodes are live as the namenode sees them.
    pub async fn must_wait_live(&self, n: usize, within: Duration) {
        let client = self.client();
        let deadline = Instant::now() + within;
        loop {
            let live = match client.datanode_report().await {
                Ok(nodes) => nodes.iter().filter(|d| d.live).count(),
                Err(_) => 0,
            };
            if live >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {live}/{n} datanodes live after {within:?}; logs in {}",
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
        if std::env::var_os("KEEP_TEST_DIRS").is_some() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
            eprintln!("keeping {}", dir.keep().display());
        }
    }
}

/// The test's seed: `SEED=` from the environment to replay, else random; always printed.
pub fn test_seed() -> u64 {
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("SEED={seed}");
    seed
}

/// `len` pseudo-random bytes from `seed`.
pub fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// FNV-1a, to compare contents by hash in messages.
pub fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

pub async fn must_put(client: &DfsClient, path: &str, data: &[u8]) {
    let mut w = client
        .create(path, CreateOptions::default())
        .await
        .unwrap_or_else(|e| panic!("create {path}: {e}"));
    w.write(data)
        .await
        .unwrap_or_else(|e| panic!("write {path}: {e}"));
    w.close()
        .await
        .unwrap_or_else(|e| panic!("close {path}: {e}"));
}

pub async fn must_read(client: &DfsClient, path: &str) -> Vec<u8> {
    client
        .read_file(path)
        .await
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// Asserts two contents are equal, reporting lengths and hashes rather than the bytes.
pub fn must_equal(got: &[u8], want: &[u8], what: &str) {
    assert!(
        got == want,
        "{what}: got {} bytes (hash {:x}), want {} bytes (hash {:x})",
        got.len(),
        hash(got),
        want.len(),
        hash(want)
    );
}

/// Runs a test body with a hard time limit, so a hang fails instead of blocking CI.
pub async fn bounded<F: std::future::Future<Output = ()>>(limit: Duration, body: F) {
    tokio::time::timeout(limit, body)
        .await
        .unwrap_or_else(|_| panic!("test exceeded its time limit of {limit:?}"));
}
