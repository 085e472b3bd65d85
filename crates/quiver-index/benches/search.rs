//! Search latency for flat f32, int8 and binary + rescore over 10k, 100k and 1M vectors of
//! dimension 384, single-threaded (the search is). Vectors are random and normalised: the
//! scan's cost does not depend on their content.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use quiver_index::{kernels, Document, FlatIndex, IndexConfig, SearchOptions, Strategy};
use rand::{Rng, SeedableRng};

const DIM: usize = 384;

fn index_of(n: usize) -> FlatIndex {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut index = FlatIndex::new(IndexConfig::new(DIM)).unwrap();
    let mut vectors = vec![0f32; 10_000 * DIM];
    for start in (0..n).step_by(10_000) {
        vectors.iter_mut().for_each(|x| *x = rng.gen_range(-1.0..1.0));
        let docs: Vec<Document> = vectors
            .chunks(DIM)
            .enumerate()
            .map(|(i, v)| Document {
                id: (start + i).to_string(),
                vector: v,
                metadata: serde_json::Value::Null,
                text: None,
            })
            .collect();
        index.upsert(&docs).unwrap();
    }
    index.retrain_thresholds();
    index
}

fn search(c: &mut Criterion) {
    eprintln!("kernels: {}", kernels::best().name());
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let query: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let mut group = c.benchmark_group("search-384");
    group.sample_size(20);
    for n in [10_000, 100_000, 1_000_000] {
        let index = index_of(n);
        for (name, strategy) in [
            ("exact-f32", Strategy::Exact),
            ("int8", Strategy::Int8),
            ("binary", Strategy::Binary),
            ("binary-rescore", Strategy::BinaryRescore),
        ] {
            let options = SearchOptions { k: 10, strategy, ..Default::default() };
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| index.search(&query, &options).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, search);
criterion_main!(benches);
