//! The tuned count's hash table: open addressing with linear probing over fixed-size 32-byte
//! entries (two per cache line). A word of up to 16 bytes lives inline in the entry as two
//! little-endian integers and is compared as integers (no pointer chase); a longer word lives
//! in one append-only arena and its entry holds the offset. The hash is a folded 64×64→128-bit
//! multiply (the core of wyhash and foldhash), written here in a few lines.

/// Words up to this many bytes are stored inline.
pub const INLINE_BYTES: usize = 16;

/// Bytes that must be readable after a word's start for [`Table::add_at`] (it loads 16 bytes
/// and masks off what is not the word).
pub const PAD_BYTES: usize = INLINE_BYTES;

const P0: u64 = 0x9E37_79B9_7F4A_7C15;
const P1: u64 = 0xD6E8_FEB8_6659_FD93;
const LEN_MASK: u64 = 0xFFFF_FFFF;

/// One slot. `meta` is the hash's high 32 bits above the word's length; 0 marks an empty slot
/// (no word is empty). `k0`/`k1` are the inline word, zero-padded, or (`k0`) the arena offset.
#[derive(Clone, Copy, Default, Debug)]
pub struct Entry {
    k0: u64,
    k1: u64,
    meta: u64,
    /// Occurrences of the word.
    pub count: u64,
}

impl Entry {
    /// The word's length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        (self.meta & LEN_MASK) as usize
    }

    fn is_empty(&self) -> bool {
        self.meta == 0
    }

    /// The word's bytes: in the arena, or copied into `inline`.
    #[inline]
    pub fn word<'a>(&'a self, arena: &'a [u8], inline: &'a mut [u8; INLINE_BYTES]) -> &'a [u8] {
        let len = self.len();
        if len > INLINE_BYTES {
            let at = self.k0 as usize;
            return &arena[at..at + len];
        }
        inline[..8].copy_from_slice(&self.k0.to_le_bytes());
        inline[8..].copy_from_slice(&self.k1.to_le_bytes());
        &inline[..len]
    }
}

#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = (a as u128) * (b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

#[inline(always)]
fn load_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The low `n` bytes (0..=8) of `x`.
#[inline(always)]
fn low_bytes(x: u64, n: usize) -> u64 {
    if n == 0 {
        0
    } else {
        x & (u64::MAX >> (64 - 8 * n))
    }
}

#[inline(always)]
fn hash_inline(k0: u64, k1: u64, len: usize) -> u64 {
    fold_mul(k0 ^ P0, k1 ^ P1 ^ len as u64)
}

fn hash_long(w: &[u8]) -> u64 {
    let mut h = P0 ^ w.len() as u64;
    let mut at = 0;
    while at + 16 <= w.len() {
        h = fold_mul(h ^ load_u64(w, at), load_u64(w, at + 8) ^ P1);
        at += 16;
    }
    // The last 16 bytes (overlapping the loop's last block; words here are > 16 bytes).
    let end = w.len() - 16;
    fold_mul(h ^ load_u64(w, end) ^ P1, load_u64(w, end + 8) ^ P0)
}

fn meta_of(hash: u64, len: usize) -> u64 {
    (hash & !LEN_MASK) | len as u64
}

/// A token's hashed key, computed ahead of its insertion: an inline word's integers, or (`k0`)
/// a long word's offset in the read buffer.
#[derive(Clone, Copy, Default, Debug)]
pub struct Key {
    k0: u64,
    k1: u64,
    meta: u64,
}

impl Key {
    /// The key of the word `buf[at..at + len]`; `buf` must hold [`PAD_BYTES`] bytes after `at`.
    #[inline(always)]
    pub fn at(buf: &[u8], at: usize, len: usize) -> Key {
        if len > INLINE_BYTES {
            let meta = meta_of(hash_long(&buf[at..at + len]), len);
            return Key {
                k0: at as u64,
                k1: 0,
                meta,
            };
        }
        let (a, b) = (load_u64(buf, at), load_u64(buf, at + 8));
        let (k0, k1) = if len > 8 {
            (a, low_bytes(b, len - 8))
        } else {
            (low_bytes(a, len), 0)
        };
        Key {
            k0,
            k1,
            meta: meta_of(hash_inline(k0, k1, len), len),
        }
    }
}

