//! The tuned word count: `benchtool wordcount-tuned IN OUT [--threads N]`, the reference row
//! of `bench/compare` and `bench/engine.py`.
//!
//! What one well-written thread does: positioned reads of 4 MiB into one reused buffer (the
//! unfinished token at its end carried to the front), the bitmap tokenizer of [`examples::tokenize`] (the one mrjob's wordcount uses),
//! the inline-key table of [`crate::table`] (growing with the distinct words), and the output
//! sorted and written through one large buffer. With N threads, the input (all files as one
//! sequence of bytes) is cut into N byte ranges; a token belongs to the range its first byte
//! is in, so each thread skips a token cut at its range's start and finishes one cut at its
//! end. Each thread fills its own table; the tables are merged, sorted in N runs in parallel,
//! and the runs merged while writing.
//!
//! The output is `word\tcount\n` lines in bytewise order of the lines: byte for byte what
//! `LC_ALL=C sort` makes of mrjob wordcount's part files.

use std::cmp::Ordering;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use examples::tokenize::{for_each_token_at, is_delimiter};

use crate::table::{Entry, Key, Table, INLINE_BYTES, PAD_BYTES};
use crate::{files_under, Res};

/// How the count runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Threads (and byte ranges).
    pub threads: usize,
    /// Bytes per read.
    pub chunk_bytes: usize,
}

impl Options {
    /// `threads` threads, 4 MiB reads.
    pub fn new(threads: usize) -> Self {
        Options {
            threads: threads.max(1),
            chunk_bytes: 4 << 20,
        }
    }
}

/// What the count saw.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// Input bytes.
    pub input_bytes: u64,
    /// Distinct tokens (output lines).
    pub distinct: usize,
}

/// Words a table starts with room for; it doubles as distinct words arrive. Not pre-sized
/// from the input: a table sized for the worst case scatters a natural-language corpus's few
/// thousand hot words over hundreds of MiB, one cache line and one TLB entry each, and ran
/// slower than the naive count (5.3 s against 3.1 s on 1 GiB of Zipf text).
const FIRST_WORDS: usize = 32 << 10;

/// Bytes per output write.
const OUT_BUFFER_BYTES: usize = 8 << 20;

/// A byte range of one file.
#[derive(Debug, Clone, PartialEq)]
struct Piece {
    file: usize,
    start: u64,
    end: u64,
}

/// Counts every token of every file under `input` and writes the sorted counts to `output`.
pub fn wordcount(input: &Path, output: &Path, opts: &Options) -> Res<Stats> {
    let files = files_under(input)?;
    let lens = files
        .iter()
        .map(|p| Ok(std::fs::metadata(p)?.len()))
        .collect::<std::io::Result<Vec<u64>>>()?;
    let input_bytes = lens.iter().sum();
    let ranges = split_ranges(&lens, opts.threads);
    let tables = count_ranges(&files, &lens, &ranges, opts.chunk_bytes)?;
    let table = merge(tables);
    let distinct = table.len();
    write_sorted(table, output, opts.threads)?;
    Ok(Stats {
        input_bytes,
        distinct,
    })
}

/// Cuts the files, taken as one sequence of bytes, into `threads` ranges of equal size.
fn split_ranges(lens: &[u64], threads: usize) -> Vec<Vec<Piece>> {
    let total: u64 = lens.iter().sum();
    let per = total.div_ceil(threads as u64).max(1);
    let mut out = vec![Vec::new(); threads];
    let mut before = 0; // bytes of the files before this one
    for (file, &len) in lens.iter().enumerate() {
        let mut start = 0;
        while start < len {
            let t = (((before + start) / per) as usize).min(threads - 1);
            let end = if t == threads - 1 {
                len
            } else {
                len.min((t as u64 + 1) * per - before)
            };
            out[t].push(Piece { file, start, end });
            start = end;
        }
        before += len;
    }
    out
}

