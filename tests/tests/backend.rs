//! One engine, two backends, with the real model on the real GPU path (lavapipe in CI):
//! `auto` caches a conclusive calibration and follows cached decisions, `gpu` embeds and searches
//! as the CPU does (float and quantized models), and whatever the GPU cannot do falls back to the CPU with a reason.
//!
//! Without any GPU adapter these tests skip, saying so; under `CI` they fail instead.

use pollster::block_on;
use quiver::backend::{AdapterSummary, Decision, CALIBRATION_BUDGET};
use quiver::encoder::{Encoder, ModelFiles, TextKind, WeightsFormat};
use quiver::index::{Document, FlatIndex, IndexConfig, SearchOptions, Strategy};
use quiver::{Backend, BackendChoice, BackendOptions, BackendReport, DecisionCache, EmbedOptions, Embedder, Engine};
use quiver_tests::{cosine, e5_dir, minilm_dir};

const TEXTS: [&str; 3] = ["a cocktail shaker", "Ein Tiefbaubagger für Minen 🚜", "red wine glasses, set of six"];

fn embedder(options: impl Into<BackendOptions>, decisions: &mut DecisionCache) -> Embedder {
    let files = ModelFiles::read_dir(minilm_dir()).unwrap();
    block_on(Embedder::new(Encoder::load(&files).unwrap(), &files, options, decisions))
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

/// Loads the model under `auto` with this calibration budget.
fn auto(budget_ms: f64, decisions: &mut DecisionCache) -> BackendReport {
    embedder(BackendOptions::from(BackendChoice::Auto).with_budget_ms(budget_ms).unwrap(), decisions).report()
}

// Whatever the machine's speed and load: a conclusive run is cached, an inconclusive one
// (the GPU ran out of budget before it had the CPU's time) is not, and says so.
#[test]
fn auto_caches_a_conclusive_calibration_and_says_when_it_was_not() {
    let mut decisions = DecisionCache::default();
    let report = auto(CALIBRATION_BUDGET.as_secs_f64() * 1e3, &mut decisions);
    if !has_adapter(&report) {
        return;
    }
    let calibration = report.calibration.clone().expect("a calibration run");
    assert!(!report.cached);
    assert_eq!(calibration.budget_ms, Some(300.0));
    assert!(calibration.gpu_allowed_ms.is_none_or(|allowed| allowed <= 300.0), "{calibration:?}");
    assert_eq!(report.active, calibration.winner(), "{}", report.reason);
    assert!(report.reason.starts_with("calibrated now"), "{}", report.reason);
    if calibration.conclusive() {
        assert_eq!(decisions.len(), 1);
        assert!(!report.reason.contains("inconclusive"), "{}", report.reason);
    } else {
        assert!(decisions.is_empty());
        assert!(report.reason.contains("inconclusive"), "{}", report.reason);
    }
}

// A budget the slowest GPU fits in makes the run conclusive: the decision is cached, and
// the next load (here after a round trip through a file) reuses it without a run.
#[test]
fn a_long_enough_budget_is_conclusive_and_the_next_load_reuses_the_decision() {
    let mut decisions = DecisionCache::default();
    let first = auto(600_000.0, &mut decisions);
    if !has_adapter(&first) {
        return;
    }
    let calibration = first.calibration.clone().expect("a calibration run");
    assert!(calibration.conclusive(), "{}", first.reason);
    assert_eq!(decisions.len(), 1);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backend.json");
    decisions.save(&path).unwrap();
    let mut reloaded = DecisionCache::load(&path);
    assert_eq!(reloaded.len(), 1);
    let second = auto(600_000.0, &mut reloaded);
    assert!(second.cached, "{}", second.reason);
    assert_eq!(second.active, first.active);
    assert_eq!(second.adapter, first.adapter);
    // Times survive the file to within JSON's float parsing.
    let cached = second.calibration.expect("the cached calibration");
    assert_eq!((cached.sequences, cached.gpu_ms.is_some()), (calibration.sequences, calibration.gpu_ms.is_some()));
    assert!((cached.cpu_ms - calibration.cpu_ms).abs() < 1e-9);
    assert_eq!(reloaded.len(), 1, "nothing new to cache");
}

// Seeded decisions, both ways: a cached GPU decision runs on the GPU without a calibration;
// a cached CPU decision does not even open the GPU.
#[test]
fn cached_decisions_are_followed_without_calibrating() {
    let probe = embedder(BackendChoice::Gpu, &mut DecisionCache::default());
    let report = probe.report();
    if !has_adapter(&report) {
        return;
    }
    let adapter = report.adapter.clone().unwrap();
    let key = DecisionCache::key(probe.encoder(), &adapter);
    drop(probe);
    for backend in [Backend::Gpu, Backend::Cpu] {
        let mut decisions = DecisionCache::default();
        let reason = format!("seeded: {backend}");
        let decision = Decision {
            backend,
            reason: reason.clone(),
            fallback_code: None,
            calibration: None,
            adapter: Some(adapter.clone()),
        };
        decisions.insert(key.clone(), decision);
        let loaded = embedder(BackendChoice::Auto, &mut decisions);
        let report = loaded.report();
        assert!(report.cached, "{}", report.reason);
        assert_eq!(report.active, backend, "{}", report.reason);
        assert!(report.reason.ends_with(&reason), "{}", report.reason);
        assert!(report.calibration.is_none(), "no calibration run");
        assert_eq!(report.adapter.as_ref(), Some(&adapter));
        assert_eq!(loaded.gpu_context().is_some(), backend == Backend::Gpu, "the GPU is opened only to be used");
        assert_eq!(decisions.len(), 1, "nothing new to cache");
        let vectors = block_on(loaded.embed(&TEXTS, &EmbedOptions::default())).unwrap();
        assert_eq!(vectors.len(), TEXTS.len());
    }
}

/// A decision another build of Quiver cached (its kernels may compute otherwise) is not
/// followed: keys name the build, not only the crate version, which no commit changes.
#[test]
fn decisions_of_another_build_are_not_followed() {
    let probe = embedder(BackendChoice::Cpu, &mut DecisionCache::default());
    let adapter = AdapterSummary {
        name: "an adapter".into(),
        api: "vulkan".into(),
        device_type: "cpu".into(),
        driver: "a driver".into(),
        shader_f16: false,
    };
    let key = DecisionCache::key(probe.encoder(), &adapter);
    let (head, build) = key.rsplit_once("| quiver ").unwrap();
    assert!(build.starts_with(concat!(env!("CARGO_PKG_VERSION"), "+")), "{key}");
    let decision = Decision {
        backend: Backend::Cpu,
        reason: "seeded".into(),
        fallback_code: None,
        calibration: None,
        adapter: None,
    };
    let mut decisions = DecisionCache::default();
    decisions.insert(format!("{head}| quiver {}", env!("CARGO_PKG_VERSION")), decision.clone());
    assert!(decisions.get(&key).is_none());
    assert!(decisions.cpu_for_model(probe.encoder()).is_none(), "another build's decision");
    decisions.insert(key, decision);
    assert!(decisions.cpu_for_model(probe.encoder()).is_some(), "this build's decision");
}

#[test]
fn a_calibration_budget_must_be_a_positive_number_of_milliseconds() {
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e12] {
        let error = BackendOptions::default().with_budget_ms(bad).unwrap_err();
        assert_eq!(error.code(), "E_INVALID_ARGUMENT", "{bad}: {error}");
    }
    let options = BackendOptions::default().with_budget_ms(1500.0).unwrap();
    assert_eq!(options.calibration_budget.as_millis(), 1500);
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

// One checkpoint reader serves both encoders: GGUF models (Q8_0, Q4_0, and the 4-bit
// multilingual-e5-small) run on the GPU and give the CPU's vectors for the same weights.
#[test]
fn quantized_models_run_on_the_gpu_as_on_the_cpu() {
    let minilm = minilm_dir();
    for dir in
        [minilm.with_file_name("all-MiniLM-L6-v2-q8_0"), minilm.with_file_name("all-MiniLM-L6-v2-q4_0"), e5_dir()]
    {
        let files = ModelFiles::read_dir(&dir).unwrap();
        assert_eq!(files.weights_format, WeightsFormat::Gguf, "{}", dir.display());
        let encoder = Encoder::load(&files).unwrap();
        let embedder = block_on(Embedder::new(encoder, &files, BackendChoice::Gpu, &mut DecisionCache::default()));
        let report = embedder.report();
        if !has_adapter(&report) {
            return;
        }
        assert_eq!(report.active, Backend::Gpu, "{}: {}", dir.display(), report.reason);
        let options = EmbedOptions { kind: TextKind::Document, ..Default::default() };
        let on_gpu = block_on(embedder.embed(&TEXTS, &options)).unwrap();
        let on_cpu = quiver::embed(embedder.encoder(), &TEXTS, &options).unwrap();
        let worst = on_gpu.rows().zip(on_cpu.rows()).map(|(g, c)| cosine(g, c)).fold(1f32, f32::min);
        eprintln!("{}: worst cosine {worst:.6} between GPU and CPU", dir.display());
        assert!(worst >= 0.999, "{}: cosine {worst}", dir.display());
    }
}

#[test]
fn what_the_gpu_cannot_run_falls_back_to_the_cpu_with_a_reason() {
    // all-MiniLM-L6-v2's weights read as 3 heads of 128 dimensions: the CPU runs that, the
    // GPU's attention kernel takes heads of at most 64.
    let mut files = ModelFiles::read_dir(minilm_dir()).unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&files.config).unwrap();
    config["num_attention_heads"] = 3.into();
    files.config = serde_json::to_vec(&config).unwrap();
    let encoder = Encoder::load(&files).unwrap();
    let expected = quiver::embed(&encoder, &TEXTS, &EmbedOptions::default()).unwrap();
    let embedder = block_on(Embedder::new(encoder, &files, BackendChoice::Gpu, &mut DecisionCache::default()));
    let report = embedder.report();
    if !has_adapter(&report) {
        return;
    }
    assert_eq!(report.active, Backend::Cpu);
    assert_eq!(report.fallback_code.as_deref(), Some("E_GPU_UNSUPPORTED"), "{}", report.reason);
    assert!(report.reason.contains("attention heads of 128"), "{}", report.reason);
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
                engine.encoder().unwrap(),
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
    engine.embedder().unwrap().gpu_context().unwrap().device().destroy();
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
