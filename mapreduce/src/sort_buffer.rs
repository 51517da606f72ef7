//! The map-side output buffer: map output accumulates in memory up to the sort buffer size,
//! then is sorted by (partition, key) and spilled to disk as a sorted run.
//!
//! Two layouts share the same contract:
//! - [`SortBuffer`] (no combiner): records are appended to one byte arena with a compact
//!   index entry each; a spill sorts the index, not the bytes.
//! - [`CombineBuffer`] (combiner on): a hash table from key to folded value, so a key that
//!   repeats a million times costs one entry. A spill sorts the distinct keys only.
//!
//! Both account for every byte they hold (arena, index, table overhead), so memory stays
//! bounded whatever the input size or number of distinct keys. A single record larger than
//! the whole buffer is spilled on its own rather than refused.

use std::path::Path;
use std::sync::Arc;

use hashbrown::HashTable;

use crate::counters::TaskCounters;
use crate::error::Result;
use crate::job::{Combiner, Partitioner};
use crate::run::{RunFile, RunWriter};

/// Index entry of one buffered record.
#[derive(Clone, Copy)]
struct Entry {
    /// First 8 key bytes, big-endian, zero-padded: most comparisons end here.
    prefix: u64,
    partition: u32,
    key_len: u32,
    value_len: u32,
    offset: usize,
}

const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();

#[inline]
fn key_prefix(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}

/// What both buffers offer the map task.
pub trait MapBuffer {
    /// Adds a record; returns true when the buffer is full and must be spilled.
    fn add(&mut self, key: &[u8], value: &[u8], counters: &mut TaskCounters) -> bool;
    /// Whether nothing is buffered.
    fn is_empty(&self) -> bool;
    /// Sorts what is buffered and writes it as a run at `path`, then empties the buffer.
    fn spill(&mut self, path: &Path, counters: &mut TaskCounters) -> Result<RunFile>;
}

/// Arena-and-index buffer for jobs without a combiner.
pub struct SortBuffer {
    data: Vec<u8>,
    index: Vec<Entry>,
    limit_bytes: usize,
    partitioner: Arc<dyn Partitioner>,
    partitions: u32,
}

impl SortBuffer {
    /// A buffer of at most `limit_bytes` (arena plus index).
    pub fn new(limit_bytes: usize, partitioner: Arc<dyn Partitioner>, partitions: u32) -> Self {
        SortBuffer {
            // Reserving address space touches no memory; pages are used as records arrive.
            data: Vec::with_capacity(limit_bytes),
            index: Vec::new(),
            limit_bytes,
            partitioner,
            partitions,
        }
    }

    fn used_bytes(&self) -> usize {
        self.data.len() + self.index.len() * ENTRY_BYTES
    }
}

impl MapBuffer for SortBuffer {
    #[inline]
    fn add(&mut self, key: &[u8], value: &[u8], _counters: &mut TaskCounters) -> bool {
        let partition = if self.partitions == 1 {
            0
        } else {
            self.partitioner.partition(key, self.partitions)
        };
        let offset = self.data.len();
        self.data.extend_from_slice(key);
        self.data.extend_from_slice(value);
        self.index.push(Entry {
            prefix: key_prefix(key),
            partition,
            key_len: key.len() as u32,
            value_len: value.len() as u32,
            offset,
        });
        self.used_bytes() >= self.limit_bytes
    }

    fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn spill(&mut self, path: &Path, counters: &mut TaskCounters) -> Result<RunFile> {
        let data = &self.data;
        let key_of = |e: &Entry| &data[e.offset..e.offset + e.key_len as usize];
        self.index.sort_unstable_by(|a, b| {
            (a.partition, a.prefix)
                .cmp(&(b.partition, b.prefix))
                .then_with(|| key_of(a).cmp(key_of(b)))
                // Equal keys keep emit order, so output does not depend on the sort algorithm.
                .then_with(|| a.offset.cmp(&b.offset))
        });
        let mut writer = RunWriter::create(path, self.partitions as usize)?;
        for e in &self.index {
            let k = e.offset + e.key_len as usize;
            let v = k + e.value_len as usize;
            writer.append(e.partition as usize, &data[e.offset..k], &data[k..v])?;
        }
        counters.spilled_records += self.index.len() as u64;
        counters.spills += 1;
        self.data.clear();
        self.index.clear();
        writer.finish()
    }
}

/// One distinct key in a [`CombineBuffer`].
struct Slot {
    hash: u64,
    key_offset: usize,
    key_len: usize,
    value: Vec<u8>,
}

/// Bookkeeping bytes per distinct key: the slot, the table's index entry and its control
/// byte, and allocator overhead of the value.
const SLOT_OVERHEAD_BYTES: usize = std::mem::size_of::<Slot>() + 8 + 1 + 16;

/// Hash-aggregating buffer for jobs with a combiner.
pub struct CombineBuffer {
    table: HashTable<u32>,
    slots: Vec<Slot>,
    keys: Vec<u8>,
    used_bytes: usize,
    limit_bytes: usize,
    hasher: hashbrown::DefaultHashBuilder,
    combiner: Arc<dyn Combiner>,
    partitioner: Arc<dyn Partitioner>,
    partitions: u32,
}

impl CombineBuffer {
    /// A buffer of at most `limit_bytes`, folding values with `combiner`.
    pub fn new(
        limit_bytes: usize,
        combiner: Arc<dyn Combiner>,
        partitioner: Arc<dyn Partitioner>,
        partitions: u32,
    ) -> Self {
        CombineBuffer {
            table: HashTable::new(),
            slots: Vec::new(),
            keys: Vec::with_capacity(limit_bytes / 2),
            used_bytes: 0,
            limit_bytes,
            hasher: hashbrown::DefaultHashBuilder::default(),
            combiner,
            partitioner,
            partitions,
        }
    }
}