/// One table per range, the ranges counted in parallel (the first on this thread).
fn count_ranges(
    files: &[PathBuf],
    lens: &[u64],
    ranges: &[Vec<Piece>],
    chunk_bytes: usize,
) -> std::io::Result<Vec<Table>> {
    let count = |pieces: &[Piece]| -> std::io::Result<Table> {
        let mut table = Table::with_capacity(FIRST_WORDS);
        let mut buf = vec![0u8; chunk_bytes + PAD_BYTES];
        for p in pieces {
            let file = File::open(&files[p.file])?;
            count_piece(&file, lens[p.file], p, chunk_bytes, &mut buf, &mut table)?;
        }
        Ok(table)
    };
    std::thread::scope(|s| {
        let others: Vec<_> = ranges[1..]
            .iter()
            .map(|r| s.spawn(move || count(r)))
            .collect();
        let mut tables = vec![count(&ranges[0])?];
        for h in others {
            tables.push(h.join().expect("a counting thread panicked")?);
        }
        Ok(tables)
    })
}

/// Counts the tokens that start in `piece`. `buf` is reused across pieces and grows only for
/// a token longer than a read.
fn count_piece(
    file: &File,
    file_len: u64,
    piece: &Piece,
    chunk_bytes: usize,
    buf: &mut Vec<u8>,
    table: &mut Table,
) -> std::io::Result<()> {
    let mut off = piece.start;
    // A token cut at the range's start belongs to the range before.
    let mut skip = piece.start > 0 && {
        let mut b = [0u8; 1];
        file.read_exact_at(&mut b, piece.start - 1)?;
        !is_delimiter(b[0])
    };
    let mut carry = 0; // bytes of an unfinished token at the front of buf
    while off < piece.end {
        let want = chunk_bytes.min((piece.end - off) as usize);
        ensure_len(buf, carry + want + PAD_BYTES);
        file.read_exact_at(&mut buf[carry..carry + want], off)?;
        off += want as u64;
        let end = carry + want;
        let mut from = 0;
        if skip {
            match buf[..end].iter().position(|&b| is_delimiter(b)) {
                Some(i) => (from, skip) = (i, false),
                None => continue,
            }
        }
        // Count every token that is certainly complete; keep the tail for the next read.
        let stop = buf[from..end]
            .iter()
            .rposition(|&b| is_delimiter(b))
            .map_or(from, |i| from + i + 1);
        count_tokens(buf, from, stop, table);
        buf.copy_within(stop..end, 0);
        carry = end - stop;
    }
    if carry == 0 {
        return Ok(());
    }
    // The last token started in this range: read on to its end (or the file's).
    while off < file_len {
        let want = (64 << 10).min((file_len - off) as usize);
        ensure_len(buf, carry + want + PAD_BYTES);
        file.read_exact_at(&mut buf[carry..carry + want], off)?;
        off += want as u64;
        if let Some(i) = buf[carry..carry + want]
            .iter()
            .position(|&b| is_delimiter(b))
        {
            carry += i;
            break;
        }
        carry += want;
    }
    table.add_at(buf, 0, carry);
    Ok(())
}

fn ensure_len(buf: &mut Vec<u8>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0);
    }
}

/// Tokens hashed, and their slots touched, ahead of their insertion.
const BATCH: usize = 16;

/// Counts the tokens of `buf[from..stop]` (`buf` holds [`PAD_BYTES`] more bytes after `stop`),
/// in batches: on text with millions of distinct words nearly every new word is a cache (and
/// TLB) miss on its slot, and touching a batch's slots first lets those misses overlap.
#[inline]
fn count_tokens(buf: &[u8], from: usize, stop: usize, table: &mut Table) {
    let mut keys = [Key::default(); BATCH];
    let mut n = 0;
    let flush = |keys: &[Key], table: &mut Table| {
        std::hint::black_box(table.touch(keys));
        for k in keys {
            table.add_key(buf, k);
        }
    };
    for_each_token_at(&buf[from..stop], |s, e| {
        keys[n] = Key::at(buf, from + s, e - s);
        n += 1;
        if n == BATCH {
            flush(&keys, table);
            n = 0;
        }
    });
    flush(&keys[..n], table);
}

