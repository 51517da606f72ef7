//! Summing u64 counts: the combiner and reducer that wordcount and grep share.

use mapreduce::codec::{parse_u64_value, u64_value};
use mapreduce::{Accumulator, Combiner, CombinerKind, ReduceEmitter, Reducer, Result, ValueSource};

/// Adds two little-endian u64 values.
#[derive(Debug, Clone, Copy, Default)]
pub struct SumCombiner;

impl Combiner for SumCombiner {
    #[inline]
    fn combine(&self, _key: &[u8], acc: &mut Accumulator, value: &[u8]) {
        let total = parse_u64_value(acc)
            .unwrap_or(0)
            .wrapping_add(parse_u64_value(value).unwrap_or(0));
        match <&mut [u8; 8]>::try_from(acc.as_mut_slice()) {
            Ok(slot) => *slot = u64_value(total),
            Err(_) => {
                acc.clear();
                acc.extend_from_slice(&u64_value(total));
            }
        }
    }

    fn kind(&self) -> CombinerKind {
        CombinerKind::SumU64
    }
}

/// Sums a key's counts and writes the total in decimal.
#[derive(Debug, Clone, Copy, Default)]
pub struct SumReducer;

/// Sums the u64 values of one key; a value of the wrong width is an error.
pub fn sum_values(key: &[u8], values: &mut dyn ValueSource) -> Result<u64> {
    let mut total = 0u64;
    while let Some(v) = values.next_value() {
        let n = parse_u64_value(v).ok_or_else(|| {
            mapreduce::Error::user(format!(
                "key {:?}: count value has {} bytes, expected 8",
                String::from_utf8_lossy(key),
                v.len()
            ))
        })?;
        total += n;
    }
    Ok(total)
}

impl Reducer for SumReducer {
    fn reduce(
        &mut self,
        key: &[u8],
        values: &mut dyn ValueSource,
        out: &mut dyn ReduceEmitter,
    ) -> Result<()> {
        let total = sum_values(key, values)?;
        out.emit(key, itoa::Buffer::new().format(total).as_bytes());
        Ok(())
    }
}
