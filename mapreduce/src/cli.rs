//! Pieces every job binary's command line shares: the common job options, size parsing, and
//! the end-of-job report. `mrjob` uses them, and so can a user's own job binary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use dfs::config::CONF_ENV;
use dfs::listener::run_daemon;

use crate::compression::Codec;
use crate::config::Config;
use crate::error::{dfs_error, Error, Result};
use crate::job::Settings;
use crate::job_conf::JobConf;
use crate::logging::{init_logging, init_logging_at};
use crate::properties;
use crate::protocol::{JobInfo, JobPhase};
use crate::pseudo_cluster;
use crate::runner::JobReport;
use crate::scheduler::JobId;
use crate::submit::{progress_line, ClusterClient};

/// Options common to every job.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct JobArgs {
    /// Number of reduce tasks [default: the number of threads]
    #[arg(long, short = 'r', value_name = "N")]
    pub reducers: Option<u32>,
    /// Worker threads [default: number of cores]
    #[arg(long, short = 't', value_name = "N")]
    pub threads: Option<usize>,
    /// Map-side sort buffer per task, e.g. 100MiB [default: 100MiB]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub sort_buffer: Option<u64>,
    /// Largest split of a local run, e.g. 64MiB [default: from the input size and threads,
    /// 4MiB to 64MiB]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub split_size: Option<u64>,
    /// Longest input record accepted, e.g. 64MiB [default: 64MiB]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_record_size: Option<u64>,
    /// Do not run the job's combiner
    #[arg(long)]
    pub no_combiner: bool,
    /// Directory for intermediate files [default: the system temp directory]
    #[arg(long, value_name = "DIR")]
    pub local_dir: Option<PathBuf>,
    /// Do not fsync output files before committing (faster, not crash-safe)
    #[arg(long)]
    pub no_sync: bool,
    /// Print neither progress nor counters
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Run on this machine even when a cluster is configured
    #[arg(long)]
    pub local: bool,
    /// Compress output files (part-r-00000.gz, ...) [gzip, bzip2, zstd, deflate]
    #[arg(long, value_name = "CODEC", value_parser = parse_codec)]
    pub compress: Option<Codec>,
    /// A job property by its Hadoop name, e.g. -D mapreduce.job.reduces=4 (repeatable;
    /// `mrjob properties` lists them; applied after the options above)
    #[arg(short = 'D', value_name = "KEY=VALUE")]
    pub define: Vec<String>,
}

/// Parses `--compress CODEC`.
fn parse_codec(name: &str) -> std::result::Result<Codec, String> {
    Codec::from_name(name).map_err(|e| e.to_string())
}

impl JobArgs {
    /// The configuration of the job registered as `job`: the settings these options
    /// describe, then each `-D` in order (see [`crate::properties`]). `default_reducers`
    /// applies when neither `--reducers` nor a `-D` sets them (`None`: one per thread).
    pub fn conf(&self, job: &str, default_reducers: Option<u32>) -> Result<JobConf> {
        let mut conf = JobConf::new(job, self.settings(default_reducers)?);
        if let Some(codec) = self.compress {
            conf.params
                .insert(properties::keys::COMPRESS.to_owned(), "true".to_owned());
            conf.params.insert(
                properties::keys::COMPRESS_CODEC.to_owned(),
                codec.name().to_owned(),
            );
        }
        for define in &self.define {
            let (key, value) = properties::parse_define(define)?;
            properties::apply(&mut conf.settings, &mut conf.params, key, value)?;
        }
        conf.settings.validate()?;
        // Checked here as well as in every process that rebuilds the job, so a bad value is
        // reported before anything is submitted.
        properties::JobProperties::from_params(&conf.params)?;
        Ok(conf)
    }

    /// The settings of the options alone (no `-D`); see [`JobArgs::conf`].
    fn settings(&self, default_reducers: Option<u32>) -> Result<Settings> {
        let mut s = Settings::default();
        if let Some(t) = self.threads {
            s.threads = t;
        }
        s.reducers = self
            .reducers
            .or(default_reducers)
            .unwrap_or(s.threads.min(u32::MAX as usize) as u32);
        if let Some(b) = self.sort_buffer {
            s.sort_buffer_bytes = usize::try_from(b)
                .map_err(|_| Error::BadSetting("sort buffer too large".into()))?;
        }
        if let Some(b) = self.split_size {
            s.split_size_bytes = b;
        }
        if let Some(b) = self.max_record_size {
            s.max_record_bytes = usize::try_from(b)
                .map_err(|_| Error::BadSetting("max record size too large".into()))?;
        }
        s.combiner_enabled = !self.no_combiner;
        s.local_dir.clone_from(&self.local_dir);
        s.sync_output = !self.no_sync;
        s.validate()?;
        Ok(s)
    }
}

