//! `mrjob`: runs the example jobs. With local paths (and no cluster configured) a job runs at
//! once on this machine, on all cores; with a cluster configured (`--conf` or `MRJOB_CONF`) or
//! `dfs://` paths, the same command runs on the cluster. It also runs the cluster's daemons and
//! the task processes workers start (see `mapreduce::task_process`). `mrjob hadoop ...`, or
//! this binary run under the name `hadoop`, is the Hadoop command Yelp's mrjob drives (see
//! `mapreduce::hadoop`).

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use examples::{grep, terasort, INVERTEDINDEX_JOB, WORDCOUNT_JOB};
use mapreduce::cli::{
    exit_quietly_when_closed, fail, print_report, run_admin, AdminCommand, GeneratorArgs, JobArgs,
};
use mapreduce::logging::init_logging;
use mapreduce::streaming::{self, args::Parsed};
use mapreduce::{Engine, JobConf, JobReport, Registry, Result, RunOptions};

/// Run MapReduce jobs: wordcount, grep, teragen, terasort, teravalidate, invertedindex; locally
/// or on a cluster (which `mrjob cluster start` can start on this machine).
#[derive(Parser, Debug)]
#[command(
    name = "mrjob",
    version,
    about,
    long_about = None,
    after_help = "Exit status: 0 done; 1 an error or a failed job; 3 a submitted job's outcome \
                  is unknown (the jobtracker stayed unreachable longer than the submitter \
                  waits; the job may still be running: follow it with `mrjob status ID`); \
                  130 interrupted."
)]
struct Cli {
    /// Cluster config file (default: $MRJOB_CONF). With one, jobs run on the cluster.
    #[arg(long, global = true, value_name = "FILE")]
    conf: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Count the words of the input (split on space, tab, newline, carriage return, form feed).
    /// Output: `word<TAB>count` lines in part-r-NNNNN files.
    Wordcount {
        /// Input file or directory
        input: PathBuf,
        /// Output directory (must not exist)
        output: PathBuf,
        #[command(flatten)]
        args: JobArgs,
    },
    /// Count the matches of a regular expression, sorted by count, descending.
    /// Output: `count<TAB>match` lines in one part file.
    Grep {
        /// Input file or directory
        input: PathBuf,
        /// Output directory (must not exist)
        output: PathBuf,
        /// Regular expression (Rust regex syntax), matched against each line
        regex: String,
        #[command(flatten)]
        args: JobArgs,
    },
    /// Generate ROWS 100-byte Sort Benchmark records (10-byte random keys) for terasort.
    Teragen {
        /// Number of 100-byte records
        rows: u64,
        /// Output directory (must not exist)
        output: PathBuf,
        /// Number of map tasks (output files) [default: one per million rows, at least one per thread]
        #[arg(long, value_name = "N")]
        maps: Option<u32>,
        #[command(flatten)]
        args: GeneratorArgs,
    },
    /// Sort 100-byte records by their 10-byte keys; the part files concatenated are globally sorted.
    Terasort {
        /// Input file or directory of 100-byte records
        input: PathBuf,
        /// Output directory (must not exist)
        output: PathBuf,
        #[command(flatten)]
        args: JobArgs,
    },
    /// Check that terasort output is globally sorted; exits non-zero if it is not.
    /// Output: `records`, `checksum` and any `error` lines.
    Teravalidate {
        /// Terasort output directory (part files are read in name order)
        input: PathBuf,
        /// Output directory for the report (must not exist)
        output: PathBuf,
        #[command(flatten)]
        args: JobArgs,
    },
    /// Build an inverted index: each word and the sorted list of files it occurs in.
    /// Output: `word<TAB>file1,file2,...` lines.
    Invertedindex {
        /// Input directory (file names are given relative to it)
        input: PathBuf,
        /// Output directory (must not exist)
        output: PathBuf,
        #[command(flatten)]
        args: JobArgs,
    },
    /// Run any executables as mapper, combiner and reducer, as Hadoop Streaming does:
    /// `mrjob streaming -input IN -output OUT -mapper CMD [-reducer CMD|NONE] [-combiner CMD]
    /// [-files a.py,b#alias] [-cmdenv K=V] [-D key=value] [-numReduceTasks N] [--local] [-q]`
    /// (`mrjob streaming -help` lists every option).
    #[command(disable_help_flag = true)]
    Streaming {
        /// Hadoop Streaming options (single dash, as in Hadoop; double dash works too)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<std::ffi::OsString>,
    },
    /// Hadoop's command line on this cluster, for tools that drive Hadoop (Yelp's mrjob:
    /// `-r hadoop --hadoop-bin 'mrjob hadoop'`): `version`, `fs -ls|-cat|-put|... ARGS`,
    /// `jar ANY.jar STREAMING-ARGS`. Also what this binary does when run as `hadoop`.
    #[command(disable_help_flag = true)]
    Hadoop {
        /// Hadoop's arguments, passed through unchanged.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<OsString>,
    },
    #[command(flatten)]
    Admin(AdminCommand),
}