/// Word → count.
pub struct Table {
    slots: Vec<Entry>,
    /// `64 - log2(slots)`: a slot index is `meta >> shift`, the hash's top bits.
    shift: u32,
    len: usize,
    /// Grow past this many words (5/8 of the slots).
    limit: usize,
    arena: Vec<u8>,
}

impl Table {
    /// A table with room for about `words` words before it grows (at least 1024 slots).
    pub fn with_capacity(words: usize) -> Self {
        let slots = (words * 8 / 5).next_power_of_two().clamp(1 << 10, 1 << 32);
        Table {
            // All-zero entries: the allocator hands out untouched zero pages, so slots that
            // are never used cost address space, not memory.
            slots: vec![Entry::default(); slots],
            shift: 64 - slots.trailing_zeros(),
            len: 0,
            limit: slots / 8 * 5,
            arena: Vec::new(),
        }
    }

    /// Distinct words.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Reads the home slot of every key, so that their cache misses overlap (the loads are
    /// independent) instead of each stalling its own insertion; the result means nothing.
    #[inline(always)]
    pub fn touch(&self, keys: &[Key]) -> u64 {
        keys.iter().fold(0, |x, k| {
            x ^ self.slots[(k.meta >> self.shift) as usize].meta
        })
    }

    /// Adds 1 to the word of `key`, taken from `buf` (the buffer [`Key::at`] read).
    #[inline(always)]
    pub fn add_key(&mut self, buf: &[u8], key: &Key) {
        let len = (key.meta & LEN_MASK) as usize;
        if len > INLINE_BYTES {
            let at = key.k0 as usize;
            return self.add_long(&buf[at..at + len], key.meta, 1);
        }
        self.add_inline(key.k0, key.k1, key.meta, 1);
    }

    /// Adds 1 to the word `buf[at..at + len]`; `buf` must hold [`PAD_BYTES`] bytes after `at`.
    #[inline(always)]
    pub fn add_at(&mut self, buf: &[u8], at: usize, len: usize) {
        self.add_key(buf, &Key::at(buf, at, len));
    }

    /// Adds `n` to the word `w` (the tests' way in; the count goes through [`Key`]s).
    #[cfg(test)]
    pub fn add(&mut self, w: &[u8], n: u64) {
        if w.len() > INLINE_BYTES {
            return self.add_long(w, meta_of(hash_long(w), w.len()), n);
        }
        let mut padded = [0u8; INLINE_BYTES];
        padded[..w.len()].copy_from_slice(w);
        let (k0, k1) = (load_u64(&padded, 0), load_u64(&padded, 8));
        self.add_inline(k0, k1, meta_of(hash_inline(k0, k1, w.len()), w.len()), n);
    }

    #[inline(always)]
    fn add_inline(&mut self, k0: u64, k1: u64, meta: u64, n: u64) {
        let mask = self.slots.len() - 1;
        let mut i = (meta >> self.shift) as usize;
        loop {
            let e = &mut self.slots[i];
            if e.meta == meta && e.k0 == k0 && e.k1 == k1 {
                e.count += n;
                return;
            }
            if e.is_empty() {
                *e = Entry {
                    k0,
                    k1,
                    meta,
                    count: n,
                };
                return self.inserted();
            }
            i = (i + 1) & mask;
        }
    }

    fn add_long(&mut self, w: &[u8], meta: u64, n: u64) {
        let mask = self.slots.len() - 1;
        let mut i = (meta >> self.shift) as usize;
        loop {
            let e = &mut self.slots[i];
            if e.meta == meta && &self.arena[e.k0 as usize..e.k0 as usize + w.len()] == w {
                e.count += n;
                return;
            }
            if e.is_empty() {
                *e = Entry {
                    k0: self.arena.len() as u64,
                    k1: 0,
                    meta,
                    count: n,
                };
                self.arena.extend_from_slice(w);
                return self.inserted();
            }
            i = (i + 1) & mask;
        }
    }

    #[inline(always)]
    fn inserted(&mut self) {
        self.len += 1;
        if self.len > self.limit {
            self.grow();
        }
    }