impl MapBuffer for CombineBuffer {
    #[inline]
    fn add(&mut self, key: &[u8], value: &[u8], counters: &mut TaskCounters) -> bool {
        use std::hash::BuildHasher;
        counters.combine_input_records += 1;
        let hash = self.hasher.hash_one(key);
        let slots = &self.slots;
        let keys = &self.keys;
        let found = self.table.find(hash, |&i| {
            let s = &slots[i as usize];
            s.hash == hash && &keys[s.key_offset..s.key_offset + s.key_len] == key
        });
        if let Some(&i) = found {
            let slot = &mut self.slots[i as usize];
            let before = slot.value.capacity();
            self.combiner.combine(key, &mut slot.value, value);
            self.used_bytes += slot.value.capacity().saturating_sub(before);
            return self.used_bytes >= self.limit_bytes;
        }
        let key_offset = self.keys.len();
        self.keys.extend_from_slice(key);
        let index = self.slots.len() as u32;
        self.slots.push(Slot {
            hash,
            key_offset,
            key_len: key.len(),
            value: value.to_vec(),
        });
        let slots = &self.slots;
        self.table
            .insert_unique(hash, index, |&i| slots[i as usize].hash);
        self.used_bytes += key.len() + value.len() + SLOT_OVERHEAD_BYTES;
        self.used_bytes >= self.limit_bytes
    }

    fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn spill(&mut self, path: &Path, counters: &mut TaskCounters) -> Result<RunFile> {
        let keys = &self.keys;
        let key_of = |s: &Slot| &keys[s.key_offset..s.key_offset + s.key_len];
        let mut order: Vec<(u32, u64, u32)> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let k = key_of(s);
                let p = if self.partitions == 1 {
                    0
                } else {
                    self.partitioner.partition(k, self.partitions)
                };
                (p, key_prefix(k), i as u32)
            })
            .collect();
        let slots = &self.slots;
        order.sort_unstable_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then_with(|| key_of(&slots[a.2 as usize]).cmp(key_of(&slots[b.2 as usize])))
        });
        let mut writer = RunWriter::create(path, self.partitions as usize)?;
        for (p, _, i) in &order {
            let s = &slots[*i as usize];
            writer.append(*p as usize, key_of(s), &s.value)?;
        }
        let n = order.len() as u64;
        counters.combine_output_records += n;
        counters.spilled_records += n;
        counters.spills += 1;
        self.table.clear();
        self.slots.clear();
        self.keys.clear();
        self.used_bytes = 0;
        writer.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::HashPartitioner;
    use crate::run::SortedSource;

    struct Sum;
    impl Combiner for Sum {
        fn combine(&self, _key: &[u8], acc: &mut Vec<u8>, value: &[u8]) {
            let a = u64::from_le_bytes(acc[..8].try_into().unwrap());
            let b = u64::from_le_bytes(value.try_into().unwrap());
            acc.copy_from_slice(&(a + b).to_le_bytes());
        }
    }

    fn read(run: &RunFile) -> Vec<(usize, Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        for p in 0..run.segments.len() {
            let mut r = run.open_segment(p).unwrap();
            while r.advance().unwrap() {
                out.push((p, r.key().to_vec(), r.value().to_vec()));
            }
        }
        out
    }

    #[test]
    fn sort_buffer_sorts_by_partition_then_key_stably() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = SortBuffer::new(1 << 20, Arc::new(HashPartitioner), 3);
        let mut c = TaskCounters::default();
        let keys = ["pear", "apple", "apple", "fig", "applesauce", "a", ""];
        for (i, k) in keys.iter().enumerate() {
            b.add(k.as_bytes(), &[i as u8], &mut c);
        }
        let run = b.spill(&dir.path().join("s"), &mut c).unwrap();
        let got = read(&run);
        assert_eq!(got.len(), keys.len());
        for w in got.windows(2) {
            assert!((w[0].0, &w[0].1) <= (w[1].0, &w[1].1), "{w:?}");
            if w[0].1 == w[1].1 {
                assert!(w[0].2 < w[1].2, "equal keys keep emit order");
            }
        }
        for (p, k, _) in &got {
            assert_eq!(*p as u32, HashPartitioner.partition(k, 3));
        }
        assert!(b.is_empty());
    }

    #[test]
    fn combine_buffer_folds_and_reports_full() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = CombineBuffer::new(4096, Arc::new(Sum), Arc::new(HashPartitioner), 1);
        let mut c = TaskCounters::default();
        let mut full = false;
        for i in 0..1000u64 {
            full |= b.add(
                format!("k{}", i % 7).as_bytes(),
                &1u64.to_le_bytes(),
                &mut c,
            );
        }
        assert!(!full, "7 distinct keys fit in 4 KiB");
        let run = b.spill(&dir.path().join("s"), &mut c).unwrap();
        let got = read(&run);
        assert_eq!(got.len(), 7);
        let total: u64 = got
            .iter()
            .map(|(_, _, v)| u64::from_le_bytes(v[..].try_into().unwrap()))
            .sum();
        assert_eq!(total, 1000);
        assert_eq!(c.combine_input_records, 1000);
        assert_eq!(c.combine_output_records, 7);
        for i in 0..1000u64 {
            if b.add(format!("distinct{i}").as_bytes(), b"12345678", &mut c) {
                return;
            }
        }
        panic!("1000 distinct keys never filled a 4 KiB buffer");
    }
}
