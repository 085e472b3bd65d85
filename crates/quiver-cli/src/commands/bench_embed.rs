//! `quiver bench-embed`: the peers harness's `QUIVER_BENCH` interface
//! (`../shared/peers/README.md`): length-sorted batches, one untimed warm-up batch, one
//! timed pass; float32 `[N, dim]` .npy in corpus order and a JSON summary.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use quiver::encoder::TextKind;
use quiver::ingest::{read_records, Fields, Format};
use quiver::Backend;
use serde_json::json;

use crate::args::BackendArgs;
use crate::load::load_embedder;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    model: PathBuf,
    /// JSON Lines of {"id", "text"}.
    #[arg(long)]
    corpus: PathBuf,
    /// Embed the first N texts (0: all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Recorded in the JSON; set the worker count with the global --threads (the harness
    /// passes it here, so it is applied here too).
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    json: PathBuf,
    #[command(flatten)]
    backend: BackendArgs,
}

/// The texts of a JSON Lines corpus of {"text"}, the first `limit` (0: all).
pub fn read_corpus(path: &Path, limit: usize) -> Result<Vec<String>> {
    let fields = Fields { text: vec!["text".into()], id: "id".into(), metadata: Some(Vec::new()) };
    let records = read_records(path, Some(Format::Jsonl), &fields)?;
    let limit = if limit == 0 { usize::MAX } else { limit };
    let texts: Vec<String> = records.take(limit).map(|r| r.map(|r| r.text)).collect::<quiver::Result<_>>()?;
    if texts.is_empty() {
        bail!("{} holds no texts", path.display());
    }
    Ok(texts)
}

pub fn run(args: Args) -> Result<()> {
    if let Some(t) = args.threads {
        std::env::set_var("RAYON_NUM_THREADS", t.to_string());
        let _ = rayon::ThreadPoolBuilder::new().num_threads(t).build_global();
    }
    let embedder = load_embedder(&args.model, &Default::default(), args.backend)?;
    let encoder = embedder.encoder();
    let texts = read_corpus(&args.corpus, args.limit)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let n_tokens: usize = refs
        .iter()
        .map(|t| encoder.tokenize(t, TextKind::Raw).map(|ids| ids.len()))
        .sum::<quiver::encoder::Result<usize>>()?;

    // Warm-up: the longest batch, as the timed pass starts with it.
    let mut by_len: Vec<usize> = (0..refs.len()).collect();
    by_len.sort_by_key(|&i| std::cmp::Reverse(refs[i].len()));
    let warm: Vec<&str> = by_len.iter().take(args.batch_size).map(|&i| refs[i]).collect();
    let options = quiver::EmbedOptions { kind: TextKind::Raw, batch_size: args.batch_size, ..Default::default() };
    pollster::block_on(embedder.embed(&warm, &options))?;

    let started = Instant::now();
    let vectors = pollster::block_on(embedder.embed(&refs, &options))?;
    let seconds = started.elapsed().as_secs_f64();

    let file = std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    quiver::index::npy::write_npy(std::io::BufWriter::new(file), &vectors.data, vectors.len(), vectors.dim)?;
    let threads = args.threads.or_else(|| std::env::var("RAYON_NUM_THREADS").ok().and_then(|t| t.parse().ok()));
    let report = json!({
        "peer": "quiver",
        "variant": match embedder.report().gpu_weights.filter(|_| embedder.active() == Backend::Gpu) {
            Some(weights) => format!("wgpu-{weights}-weights"),
            // Quantized products name their kernels: an AVX-512 figure is not a laptop's.
            None => match encoder.weights() {
                quantized @ ("q8_0" | "q4_0") => format!("cpu-{quantized}-{}", quiver::encoder::int8_kernels()),
                float => format!("cpu-{float}"),
            },
        },
        "backend": embedder.report(),
        "n_docs": texts.len(),
        "n_tokens": n_tokens,
        "seconds": seconds,
        "docs_per_s": texts.len() as f64 / seconds,
        "tokens_per_s": n_tokens as f64 / seconds,
        "threads": threads,
        "int8_kernels": quiver::encoder::int8_kernels(),
        "batch_size": args.batch_size,
        "model": encoder.id(),
        "versions": { "quiver": env!("CARGO_PKG_VERSION"), "candle-core": "0.11.1" },
    });
    std::fs::write(&args.json, serde_json::to_vec_pretty(&report)?)?;
    eprintln!(
        "{} docs, {} tokens in {:.2} s: {:.1} docs/s, {:.0} tokens/s",
        texts.len(),
        n_tokens,
        seconds,
        texts.len() as f64 / seconds,
        n_tokens as f64 / seconds
    );
    Ok(())
}
