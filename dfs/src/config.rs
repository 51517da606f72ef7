//! The cluster description, `cluster.toml`: which namenodes and hosts exist, where they listen,
//! and every size and timeout the daemons use.
//!
//! Every key has a default and unknown keys are an error, so a typo is caught at startup rather
//! than silently ignored (G7). [`ClusterConfig::validate`] checks what serde cannot (unique ids,
//! parseable addresses, sane timeouts).
//!
//! The file also has a `[mapreduce]` table ([`MAPREDUCE_SECTION`]): how MapReduce behaves
//! (timeouts, retries, locality, speculation), which the mapreduce crate parses with the same
//! rules. dfs skips that table. What stays here is where things run, MapReduce's daemons
//! included (the jobtracker's address, each host's worker address, slots and work directory):
//! the generators below lay out the machines and cannot depend on the mapreduce crate, and a
//! worker runs on every dfs host, so one `[[hosts]]` list names each machine once and a worker
//! and a datanode cannot disagree about the host they share (locality matches them by name).
//!
//! Two generators write the file, so no one writes it by hand: [`local_config`] describes a
//! cluster on this one machine, using distinct loopback addresses so that every daemon keeps its
//! production port (the pseudo cluster and the cluster tests), and [`hosts_config`] describes a
//! cluster of separate machines from their addresses (`dfs config hosts`, which the Vagrantfile's
//! provisioning runs on every VM).
//!
//! Which file is used: `--conf FILE` when given, else the `MRJOB_CONF` environment variable
//! (see [`find_config_path`]); with neither, callers run in local (embedded) mode.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::auth::Secrets;
use crate::error::{Error, Result};

mod web;

use web::LOCAL_PORT_COUNT;
pub use web::{DATANODE_HTTP_PORT, JOBTRACKER_HTTP_PORT, NAMENODE_HTTP_PORT, WORKER_HTTP_PORT};

/// Environment variable that names the cluster config when `--conf` is absent.
pub const CONF_ENV: &str = "MRJOB_CONF";

/// Default namenode client RPC port (Hadoop's).
pub const NAMENODE_RPC_PORT: u16 = 8020;
/// Default namenode-to-namenode Raft port.
pub const NAMENODE_RAFT_PORT: u16 = 8021;
/// Default datanode data-transfer port (Hadoop's).
pub const DATANODE_PORT: u16 = 9866;
/// Default MapReduce worker port.
pub const WORKER_PORT: u16 = 9870;
/// Default jobtracker port.
pub const JOBTRACKER_PORT: u16 = 8030;
/// Rack of a host whose rack is not given (Hadoop's name for it).
pub const DEFAULT_RACK: &str = "/default-rack";
/// The table of `cluster.toml` that belongs to MapReduce (`mapreduce::config`); dfs skips it.
pub const MAPREDUCE_SECTION: &str = "mapreduce";
/// The cluster key's file name beside `cluster.toml`, as generated configs name it.
pub const DEFAULT_KEY_FILE: &str = "cluster.key";

/// One namenode replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamenodeConfig {
    /// Raft id, unique and non-zero.
    pub id: u64,
    /// Client RPC address (clients, datanodes, the shell).
    pub addr: String,
    /// Address for Raft messages between namenodes.
    pub raft_addr: String,
    /// Directory holding this namenode's write-ahead log and snapshots.
    pub meta_dir: PathBuf,
    /// Address of its web pages and `/metrics`; empty means `addr`'s IP with
    /// [`NAMENODE_HTTP_PORT`] (see [`NamenodeConfig::web_addr`]).
    pub http_addr: String,
}

impl Default for NamenodeConfig {
    fn default() -> Self {
        NamenodeConfig {
            id: 1,
            addr: format!("127.0.0.1:{NAMENODE_RPC_PORT}"),
            raft_addr: format!("127.0.0.1:{NAMENODE_RAFT_PORT}"),
            meta_dir: PathBuf::from("/var/lib/dfs/namenode"),
            http_addr: String::new(),
        }
    }
}

/// One host: it runs a datanode and a MapReduce worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    /// Unique host name, used in reports, placement and `dfs datanode --host NAME`.
    pub name: String,
    /// Datanode data-transfer address (reads, pipeline writes, replication).
    pub addr: String,
    /// Rack name, for placement.
    pub rack: String,
    /// Directories for block files; blocks are spread over them.
    pub data_dirs: Vec<PathBuf>,
    /// Address of this host's MapReduce worker (task launch and shuffle).
    pub worker_addr: String,
    /// Task slots on the worker; 0 means one per core.
    pub worker_slots: u32,
    /// Capacity the datanode reports; 0 means the free space of its data directories.
    pub capacity_bytes: u64,
    /// The worker's directory for map outputs, task files and the job-binary cache.
    pub work_dir: PathBuf,
    /// Address of the datanode's `/metrics` page; empty means `addr`'s IP with
    /// [`DATANODE_HTTP_PORT`].
    pub http_addr: String,
    /// Address of the worker's `/metrics` page; empty means `worker_addr`'s IP with
    /// [`WORKER_HTTP_PORT`].
    pub worker_http_addr: String,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            name: "localhost".into(),
            addr: format!("127.0.0.1:{DATANODE_PORT}"),
            rack: DEFAULT_RACK.into(),
            data_dirs: vec![PathBuf::from("/var/lib/dfs/data")],
            worker_addr: format!("127.0.0.1:{WORKER_PORT}"),
            worker_slots: 0,
            capacity_bytes: 0,
            work_dir: PathBuf::from("/var/lib/mrjob/work"),
            http_addr: String::new(),
            worker_http_addr: String::new(),
        }
    }
}

