//! Byte encodings: the varint record framing of intermediate files, and typed helpers for
//! job keys and values (integers that sort correctly as bytes).

/// Longest varint of a `u64`.
pub const MAX_VARINT_BYTES: usize = 10;

/// Appends `v` as an LEB128 varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint from the front of `buf`: `Some((value, bytes used))`, or `None` when `buf`
/// ends first or the varint is longer than any `u64`.
#[inline]
pub fn get_varint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(MAX_VARINT_BYTES) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Appends one intermediate record: varint key length, varint value length, key, value.
#[inline]
pub fn put_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    put_varint(out, key.len() as u64);
    put_varint(out, value.len() as u64);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

/// Encodes a count as a map output value (8 bytes, little-endian).
#[inline]
pub fn u64_value(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

/// Decodes a value written by [`u64_value`]; other lengths are `None`.
#[inline]
pub fn parse_u64_value(v: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(v.try_into().ok()?))
}

/// A key that sorts in ascending numeric order (big-endian).
pub fn u64_key_ascending(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

/// A key that sorts in descending numeric order.
pub fn u64_key_descending(v: u64) -> [u8; 8] {
    (u64::MAX - v).to_be_bytes()
}

/// Inverse of [`u64_key_descending`].
pub fn parse_u64_key_descending(k: &[u8]) -> Option<u64> {
    Some(u64::MAX - u64::from_be_bytes(k.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varint_round_trip(v in any::<u64>()) {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            prop_assert_eq!(get_varint(&b), Some((v, b.len())));
            prop_assert_eq!(get_varint(&b[..b.len() - 1]), None);
        }

        #[test]
        fn descending_keys_sort_in_reverse(a in any::<u64>(), b in any::<u64>()) {
            prop_assert_eq!(a.cmp(&b), u64_key_descending(b).cmp(&u64_key_descending(a)));
            prop_assert_eq!(parse_u64_key_descending(&u64_key_descending(a)), Some(a));
        }
    }

    #[test]
    fn garbage_varint_is_none() {
        assert_eq!(get_varint(&[0xff; 12]), None);
    }
}
