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

use crate::combine_table::{CombineTable, Key, SLOT_BYTES};
use crate::counters::{Counters, TaskCounters};
use crate::error::Result;
use crate::group_combine::combine_sorted;
use crate::job::{Combiner, CombinerKind, Partitioner, ReducerFactory};
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

/// The first 8 bytes of `key`, zero-padded, big-endian: ordered as the keys are wherever
/// two prefixes differ (equal prefixes need the whole keys). Also the merge's heap key.
#[inline]
pub(crate) fn key_prefix(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}

/// What both buffers offer the map task.
pub trait MapBuffer {
    /// Adds a record; returns true when the buffer is full and must be spilled.
    fn add(&mut self, key: &[u8], value: &[u8], counters: &mut TaskCounters) -> bool;
    /// Adds the records `(text[start..end], value)` of `keys` in order until one fills the
    /// buffer (a buffer may read around each key within `text`). Returns how many were
    /// added and whether the buffer is full.
    #[inline(always)]
    fn add_keys(
        &mut self,
        text: &[u8],
        keys: &[(usize, usize)],
        value: &[u8],
        counters: &mut TaskCounters,
    ) -> (usize, bool) {
        for (i, &(start, end)) in keys.iter().enumerate() {
            if self.add(&text[start..end], value, counters) {
                return (i + 1, true);
            }
        }
        (keys.len(), false)
    }
    /// Whether nothing is buffered.
    fn is_empty(&self) -> bool;
    /// Sorts what is buffered and writes it as a run at `path`, then empties the buffer.
    fn spill(&mut self, path: &Path, counters: &mut TaskCounters) -> Result<RunFile>;
    /// Drops whatever is buffered, keeping the allocations for the next task.
    fn clear(&mut self);
    /// The user counters a reducer-shaped combiner reported during spills since the last
    /// call (Streaming's `reporter:counter:` lines from a `-combiner`).
    fn take_user_counters(&mut self) -> Counters {
        Counters::default()
    }
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
    /// What that combiner counted, until the task takes it.
    combiner_counters: Counters,
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
            combiner_counters: Counters::default(),
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
                        &mut self.combiner_counters,
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
        self.combiner_counters = Counters::default();
    }

    fn take_user_counters(&mut self) -> Counters {
        std::mem::take(&mut self.combiner_counters)
    }
}

/// Keys hashed and held back before insertion, so the table loads their slots together.
const BATCH: usize = 16;

/// Records longer than this go into the table at once: copying them to batch them would
/// cost more than the cache miss it hides.
const BATCH_RECORD_BYTES: usize = 256;

/// Below this many bytes of slots the table stays in the caches and records go in at once:
/// batching them costs more than the few misses it would hide (Zipf text ran 1.5x slower
/// batched).
const BATCH_FROM_SLOT_BYTES: usize = 8 << 20;

/// Share of the buffer's budget the table's slots may take; keys over 16 bytes and large
/// values take the rest.
const SLOT_BUDGET_PERCENT: usize = 75;

/// Bits at the top of a spill's sort prefix that hold the partition.
fn partition_bits(partitions: u32) -> u32 {
    u32::BITS - partitions.saturating_sub(1).leading_zeros()
}

/// Values up to this long wait in the batch inline (a count is 8 bytes).
const INLINE_VALUE_BYTES: usize = 8;

/// A record waiting in the batch: its hashed key, where a long key's bytes are in
/// `pending_bytes`, and its value (inline, or in `pending_bytes`).
struct Pending {
    key: Key,
    key_at: u32,
    value_len: u32,
    /// The value when it fits, else (first 4 bytes) where it starts in `pending_bytes`.
    value: [u8; INLINE_VALUE_BYTES],
}

/// Hash-aggregating buffer for jobs with a combiner.
pub struct CombineBuffer {
    table: CombineTable,
    pending: Vec<Pending>,
    /// Long keys and the values of the pending records.
    pending_bytes: Vec<u8>,
    sum_u64: bool,
    limit_bytes: usize,
    /// [`BATCH_FROM_SLOT_BYTES`], lower in tests (to test the batched path on small input).
    batch_from_slot_bytes: usize,
    combiner: Arc<dyn Combiner>,
    partitioner: Arc<dyn Partitioner>,
    partitions: u32,
}

