//! The tuned count's tokenizer: a 64-bit bitmap of delimiter positions per 64 bytes (one
//! lookup in the crate's 256-entry table per byte, no branches), then token starts and ends
//! found with shifts and trailing-zero counts, so the loop runs once per token, not per byte.

use examples::tokenize::is_delimiter;

/// Bytes per bitmap.
const BLOCK: usize = 64;

/// Bit i set when `block[i]` is a delimiter; bits past the block's end are set too, so a
/// token that reaches the end of the data ends there.
#[inline(always)]
fn delimiter_bits(block: &[u8]) -> u64 {
    let mut bits = if block.len() < BLOCK {
        u64::MAX << block.len()
    } else {
        0
    };
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