/// The largest table absorbs the others.
fn merge(mut tables: Vec<Table>) -> Table {
    tables.sort_by_key(|t| std::cmp::Reverse(t.len()));
    let mut it = tables.into_iter();
    let mut all = it.next().expect("at least one table");
    for t in it {
        all.absorb(t);
    }
    all
}

/// The first 16 bytes of `word` followed by a tab, zero-padded, big-endian: lines that differ
/// there are ordered by it (a word of up to 15 bytes always is); equal prefixes fall back to
/// [`line_cmp`].
fn line_prefix(word: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    let n = word.len().min(16);
    b[..n].copy_from_slice(&word[..n]);
    if n < 16 {
        b[n] = b'\t';
    }
    u128::from_be_bytes(b)
}

/// The order of the lines `a\t...` and `b\t...` for distinct words (no word holds a tab): it
/// is decided at or before the shorter word's end, where the tab stands.
fn line_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().min(b.len());
    match a[..n].cmp(&b[..n]) {
        Ordering::Equal => {
            let next = |w: &[u8]| w.get(n).copied().unwrap_or(b'\t');
            next(a).cmp(&next(b))
        }
        other => other,
    }
}

/// A sortable entry: the line prefix first.
type Keyed = (u128, Entry);

fn cmp_keyed(a: &Keyed, b: &Keyed, arena: &[u8]) -> Ordering {
    a.0.cmp(&b.0).then_with(|| {
        let (mut ia, mut ib) = ([0u8; INLINE_BYTES], [0u8; INLINE_BYTES]);
        line_cmp(a.1.word(arena, &mut ia), b.1.word(arena, &mut ib))
    })
}

/// Sorts the entries in `runs` parallel runs and writes them merged, then fsyncs `output`.
fn write_sorted(table: Table, output: &Path, runs: usize) -> Res {
    let (entries, arena) = table.into_entries();
    let mut inline = [0u8; INLINE_BYTES];
    let mut keyed: Vec<Keyed> = entries
        .into_iter()
        .map(|e| (line_prefix(e.word(&arena, &mut inline)), e))
        .collect();
    let run_len = keyed.len().div_ceil(runs).max(1);
    std::thread::scope(|s| {
        for run in keyed.chunks_mut(run_len) {
            let arena = &arena;
            s.spawn(move || run.sort_unstable_by(|a, b| cmp_keyed(a, b, arena)));
        }
    });
    let file = File::create(output)?;
    let mut out = Vec::with_capacity(OUT_BUFFER_BYTES + 4096);
    let mut heads: Vec<&[Keyed]> = keyed.chunks(run_len).collect();
    while let Some(i) = smallest_head(&heads, &arena) {
        let (first, rest) = heads[i].split_first().expect("a non-empty run");
        heads[i] = rest;
        out.extend_from_slice(first.1.word(&arena, &mut inline));
        out.push(b'\t');
        push_decimal(&mut out, first.1.count);
        out.push(b'\n');
        if out.len() >= OUT_BUFFER_BYTES {
            (&file).write_all(&out)?;
            out.clear();
        }
    }
    (&file).write_all(&out)?;
    file.sync_all()?;
    Ok(())
}

