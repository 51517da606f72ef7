//! `wordlen`: a user's own job binary, outside `mrjob`, built only on the `mapreduce` library.
//! It counts the words of each length (`length<TAB>count`, lengths zero-padded so the output
//! sorts numerically).
//!
//! Like every job binary, its `main` first calls the library's task entry point: on a cluster,
//! `wordlen wordlen dfs:///in dfs:///out` stages this binary in dfs and the workers run it,
//! cached by content hash, so the cluster never needs rebuilding for a new job.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mapreduce::cli::{fail, print_report, JobArgs};
use mapreduce::codec::{parse_u64_value, u64_value};
use mapreduce::logging::init_logging;
use mapreduce::{
    Engine, Job, JobConf, MapEmitter, Mapper, Record, ReduceEmitter, Reducer, Registry, Result,
    RunOptions, ValueSource,
};

/// Count the words of each length in the input.
#[derive(Parser, Debug)]
#[command(name = "wordlen", version, about)]
struct Cli {
    /// Cluster config file (default: $MRJOB_CONF). With one, the job runs on the cluster.
    #[arg(long, value_name = "FILE")]
    conf: Option<PathBuf>,
    /// Input file or directory.
    input: PathBuf,
    /// Output directory (must not exist).
    output: PathBuf,
    #[command(flatten)]
    args: JobArgs,
}

/// Emits `(length, 1)` for every word separated by ASCII whitespace.
#[derive(Clone, Copy, Default)]
struct LengthMapper;

impl Mapper for LengthMapper {
    fn map(&mut self, record: Record<'_>, out: &mut dyn MapEmitter) -> Result<()> {
        let one = u64_value(1);
        for word in record.value.split(u8::is_ascii_whitespace) {
            if !word.is_empty() {
                out.emit(format!("{:06}", word.len()).as_bytes(), &one);
            }
        }
        Ok(())
    }
}

/// Sums the counts of one length.
#[derive(Clone, Copy, Default)]
struct CountReducer;

impl Reducer for CountReducer {
    fn reduce(
        &mut self,
        key: &[u8],
        values: &mut dyn ValueSource,
        out: &mut dyn ReduceEmitter,
    ) -> Result<()> {
        let mut total = 0u64;
        while let Some(v) = values.next_value() {
            total += parse_u64_value(v).unwrap_or(0);
        }
        out.emit(key, total.to_string().as_bytes());
        Ok(())
    }
}

fn build(conf: &JobConf) -> Result<Job> {
    Ok(Job::new("wordlen", LengthMapper)
        .reducer(CountReducer)
        .settings(conf.settings.clone()))
}

fn main() -> ExitCode {
    let registry = Registry::new().register("wordlen", build);
    // A worker started this binary to run one task attempt of a job it submitted.
    if let Some(code) = mapreduce::task_process::run_if_requested(&registry) {
        return code;
    }
    init_logging();
    let cli = Cli::parse();
    let run = || {
        let engine = Engine::choose(
            cli.conf.as_deref(),
            cli.args.local,
            &[&cli.input, &cli.output],
        )?;
        let conf = cli.args.conf("wordlen", None)?;
        let opts = RunOptions {
            progress: !cli.args.quiet,
        };
        engine.run(
            &registry,
            &conf,
            std::slice::from_ref(&cli.input),
            &cli.output,
            &opts,
        )
    };
    match run() {
        Ok(report) => {
            if !cli.args.quiet {
                print_report("wordlen", &report);
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}
