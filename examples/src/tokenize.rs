//! Word splitting as Hadoop's WordCount does it: `StringTokenizer` with its default
//! delimiters (space, tab, newline, carriage return, form feed), on raw bytes.

/// Delimiter lookup table: one load per byte instead of a chain of compares.
static DELIMITERS: [bool; 256] = {
    let mut t = [false; 256];
    t[b' ' as usize] = true;
    t[b'\t' as usize] = true;
    t[b'\n' as usize] = true;
    t[b'\r' as usize] = true;
    t[0x0c] = true;
    t
};

/// Whether `b` separates tokens.
#[inline]
pub fn is_delimiter(b: u8) -> bool {
    DELIMITERS[b as usize]
}

/// Bytes per delimiter bitmap.
const BLOCK: usize = 64;
const ONES: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// For each byte of `x`: bit 7 clear when the byte is `c` (exact: no carry crosses bytes).
#[inline(always)]
fn not_equal(x: u64, c: u8) -> u64 {
    let v = x ^ (ONES * c as u64);
    ((v & LOW7) + LOW7) | v
}

/// Bit j set when byte j of the little-endian word `x` is one of the five delimiters.
#[inline(always)]
fn delimiter_bits_8(x: u64) -> u64 {
    let keep = not_equal(x, b' ')
        & not_equal(x, b'\n')
        & not_equal(x, b'\t')
        & not_equal(x, b'\r')
        & not_equal(x, 0x0c);
    let flags = (!keep & HIGH) >> 7; // bit 0 of each byte
                                     // The multiply gathers byte j's flag into bit 56 + j with no carries (a movemask in SWAR).
    flags.wrapping_mul(0x0102_0408_1020_4080) >> 56
}

#[inline(always)]
fn word_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Bit i set when `block[i]` (at most 64 bytes) is a delimiter; bits past the block's end are
/// set too, so a token that reaches the end of the data ends there. A short block (most lines
/// are) still goes 8 bytes at a time: its last partial word is padded with spaces.
#[inline(always)]
fn delimiter_bits(block: &[u8]) -> u64 {
    if let Ok(full) = <&[u8; BLOCK]>::try_from(block) {
        let mut bits = 0;
        for w in 0..BLOCK / 8 {
            bits |= delimiter_bits_8(word_at(full, 8 * w)) << (8 * w);
        }
        return bits;
    }
    let n = block.len();
    let mut bits = u64::MAX << n; // n < 64 here
    let words = n / 8;
    for w in 0..words {
        bits |= delimiter_bits_8(word_at(block, 8 * w)) << (8 * w);
    }
    if !n.is_multiple_of(8) {
        let mut last = [b' '; 8];
        last[..n % 8].copy_from_slice(&block[8 * words..]);
        bits |= delimiter_bits_8(u64::from_le_bytes(last)) << (8 * words);
    }
    bits
}

/// Calls `f(start, end)` for every token of `data` (offsets into it), in order: the tokenizer
/// for megabytes of text at once (the tuned baseline's reads).
///
/// Why a bitmap: a loop per byte, or per token with a byte loop inside, branches on every
/// word's length and mispredicts about once per word. Here each 64 bytes become one 64-bit
/// map of delimiters (eight bytes per step), token starts and ends are bit operations on it,
/// and the loop runs once per token with a trailing-zero count.
#[inline]
pub fn for_each_token_at(data: &[u8], mut f: impl FnMut(usize, usize)) {
    // Whether the byte before the current block is a delimiter (the start of data counts as
    // one), and the start of a token still open at the end of the previous block.
    let mut prev_delim = 1u64;
    let mut open = usize::MAX;
    for (k, block) in data.chunks(BLOCK).enumerate() {
        let delims = delimiter_bits(block);
        let tokens = !delims;
        // A start is a token byte after a delimiter; an end is a delimiter after a token byte.
        let starts = tokens & ((delims << 1) | prev_delim);
        let ends = delims & ((tokens << 1) | (1 - prev_delim));
        prev_delim = delims >> 63;
        // Starts and ends alternate: no position is both.
        let mut bounds = starts | ends;
        let base = k * BLOCK;
        while bounds != 0 {
            let at = base + bounds.trailing_zeros() as usize;
            bounds &= bounds - 1;
            if open == usize::MAX {
                open = at;
            } else {
                f(open, at);
                open = usize::MAX;
            }
        }
    }
    if open != usize::MAX {
        f(open, data.len());
    }
}