/// The run whose first entry sorts first (runs are few: a linear scan).
fn smallest_head(heads: &[&[Keyed]], arena: &[u8]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, h) in heads.iter().enumerate() {
        let Some(x) = h.first() else { continue };
        match best {
            Some(b) if cmp_keyed(&heads[b][0], x, arena) != Ordering::Greater => {}
            _ => best = Some(i),
        }
    }
    best
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// The test seed: `SEED=` to replay, else fresh; printed either way.
    pub fn seed() -> u64 {
        let seed = std::env::var("SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| rand::thread_rng().gen());
        println!("SEED={seed}");
        seed
    }

    /// The naive count's output, lines sorted bytewise (what `LC_ALL=C sort` does).
    fn naive_sorted(input: &Path, dir: &Path) -> Vec<u8> {
        let out = dir.join("naive.txt");
        crate::naive::wordcount(input, &out).unwrap();
        let text = std::fs::read(&out).unwrap();
        let mut lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
        lines.sort();
        lines.concat()
    }

    fn tuned(input: &Path, dir: &Path, threads: usize, chunk_bytes: usize) -> Vec<u8> {
        let out = dir.join(format!("tuned-{threads}-{chunk_bytes}.txt"));
        let opts = Options {
            threads,
            chunk_bytes,
        };
        wordcount(input, &out, &opts).unwrap();
        std::fs::read(&out).unwrap()
    }

    /// Writes `files` into a fresh input directory and checks every tuned variant (1, 2 and 3
    /// threads; tiny and normal reads) against the naive count.
    fn check(files: &[Vec<u8>], what: &str) {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        std::fs::create_dir(&input).unwrap();
        for (i, f) in files.iter().enumerate() {
            std::fs::write(input.join(format!("f{i:03}")), f).unwrap();
        }
        let want = naive_sorted(&input, dir.path());
        for threads in [1, 2, 3] {
            for chunk in [1, 7, 64, 4 << 20] {
                let got = tuned(&input, dir.path(), threads, chunk);
                assert!(
                    got == want,
                    "{what}: {threads} threads, {chunk}-byte reads:\n got {:?}\nwant {:?}",
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want)
                );
            }
        }
    }

    fn random_text(rng: &mut StdRng, len: usize) -> Vec<u8> {
        let delims = b" \t\n\r\x0c";
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let word_len = match rng.gen_range(0..10) {
                0 => rng.gen_range(17..200), // long: arena words, across reads
                1 => 0,
                _ => rng.gen_range(1..17),
            };
            for _ in 0..word_len {
                out.push(match rng.gen_range(0..20) {
                    0 => rng.gen(),    // any byte, non-UTF-8 and control bytes included
                    1 => b'\0',        // zero bytes must not look like padding
                    n => b'a' + n % 4, // few letters: words repeat
                });
                if is_delimiter(*out.last().unwrap()) {
                    out.pop();
                }
            }
            out.push(delims[rng.gen_range(0..delims.len())]);
        }
        if rng.gen_bool(0.5) {
            out.pop(); // no trailing delimiter
        }
        out
    }

    #[test]
    fn tuned_equals_naive_on_random_inputs() {
        let seed = seed();
        let mut rng = StdRng::seed_from_u64(seed);
        for round in 0..20 {
            let files: Vec<Vec<u8>> = (0..rng.gen_range(1..4))
                .map(|_| {
                    let len = rng.gen_range(0..3000);
                    random_text(&mut rng, len)
                })
                .collect();
            check(&files, &format!("seed {seed}, round {round}"));
        }
    }

    #[test]
    fn tuned_equals_naive_on_edge_cases() {
        check(&[], "no files");
        check(&[Vec::new()], "an empty file");
        check(&[b"   \n\t ".to_vec()], "only delimiters");
        check(&[b"no trailing newline".to_vec()], "no trailing newline");
        check(&[b"crlf line\r\nnext\r\n\r\n".to_vec()], "CRLF");
        check(&[b"\xff\xfe caf\xc3\xa9 \xff\xfe\n".to_vec()], "non-UTF-8");
        check(
            &[b"a\x0bb a\x0bb\x0c".to_vec()],
            "vertical tab is a token byte",
        );
        check(&[vec![b'x'; 5000]], "one word longer than every read");
        check(
            &[b"split acr".to_vec(), b"oss files".to_vec()],
            "a file's end ends a token",
        );
        // Words that order differently by key and by line: "a\x01" < "a\t" < "ab".
        check(&[b"ab a a\x01 a\x08 b\n".to_vec()], "line order");
    }

    #[test]
    fn ranges_cover_every_byte_once() {
        let lens = [10, 0, 3, 27];
        for threads in 1..6 {
            let ranges = split_ranges(&lens, threads);
            assert_eq!(ranges.len(), threads);
            let mut covered = vec![0u64; lens.len()];
            for p in ranges.iter().flatten() {
                assert_eq!(p.start, covered[p.file], "contiguous, in order");
                covered[p.file] = p.end;
            }
            assert_eq!(covered, lens);
        }
    }
}
