//! GPU embeddings of the shared reference fixture (sentence-transformers' own vectors for
//! all-MiniLM-L6-v2) with the same token ids the CPU encoder feeds its model.

mod common;

use std::time::Instant;

use quiver_encoder::{Encoder, ModelFiles, Pooling, TextKind};
use quiver_gpu::{GpuBert, GpuContext, Precision};
use serde_json::Value;

/// A fixture case: its text and reference vectors by pooling.
struct Case {
    id: String,
    group: String,
    text: String,
    token_ids: Vec<u32>,
    reference: Value,
}

fn cases() -> Vec<Case> {
    let path = common::shared_file("fixtures/all-MiniLM-L6-v2/reference.json");
    let fixture: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    fixture["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| Case {
            id: case["id"].as_str().unwrap().to_owned(),
            group: case["group"].as_str().unwrap().to_owned(),
            text: case["text"].as_str().unwrap().to_owned(),
            token_ids: serde_json::from_value(case["token_ids"].clone()).unwrap(),
            reference: case.clone(),
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Embeds `cases` on the GPU in batches of `batch`, sorted by length as the engine batches,
/// and checks every vector against the reference's `pooling` vectors: cosine ≥ 0.9999 with
/// f32 weights, ≥ 0.999 with f16 ones.
fn check(ctx: &GpuContext, cases: &[&Case], pooling: Pooling, batch: usize, precision: Precision) {
    let files = ModelFiles::read_dir(common::minilm_dir()).unwrap();
    let encoder = Encoder::load(&files).unwrap();
    let started = Instant::now();
    let bert = pollster::block_on(GpuBert::load_with(ctx, &files, precision)).unwrap();
    eprintln!("GpuBert::load: {:.2?}", started.elapsed());
    let ids: Vec<Vec<u32>> = cases.iter().map(|c| encoder.tokenize(&c.text, TextKind::Raw).unwrap()).collect();
    for (case, ids) in cases.iter().zip(&ids) {
        assert_eq!(ids, &case.token_ids, "{}: token ids differ from the reference's", case.id);
    }
    let mut order: Vec<usize> = (0..cases.len()).collect();
    order.sort_by_key(|&i| ids[i].len());
    let dim = bert.config().hidden_size;
    let key = match pooling {
        Pooling::Mean => "mean",
        Pooling::Cls => "cls",
        Pooling::Max => "max",
    };
    let started = Instant::now();
    let mut worst = (1.0f64, String::new());
    for chunk in order.chunks(batch) {
        let sequences: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
        let vectors = pollster::block_on(bert.embed_ids(&sequences, pooling, true)).unwrap();
        assert_eq!(vectors.len(), chunk.len() * dim);
        for (&i, vector) in chunk.iter().zip(vectors.chunks_exact(dim)) {
            let want: Vec<f32> = serde_json::from_value(cases[i].reference[key].clone()).unwrap();
            let similarity = cosine(vector, &want);
            if similarity < worst.0 {
                worst = (similarity, cases[i].id.clone());
            }
        }
    }
    let tokens: usize = ids.iter().map(Vec::len).sum();
    eprintln!(
        "{} cases ({tokens} tokens, {key} pooling, {} weights) in {:.2?}; largest 1 - cosine {:.1e} ({})",
        cases.len(),
        precision.as_str(),
        started.elapsed(),
        1.0 - worst.0,
        worst.1
    );
    let least = match precision {
        Precision::F32 => 0.9999,
        Precision::F16 => 0.999,
    };
    assert!(worst.0 >= least, "{}: cosine {} < {least} against the reference", worst.1, worst.0);
    ctx.check("parity").unwrap();
}

/// The English and degenerate cases, and one long case (truncated to 256 tokens) in a batch
/// of its own: every kernel at every size the fixture has, in under a minute on lavapipe.
/// The other groups differ in their token ids only; `every_case_matches` runs them all.
#[test]
fn short_degenerate_and_long_cases_match() {
    let Some(ctx) = common::context() else { return };
    let cases = cases();
    let short: Vec<&Case> = cases.iter().filter(|c| c.group == "short" || c.group == "degenerate").collect();
    check(&ctx, &short, Pooling::Mean, 8, Precision::F32);
    let long: Vec<&Case> = cases.iter().filter(|c| c.group == "long").take(1).collect();
    check(&ctx, &long, Pooling::Mean, 1, Precision::F32);
}

/// f16 weights (the default where the device has `shader-f16`), on the short cases and the
/// long one.
#[test]
fn f16_weights_match_within_half_precision() {
    let Some(ctx) = common::context() else { return };
    if !ctx.shader_f16() {
        eprintln!("SKIPPED: {} has no shader-f16", ctx.adapter_info().name);
        return;
    }
    let cases = cases();
    let chosen: Vec<&Case> = cases.iter().filter(|c| c.group == "short" || c.group == "long").take(12).collect();
    check(&ctx, &chosen, Pooling::Mean, 8, Precision::F16);
}

#[test]
fn cls_and_max_pooling_match() {
    let Some(ctx) = common::context() else { return };
    let cases = cases();
    let chosen: Vec<&Case> = cases.iter().filter(|c| c.group == "short").take(8).collect();
    check(&ctx, &chosen, Pooling::Cls, 8, Precision::F32);
    check(&ctx, &chosen, Pooling::Max, 8, Precision::F32);
}

/// All 103 cases (several minutes on lavapipe): `cargo test -p quiver-gpu --test parity --
/// --ignored`.
#[test]
#[ignore = "minutes on lavapipe; run with --ignored"]
fn every_case_matches() {
    let Some(ctx) = common::context() else { return };
    let cases = cases();
    check(&ctx, &cases.iter().collect::<Vec<_>>(), Pooling::Mean, 8, Precision::F32);
    if ctx.shader_f16() {
        check(&ctx, &cases.iter().collect::<Vec<_>>(), Pooling::Mean, 8, Precision::F16);
    }
}

#[test]
fn bad_input_is_an_error() {
    let Some(ctx) = common::context() else { return };
    let mut files = ModelFiles::read_dir(common::minilm_dir()).unwrap();
    let bert = pollster::block_on(GpuBert::load(&ctx, &files)).unwrap();
    for bad in [vec![], vec![101, 999_999, 102], vec![101; 513]] {
        let error = pollster::block_on(bert.embed_ids(&[vec![101, 102], bad], Pooling::Mean, true)).unwrap_err();
        assert_eq!(error.code(), "E_INVALID_ARGUMENT", "{error}");
    }
    assert!(pollster::block_on(bert.embed_ids(&[], Pooling::Mean, true)).unwrap().is_empty());
    // Weights that are not what their file name says, or cut short, are the model's error.
    files.weights_format = quiver_encoder::WeightsFormat::Gguf;
    let error = pollster::block_on(GpuBert::load(&ctx, &files)).err().unwrap();
    assert_eq!(error.code(), "E_MODEL_INVALID", "{error}");
    files.weights_format = quiver_encoder::WeightsFormat::Safetensors;
    files.weights = std::sync::Arc::new(files.weights[..1000].to_vec());
    let error = pollster::block_on(GpuBert::load(&ctx, &files)).err().unwrap();
    assert_eq!(error.code(), "E_MODEL_INVALID", "{error}");
}
