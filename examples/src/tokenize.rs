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

/// Calls `f` for every non-empty token of `line`.
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
            prop_oneof![any::<u8>(), Just(b' '), Just(b'\t'), Just(0x0b), Just(0x0c), Just(b'a')], 0..80)) {
            let mut got = Vec::new();
            for_each_token(&line, |t| got.push(t.to_vec()));
            let want: Vec<Vec<u8>> = line
                .split(|&b| is_delimiter(b))
                .filter(|t| !t.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
            prop_assert_eq!(got, want);
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
