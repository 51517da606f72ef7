//! The `dfs` binary: the daemons (`namenode`, `datanode`), the config generators
//! (`config local`, `config hosts`), a local cluster launcher (`cluster start|stop`), and the
//! shell commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use dfs::local_cluster::{self, ClusterCommand};
use dfs::shell::{self, ShellCommand};
use dfs::{config, Error};

/// What every shell command shares, shown under `dfs --help`.
const SHELL_HELP: &str = "\
Paths: /abs/path; dfs://HOST:PORT/path (HOST:PORT one of the configured namenodes; \
dfs:///path for the configured cluster); or relative to the working directory /user/NAME, \
as in Hadoop (NAME: $USER, else the OS user): `dfs mkdir logs` creates /user/NAME/logs.

Listings: `ls DIR` prints `Found N items`, then one line per entry (kind, replication, size, \
modified in UTC, path), as `hdfs dfs -ls`; `ls -R` lists the whole tree without the counts. \
`du` prints size, raw size (all replicas) and path, `du -v` with a header line. \
`-h` on ls and du shows sizes as 1.5KiB, 64.0MiB.

Sizes (put --block-size-bytes): bytes, or with a unit: 128MiB, 64K, 1G.

Output piped into a reader that stops early (`dfs cat FILE | head`) ends the command \
quietly with status 0.";