fn max_slots(limit_bytes: usize) -> usize {
    limit_bytes / 100 * SLOT_BUDGET_PERCENT / SLOT_BYTES
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
        let mut table = CombineTable::new(max_slots(limit_bytes), seeds);
        table.set_inline_values(combiner.kind() == CombinerKind::SumU64);
        CombineBuffer {
            table,
            pending: Vec::with_capacity(BATCH),
            pending_bytes: Vec::with_capacity(BATCH * BATCH_RECORD_BYTES),
            sum_u64: combiner.kind() == CombinerKind::SumU64,
            limit_bytes,
            batch_from_slot_bytes: BATCH_FROM_SLOT_BYTES,
            combiner,
            partitioner,
            partitions,
        }
    }

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
        self.table.set_max_slots(max_slots(limit_bytes));
        self.sum_u64 = combiner.kind() == CombinerKind::SumU64;
        self.table.set_inline_values(self.sum_u64);
        self.limit_bytes = limit_bytes;
        self.combiner = combiner;
        self.partitioner = partitioner;
        self.partitions = partitions;
    }

    /// Inserts the pending records, after loading all their home slots at once. Returns
    /// whether the table's memory may have grown.
    fn flush_pending(&mut self) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        // `black_box` keeps the loads, whose values nothing else reads.
        std::hint::black_box(self.table.touch(self.pending.iter().map(|p| p.key.hash())));
        let mut grown = false;
        for p in &self.pending {
            let key = if p.key.is_long() {
                let at = p.key_at as usize;
                &self.pending_bytes[at..at + p.key.len()]
            } else {
                p.key.inline_bytes()
            };
            let value_len = p.value_len as usize;
            let value = if value_len <= INLINE_VALUE_BYTES {
                &p.value[..value_len]
            } else {
                let at = u32::from_le_bytes([p.value[0], p.value[1], p.value[2], p.value[3]]);
                &self.pending_bytes[at as usize..at as usize + value_len]
            };
            grown |= self
                .table
                .upsert(&p.key, key, value, self.combiner.as_ref(), self.sum_u64);
        }
        self.pending.clear();
        self.pending_bytes.clear();
        grown
    }

    /// Adds a record whose key is hashed: into the table at once while it is small (it stays
    /// in the caches), else through the batch whose home slots are loaded together.
    #[inline(always)]
    fn add_key(&mut self, k: Key, key: &[u8], value: &[u8]) -> bool {
        if key.len() + value.len() > BATCH_RECORD_BYTES
            || self.table.slot_bytes() < self.batch_from_slot_bytes
        {
            // Checked here, not by a call: this is the path of every record of a small table.
            let flushed = !self.pending.is_empty() && self.flush_pending();
            let (combiner, sum) = (self.combiner.as_ref(), self.sum_u64);
            // A hit that grew nothing cannot have filled the buffer.
            let grown = self.table.upsert(&k, key, value, combiner, sum);
            return (grown || flushed) && self.is_full();
        }
        // Both lengths are at most BATCH_RECORD_BYTES, so the batch's bytes fit u32 offsets.
        let key_at = self.pending_bytes.len() as u32;
        if k.is_long() {
            self.pending_bytes.extend_from_slice(key);
        }
        let mut inline = [0u8; INLINE_VALUE_BYTES];
        if let Ok(v) = <[u8; INLINE_VALUE_BYTES]>::try_from(value) {
            // The common case (a count) as one fixed-size copy, not a `memcpy` call.
            inline = v;
        } else if value.len() < INLINE_VALUE_BYTES {
            inline[..value.len()].copy_from_slice(value);
        } else {
            inline[..4].copy_from_slice(&(self.pending_bytes.len() as u32).to_le_bytes());
            self.pending_bytes.extend_from_slice(value);
        }
        self.pending.push(Pending {
            key: k,
            key_at,
            value_len: value.len() as u32,
            value: inline,
        });
        if self.pending.len() < BATCH {
            return false;
        }
        self.flush_pending() && self.is_full()
    }

    fn is_full(&self) -> bool {
        self.table.is_full() || self.table.bytes() >= self.limit_bytes
    }
}

