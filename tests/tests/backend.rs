//! One engine, two backends, with the real model on the real GPU path (lavapipe in CI):
//! `auto` calibrates within its budget and caches the decision, `gpu` embeds and searches
//! as the CPU does, and whatever the GPU cannot do falls back to the CPU with a reason.
//!
//! Without any GPU adapter these tests skip, saying so; under `CI` they fail instead.

use pollster::block_on;
use quiver::backend::{Decision, CALIBRATION_BUDGET};
use quiver::encoder::{Encoder, ModelFiles, TextKind};
use quiver::index::{Document, FlatIndex, IndexConfig, SearchOptions, Strategy};
use quiver::{Backend, BackendChoice, BackendReport, DecisionCache, EmbedOptions, Embedder, Engine};
use quiver_tests::minilm_dir;

const TEXTS: [&str; 3] = ["a cocktail shaker", "Ein Tiefbaubagger für Minen 🚜", "red wine glasses, set of six"];

fn embedder(choice: BackendChoice, decisions: &mut DecisionCache) -> Embedder {
    let files = ModelFiles::read_dir(minilm_dir()).unwrap();
    block_on(Embedder::new(Encoder::load(&files).unwrap(), &files, choice, decisions))
}

/// False (after saying why) when this machine has no GPU adapter at all; CI must have one.
fn has_adapter(report: &BackendReport) -> bool {
    if report.adapter.is_some() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "CI needs a GPU adapter (Mesa's lavapipe): {}", report.reason);
    eprintln!("SKIPPED: no GPU adapter on this machine ({})", report.reason);
    false
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn auto_calibrates_within_its_budget_once_per_model_and_adapter() {
    let mut decisions = DecisionCache::default();
    let first = embedder(BackendChoice::Auto, &mut decisions).report();
    if !has_adapter(&first) {
        return;
    }
    let calibration = first.calibration.clone().expect("a calibration run");
    assert!(!first.cached);
    assert!(
        calibration.total_ms <= CALIBRATION_BUDGET.as_secs_f64() * 1e3 + 5.0,
        "calibration took {} ms",
        calibration.total_ms
    );
    assert_eq!(first.active, calibration.winner(), "{}", first.reason);
    if calibration.conclusive() {
        assert_eq!(decisions.len(), 1);
    } else {
        // Under load the GPU can run out of budget before it had the CPU's time: nothing is
        // cached. The rest of the test then uses this run's outcome as if it had been.
        assert!(decisions.is_empty());
        assert!(first.reason.contains("inconclusive"), "{}", first.reason);
        let encoder = Encoder::from_dir(minilm_dir()).unwrap();
        let key = DecisionCache::key(&encoder, first.adapter.as_ref().unwrap());
        decisions.insert(key, Decision::calibrated(&calibration));
    }

    // Cached: the same decision without a run, also after a round trip through a file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backend.json");
    decisions.save(&path).unwrap();
    let mut reloaded = DecisionCache::load(&path);
    assert_eq!(reloaded.len(), 1);
    let second = embedder(BackendChoice::Auto, &mut reloaded).report();
    assert!(second.cached, "{}", second.reason);
    assert_eq!(second.active, first.active);
    // Times survive the file to within JSON's float parsing.
    let cached = second.calibration.expect("the cached calibration");
    assert_eq!((cached.sequences, cached.gpu_ms.is_some()), (calibration.sequences, calibration.gpu_ms.is_some()));
    assert!((cached.cpu_ms - calibration.cpu_ms).abs() < 1e-9);
    assert_eq!(reloaded.len(), 1, "nothing new to cache");
}

#[test]
fn the_gpu_backend_embeds_as_the_cpu_does() {
    let gpu = embedder(BackendChoice::Gpu, &mut DecisionCache::default());
    let report = gpu.report();
    if !has_adapter(&report) {
        return;
    }
    assert_eq!(report.active, Backend::Gpu, "{}", report.reason);
    let options = EmbedOptions { kind: TextKind::Document, ..Default::default() };
    let on_gpu = block_on(gpu.embed(&TEXTS, &options)).unwrap();
    let on_cpu = quiver::embed(gpu.encoder(), &TEXTS, &options).unwrap();
    // f16 weights where the adapter has shader-f16 (lavapipe has).
    let least = if report.gpu_weights.as_deref() == Some("f16") { 0.999 } else { 0.9999 };
    for (i, (g, c)) in on_gpu.rows().zip(on_cpu.rows()).enumerate() {
        assert!(cosine(g, c) >= least, "text {i}: cosine {} ({:?} weights)", cosine(g, c), report.gpu_weights);
    }
    // Matryoshka cuts and bad input behave as on the CPU.
    let cut = block_on(gpu.embed(&TEXTS[..1], &EmbedOptions { dims: Some(128), ..options })).unwrap();
    assert_eq!(cut.dim, 128);
    let empty = block_on(gpu.embed(&[], &options)).unwrap();
    assert!(empty.is_empty());
    assert_eq!(gpu.active(), Backend::Gpu);
}

