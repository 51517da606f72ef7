//! A whole cluster of real processes on separate hosts: three namenode hosts (`nn1`-`nn3`),
//! a jobtracker host (`jt`) and N worker hosts (`h1`...) that each run a datanode and a worker,
//! every daemon the `mrjob` binary as deployed (`mrjob --conf C namenode --id N`, ...).
//!
//! The config comes from `dfs::config::hosts_config`, the generator behind `dfs config hosts`
//! that `deploy/` and the Vagrantfile use, with `{node}` in the state directory so daemons that
//! share this machine's disk keep apart; only timings are shortened for tests.
//!
//! The test process is the cluster's edge machine: its dfs clients and `mrjob` submissions
//! reach the hosts through the bridge. Each daemon runs in its own process group (a worker's
//! task processes included), so a kill or a pause hits all of it, like a machine would.
//! A failing test keeps the cluster directory (config, every daemon's log, data) and prints
//! where it is.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dfs::client::DfsClient;
use dfs::config::{hosts_config, ClusterConfig, HostsSpec};
use dfs::protocol::RaftRole;
use mapreduce::config::{Config, MapReduceConfig};

use crate::net::Network;

/// A daemon of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Daemon {
    /// The namenode with this Raft id, on host `nnN`.
    Namenode(u64),
    /// The datanode of a worker host.
    Datanode(String),
    /// The worker (task slots, shuffle server) of a worker host.
    Worker(String),
    /// The jobtracker, on host `jt`.
    Jobtracker,
}

impl Daemon {
    /// Log and display name.
    pub fn name(&self) -> String {
        match self {
            Daemon::Namenode(id) => format!("namenode-{id}"),
            Daemon::Datanode(h) => format!("datanode-{h}"),
            Daemon::Worker(h) => format!("worker-{h}"),
            Daemon::Jobtracker => "jobtracker".into(),
        }
    }

    /// The host it runs on.
    pub fn host(&self) -> String {
        match self {
            Daemon::Namenode(id) => format!("nn{id}"),
            Daemon::Datanode(h) | Daemon::Worker(h) => h.clone(),
            Daemon::Jobtracker => "jt".into(),
        }
    }

    fn args(&self) -> Vec<String> {
        match self {
            Daemon::Namenode(id) => vec!["namenode".into(), "--id".into(), id.to_string()],
            Daemon::Datanode(h) => vec!["datanode".into(), "--host".into(), h.clone()],
            Daemon::Worker(h) => vec!["worker".into(), "--host".into(), h.clone()],
            Daemon::Jobtracker => vec!["jobtracker".into()],
        }
    }
}

/// What to start.
pub struct Options {
    /// Worker hosts (a datanode and a worker each).
    pub hosts: usize,
    /// `MRJOB_FAULTS` for workers (test hooks in task processes, see `mapreduce::fault`).
    pub faults: String,
    /// Start the MapReduce daemons (jobtracker, workers) too.
    pub mapreduce: bool,
    /// Run namenodes and datanodes under dfs's power-loss model (`dfs::power_loss`), so
    /// [`Cluster::lose_power`] can drop what they had not fsynced.
    pub power_loss: bool,
    /// Config changes after the test timings.
    pub tweak: Box<dyn FnOnce(&mut ClusterConfig)>,
    /// Changes to the `[mapreduce]` table after the test timings.
    pub tweak_mapreduce: Box<dyn FnOnce(&mut MapReduceConfig)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            hosts: 4,
            faults: String::new(),
            mapreduce: true,
            power_loss: false,
            tweak: Box::new(|_| {}),
            tweak_mapreduce: Box::new(|_| {}),
        }
    }
}

/// A running cluster; every daemon is killed and the network removed on drop.
pub struct Cluster {
    /// The hosts and the faults between them.
    pub net: Network,
    dir: Option<tempfile::TempDir>,
    /// The config file every daemon and client uses.
    pub conf: PathBuf,
    /// The config: dfs's part.
    pub config: ClusterConfig,
    /// The config: the `[mapreduce]` table.
    pub mapreduce: MapReduceConfig,
    procs: BTreeMap<Daemon, Child>,
    faults: String,
    power_loss: bool,
    rt: tokio::runtime::Runtime,
}

