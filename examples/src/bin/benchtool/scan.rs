//! The tuned count's tokenizer: a 64-bit bitmap of delimiter positions per 64 bytes (eight
//! bytes at a time: five exact byte compares in SWAR and a multiply that gathers their flags;
//! the crate's 256-entry table for a short last block), then token starts and ends found with
//! shifts and trailing-zero counts, so the loop runs once per token, not per byte.

use examples::tokenize::is_delimiter;

/// Bytes per bitmap.
const BLOCK: usize = 64;

const ONES: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// For each byte of `x`: bit 7 clear when the byte is `c` (exactly: no carry crosses bytes).
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
                                     // The multiply moves byte j's flag to bit 56 + j, with no carries (movemask in SWAR).
    flags.wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// Bit i set when `block[i]` is a delimiter; bits past the block's end are set too, so a
/// token that reaches the end of the data ends there.
#[inline(always)]
fn delimiter_bits(block: &[u8]) -> u64 {
    if let Ok(full) = <&[u8; BLOCK]>::try_from(block) {
        let mut bits = 0;
        for (w, word) in full.chunks_exact(8).enumerate() {
            let x = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            bits |= delimiter_bits_8(x) << (8 * w);
        }
        return bits;
    }
    let mut bits = u64::MAX << block.len();
    for (i, &b) in block.iter().enumerate() {
        bits |= (is_delimiter(b) as u64) << i;
    }
    bits
}

/// Calls `f(start, end)` for every token of `data` (offsets into `data`), in order. The end
/// of `data` ends a token.
#[inline]
pub fn for_each_token(data: &[u8], mut f: impl FnMut(usize, usize)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn plain(data: &[u8]) -> Vec<&[u8]> {
        data.split(|&b| is_delimiter(b))
            .filter(|t| !t.is_empty())
            .collect()
    }

    fn bitmap(data: &[u8]) -> Vec<&[u8]> {
        let mut got = Vec::new();
        for_each_token(data, |s, e| got.push(&data[s..e]));
        got
    }

    #[test]
    fn agrees_with_plain_split_on_random_bytes() {
        let seed = crate::tuned::tests::seed();
        let mut rng = StdRng::seed_from_u64(seed);
        let alphabet = b" \t\n\r\x0c\x0ba\xffz\x00";
        for _ in 0..2000 {
            let len = rng.gen_range(0..300);
            let data: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
            assert_eq!(bitmap(&data), plain(&data), "seed {seed}, data {data:?}");
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
                    "byte {b} at {at}"
                );
            }
        }
    }

    #[test]
    fn block_edges() {
        for n in [0, 1, 63, 64, 65, 127, 128, 129] {
            let word = vec![b'x'; n];
            assert_eq!(bitmap(&word), plain(&word), "{n}");
            let mut spaced = vec![b' '; n];
            spaced.push(b'y');
            assert_eq!(bitmap(&spaced), plain(&spaced), "{n}");
        }
    }
}