/// The whole cluster, as read from `cluster.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Names this cluster, so that a command can tell its own daemons from another cluster's
    /// answering on the same addresses (namenodes and the jobtracker report it). `dfs config
    /// local` and `cluster start` generate one; empty means unchecked (hand-made configs).
    pub cluster_id: String,
    /// The namenode replicas (3 or 5 for fault tolerance; 1 for a toy cluster).
    pub namenodes: Vec<NamenodeConfig>,
    /// The hosts, each with a datanode and a worker.
    pub hosts: Vec<HostConfig>,
    /// The MapReduce jobtracker's address.
    pub jobtracker_addr: String,
    /// Address of the jobtracker's web pages and `/metrics`; empty means `jobtracker_addr`'s
    /// IP with [`JOBTRACKER_HTTP_PORT`].
    pub jobtracker_http_addr: String,
    /// Block size for new files.
    pub block_size_bytes: u64,
    /// Default replication factor for new files.
    pub replication: u32,
    /// Datanode heartbeat period.
    pub heartbeat_interval_ms: u64,
    /// A datanode silent for this long is dead: its replicas no longer count.
    pub datanode_dead_after_ms: u64,
    /// Period of full block reports (besides the one at datanode start).
    pub block_report_interval_ms: u64,
    /// After this long without a renewal, another client may take over a file's lease.
    pub lease_soft_limit_ms: u64,
    /// After this long without a renewal, the leader recovers the file and closes it.
    pub lease_hard_limit_ms: u64,
    /// Length of one Raft tick.
    pub raft_tick_ms: u64,
    /// Raft election timeout, in ticks (randomized up to twice this by raft-rs).
    pub raft_election_ticks: usize,
    /// Raft leader heartbeat period, in ticks.
    pub raft_heartbeat_ticks: usize,
    /// The namenode snapshots the namespace and compacts its log after this many applied entries.
    pub snapshot_every_entries: u64,
    /// Period of the namenode's replication check (re-replication, excess and corrupt replicas).
    pub replication_check_interval_ms: u64,
    /// The datanode block scanner verifies every stored block once per this period.
    pub scanner_interval_ms: u64,
    /// Timeout for one RPC round trip (connect, send, receive).
    pub rpc_timeout_ms: u64,
    /// A server closes a connection that sends nothing for this long.
    pub idle_timeout_ms: u64,
    /// Maximum concurrent connections per server.
    pub max_connections: usize,
    /// Datanodes drop the replica bytes they write from the page cache once synced, as HDFS's
    /// `dfs.datanode.drop.cache.behind.writes` does: blocks are written once and seldom read
    /// back at once, and replication would put every byte in several hosts' caches. Turn it
    /// off when jobs read what was just written and it fits in memory.
    pub drop_cache_behind_writes: bool,
    /// The cluster key's file (mode 0600; relative paths are relative to this file's
    /// directory). Every daemon and the admin's tools need it; connections without it are
    /// refused (see [`crate::auth`]).
    pub key_file: PathBuf,
    /// The keys `key_file` led to when loaded (or that a generator made): never written here.
    #[serde(skip)]
    pub secrets: Secrets,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            cluster_id: String::new(),
            namenodes: vec![NamenodeConfig::default()],
            hosts: vec![HostConfig::default()],
            jobtracker_addr: format!("127.0.0.1:{JOBTRACKER_PORT}"),
            jobtracker_http_addr: String::new(),
            block_size_bytes: 64 * 1024 * 1024,
            replication: 3,
            heartbeat_interval_ms: 3_000,
            datanode_dead_after_ms: 30_000,
            block_report_interval_ms: 6 * 60 * 60 * 1000,
            lease_soft_limit_ms: 60_000,
            lease_hard_limit_ms: 20 * 60 * 1000,
            raft_tick_ms: 100,
            raft_election_ticks: 10,
            raft_heartbeat_ticks: 2,
            snapshot_every_entries: 10_000,
            replication_check_interval_ms: 3_000,
            scanner_interval_ms: 3 * 7 * 24 * 60 * 60 * 1000,
            rpc_timeout_ms: 10_000,
            idle_timeout_ms: 10 * 60 * 1000,
            max_connections: 1024,
            drop_cache_behind_writes: true,
            key_file: PathBuf::from(DEFAULT_KEY_FILE),
            secrets: Secrets::default(),
        }
    }
}

impl ClusterConfig {
    /// This config with the sizes and timings every test cluster uses (the dfs and examples
    /// integration tests, cluster-tests, the custom-job test): 64 KiB blocks, so small inputs
    /// span many blocks, and timeouts of seconds, so a dead datanode, a lost worker or a
    /// leader election is noticed within a test's patience rather than production's (the
    /// `[mapreduce]` table has its own, `MapReduceConfig::with_fast_timeouts`). A
    /// harness overrides only what its tests need otherwise, saying why.
    pub fn with_fast_timeouts(mut self) -> ClusterConfig {
        self.block_size_bytes = 64 * 1024;
        self.heartbeat_interval_ms = 200;
        self.datanode_dead_after_ms = 3_000;
        // Only the report at datanode start matters to a test; more would be noise.
        self.block_report_interval_ms = 60_000;
        self.replication_check_interval_ms = 300;
        self.rpc_timeout_ms = 3_000;
        self.idle_timeout_ms = 60_000;
        self.raft_tick_ms = 50;
        self.lease_soft_limit_ms = 5_000;
        self.lease_hard_limit_ms = 10_000;
        self
    }

