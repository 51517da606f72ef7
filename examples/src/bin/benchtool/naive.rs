//! The naive word count: `benchtool wordcount IN OUT`, kept as the benchmark's "naive" row.
//!
//! What a competent first version looks like: 4 MiB reads, the crate's delimiter table, and a
//! `hashbrown::HashMap<Vec<u8>, u64>` with borrowed-key lookups, so one heap allocation per
//! distinct word and a pointer chase per key comparison. Output lines are in
//! hash order (unsorted).

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use examples::tokenize::is_delimiter;

use crate::{files_under, Res};

/// Counts every token of every file under `input` into the file `output`.
pub fn wordcount(input: &Path, output: &Path) -> Res {
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
