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
use crate::group_combine::combine_sorted;
use crate::job::{Accumulator, Combiner, CombinerKind, Partitioner, ReducerFactory};
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
    /// Drops whatever is buffered, keeping the allocations for the next task.
    fn clear(&mut self);
}

/// Arena-and-index buffer for jobs without a combiner.
pub struct SortBuffer {
    data: Vec<u8>,
    index: Vec<Entry>,
    limit_bytes: usize,
    partitioner: Arc<dyn Partitioner>,
    partitions: u32,
    /// A reducer-shaped combiner each sorted partition of a spill goes through.
    group_combiner: Option<ReducerFactory>,
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
            group_combiner: None,
        }
    }

    /// Sets (or clears) the reducer-shaped combiner run over each spill's partitions.
    pub fn set_group_combiner(&mut self, combiner: Option<ReducerFactory>) {
        self.group_combiner = combiner;
    }

    fn used_bytes(&self) -> usize {
        self.data.len() + self.index.len() * ENTRY_BYTES
    }

    /// Empties the buffer and sets it up for another task, keeping its allocations: faulting
    /// in a fresh 100 MiB arena for every task costs more than sorting it.
    pub fn reconfigure(
        &mut self,
        limit_bytes: usize,
        partitioner: Arc<dyn Partitioner>,
        partitions: u32,
    ) {
        self.clear();
        if self.data.capacity() < limit_bytes {
            self.data.reserve(limit_bytes);
        }
        self.limit_bytes = limit_bytes;
        self.partitioner = partitioner;
        self.partitions = partitions;
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
                .then_with(|| {
                    // Equal zero-padded prefixes of two keys of at most 8 bytes: the shorter
                    // is a prefix of the longer, so lengths decide without a `memcmp` (the
                    // common case of a repeated short key, as words are).
                    if a.key_len <= 8 && b.key_len <= 8 {
                        a.key_len.cmp(&b.key_len)
                    } else {
                        key_of(a).cmp(key_of(b))
                    }
                })
                // Equal keys keep emit order, so output does not depend on the sort algorithm.
                .then_with(|| a.offset.cmp(&b.offset))
        });
        let mut writer = RunWriter::create(path, self.partitions as usize)?;
        let record = |e: &Entry| {
            let k = e.offset + e.key_len as usize;
            let v = k + e.value_len as usize;
            (&data[e.offset..k], &data[k..v])
        };
        match &self.group_combiner {
            None => {
                for e in &self.index {
                    let (k, v) = record(e);
                    writer.append(e.partition as usize, k, v)?;
                }
                counters.spilled_records += self.index.len() as u64;
            }
            Some(combiner) => {
                let mut rest = &self.index[..];
                while let Some(first) = rest.first() {
                    let p = first.partition;
                    let (part, after) = rest.split_at(rest.partition_point(|e| e.partition == p));
                    let before = counters.combine_output_records;
                    combine_sorted(
                        combiner,
                        &mut part.iter().map(record),
                        &mut writer,
                        p as usize,
                        counters,
                    )?;
                    counters.spilled_records += counters.combine_output_records - before;
                    rest = after;
                }
            }
        }
        counters.spills += 1;
        self.data.clear();
        self.index.clear();
        writer.finish()
    }

    fn clear(&mut self) {
        self.data.clear();
        self.index.clear();
    }
}

/// Keys up to this long are kept (zero-padded) inside the slot and compared as two words.
const INLINE_KEY_BYTES: usize = 16;

/// One distinct key in a [`CombineBuffer`] with its folded value. Short keys and values sit
/// inline, so a lookup that hits touches only the table's own memory, and comparing a short
/// key costs two word compares instead of a `memcmp` call.
struct Slot {
    hash: u64,
    /// The key's first bytes, zero-padded: the whole key when `len <= INLINE_KEY_BYTES`.
    head: [u8; INLINE_KEY_BYTES],
    len: u32,
    /// The whole key, only when it does not fit in `head`.
    long: Option<Box<[u8]>>,
    value: Accumulator,
}

impl Slot {
    fn key(&self) -> &[u8] {
        match &self.long {
            Some(k) => k,
            None => &self.head[..self.len as usize],
        }
    }
}

