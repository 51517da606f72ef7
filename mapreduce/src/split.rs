//! Splits: cutting a job's input into units of map work.
//!
//! The local runner cuts each file into pieces of `split_size_bytes`; the jobtracker cuts
//! each dfs file into one piece per block, so a map can run where its block is. Both go
//! through `cut_file`, which holds the one alignment rule: a split boundary is moved up to
//! a whole record, so a split never starts inside a fixed-length record and every record
//! belongs to exactly one split (the one it starts in). Lines need no alignment here: a line
//! reader finds its own line starts (see [`crate::input`]).
//!
//! A compressed file (by extension, see [`crate::compression`]) cannot be entered in the
//! middle, so it is always one split, whatever the split size or its number of blocks.
//!
//! When the user sets no split size, the local runner picks one from the input's total size
//! and its threads ([`local_split_size`]), so that one big file keeps every core busy.

use std::path::PathBuf;

use crate::compression::Codec;
use crate::error::Result;
use crate::fs::{FileSystem, InputFile};
use crate::input::{InputFormat, Split};
use crate::job::DEFAULT_SPLIT_SIZE_BYTES;

/// The smallest split the local runner picks by itself: below this, a task's start-up and
/// its spill and merge cost more than the parallelism gains.
pub const MIN_AUTO_SPLIT_BYTES: u64 = 4 << 20;
/// Splits per thread the local runner aims for, so that threads finishing early find work
/// left and the last split is small.
pub const SPLITS_PER_THREAD: u64 = 4;

/// What the user said about split sizes (`0`/`None`: nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SplitRequest {
    /// Largest split (`--split-size`, `mapreduce.input.fileinputformat.split.maxsize`).
    pub max_bytes: u64,
    /// Smallest split (`mapreduce.input.fileinputformat.split.minsize`).
    pub min_bytes: u64,
    /// Wanted number of maps (`mapreduce.job.maps`).
    pub maps: Option<u32>,
}

/// The split size of a local run over `total_bytes` on `threads` threads.
///
/// An explicit maximum wins. Else a `maps` hint asks for `total / maps` bytes per split (as
/// Hadoop's goal size), and with no hint the size gives every thread about
/// [`SPLITS_PER_THREAD`] splits, at least [`MIN_AUTO_SPLIT_BYTES`]; either way at most a dfs
/// block ([`DEFAULT_SPLIT_SIZE_BYTES`]). The minimum, if set, is applied last, as Hadoop's
/// `max(minSize, min(goal, blockSize))`.
pub fn local_split_size(request: SplitRequest, total_bytes: u64, threads: usize) -> u64 {
    let chosen = if request.max_bytes > 0 {
        request.max_bytes
    } else if let Some(maps) = request.maps.filter(|&m| m > 0) {
        total_bytes
            .div_ceil(u64::from(maps))
            .clamp(1, DEFAULT_SPLIT_SIZE_BYTES)
    } else {
        let pieces = (threads.max(1) as u64).saturating_mul(SPLITS_PER_THREAD);
        total_bytes
            .div_ceil(pieces)
            .clamp(MIN_AUTO_SPLIT_BYTES, DEFAULT_SPLIT_SIZE_BYTES)
    };
    chosen.max(request.min_bytes).max(1)
}

/// Cuts the input into splits of at most `split_size_bytes` (rounded down to whole records
/// for fixed-length input). Empty files produce no splits.
pub fn compute_splits(
    fs: &dyn FileSystem,
    format: &InputFormat,
    inputs: &[PathBuf],
    split_size_bytes: u64,
) -> Result<Vec<Split>> {
    if let InputFormat::Generated { rows, maps } = format {
        return Ok(row_splits(*rows, *maps));
    }
    let files = fs.list_input_files(inputs)?;
    Ok(split_files(format, &files, split_size_bytes))
}

/// Cuts listed files into splits of at most `split_size_bytes` (see [`compute_splits`]).
pub fn split_files(format: &InputFormat, files: &[InputFile], split_size_bytes: u64) -> Vec<Split> {
    let record_bytes = record_bytes(format);
    // A whole number of records, so that every piece already starts on a record boundary.
    let step = (split_size_bytes.max(1) / record_bytes).max(1) * record_bytes;
    let mut splits = Vec::new();
    for file in files {
        let len = file.len;
        if Codec::of_path(&file.path).is_some() {
            splits.extend(whole_file(file));
            continue;
        }
        let pieces = (0..len)
            .step_by(step as usize)
            .map(|start| (start, step.min(len - start), ()));
        splits.extend(
            cut_file(format, file, len, pieces)
                .into_iter()
                .map(|(s, ())| s),
        );
    }
    splits
}

