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
use crate::config::{self, ClusterConfig, HostConfig, LocalLayout, NamenodeConfig};
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
        /// Where the daemons listen, when the config is generated.
        #[command(flatten)]
        layout: LocalLayout,
        /// Give up waiting for health after this many seconds.
        #[arg(long, default_value_t = 60)]
        wait_secs: u64,
    },
    /// Stop the processes started by `cluster start --dir DIR` (SIGTERM, then SIGKILL).
    Stop {
        /// Cluster directory [default: the directory of the --conf or $MRJOB_CONF file].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Runs `dfs cluster start|stop`; `conf` is the `--conf` option.
pub async fn run_cluster(cmd: ClusterCommand, conf: Option<&Path>) -> Result<()> {
    match cmd {
        ClusterCommand::Start {
            dir,
            namenodes,
            hosts,
            layout,
            wait_secs,
        } => {
            let wait = Duration::from_secs(wait_secs);
            cluster_start(&dir, namenodes, hosts, &layout, wait).await
        }
        ClusterCommand::Stop { dir } => cluster_stop(&cluster_dir(dir, conf)?),
    }
}

/// The cluster directory of a `cluster stop|status`: `--dir` when given, else the directory
/// of the config file named by `--conf` or `$MRJOB_CONF` (where `cluster start` wrote it).
pub fn cluster_dir(dir: Option<PathBuf>, conf: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = dir {
        return Ok(dir);
    }
    let conf = config::find_config_path(conf).ok_or_else(|| {
        Error::Config(format!(
            "which cluster? pass --dir DIR, --conf FILE or set {}",
            config::CONF_ENV
        ))
    })?;
    Ok(match conf.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    })
}

/// The config file of a `cluster start`, and whether this start wrote it.
#[derive(Debug)]
pub struct ConfigFile {
    /// `DIR/cluster.toml`.
    pub path: PathBuf,
    /// Written by this start (none existed).
    pub fresh: bool,
}