    /// Parses TOML text and validates it. The `[mapreduce]` table is skipped (see the module
    /// docs); any other key dfs does not know is an error.
    pub fn parse(text: &str) -> Result<Self> {
        let config_err = |e: &dyn std::fmt::Display| Error::Config(e.to_string());
        let mut table: toml::Table = toml::from_str(text).map_err(|e| config_err(&e))?;
        let config: ClusterConfig = match table.remove(MAPREDUCE_SECTION) {
            // Straight from the text when there is nothing to skip: errors then show the line.
            None => toml::from_str(text).map_err(|e| config_err(&e))?,
            Some(_) => toml::Value::Table(table)
                .try_into()
                .map_err(|e| config_err(&e))?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a config file, and loads the secrets its `key_file`
    /// leads to (see [`Secrets::load`]).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?;
        let mut config = Self::parse(&text).map_err(|e| match e {
            Error::Config(msg) => Error::Config(format!("{}: {msg}", path.display())),
            other => other,
        })?;
        config.secrets = Secrets::load(&config.key_path(path));
        Ok(config)
    }

    /// Where the key file of the config at `config_path` is.
    pub fn key_path(&self, config_path: &Path) -> PathBuf {
        match config_path.parent() {
            Some(dir) if self.key_file.is_relative() => dir.join(&self.key_file),
            _ => self.key_file.clone(),
        }
    }

    /// Writes the config to `path` and, if it is not there yet, the cluster key beside it
    /// (mode 0600): how a generated config becomes a cluster's.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.secrets.write_key_file(&self.key_path(path))?;
        crate::durable::write_durable(path, self.to_toml()?.as_bytes())
    }

    /// Loads the config chosen by `--conf` or `MRJOB_CONF`; `Ok(None)` when neither is set.
    pub fn discover(cli_conf: Option<&Path>) -> Result<Option<Self>> {
        match find_config_path(cli_conf) {
            Some(path) => Self::load(&path).map(Some),
            None => Ok(None),
        }
    }

    /// Renders the config as TOML.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| Error::Config(e.to_string()))
    }

    /// Checks what serde cannot: non-empty lists, unique ids and names, parseable addresses,
    /// sizes and timeouts in range.
    pub fn validate(&self) -> Result<()> {
        self.validate_namenodes()?;
        self.validate_hosts()?;
        parse_addr("jobtracker_addr", &self.jobtracker_addr)?;
        self.validate_web_addrs()?;
        self.validate_numbers()
    }

    fn validate_namenodes(&self) -> Result<()> {
        if self.namenodes.is_empty() {
            return Err(Error::Config(
                "at least one [[namenodes]] entry is needed".into(),
            ));
        }
        let mut ids = HashSet::new();
        for nn in &self.namenodes {
            if nn.id == 0 {
                return Err(Error::Config(
                    "namenode id 0 is reserved; use 1, 2, 3, ...".into(),
                ));
            }
            if !ids.insert(nn.id) {
                return Err(Error::Config(format!(
                    "namenode id {} appears twice",
                    nn.id
                )));
            }
            parse_addr(&format!("namenode {} addr", nn.id), &nn.addr)?;
            parse_addr(&format!("namenode {} raft_addr", nn.id), &nn.raft_addr)?;
        }
        Ok(())
    }

    fn validate_hosts(&self) -> Result<()> {
        let mut names = HashSet::new();
        for host in &self.hosts {
            if host.name.is_empty() {
                return Err(Error::Config("a host has an empty name".into()));
            }
            if !names.insert(host.name.as_str()) {
                return Err(Error::Config(format!("host {:?} appears twice", host.name)));
            }
            if host.data_dirs.is_empty() {
                return Err(Error::Config(format!(
                    "host {:?} has no data_dirs",
                    host.name
                )));
            }
            parse_addr(&format!("host {:?} addr", host.name), &host.addr)?;
            parse_addr(
                &format!("host {:?} worker_addr", host.name),
                &host.worker_addr,
            )?;
        }
        Ok(())
    }

    fn validate_numbers(&self) -> Result<()> {
        let checks: [(bool, &str); 10] = [
            (
                self.block_size_bytes >= 512,
                "block_size_bytes must be at least 512",
            ),
            (
                self.block_size_bytes & 511 == 0,
                "block_size_bytes must be a multiple of 512",
            ),
            (
                (1..=32).contains(&self.replication),
                "replication must be in 1..=32",
            ),
            (
                self.heartbeat_interval_ms > 0,
                "heartbeat_interval_ms must be positive",
            ),
            (
                self.datanode_dead_after_ms > self.heartbeat_interval_ms,
                "datanode_dead_after_ms must exceed heartbeat_interval_ms",
            ),
            (
                self.lease_hard_limit_ms >= self.lease_soft_limit_ms,
                "lease_hard_limit_ms must be at least lease_soft_limit_ms",
            ),
            (self.raft_tick_ms > 0, "raft_tick_ms must be positive"),
            (
                self.raft_heartbeat_ticks > 0
                    && self.raft_election_ticks > self.raft_heartbeat_ticks,
                "raft_election_ticks must exceed raft_heartbeat_ticks, which must be positive",
            ),
            (self.rpc_timeout_ms > 0, "rpc_timeout_ms must be positive"),
            (self.max_connections > 0, "max_connections must be positive"),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, msg)) => Err(Error::Config((*msg).into())),
            None => Ok(()),
        }
    }

    /// The namenode with this Raft id.
    pub fn namenode(&self, id: u64) -> Result<&NamenodeConfig> {
        self.namenodes
            .iter()
            .find(|nn| nn.id == id)
            .ok_or_else(|| Error::Config(format!("no namenode with id {id} in the config")))
    }

    /// The host with this name.
    pub fn host(&self, name: &str) -> Result<&HostConfig> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| Error::Config(format!("no host named {name:?} in the config")))
    }

    /// Client RPC addresses of all namenodes, in config order.
    pub fn namenode_addrs(&self) -> Vec<(u64, SocketAddr)> {
        // validate() has checked every address parses, so filter_map drops nothing in practice.
        self.namenodes
            .iter()
            .filter_map(|nn| nn.addr.parse().ok().map(|a| (nn.id, a)))
            .collect()
    }
}

