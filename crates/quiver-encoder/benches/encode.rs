//! Encoder throughput (tokens/s) at batch 1 and 32 with the real all-MiniLM-L6-v2
//! (`scripts/setup.sh` fetches it into `models/`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quiver_encoder::{Encoder, TextKind};

fn encode(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2");
    let encoder = Encoder::from_dir(&dir).unwrap_or_else(|e| panic!("{e}: run scripts/setup.sh first"));
    let base = [
        "Stainless steel cocktail shaker with a built-in strainer",
        "A lounge chair with pink velvet upholstery and brass spindle legs adds a touch of glamour to any room.",
        "Laboratory refrigerator for medicines with temperature monitoring and alarm",
        "Hydraulic excavator for deep mining with precision control",
    ];
    let texts: Vec<String> = (0..32).map(|i| format!("{} (item {i})", base[i % base.len()])).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens: usize = texts.iter().map(|t| encoder.tokenize(t, TextKind::Raw).unwrap().len()).sum();

    let mut group = c.benchmark_group("encode-minilm");
    group.sample_size(10);
    group.throughput(Throughput::Elements((tokens / texts.len()) as u64));
    group.bench_function("batch-1", |b| b.iter(|| encoder.embed(&texts[..1], TextKind::Raw, 1).unwrap()));
    group.throughput(Throughput::Elements(tokens as u64));
    group.bench_function("batch-32", |b| b.iter(|| encoder.embed(&texts, TextKind::Raw, 32).unwrap()));
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
