//! `mrjob cluster start|stop|status`: a whole cluster on this machine in the background —
//! three namenodes, N hosts (a datanode and a worker each, on 127.0.1.j), and a jobtracker —
//! every daemon a separate process of the job binary itself, so nothing else needs building.
//! The config comes from dfs's generator ([`dfs::config::local_config`]), with the
//! `[mapreduce]` table's defaults written out.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dfs::client::DfsClient;
use dfs::config;
use dfs::local_cluster::{cluster_stop, process_alive, read_pid, spawn_daemon, wait_healthy};

use crate::config::{Config, MapReduceConfig};
use crate::error::{dfs_error, Error, Result};
use crate::submit::ClusterClient;

/// How the daemon subcommands are named on the binary's command line.
pub mod daemon_args {
    /// `BINARY --conf F namenode --id N`.
    pub const NAMENODE: &str = "namenode";
    /// `BINARY --conf F datanode --host H`.
    pub const DATANODE: &str = "datanode";
    /// `BINARY --conf F worker --host H`.
    pub const WORKER: &str = "worker";
    /// `BINARY --conf F jobtracker`.
    pub const JOBTRACKER: &str = "jobtracker";
}

/// Starts the cluster of `DIR/cluster.toml` (written first when missing) and waits until dfs
/// is healthy and every worker heartbeats.
pub fn start(dir: &Path, hosts: usize, wait: Duration) -> Result<Config> {
    let conf_path = dir.join("cluster.toml");
    if !conf_path.exists() {
        dfs::durable::create_dir_durable(dir)
            .map_err(|e| dfs_error("creating the directory", e))?;
        // The whole file, the `[mapreduce]` table with its defaults included, so the operator
        // sees every key there is to change.
        let config = Config {
            cluster: config::local_config(3, hosts, dir),
            mapreduce: MapReduceConfig::default(),
        };
        let text = config.to_toml()?;
        dfs::durable::write_durable(&conf_path, text.as_bytes())
            .map_err(|e| dfs_error("writing the config", e))?;
    }
    let config = Config::load(&conf_path)?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("finding this program's executable".to_owned(), e))?;
    let (logs, pids) = (dir.join("logs"), dir.join("pids"));
    for d in [&logs, &pids] {
        std::fs::create_dir_all(d)
            .map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
    }
    let spawn = |args: Vec<String>, name: &str| {
        spawn_daemon(&exe, &conf_path, &args, name, &logs, &pids)
            .map_err(|e| dfs_error(format_args!("starting {name}"), e))
    };
    for nn in &config.cluster.namenodes {
        let args = vec![
            daemon_args::NAMENODE.into(),
            "--id".into(),
            nn.id.to_string(),
        ];
        spawn(args, &format!("nn{}", nn.id))?;
    }
    for h in &config.cluster.hosts {
        let host = vec!["--host".to_owned(), h.name.clone()];
        spawn(
            [vec![daemon_args::DATANODE.into()], host.clone()].concat(),
            &format!("dn-{}", h.name),
        )?;
        spawn(
            [vec![daemon_args::WORKER.into()], host].concat(),
            &format!("worker-{}", h.name),
        )?;
    }
    spawn(vec![daemon_args::JOBTRACKER.into()], "jobtracker")?;
    eprintln!(
        "started {} namenodes, {} datanodes, {} workers and a jobtracker; logs in {}",
        config.cluster.namenodes.len(),
        config.cluster.hosts.len(),
        config.cluster.hosts.len(),
        logs.display()
    );
    wait_until_healthy(&config, wait)?;
    eprintln!(
        "cluster is up: export {}={}",
        config::CONF_ENV,
        conf_path.display()
    );
    Ok(config)
}

/// Waits until a namenode leader answers, every datanode is live, and every worker has
/// heartbeated to the jobtracker.
pub fn wait_until_healthy(config: &Config, wait: Duration) -> Result<()> {
    let deadline = Instant::now() + wait;
    let client = ClusterClient::new(config.clone())?;
    let hosts = config.cluster.hosts.len();
    client
        .fs()
        .block_on(wait_healthy(&config.cluster, wait))
        .map_err(|e| dfs_error("waiting for dfs", e))?;
    loop {
        let live = client
            .workers()
            .map(|w| w.iter().filter(|w| w.live).count())
            .unwrap_or(0);
        if live >= hosts {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout {
                what: format!(
                    "only {live}/{hosts} workers joined the jobtracker within {}s; see the logs",
                    wait.as_secs()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stops every daemon started from `dir`.
pub fn stop(dir: &Path) -> Result<()> {
    cluster_stop(dir).map_err(|e| dfs_error("stopping the cluster", e))
}

/// Prints every daemon's process state, the namenodes' Raft roles, datanodes and workers.
pub fn status(dir: &Path) -> Result<()> {
    let pids = dir.join("pids");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&pids)
        .map_err(|e| {
            Error::io(
                format!("reading {} (is a cluster there?)", pids.display()),
                e,
            )
        })?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    println!("Processes:");
    for p in &entries {
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let state = match read_pid(p) {
            Some(pid) if process_alive(pid) => format!("running (pid {pid})"),
            Some(pid) => format!("NOT RUNNING (pid {pid} gone)"),
            None => "unknown".to_owned(),
        };
        println!("  {name:<16} {state}");
    }
    let config = Config::load(&dir.join("cluster.toml"))?;
    let dfs = DfsClient::new(config.cluster.clone());
    let client = ClusterClient::new(config)?;
    println!("Namenodes:");
    for (id, st) in client.fs().block_on(dfs.namenode_statuses()) {
        match st {
            Ok(s) => println!(
                "  nn{id:<3} {:?}, term {}, leader {}, applied {}",
                s.role, s.term, s.leader_id, s.applied_index
            ),
            Err(e) => println!("  nn{id:<3} unreachable: {e}"),
        }
    }
    println!("Datanodes:");
    match client.fs().block_on(dfs.datanode_report()) {
        Ok(nodes) => {
            for d in nodes {
                println!(
                    "  {:<8} {:<6} blocks {}",
                    d.node.host,
                    if d.live { "live" } else { "DEAD" },
                    d.blocks
                );
            }
        }
        Err(e) => println!("  unavailable: {e}"),
    }
    println!("Workers:");
    match client.workers() {
        Ok(ws) => {
            for w in ws {
                println!(
                    "  {:<8} {:<6} {} slots, {} running, last heartbeat {} ms ago",
                    w.host,
                    if w.live { "live" } else { "LOST" },
                    w.slots,
                    w.running,
                    w.last_heartbeat_ms
                );
            }
        }
        Err(e) => println!("  jobtracker unavailable: {e}"),
    }
    Ok(())
}