fn parse_addr(what: &str, addr: &str) -> Result<SocketAddr> {
    addr.parse()
        .map_err(|e| Error::Config(format!("{what} {addr:?} is not an IP:port address: {e}")))
}

/// The config file to use: `cli_conf` if given, else `$MRJOB_CONF` if set and non-empty.
pub fn find_config_path(cli_conf: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = cli_conf {
        return Some(path.to_path_buf());
    }
    std::env::var_os(CONF_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// A cluster on this machine with the default addresses and ports: see [`local_config_in`].
pub fn local_config(namenodes: usize, hosts: usize, dir: &Path) -> ClusterConfig {
    local_config_in(namenodes, hosts, dir, &LocalLayout::default())
}

/// Task slots per worker when all hosts share this machine: the cores divided among them
/// (at least one), so a pseudo-distributed cluster does not oversubscribe the machine.
fn local_worker_slots(hosts: usize) -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / hosts.max(1)).max(1) as u32
}

/// Ports used by [`local_config_with_ports`]; tests shift them to run clusters side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalPorts {
    /// Namenode client RPC port.
    pub namenode_rpc: u16,
    /// Namenode Raft port.
    pub namenode_raft: u16,
    /// Datanode data-transfer port.
    pub datanode: u16,
    /// Worker port.
    pub worker: u16,
    /// Jobtracker port.
    pub jobtracker: u16,
    /// Namenode web port.
    pub namenode_http: u16,
    /// Datanode web port.
    pub datanode_http: u16,
    /// Worker web port.
    pub worker_http: u16,
    /// Jobtracker web port.
    pub jobtracker_http: u16,
}

impl Default for LocalPorts {
    fn default() -> Self {
        LocalPorts {
            namenode_rpc: NAMENODE_RPC_PORT,
            namenode_raft: NAMENODE_RAFT_PORT,
            datanode: DATANODE_PORT,
            worker: WORKER_PORT,
            jobtracker: JOBTRACKER_PORT,
            namenode_http: NAMENODE_HTTP_PORT,
            datanode_http: DATANODE_HTTP_PORT,
            worker_http: WORKER_HTTP_PORT,
            jobtracker_http: JOBTRACKER_HTTP_PORT,
        }
    }
}

impl LocalPorts {
    /// [`LOCAL_PORT_COUNT`] consecutive ports starting at `base`: the five service ports,
    /// then the four web ports.
    pub fn from_base(base: u16) -> Self {
        LocalPorts {
            namenode_rpc: base,
            namenode_raft: base + 1,
            datanode: base + 2,
            worker: base + 3,
            jobtracker: base + 4,
            namenode_http: base + 5,
            datanode_http: base + 6,
            worker_http: base + 7,
            jobtracker_http: base + 8,
        }
    }
}

/// Where a cluster on this machine listens: `--base-addr` and `--base-port` of `dfs config
/// local`, `dfs cluster start` and `mrjob cluster start`, so that two clusters (or a cluster and
/// another program on port 8020) can share the machine.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct LocalLayout {
    /// Loopback network of the cluster: namenode i listens on BASE+i, host j on BASE+256+j
    /// (the default puts namenodes on 127.0.0.i and hosts on 127.0.1.j).
    #[arg(long, default_value = "127.0.0.0", value_name = "127.X.Y.0")]
    pub base_addr: Ipv4Addr,
    /// First of nine consecutive ports (namenode RPC, Raft, datanode, worker, jobtracker, then
    /// the web ports of namenode, datanode, worker, jobtracker) instead of the defaults (8020,
    /// 8021, 9866, 9870, 8030; 9871, 9864, 8042, 8088).
    #[arg(long, value_name = "PORT")]
    pub base_port: Option<u16>,
}

impl Default for LocalLayout {
    fn default() -> Self {
        LocalLayout {
            base_addr: Ipv4Addr::new(127, 0, 0, 0),
            base_port: None,
        }
    }
}

impl LocalLayout {
    /// The ports of this layout.
    pub fn ports(&self) -> LocalPorts {
        self.base_port
            .map_or_else(LocalPorts::default, LocalPorts::from_base)
    }

    /// Checks what clap cannot: a loopback /24 with room for the hosts' network after it (every
    /// 127/8 address is this machine's on Linux, no other network is), and five free port
    /// numbers.
    pub fn check(&self) -> Result<()> {
        let [a, _, c, d] = self.base_addr.octets();
        if a != 127 || d != 0 || c == 255 {
            return Err(Error::Config(format!(
                "--base-addr {}: want a loopback network address 127.X.Y.0 with Y below 255",
                self.base_addr
            )));
        }
        match self.base_port {
            Some(p) if p == 0 || p > u16::MAX - (LOCAL_PORT_COUNT - 1) => {
                Err(Error::Config(format!(
                    "--base-port {p}: want 1 to {} ({LOCAL_PORT_COUNT} consecutive ports are used)",
                    u16::MAX - (LOCAL_PORT_COUNT - 1)
                )))
            }
            _ => Ok(()),
        }
    }

    /// Address `i` of the namenodes' network (`sub` 0) or the hosts' (`sub` 1). Text, so that
    /// more than 254 nodes make an address the config's validation rejects, not one that wraps.
    fn addr(&self, sub: u8, i: usize) -> String {
        let [a, b, c, _] = self.base_addr.octets();
        format!("{a}.{b}.{}.{i}", c + sub)
    }
}