impl ConfigFile {
    /// Removes the config when this start wrote it and starts nothing: the next start, with
    /// other `--base-addr`/`--base-port` perhaps, then lays the cluster out anew.
    pub fn discard_if_fresh(&self) {
        if self.fresh {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes `DIR/cluster.toml` from `config` unless it exists (a running or stopped cluster
/// keeps its config, and says so when `layout` asked for another one).
pub fn write_config_once(
    dir: &Path,
    layout: &LocalLayout,
    config: impl FnOnce() -> Result<(ClusterConfig, String)>,
) -> Result<ConfigFile> {
    let conf_path = dir.join("cluster.toml");
    let fresh = !conf_path.exists();
    if fresh {
        crate::durable::create_dir_durable(dir)?;
        let (cluster, text) = config()?;
        // The key first: a config naming a key file that is not there yet would not load.
        cluster
            .secrets
            .write_key_file(&cluster.key_path(&conf_path))?;
        crate::durable::write_durable(&conf_path, text.as_bytes())?;
    } else if *layout != LocalLayout::default() {
        eprintln!(
            "{} exists: its addresses are used, not --base-addr/--base-port \
             (remove it, or use another --dir, to lay the cluster out anew)",
            conf_path.display()
        );
    }
    Ok(ConfigFile {
        path: conf_path,
        fresh,
    })
}

async fn cluster_start(
    dir: &Path,
    namenodes: usize,
    hosts: usize,
    layout: &LocalLayout,
    wait: Duration,
) -> Result<()> {
    layout.check()?;
    let conf = write_config_once(dir, layout, || {
        let config = config::local_config_in(namenodes, hosts, dir, layout);
        let text = config.to_toml()?;
        Ok((config, text))
    })?;
    let conf_path = conf.path.clone();
    let config = ClusterConfig::load(&conf_path)?;
    let exe = std::env::current_exe().map_err(|e| Error::io("finding the dfs binary", e))?;
    let mut daemons: Vec<Daemon> = config
        .namenodes
        .iter()
        .map(|nn| Daemon::namenode(nn, "namenode"))
        .collect();
    daemons.extend(
        config
            .hosts
            .iter()
            .map(|h| Daemon::datanode(h, "datanode", h.name.clone())),
    );
    let started = start_daemons(&exe, &conf_path, dir, &daemons);
    let started = match started.inspect_err(|_| conf.discard_if_fresh())? {
        Started::AllRunning => {
            already_running(dir, &conf_path);
            return Ok(());
        }
        Started::Spawned(started) => started,
    };
    if let Err(e) = wait_healthy(&config, wait, &started).await {
        started.stop();
        return Err(e);
    }
    print_web_pages(&config);
    eprintln!(
        "cluster is up: export {}={}",
        config::CONF_ENV,
        conf_path.display()
    );
    Ok(())
}

/// Prints where the namenodes' web pages are (each shows its Raft role and links the leader).
pub fn print_web_pages(config: &ClusterConfig) {
    for nn in &config.namenodes {
        eprintln!("namenode {} web page: http://{}/", nn.id, nn.web_addr());
    }
}

/// Says that every daemon of the cluster in `dir` already runs (a second `cluster start`).
pub fn already_running(dir: &Path, conf_path: &Path) {
    eprintln!(
        "the cluster in {} is already running: export {}={}",
        dir.display(),
        config::CONF_ENV,
        conf_path.display()
    );
}

/// One daemon of a local cluster: the name of its pid and log files, its command line after
/// `--conf FILE`, and the addresses it listens on (checked free before it starts).
#[derive(Debug, Clone)]
pub struct Daemon {
    /// Pid and log file name.
    pub name: String,
    /// Subcommand and its arguments.
    pub args: Vec<String>,
    /// Addresses it binds.
    pub listens: Vec<String>,
}

impl Daemon {
    /// Namenode `nn`, run by subcommand `cmd`, named `nn{id}`.
    pub fn namenode(nn: &NamenodeConfig, cmd: &str) -> Daemon {
        Daemon {
            name: format!("nn{}", nn.id),
            args: vec![cmd.into(), "--id".into(), nn.id.to_string()],
            listens: vec![nn.addr.clone(), nn.raft_addr.clone(), nn.web_addr()],
        }
    }

    /// The datanode of host `h`, run by subcommand `cmd`, named `name`.
    pub fn datanode(h: &HostConfig, cmd: &str, name: String) -> Daemon {
        Daemon {
            name,
            args: vec![cmd.into(), "--host".into(), h.name.clone()],
            listens: vec![h.addr.clone(), h.datanode_web_addr()],
        }
    }
}

/// What [`start_daemons`] did.
#[derive(Debug)]
pub enum Started {
    /// Every daemon was running already; none was started.
    AllRunning,
    /// These were started (the others were running).
    Spawned(Spawned),
}

/// The daemons one `cluster start` spawned: watched while the cluster comes up, and stopped
/// again when it does not.
#[derive(Debug)]
pub struct Spawned {
    /// Daemon names.
    pub names: Vec<String>,
    /// The pid files' directory.
    pub pids: PathBuf,
    /// The logs' directory.
    pub logs: PathBuf,
}

impl Spawned {
    /// An error naming a daemon that exited since it was started, with the end of its log
    /// (a port taken meanwhile, a bad config, a damaged state directory).
    pub fn check_alive(&self) -> Result<()> {
        for name in &self.names {
            let alive = read_pid(&self.pids.join(format!("{name}.pid"))).is_some_and(process_alive);
            if !alive {
                let log = self.logs.join(format!("{name}.log"));
                return Err(Error::Unavailable(format!(
                    "{name} exited at start; the end of {}:\n{}",
                    log.display(),
                    log_tail(&log, 5)
                )));
            }
        }
        Ok(())
    }

    /// Stops the daemons this start spawned (SIGKILL: they never served anyone).
    pub fn stop(&self) {
        for name in &self.names {
            let pid_file = self.pids.join(format!("{name}.pid"));
            if let Some(pid) = read_pid(&pid_file).filter(|p| process_alive(*p)) {
                signal(pid, "KILL");
            }
            let _ = std::fs::remove_file(&pid_file);
        }
    }
}

/// The last `n` lines of a log file, indented.
fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(n)..];
    tail.iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Starts every daemon of `daemons` not already running (per its pid file in `DIR/pids`) as
/// `exe --conf CONF ARGS...`, after checking that none of their addresses is taken: a daemon
/// that cannot bind would only exit, and one of another cluster answering there would be
/// mistaken for ours.
pub fn start_daemons(exe: &Path, conf: &Path, dir: &Path, daemons: &[Daemon]) -> Result<Started> {
    let (logs, pids) = (dir.join("logs"), dir.join("pids"));
    for d in [&logs, &pids] {
        std::fs::create_dir_all(d).map_err(|e| Error::io(format!("{}", d.display()), e))?;
    }
    let running =
        |d: &&Daemon| read_pid(&pids.join(format!("{}.pid", d.name))).is_some_and(process_alive);
    let to_start: Vec<&Daemon> = daemons.iter().filter(|d| !running(d)).collect();
    if to_start.is_empty() {
        return Ok(Started::AllRunning);
    }
    for d in &to_start {
        check_free(d)?;
    }
    let spawned = Spawned {
        names: to_start.iter().map(|d| d.name.clone()).collect(),
        pids,
        logs,
    };
    for d in &to_start {
        if let Err(e) = spawn_daemon(exe, conf, &d.args, &d.name, &spawned.logs, &spawned.pids) {
            spawned.stop();
            return Err(e);
        }
    }
    let already = daemons.len() - to_start.len();
    let also = if already > 0 {
        format!(" ({already} were already running)")
    } else {
        String::new()
    };
    eprintln!(
        "started {}{also}; logs in {}",
        describe(&spawned.names),
        spawned.logs.display()
    );
    Ok(Started::Spawned(spawned))
}

/// "3 namenodes, 3 datanodes, 3 workers and a jobtracker", from daemon names.
fn describe(names: &[String]) -> String {
    let count = |f: &dyn Fn(&str) -> bool| names.iter().filter(|n| f(n)).count();
    let nn = count(&|n| n.starts_with("nn"));
    let workers = count(&|n| n.starts_with("worker-"));
    let jt = count(&|n| n == "jobtracker");
    let dn = names.len() - nn - workers - jt;
    let mut parts = Vec::new();
    for (k, what) in [(nn, "namenode"), (dn, "datanode"), (workers, "worker")] {
        match k {
            0 => {}
            1 => parts.push(format!("1 {what}")),
            _ => parts.push(format!("{k} {what}s")),
        }
    }
    if jt > 0 {
        parts.push("a jobtracker".into());
    }
    match parts.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => parts.concat(),
    }
}

/// Fails when an address of `d` is taken (bound by another cluster or program).
fn check_free(d: &Daemon) -> Result<()> {
    for addr in &d.listens {
        // Bound and dropped at once; the daemon binds it again a moment later.
        if let Err(e) = std::net::TcpListener::bind(addr.as_str()) {
            return Err(Error::io(
                format!(
                    "{} cannot listen on {addr} (another cluster or program holds it? \
                     generate the config with other --base-port or --base-addr)",
                    d.name
                ),
                e,
            ));
        }
    }
    Ok(())
}

/// Starts `exe --conf CONF ARGS...` in the background in its own process group, logging to
/// `LOGS/NAME.log` and recording its pid in `PIDS/NAME.pid`.
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

/// Waits until a namenode leader answers and every datanode of `config` is live, failing as
/// soon as a daemon of `started` exits or a namenode of another cluster answers.
pub async fn wait_healthy(config: &ClusterConfig, wait: Duration, started: &Spawned) -> Result<()> {
    let client = DfsClient::new(config.clone());
    let deadline = Instant::now() + wait;
    loop {
        started.check_alive()?;
        check_namenode_ids(config, &client).await?;
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

/// Fails when a namenode that answers reports another cluster id than `config`'s.
async fn check_namenode_ids(config: &ClusterConfig, client: &DfsClient) -> Result<()> {
    for (id, status) in client.namenode_statuses().await {
        if let Ok(s) = status {
            let addr = config
                .namenode(id)
                .map(|n| n.addr.clone())
                .unwrap_or_default();
            check_cluster_id(config, &format!("the namenode at {addr}"), &s.cluster_id)?;
        }
    }
    Ok(())
}

/// Fails when `who` (a daemon that answered) reports cluster id `theirs` and `config` names
/// another: a daemon of another cluster listens where ours should.
pub fn check_cluster_id(config: &ClusterConfig, who: &str, theirs: &str) -> Result<()> {
    if config.cluster_id.is_empty() || config.cluster_id == theirs {
        return Ok(());
    }
    Err(Error::Unavailable(format!(
        "{who} belongs to another cluster (id {theirs:?}, this one is {:?}): \
         another cluster uses these addresses; stop it, or use other --base-port or --base-addr",
        config.cluster_id
    )))
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

    #[test]
    fn a_daemon_of_another_cluster_is_told_apart() {
        let mut config = ClusterConfig {
            cluster_id: "abc".into(),
            ..ClusterConfig::default()
        };
        check_cluster_id(&config, "nn1", "abc").unwrap();
        let err = check_cluster_id(&config, "the namenode at X", "def").unwrap_err();
        assert!(err.to_string().contains("another cluster"), "{err}");
        // A hand-made config without an id checks nothing.
        config.cluster_id.clear();
        check_cluster_id(&config, "nn1", "def").unwrap();
    }

    #[test]
    fn a_start_is_summed_up_by_kind() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = names(&["nn1", "nn2", "dn-host1", "worker-host1", "jobtracker"]);
        assert_eq!(
            describe(&all),
            "2 namenodes, 1 datanode, 1 worker and a jobtracker"
        );
        assert_eq!(describe(&names(&["host1", "host2"])), "2 datanodes");
    }

    #[test]
    fn a_daemon_that_exited_is_named_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let (pids, logs) = (dir.path().join("pids"), dir.path().join("logs"));
        std::fs::create_dir_all(&pids).unwrap();
        std::fs::create_dir_all(&logs).unwrap();
        // A pid that is no process: above the kernel's pid_max.
        std::fs::write(pids.join("nn1.pid"), "99999999\n").unwrap();
        let log = (1..=9).map(|i| format!("line {i}\n")).collect::<String>();
        std::fs::write(logs.join("nn1.log"), log).unwrap();
        let spawned = Spawned {
            names: vec!["nn1".into()],
            pids,
            logs,
        };
        let err = spawned.check_alive().unwrap_err().to_string();
        assert!(err.contains("nn1 exited at start"), "{err}");
        assert!(err.contains("line 9") && err.contains("line 5"), "{err}");
        assert!(!err.contains("line 4"), "{err}");
    }
}
