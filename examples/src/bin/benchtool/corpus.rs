//! Seeded text corpora: `benchtool gen-text zipf|highcard SIZE OUT --seed N`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use clap::ValueEnum;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::Res;

/// The generated corpora.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Kind {
    /// Natural-language-like: Zipf over 30,000 words.
    Zipf,
    /// High cardinality, like source code or logs: ≥ 500k distinct tokens per 64 MiB.
    Highcard,
}

fn random_word(rng: &mut StdRng, len: usize) -> Vec<u8> {
    (0..len).map(|_| b'a' + rng.gen_range(0..26u8)).collect()
}

/// Writes `size` bytes of `kind` text into `out`, a directory of 64 MiB files.
pub fn gen_text(kind: Kind, size: u64, out: &Path, seed: u64) -> Res {
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