/// A replicated block filesystem.
#[derive(Debug, Parser)]
#[command(name = "dfs", version, about, after_help = SHELL_HELP)]
struct Cli {
    /// Cluster config file (default: $MRJOB_CONF).
    #[arg(long, global = true)]
    conf: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a namenode.
    Namenode {
        /// This namenode's Raft id in the config.
        #[arg(long)]
        id: u64,
    },
    /// Run the datanode of one host.
    Datanode {
        /// This host's name in the config.
        #[arg(long)]
        host: String,
    },
    /// Generate configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Start or stop a local cluster in the background.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Manage users: each gets a key of its own, derived from the cluster key.
    #[command(subcommand)]
    User(UserCommand),
    /// Print a URL that logs a browser in to the leading namenode's pages as you (the user of
    /// $MRJOB_USER_KEY, else the cluster admin), so they show what you may read. Open it
    /// within 15 minutes; keep it private.
    Web {
        /// Show this path in the file browser [default: the overview].
        path: Option<String>,
        /// Also open it in the desktop's browser (xdg-open).
        #[arg(long)]
        open: bool,
    },
    #[command(flatten)]
    Shell(ShellCommand),
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Make the key file of user NAME (needs the cluster key: run it as the cluster admin).
    /// The user sets MRJOB_USER_KEY to that file and acts as NAME, with NAME's permissions.
    Add {
        /// The user's name (letters, digits, - _ . : @).
        name: String,
        /// Where to write the key file [default: NAME.key in the current directory].
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Write DIR/cluster.toml for a cluster on this machine (127.0.0.x / 127.0.1.x addresses).
    Local {
        /// Number of namenodes.
        #[arg(long, default_value_t = 3)]
        namenodes: usize,
        /// Number of hosts (datanodes).
        #[arg(long, default_value_t = 3)]
        hosts: usize,
        /// Directory for the config and all state.
        #[arg(long)]
        dir: PathBuf,
        /// Where the daemons listen.
        #[command(flatten)]
        layout: config::LocalLayout,
    },
    /// Write cluster.toml for a cluster of separate machines (default ports; the same file
    /// serves every machine).
    Hosts {
        /// Namenode addresses, comma-separated; the i-th gets Raft id i.
        #[arg(long, value_name = "IP,IP,IP")]
        namenodes: String,
        /// Hosts (a datanode and a worker each), comma-separated [default rack: /default-rack].
        #[arg(long, value_name = "NAME=IP[@RACK],...")]
        hosts: String,
        /// The jobtracker's address.
        #[arg(long, value_name = "IP")]
        jobtracker: String,
        /// State directory on every machine (namenode/, data/ and work/ go under it). `{node}`
        /// in it becomes each daemon's name (namenode-N or the host's name), for daemons that
        /// share one disk.
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
        /// Write the config to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let daemon = matches!(
        cli.command,
        Command::Namenode { .. } | Command::Datanode { .. }
    );
    init_logging(daemon);
    dfs::stdout::exit_quietly_when_closed();
    let runtime = if matches!(cli.command, Command::Namenode { .. }) {
        dfs::namenode::runtime()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dfs: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let what = command_name(&cli.command);
    let result = if daemon {
        // A daemon returns after a graceful shutdown: blocking work left over must not hold
        // the exit.
        dfs::listener::run_daemon(runtime, run(cli))
    } else {
        runtime.block_on(run(cli))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output has gone (`| head`): a normal end, as for any shell tool.
        Err(e) if dfs::stdout::is_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dfs {what}: {}", shell::describe(&e));
            ExitCode::from(shell::exit_code(&e) as u8)
        }
    }
}

fn command_name(cmd: &Command) -> String {
    let debug = format!("{cmd:?}");
    let inner = debug.strip_prefix("Shell(").unwrap_or(&debug);
    inner
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("")
        .to_lowercase()
}

fn init_logging(daemon: bool) {
    // Daemons log at info; the shell stays quiet unless RUST_LOG says otherwise.
    let default = if daemon { "info" } else { "error" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only on a terminal: a daemon's stderr is usually its log file.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

async fn run(cli: Cli) -> dfs::Result<()> {
    let conf = cli.conf.as_deref();
    match cli.command {
        Command::Namenode { id } => dfs::namenode::run(load(conf)?, id).await,
        Command::Datanode { host } => dfs::datanode::run(load(conf)?, &host).await,
        Command::Config(cmd) => run_config(cmd),
        Command::User(UserCommand::Add { name, out }) => add_user(conf, &name, out).await,
        Command::Cluster(cmd) => local_cluster::run_cluster(cmd, conf).await,
        Command::Web { path, open } => web_login(conf, path, open).await,
        Command::Shell(cmd) => shell::run(conf, cmd).await,
    }
}

/// `dfs web`: the login URL of the leader's pages (the first namenode's when none answers
/// as leader: its page links to the leader once there is one).
async fn web_login(conf: Option<&Path>, path: Option<String>, open: bool) -> dfs::Result<()> {
    let config = load(conf)?;
    let credentials = config.secrets.credentials()?.clone();
    let statuses = dfs::client::DfsClient::new(config.clone())
        .namenode_statuses()
        .await;
    let leader = statuses
        .iter()
        .find(|(_, s)| {
            s.as_ref()
                .is_ok_and(|s| s.role == dfs::protocol::RaftRole::Leader)
        })
        .or_else(|| statuses.first())
        .map(|(id, _)| *id)
        .ok_or_else(|| Error::Config("the config names no namenode".into()))?;
    let next = match path {
        Some(p) => format!(
            "/browse?path={}",
            dfs::http::page::query_value(&dfs::path::resolve(&config, &p)?)
        ),
        None => "/".to_owned(),
    };
    let addr = config.namenode(leader)?.web_addr();
    let url = dfs::http::session::login_url(&addr, &credentials, &next)?;
    dfs::http::session::hand_out("dfs", &url, open);
    Ok(())
}

fn run_config(cmd: ConfigCommand) -> dfs::Result<()> {
    match cmd {
        ConfigCommand::Local {
            namenodes,
            hosts,
            dir,
            layout,
        } => {
            layout.check()?;
            dfs::durable::create_dir_durable(&dir)?;
            let config = config::local_config_in(namenodes, hosts, &dir, &layout);
            let path = dir.join("cluster.toml");
            config.save(&path)?;
            println!("{}", path.display());
            Ok(())
        }
        ConfigCommand::Hosts {
            namenodes,
            hosts,
            jobtracker,
            state_dir,
            out,
        } => {
            let spec = config::HostsSpec::parse(&namenodes, &hosts, &jobtracker, &state_dir)?;
            let config = config::hosts_config(&spec)?;
            match out {
                // Durable and atomic, so a daemon starting meanwhile never reads half a file;
                // the cluster key goes beside it (mode 0600), to be copied with it.
                Some(path) => {
                    config.save(&path)?;
                    eprintln!(
                        "wrote {} and its cluster key {}: copy both to every machine \
                         (the key with mode 0600)",
                        path.display(),
                        config.key_path(&path).display()
                    );
                    Ok(())
                }
                None => {
                    print!("{}", config.to_toml()?);
                    eprintln!(
                        "note: no cluster key was written (use --out FILE to write one beside \
                         the config); the daemons need one"
                    );
                    Ok(())
                }
            }
        }
    }
}

/// Writes the key file of user `name`, derived from the cluster key (which only the admin
/// holds), mode 0600, never over an existing file.
async fn add_user(conf: Option<&Path>, name: &str, out: Option<PathBuf>) -> dfs::Result<()> {
    dfs::auth::validate_user_name(name)?;
    let config = load(conf)?;
    let authority = config.secrets.authority()?;
    let path = out.unwrap_or_else(|| PathBuf::from(format!("{name}.key")));
    let file = dfs::auth::KeyFile {
        user: Some(name.to_string()),
        key: authority.user_key(name).to_hex(),
    };
    file.create(&path)?;
    println!("{}", path.display());
    eprintln!(
        "give {} to {name} (keep it mode 0600); with {}={} set, dfs and mrjob act as {name}",
        path.display(),
        dfs::auth::USER_KEY_ENV,
        path.display()
    );
    let home = format!("/user/{name}");
    match make_home(config, name, &home).await {
        Ok(()) => eprintln!("created {home}, owned by {name}, mode 0755"),
        Err(e) => eprintln!(
            "could not create {home} ({}); once the cluster is up: dfs mkdir {home} && \
             dfs chown {name} {home}",
            dfs::shell::describe(&e)
        ),
    }
    Ok(())
}

/// How long `dfs user add` tries to reach the cluster for the home directory: the key file is
/// what matters, and the cluster may well be down.
const HOME_TIMEOUT: Duration = Duration::from_secs(10);

/// Creates the user's home directory (as the superuser this tool acts as), owned by the user.
async fn make_home(config: config::ClusterConfig, name: &str, home: &str) -> dfs::Result<()> {
    let client = dfs::client::DfsClient::new(config);
    let io = async {
        client.mkdirs(home).await?;
        client.set_owner(home, Some(name), None).await?;
        client.set_permission(home, 0o755).await
    };
    tokio::time::timeout(HOME_TIMEOUT, io)
        .await
        .map_err(|_| Error::Timeout(format!("reaching the namenodes within {HOME_TIMEOUT:?}")))?
}

fn load(conf: Option<&Path>) -> dfs::Result<config::ClusterConfig> {
    config::ClusterConfig::discover(conf)?.ok_or_else(|| {
        Error::Config(format!(
            "no cluster configured: pass --conf FILE or set {}",
            config::CONF_ENV
        ))
    })
}