/// The one split of a file that cannot be cut (none for an empty file).
fn whole_file(file: &InputFile) -> Option<Split> {
    (file.len > 0).then(|| Split::File {
        path: file.path.clone(),
        name: file.name.clone(),
        start: 0,
        len: file.len,
    })
}

/// The largest split of a cluster job, as Hadoop's `min(maxSize, blockSize)` with one
/// difference: when the user set no maximum (`requested_max == 0`), a small input is cut so
/// that every task slot of the cluster gets about two splits (never below 4 MiB), instead of
/// one map per block leaving the other slots idle. `None`: blocks are not cut.
pub fn cluster_split_max(requested_max: u64, total_bytes: u64, slots: u32) -> Option<u64> {
    const FLOOR: u64 = 4 << 20;
    if requested_max > 0 {
        return Some(requested_max);
    }
    let pieces = 2 * u64::from(slots.max(1));
    Some(total_bytes.div_ceil(pieces).max(FLOOR))
}

/// Cuts every block longer than `max_bytes` into near-equal pieces of at most that size; each
/// piece keeps its block's hosts, so a cut split is as data-local as the block.
fn cut_blocks(
    blocks: Vec<(u64, u64, Vec<String>)>,
    max_bytes: Option<u64>,
) -> Vec<(u64, u64, Vec<String>)> {
    let Some(max) = max_bytes.filter(|m| *m > 0) else {
        return blocks;
    };
    blocks
        .into_iter()
        .flat_map(|(offset, len, hosts)| {
            let n = len.div_ceil(max).max(1);
            let step = len.div_ceil(n).max(1);
            (0..n).map(move |i| {
                let at = i * step;
                (offset + at, step.min(len.saturating_sub(at)), hosts.clone())
            })
        })
        .collect()
}

/// The splits of one dfs file: one per block `(offset, length, hosts)`, with the hosts that
/// hold it, boundaries moved up to whole records for fixed-length input. A block longer than
/// `max_bytes` (see [`cluster_split_max`]) is cut into several splits on the same hosts. With
/// `min_bytes` larger than a block (`mapreduce.input.fileinputformat.split.minsize`),
/// consecutive blocks are joined instead until a split holds that many bytes, and it runs
/// where its first block is.
pub fn block_splits(
    format: &InputFormat,
    file: &InputFile,
    file_len: u64,
    blocks: Vec<(u64, u64, Vec<String>)>,
    min_bytes: u64,
    max_bytes: Option<u64>,
) -> Vec<(Split, Vec<String>)> {
    if Codec::of_path(&file.path).is_some() {
        // One split, run where its first block is (it is read from the start).
        let file = InputFile {
            len: file_len,
            ..file.clone()
        };
        let hosts = blocks.into_iter().next().map(|b| b.2).unwrap_or_default();
        return whole_file(&file).map(|s| (s, hosts)).into_iter().collect();
    }
    let blocks = if min_bytes > 0 {
        join_blocks(blocks, min_bytes)
    } else {
        cut_blocks(blocks, max_bytes)
    };
    cut_file(format, file, file_len, blocks)
}

/// Joins consecutive blocks until each piece holds at least `min_bytes` (the last may hold
/// less); a piece keeps the hosts of its first block.
fn join_blocks(
    blocks: Vec<(u64, u64, Vec<String>)>,
    min_bytes: u64,
) -> Vec<(u64, u64, Vec<String>)> {
    let mut joined: Vec<(u64, u64, Vec<String>)> = Vec::new();
    for (offset, len, hosts) in blocks {
        match joined.last_mut() {
            Some(last) if last.1 < min_bytes => last.1 += len,
            _ => joined.push((offset, len, hosts)),
        }
    }
    joined
}

/// Bytes of one record for the alignment rule (1: any byte is a boundary).
fn record_bytes(format: &InputFormat) -> u64 {
    match format {
        InputFormat::FixedLength(n) => (*n).max(1) as u64,
        InputFormat::Lines | InputFormat::Generated { .. } => 1,
    }
}