/// A fresh cluster id: random, so two generated configs never share one.
pub fn new_cluster_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A cluster on this machine with the default addresses and the given ports (the tests shift
/// only the ports): see [`local_config_in`].
pub fn local_config_with_ports(
    namenodes: usize,
    hosts: usize,
    dir: &Path,
    ports: LocalPorts,
) -> ClusterConfig {
    let layout = LocalLayout {
        base_port: Some(ports.namenode_rpc),
        ..LocalLayout::default()
    };
    debug_assert_eq!(layout.ports(), ports, "ports are consecutive");
    local_config_in(namenodes, hosts, dir, &layout)
}

/// A cluster on this machine: namenode `i` (ids 1..=`namenodes`) on 127.0.0.`i`, host `j`
/// (names `host1`, ...) on 127.0.1.`j` (shifted by `layout`), two racks alternating, all state
/// under `dir` (`dir/nn{i}` and `dir/host{j}/data`), and a new cluster id. Distinct loopback
/// addresses let every daemon keep the same port, as on real hosts, and let tests kill one
/// "host" without touching another.
pub fn local_config_in(
    namenodes: usize,
    hosts: usize,
    dir: &Path,
    layout: &LocalLayout,
) -> ClusterConfig {
    let ports = layout.ports();
    let namenodes = (1..=namenodes)
        .map(|i| NamenodeConfig {
            id: i as u64,
            addr: format!("{}:{}", layout.addr(0, i), ports.namenode_rpc),
            raft_addr: format!("{}:{}", layout.addr(0, i), ports.namenode_raft),
            meta_dir: dir.join(format!("nn{i}")),
            http_addr: format!("{}:{}", layout.addr(0, i), ports.namenode_http),
        })
        .collect();
    let hosts = (1..=hosts)
        .map(|j| HostConfig {
            name: format!("host{j}"),
            addr: format!("{}:{}", layout.addr(1, j), ports.datanode),
            rack: format!("/rack{}", 1 + (j - 1) % 2),
            data_dirs: vec![dir.join(format!("host{j}")).join("data")],
            worker_addr: format!("{}:{}", layout.addr(1, j), ports.worker),
            worker_slots: local_worker_slots(hosts),
            capacity_bytes: 0,
            work_dir: dir.join(format!("host{j}")).join("work"),
            http_addr: format!("{}:{}", layout.addr(1, j), ports.datanode_http),
            worker_http_addr: format!("{}:{}", layout.addr(1, j), ports.worker_http),
        })
        .collect();
    ClusterConfig {
        cluster_id: new_cluster_id(),
        namenodes,
        hosts,
        jobtracker_addr: format!("{}:{}", layout.addr(0, 1), ports.jobtracker),
        key_file: dir.join(DEFAULT_KEY_FILE),
        secrets: Secrets::generated(),
        jobtracker_http_addr: format!("{}:{}", layout.addr(0, 1), ports.jobtracker_http),
        ..ClusterConfig::default()
    }
}

/// Longest host name `dfs config hosts` accepts. Names appear in systemd environment files,
/// command lines and reports, so a short bound keeps them readable.
const HOST_NAME_MAX_BYTES: usize = 64;

/// One machine of a [`HostsSpec`]: it runs a datanode and a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// Host name, as given to `dfs datanode --host` and `mrjob worker --host`.
    pub name: String,
    /// The machine's address; its datanode and worker listen on it.
    pub ip: IpAddr,
    /// Rack name for placement, such as `/rack1`.
    pub rack: String,
}

impl HostSpec {
    /// Parses `NAME=IP` or `NAME=IP@RACK` (the rack defaults to [`DEFAULT_RACK`]).
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || Error::Config(format!("--hosts: {text:?} is not NAME=IP or NAME=IP@RACK"));
        let (name, rest) = text.split_once('=').ok_or_else(bad)?;
        let (ip, rack) = match rest.split_once('@') {
            Some((ip, rack)) => (ip, rack),
            None => (rest, DEFAULT_RACK),
        };
        if name.is_empty() || ip.is_empty() {
            return Err(bad());
        }
        Ok(HostSpec {
            name: name.to_string(),
            ip: parse_ip("--hosts", ip)?,
            rack: rack.to_string(),
        })
    }
}

/// Replaced by each daemon's name in [`HostsSpec::state_dir`] (see [`HostsSpec::state_dir_of`]).
pub const NODE_PLACEHOLDER: &str = "{node}";

/// A cluster of separate machines, the input of [`hosts_config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsSpec {
    /// One address per namenode; the i-th (from 1) gets Raft id i.
    pub namenodes: Vec<IpAddr>,
    /// The machines that each run a datanode and a worker.
    pub hosts: Vec<HostSpec>,
    /// The jobtracker's machine.
    pub jobtracker: IpAddr,
    /// Directory, the same on every machine, under which every daemon keeps its state.
    pub state_dir: PathBuf,
}

impl HostsSpec {
    /// Parses the command-line form of `dfs config hosts`: `namenodes` is `IP,IP,...`, `hosts`
    /// is `NAME=IP[@RACK],...`, `jobtracker` is one IP. Only the syntax is checked here; the
    /// rest is [`hosts_config`]'s job, so a spec built in code gets the same checks.
    pub fn parse(namenodes: &str, hosts: &str, jobtracker: &str, state_dir: &Path) -> Result<Self> {
        let namenodes = split_list("--namenodes", namenodes)?
            .into_iter()
            .map(|ip| parse_ip("--namenodes", ip))
            .collect::<Result<_>>()?;
        let hosts = split_list("--hosts", hosts)?
            .into_iter()
            .map(HostSpec::parse)
            .collect::<Result<_>>()?;
        Ok(HostsSpec {
            namenodes,
            hosts,
            jobtracker: parse_ip("--jobtracker", jobtracker.trim())?,
            state_dir: state_dir.to_path_buf(),
        })
    }

