//! GPU search returns what the CPU index returns: the same rows in the same order (ties to
//! the lower row), for exact dot-product and binary Hamming scans.

mod common;

use quiver_gpu::{GpuContext, GpuSearch};
use quiver_index::quantize::{binarize, l2_normalize, words_per_code};
use quiver_index::{Document, FlatIndex, IndexConfig, Metric, SearchOptions, Strategy};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn unit_vectors(rng: &mut StdRng, rows: usize, dim: usize) -> Vec<f32> {
    let mut data: Vec<f32> = (0..rows * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    data.chunks_exact_mut(dim).for_each(l2_normalize);
    data
}

/// A CPU index of `vectors` under the dot metric (stored as given, so both sides scan the
/// same floats), its binary codes, and the GPU index of both.
fn indexes(ctx: &GpuContext, vectors: &[f32], dim: usize) -> (FlatIndex, Vec<u64>, GpuSearch) {
    let mut index = FlatIndex::new(IndexConfig { metric: Metric::Dot, ..IndexConfig::new(dim) }).unwrap();
    let docs: Vec<Document<'_>> = vectors
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, v)| Document { id: i.to_string(), vector: v, metadata: serde_json::Value::Null, text: None })
        .collect();
    index.upsert(&docs).unwrap();
    let codes = codes(&index, index.vectors());
    let gpu = pollster::block_on(GpuSearch::new(ctx, index.vectors(), dim, &codes)).unwrap();
    (index, codes, gpu)
}

/// Binary codes as the index makes them (against its learned thresholds).
fn codes(index: &FlatIndex, vectors: &[f32]) -> Vec<u64> {
    let words = words_per_code(index.dim());
    let mut codes = vec![0u64; vectors.len() / index.dim() * words];
    for (v, code) in vectors.chunks_exact(index.dim()).zip(codes.chunks_exact_mut(words)) {
        binarize(v, index.thresholds(), code);
    }
    codes
}

fn cpu_search(index: &FlatIndex, query: &[f32], k: usize, strategy: Strategy) -> Vec<quiver_index::Hit> {
    index.search(query, &SearchOptions { k, strategy, ..Default::default() }).unwrap()
}

fn assert_exact_matches(index: &FlatIndex, gpu: &GpuSearch, query: &[f32], k: usize) {
    let want = cpu_search(index, query, k, Strategy::Exact);
    let got = pollster::block_on(gpu.search_dot(query, k)).unwrap();
    let rows = |hits: &[_]| -> Vec<usize> { hits.iter().map(|h: &quiver_index::Hit| h.row).collect() };
    assert_eq!(got.iter().map(|h| h.row).collect::<Vec<_>>(), rows(&want), "exact top {k}");
    for (g, w) in got.iter().zip(&want) {
        assert!((g.score - w.score).abs() < 1e-5, "row {}: score {} != {}", g.row, g.score, w.score);
    }
}

fn assert_binary_matches(index: &FlatIndex, gpu: &GpuSearch, query: &[f32], k: usize) {
    let dim = index.dim();
    let want: Vec<(usize, u32)> = cpu_search(index, query, k, Strategy::Binary)
        .iter()
        // The index reports 1 - 2·distance/dim.
        .map(|h| (h.row, ((1.0 - h.score) * dim as f32 / 2.0).round() as u32))
        .collect();
    let query_code = codes(index, query);
    let got: Vec<(usize, u32)> =
        pollster::block_on(gpu.search_hamming(&query_code, k)).unwrap().iter().map(|h| (h.row, h.distance)).collect();
    assert_eq!(got, want, "binary top {k}");
}

#[test]
fn exact_and_binary_top_k_equal_the_cpu_index() {
    let Some(ctx) = common::context() else { return };
    let mut rng = StdRng::seed_from_u64(7);
    let dim = 384;
    // 20,000 rows: several top-k passes (blocks of 1,024).
    let vectors = unit_vectors(&mut rng, 20_000, dim);
    let (index, _, gpu) = indexes(&ctx, &vectors, dim);
    assert_eq!(gpu.len(), 20_000);
    for query in unit_vectors(&mut rng, 3, dim).chunks_exact(dim) {
        // 600: beyond what the passes select on the GPU, read back and selected on the CPU.
        for k in [1, 10, 100, 512, 600] {
            assert_exact_matches(&index, &gpu, query, k);
            assert_binary_matches(&index, &gpu, query, k);
        }
    }
    // An indexed vector finds itself first.
    let hits = pollster::block_on(gpu.search_dot(&vectors[1234 * dim..1235 * dim], 1)).unwrap();
    assert_eq!(hits[0].row, 1234);
    ctx.check("search").unwrap();
}

