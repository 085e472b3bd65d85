//! `quiver search`: an index searched with a text query, or with many from a queries file.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use quiver::encoder::CrossEncoder;
use quiver::index::{Filter, Rescore, SearchMode, SearchOptions, Strategy};
use quiver::ingest::read_queries;
use quiver::{Engine, SearchResult};
use serde_json::{json, Value};

use crate::args::{FusionArgs, IndexArgs, RerankArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: IndexArgs,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// exact, int8, binary or binary-rescore.
    #[arg(long, default_value = "exact")]
    strategy: Strategy,
    /// binary-rescore: candidates = oversample × k (30 keeps recall@10 ≥ 0.99 on real text).
    #[arg(long, default_value_t = 30)]
    oversample: usize,
    /// binary-rescore: what candidates are rescored with, f32 or int8.
    #[arg(long, default_value = "f32")]
    rescore: Rescore,
    /// Rank by vectors, by keywords (BM25) or both fused: vector, keyword or hybrid.
    #[arg(long, default_value = "vector")]
    mode: SearchMode,
    #[command(flatten)]
    fusion: FusionArgs,
    #[command(flatten)]
    rerank: RerankArgs,
    /// field=value, field!=value, field<n, field<=n, field>n, field>=n, or a JSON object as
    /// the browser takes ('{"price": {"lte": 30}}'); repeatable, all must hold.
    #[arg(long)]
    filter: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Many queries, one per line: a JSON string or {"query", "id"?, "filter"?} (or the
    /// line's text); prints one JSON line of results per query, in order.
    #[arg(long)]
    queries: Option<PathBuf>,
    query: Option<String>,
}

impl Args {
    fn options(&self, filter: Option<Filter>) -> SearchOptions {
        SearchOptions {
            k: self.k,
            strategy: self.strategy,
            oversample: self.oversample,
            rescore: self.rescore,
            filter,
            mode: self.mode,
            fusion: self.fusion.fusion(),
            fusion_candidates: self.fusion.fusion_candidates,
            ..Default::default()
        }
    }
}

/// Searches, then re-ranks the top `--rerank-top` with the cross-encoder when one is given.
fn search(engine: &Engine, args: &Args, query: &str, filter: Option<Filter>) -> Result<Vec<SearchResult>> {
    let options = args.options(filter);
    Ok(match args.rerank.rerank {
        Some(_) => pollster::block_on(engine.search_reranked(query, &options, args.rerank.rerank_top))?,
        None => pollster::block_on(engine.search(query, &options))?,
    })
}

pub fn run(args: Args) -> Result<()> {
    let (index, embedder) = args.target.open()?;
    let mut engine = pollster::block_on(Engine::on_backend(embedder, index))?;
    if let Some(error) = engine.gpu_search_error() {
        eprintln!("the index is searched on the CPU: {error}");
    }
    if let Some(dir) = &args.rerank.rerank {
        engine.set_reranker(CrossEncoder::from_dir(dir)?);
    }
    let filter = (!args.filter.is_empty()).then(|| Filter::parse(&args.filter)).transpose()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();

    if let Some(path) = &args.queries {
        for query in read_queries(path)? {
            let started = Instant::now();
            let filter = query.filter.or_else(|| filter.clone());
            let results = search(&engine, &args, &query.text, filter)?;
            let ms = started.elapsed().as_secs_f64() * 1e3;
            let mut line = json!({ "query": query.text, "results": results, "ms": ms });
            if let Some(id) = query.id {
                line["id"] = id;
            }
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }

    let query = args.query.clone().context("give a query, or --queries FILE.jsonl")?;
    let started = Instant::now();
    let results = search(&engine, &args, &query, filter)?;
    let elapsed = started.elapsed();
    if args.json {
        writeln!(out, "{}", json!({ "query": query, "results": results, "ms": elapsed.as_secs_f64() * 1e3 }))?;
    } else {
        for (rank, r) in results.iter().enumerate() {
            let title =
                ["title", "name", "path"].iter().find_map(|k| r.metadata.get(k).and_then(Value::as_str)).unwrap_or("");
            writeln!(out, "{:>3}. {:.4}  {}  {}", rank + 1, r.score, r.id, title)?;
        }
        eprintln!("{} results in {:.1?}", results.len(), elapsed);
    }
    Ok(())
}
