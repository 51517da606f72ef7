//! The combine buffer's hash table: one slot per distinct key with its folded value, open
//! addressing with linear probing over fixed-size slots in one vector.
//!
//! Why not a general-purpose map: on real text most lookups miss the cache (a 64 MiB split of
//! kernel source has about a million distinct tokens, most over 16 bytes), so what counts is
//! how many dependent loads a lookup makes and whether the misses of consecutive keys
//! overlap. So:
//! - a slot is 32 bytes, two to a cache line: what a hit reads is one line, and twice as many
//!   frequent keys stay in the first-level cache as with 64-byte slots;
//! - a key of up to 16 bytes sits in its slot, zero-padded, and is compared as two words; a
//!   longer key lives in one arena (no allocation per key, one chase to compare it);
//! - every slot keeps 31 bits of its key's hash with the key's length in one word: a probe
//!   compares that word before any key byte, and growing moves slots without hashing a key
//!   again;
//! - a count that a summing combiner folds sits in the slot; other values live in a vector
//!   beside the slots, found by the index the slot holds;
//! - keys are hashed a batch at a time ([`Key`]) and the home slots of the whole batch are
//!   loaded ([`CombineTable::touch`]) before any is inserted, so their misses overlap instead
//!   of each stalling its own insertion;
//! - the slot index is the hash's high bits scaled to the table size (no power of two), so
//!   the largest table is exactly what the memory budget allows.

use crate::job::{Accumulator, Combiner};

/// Keys up to this long are kept (zero-padded) inside the slot and compared as two words.
pub const INLINE_KEY_BYTES: usize = 16;

/// The first table size; it doubles from here up to the budget.
const FIRST_SLOTS: usize = 1024;

/// The smallest budget (for tiny buffers).
const MIN_SLOTS: usize = 16;

/// One distinct key and its folded value, in 32 bytes: two slots to a cache line, so that
/// twice as many of a word count's frequent words stay in the first-level cache (a 64-byte
/// slot had twice the tuned count's L1 misses on Zipf text). Aligned to its size, so that no
/// slot straddles two lines (the allocator aligns only to 16).
#[derive(Clone, Copy, Default)]
#[repr(C, align(32))]
struct Slot {
    /// The key's [`Key::meta`]: hash bits above its length; 0 marks an empty slot.
    meta: u64,
    /// A key of up to 16 bytes, zero-padded. A longer key: its first 8 bytes, then where it
    /// starts in the arena (little-endian).
    head: [u8; INLINE_KEY_BYTES],
    /// The value's 8 bytes while the table keeps values inline, else its index in `values`.
    value: [u8; 8],
}

/// Low bits of a slot's meta that hold the key's length.
const LEN_BITS: u32 = 32;
const LEN_MASK: u64 = (1 << LEN_BITS) - 1;

impl Slot {
    #[inline(always)]
    fn len(&self) -> usize {
        (self.meta & LEN_MASK) as usize
    }

    #[inline(always)]
    fn word(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.head[at..at + 8].try_into().expect("8 bytes"))
    }
}

/// Bytes of one slot in the table's allocation.
pub const SLOT_BYTES: usize = std::mem::size_of::<Slot>();
const _: () = assert!(SLOT_BYTES == 32, "two slots to a cache line");

/// A key hashed ahead of its insertion.
#[derive(Clone, Copy, Debug, Default)]
pub struct Key {
    /// The hash's high 31 bits, a set bit (so that no meta is 0), and the length.
    meta: u64,
    head: [u8; INLINE_KEY_BYTES],
    len: u32,
}

/// 64x64 -> 128-bit multiply folded to 64 bits: the mixing step of fast hashes.
#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
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

/// The zero-padded head of a key, as two little-endian words.
#[inline(always)]
fn head_words(key: &[u8]) -> (u64, u64) {
    let lo = load_partial(&key[..key.len().min(8)]);
    let hi = if key.len() > 8 {
        load_partial(&key[8..key.len().min(16)])
    } else {
        0
    };
    (lo, hi)
}

/// The zero-padded head of a key.
#[inline(always)]
pub fn key_head(key: &[u8]) -> [u8; INLINE_KEY_BYTES] {
    let (lo, hi) = head_words(key);
    let mut head = [0u8; INLINE_KEY_BYTES];
    head[..8].copy_from_slice(&lo.to_le_bytes());
    head[8..].copy_from_slice(&hi.to_le_bytes());
    head
}