#[test]
fn what_the_gpu_cannot_run_falls_back_to_the_cpu_with_a_reason() {
    // A quantized GGUF model: the GPU path reads safetensors only.
    let dir = minilm_dir().with_file_name("all-MiniLM-L6-v2-q8_0");
    if !dir.join("model.gguf").exists() {
        eprintln!("SKIPPED: {} is made by scripts/setup.sh", dir.display());
        return;
    }
    let files = ModelFiles::read_dir(&dir).unwrap();
    let encoder = Encoder::load(&files).unwrap();
    let expected = quiver::embed(&encoder, &TEXTS, &EmbedOptions::default()).unwrap();
    let embedder = block_on(Embedder::new(encoder, &files, BackendChoice::Gpu, &mut DecisionCache::default()));
    let report = embedder.report();
    if !has_adapter(&report) {
        return;
    }
    assert_eq!(report.active, Backend::Cpu);
    assert_eq!(report.fallback_code.as_deref(), Some("E_GPU_UNSUPPORTED"), "{}", report.reason);
    assert!(report.reason.contains("model.gguf"), "{}", report.reason);
    // Nothing is lost: the CPU's vectors, exactly.
    assert_eq!(block_on(embedder.embed(&TEXTS, &EmbedOptions::default())).unwrap(), expected);
}

#[test]
fn the_engine_on_the_gpu_finds_what_the_cpu_finds() {
    let gpu = embedder(BackendChoice::Gpu, &mut DecisionCache::default());
    if !has_adapter(&gpu.report()) {
        return;
    }
    let encoder = gpu.encoder();
    let docs = [
        "a cocktail shaker",
        "a deep mining excavator",
        "red wine glasses",
        "hiking boots for rocky trails",
        "a cast-iron frying pan",
        "espresso machine with milk frother",
        "waterproof rain jacket",
        "children's picture book about whales",
    ];
    let vectors = quiver::embed(encoder, &docs, &EmbedOptions::default()).unwrap();
    let mut index = quiver::new_index(encoder, IndexConfig::new(encoder.dim()), None).unwrap();
    let batch: Vec<Document> = docs
        .iter()
        .zip(vectors.rows())
        .enumerate()
        .map(|(i, (t, v))| Document { id: i.to_string(), vector: v, metadata: serde_json::json!({}), text: Some(t) })
        .collect();
    index.upsert(&batch).unwrap();
    index.retrain_thresholds();
    let cpu_index = FlatIndex::from_bytes(index.to_bytes()).unwrap();
    let engine = block_on(Engine::on_backend(gpu, index)).unwrap();
    for strategy in [Strategy::Exact, Strategy::Binary] {
        let options = SearchOptions { k: 4, strategy, ..Default::default() };
        assert!(engine.searches_on_gpu(&options));
        for query in ["glasses for wine", "boots"] {
            let found = block_on(engine.search(query, &options)).unwrap();
            let vector = quiver::embed(
                engine.encoder(),
                &[query],
                &EmbedOptions { kind: TextKind::Query, batch_size: 1, ..Default::default() },
            )
            .unwrap();
            let want = cpu_index.search(&vector.data, &options).unwrap();
            let ids: Vec<&str> = found.iter().map(|r| r.id.as_str()).collect();
            let want_ids: Vec<&str> = want.iter().map(|h| cpu_index.id(h.row)).collect();
            assert_eq!(ids, want_ids, "{strategy:?} {query:?}");
            for (r, h) in found.iter().zip(&want) {
                assert!((r.score - h.score).abs() < 1e-3, "{strategy:?} {query:?}: {} vs {}", r.score, h.score);
            }
        }
    }

    // A lost device: the CPU index answers from then on, and says why.
    engine.embedder.gpu_context().unwrap().device().destroy();
    let options = SearchOptions { k: 4, ..Default::default() };
    let vector = cpu_index.vector(3).to_vec();
    let found = block_on(engine.search_vector(&vector, &options)).unwrap();
    assert_eq!(found[0].id, "3");
    assert!(!engine.searches_on_gpu(&options));
    let error = engine.gpu_search_error().expect("a reason");
    assert!(error.starts_with("E_GPU_LOST"), "{error}");
}

#[test]
fn a_lost_device_sends_the_work_to_the_cpu_and_says_so() {
    let gpu = embedder(BackendChoice::Gpu, &mut DecisionCache::default());
    if !has_adapter(&gpu.report()) {
        return;
    }
    assert_eq!(gpu.active(), Backend::Gpu);
    // What a driver reset or a tab in the background too long does to the device.
    gpu.gpu_context().unwrap().device().destroy();
    let options = EmbedOptions::default();
    let vectors = block_on(gpu.embed(&TEXTS, &options)).unwrap();
    assert_eq!(vectors, quiver::embed(gpu.encoder(), &TEXTS, &options).unwrap(), "the CPU's vectors");
    let report = gpu.report();
    assert_eq!(report.active, Backend::Cpu);
    assert_eq!(report.fallback_code.as_deref(), Some("E_GPU_LOST"), "{}", report.reason);
    assert!(report.reason.starts_with("fell back to the CPU"), "{}", report.reason);
    assert!(gpu.gpu_context().is_none());
}