/// Cuts `file` at the pieces `(offset, length, tag)`, each boundary moved up to a whole
/// record (a record belongs to the piece it starts in); pieces left empty are dropped.
fn cut_file<T>(
    format: &InputFormat,
    file: &InputFile,
    file_len: u64,
    pieces: impl IntoIterator<Item = (u64, u64, T)>,
) -> Vec<(Split, T)> {
    let record_bytes = record_bytes(format);
    let align = |x: u64| x.div_ceil(record_bytes) * record_bytes;
    pieces
        .into_iter()
        .filter_map(|(offset, len, tag)| {
            let start = align(offset);
            let end = align(offset + len).min(file_len);
            (end > start).then(|| {
                let split = Split::File {
                    path: file.path.clone(),
                    name: file.name.clone(),
                    start,
                    len: end - start,
                };
                (split, tag)
            })
        })
        .collect()
}

fn row_splits(rows: u64, maps: u32) -> Vec<Split> {
    let maps = u64::from(maps.max(1)).min(rows.max(1));
    (0..maps)
        .map(|i| {
            let start = rows * i / maps;
            let end = rows * (i + 1) / maps;
            Split::Rows {
                start,
                count: end - start,
            }
        })
        .filter(|s| s.size() > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::LocalFs;
    use crate::input::read_split;

    fn file(len: u64) -> InputFile {
        InputFile {
            path: PathBuf::from("/in/f"),
            name: "f".into(),
            len,
        }
    }

    fn ranges(splits: &[(Split, Vec<String>)]) -> Vec<(u64, u64)> {
        splits.iter().map(|(s, _)| range(s)).collect()
    }

    fn range(s: &Split) -> (u64, u64) {
        match s {
            Split::File { start, len, .. } => (*start, *len),
            Split::Rows { .. } => panic!("file splits expected"),
        }
    }

    #[test]
    fn one_split_per_block_with_its_hosts() {
        let blocks = vec![
            (0, 1000, vec!["a".into(), "b".into()]),
            (1000, 1000, vec!["c".into()]),
            (2000, 10, vec![]),
        ];
        let s = block_splits(
            &InputFormat::Lines,
            &file(2010),
            2010,
            blocks.clone(),
            0,
            None,
        );
        assert_eq!(ranges(&s), vec![(0, 1000), (1000, 1000), (2000, 10)]);
        assert_eq!(s[0].1, vec!["a".to_string(), "b".to_string()]);
        // A minimum split size joins blocks; a split runs where its first block is.
        let s = block_splits(
            &InputFormat::Lines,
            &file(2010),
            2010,
            blocks.clone(),
            1500,
            None,
        );
        assert_eq!(ranges(&s), vec![(0, 2000), (2000, 10)]);
        assert_eq!(s[1].1, Vec::<String>::new());
        let s = block_splits(&InputFormat::Lines, &file(2010), 2010, blocks, 1000, None);
        assert_eq!(ranges(&s).len(), 3, "blocks of the minimum stay apart");
    }

    #[test]
    fn blocks_longer_than_the_split_maximum_are_cut_on_their_hosts() {
        let blocks = vec![(0, 1000, vec!["a".into()]), (1000, 10, vec!["b".into()])];
        let s = block_splits(&InputFormat::Lines, &file(1010), 1010, blocks, 0, Some(300));
        assert_eq!(
            ranges(&s),
            vec![(0, 250), (250, 250), (500, 250), (750, 250), (1000, 10)]
        );
        assert!(s[..4].iter().all(|(_, h)| h == &vec!["a".to_string()]));
        // Hadoop's rule with a maximum set; without one, about two splits per slot.
        assert_eq!(cluster_split_max(1 << 20, 1 << 30, 6), Some(1 << 20));
        assert_eq!(cluster_split_max(0, 64 << 20, 8), Some(4 << 20));
        assert_eq!(cluster_split_max(0, 1 << 30, 4), Some(128 << 20));
    }

    #[test]
    fn fixed_length_splits_cover_every_record_once() {
        // 100-byte records over 64-byte blocks: boundaries move up to whole records, so
        // every record is in exactly one split and no split starts mid-record.
        let len = 1000;
        let blocks: Vec<_> = (0..len)
            .step_by(64)
            .map(|o| (o, 64.min(len - o), vec![]))
            .collect();
        let s = block_splits(
            &InputFormat::FixedLength(100),
            &file(len),
            len,
            blocks,
            0,
            None,
        );
        let r = ranges(&s);
        assert!(
            r.iter().all(|(start, l)| start % 100 == 0 && l % 100 == 0),
            "{r:?}"
        );
        let covered: u64 = r.iter().map(|(_, l)| l).sum();
        assert_eq!(covered, len);
        assert!(r.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0), "{r:?}");
    }

    #[test]
    fn a_compressed_file_is_one_split_whatever_the_size_or_blocks() {
        let gz = InputFile {
            path: PathBuf::from("/in/f.gz"),
            name: "f.gz".into(),
            len: 1000,
        };
        let splits = split_files(&InputFormat::Lines, &[gz.clone(), file(10)], 7);
        assert_eq!(splits.len(), 1 + 2, "{splits:?}");
        assert_eq!(range(&splits[0]), (0, 1000));
        let blocks = vec![(0, 600, vec!["a".into()]), (600, 400, vec!["b".into()])];
        let by_block = block_splits(&InputFormat::FixedLength(30), &gz, 1000, blocks, 0, None);
        assert_eq!(ranges(&by_block), [(0, 1000)]);
        assert_eq!(by_block[0].1, ["a"]);
        let empty = InputFile { len: 0, ..gz };
        assert!(split_files(&InputFormat::Lines, &[empty], 7).is_empty());
    }

    #[test]
    fn local_split_size_keeps_every_thread_busy_within_bounds() {
        const MIB: u64 = 1 << 20;
        let auto = SplitRequest::default();
        // One 64 MiB file on 2 threads: 8 splits, not 1.
        assert_eq!(local_split_size(auto, 64 * MIB, 2), 8 * MIB);
        assert_eq!(local_split_size(auto, 64 * MIB, 8), MIN_AUTO_SPLIT_BYTES);
        // Tiny input: never below the minimum (one split); huge input: never above a block.
        assert_eq!(local_split_size(auto, 1000, 4), MIN_AUTO_SPLIT_BYTES);
        assert_eq!(
            local_split_size(auto, 100 << 30, 2),
            DEFAULT_SPLIT_SIZE_BYTES
        );
        // An explicit size wins; a maps hint sets the goal; the minimum applies last.
        let max = SplitRequest {
            max_bytes: 1000,
            ..auto
        };
        assert_eq!(local_split_size(max, 64 * MIB, 2), 1000);
        let maps = SplitRequest {
            maps: Some(16),
            ..auto
        };
        assert_eq!(local_split_size(maps, 64 * MIB, 2), 4 * MIB);
        let min = SplitRequest {
            min_bytes: 32 * MIB,
            ..maps
        };
        assert_eq!(local_split_size(min, 64 * MIB, 2), 32 * MIB);
    }

    #[test]
    fn generated_rows_cover_every_row_once() {
        let splits = compute_splits(
            &LocalFs,
            &InputFormat::Generated { rows: 10, maps: 3 },
            &[],
            1,
        )
        .unwrap();
        let total: u64 = splits.iter().map(Split::size).sum();
        assert_eq!(total, 10);
        assert_eq!(splits.len(), 3);
    }

    /// Every record of `splits`, in order, as (offset, bytes).
    fn records_of(splits: &[Split], format: &InputFormat) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        for s in splits {
            read_split(&LocalFs, format, s, 1 << 10, &mut |r| {
                out.push((r.offset, r.value.to_vec()));
                Ok(())
            })
            .unwrap();
        }
        out
    }

    #[test]
    fn local_and_block_splits_align_alike_when_records_straddle_blocks() {
        // 30-byte records in 64-byte chunks and blocks: 64 is no multiple of 30, so both
        // paths must move boundaries to whole records, and each reads every record once.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let content: Vec<u8> = (0..1200u32).map(|i| (i / 30) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let format = InputFormat::FixedLength(30);
        let len = content.len() as u64;
        let local = compute_splits(&LocalFs, &format, std::slice::from_ref(&path), 64).unwrap();
        let input = InputFile {
            path: path.clone(),
            name: "f".into(),
            len,
        };
        let blocks: Vec<_> = (0..len)
            .step_by(64)
            .map(|o| (o, 64.min(len - o), vec![]))
            .collect();
        let dfs: Vec<Split> = block_splits(&format, &input, len, blocks, 0, None)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        for splits in [&local, &dfs] {
            let r: Vec<_> = splits.iter().map(range).collect();
            assert!(
                r.iter().all(|(start, l)| start % 30 == 0 && l % 30 == 0),
                "{r:?}"
            );
            assert!(r.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0), "{r:?}");
            assert_eq!(r.iter().map(|(_, l)| l).sum::<u64>(), len, "{r:?}");
        }
        let want: Vec<(u64, Vec<u8>)> = (0..40u8)
            .map(|i| (u64::from(i) * 30, vec![i; 30]))
            .collect();
        assert_eq!(records_of(&local, &format), want);
        assert_eq!(records_of(&dfs, &format), want);
    }
}