/// Word `at` of a 16-byte head, little-endian.
#[inline(always)]
fn word_of(head: &[u8; INLINE_KEY_BYTES], at: usize) -> u64 {
    u64::from_le_bytes(head[at..at + 8].try_into().expect("8 bytes"))
}

/// For a key of `n` bytes (0 to 16), the masks that keep its bytes of the two words of a
/// 16-byte load: one table load instead of computing them from `n`.
static HEAD_MASKS: [[u64; 2]; INLINE_KEY_BYTES + 1] = {
    let mut masks = [[0u64; 2]; INLINE_KEY_BYTES + 1];
    let mut n = 0;
    while n <= INLINE_KEY_BYTES {
        let low = if n >= 8 { 8 } else { n };
        let high = n.saturating_sub(8);
        masks[n] = [low_bytes_mask(low), low_bytes_mask(high)];
        n += 1;
    }
    masks
};

/// A mask of the low `n` bytes of a word (`n` up to 8).
const fn low_bytes_mask(n: usize) -> u64 {
    if n >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * n)) - 1
    }
}

impl Key {
    /// Hashes `key` with the table's random `seeds`.
    #[inline(always)]
    pub fn of(key: &[u8], seeds: &[u64; 3]) -> Key {
        let (lo, hi) = head_words(key);
        Key::from_head(key, lo, hi, seeds)
    }

    /// Hashes the key `text[start..end]`, the same as [`Key::of`] would. When 16 bytes
    /// from `start` are in `text` (all but a buffer's last words), its head is two
    /// fixed-size loads masked to the key's length: no branch on the length, which a word
    /// count's keys vary too much for the branch predictor.
    #[inline(always)]
    pub fn at(text: &[u8], start: usize, end: usize, seeds: &[u64; 3]) -> Key {
        let wide: Option<&[u8; INLINE_KEY_BYTES]> = text
            .get(start..start + INLINE_KEY_BYTES)
            .and_then(|w| w.try_into().ok());
        let n = end - start;
        match wide {
            // Only a long key's bytes are read as a slice (to hash them).
            Some(wide) if n <= INLINE_KEY_BYTES => {
                let [lo_mask, hi_mask] = HEAD_MASKS[n];
                let (lo, hi) = (word_of(wide, 0) & lo_mask, word_of(wide, 8) & hi_mask);
                Key::inline(lo, hi, n, seeds)
            }
            _ => Key::of(&text[start..end], seeds),
        }
    }

    #[inline(always)]
    fn inline(lo: u64, hi: u64, n: usize, seeds: &[u64; 3]) -> Key {
        let x = folded_multiply(lo ^ seeds[0], hi ^ seeds[1]);
        let hash = folded_multiply(x ^ n as u64, seeds[2]);
        let mut head = [0u8; INLINE_KEY_BYTES];
        head[..8].copy_from_slice(&lo.to_le_bytes());
        head[8..].copy_from_slice(&hi.to_le_bytes());
        Key {
            meta: Key::meta_of(hash, n),
            head,
            len: n as u32,
        }
    }

    #[inline(always)]
    fn meta_of(hash: u64, len: usize) -> u64 {
        (hash & !((2 << LEN_BITS) - 1)) | (1 << LEN_BITS) | len as u64
    }

    #[inline(always)]
    fn from_head(key: &[u8], lo: u64, hi: u64, seeds: &[u64; 3]) -> Key {
        if key.len() <= INLINE_KEY_BYTES {
            return Key::inline(lo, hi, key.len(), seeds);
        }
        let mut head = [0u8; INLINE_KEY_BYTES];
        head[..8].copy_from_slice(&lo.to_le_bytes());
        head[8..].copy_from_slice(&hi.to_le_bytes());
        Key {
            meta: Key::meta_of(hash_long(key, seeds), key.len()),
            head,
            len: key.len() as u32,
        }
    }

    /// Word `at` (0 or 8) of the head, little-endian.
    #[inline(always)]
    fn word(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.head[at..at + 8].try_into().expect("8 bytes"))
    }

    /// Whether the key's bytes are not all in its head.
    #[inline(always)]
    pub fn is_long(&self) -> bool {
        self.len as usize > INLINE_KEY_BYTES
    }

    /// The key's hash bits with its length (never 0): what a slot compares first.
    #[inline(always)]
    pub fn hash(&self) -> u64 {
        self.meta
    }

    /// The key's length in bytes.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the key is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The key's bytes when it is not long (its head holds all of them).
    #[inline(always)]
    pub fn inline_bytes(&self) -> &[u8] {
        &self.head[..(self.len as usize).min(INLINE_KEY_BYTES)]
    }
}

