//! Helpers shared by the example-job tests: seeded corpora and output readers.
#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The seed of a randomized test: `SEED` from the environment, else fresh; printed so a
/// failure can be replayed with `SEED=<n> cargo test ...`.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("{test}: SEED={seed}");
    seed
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Writes a directory of files with awkward text: `\r\n`, empty lines, non-UTF-8 bytes,
/// tabs and form feeds, very long lines, a missing final newline, an empty file.
pub fn write_corpus(dir: &Path, rng: &mut StdRng, files: usize, lines: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let vocab: Vec<Vec<u8>> = (0..200)
        .map(|i| {
            let mut w = format!("w{i}").into_bytes();
            if i % 17 == 0 {
                w.extend_from_slice(&[0xff, 0xc3, 0x28]); // not UTF-8
            }
            if i % 23 == 0 {
                w.extend_from_slice("é,x.".as_bytes());
            }
            w
        })
        .collect();
    let seps: [&[u8]; 6] = [b" ", b"  ", b"\t", b"\x0c", b" \r ", b"\x0b"];
    let mut paths = Vec::new();
    for f in 0..files {
        let mut text = Vec::new();
        let n = if f == 0 { 0 } else { rng.gen_range(0..lines) };
        for l in 0..n {
            let words = if rng.gen_bool(0.02) {
                rng.gen_range(5_000..20_000) // a very long line
            } else if rng.gen_bool(0.1) {
                0
            } else {
                rng.gen_range(1..12)
            };
            for _ in 0..words {
                // Zipf-ish: small indexes far more often.
                let i = (rng.gen::<f64>().powi(3) * vocab.len() as f64) as usize;
                text.extend_from_slice(&vocab[i.min(vocab.len() - 1)]);
                text.extend_from_slice(seps[rng.gen_range(0..seps.len())]);
            }
            let last = l + 1 == n;
            if !(last && f % 2 == 1) {
                text.extend_from_slice(if rng.gen_bool(0.3) { b"\r\n" } else { b"\n" });
            }
        }
        let p = dir.join(format!("file{f:02}.txt"));
        std::fs::write(&p, &text).unwrap();
        paths.push(p);
    }
    paths
}

/// All lines of all `part-*` files in `out`, sorted.
pub fn sorted_output_lines(out: &Path) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    for p in part_files(out) {
        let bytes = std::fs::read(p).unwrap();
        for l in bytes.split_inclusive(|&b| b == b'\n') {
            assert_eq!(
                l.last(),
                Some(&b'\n'),
                "every output line ends in a newline"
            );
            lines.push(l[..l.len() - 1].to_vec());
        }
    }
    lines.sort();
    lines
}

/// The `part-*` files of an output directory, in name order.
pub fn part_files(out: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("part-")
        })
        .collect();
    v.sort();
    v
}

/// The names in an output directory, sorted.
pub fn names_in(out: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}
