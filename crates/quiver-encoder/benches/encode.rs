//! Encoder throughput (tokens/s) with the real all-MiniLM-L6-v2 (`scripts/setup.sh` fetches
//! it into `models/`): at batch 1 and 32, and per weight format (f32, f16, q8_0, q4_0) on 200
//! Debian package synopses (`data/debian-synopses.jsonl`, `scripts/fetch-data.sh`).

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quiver_encoder::{quantize_model, Encoder, ModelFiles, Quantization, TextKind};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn encode(c: &mut Criterion) {
    let dir = root().join("models/all-MiniLM-L6-v2");
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

fn formats(c: &mut Criterion) {
    let files = ModelFiles::read_dir(root().join("models/all-MiniLM-L6-v2"))
        .unwrap_or_else(|e| panic!("{e}: run scripts/setup.sh first"));
    let synopses = std::fs::read_to_string(root().join("data/debian-synopses.jsonl"))
        .unwrap_or_else(|e| panic!("data/debian-synopses.jsonl: {e}: run scripts/fetch-data.sh first"));
    let texts: Vec<String> = synopses
        .lines()
        .take(200)
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["text"].as_str().unwrap().to_owned())
        .collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();

    let mut group = c.benchmark_group("encode-minilm-formats");
    group.sample_size(10);
    let formats = std::iter::once(("f32", files.clone())).chain(Quantization::ALL.into_iter().map(|to| {
        let mut quantized = files.clone();
        quantized.insert("model.gguf", quantize_model(&files, to).unwrap());
        (to.name(), quantized)
    }));
    for (name, files) in formats {
        let encoder = Encoder::load(&files).unwrap();
        let tokens: usize = texts.iter().map(|t| encoder.tokenize(t, TextKind::Raw).unwrap().len()).sum();
        group.throughput(Throughput::Elements(tokens as u64));
        group.bench_function(name, |b| b.iter(|| encoder.embed(&texts, TextKind::Raw, 32).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, encode, formats);
criterion_main!(benches);
