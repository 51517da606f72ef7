//! A local cluster in the background: `dfs cluster start|stop`, and the process control it is
//! built from (spawning daemons with pid files, waiting for health, stopping them), which
//! `mrjob cluster` reuses for its pseudo-distributed cluster.
//!
//! ```text
//! dfs cluster start --dir /tmp/dfs --hosts 3   # writes /tmp/dfs/cluster.toml if missing
//! export MRJOB_CONF=/tmp/dfs/cluster.toml
//! dfs put big.bin /data/ && dfs ls /data && dfs fsck / && dfs report
//! dfs cluster stop --dir /tmp/dfs
//! ```
//!
//! `start` runs `dfs namenode` and `dfs datanode` for every entry of the config in their own
//! process groups, with logs in `DIR/logs/` and pid files in `DIR/pids/`, and returns once a
//! leader answers and every datanode is live.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Subcommand;

use crate::client::DfsClient;
use crate::config::{self, ClusterConfig};
use crate::error::{Error, Result};

/// Seconds since the epoch, for log file names.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `dfs cluster start|stop`: a local cluster in the background.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start the namenodes and datanodes of `DIR/cluster.toml` in the background (writing the
    /// config first with `dfs config local` defaults when it does not exist), then wait until a
    /// leader answers and every datanode is live.
    Start {
        /// Cluster directory (config, state, logs, pid files).
        #[arg(long)]
        dir: PathBuf,
        /// Namenodes, when the config is generated.
        #[arg(long, default_value_t = 3)]
        namenodes: usize,
        /// Hosts (datanodes), when the config is generated.
        #[arg(long, default_value_t = 3)]
        hosts: usize,
        /// Give up waiting for health after this many seconds.
        #[arg(long, default_value_t = 60)]
        wait_secs: u64,
    },
    /// Stop the processes started by `cluster start --dir DIR` (SIGTERM, then SIGKILL).
    Stop {
        /// Cluster directory.
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Runs `dfs cluster start|stop`.
pub async fn run_cluster(cmd: ClusterCommand) -> Result<()> {
    match cmd {
        ClusterCommand::Start {
            dir,
            namenodes,
            hosts,
            wait_secs,
        } => cluster_start(&dir, namenodes, hosts, Duration::from_secs(wait_secs)).await,
        ClusterCommand::Stop { dir } => cluster_stop(&dir),
    }
}

async fn cluster_start(dir: &Path, namenodes: usize, hosts: usize, wait: Duration) -> Result<()> {
    let conf_path = dir.join("cluster.toml");
    if !conf_path.exists() {
        crate::durable::create_dir_durable(dir)?;
        let config = config::local_config(namenodes, hosts, dir);
        crate::durable::write_durable(&conf_path, config.to_toml()?.as_bytes())?;
    }
    let config = ClusterConfig::load(&conf_path)?;
    let exe = std::env::current_exe().map_err(|e| Error::io("finding the dfs binary", e))?;
    let logs = dir.join("logs");
    let pids = dir.join("pids");
    for d in [&logs, &pids] {
        std::fs::create_dir_all(d).map_err(|e| Error::io(format!("{}", d.display()), e))?;
    }
    for nn in &config.namenodes {
        let args = vec!["namenode".into(), "--id".into(), nn.id.to_string()];
        spawn_daemon(
            &exe,
            &conf_path,
            &args,
            &format!("nn{}", nn.id),
            &logs,
            &pids,
        )?;
    }
    for h in &config.hosts {
        let args = vec!["datanode".into(), "--host".into(), h.name.clone()];
        spawn_daemon(&exe, &conf_path, &args, &h.name, &logs, &pids)?;
    }
    eprintln!(
        "started {} namenodes and {} datanodes; logs in {}",
        config.namenodes.len(),
        config.hosts.len(),
        logs.display()
    );
    wait_healthy(&config, wait).await?;
    eprintln!(
        "cluster is up: export {}={}",
        config::CONF_ENV,
        conf_path.display()
    );
    Ok(())
}

/// Starts `exe --conf CONF ARGS...` in the background in its own process group, logging to
/// `LOGS/NAME.log` and recording its pid in `PIDS/NAME.pid` (a running one is left alone).
pub fn spawn_daemon(
    exe: &Path,
    conf: &Path,
    args: &[String],
    name: &str,
    logs: &Path,
    pids: &Path,
) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let pid_file = pids.join(format!("{name}.pid"));
    if let Some(pid) = read_pid(&pid_file) {
        if process_alive(pid) {
            eprintln!("{name} already running (pid {pid})");
            return Ok(());
        }
    }
    let log_path = logs.join(format!("{name}.log"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::io(format!("{}", log_path.display()), e))?;
    let err_log = log
        .try_clone()
        .map_err(|e| Error::io(format!("{}", log_path.display()), e))?;
    let child = std::process::Command::new(exe)
        .arg("--conf")
        .arg(conf)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err_log)
        // Own process group: the daemon outlives this command and the terminal's job control.
        .process_group(0)
        .spawn()
        .map_err(|e| Error::io(format!("starting {name}"), e))?;
    std::fs::write(&pid_file, format!("{}\n", child.id()))
        .map_err(|e| Error::io(format!("{}", pid_file.display()), e))?;
    tracing::debug!(
        name,
        pid = child.id(),
        started_at = now_secs(),
        "daemon started"
    );
    Ok(())
}