/// Options of a job that reads no input and runs no reduce tasks (a generator such as
/// teragen): only the options of [`JobArgs`] that apply to it, so its `--help` lists no
/// combiner, sort buffer or split size.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct GeneratorArgs {
    /// Compress output files [gzip, bzip2, zstd, deflate]
    #[arg(long, value_name = "CODEC", value_parser = parse_codec)]
    pub compress: Option<Codec>,
    /// A job property by its Hadoop name, e.g. -D mapreduce.job.name=gen (repeatable)
    #[arg(short = 'D', value_name = "KEY=VALUE")]
    pub define: Vec<String>,
    /// Worker threads [default: number of cores]
    #[arg(long, short = 't', value_name = "N")]
    pub threads: Option<usize>,
    /// Do not fsync output files before committing (faster, not crash-safe)
    #[arg(long)]
    pub no_sync: bool,
    /// Print neither progress nor counters
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Run on this machine even when a cluster is configured
    #[arg(long)]
    pub local: bool,
}

impl GeneratorArgs {
    /// The same options as [`JobArgs`], with no reduce tasks.
    pub fn job_args(&self) -> JobArgs {
        JobArgs {
            reducers: Some(0),
            threads: self.threads,
            no_sync: self.no_sync,
            quiet: self.quiet,
            local: self.local,
            compress: self.compress,
            define: self.define.clone(),
            ..JobArgs::default()
        }
    }
}

/// Makes a print to a closed stdout (`mrjob list | head`) end the process quietly with
/// status 0, as it does for `dfs`; a job binary calls it first thing in `main`.
pub use dfs::stdout::exit_quietly_when_closed;

/// Parses a size such as `4096`, `64KiB`, `100MiB`: the workspace's one size parser, so
/// `dfs` and every job binary accept the same spellings.
pub use dfs::units::parse_size;

/// Prints the end-of-job summary and counters to stderr.
pub fn print_report(job: &str, report: &JobReport) {
    eprintln!(
        "Job {job} completed successfully in {:.2} s; output in {}",
        report.elapsed.as_secs_f64(),
        report.output.display()
    );
    if let Some(t) = report.first_task_latency {
        eprintln!("First task started {} ms after submission", t.as_millis());
    }
    eprint!("{}", report.counters);
}

/// Prints the summary of a job run as several chained jobs (grep's count, then sort): each
/// step's counters apart, since one step's output records are the next one's input, then
/// the whole run's time and output.
pub fn print_steps(job: &str, steps: &[(&str, &JobReport)]) {
    let n = steps.len();
    for (i, (name, report)) in steps.iter().enumerate() {
        eprintln!(
            "Step {} of {n} ({name}) completed in {:.2} s",
            i + 1,
            report.elapsed.as_secs_f64()
        );
        eprint!("{}", report.counters);
    }
    let total: Duration = steps.iter().map(|(_, r)| r.elapsed).sum();
    if let Some((_, last)) = steps.last() {
        eprintln!(
            "Job {job} completed successfully in {:.2} s ({n} steps); output in {}",
            total.as_secs_f64(),
            last.output.display()
        );
    }
}

/// Prints a one-line error and returns its exit code (see [`Error::exit_code`]).
pub fn fail(err: &Error) -> ExitCode {
    eprintln!("mrjob: error: {err}");
    ExitCode::from(err.exit_code())
}

/// Cluster commands every job binary can offer beside its jobs: the daemons, job control,
/// and a pseudo-distributed cluster on this machine.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum AdminCommand {
    /// Run the jobtracker daemon of the configured cluster.
    Jobtracker,
    /// Run the worker daemon of one host (task slots and shuffle server).
    Worker {
        /// This host's name in the config.
        #[arg(long)]
        host: String,
    },
    /// Run a dfs namenode (as `dfs namenode`; used by `cluster start`).
    #[command(hide = true)]
    Namenode {
        /// Raft id.
        #[arg(long)]
        id: u64,
    },
    /// Run a dfs datanode (as `dfs datanode`; used by `cluster start`).
    #[command(hide = true)]
    Datanode {
        /// Host name.
        #[arg(long)]
        host: String,
    },
    /// Show one job's progress and counters, or every job's state.
    Status {
        /// Job id.
        job: Option<JobId>,
    },
    /// List the jobtracker's jobs.
    List,
    /// Kill a running job (its output directory is removed).
    Kill {
        /// Job id.
        job: JobId,
    },
    /// Explain why a job failed or was slow, in a few lines, from the events the jobtracker
    /// recorded (failed attempts and their errors, lost workers, re-run maps, stragglers,
    /// skewed reduce partitions).
    Why {
        /// Job id.
        job: JobId,
    },
    /// Print the kept stdout and stderr of a job's attempts, from the workers that ran them
    /// (also after the job ended, until the workers prune them).
    Logs {
        /// Job id.
        job: JobId,
        /// Only this task (task_0003_m_000001, or m_000001) or attempt
        /// (attempt_0003_m_000001_0) [default: every attempt]
        task: Option<String>,
    },
    /// Print a URL that logs a browser in to the jobtracker's pages as you (the user of
    /// $MRJOB_USER_KEY, else the cluster admin) and shows a job, or the jobs list: the logs
    /// pages of your jobs need it. Open it within 15 minutes; keep it private.
    Web {
        /// The job whose page to show [default: the jobs list].
        job: Option<JobId>,
        /// Also open it in the desktop's browser (xdg-open).
        #[arg(long)]
        open: bool,
    },
    /// Start, stop or show a whole cluster on this machine.
    #[command(subcommand)]
    Cluster(PseudoClusterCommand),
    /// List the `-D key=value` properties jobs accept (Hadoop names).
    Properties,
}