    /// The state directory of the daemon named `node` (`namenode-N` or a host's name):
    /// [`NODE_PLACEHOLDER`] in `state_dir` is replaced by the name, so daemons that share one
    /// machine's disk (the cluster tests' network-namespace hosts) keep apart; without it every
    /// daemon gets `state_dir` itself, as on separate machines.
    pub fn state_dir_of(&self, node: &str) -> PathBuf {
        PathBuf::from(
            self.state_dir
                .to_string_lossy()
                .replace(NODE_PLACEHOLDER, node),
        )
    }

    /// Rejects what would make a cluster that cannot start or that confuses its operator:
    /// empty lists, a relative state directory, bad names or racks, and two daemons given the
    /// same name or the same address and port.
    fn check(&self) -> Result<()> {
        if self.namenodes.is_empty() {
            return Err(Error::Config(
                "--namenodes: at least one namenode address is needed".into(),
            ));
        }
        if self.hosts.is_empty() {
            return Err(Error::Config(
                "--hosts: at least one NAME=IP[@RACK] host is needed".into(),
            ));
        }
        if !self.state_dir.is_absolute() {
            return Err(Error::Config(format!(
                "--state-dir: {} is not an absolute path",
                self.state_dir.display()
            )));
        }
        let mut seen = HashSet::new();
        if let Some(ip) = self.namenodes.iter().find(|ip| !seen.insert(**ip)) {
            return Err(Error::Config(format!(
                "--namenodes: address {ip} appears twice"
            )));
        }
        self.check_hosts()
    }

    fn check_hosts(&self) -> Result<()> {
        let mut names = HashSet::new();
        let mut owners: HashMap<IpAddr, &str> = HashMap::new();
        for host in &self.hosts {
            check_host_name(&host.name)?;
            if !host.rack.starts_with('/') || host.rack.len() < 2 {
                return Err(Error::Config(format!(
                    "--hosts: rack {:?} of host {} must look like /rack1",
                    host.rack, host.name
                )));
            }
            if !names.insert(host.name.as_str()) {
                return Err(Error::Config(format!(
                    "--hosts: host name {} appears twice",
                    host.name
                )));
            }
            // Two hosts on one address would both try to bind its datanode and worker ports.
            if let Some(other) = owners.insert(host.ip, &host.name) {
                return Err(Error::Config(format!(
                    "--hosts: hosts {other} and {} have the same address {}",
                    host.name, host.ip
                )));
            }
        }
        Ok(())
    }
}

fn check_host_name(name: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if name.len() > HOST_NAME_MAX_BYTES || !name.chars().all(allowed) {
        return Err(Error::Config(format!(
            "--hosts: host name {name:?} must be at most {HOST_NAME_MAX_BYTES} letters, digits, \
             '.', '-' or '_'"
        )));
    }
    Ok(())
}

/// Splits a comma-separated list, trimming spaces; an empty entry is an error rather than
/// skipped, since it usually means a variable expanded to nothing.
fn split_list<'a>(flag: &str, text: &'a str) -> Result<Vec<&'a str>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<&str> = text.split(',').map(str::trim).collect();
    if items.iter().any(|item| item.is_empty()) {
        return Err(Error::Config(format!("{flag}: empty entry in {text:?}")));
    }
    Ok(items)
}

fn parse_ip(flag: &str, text: &str) -> Result<IpAddr> {
    text.parse()
        .map_err(|_| Error::Config(format!("{flag}: {text:?} is not an IP address")))
}

