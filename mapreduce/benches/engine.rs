//! Micro-benchmarks of the map-side hot path: the hash-combining buffer and the sorting
//! buffer, on Zipf-distributed words. The end-to-end comparison against baselines is
//! `bench/engine.py`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mapreduce::sort_buffer::{CombineBuffer, MapBuffer, SortBuffer};
use mapreduce::{Accumulator, Combiner, CombinerKind, HashPartitioner, TaskCounters};
use rand::{Rng, SeedableRng};

struct Sum;
impl Combiner for Sum {
    fn combine(&self, _key: &[u8], acc: &mut Accumulator, value: &[u8]) {
        let a = u64::from_le_bytes(acc[..8].try_into().unwrap());
        let b = u64::from_le_bytes(value.try_into().unwrap());
        acc.copy_from_slice(&(a + b).to_le_bytes());
    }
    fn kind(&self) -> CombinerKind {
        CombinerKind::SumU64
    }
}

fn words() -> Vec<Vec<u8>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let vocab: Vec<Vec<u8>> = (0..30_000)
        .map(|_| {
            (0..rng.gen_range(2..11))
                .map(|_| b'a' + rng.gen_range(0..26u8))
                .collect()
        })
        .collect();
    (0..200_000)
        .map(|_| vocab[(rng.gen::<f64>().powi(4) * 30_000.0) as usize].clone())
        .collect()
}

fn bench(c: &mut Criterion) {
    let words = words();
    let one = 1u64.to_le_bytes();
    let mut g = c.benchmark_group("map_buffer");
    g.throughput(Throughput::Elements(words.len() as u64));
    g.bench_function("combine_add", |b| {
        b.iter(|| {
            let mut buf = CombineBuffer::new(64 << 20, Arc::new(Sum), Arc::new(HashPartitioner), 4);
            let mut t = TaskCounters::default();
            for w in &words {
                buf.add(w, &one, &mut t);
            }
            buf
        })
    });
    let dir = tempfile::tempdir().unwrap();
    g.bench_function("sort_add_and_spill", |b| {
        b.iter(|| {
            let mut buf = SortBuffer::new(64 << 20, Arc::new(HashPartitioner), 4);
            let mut t = TaskCounters::default();
            for w in &words {
                buf.add(w, &one, &mut t);
            }
            buf.spill(&dir.path().join("run"), &mut t).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
