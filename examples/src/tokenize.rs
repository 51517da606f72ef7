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

/// Calls `f` for every non-empty token of `line`.
#[inline]
pub fn for_each_token(line: &[u8], mut f: impl FnMut(&[u8])) {
    let n = line.len();
    let mut i = 0;
    while i < n {
        while i < n && is_delimiter(line[i]) {
            i += 1;
        }
        let start = i;
        while i < n && !is_delimiter(line[i]) {
            i += 1;
        }
        if i > start {
            f(&line[start..i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