/// Bit 7 of each byte of the result is set at the lowest byte of `x` below 0x21 (and possibly
/// above it): every delimiter is below 0x21, so a zero result means eight token bytes.
/// Borrows only travel upward, so the lowest set bit is exact.
#[inline(always)]
fn below_0x21(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    x.wrapping_sub(ONES * 0x21) & !x & HIGH
}

/// Index of the first delimiter at or after `i`, or `line.len()`.
#[inline(always)]
fn token_end(line: &[u8], mut i: usize) -> usize {
    let n = line.len();
    while i + 8 <= n {
        let word = u64::from_le_bytes([
            line[i],
            line[i + 1],
            line[i + 2],
            line[i + 3],
            line[i + 4],
            line[i + 5],
            line[i + 6],
            line[i + 7],
        ]);
        let m = below_0x21(word);
        if m == 0 {
            i += 8;
            continue;
        }
        i += (m.trailing_zeros() / 8) as usize;
        if is_delimiter(line[i]) {
            return i;
        }
        // A control byte that is not a delimiter belongs to the token.
        i += 1;
    }
    while i < n && !is_delimiter(line[i]) {
        i += 1;
    }
    i
}

/// Calls `f` for every non-empty token of `line`: the mapper's tokenizer. A line (about 60
/// bytes in text) is too short for [`for_each_token_at`]'s bitmaps to pay off: measured on
/// 64 MiB of Zipf text, it ran 10% more instructions than this word-at-a-time scan.
#[inline]
pub fn for_each_token<'a>(line: &'a [u8], mut f: impl FnMut(&'a [u8])) {
    let n = line.len();
    let mut i = 0;
    loop {
        while i < n && is_delimiter(line[i]) {
            i += 1;
        }
        if i >= n {
            return;
        }
        let start = i;
        i = token_end(line, i);
        f(&line[start..i]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // The word-at-a-time scanner must agree with the plain definition on any bytes.
        #[test]
        fn matches_plain_split(line in proptest::collection::vec(
            prop_oneof![any::<u8>(), Just(b' '), Just(b'\t'), Just(0x0b), Just(0x0c), Just(b'a')], 0..300)) {
            let mut got = Vec::new();
            for_each_token(&line, |t| got.push(t.to_vec()));
            let mut bitmap = Vec::new();
            for_each_token_at(&line, |s, e| bitmap.push(line[s..e].to_vec()));
            prop_assert_eq!(&bitmap, &got);
            let want: Vec<Vec<u8>> = line
                .split(|&b| is_delimiter(b))
                .filter(|t| !t.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn swar_matches_the_table_on_every_byte() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut word = [b'a'; 8];
                word[at] = b;
                let want = (is_delimiter(b) as u64) << at;
                assert_eq!(
                    delimiter_bits_8(u64::from_le_bytes(word)),
                    want,
                    "{b} at {at}"
                );
            }
        }
    }

    #[test]
    fn block_edges() {
        let plain = |d: &[u8]| -> Vec<Vec<u8>> {
            d.split(|&b| is_delimiter(b))
                .filter(|t| !t.is_empty())
                .map(<[u8]>::to_vec)
                .collect()
        };
        for n in [0, 1, 7, 8, 9, 63, 64, 65, 127, 128, 129, 200] {
            for data in [vec![b'x'; n], [vec![b' '; n], vec![b'y']].concat()] {
                let mut got = Vec::new();
                for_each_token_at(&data, |s, e| got.push(data[s..e].to_vec()));
                assert_eq!(got, plain(&data), "{n}");
            }
        }
    }

    #[test]
    fn splits_on_hadoop_delimiters_only() {
        let mut got = Vec::new();
        for_each_token(b"  a\tb\x0cc\rd,e  \xff\xfe ", |t| got.push(t.to_vec()));
        assert_eq!(
            got,
            vec![
                b"a".to_vec(),
                b"b".to_vec(),
                b"c".to_vec(),
                b"d,e".to_vec(),
                b"\xff\xfe".to_vec()
            ]
        );
    }
}