/// Hashes a key of more than 16 bytes, 16 bytes per step, ending on its last 16 bytes.
#[inline]
fn hash_long(w: &[u8], seeds: &[u64; 3]) -> u64 {
    let word = |at: usize| u64::from_le_bytes(w[at..at + 8].try_into().expect("8 bytes"));
    let mut h = seeds[2] ^ w.len() as u64;
    let mut at = 0;
    while at + 16 < w.len() {
        h = folded_multiply(h ^ word(at) ^ seeds[0], word(at + 8) ^ seeds[1]);
        at += 16;
    }
    let end = w.len() - 16;
    let x = folded_multiply(h ^ word(end) ^ seeds[1], word(end + 8) ^ seeds[0]);
    folded_multiply(x, seeds[2])
}

/// Heap bytes of a value that does not fit inline, with the allocator's overhead.
#[inline]
fn heap_bytes(v: &Accumulator) -> usize {
    if v.spilled() {
        v.capacity() + 16
    } else {
        0
    }
}

/// Key → folded value, growing up to a slot budget.
pub struct CombineTable {
    slots: Vec<Slot>,
    len: usize,
    /// The table never grows past this many slots.
    max_slots: usize,
    /// The bytes of every key longer than [`INLINE_KEY_BYTES`], back to back.
    arena: Vec<u8>,
    /// Values, when they are not kept inline in their slots.
    values: Vec<Accumulator>,
    /// Whether each slot holds its value's 8 bytes (a sum of 8-byte counts); until a value
    /// of another size arrives, which moves every value into `values`.
    inline_values: bool,
    /// Heap bytes of values that outgrew their accumulator's inline space.
    heap_bytes: usize,
    /// Grow when `len` reaches this: [`Self::load_limit`] kept, so a hit does not compute it.
    grow_at: usize,
    seeds: [u64; 3],
}

impl CombineTable {
    /// An empty table of at most `max_slots` slots (at least 16).
    pub fn new(max_slots: usize, seeds: [u64; 3]) -> CombineTable {
        CombineTable {
            slots: Vec::new(),
            len: 0,
            max_slots: max_slots.max(MIN_SLOTS),
            arena: Vec::new(),
            values: Vec::new(),
            inline_values: false,
            heap_bytes: 0,
            grow_at: 0,
            seeds,
        }
    }

    /// Keeps values inline (8 bytes, summed in place) from the next time the table is
    /// empty: for a combiner that sums 8-byte counts.
    pub fn set_inline_values(&mut self, inline: bool) {
        if self.len == 0 {
            self.inline_values = inline;
        }
    }

    /// The seeds keys are hashed with.
    pub fn seeds(&self) -> &[u64; 3] {
        &self.seeds
    }

    /// Sets the slot budget for what is added from now on (a smaller budget takes effect
    /// when the table is next emptied).
    pub fn set_max_slots(&mut self, max_slots: usize) {
        self.max_slots = max_slots.max(MIN_SLOTS);
        if self.len == 0 && self.slots.len() > self.max_slots {
            self.slots = Vec::new();
        }
        self.grow_at = self.load_limit();
    }

    /// Linear probing stays short up to 3/4 full; at the budget the slack goes to 7/8.
    fn load_limit(&self) -> usize {
        let n = self.slots.len();
        if n >= self.max_slots {
            n / 8 * 7
        } else {
            n / 4 * 3
        }
    }

    /// Distinct keys held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of the slot allocation.
    pub fn slot_bytes(&self) -> usize {
        self.slots.len() * SLOT_BYTES
    }

    /// Memory held: the whole slot allocation (slots are scattered, so all of it is touched
    /// soon), the arena's bytes and values' heap bytes.
    pub fn bytes(&self) -> usize {
        self.slots.len() * SLOT_BYTES
            + self.arena.len()
            + self.values.capacity() * std::mem::size_of::<Accumulator>()
            + self.heap_bytes
    }

    /// Whether the table is at its largest size and three quarters full: the caller should
    /// empty it soon (up to 7/8 full probes stay short; past that the table grows beyond
    /// its budget rather than fail).
    pub fn is_full(&self) -> bool {
        self.slots.len() >= self.max_slots && self.len >= self.max_slots / 4 * 3
    }

