//! `quiver bench`: CPU against GPU over batch sizes and sequence lengths, search latency,
//! calibration and first-batch costs.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use quiver::encoder::{Encoder, ModelFiles, TextKind};
use quiver::index::{Document, FlatIndex, IndexConfig, SearchOptions, Strategy};
use quiver::{Backend, BackendChoice, DecisionCache, Embedder, GpuScan};
use serde_json::json;

use super::bench_embed::read_corpus;

/// `quiver bench`: the same shapes on the CPU and on the GPU, side by side.
#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    model: PathBuf,
    /// cpu, gpu or both.
    #[arg(long, value_enum, default_value = "both")]
    backend: BenchBackend,
    /// Batch sizes (sequences per forward pass).
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128")]
    batch_sizes: Vec<usize>,
    /// Sequence lengths in tokens (special tokens included).
    #[arg(long, value_delimiter = ',', default_value = "16,64,128,256")]
    seq_lens: Vec<usize>,
    /// Timed runs per shape, after one untimed; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// A shape whose run is expected to take longer than this is skipped (and says so):
    /// a software adapter such as lavapipe would otherwise take hours.
    #[arg(long, default_value_t = 10.0)]
    max_seconds_per_shape: f64,
    /// Also embed this corpus (JSON Lines of {"text"}) in batches of 32.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Rows of the random unit-vector index searched (exact and binary scans).
    #[arg(long, default_value_t = 100_000)]
    search_rows: usize,
    /// Queries timed per search strategy.
    #[arg(long, default_value_t = 50)]
    queries: usize,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Write the report here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BenchBackend {
    Cpu,
    Gpu,
    Both,
}

/// One backend's run of one shape.
#[derive(serde::Serialize)]
struct ShapeRun {
    backend: Backend,
    batch: usize,
    seq: usize,
    ms_per_batch: Option<f64>,
    tokens_per_s: Option<f64>,
    skipped: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    let files = ModelFiles::read_dir(&args.model)?;
    let mut backends = Vec::new();
    let mut setup = serde_json::Map::new();
    if args.backend != BenchBackend::Gpu {
        let started = Instant::now();
        let embedder = Embedder::cpu(Encoder::load(&files)?);
        setup.insert("cpu_load_ms".into(), json!(ms(started.elapsed())));
        backends.push(embedder);
    }
    if args.backend != BenchBackend::Cpu {
        // A fresh decision cache: calibration runs now, so its cost is measured.
        let auto = pollster::block_on(Embedder::new(
            Encoder::load(&files)?,
            &files,
            BackendChoice::Auto,
            &mut DecisionCache::default(),
        ));
        setup.insert("auto".into(), serde_json::to_value(auto.report())?);
        drop(auto);
        let gpu = pollster::block_on(Embedder::new(
            Encoder::load(&files)?,
            &files,
            BackendChoice::Gpu,
            &mut DecisionCache::default(),
        ));
        let report = gpu.report();
        setup.insert("gpu".into(), serde_json::to_value(&report)?);
        if report.active == Backend::Gpu {
            backends.push(gpu);
        } else {
            eprintln!("no GPU run: {}", report.reason);
        }
    }
    let encoder = Encoder::load(&files)?;
    let sample = sample_ids(&encoder, args.seq_lens.iter().copied().max().unwrap_or(16))?;