impl MapBuffer for CombineBuffer {
    // Always inlined: called out of line, its prologue and register saves were an eighth of
    // a word count's map-side instructions.
    #[inline(always)]
    fn add(&mut self, key: &[u8], value: &[u8], _counters: &mut TaskCounters) -> bool {
        // Combine input records are counted by the map task: they are its output records.
        let k = Key::of(key, self.table.seeds());
        self.add_key(k, key, value)
    }

    // Keys in hand a batch at a time: their home slots are loaded before any is inserted,
    // so that the cache misses of a batch overlap (on Zipf text, two fifths of the map
    // side's time was spent waiting for slot loads), with nothing copied to batch them.
    #[inline(always)]
    fn add_keys(
        &mut self,
        text: &[u8],
        keys: &[(usize, usize)],
        value: &[u8],
        _counters: &mut TaskCounters,
    ) -> (usize, bool) {
        let mut flushed = !self.pending.is_empty() && self.flush_pending();
        if flushed && self.is_full() {
            return (0, true);
        }
        let seeds = *self.table.seeds();
        let (combiner, sum) = (self.combiner.as_ref(), self.sum_u64);
        for (c, chunk) in keys.chunks(BATCH).enumerate() {
            let mut hashed = [Key::default(); BATCH];
            let mut loaded = 0;
            for (k, &(start, end)) in hashed.iter_mut().zip(chunk) {
                *k = Key::at(text, start, end, &seeds);
                loaded ^= self.table.touch_one(k.hash());
            }
            std::hint::black_box(loaded);
            for (i, (k, &(start, end))) in hashed.iter().zip(chunk).enumerate() {
                let grown = self
                    .table
                    .upsert(k, &text[start..end], value, combiner, sum);
                if (grown || flushed) && self.is_full() {
                    return (c * BATCH + i + 1, true);
                }
                flushed = false;
            }
        }
        (keys.len(), false)
    }

    fn is_empty(&self) -> bool {
        self.table.is_empty() && self.pending.is_empty()
    }

    fn spill(&mut self, path: &Path, counters: &mut TaskCounters) -> Result<RunFile> {
        self.flush_pending();
        // Each key is one integer, (partition, its first 8 bytes) above its slot, and those
        // integers are sorted as integers: sorting structs by a tuple compare cost about 900
        // instructions per key on kernel text. Keys whose first bytes tie (identifiers with
        // a common prefix) are then ordered by their whole bytes.
        let table = &self.table;
        let pbits = partition_bits(self.partitions);
        let mut order: Vec<u128> = table
            .iter()
            .map(|(slot, e)| {
                let first = (e.head() >> 64) as u64;
                let prefix = if pbits == 0 {
                    first
                } else {
                    let partition = self.partitioner.partition(e.key(), self.partitions);
                    (u64::from(partition) << (64 - pbits)) | (first >> pbits)
                };
                (u128::from(prefix) << 64) | slot as u128
            })
            .collect();
        order.sort_unstable();
        let partition_of = |item: u128| {
            if pbits == 0 {
                0
            } else {
                ((item >> 64) as u64 >> (64 - pbits)) as usize
            }
        };
        let slot_of = |item: u128| item as u64 as usize;
        let entry_of = |item: u128| table.entry(slot_of(item));
        for tied in order.chunk_by_mut(|a, b| a >> 64 == b >> 64) {
            if tied.len() > 1 {
                tied.sort_unstable_by(|&a, &b| entry_of(a).cmp_key(&entry_of(b)));
            }
        }
        let mut writer = RunWriter::create(path, self.partitions as usize)?;
        for &item in &order {
            let e = table.entry(slot_of(item));
            writer.append(partition_of(item), e.key(), e.value())?;
        }
        let n = order.len() as u64;
        drop(order);
        counters.combine_output_records += n;
        counters.spilled_records += n;
        counters.spills += 1;
        self.table.clear();
        writer.finish()
    }

    fn clear(&mut self) {
        self.pending.clear();
        self.pending_bytes.clear();
        self.table.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Accumulator, HashPartitioner};
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

    /// Keys around the inline (16) and sort-word (24) lengths, sharing long prefixes and
    /// trailing zero bytes, come out of a spill in byte order with their sums, across
    /// partitions (one, three, and 64: the partition's bits in the first sort word take from
    /// the key's); a record past the batch size goes in directly.
    #[test]
    fn combine_spill_sorts_long_keys_bytewise_and_sums() {
        for batch_from in [0, BATCH_FROM_SLOT_BYTES] {
            for partitions in [1, 3, 64] {
                spill_sorts_and_sums(batch_from, partitions);
            }
        }
    }