    /// Doubles the slots. Entries move by their stored hash bits; no word is rehashed.
    #[cold]
    fn grow(&mut self) {
        let bigger = self.slots.len() * 2;
        let old = std::mem::replace(&mut self.slots, vec![Entry::default(); bigger]);
        self.shift -= 1;
        self.limit = bigger / 8 * 5;
        let mask = bigger - 1;
        for e in old.into_iter().filter(|e| !e.is_empty()) {
            let mut i = (e.meta >> self.shift) as usize;
            while !self.slots[i].is_empty() {
                i = (i + 1) & mask;
            }
            self.slots[i] = e;
        }
    }

    /// Adds every word of `other` with its count. The stored hash bits are reused: no word
    /// is hashed again.
    pub fn absorb(&mut self, other: Table) {
        for e in other.slots.iter().filter(|e| !e.is_empty()) {
            let len = e.len();
            if len > INLINE_BYTES {
                let at = e.k0 as usize;
                self.add_long(&other.arena[at..at + len], e.meta, e.count);
            } else {
                self.add_inline(e.k0, e.k1, e.meta, e.count);
            }
        }
    }

    /// The occupied entries and the arena their long words point into.
    pub fn into_entries(self) -> (Vec<Entry>, Vec<u8>) {
        let mut slots = self.slots;
        slots.retain(|e| !e.is_empty());
        // The empty slots' memory goes back before the caller builds its sort keys.
        slots.shrink_to_fit();
        (slots, self.arena)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_inline_and_long_words_across_growth() {
        let mut t = Table::with_capacity(1);
        let words: Vec<Vec<u8>> = (0..5000u32)
            .map(|i| {
                // Distinct names, zero-padded to 1..40 bytes: inline and arena words.
                let mut w = format!("w{i}").into_bytes();
                w.resize(w.len().max(1 + i as usize % 40), b'\0');
                w
            })
            .collect();
        for (i, w) in words.iter().enumerate() {
            for _ in 0..=(i % 3) {
                t.add(w, 1);
            }
        }
        assert_eq!(t.len(), words.len());
        let (entries, arena) = t.into_entries();
        let mut inline = [0u8; INLINE_BYTES];
        let mut got: Vec<(Vec<u8>, u64)> = entries
            .iter()
            .map(|e| (e.word(&arena, &mut inline).to_vec(), e.count))
            .collect();
        got.sort();
        let mut want: Vec<(Vec<u8>, u64)> = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), 1 + (i % 3) as u64))
            .collect();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn a_zero_byte_is_part_of_the_word() {
        let mut t = Table::with_capacity(4);
        t.add(b"a", 1);
        t.add(b"a\0", 1);
        t.add(b"a\0\0\0\0\0\0\0\0", 1);
        assert_eq!(t.len(), 3);
    }
}

#[cfg(test)]
mod probe_check {
    use super::*;

    /// Mean displacement from the home slot of inline and of arena entries, on the file in
    /// `PROBE_FILE` (run by hand: `PROBE_FILE=... cargo test probe -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn probe() {
        let data = std::fs::read(std::env::var("PROBE_FILE").unwrap()).unwrap();
        let mut buf = data.clone();
        buf.extend_from_slice(&[0; PAD_BYTES]);
        let mut t = Table::with_capacity(data.len() / 128);
        examples::tokenize::for_each_token_at(&data, |s, e| t.add_at(&buf, s, e - s));
        let mask = t.slots.len() - 1;
        let (mut n, mut d) = ([0usize; 2], [0usize; 2]);
        for (i, e) in t.slots.iter().enumerate().filter(|(_, e)| !e.is_empty()) {
            let k = (e.len() > INLINE_BYTES) as usize;
            n[k] += 1;
            d[k] += i.wrapping_sub((e.meta >> t.shift) as usize) & mask;
        }
        println!(
            "slots {} inline {} (mean displacement {:.2}), long {} ({:.2})",
            t.slots.len(),
            n[0],
            d[0] as f64 / n[0] as f64,
            n[1],
            d[1] as f64 / n[1] as f64
        );
    }
}