/// Run as `hadoop` (a link named so, as tools find Hadoop on `PATH`): Hadoop's arguments
/// only, the cluster from `MRJOB_CONF`.
fn run_as_hadoop() -> Option<ExitCode> {
    let mut args = std::env::args_os();
    let argv0 = PathBuf::from(args.next()?);
    if argv0.file_name()? != "hadoop" {
        return None;
    }
    init_logging();
    let rest: Vec<OsString> = args.collect();
    Some(mapreduce::hadoop::run(None, &rest))
}

fn main() -> ExitCode {
    let registry = examples::registry();
    // A worker started this process to run one task attempt.
    if let Some(code) = mapreduce::task_process::run_if_requested(&registry) {
        return code;
    }
    // `mrjob list | head`: a closed stdout ends the command quietly (see dfs::stdout).
    exit_quietly_when_closed();
    if let Some(code) = run_as_hadoop() {
        return code;
    }
    let cli = Cli::parse();
    let result = match cli.command {
        // Daemons log at info level: run_admin sets that up.
        Command::Admin(cmd) => run_admin(cmd, cli.conf.as_deref()),
        Command::Streaming { args } => {
            init_logging();
            // Read the output directory first, so an interrupt cleans up as for other jobs.
            if let Ok(Parsed::Run(a)) = streaming::args::parse(&args) {
                if let Ok(engine) = Engine::choose(cli.conf.as_deref(), a.local, &[]) {
                    clean_up_on_interrupt(&engine, a.output.clone());
                }
            }
            streaming::run_cli(cli.conf.as_deref(), &args, &print_report)
        }
        Command::Hadoop { args } => {
            init_logging();
            return mapreduce::hadoop::run(cli.conf.as_deref(), &args);
        }
        job => {
            init_logging();
            run_job(&registry, cli.conf.as_deref(), job)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

fn run_job(registry: &Registry, conf: Option<&Path>, command: Command) -> Result<ExitCode> {
    let (paths, local) = paths_and_args(&command);
    let engine = Engine::choose(conf, local, &paths)?;
    let output = paths.last().map(|p| p.to_path_buf()).unwrap_or_default();
    clean_up_on_interrupt(&engine, output);
    run(registry, &engine, command)
}

/// A job command's path arguments (inputs, then the output) and its `--local` flag.
fn paths_and_args(command: &Command) -> (Vec<&Path>, bool) {
    match command {
        Command::Wordcount {
            input,
            output,
            args,
        }
        | Command::Grep {
            input,
            output,
            args,
            ..
        }
        | Command::Terasort {
            input,
            output,
            args,
        }
        | Command::Teravalidate {
            input,
            output,
            args,
        }
        | Command::Invertedindex {
            input,
            output,
            args,
        } => (vec![input.as_path(), output.as_path()], args.local),
        Command::Teragen { output, args, .. } => (vec![output.as_path()], args.local),
        Command::Admin(_) | Command::Streaming { .. } | Command::Hadoop { .. } => {
            unreachable!("admin, streaming and hadoop commands are not run here")
        }
    }
}

/// On Ctrl-C or SIGTERM: a local run removes the output directory it created (it is always
/// new: jobs refuse an existing one); a cluster run kills its job, whose output the
/// jobtracker removes. Either way an interrupted job leaves nothing half-written visible.
fn clean_up_on_interrupt(engine: &Engine, output: PathBuf) {
    // Only a directory that does not exist yet is ours to remove later.
    let ours = !engine.is_cluster() && std::fs::symlink_metadata(&output).is_err();
    let handler = move || {
        if let Some(job) = mapreduce::submit::kill_submitted_job() {
            eprintln!("mrjob: interrupted; killed job {job}");
        } else if ours {
            let _ = std::fs::remove_dir_all(&output);
            eprintln!("mrjob: interrupted; removed {}", output.display());
        } else {
            eprintln!("mrjob: interrupted");
        }
        std::process::exit(130);
    };
    if let Err(e) = ctrlc::set_handler(handler) {
        tracing::warn!("cannot install the interrupt handler: {e}");
    }
}

fn options(args: &JobArgs) -> RunOptions {
    RunOptions {
        progress: !args.quiet,
    }
}

fn finish(name: &str, args: &JobArgs, report: &JobReport) {
    if !args.quiet {
        print_report(name, report);
    }
}

fn run(registry: &Registry, engine: &Engine, command: Command) -> Result<ExitCode> {
    let run_one = |name: &str, conf: JobConf, inputs: &[PathBuf], output: &Path, args: &JobArgs| {
        let report = engine.run(registry, &conf, inputs, output, &options(args))?;
        finish(name, args, &report);
        Ok::<JobReport, mapreduce::Error>(report)
    };
    match command {
        Command::Wordcount {
            input,
            output,
            args,
        } => {
            let conf = JobConf::new(WORDCOUNT_JOB, args.settings(None)?);
            run_one("wordcount", conf, &[input], &output, &args)?;
        }
        Command::Grep {
            input,
            output,
            regex,
            args,
        } => {
            let settings = args.settings(None)?;
            let report = grep::run(engine, &regex, &[input], &output, settings, &options(&args))?;
            finish("grep", &args, &report);
        }
        Command::Teragen {
            rows,
            output,
            maps,
            args,
        } => {
            let args = args.job_args();
            let settings = args.settings(Some(0))?;
            let by_size = rows.div_ceil(1_000_000).min(u64::from(u32::MAX)) as u32;
            let maps = maps.unwrap_or_else(|| by_size.max(settings.threads as u32));
            let conf = JobConf::new(terasort::TERAGEN_JOB, settings)
                .with("rows", rows.to_string())
                .with("maps", maps.to_string());
            let report = run_one("teragen", conf, &[], &output, &args)?;
            println!(
                "teragen: {rows} records, checksum {:x}",
                report.counters.get(terasort::COUNTER_GROUP, "checksum")
            );
        }
        Command::Terasort {
            input,
            output,
            args,
        } => {
            // Before sampling, so a missing input gets the message that says where it was sought.
            engine.check_inputs(std::slice::from_ref(&input))?;
            let inputs = [engine.path(&input)?];
            let conf = terasort::plan(engine.fs(), &inputs, args.settings(None)?)?;
            run_one("terasort", conf, &inputs, &output, &args)?;
        }
        Command::Teravalidate {
            input,
            output,
            args,
        } => {
            let conf = JobConf::new(terasort::TERAVALIDATE_JOB, args.settings(Some(1))?);
            run_one("teravalidate", conf, &[input], &output, &args)?;
            return validate_verdict(engine, &output);
        }
        Command::Streaming { .. } => unreachable!("streaming is run by run_cli"),
        Command::Invertedindex {
            input,
            output,
            args,
        } => {
            let conf = JobConf::new(INVERTEDINDEX_JOB, args.settings(None)?);
            run_one("invertedindex", conf, &[input], &output, &args)?;
        }
        Command::Admin(_) | Command::Hadoop { .. } => unreachable!("not a job"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints teravalidate's verdict from its report file; failure if it found any error.
fn validate_verdict(engine: &Engine, output: &Path) -> Result<ExitCode> {
    let path = engine.path(output)?.join("part-r-00000");
    let mut text = String::new();
    engine
        .fs()
        .open(&path)?
        .read_to_string(&mut text)
        .map_err(|e| mapreduce::Error::io(format!("reading {}", path.display()), e))?;
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error\t")).collect();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('\t')))
            .unwrap_or("?")
            .to_owned()
    };
    if errors.is_empty() {
        println!(
            "teravalidate: OK: {} records in order, checksum {}",
            field("records"),
            field("checksum")
        );
        return Ok(ExitCode::SUCCESS);
    }
    for e in &errors {
        eprintln!("teravalidate: {}", &e["error\t".len()..]);
    }
    eprintln!(
        "mrjob: error: teravalidate found {} ordering error(s); report in {}",
        errors.len(),
        path.display()
    );
    Ok(ExitCode::FAILURE)
}
