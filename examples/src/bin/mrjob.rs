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
    exit_quietly_when_closed, fail, print_report, print_steps, run_admin, AdminCommand,
    GeneratorArgs, JobArgs,
};
use mapreduce::compression::Codec;
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
        /// Input files, directories or patterns (`logs/2026-*/*.gz`); .gz, .bz2, .zst
        /// files are decompressed
        #[arg(required = true, num_args = 1..)]
        inputs: Vec<PathBuf>,
        /// Output directory (must not exist)
        output: PathBuf,
        #[command(flatten)]
        args: JobArgs,
    },
    /// Count the matches of a regular expression, sorted by count, descending.
    /// Output: `count<TAB>match` lines in one part file.
    Grep {
        /// Input file, directory or pattern; several as a comma-separated list, as Hadoop's
        /// grep takes them (commas inside `{a,b}` stay in the pattern)
        input: String,
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
        /// Number of map tasks (output files), also `-D mapreduce.job.maps=N` [default: one
        /// per million rows, at least one per thread]
        #[arg(long, value_name = "N")]
        maps: Option<u32>,
        #[command(flatten)]
        args: GeneratorArgs,
    },
    /// Sort 100-byte records by their 10-byte keys; the part files concatenated are globally sorted.
    Terasort {
        /// Input files, directories or patterns of 100-byte records
        #[arg(required = true, num_args = 1..)]
        inputs: Vec<PathBuf>,
        /// Output directory (must not exist)
        output: PathBuf,
        #[command(flatten)]
        args: JobArgs,
    },
    /// Check that terasort output is globally sorted; exits non-zero if it is not.
    /// Output: `records`, `checksum` and any `error` lines.
    Teravalidate {
        /// Terasort output directory (part files are read in name order)
        #[arg(required = true, num_args = 1..)]
        inputs: Vec<PathBuf>,
        /// Output directory for the report (must not exist)
        output: PathBuf,
        #[command(flatten)]
        args: JobArgs,
    },
    /// Build an inverted index: each word and the sorted list of files it occurs in.
    /// Output: `word<TAB>file1,file2,...` lines.
    Invertedindex {
        /// Input directories, files or patterns (file names are given relative to each
        /// directory, or to a pattern's directory part)
        #[arg(required = true, num_args = 1..)]
        inputs: Vec<PathBuf>,
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
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let engine = Engine::choose(conf, local, &refs)?;
    let output = paths.last().cloned().unwrap_or_default();
    clean_up_on_interrupt(&engine, output);
    run(registry, &engine, command)
}