    let mut shapes = Vec::new();
    let mut first_batch = serde_json::Map::new();
    let mut corpus_runs = Vec::new();
    for embedder in &backends {
        let backend = embedder.active();
        // The very first batch after loading: lazily compiled pipelines, cold caches.
        let started = Instant::now();
        pollster::block_on(embedder.embed_ids(&[sample[..16.min(sample.len())].to_vec()], 1))?;
        first_batch.insert(backend.to_string(), json!(ms(started.elapsed())));
        let mut tokens_per_s: Option<f64> = None;
        'shapes: for &seq in &args.seq_lens {
            for &batch in &args.batch_sizes {
                let ids = shape(&sample, seq, batch)?;
                let tokens = (seq * batch) as f64;
                let expected = tokens_per_s.map(|rate| tokens / rate * (args.repeats + 1) as f64);
                if let Some(seconds) = expected.filter(|&s| s > args.max_seconds_per_shape) {
                    let skipped =
                        Some(format!("expected {seconds:.0} s at {:.0} tokens/s", tokens_per_s.unwrap_or(0.0)));
                    shapes.push(ShapeRun { backend, batch, seq, ms_per_batch: None, tokens_per_s: None, skipped });
                    continue;
                }
                pollster::block_on(embedder.embed_ids(&ids, batch))?;
                let mut times = Vec::new();
                for _ in 0..args.repeats.max(1) {
                    let started = Instant::now();
                    pollster::block_on(embedder.embed_ids(&ids, batch))?;
                    times.push(ms(started.elapsed()));
                }
                if embedder.active() != backend {
                    // The GPU failed and the CPU took over: these times are not the GPU's.
                    let reason = embedder.report().reason;
                    eprintln!("{backend} stopped: {reason}");
                    let skipped = Some(format!("stopped: {reason}"));
                    shapes.push(ShapeRun { backend, batch, seq, ms_per_batch: None, tokens_per_s: None, skipped });
                    break 'shapes;
                }
                let median = median(&mut times);
                let rate = tokens / (median / 1e3);
                tokens_per_s = Some(rate);
                eprintln!("{backend} seq {seq:>3} batch {batch:>3}: {median:>9.2} ms/batch {rate:>9.0} tokens/s");
                shapes.push(ShapeRun {
                    backend,
                    batch,
                    seq,
                    ms_per_batch: Some(median),
                    tokens_per_s: Some(rate),
                    skipped: None,
                });
            }
        }
        if let Some(corpus) = &args.corpus {
            let texts = read_corpus(corpus, 0)?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let options = quiver::EmbedOptions { kind: TextKind::Raw, ..Default::default() };
            let started = Instant::now();
            pollster::block_on(embedder.embed(&refs, &options))?;
            let seconds = started.elapsed().as_secs_f64();
            let tokens: usize =
                refs.iter().map(|t| encoder.tokenize(t, TextKind::Raw).map_or(0, |ids| ids.len())).sum();
            eprintln!(
                "{backend} corpus: {} docs in {seconds:.2} s, {:.0} tokens/s",
                texts.len(),
                tokens as f64 / seconds
            );
            corpus_runs.push(json!({
                "backend": backend, "docs": texts.len(), "tokens": tokens, "seconds": seconds,
                "tokens_per_s": tokens as f64 / seconds, "docs_per_s": texts.len() as f64 / seconds,
            }));
        }
    }
    let search = search_latency(&args, encoder.dim(), backends.iter().find(|e| e.active() == Backend::Gpu))?;
    let report = json!({
        "model": encoder.id(),
        "versions": { "quiver": env!("CARGO_PKG_VERSION") },
        "cpu": {
            "threads": rayon::current_num_threads(),
            "index_kernels": quiver::index::kernels::best().name(),
        },
        "setup": setup,
        "first_batch_ms": first_batch,
        "shapes": shapes,
        "gpu_over_cpu": ratios(&shapes),
        "corpus": corpus_runs,
        "search": search,
    });
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report → {}", path.display());
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// A token sequence as long as the model takes to cut shapes from: a sample text repeated,
/// truncated, then `[SEP]`.
fn sample_ids(encoder: &Encoder, at_least: usize) -> Result<Vec<u32>> {
    let sentence = "Quiver embeds the catalogue on the device: hiking boots, rain jackets, \
        espresso machines and a cast-iron pan, each described in a sentence or two. ";
    let text = sentence.repeat(at_least / 8 + 1);
    Ok(encoder.tokenize(&text, TextKind::Raw)?)
}