/// The `mrjob` binary: `MRJOB_BIN`, else the one cargo built next to this test binary
/// (`cargo test --workspace` builds it; `cargo build -p examples` does too).
pub fn mrjob_bin() -> PathBuf {
    if let Ok(p) = std::env::var("MRJOB_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test binary> → target/<profile>/mrjob
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("mrjob"))
        .expect("test binary location");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p examples` (or `cargo test --workspace`) first, or set MRJOB_BIN",
        bin.display()
    );
    bin
}

impl Cluster {
    /// Starts a cluster for the test `name` and waits until it is healthy.
    pub fn start(name: &str, opts: Options) -> Cluster {
        let workers: Vec<String> = (1..=opts.hosts).map(|i| format!("h{i}")).collect();
        let mut names = vec!["nn1", "nn2", "nn3", "jt"];
        names.extend(workers.iter().map(String::as_str));
        let net = Network::create(&names);
        let dir = tempfile::Builder::new()
            .prefix(&format!("cluster-{name}-"))
            .tempdir()
            .expect("tempdir");
        fs::create_dir_all(dir.path().join("logs")).unwrap();
        let ip = |h: &str| net.host(h).ip.to_string();
        let hosts: Vec<String> = workers
            .iter()
            .zip(1..)
            .map(|(h, i)| format!("{h}={}@/rack{}", ip(h), 1 + i % 2))
            .collect();
        let spec = HostsSpec::parse(
            &format!("{},{},{}", ip("nn1"), ip("nn2"), ip("nn3")),
            &hosts.join(","),
            &ip("jt"),
            &dir.path().join("{node}"),
        )
        .expect("hosts spec");
        let mut config = hosts_config(&spec).expect("hosts config");
        let mut mr = MapReduceConfig::default();
        test_timings(&mut config, &mut mr);
        (opts.tweak)(&mut config);
        (opts.tweak_mapreduce)(&mut mr);
        config.validate().expect("test config");
        mr.validate().expect("test config");
        let conf = dir.path().join("cluster.toml");
        let whole = Config {
            cluster: config,
            mapreduce: mr,
        };
        whole.save(&conf).unwrap();
        let Config {
            cluster: config,
            mapreduce,
        } = whole;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut cluster = Cluster {
            net,
            dir: Some(dir),
            conf,
            config,
            mapreduce,
            procs: BTreeMap::new(),
            faults: opts.faults,
            power_loss: opts.power_loss,
            rt,
        };
        for id in 1..=3 {
            cluster.start_daemon(Daemon::Namenode(id));
        }
        for h in &workers {
            cluster.start_daemon(Daemon::Datanode(h.clone()));
        }
        if opts.mapreduce {
            cluster.start_daemon(Daemon::Jobtracker);
            for h in &workers {
                cluster.start_daemon(Daemon::Worker(h.clone()));
            }
        }
        cluster.wait_healthy(opts.hosts, opts.mapreduce, Duration::from_secs(60));
        cluster
    }

    /// The cluster directory (config, logs, every daemon's state).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    /// The worker hosts' names.
    pub fn worker_hosts(&self) -> Vec<String> {
        self.config.hosts.iter().map(|h| h.name.clone()).collect()
    }

    /// Starts (or restarts) one daemon in its host, in its own process group.
    pub fn start_daemon(&mut self, d: Daemon) {
        assert!(!self.procs.contains_key(&d), "{} already runs", d.name());
        let log = self.log_file(&d);
        let mut cmd = self.net.command(&d.host(), &mrjob_bin());
        cmd.arg("--conf")
            .arg(&self.conf)
            .args(d.args())
            .env_remove("MRJOB_CONF")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0);
        if matches!(d, Daemon::Worker(_)) && !self.faults.is_empty() {
            cmd.env("MRJOB_FAULTS", &self.faults);
        }
        if let Some(shadow) = self.shadow_dir(&d) {
            cmd.env("DFS_TEST_POWER_LOSS_DIR", shadow);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", d.name()));
        self.procs.insert(d, child);
    }

    fn log_file(&self, d: &Daemon) -> File {
        let path = self.dir().join("logs").join(format!("{}.log", d.name()));
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
    }

    /// SIGKILLs a daemon (its whole process group) and reaps it.
    pub fn kill(&mut self, d: &Daemon) {
        let mut child = self
            .procs
            .remove(d)
            .unwrap_or_else(|| panic!("{} is not running", d.name()));
        signal_group(child.id(), "KILL");
        let _ = child.wait();
    }

    /// The power-loss model's record of what `d` fsynced (namenodes and datanodes, when the
    /// cluster runs under the model).
    fn shadow_dir(&self, d: &Daemon) -> Option<PathBuf> {
        let storage = matches!(d, Daemon::Namenode(_) | Daemon::Datanode(_));
        (self.power_loss && storage).then(|| self.dir().join("shadow").join(d.name()))
    }

    /// A power loss of `d`'s storage: SIGKILL, then everything it had not fsynced is gone
    /// (see `dfs::power_loss`). The caller restarts it.
    pub fn lose_power(&mut self, d: &Daemon) {
        self.kill(d);
        let shadow = self
            .shadow_dir(d)
            .unwrap_or_else(|| panic!("{} does not run under the power-loss model", d.name()));
        dfs::power_loss::materialize(&shadow)
            .unwrap_or_else(|e| panic!("power loss of {}: {e}", d.name()));
    }

    /// SIGKILLs and starts a daemon again.
    pub fn restart(&mut self, d: &Daemon) {
        self.kill(d);
        self.start_daemon(d.clone());
    }

    /// SIGSTOPs (`pause`) or SIGCONTs a daemon's process group.
    pub fn pause(&self, d: &Daemon, pause: bool) {
        let child = self
            .procs
            .get(d)
            .unwrap_or_else(|| panic!("{} is not running", d.name()));
        signal_group(child.id(), if pause { "STOP" } else { "CONT" });
    }

    /// True when `d` has been started and not killed.
    pub fn is_running(&self, d: &Daemon) -> bool {
        self.procs.contains_key(d)
    }

    /// Runs a future on the cluster's client runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Spawns a task on the cluster's client runtime.
    pub fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.rt.spawn(f)
    }

    /// Both parts of the config, as a MapReduce client reads them.
    pub fn whole_config(&self) -> Config {
        Config {
            cluster: self.config.clone(),
            mapreduce: self.mapreduce.clone(),
        }
    }

    /// A dfs client of the whole cluster, from the edge machine.
    pub fn client(&self) -> DfsClient {
        DfsClient::new(self.config.clone())
    }

    /// A dfs client that knows only namenode `id` (to see what that one node serves).
    pub fn client_of_namenode(&self, id: u64) -> DfsClient {
        let mut c = self.config.clone();
        c.namenodes.retain(|n| n.id == id);
        DfsClient::new(c)
    }

    /// The current Raft leader's id, waiting up to `within` for one that a majority follows.
    pub fn must_leader(&self, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(id) = self.leader() {
                return id;
            }
            assert!(
                Instant::now() < deadline,
                "no namenode leader within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The leader that at least two namenodes agree on, if any.
    pub fn leader(&self) -> Option<u64> {
        let statuses = self.block_on(self.client().namenode_statuses());
        let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
        let mut leaders = Vec::new();
        for (_, s) in statuses.into_iter() {
            let Ok(s) = s else { continue };
            if s.role == RaftRole::Leader {
                leaders.push(s.id);
            }
            if s.leader_id != 0 {
                *votes.entry(s.leader_id).or_default() += 1;
            }
        }
        leaders
            .into_iter()
            .find(|id| votes.get(id).copied().unwrap_or(0) >= 2)
    }

    /// Waits until the namenodes have a leader, `hosts` datanodes are live and (with
    /// `mapreduce`) every worker heartbeats.
    pub fn wait_healthy(&self, hosts: usize, mapreduce: bool, within: Duration) {
        let deadline = Instant::now() + within;
        let client = self.client();
        loop {
            let live = self
                .block_on(client.datanode_report())
                .map(|r| r.iter().filter(|d| d.live).count())
                .unwrap_or(0);
            let workers = if mapreduce {
                mapreduce::submit::ClusterClient::new(self.whole_config())
                    .and_then(|c| c.workers())
                    .map(|w| w.iter().filter(|w| w.live).count())
                    .unwrap_or(0)
            } else {
                hosts
            };
            if live >= hosts && workers >= hosts {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cluster not healthy within {within:?}: {live}/{hosts} datanodes, {workers}/{hosts} workers live (logs in {})",
                self.dir().join("logs").display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `mrjob --conf C ARGS` from the edge machine.
    pub fn mrjob(&self, args: &[&str]) -> Output {
        self.mrjob_command(args).output().unwrap()
    }

    /// `mrjob --conf C ARGS`, to spawn in the background.
    pub fn mrjob_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(mrjob_bin());
        c.arg("--conf")
            .arg(&self.conf)
            .args(args)
            .env_remove("MRJOB_CONF")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Where a host keeps its state (`{node}` in the generated state directory).
    pub fn state_dir(&self, node: &str) -> PathBuf {
        self.dir().join(node)
    }

    /// The finalized block files (not sidecars) a datanode host stores.
    pub fn block_files(&self, host: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for d in &self.config.host(host).expect("host").data_dirs {
            collect_files(d, &mut out);
        }
        // Finalized replicas only: `current/blk_<id>_<gen>.data` (see dfs's block_store).
        out.retain(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            let in_current = p.parent().and_then(Path::file_name) == Some("current".as_ref());
            in_current && name.starts_with("blk_") && name.ends_with(".data")
        });
        out.sort();
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, mut child) in std::mem::take(&mut self.procs) {
            signal_group(child.id(), "CONT");
            signal_group(child.id(), "KILL");
            let _ = child.wait();
        }
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!(
                    "cluster-tests: the failed cluster's config, logs and data are kept in {}",
                    kept.display()
                );
            }
        }
    }
}

/// The shared test timings ([`ClusterConfig::with_fast_timeouts`] and
/// [`MapReduceConfig::with_fast_timeouts`]): failures detected in seconds, blocks of 64 KiB so
/// small inputs span many blocks.
fn test_timings(c: &mut ClusterConfig, mr: &mut MapReduceConfig) {
    *c = std::mem::take(c).with_fast_timeouts();
    *mr = std::mem::take(mr).with_fast_timeouts();
    // One host per machine would take every core; on this shared machine two slots each.
    for h in &mut c.hosts {
        h.worker_slots = 2;
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Sends SIGsig to the process group led by `pid`.
fn signal_group(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}