    #[inline(always)]
    fn home(&self, hash: u64) -> usize {
        ((u128::from(hash) * self.slots.len() as u128) >> 64) as usize
    }

    /// Reads the home slot of every key, so that their cache misses overlap (the loads are
    /// independent) instead of each stalling its own insertion; the result means nothing.
    #[inline]
    pub fn touch(&self, keys: impl Iterator<Item = u64>) -> u64 {
        if self.slots.is_empty() {
            return 0;
        }
        keys.fold(0, |x, hash| x ^ self.slots[self.home(hash)].meta)
    }

    /// [`Self::touch`] of one key, for a caller that hashes and loads in one loop.
    #[inline(always)]
    pub fn touch_one(&self, hash: u64) -> u64 {
        self.slots.get(self.home(hash)).map_or(0, |s| s.meta)
    }

    /// Folds `value` into the slot of `key` (whose bytes are `bytes`), adding the key if new.
    /// `sum_u64` adds 8-byte values in place instead of calling `combiner`. Inlined into the
    /// one loop that calls it: a call's register saves were a third of a hit's instructions.
    /// Returns whether the table's memory may have grown (a new key, or a value that grew on
    /// the heap): only then need the caller check [`Self::bytes`] and [`Self::is_full`].
    #[inline(always)]
    pub fn upsert(
        &mut self,
        key: &Key,
        bytes: &[u8],
        value: &[u8],
        combiner: &dyn Combiner,
        sum_u64: bool,
    ) -> bool {
        if self.len >= self.grow_at {
            self.grow();
        }
        if self.inline_values && value.len() != 8 {
            self.move_values_out();
        }
        let n = self.slots.len();
        let mut i = self.home(key.meta);
        let (lo, hi) = (key.word(0), key.word(8));
        loop {
            let s = &self.slots[i];
            if s.meta == 0 {
                break;
            }
            if s.meta == key.meta
                && s.word(0) == lo
                && if key.is_long() {
                    let at = s.word(8) as usize;
                    &self.arena[at..at + bytes.len()] == bytes
                } else {
                    s.word(8) == hi
                }
            {
                return self.fold(i, bytes, value, combiner, sum_u64);
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
        let mut head = key.head;
        if key.is_long() {
            head[8..].copy_from_slice(&(self.arena.len() as u64).to_le_bytes());
            self.arena.extend_from_slice(bytes);
        }
        let value = if self.inline_values {
            value.try_into().expect("inline values are 8 bytes")
        } else {
            let acc = Accumulator::from_slice(value);
            self.heap_bytes += heap_bytes(&acc);
            self.values.push(acc);
            (self.values.len() as u64 - 1).to_le_bytes()
        };
        self.slots[i] = Slot {
            meta: key.meta,
            head,
            value,
        };
        self.len += 1;
        true
    }

    /// Folds `value` into the value of slot `i`; see [`Self::upsert`].
    #[inline(always)]
    fn fold(
        &mut self,
        i: usize,
        bytes: &[u8],
        value: &[u8],
        combiner: &dyn Combiner,
        sum_u64: bool,
    ) -> bool {
        let s = &mut self.slots[i];
        if self.inline_values {
            // `upsert` moved the values out unless `value` is 8 bytes too.
            let v = u64::from_le_bytes(value.try_into().expect("8 bytes"));
            s.value = u64::from_le_bytes(s.value).wrapping_add(v).to_le_bytes();
            return false;
        }
        let acc = &mut self.values[u64::from_le_bytes(s.value) as usize];
        if sum_u64 {
            if let (Ok(acc), Ok(v)) = (
                <&mut [u8; 8]>::try_from(acc.as_mut_slice()),
                <[u8; 8]>::try_from(value),
            ) {
                let total = u64::from_le_bytes(*acc).wrapping_add(u64::from_le_bytes(v));
                *acc = total.to_le_bytes();
                return false;
            }
        }
        let before = heap_bytes(acc);
        combiner.combine(bytes, acc, value);
        let grown = heap_bytes(acc).saturating_sub(before);
        self.heap_bytes += grown;
        grown > 0
    }

    /// Stops keeping values inline: a value that is not 8 bytes arrived (the summing
    /// combiner then folds by its general rule), so every value moves into `values`.
    #[cold]
    fn move_values_out(&mut self) {
        for s in self.slots.iter_mut().filter(|s| s.meta != 0) {
            self.values.push(Accumulator::from_slice(&s.value));
            s.value = (self.values.len() as u64 - 1).to_le_bytes();
        }
        self.inline_values = false;
    }

    /// Doubles the slots (up to the budget; past 7/8 of it, for the slack only), moving
    /// every key by its kept hash.
    #[cold]
    fn grow(&mut self) {
        let target = (self.slots.len() * 2).clamp(FIRST_SLOTS.min(self.max_slots), self.max_slots);
        let target = if target <= self.slots.len() {
            // At the budget and past 7/8: only a caller ignoring `is_full` gets here.
            self.slots.len() * 2
        } else {
            target
        };
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); target]);
        for s in old.into_iter().filter(|s| s.meta != 0) {
            let mut i = self.home(s.meta);
            while self.slots[i].meta != 0 {
                i += 1;
                if i == target {
                    i = 0;
                }
            }
            self.slots[i] = s;
        }
        self.grow_at = self.load_limit();
    }

    /// Every key with its value and slot index, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, Entry<'_>)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.meta != 0)
            .map(|(i, s)| (i, self.entry_of(s)))
    }

    /// The key and value in slot `i` (an index [`Self::iter`] gave).
    #[inline]
    pub fn entry(&self, i: usize) -> Entry<'_> {
        self.entry_of(&self.slots[i])
    }

    fn entry_of<'a>(&'a self, slot: &'a Slot) -> Entry<'a> {
        Entry {
            slot,
            arena: &self.arena,
            values: (!self.inline_values).then_some(&self.values[..]),
        }
    }

    /// Empties the table, keeping its allocations for the next fill.
    pub fn clear(&mut self) {
        if self.len > 0 {
            for s in self.slots.iter_mut().filter(|s| s.meta != 0) {
                *s = Slot::default();
            }
        }
        if self.slots.len() > self.max_slots {
            self.slots = Vec::new();
        }
        self.grow_at = self.load_limit();
        self.len = 0;
        self.arena.clear();
        self.values.clear();
        self.heap_bytes = 0;
    }
}