/// A job command's path arguments (inputs, then the output) and its `--local` flag.
fn paths_and_args(command: &Command) -> (Vec<PathBuf>, bool) {
    match command {
        Command::Wordcount {
            inputs,
            output,
            args,
        }
        | Command::Terasort {
            inputs,
            output,
            args,
        }
        | Command::Teravalidate {
            inputs,
            output,
            args,
        }
        | Command::Invertedindex {
            inputs,
            output,
            args,
        } => {
            let mut paths = inputs.clone();
            paths.push(output.clone());
            (paths, args.local)
        }
        Command::Grep {
            input,
            output,
            args,
            ..
        } => {
            let mut paths = split_input_list(input);
            paths.push(output.clone());
            (paths, args.local)
        }
        Command::Teragen { output, args, .. } => (vec![output.clone()], args.local),
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

/// Hadoop's comma-separated input list: commas inside `{...}` belong to the pattern.
fn split_input_list(list: &str) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in list.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                paths.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    paths.push(&list[start..]);
    paths
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect()
}

fn finish(name: &str, args: &JobArgs, report: &JobReport) {
    if !args.quiet {
        print_report(name, report);
    }
}

fn run(registry: &Registry, engine: &Engine, command: Command) -> Result<ExitCode> {
    let run_one = |conf: JobConf, inputs: &[PathBuf], output: &Path, args: &JobArgs| {
        let report = engine.run(registry, &conf, inputs, output, &options(args))?;
        finish(conf.display_name(), args, &report);
        Ok::<JobReport, mapreduce::Error>(report)
    };
    match command {
        Command::Wordcount {
            inputs,
            output,
            args,
        } => {
            run_one(args.conf(WORDCOUNT_JOB, None)?, &inputs, &output, &args)?;
        }
        Command::Grep {
            input,
            output,
            regex,
            args,
        } => {
            let base = args.conf(grep::COUNT_JOB, None)?;
            let name = base.display_name().replace(grep::COUNT_JOB, "grep");
            let inputs = split_input_list(&input);
            let report = grep::run(engine, &regex, &inputs, &output, base, &options(&args))?;
            if !args.quiet {
                print_steps(&name, &report.steps());
            }
        }
        Command::Teragen {
            rows,
            output,
            maps,
            args,
        } => {
            let args = args.job_args();
            let conf = args.conf(terasort::TERAGEN_JOB, Some(0))?;
            let by_size = rows.div_ceil(1_000_000).min(u64::from(u32::MAX)) as u32;
            // As Hadoop's teragen: `-D mapreduce.job.maps=N` sets the number of maps too.
            let hint = mapreduce::properties::JobProperties::from_params(&conf.params)?.maps_hint;
            let maps = maps
                .or(hint)
                .unwrap_or_else(|| by_size.max(conf.settings.threads as u32));
            let conf = conf
                .with("rows", rows.to_string())
                .with("maps", maps.to_string());
            let report = run_one(conf, &[], &output, &args)?;
            println!(
                "teragen: {rows} records, checksum {:x}",
                report.counters.get(terasort::COUNTER_GROUP, "checksum")
            );
        }
        Command::Terasort {
            inputs,
            output,
            args,
        } => {
            let (conf, inputs) = terasort_conf(engine, &inputs, &args)?;
            run_one(conf, &inputs, &output, &args)?;
        }
        Command::Teravalidate {
            inputs,
            output,
            args,
        } => {
            let conf = args.conf(terasort::TERAVALIDATE_JOB, Some(1))?;
            run_one(conf, &inputs, &output, &args)?;
            return validate_verdict(engine, &output);
        }
        Command::Streaming { .. } => unreachable!("streaming is run by run_cli"),
        Command::Invertedindex {
            inputs,
            output,
            args,
        } => {
            run_one(args.conf(INVERTEDINDEX_JOB, None)?, &inputs, &output, &args)?;
        }
        Command::Admin(_) | Command::Hadoop { .. } => unreachable!("not a job"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The terasort job over `inputs` (resolved for the engine), sampled for its cut points.
fn terasort_conf(
    engine: &Engine,
    inputs: &[PathBuf],
    args: &JobArgs,
) -> Result<(JobConf, Vec<PathBuf>)> {
    // Before sampling, so a missing input gets the message that says where it was sought.
    engine.check_inputs(inputs)?;
    let inputs: Vec<PathBuf> = inputs
        .iter()
        .map(|i| engine.path(i))
        .collect::<Result<_>>()?;
    let base = args.conf(terasort::TERASORT_JOB, None)?;
    Ok((terasort::plan(engine.fs(), &inputs, base)?, inputs))
}

/// Prints teravalidate's verdict from its report file; failure if it found any error.
fn validate_verdict(engine: &Engine, output: &Path) -> Result<ExitCode> {
    let dir = engine.path(output)?;
    // The report is compressed when the user asked for compressed output.
    let path = engine
        .fs()
        .list_dir(&dir)?
        .into_iter()
        .find(|p| p.file_stem().is_some_and(|s| s == "part-r-00000"))
        .unwrap_or_else(|| dir.join("part-r-00000"));
    let file = engine.fs().open(&path)?;
    let mut reader: Box<dyn Read + Send> = match Codec::of_path(&path) {
        Some(codec) => codec.decoder(file),
        None => Box::new(file),
    };
    let mut text = String::new();
    reader
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
