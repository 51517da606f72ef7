//! `mrjob cluster start|stop|status`: a whole cluster on this machine in the background —
//! three namenodes, N hosts (a datanode and a worker each, on 127.0.1.j), and a jobtracker —
//! every daemon a separate process of the job binary itself, so nothing else needs building.
//! The config comes from dfs's generator ([`dfs::config::local_config`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dfs::client::DfsClient;
use dfs::config::{self, ClusterConfig};
use dfs::local_cluster::{cluster_stop, process_alive, read_pid, spawn_daemon, wait_healthy};

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
pub fn start(dir: &Path, hosts: usize, wait: Duration) -> Result<ClusterConfig> {
    let conf_path = dir.join("cluster.toml");
    if !conf_path.exists() {
        dfs::durable::create_dir_durable(dir)
            .map_err(|e| dfs_error("creating the directory", e))?;
        let config = config::local_config(3, hosts, dir);
        let text = config
            .to_toml()
            .map_err(|e| dfs_error("writing the config", e))?;
        dfs::durable::write_durable(&conf_path, text.as_bytes())
            .map_err(|e| dfs_error("writing the config", e))?;
    }
    let config = ClusterConfig::load(&conf_path)
        .map_err(|e| Error::BadSetting(format!("{}: {e}", conf_path.display())))?;
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
    for nn in &config.namenodes {
        let args = vec![
            daemon_args::NAMENODE.into(),
            "--id".into(),
            nn.id.to_string(),
        ];
        spawn(args, &format!("nn{}", nn.id))?;
    }
    for h in &config.hosts {
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
        config.namenodes.len(),
        config.hosts.len(),
        config.hosts.len(),
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
pub fn wait_until_healthy(config: &ClusterConfig, wait: Duration) -> Result<()> {
    let deadline = Instant::now() + wait;
    let client = ClusterClient::new(config.clone())?;
    client
        .fs()
        .block_on(wait_healthy(config, wait))
        .map_err(|e| dfs_error("waiting for dfs", e))?;
    loop {
        let live = client
            .workers()
            .map(|w| w.iter().filter(|w| w.live).count())
            .unwrap_or(0);
        if live >= config.hosts.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout {
                what: format!(
                    "only {live}/{} workers joined the jobtracker within {}s; see the logs",
                    config.hosts.len(),
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
    let config = ClusterConfig::load(&dir.join("cluster.toml"))
        .map_err(|e| Error::BadSetting(e.to_string()))?;
    let client = ClusterClient::new(config.clone())?;
    let dfs = DfsClient::new(config.clone());
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