    #[test]
    fn partition_bits_cover_every_partition() {
        for (partitions, bits) in [(0, 0), (1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (64, 6)] {
            assert_eq!(partition_bits(partitions), bits, "{partitions}");
        }
        assert_eq!(partition_bits(u32::MAX), 32);
    }

    fn spill_sorts_and_sums(batch_from_slot_bytes: usize, partitions: u32) {
        let dir = tempfile::tempdir().unwrap();
        let mut b = CombineBuffer::new(
            1 << 20,
            Arc::new(Sum),
            Arc::new(HashPartitioner),
            partitions,
        );
        b.batch_from_slot_bytes = batch_from_slot_bytes;
        let mut c = TaskCounters::default();
        let mut want = std::collections::BTreeMap::<(u32, Vec<u8>), u64>::new();
        let big = vec![b'x'; BATCH_RECORD_BYTES + 1];
        for i in 0..5000u64 {
            let mut k = b"CONFIG_ARCH_HAS_SOMETHING_".to_vec();
            k.truncate((i % 30) as usize);
            k.extend_from_slice((i % 13).to_string().as_bytes());
            if i % 4 == 0 {
                k.push(0);
            }
            if i == 777 {
                k = big.clone();
            }
            b.add(&k, &i.to_le_bytes(), &mut c);
            *want
                .entry((HashPartitioner.partition(&k, partitions), k))
                .or_default() += i;
        }
        let run = b.spill(&dir.path().join("s"), &mut c).unwrap();
        let got: Vec<((u32, Vec<u8>), u64)> = read(&run)
            .into_iter()
            .map(|(p, k, v)| ((p as u32, k), u64::from_le_bytes(v[..].try_into().unwrap())))
            .collect();
        let want: Vec<((u32, Vec<u8>), u64)> = want.into_iter().collect();
        assert_eq!(got, want);
        assert!(b.is_empty());
    }

    /// Words added a batch at a time, from a text, with the buffer filling and spilling
    /// mid-batch, sum to what a plain count gives, whichever way the table is filled.
    #[test]
    fn added_batches_stop_when_full_and_lose_nothing() {
        let text: Vec<u8> = (0..3000u64)
            .flat_map(|i| format!("w{} long-word-number-{} ", i % 50, i % 300).into_bytes())
            .collect();
        let mut spans = Vec::new();
        let mut start = 0;
        for (i, &byte) in text.iter().enumerate() {
            if byte == b' ' {
                spans.push((start, i));
                start = i + 1;
            }
        }
        let mut want = std::collections::BTreeMap::<Vec<u8>, u64>::new();
        for &(s, e) in &spans {
            *want.entry(text[s..e].to_vec()).or_default() += 1;
        }
        for batch_from in [0, BATCH_FROM_SLOT_BYTES] {
            let dir = tempfile::tempdir().unwrap();
            let mut b = CombineBuffer::new(8192, Arc::new(Sum), Arc::new(HashPartitioner), 2);
            b.batch_from_slot_bytes = batch_from;
            let mut c = TaskCounters::default();
            let mut got = std::collections::BTreeMap::<Vec<u8>, u64>::new();
            let mut spills = 0;
            let mut spill = |b: &mut CombineBuffer, c: &mut TaskCounters| {
                let run = b.spill(&dir.path().join(format!("s{spills}")), c).unwrap();
                spills += 1;
                for (_, k, v) in read(&run) {
                    *got.entry(k).or_default() += u64::from_le_bytes(v[..].try_into().unwrap());
                }
            };
            for batch in spans.chunks(700) {
                let mut rest = batch;
                while !rest.is_empty() {
                    let (added, full) = b.add_keys(&text, rest, &1u64.to_le_bytes(), &mut c);
                    assert!(added > 0 || full, "no progress");
                    rest = &rest[added..];
                    if full {
                        spill(&mut b, &mut c);
                    }
                }
            }
            spill(&mut b, &mut c);
            assert!(spills > 2, "8 KiB should have filled: {spills} spills");
            assert_eq!(got, want, "batch_from {batch_from}");
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