/// `cluster start|stop|status`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum PseudoClusterCommand {
    /// Start 3 namenodes, N hosts (datanode + worker each) and a jobtracker in the background,
    /// writing DIR/cluster.toml first when it does not exist; waits until healthy.
    Start {
        /// Cluster directory (config, state, logs, pid files).
        #[arg(long)]
        dir: PathBuf,
        /// Number of hosts, when the config is generated.
        #[arg(long, default_value_t = 3)]
        hosts: usize,
        /// Where the daemons listen, when the config is generated.
        #[command(flatten)]
        layout: dfs::config::LocalLayout,
        /// Give up waiting for health after this many seconds.
        #[arg(long, default_value_t = 60)]
        wait_secs: u64,
    },
    /// Stop every daemon started from DIR.
    Stop {
        /// Cluster directory [default: the directory of the --conf or $MRJOB_CONF file].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Show the daemons, namenode roles, datanodes and workers of the cluster in DIR, and how
    /// many daemons are up; exits with 1 when any is down.
    Status {
        /// Cluster directory [default: the directory of the --conf or $MRJOB_CONF file].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Runs an [`AdminCommand`]; `conf` is the `--conf` option.
pub fn run_admin(cmd: AdminCommand, conf: Option<&Path>) -> Result<ExitCode> {
    if !matches!(
        cmd,
        AdminCommand::Jobtracker
            | AdminCommand::Worker { .. }
            | AdminCommand::Namenode { .. }
            | AdminCommand::Datanode { .. }
    ) {
        init_logging();
    }
    match cmd {
        AdminCommand::Jobtracker => {
            init_logging_at("info");
            let config = load_config(conf)?;
            run_daemon(
                daemon_runtime()?,
                crate::jobtracker::Jobtracker::run(config),
            )?;
        }
        AdminCommand::Worker { host } => {
            init_logging_at("info");
            let config = load_config(conf)?;
            run_daemon(daemon_runtime()?, crate::worker::Worker::run(config, host))?;
        }
        AdminCommand::Namenode { id } => {
            init_logging_at("info");
            let config = load_config(conf)?;
            // The namenode's own runtime (see `dfs::namenode::runtime` for why one thread).
            let runtime = dfs::namenode::runtime()
                .map_err(|e| Error::io("starting the runtime".to_owned(), e))?;
            run_daemon(runtime, dfs::namenode::run(config.cluster, id))
                .map_err(|e| dfs_error(format_args!("namenode {id}"), e))?;
        }
        AdminCommand::Datanode { host } => {
            init_logging_at("info");
            let config = load_config(conf)?;
            run_daemon(daemon_runtime()?, dfs::datanode::run(config.cluster, &host))
                .map_err(|e| dfs_error(format_args!("datanode {host}"), e))?;
        }
        AdminCommand::Status { job: Some(id) } => {
            let config = load_config(conf)?;
            let web = config.cluster.jobtracker_web_addr();
            let client = ClusterClient::new(config)?;
            print_job(&client.status(id)?);
            println!("web page: http://{web}/job/{id}");
        }
        AdminCommand::Web { job, open } => web_login(conf, job, open)?,
        AdminCommand::Properties => print!("{}", crate::properties::describe()),
        AdminCommand::Status { .. }
        | AdminCommand::List
        | AdminCommand::Kill { .. }
        | AdminCommand::Why { .. }
        | AdminCommand::Logs { .. } => job_control(cmd, conf)?,
        AdminCommand::Cluster(PseudoClusterCommand::Start {
            dir,
            hosts,
            layout,
            wait_secs,
        }) => {
            pseudo_cluster::start(&dir, hosts, &layout, Duration::from_secs(wait_secs))?;
        }
        AdminCommand::Cluster(PseudoClusterCommand::Stop { dir }) => {
            pseudo_cluster::stop(&cluster_dir(dir, conf)?)?
        }
        AdminCommand::Cluster(PseudoClusterCommand::Status { dir }) => {
            if !pseudo_cluster::status(&cluster_dir(dir, conf)?)? {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The commands about jobs: status, list, kill, why, logs.
fn job_control(cmd: AdminCommand, conf: Option<&Path>) -> Result<()> {
    let client = ClusterClient::new(load_config(conf)?)?;
    match cmd {
        AdminCommand::Status { job: Some(id) } => {
            print_job(&client.status(id)?);
        }
        AdminCommand::Status { job: None } | AdminCommand::List => {
            print_jobs(&client.list()?);
        }
        AdminCommand::Kill { job } => {
            client.kill(job)?;
            let info = client.wait(job, false)?;
            match info.phase {
                JobPhase::Killed => eprintln!("job {job} killed; its output directory was removed"),
                JobPhase::Failed(reason) => {
                    eprintln!("job {job} had failed before the kill: {reason}")
                }
                JobPhase::Succeeded => eprintln!("job {job} had already succeeded"),
                JobPhase::Running => eprintln!("job {job} is still running"),
            }
        }
        AdminCommand::Why { job } => {
            for line in crate::job_inspect::why(&client, job)? {
                println!("{line}");
            }
        }
        AdminCommand::Logs { job, task } => {
            let mut out = std::io::stdout().lock();
            crate::job_inspect::print_logs(&client, job, task.as_deref(), &mut out)?;
        }
        _ => unreachable!("not a job control command"),
    }
    Ok(())
}

/// `mrjob web`: prints the login URL of the jobtracker's pages (no RPC: the token is signed
/// with this user's key, which any member can check), and opens it if asked.
fn web_login(conf: Option<&Path>, job: Option<JobId>, open: bool) -> Result<()> {
    let config = load_config(conf)?;
    let cluster = &config.cluster;
    let credentials = cluster.secrets.credentials()?;
    let next = job.map_or_else(|| "/".to_owned(), |j| format!("/job/{j}"));
    let url = dfs::http::session::login_url(&cluster.jobtracker_web_addr(), credentials, &next)?;
    dfs::http::session::hand_out("mrjob", &url, open);
    Ok(())
}

/// The directory of the cluster a `cluster stop|status` is about (see
/// [`dfs::local_cluster::cluster_dir`]).
fn cluster_dir(dir: Option<PathBuf>, conf: Option<&Path>) -> Result<PathBuf> {
    dfs::local_cluster::cluster_dir(dir, conf).map_err(|e| dfs_error("finding the cluster", e))
}

fn daemon_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the runtime".to_owned(), e))
}

/// The cluster config named by `--conf` or `MRJOB_CONF`.
pub fn load_config(conf: Option<&Path>) -> Result<Config> {
    Config::discover(conf)?.ok_or_else(|| {
        Error::BadSetting(format!(
            "no cluster configured: pass --conf FILE or set {CONF_ENV}"
        ))
    })
}

fn phase_text(p: &JobPhase) -> String {
    match p {
        JobPhase::Failed(r) => format!("FAILED: {r}"),
        other => other.name().into(),
    }
}

fn print_job(info: &JobInfo) {
    let (pct, line) = progress_line(info);
    println!("{line}");
    println!(
        "  state {}, {pct}% done, {:.2} s, output dfs://{}, submitted by {}",
        phase_text(&info.phase),
        info.elapsed_ms as f64 / 1000.0,
        info.output,
        info.user
    );
    // The same times, from the same source (the jobtracker's record), as the submitting
    // client prints at the job's end.
    if let Some(t) = info.first_started_unix_ms {
        println!(
            "  first task started {} ms after submission",
            t.saturating_sub(info.submitted_unix_ms)
        );
    }
    if info.runs > 1 {
        println!(
            "  run {} of the job: the jobtracker restarted while it ran and resumed it from scratch",
            info.runs
        );
    }
    print!("{}", info.counters);
}

fn print_jobs(jobs: &[JobInfo]) {
    println!(
        "{:>5}  {:<14} {:<10} {:<10} {:>8}  OUTPUT",
        "JOB", "NAME", "USER", "STATE", "SECONDS"
    );
    for j in jobs {
        println!(
            "{:>5}  {:<14} {:<10} {:<10} {:>8.1}  dfs://{}",
            j.id,
            j.name,
            j.user,
            j.phase.name(),
            j.elapsed_ms as f64 / 1000.0,
            j.output
        );
    }
}