/// Loads up to 8 bytes as a little-endian word, zero above `b.len()`, without a `memcpy`
/// call: overlapping fixed-size loads cover every length.
#[inline(always)]
fn load_partial(b: &[u8]) -> u64 {
    let n = b.len();
    if n >= 8 {
        return u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    }
    if n >= 4 {
        let lo = u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let hi = u64::from(u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]));
        // The overlapping middle bytes are equal in both loads, so OR keeps them intact.
        return lo | (hi << (8 * (n - 4)));
    }
    if n == 0 {
        return 0;
    }
    u64::from(b[0])
        | (u64::from(b[n / 2]) << (8 * (n / 2)))
        | (u64::from(b[n - 1]) << (8 * (n - 1)))
}

/// The zero-padded head of a key.
#[inline(always)]
fn key_head(key: &[u8]) -> [u8; INLINE_KEY_BYTES] {
    let lo = load_partial(&key[..key.len().min(8)]);
    let hi = if key.len() > 8 {
        load_partial(&key[8..key.len().min(16)])
    } else {
        0
    };
    let mut head = [0u8; INLINE_KEY_BYTES];
    head[..8].copy_from_slice(&lo.to_le_bytes());
    head[8..].copy_from_slice(&hi.to_le_bytes());
    head
}

/// 64x64 -> 128-bit multiply folded to 64 bits: the mixing step of fast hashes.
#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

/// Hashes a short key from its padded head and length with per-buffer random seeds.
#[inline(always)]
fn hash_head(head: &[u8; INLINE_KEY_BYTES], len: usize, seeds: &[u64; 3]) -> u64 {
    let lo = u64::from_le_bytes([
        head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7],
    ]);
    let hi = u64::from_le_bytes([
        head[8], head[9], head[10], head[11], head[12], head[13], head[14], head[15],
    ]);
    let x = folded_multiply(lo ^ seeds[0], hi ^ seeds[1]);
    folded_multiply(x ^ len as u64, seeds[2])
}

fn heap_bytes(v: &Accumulator) -> usize {
    if v.spilled() {
        v.capacity()
    } else {
        0
    }
}

/// Bookkeeping bytes per distinct key: the slot and its control byte at the table's worst
/// load factor, plus allocator overhead should the key or value not fit inline.
const SLOT_OVERHEAD_BYTES: usize = std::mem::size_of::<Slot>() * 8 / 7 + 1 + 16;

/// Hash-aggregating buffer for jobs with a combiner.
pub struct CombineBuffer {
    table: HashTable<Slot>,
    seeds: [u64; 3],
    sum_u64: bool,
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
        use std::hash::BuildHasher;
        let hasher = hashbrown::DefaultHashBuilder::default();
        // Random per-buffer seeds (from the std hasher's random state), so no fixed input
        // can be crafted to collide.
        let seeds = [0u64, 1, 2].map(|i| hasher.hash_one(i) | 1);
        CombineBuffer {
            table: HashTable::new(),
            seeds,
            sum_u64: combiner.kind() == CombinerKind::SumU64,
            used_bytes: 0,
            limit_bytes,
            hasher,
            combiner,
            partitioner,
            partitions,
        }
    }
}

impl CombineBuffer {
    /// Empties the buffer and sets it up for another task, keeping the table's allocation:
    /// growing a table of a million slots again for every task costs more page faults than
    /// the task's own work.
    pub fn reconfigure(
        &mut self,
        limit_bytes: usize,
        combiner: Arc<dyn Combiner>,
        partitioner: Arc<dyn Partitioner>,
        partitions: u32,
    ) {
        self.clear();
        self.sum_u64 = combiner.kind() == CombinerKind::SumU64;
        self.limit_bytes = limit_bytes;
        self.combiner = combiner;
        self.partitioner = partitioner;
        self.partitions = partitions;
    }
}