/// Waits until a namenode leader answers and every datanode of `config` is live.
pub async fn wait_healthy(config: &ClusterConfig, wait: Duration) -> Result<()> {
    let client = DfsClient::new(config.clone());
    let deadline = Instant::now() + wait;
    loop {
        let live = match client.datanode_report().await {
            Ok(nodes) => nodes.iter().filter(|d| d.live).count(),
            Err(_) => 0,
        };
        if live >= config.hosts.len() && client.stat("/").await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout(format!(
                "cluster not healthy after {}s ({live}/{} datanodes live); see the logs",
                wait.as_secs(),
                config.hosts.len()
            )));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Stops every process with a pid file in `DIR/pids` (SIGTERM, then SIGKILL after 10 s).
pub fn cluster_stop(dir: &Path) -> Result<()> {
    let pids = dir.join("pids");
    let entries =
        std::fs::read_dir(&pids).map_err(|e| Error::io(format!("{}", pids.display()), e))?;
    let mut running = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if let Some(pid) = read_pid(&path) {
            if process_alive(pid) {
                signal(pid, "TERM");
                running.push(pid);
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while running.iter().any(|p| process_alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in running.iter().filter(|p| process_alive(**p)) {
        signal(*pid, "KILL");
    }
    eprintln!("stopped {} processes", running.len());
    Ok(())
}

/// The pid in a pid file.
pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `pid` is a live (non-zombie) process, from /proc, so no unsafe `kill(2)` is needed.
#[cfg(target_os = "linux")]
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Whether `pid` is a live (non-zombie) process where there is no /proc (macOS, the BSDs).
#[cfg(not(target_os = "linux"))]
pub fn process_alive(pid: u32) -> bool {
    alive_by_ps(pid)
}

/// Whether `pid` is a live (non-zombie) process, from POSIX `ps`; false when `ps` cannot be
/// run. Compiled on Linux too, for its test.
#[cfg(any(test, not(target_os = "linux")))]
fn alive_by_ps(pid: u32) -> bool {
    let Ok(out) = std::process::Command::new("ps")
        .args(["-o", "stat=", "-p"])
        .arg(pid.to_string())
        .output()
    else {
        return false;
    };
    let state = String::from_utf8_lossy(&out.stdout);
    let state = state.trim();
    out.status.success() && !state.is_empty() && !state.starts_with('Z')
}

fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    // Both ways of asking (/proc on Linux, `ps` elsewhere) agree: this process is alive, an
    // exited child not yet waited for (a zombie) and a reaped one are not.
    #[test]
    fn process_alive_tells_live_from_zombie_and_gone() {
        let me = std::process::id();
        assert!(process_alive(me) && alive_by_ps(me));
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        while process_alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            !process_alive(pid),
            "an exited child is a zombie, not alive"
        );
        assert!(!alive_by_ps(pid), "ps agrees about the zombie");
        child.wait().unwrap();
        assert!(!process_alive(pid) && !alive_by_ps(pid));
    }
}
