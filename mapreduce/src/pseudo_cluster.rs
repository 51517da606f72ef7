//! `mrjob cluster start|stop|status`: a whole cluster on this machine in the background —
//! three namenodes, N hosts (a datanode and a worker each, on 127.0.1.j), and a jobtracker —
//! every daemon a separate process of the job binary itself, so nothing else needs building.
//! The config comes from dfs's generator ([`dfs::config::local_config`]), with the
//! `[mapreduce]` table's defaults written out.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dfs::client::DfsClient;
use dfs::config;
use dfs::config::{ClusterConfig, LocalLayout};
use dfs::local_cluster::{
    self, check_cluster_id, cluster_stop, process_alive, read_pid, wait_healthy, Daemon, Spawned,
    Started,
};

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

/// Starts the cluster of `DIR/cluster.toml` (written first when missing, laid out by
/// `layout`) and waits until dfs is healthy and every worker heartbeats. When every daemon
/// already runs, says so and returns.
pub fn start(dir: &Path, hosts: usize, layout: &LocalLayout, wait: Duration) -> Result<Config> {
    layout.check().map_err(|e| match e {
        dfs::Error::Config(m) => Error::BadSetting(m),
        other => dfs_error("checking the layout", other),
    })?;
    let conf = local_cluster::write_config_once(dir, layout, || {
        // The whole file, the `[mapreduce]` table with its defaults included, so the operator
        // sees every key there is to change.
        let config = Config {
            cluster: config::local_config_in(3, hosts, dir, layout),
            mapreduce: MapReduceConfig::default(),
        };
        let text = config
            .to_toml()
            .map_err(|e| dfs::Error::Config(e.to_string()))?;
        Ok((config.cluster, text))
    })
    .map_err(|e| dfs_error("writing the config", e))?;
    let conf_path = conf.path.clone();
    let config = Config::load(&conf_path)?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("finding this program's executable".to_owned(), e))?;
    let started = local_cluster::start_daemons(&exe, &conf_path, dir, &daemons(&config.cluster))
        .inspect_err(|_| conf.discard_if_fresh())
        .map_err(|e| dfs_error("starting the cluster", e))?;
    let started = match started {
        Started::AllRunning => {
            local_cluster::already_running(dir, &conf_path);
            return Ok(config);
        }
        Started::Spawned(started) => started,
    };
    if let Err(e) = wait_until_healthy(&config, wait, &started) {
        started.stop();
        return Err(e);
    }
    local_cluster::print_web_pages(&config.cluster);
    eprintln!(
        "jobtracker web page: http://{}/",
        config.cluster.jobtracker_web_addr()
    );
    eprintln!(
        "cluster is up: export {}={}",
        config::CONF_ENV,
        conf_path.display()
    );
    Ok(config)
}

/// Every daemon of the pseudo cluster: the namenodes, a datanode and a worker per host, and
/// the jobtracker.
fn daemons(cluster: &ClusterConfig) -> Vec<Daemon> {
    let mut all: Vec<Daemon> = cluster
        .namenodes
        .iter()
        .map(|nn| Daemon::namenode(nn, daemon_args::NAMENODE))
        .collect();
    for h in &cluster.hosts {
        let dn = Daemon::datanode(h, daemon_args::DATANODE, format!("dn-{}", h.name));
        all.push(dn);
        all.push(Daemon {
            name: format!("worker-{}", h.name),
            args: vec![daemon_args::WORKER.into(), "--host".into(), h.name.clone()],
            listens: vec![h.worker_addr.clone(), h.worker_web_addr()],
        });
    }
    all.push(Daemon {
        name: "jobtracker".into(),
        args: vec![daemon_args::JOBTRACKER.into()],
        listens: vec![
            cluster.jobtracker_addr.clone(),
            cluster.jobtracker_web_addr(),
        ],
    });
    all
}

/// Waits until a namenode leader answers, every datanode is live, and every worker has
/// heartbeated to the jobtracker; fails early when a daemon `started` exits or a daemon of
/// another cluster answers.
pub fn wait_until_healthy(config: &Config, wait: Duration, started: &Spawned) -> Result<()> {
    let deadline = Instant::now() + wait;
    let client = ClusterClient::new(config.clone())?;
    let hosts = config.cluster.hosts.len();
    client
        .fs()
        .block_on(wait_healthy(&config.cluster, wait, started))
        .map_err(|e| dfs_error("waiting for dfs", e))?;
    loop {
        started
            .check_alive()
            .map_err(|e| dfs_error("waiting for the workers", e))?;
        let workers = client.workers().unwrap_or_default();
        for w in &workers {
            let who = format!("the jobtracker at {}", config.cluster.jobtracker_addr);
            check_cluster_id(&config.cluster, &who, &w.cluster_id)
                .map_err(|e| dfs_error("waiting for the workers", e))?;
        }
        let live = workers.iter().filter(|w| w.live).count();
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

/// Prints every daemon's process state (when `dir/pids` exists), the namenodes' Raft roles,
/// datanodes and workers of the cluster of `dir/cluster.toml`, then how many daemons answer.
/// Returns whether all of them do.
pub fn status(dir: &Path) -> Result<bool> {
    print_processes(&dir.join("pids"))?;
    let config = Config::load(&dir.join("cluster.toml"))?;
    let total = config.cluster.namenodes.len() + 2 * config.cluster.hosts.len() + 1;
    let dfs = DfsClient::new(config.cluster.clone());
    let client = ClusterClient::new(config)?;
    let mut up = 0;
    println!("Namenodes:");
    for (id, st) in client.fs().block_on(dfs.namenode_statuses()) {
        match st {
            Ok(s) => {
                up += 1;
                println!(
                    "  nn{id:<3} {:?}, term {}, leader {}, applied {}",
                    s.role, s.term, s.leader_id, s.applied_index
                )
            }
            Err(e) => println!("  nn{id:<3} unreachable: {e}"),
        }
    }
    println!("Datanodes:");
    // The report needs a leader, which a client looks for patiently: not when no namenode
    // answers, and not for longer than a status should take.
    let report = match up {
        0 => Err("no namenode answers".to_owned()),
        _ => client
            .fs()
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(5), dfs.datanode_report()).await
            })
            .map_err(|_| "no leader within 5 s".to_owned())
            .and_then(|r| r.map_err(|e| e.to_string())),
    };
    match report {
        Ok(nodes) => {
            for d in nodes {
                up += usize::from(d.live);
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
    up += print_workers(&client);
    println!("{up}/{total} daemons up");
    Ok(up == total)
}

/// Prints the workers as the jobtracker sees them; returns how many daemons are up among the
/// jobtracker and the workers.
fn print_workers(client: &ClusterClient) -> usize {
    println!("Workers:");
    let ws = match client.workers() {
        Ok(ws) => ws,
        Err(e) => {
            println!("  jobtracker unavailable: {e}");
            return 0;
        }
    };
    for w in &ws {
        println!(
            "  {:<8} {:<6} {} slots, {} running, last heartbeat {} ms ago",
            w.host,
            if w.live { "live" } else { "LOST" },
            w.slots,
            w.running,
            w.last_heartbeat_ms
        );
    }
    1 + ws.iter().filter(|w| w.live).count()
}

/// Prints the state of every process with a pid file in `pids`, if that directory exists (a
/// cluster started elsewhere has none here).
fn print_processes(pids: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(pids) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("reading {}", pids.display()), e)),
    };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
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
    Ok(())
}
