//! Benchmark helpers: seeded corpus generators and the single-threaded baselines that
//! `bench/engine.py` measures `mrjob` against in the same run.
//!
//! - `benchtool gen-text zipf|highcard SIZE OUT --seed N`: text corpora.
//! - `benchtool wordcount IN OUT`: a well-written single-threaded word count (large reads,
//!   hashbrown with borrowed-key lookups, one allocation per distinct word).
//! - `benchtool sort IN OUT`: reads 100-byte records and sorts them in memory in one thread.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use examples::tokenize::is_delimiter;
use mapreduce::cli::parse_size;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Parser, Debug)]
#[command(
    name = "benchtool",
    about = "Corpus generators and single-threaded baselines for benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    /// Natural-language-like: Zipf over 30,000 words.
    Zipf,
    /// High cardinality, like source code or logs: ≥ 500k distinct tokens per 64 MiB.
    Highcard,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a seeded text corpus of SIZE bytes into OUT (a directory of 64 MiB files).
    GenText {
        kind: Kind,
        #[arg(value_parser = parse_size)]
        size: u64,
        out: PathBuf,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Single-threaded word count of every file under IN into the file OUT.
    Wordcount { input: PathBuf, output: PathBuf },
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
        } => gen_text(kind, size, &out, seed),
        Command::Wordcount { input, output } => wordcount(&input, &output),
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

type Res = Result<(), Box<dyn std::error::Error>>;

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

fn random_word(rng: &mut StdRng, len: usize) -> Vec<u8> {
    (0..len).map(|_| b'a' + rng.gen_range(0..26u8)).collect()
}

fn gen_text(kind: Kind, size: u64, out: &Path, seed: u64) -> Res {
    std::fs::create_dir_all(out)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let words: Vec<Vec<u8>> = (0..30_000)
        .map(|_| {
            let len = rng.gen_range(2..11);
            random_word(&mut rng, len)
        })
        .collect();
    // Zipf(s = 1) cumulative weights for inverse-CDF sampling.
    let mut cdf = Vec::with_capacity(words.len());
    let mut total = 0.0;
    for i in 0..words.len() {
        total += 1.0 / (i as f64 + 1.0);
        cdf.push(total);
    }
    const FILE_BYTES: u64 = 64 << 20;
    let mut written = 0u64;
    let mut file_no = 0;
    while written < size {
        let target = FILE_BYTES.min(size - written);
        let path = out.join(format!("text-{file_no:05}.txt"));
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        let mut n = 0u64;
        let mut line = Vec::with_capacity(256);
        while n < target {
            line.clear();
            let words_in_line = rng.gen_range(4..16);
            for j in 0..words_in_line {
                if j > 0 {
                    line.push(b' ');
                }
                if matches!(kind, Kind::Highcard) && rng.gen_bool(0.5) {
                    // Identifiers and numbers from a space of 16M: mostly distinct per file.
                    let id: u32 = rng.gen_range(0..1 << 24);
                    let prefix = &words[(id % 64) as usize];
                    line.extend_from_slice(prefix);
                    line.push(b'_');
                    line.extend_from_slice(format!("{id:x}").as_bytes());
                } else {
                    let x = rng.gen::<f64>() * total;
                    let i = cdf.partition_point(|&c| c < x).min(words.len() - 1);
                    line.extend_from_slice(&words[i]);
                }
            }
            line.push(b'\n');
            let take = line.len().min((target - n) as usize);
            w.write_all(&line[..take])?;
            n += take as u64;
        }
        w.flush()?;
        written += n;
        file_no += 1;
    }
    Ok(())
}

fn wordcount(input: &Path, output: &Path) -> Res {
    let mut counts: hashbrown::HashMap<Vec<u8>, u64> = hashbrown::HashMap::new();
    let mut buf = vec![0u8; 4 << 20];
    for path in files_under(input)? {
        let mut f = File::open(&path)?;
        let mut carry = 0; // bytes of an unfinished token at the front of buf
        loop {
            let n = f.read(&mut buf[carry..])?;
            let end = carry + n;
            // Count every token that is certainly complete; keep the tail for the next read.
            let stop = if n == 0 {
                end
            } else {
                buf[..end]
                    .iter()
                    .rposition(|&b| is_delimiter(b))
                    .map_or(0, |i| i + 1)
            };
            for w in buf[..stop]
                .split(|&b| is_delimiter(b))
                .filter(|w| !w.is_empty())
            {
                *counts.entry_ref(w).or_insert(0) += 1;
            }
            if n == 0 {
                break;
            }
            buf.copy_within(stop..end, 0);
            carry = end - stop;
            if carry == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
        }
    }
    let file = File::create(output)?;
    let mut w = BufWriter::with_capacity(1 << 20, &file);
    for (k, v) in &counts {
        w.write_all(k)?;
        writeln!(w, "\t{v}")?;
    }
    w.flush()?;
    drop(w);
    file.sync_all()?;
    Ok(())
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
