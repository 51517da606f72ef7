//! `mrjob`: runs the example jobs. With local paths (and no cluster configured) a job runs at
//! once on this machine, on all cores.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use examples::{grep, invertedindex, terasort, wordcount};
use mapreduce::cli::{fail, init_logging, print_report, JobArgs};
use mapreduce::{run_local, JobReport, Result, RunOptions};

/// Run MapReduce jobs: wordcount, grep, teragen, terasort, teravalidate, invertedindex.
#[derive(Parser, Debug)]
#[command(name = "mrjob", version, about, long_about = None)]
struct Cli {
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
        args: JobArgs,
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
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    remove_output_on_interrupt(&cli.command);
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

/// On Ctrl-C or SIGTERM, removes the output directory this run created (it is always new:
/// jobs refuse an existing one), so an interrupted job leaves nothing half-written visible.
fn remove_output_on_interrupt(command: &Command) {
    let output = match command {
        Command::Wordcount { output, .. }
        | Command::Grep { output, .. }
        | Command::Teragen { output, .. }
        | Command::Terasort { output, .. }
        | Command::Teravalidate { output, .. }
        | Command::Invertedindex { output, .. } => output.clone(),
    };
    // Only a directory that does not exist yet is ours to remove later.
    let ours = std::fs::symlink_metadata(&output).is_err();
    let handler = move || {
        if ours {
            let _ = std::fs::remove_dir_all(&output);
        }
        eprintln!("mrjob: interrupted; removed {}", output.display());
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

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Wordcount {
            input,
            output,
            args,
        } => {
            let job = wordcount::job(args.settings(None)?);
            let report = run_local(&job, &[input], &output, &options(&args))?;
            finish("wordcount", &args, &report);
        }
        Command::Grep {
            input,
            output,
            regex,
            args,
        } => {
            let regex = grep::compile(&regex)?;
            let report = grep::run(
                regex,
                &[input],
                &output,
                args.settings(None)?,
                &options(&args),
            )?;
            finish("grep", &args, &report);
        }
        Command::Teragen {
            rows,
            output,
            maps,
            args,
        } => {
            let settings = args.settings(Some(0))?;
            let by_size = rows.div_ceil(1_000_000).min(u64::from(u32::MAX)) as u32;
            let maps = maps.unwrap_or_else(|| by_size.max(settings.threads as u32));
            let job = terasort::teragen_job(rows, maps, settings);
            let report = run_local(&job, &[], &output, &options(&args))?;
            finish("teragen", &args, &report);
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
            let inputs = [input];
            let job = terasort::terasort_job(&inputs, args.settings(None)?)?;
            let report = run_local(&job, &inputs, &output, &options(&args))?;
            finish("terasort", &args, &report);
        }
        Command::Teravalidate {
            input,
            output,
            args,
        } => {
            let job = terasort::teravalidate_job(args.settings(Some(1))?);
            let report = run_local(&job, &[input], &output, &options(&args))?;
            finish("teravalidate", &args, &report);
            return validate_verdict(&output);
        }
        Command::Invertedindex {
            input,
            output,
            args,
        } => {
            let job = invertedindex::job(args.settings(None)?);
            let report = run_local(&job, &[input], &output, &options(&args))?;
            finish("invertedindex", &args, &report);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints teravalidate's verdict from its report file; failure if it found any error.
fn validate_verdict(output: &Path) -> Result<ExitCode> {
    let path = output.join("part-r-00000");
    let text = std::fs::read_to_string(&path)
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