#[test]
fn ties_go_to_the_lower_row_and_k_beyond_the_rows_gives_every_row() {
    let Some(ctx) = common::context() else { return };
    let dim = 70;
    // Three distinct vectors repeated: every score is tied with a third of the rows.
    let mut rng = StdRng::seed_from_u64(8);
    let distinct = unit_vectors(&mut rng, 3, dim);
    let vectors: Vec<f32> = (0..2_500).flat_map(|i| distinct[(i % 3) * dim..(i % 3 + 1) * dim].to_vec()).collect();
    let (index, _, gpu) = indexes(&ctx, &vectors, dim);
    let query = &distinct[dim..2 * dim];
    for k in [5, 1_000, 3_000] {
        assert_exact_matches(&index, &gpu, query, k);
        assert_binary_matches(&index, &gpu, query, k);
    }
    assert_eq!(pollster::block_on(gpu.search_dot(query, 3_000)).unwrap().len(), 2_500);
}

/// 33,000 rows of 1,024 dimensions are 135 MB: more than one 128 MiB binding, so the
/// vectors are scanned in two chunks.
#[test]
fn an_index_beyond_one_binding_is_split() {
    let Some(ctx) = common::context() else { return };
    let mut rng = StdRng::seed_from_u64(9);
    let dim = 1024;
    let rows = 33_000;
    assert!((rows * dim * 4) as u64 > ctx.max_binding_bytes(), "the test needs a larger index for this device");
    let vectors = unit_vectors(&mut rng, rows, dim);
    let (index, _, gpu) = indexes(&ctx, &vectors, dim);
    let query = unit_vectors(&mut rng, 1, dim);
    assert_exact_matches(&index, &gpu, &query, 20);
    // The last row sits in the second chunk.
    let last = pollster::block_on(gpu.search_dot(&vectors[(rows - 1) * dim..], 1)).unwrap();
    assert_eq!(last[0].row, rows - 1);
}

#[test]
fn bad_queries_are_errors() {
    let Some(ctx) = common::context() else { return };
    let gpu = pollster::block_on(GpuSearch::new(&ctx, &[1.0, 0.0, 0.0, 1.0], 2, &[])).unwrap();
    let error = pollster::block_on(gpu.search_dot(&[1.0], 1)).unwrap_err();
    assert_eq!(error.code(), "E_INVALID_ARGUMENT");
    // Uploaded without codes: no binary search.
    assert_eq!(pollster::block_on(gpu.search_hamming(&[0], 1)).unwrap_err().code(), "E_INVALID_ARGUMENT");
    assert!(pollster::block_on(gpu.search_dot(&[1.0, 0.0], 0)).unwrap().is_empty());
    let error = pollster::block_on(GpuSearch::new(&ctx, &[1.0, 2.0, 3.0], 2, &[])).err().unwrap();
    assert_eq!(error.code(), "E_INVALID_ARGUMENT");
}

// An index is uploaded again after every change; the device's search pipelines are not
// rebuilt for it.
#[test]
fn search_pipelines_are_built_once_per_device() {
    let Some(ctx) = common::context() else { return };
    let first = pollster::block_on(GpuSearch::new(&ctx, &[1.0, 0.0, 0.0, 1.0], 2, &[])).unwrap();
    let built = ctx.pipelines_built();
    assert!(built >= 3, "dot scan, Hamming scan and top-k: {built}");
    for _ in 0..3 {
        let again = pollster::block_on(GpuSearch::new(&ctx, &[0.0, 1.0, 1.0, 0.0], 2, &[])).unwrap();
        assert_eq!(pollster::block_on(again.search_dot(&[1.0, 0.0], 1)).unwrap()[0].row, 1);
    }
    assert_eq!(ctx.pipelines_built(), built);
    assert_eq!(pollster::block_on(first.search_dot(&[1.0, 0.0], 1)).unwrap()[0].row, 0);
}
