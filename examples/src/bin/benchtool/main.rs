//! Benchmark helpers: seeded corpus generators and the baselines that `bench/engine.py` and
//! `bench/compare` measure `mrjob` against in the same run.
//!
//! # Layout
//!
//! - [`corpus`]: `benchtool gen-text zipf|highcard SIZE OUT --seed N`, text corpora.
//! - [`naive`]: `benchtool wordcount IN OUT`, the naive single-threaded word count.
//! - [`tuned`]: `benchtool wordcount-tuned IN OUT [--threads N]`, the tuned word count (the
//!   reference row), on one thread or on byte ranges across N; its hash table is [`table`],
//!   its tokenizer `examples::tokenize` (shared with mrjob's wordcount).
//! - `benchtool sort IN OUT`: reads 100-byte records and sorts them in memory in one thread.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mapreduce::cli::parse_size;

mod corpus;
mod naive;
mod table;
mod tuned;

#[derive(Parser, Debug)]
#[command(
    name = "benchtool",
    about = "Corpus generators and single-threaded baselines for benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a seeded text corpus of SIZE bytes into OUT (a directory of 64 MiB files).
    GenText {
        kind: corpus::Kind,
        #[arg(value_parser = parse_size)]
        size: u64,
        out: PathBuf,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Naive single-threaded word count (HashMap<Vec<u8>, u64>, unsorted output) of every
    /// file under IN into the file OUT.
    Wordcount { input: PathBuf, output: PathBuf },
    /// Tuned word count of every file under IN into the file OUT, lines sorted bytewise (as
    /// `LC_ALL=C sort` of mrjob wordcount's part files).
    WordcountTuned {
        input: PathBuf,
        output: PathBuf,
        /// Threads, each counting its own byte ranges; tables merged at the end.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
        threads: u32,
        /// Print the input bytes and the distinct-token count on stderr.
        #[arg(long)]
        stats: bool,
    },
    /// Single-threaded in-memory sort of 100-byte records under IN into the file OUT.
    Sort { input: PathBuf, output: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::GenText {
            kind,
            size,
            out,
            seed,
        } => corpus::gen_text(kind, size, &out, seed),
        Command::Wordcount { input, output } => naive::wordcount(&input, &output),
        Command::WordcountTuned {
            input,
            output,
            threads,
            stats,
        } => tuned::wordcount(&input, &output, &tuned::Options::new(threads as usize)).map(|s| {
            if stats {
                eprintln!("{} bytes, {} distinct tokens", s.input_bytes, s.distinct);
            }
        }),
        Command::Sort { input, output } => sort(&input, &output),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("benchtool: error: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// The files under `input` as the baselines read them: `input` itself if it is a file, else
/// its files (not recursive) in name order, names starting with `_` or `.` skipped.
fn files_under(input: &Path) -> std::io::Result<Vec<PathBuf>> {
    if input.is_file() {
        return Ok(vec![input.to_owned()]);
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(input)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    v.retain(|p| {
        let n = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        p.is_file() && !n.starts_with('_') && !n.starts_with('.')
    });
    v.sort();
    Ok(v)
}

fn sort(input: &Path, output: &Path) -> Res {
    let mut data = Vec::new();
    for path in files_under(input)? {
        File::open(&path)?.read_to_end(&mut data)?;
    }
    let mut recs: Vec<&[u8]> = data.chunks_exact(100).collect();
    recs.sort_unstable_by(|a, b| a[..10].cmp(&b[..10]));
    let file = File::create(output)?;
    let mut w = BufWriter::with_capacity(1 << 20, &file);
    for r in recs {
        w.write_all(r)?;
    }
    w.flush()?;
    drop(w);
    file.sync_all()?;
    Ok(())
}