/// `batch` copies of a sequence of exactly `seq` tokens (`[CLS] … [SEP]`).
fn shape(sample: &[u32], seq: usize, batch: usize) -> Result<Vec<Vec<u32>>> {
    if seq < 2 || seq > sample.len() {
        bail!("sequence length {seq} must be 2 to {} (the model's maximum)", sample.len());
    }
    let mut ids = sample[..seq - 1].to_vec();
    ids.push(*sample.last().expect("a sample has [SEP]"));
    Ok(vec![ids; batch])
}

/// GPU tokens/s over CPU tokens/s, shape by shape where both ran.
fn ratios(shapes: &[ShapeRun]) -> Vec<serde_json::Value> {
    let rate = |backend, run: &ShapeRun| {
        shapes
            .iter()
            .find(|s| s.backend == backend && s.batch == run.batch && s.seq == run.seq)
            .and_then(|s| s.tokens_per_s)
    };
    shapes
        .iter()
        .filter(|s| s.backend == Backend::Cpu)
        .filter_map(|run| {
            let (cpu, gpu) = (rate(Backend::Cpu, run)?, rate(Backend::Gpu, run)?);
            Some(json!({ "batch": run.batch, "seq": run.seq, "ratio": gpu / cpu }))
        })
        .collect()
}

/// Median latency of exact and binary scans of a random unit-vector index, on the CPU and
/// (with `gpu`) on the GPU; and whether both found the same rows.
fn search_latency(args: &Args, dim: usize, gpu: Option<&Embedder>) -> Result<serde_json::Value> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut unit = |n: usize| -> Vec<f32> {
        let mut v: Vec<f32> = (0..n * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        v.chunks_exact_mut(dim).for_each(quiver::index::quantize::l2_normalize);
        v
    };
    let vectors = unit(args.search_rows);
    let mut index = FlatIndex::new(IndexConfig::new(dim))?;
    let docs: Vec<Document> = vectors
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, v)| Document { id: i.to_string(), vector: v, metadata: serde_json::Value::Null, text: None })
        .collect();
    index.upsert(&docs)?;
    index.retrain_thresholds();
    let queries = unit(args.queries.max(1));
    let scan = match gpu.and_then(Embedder::gpu_context) {
        Some(ctx) => Some(pollster::block_on(GpuScan::new(&ctx, &index))?),
        None => None,
    };
    let mut out = Vec::new();
    for strategy in [Strategy::Exact, Strategy::Binary] {
        let options = SearchOptions { k: args.k, strategy, ..Default::default() };
        let mut cpu_times = Vec::new();
        let mut cpu_hits = Vec::new();
        for q in queries.chunks_exact(dim) {
            let started = Instant::now();
            cpu_hits.push(index.search(q, &options)?);
            cpu_times.push(ms(started.elapsed()));
        }
        let mut row = json!({
            "strategy": format!("{strategy:?}").to_lowercase(),
            "rows": args.search_rows, "k": args.k, "queries": args.queries.max(1),
            "cpu_ms": median(&mut cpu_times),
        });
        if let Some(scan) = &scan {
            pollster::block_on(scan.search(&index, &queries[..dim], &options))?;
            let (mut times, mut same) = (Vec::new(), 0);
            for (q, want) in queries.chunks_exact(dim).zip(&cpu_hits) {
                let started = Instant::now();
                let got = pollster::block_on(scan.search(&index, q, &options))?;
                times.push(ms(started.elapsed()));
                same += usize::from(got.iter().map(|h| h.row).eq(want.iter().map(|h| h.row)));
            }
            row["gpu_ms"] = json!(median(&mut times));
            row["gpu_same_rows"] = json!(format!("{same}/{}", cpu_hits.len()));
        }
        eprintln!("search {row}");
        out.push(row);
    }
    Ok(json!(out))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
