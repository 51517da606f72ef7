//! Word splitting as Hadoop's WordCount does it: `StringTokenizer` with its default
//! delimiters (space, tab, newline, carriage return, form feed), on raw bytes.

/// Whether `b` separates tokens.
#[inline]
pub fn is_delimiter(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c)
}

/// Calls `f` for every non-empty token of `line`.
#[inline]
pub fn for_each_token(line: &[u8], mut f: impl FnMut(&[u8])) {
    let mut start = None;
    for (i, &b) in line.iter().enumerate() {
        match (is_delimiter(b), start) {
            (true, Some(s)) => {
                f(&line[s..i]);
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        f(&line[s..]);
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