/// A cluster of separate machines with the default ports: namenode i (ids from 1) at
/// `IP:8020` (Raft `IP:8021`) keeping its log in `STATE/namenode`; each host's datanode at
/// `IP:9866` with blocks in `STATE/data` and its worker at `IP:9870` working in `STATE/work`;
/// the jobtracker at `IP:8030`; the web pages on the default web ports (namenode 9871, datanode
/// 9864, worker 8042, jobtracker 8088). Every other key keeps its default. Every machine can use the
/// same file: each daemon picks its own entry by `--id` or `--host`.
///
/// Fails with a one-line [`Error::Config`] on input that cannot make a working cluster (see
/// [`HostsSpec::parse`] for the syntax); the result has passed [`ClusterConfig::validate`].
pub fn hosts_config(spec: &HostsSpec) -> Result<ClusterConfig> {
    spec.check()?;
    let namenodes = spec
        .namenodes
        .iter()
        .zip(1u64..)
        .map(|(ip, id)| NamenodeConfig {
            id,
            addr: SocketAddr::new(*ip, NAMENODE_RPC_PORT).to_string(),
            raft_addr: SocketAddr::new(*ip, NAMENODE_RAFT_PORT).to_string(),
            meta_dir: spec
                .state_dir_of(&format!("namenode-{id}"))
                .join("namenode"),
            http_addr: SocketAddr::new(*ip, NAMENODE_HTTP_PORT).to_string(),
        })
        .collect();
    let hosts = spec
        .hosts
        .iter()
        .map(|h| {
            let state = spec.state_dir_of(&h.name);
            HostConfig {
                name: h.name.clone(),
                addr: SocketAddr::new(h.ip, DATANODE_PORT).to_string(),
                rack: h.rack.clone(),
                data_dirs: vec![state.join("data")],
                worker_addr: SocketAddr::new(h.ip, WORKER_PORT).to_string(),
                // Each host is a machine of its own, so its worker takes every core.
                worker_slots: 0,
                capacity_bytes: 0,
                work_dir: state.join("work"),
                http_addr: SocketAddr::new(h.ip, DATANODE_HTTP_PORT).to_string(),
                worker_http_addr: SocketAddr::new(h.ip, WORKER_HTTP_PORT).to_string(),
            }
        })
        .collect();
    let config = ClusterConfig {
        namenodes,
        hosts,
        jobtracker_addr: SocketAddr::new(spec.jobtracker, JOBTRACKER_PORT).to_string(),
        // Beside cluster.toml wherever it is copied (the Vagrantfile copies both).
        key_file: PathBuf::from(DEFAULT_KEY_FILE),
        secrets: Secrets::generated(),
        jobtracker_http_addr: SocketAddr::new(spec.jobtracker, JOBTRACKER_HTTP_PORT).to_string(),
        ..ClusterConfig::default()
    };
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_timeouts_are_a_valid_config_that_round_trips() {
        let config = local_config(3, 3, Path::new("/tmp/c")).with_fast_timeouts();
        config.validate().unwrap();
        assert_eq!(
            ClusterConfig::parse(&config.to_toml().unwrap()).unwrap(),
            config
        );
        assert!(config.datanode_dead_after_ms < ClusterConfig::default().datanode_dead_after_ms);
    }

    #[test]
    fn empty_file_gets_defaults() {
        let config = ClusterConfig::parse("").unwrap();
        assert_eq!(config.block_size_bytes, 64 * 1024 * 1024);
        assert_eq!(config.replication, 3);
        assert_eq!(config.heartbeat_interval_ms, 3000);
    }

    // Checks G7: a typo in a key is an error, not silently ignored.
    #[test]
    fn unknown_keys_are_rejected() {
        let err = ClusterConfig::parse("replicaton = 2").unwrap_err();
        assert!(err.to_string().contains("replicaton"), "{err}");
        let err = ClusterConfig::parse("[[hosts]]\nname = \"a\"\nbogus = 1").unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
        // Beside a `[mapreduce]` table too, which dfs leaves to the mapreduce crate.
        let text = "replicaton = 2\n[mapreduce]\nspeculative = false";
        let err = ClusterConfig::parse(text).unwrap_err();
        assert!(err.to_string().contains("replicaton"), "{err}");
    }

    #[test]
    fn the_mapreduce_section_is_skipped() {
        let text = "replication = 2\n[mapreduce]\nanything = 1";
        assert_eq!(ClusterConfig::parse(text).unwrap().replication, 2);
    }

    // Checks G7: values serde accepts but the cluster cannot use get a clear error.
    #[test]
    fn invalid_values_are_rejected() {
        for (text, needle) in [
            ("replication = 0", "replication"),
            ("block_size_bytes = 1000", "block_size_bytes"),
            ("[[namenodes]]\nid = 0", "id 0"),
            ("[[namenodes]]\nid = 1\n[[namenodes]]\nid = 1", "twice"),
            ("[[namenodes]]\nid = 1\naddr = \"nowhere\"", "nowhere"),
            ("namenodes = []", "namenodes"),
        ] {
            let err = ClusterConfig::parse(text).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{err}");
            assert!(err.to_string().contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn local_config_round_trips_and_validates() {
        let dir = Path::new("/tmp/x");
        let config = local_config(3, 4, dir);
        config.validate().unwrap();
        assert_eq!(config.namenodes[2].addr, "127.0.0.3:8020");
        assert_eq!(config.hosts[3].addr, "127.0.1.4:9866");
        assert_eq!(config.hosts[1].rack, "/rack2");
        let text = config.to_toml().unwrap();
        assert_eq!(ClusterConfig::parse(&text).unwrap(), config);
    }

    #[test]
    fn local_layout_moves_addresses_and_ports_and_ids_differ() {
        let layout = LocalLayout {
            base_addr: Ipv4Addr::new(127, 3, 4, 0),
            base_port: Some(21_000),
        };
        layout.check().unwrap();
        let dir = Path::new("/tmp/x");
        let config = local_config_in(3, 2, dir, &layout);
        config.validate().unwrap();
        assert_eq!(config.namenodes[1].addr, "127.3.4.2:21000");
        assert_eq!(config.namenodes[1].raft_addr, "127.3.4.2:21001");
        assert_eq!(config.hosts[1].addr, "127.3.5.2:21002");
        assert_eq!(config.hosts[1].worker_addr, "127.3.5.2:21003");
        assert_eq!(config.jobtracker_addr, "127.3.4.1:21004");
        let other = local_config_in(3, 2, dir, &layout);
        assert!(!config.cluster_id.is_empty());
        assert_ne!(config.cluster_id, other.cluster_id);
        // The tests' port-only layouts are unchanged.
        let shifted = local_config_with_ports(1, 1, dir, LocalPorts::from_base(30_000));
        assert_eq!(shifted.hosts[0].addr, "127.0.1.1:30002");
    }

    #[test]
    fn bad_local_layouts_are_rejected() {
        for (addr, port) in [
            ([10, 0, 0, 0], None),
            ([127, 0, 0, 1], None),
            ([127, 0, 255, 0], None),
            ([127, 0, 0, 0], Some(0)),
            ([127, 0, 0, 0], Some(65_532)),
        ] {
            let layout = LocalLayout {
                base_addr: Ipv4Addr::from(addr),
                base_port: port,
            };
            assert!(layout.check().is_err(), "{layout:?}");
        }
    }

    fn three_vm_spec() -> HostsSpec {
        HostsSpec::parse(
            "192.168.56.11,192.168.56.12,192.168.56.13",
            "host1=192.168.56.21@/rack1,host2=192.168.56.22@/rack2,host3=192.168.56.23",
            "192.168.56.30",
            Path::new("/var/lib/mrjob"),
        )
        .unwrap()
    }

    #[test]
    fn hosts_config_round_trips_and_validates() {
        let config = hosts_config(&three_vm_spec()).unwrap();
        config.validate().unwrap();
        assert_eq!(config.namenodes.len(), 3);
        let nn3 = config.namenode(3).unwrap();
        assert_eq!(nn3.addr, "192.168.56.13:8020");
        assert_eq!(nn3.raft_addr, "192.168.56.13:8021");
        assert_eq!(nn3.meta_dir, Path::new("/var/lib/mrjob/namenode"));
        let host2 = config.host("host2").unwrap();
        assert_eq!(host2.addr, "192.168.56.22:9866");
        assert_eq!(host2.worker_addr, "192.168.56.22:9870");
        assert_eq!(host2.rack, "/rack2");
        assert_eq!(host2.data_dirs, vec![PathBuf::from("/var/lib/mrjob/data")]);
        assert_eq!(host2.work_dir, Path::new("/var/lib/mrjob/work"));
        assert_eq!(config.host("host3").unwrap().rack, DEFAULT_RACK);
        assert_eq!(config.jobtracker_addr, "192.168.56.30:8030");
        assert_eq!(config.replication, ClusterConfig::default().replication);
        let text = config.to_toml().unwrap();
        assert_eq!(ClusterConfig::parse(&text).unwrap(), config);
    }

    #[test]
    fn node_placeholder_gives_each_daemon_its_own_state_dir() {
        let spec = HostsSpec::parse(
            "10.0.0.1,10.0.0.2",
            "h1=10.0.1.1,h2=10.0.1.2",
            "10.0.0.1",
            Path::new("/srv/{node}/state"),
        )
        .unwrap();
        let config = hosts_config(&spec).unwrap();
        assert_eq!(
            config.namenode(2).unwrap().meta_dir,
            Path::new("/srv/namenode-2/state/namenode")
        );
        let h1 = config.host("h1").unwrap();
        assert_eq!(h1.data_dirs, vec![PathBuf::from("/srv/h1/state/data")]);
        assert_eq!(h1.work_dir, Path::new("/srv/h1/state/work"));
        assert_eq!(
            config.host("h2").unwrap().work_dir,
            Path::new("/srv/h2/state/work")
        );
    }

    #[test]
    fn hosts_config_accepts_spaces_and_ipv6() {
        let spec = HostsSpec::parse(
            " ::1 ",
            "a=::2@/r1, b=10.0.0.2",
            "::1",
            Path::new("/srv/mr"),
        )
        .unwrap();
        let config = hosts_config(&spec).unwrap();
        assert_eq!(config.namenodes[0].addr, "[::1]:8020");
        assert_eq!(config.hosts[0].addr, "[::2]:9866");
        assert_eq!(config.hosts[1].worker_addr, "10.0.0.2:9870");
        assert_eq!(config.jobtracker_addr, "[::1]:8030");
    }

    // Checks G7: every kind of bad `dfs config hosts` input gets its own one-line error.
    #[test]
    fn hosts_config_rejects_bad_input() {
        let nns = "10.0.0.1,10.0.0.2,10.0.0.3";
        let hosts = "h1=10.0.1.1,h2=10.0.1.2@/r2";
        for (namenodes, hosts, jobtracker, state, needle) in [
            ("", hosts, "10.0.0.1", "/s", "at least one namenode"),
            (nns, "", "10.0.0.1", "/s", "at least one NAME=IP"),
            ("10.0.0.1,,10.0.0.2", hosts, "10.0.0.1", "/s", "empty entry"),
            (
                "10.0.0.300",
                hosts,
                "10.0.0.1",
                "/s",
                "\"10.0.0.300\" is not an IP",
            ),
            ("nn1.example", hosts, "10.0.0.1", "/s", "is not an IP"),
            (nns, hosts, "10.0.0", "/s", "--jobtracker"),
            (nns, "h1", "10.0.0.1", "/s", "not NAME=IP"),
            (nns, "=10.0.1.1", "10.0.0.1", "/s", "not NAME=IP"),
            (nns, "h1=", "10.0.0.1", "/s", "not NAME=IP"),
            (
                nns,
                "h1=10.0.1.x",
                "10.0.0.1",
                "/s",
                "\"10.0.1.x\" is not an IP",
            ),
            (nns, "h1=10.0.1.1@rack1", "10.0.0.1", "/s", "like /rack1"),
            (nns, "h1=10.0.1.1@", "10.0.0.1", "/s", "like /rack1"),
            (nns, "h 1=10.0.1.1", "10.0.0.1", "/s", "host name \"h 1\""),
            (
                "10.0.0.1,10.0.0.1",
                hosts,
                "10.0.0.1",
                "/s",
                "10.0.0.1 appears twice",
            ),
            (
                nns,
                "h1=10.0.1.1,h1=10.0.1.2",
                "10.0.0.1",
                "/s",
                "h1 appears twice",
            ),
            (
                nns,
                "h1=10.0.1.1,h2=10.0.1.1",
                "10.0.0.1",
                "/s",
                "same address",
            ),
            (nns, hosts, "10.0.0.1", "var/lib", "absolute"),
        ] {
            let case = format!("{namenodes:?} {hosts:?} {jobtracker:?} {state:?}");
            let err = HostsSpec::parse(namenodes, hosts, jobtracker, Path::new(state))
                .and_then(|spec| hosts_config(&spec))
                .unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{case}: {err}");
            let msg = err.to_string();
            assert!(msg.contains(needle), "{case}: {msg}");
            assert!(!msg.contains('\n'), "{case}: {msg}");
        }
    }

    #[test]
    fn long_host_names_are_rejected() {
        let mut spec = three_vm_spec();
        spec.hosts[0].name = "h".repeat(HOST_NAME_MAX_BYTES + 1);
        let err = hosts_config(&spec).unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
        spec.hosts[0].name = "h".repeat(HOST_NAME_MAX_BYTES);
        hosts_config(&spec).unwrap();
    }

    #[test]
    fn cli_conf_wins_over_env() {
        let path = find_config_path(Some(Path::new("/a.toml")));
        assert_eq!(path, Some(PathBuf::from("/a.toml")));
    }
}
