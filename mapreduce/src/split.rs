//! Splits: cutting a job's input into units of map work.
//!
//! The local runner cuts each file into pieces of `split_size_bytes`; the jobtracker cuts
//! each dfs file into one piece per block, so a map can run where its block is. Both go
//! through `cut_file`, which holds the one alignment rule: a split boundary is moved up to
//! a whole record, so a split never starts inside a fixed-length record and every record
//! belongs to exactly one split (the one it starts in). Lines need no alignment here: a line
//! reader finds its own line starts (see [`crate::input`]).

use std::path::PathBuf;

use crate::error::Result;
use crate::fs::{FileSystem, InputFile};
use crate::input::{InputFormat, Split};

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
    let record_bytes = record_bytes(format);
    // A whole number of records, so that every piece already starts on a record boundary.
    let step = (split_size_bytes / record_bytes).max(1) * record_bytes;
    let mut splits = Vec::new();
    for file in fs.list_input_files(inputs)? {
        let len = file.len;
        let pieces = (0..len)
            .step_by(step as usize)
            .map(|start| (start, step.min(len - start), ()));
        splits.extend(
            cut_file(format, &file, len, pieces)
                .into_iter()
                .map(|(s, ())| s),
        );
    }
    Ok(splits)
}

/// The splits of one dfs file: one per block `(offset, length, hosts)`, with the hosts that
/// hold it, boundaries moved up to whole records for fixed-length input.
pub fn block_splits(
    format: &InputFormat,
    file: &InputFile,
    file_len: u64,
    blocks: Vec<(u64, u64, Vec<String>)>,
) -> Vec<(Split, Vec<String>)> {
    cut_file(format, file, file_len, blocks)
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
        let s = block_splits(&InputFormat::Lines, &file(2010), 2010, blocks);
        assert_eq!(ranges(&s), vec![(0, 1000), (1000, 1000), (2000, 10)]);
        assert_eq!(s[0].1, vec!["a".to_string(), "b".to_string()]);
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
        let s = block_splits(&InputFormat::FixedLength(100), &file(len), len, blocks);
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
        let dfs: Vec<Split> = block_splits(&format, &input, len, blocks)
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