/// A key and its value in a [`CombineTable`].
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    slot: &'a Slot,
    arena: &'a [u8],
    /// The table's values, unless they are inline.
    values: Option<&'a [Accumulator]>,
}

impl<'a> Entry<'a> {
    /// The key's bytes.
    #[inline]
    pub fn key(&self) -> &'a [u8] {
        let s = self.slot;
        if s.len() > INLINE_KEY_BYTES {
            let at = s.word(8) as usize;
            &self.arena[at..at + s.len()]
        } else {
            &s.head[..s.len()]
        }
    }

    /// The key's length.
    #[inline]
    pub fn len(&self) -> usize {
        self.slot.len()
    }

    /// The key's first 16 bytes, zero-padded, as one big-endian integer: keys compare as
    /// their heads do, then (equal heads) by length unless both are longer than 16 bytes.
    #[inline]
    pub fn head(&self) -> u128 {
        if self.len() > INLINE_KEY_BYTES {
            let key = self.key();
            return u128::from_be_bytes(key[..16].try_into().expect("16 bytes"));
        }
        u128::from_be_bytes(self.slot.head)
    }

    /// Orders two keys bytewise, from their heads: the bytes past the head are read only
    /// when both keys have them and their heads tie (identifiers with a common prefix).
    #[inline]
    pub fn cmp_key(&self, other: &Entry<'_>) -> std::cmp::Ordering {
        self.head().cmp(&other.head()).then_with(|| {
            if self.len() > INLINE_KEY_BYTES && other.len() > INLINE_KEY_BYTES {
                self.key().cmp(other.key())
            } else {
                // One head holds its whole key, zero-padded: it is a prefix of the other.
                self.len().cmp(&other.len())
            }
        })
    }

    /// Whether the key is empty.
    pub fn is_empty(&self) -> bool {
        self.slot.len() == 0
    }

    /// The folded value.
    #[inline]
    pub fn value(&self) -> &'a [u8] {
        match self.values {
            Some(values) => &values[u64::from_le_bytes(self.slot.value) as usize],
            None => &self.slot.value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Concat;
    impl Combiner for Concat {
        fn combine(&self, _key: &[u8], acc: &mut Accumulator, value: &[u8]) {
            acc.extend_from_slice(value);
        }
    }

    /// A key read with masked loads from its text is the key read from its own bytes, at
    /// every length around the inline size and up to the text's last byte.
    #[test]
    fn key_at_is_key_of_anywhere_in_a_text() {
        let seeds = [1, 2, 3];
        let text: Vec<u8> = (0..80u8).map(|i| i.wrapping_mul(37) | 1).collect();
        for start in 0..text.len() {
            for end in start..text.len().min(start + 40) + 1 {
                let (a, b) = (
                    Key::at(&text, start, end, &seeds),
                    Key::of(&text[start..end], &seeds),
                );
                assert_eq!(
                    (a.meta, a.head, a.len),
                    (b.meta, b.head, b.len),
                    "{start}..{end}"
                );
            }
        }
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

    /// Keys of every length around the inline limit, including ones equal but for trailing
    /// zero bytes, through several growths: every key keeps its own value.
    #[test]
    fn keeps_keys_apart_across_lengths_and_growth() {
        let mut t = CombineTable::new(1 << 16, [3, 5, 7]);
        let mut want: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        for i in 0..20_000u32 {
            let len = (i % 40) as usize;
            let mut k = format!("{:0>40}", i % 7000).into_bytes();
            k.truncate(len);
            if i % 3 == 0 {
                k.push(0);
            }
            let key = Key::of(&k, t.seeds());
            let v = [(i % 251) as u8];
            t.upsert(&key, &k, &v, &Concat, false);
            want.entry(k).or_default().push(v[0]);
        }
        let got: HashMap<Vec<u8>, Vec<u8>> = t
            .iter()
            .map(|(_, e)| (e.key().to_vec(), e.value().to_vec()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(t.len(), want.len());
        t.clear();
        assert!(t.is_empty() && t.iter().next().is_none());
    }

    #[test]
    fn stops_growing_at_its_budget_and_says_full() {
        let mut t = CombineTable::new(4096, [1, 2, 3]);
        let mut n = 0u64;
        while !t.is_full() {
            let k = n.to_string();
            t.upsert(
                &Key::of(k.as_bytes(), &[1, 2, 3]),
                k.as_bytes(),
                b"",
                &Concat,
                false,
            );
            n += 1;
        }
        assert_eq!(n, 3072, "full at three quarters of the budget");
        // The values (empty, not 8 bytes) live beside the slots, and count.
        assert_eq!(
            t.bytes(),
            4096 * SLOT_BYTES + 4096 * std::mem::size_of::<Accumulator>()
        );
    }

    /// Counts summed inside their slots take no memory beyond the slots; a value of
    /// another size moves every value out, and folding goes on by the combiner's rule.
    #[test]
    fn inline_sums_move_out_when_a_value_is_not_8_bytes() {
        let seeds = [1, 2, 3];
        let mut t = CombineTable::new(4096, seeds);
        t.set_inline_values(true);
        let long = b"a key longer than sixteen bytes".as_slice();
        for (k, v) in [
            (&b"a"[..], 1u64),
            (long, 2),
            (b"a", 3),
            (long, 4),
            (b"b", 5),
        ] {
            t.upsert(&Key::of(k, &seeds), k, &v.to_le_bytes(), &Concat, true);
        }
        assert_eq!(t.bytes(), t.slot_bytes() + long.len());
        let value_of = |t: &CombineTable, k: &[u8]| {
            t.iter()
                .find(|(_, e)| e.key() == k)
                .map(|(_, e)| e.value().to_vec())
        };
        assert_eq!(value_of(&t, b"a"), Some(4u64.to_le_bytes().to_vec()));
        assert_eq!(value_of(&t, long), Some(6u64.to_le_bytes().to_vec()));
        t.upsert(&Key::of(b"a", &seeds), b"a", b"xyz", &Concat, true);
        let mut want = 4u64.to_le_bytes().to_vec();
        want.extend_from_slice(b"xyz");
        assert_eq!(value_of(&t, b"a"), Some(want));
        assert_eq!(value_of(&t, long), Some(6u64.to_le_bytes().to_vec()));
        assert_eq!(value_of(&t, b"b"), Some(5u64.to_le_bytes().to_vec()));
        t.upsert(
            &Key::of(b"b", &seeds),
            b"b",
            &1u64.to_le_bytes(),
            &Concat,
            true,
        );
        assert_eq!(value_of(&t, b"b"), Some(6u64.to_le_bytes().to_vec()));
        assert_eq!(t.len(), 3);
    }
}
