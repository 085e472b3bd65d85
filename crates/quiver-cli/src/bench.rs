//! `quiver bench-embed`: the peers harness's `QUIVER_BENCH` interface
//! (`../shared/peers/README.md`): length-sorted batches, one untimed warm-up batch, one
//! timed pass; float32 `[N, dim]` .npy in corpus order and a JSON summary.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use quiver::encoder::{Encoder, TextKind};
use serde_json::json;

#[derive(Args)]
pub struct BenchEmbedArgs {
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
}

pub fn bench_embed(args: BenchEmbedArgs) -> Result<()> {
    if let Some(t) = args.threads {
        std::env::set_var("RAYON_NUM_THREADS", t.to_string());
        let _ = rayon::ThreadPoolBuilder::new().num_threads(t).build_global();
    }
    let encoder = Encoder::from_dir(&args.model)?;
    let file = std::fs::File::open(&args.corpus).with_context(|| format!("opening {}", args.corpus.display()))?;
    let mut texts = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).with_context(|| format!("corpus line {}", i + 1))?;
        texts.push(v["text"].as_str().with_context(|| format!("corpus line {} has no text", i + 1))?.to_owned());
        if args.limit > 0 && texts.len() == args.limit {
            break;
        }
    }
    if texts.is_empty() {
        bail!("{} holds no texts", args.corpus.display());
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let n_tokens: usize = refs
        .iter()
        .map(|t| encoder.tokenize(t, TextKind::Raw).map(|ids| ids.len()))
        .sum::<quiver::encoder::Result<usize>>()?;

    // Warm-up: the longest batch, as the timed pass starts with it.
    let mut by_len: Vec<usize> = (0..refs.len()).collect();
    by_len.sort_by_key(|&i| std::cmp::Reverse(refs[i].len()));
    let warm: Vec<&str> = by_len.iter().take(args.batch_size).map(|&i| refs[i]).collect();
    encoder.embed(&warm, TextKind::Raw, args.batch_size)?;

    let started = Instant::now();
    let vectors = encoder.embed(&refs, TextKind::Raw, args.batch_size)?;
    let seconds = started.elapsed().as_secs_f64();

    let file = std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    quiver::index::npy::write_npy(std::io::BufWriter::new(file), &vectors.data, vectors.len(), vectors.dim)?;
    let threads = args.threads.or_else(|| std::env::var("RAYON_NUM_THREADS").ok().and_then(|t| t.parse().ok()));
    let report = json!({
        "peer": "quiver",
        "variant": "cpu-f32",
        "n_docs": texts.len(),
        "n_tokens": n_tokens,
        "seconds": seconds,
        "docs_per_s": texts.len() as f64 / seconds,
        "tokens_per_s": n_tokens as f64 / seconds,
        "threads": threads,
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