impl MapBuffer for CombineBuffer {
    #[inline]
    fn add(&mut self, key: &[u8], value: &[u8], _counters: &mut TaskCounters) -> bool {
        // Combine input records are counted by the map task: they are its output records.
        use std::hash::BuildHasher;
        let head = key_head(key);
        let short = key.len() <= INLINE_KEY_BYTES;
        let hash = if short {
            hash_head(&head, key.len(), &self.seeds)
        } else {
            self.hasher.hash_one(key)
        };
        let len = key.len() as u32;
        let found = self.table.find_mut(hash, |s| {
            s.hash == hash
                && s.len == len
                && s.head == head
                && (short || s.long.as_deref() == Some(key))
        });
        if let Some(slot) = found {
            if self.sum_u64 {
                // The native form of a u64 sum: no call, no re-encoding.
                if let (Ok(acc), Ok(v)) = (
                    <&mut [u8; 8]>::try_from(slot.value.as_mut_slice()),
                    <[u8; 8]>::try_from(value),
                ) {
                    let total = u64::from_le_bytes(*acc).wrapping_add(u64::from_le_bytes(v));
                    *acc = total.to_le_bytes();
                    return false;
                }
            }
            let before = heap_bytes(&slot.value);
            self.combiner.combine(key, &mut slot.value, value);
            self.used_bytes += heap_bytes(&slot.value).saturating_sub(before);
            return self.used_bytes >= self.limit_bytes;
        }
        let slot = Slot {
            hash,
            head,
            len,
            long: (!short).then(|| key.into()),
            value: Accumulator::from_slice(value),
        };
        let long_bytes = if short { 0 } else { key.len() };
        self.used_bytes += long_bytes + heap_bytes(&slot.value) + SLOT_OVERHEAD_BYTES;
        self.table.insert_unique(hash, slot, |s| s.hash);
        self.used_bytes >= self.limit_bytes
    }

    fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    fn spill(&mut self, path: &Path, counters: &mut TaskCounters) -> Result<RunFile> {
        // Sort on (partition, the 16-byte zero-padded head, length): exact for keys of up to
        // 16 bytes, so only two long keys with equal heads ever need their full bytes.
        let mut order: Vec<(u32, u128, &Slot)> = self
            .table
            .iter()
            .map(|s| {
                let p = if self.partitions == 1 {
                    0
                } else {
                    self.partitioner.partition(s.key(), self.partitions)
                };
                (p, u128::from_be_bytes(s.head), s)
            })
            .collect();
        order.sort_unstable_by(|a, b| {
            (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| {
                if a.2.long.is_some() && b.2.long.is_some() {
                    a.2.key().cmp(b.2.key())
                } else {
                    a.2.len.cmp(&b.2.len)
                }
            })
        });
        let mut writer = RunWriter::create(path, self.partitions as usize)?;
        for (p, _, s) in &order {
            writer.append(*p as usize, s.key(), &s.value)?;
        }
        let n = order.len() as u64;
        drop(order);
        counters.combine_output_records += n;
        counters.spilled_records += n;
        counters.spills += 1;
        self.table.clear();
        self.used_bytes = 0;
        writer.finish()
    }

    fn clear(&mut self) {
        self.table.clear();
        self.used_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::HashPartitioner;
    use crate::run::SortedSource;

    struct Sum;
    impl Combiner for Sum {
        fn combine(&self, _key: &[u8], acc: &mut Accumulator, value: &[u8]) {
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
        // Keys with zero bytes check the length rule for equal zero-padded prefixes.
        let keys = [
            "pear",
            "apple",
            "apple",
            "fig",
            "applesauce",
            "a",
            "",
            "ab\0",
            "ab",
            "ab\0\0",
            "a\0",
        ];
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
    fn key_head_is_the_zero_padded_prefix() {
        let data: Vec<u8> = (1..=40).collect();
        for n in 0..=20 {
            let mut want = [0u8; 16];
            let m = n.min(16);
            want[..m].copy_from_slice(&data[..m]);
            assert_eq!(key_head(&data[..n]), want, "length {n}");
        }
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
        assert_eq!(c.combine_output_records, 7);
        for i in 0..1000u64 {
            if b.add(format!("distinct{i}").as_bytes(), b"12345678", &mut c) {
                return;
            }
        }
        panic!("1000 distinct keys never filled a 4 KiB buffer");
    }
}
