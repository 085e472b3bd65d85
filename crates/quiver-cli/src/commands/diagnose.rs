//! `quiver diagnose`: how similarities are spread on a corpus, what that reveals, and why a
//! query's top results are there.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use quiver::diagnose::{
    cross_similarities, discrimination_findings, pair_similarities, spread_sample, unit_rows, Distribution, Finding,
    DEGENERATE, PAIR_SAMPLE,
};
use quiver::encoder::{Encoder, TextKind};
use quiver::eval::{embed_set, index_set, BeirSet};
use quiver::index::keyword::analyze;
use quiver::index::{FlatIndex, Query, SearchMode, SearchOptions, Strategy};
use quiver::ingest::read_queries;
use quiver::{EmbedOptions, SearchResult};
use serde_json::{json, Value};

use crate::args::OverrideArgs;
use crate::load::{load_encoder, model_dir_for};

#[derive(clap::Args)]
pub struct Args {
    /// Model folder (default: the index's model under models/).
    #[arg(long)]
    model: Option<PathBuf>,
    /// An index file to diagnose (texts come from its metadata).
    #[arg(long, conflicts_with = "data")]
    index: Option<PathBuf>,
    /// Or a BEIR folder: its corpus is indexed in memory, its queries used.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Queries, one per line (a JSON string, {"query": …} or plain text), for the
    /// query–document distribution.
    #[arg(long)]
    queries: Option<PathBuf>,
    /// Explain this query's top results: score, rank under each index kind, keyword overlap.
    #[arg(long)]
    query: Option<String>,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Draw the histograms to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

/// What is being diagnosed: an index, its documents' texts (when known) and queries.
struct Subject {
    encoder: Encoder,
    index: FlatIndex,
    texts: Vec<Option<String>>,
    queries: Vec<String>,
}

fn subject(args: &Args) -> Result<Subject> {
    let mut queries = match &args.queries {
        Some(path) => read_queries(path)?.into_iter().map(|q| q.text).collect(),
        None => Vec::new(),
    };
    if let Some(dir) = &args.data {
        let set = BeirSet::load(dir, "test")
            .or_else(|_| BeirSet::load(dir, "dev"))
            .with_context(|| format!("reading the BEIR folder {}", dir.display()))?;
        let model = args.model.clone().context("--model is needed with --data")?;
        let encoder = load_encoder(&model, &OverrideArgs::default())?;
        let embedded = embed_set(&encoder, &set, 32)?;
        let index = index_set(&encoder, &set, &embedded.documents, None)?;
        let texts = set.corpus.iter().map(|d| Some(d.full_text())).collect();
        if queries.is_empty() {
            queries = set.queries.iter().map(|q| q.text.clone()).collect();
        }
        return Ok(Subject { encoder, index, texts, queries });
    }
    let path = args.index.as_ref().context("give --index FILE or --data BEIR_DIR")?;
    let index = FlatIndex::open(path)?;
    let encoder = load_encoder(&model_dir_for(&index, args.model.clone())?, &OverrideArgs::default())?;
    let texts = (0..index.len())
        .map(|row| {
            let result = SearchResult { id: String::new(), score: 0.0, metadata: index.metadata(row).clone() };
            let text = quiver::document_text(&result);
            (!index.metadata(row).is_null()).then_some(text)
        })
        .collect();
    Ok(Subject { encoder, index, texts, queries })
}

pub fn run(args: Args) -> Result<()> {
    let Subject { encoder, index, texts, queries } = subject(&args)?;
    if index.is_empty() {
        bail!("the index is empty: nothing to diagnose");
    }
    let dim = index.dim();
    let options = |kind| quiver::options_for(&index, &encoder, &EmbedOptions { kind, ..Default::default() });
    let documents = unit_rows(index.vectors(), dim);

    let sample = spread_sample(index.len(), PAIR_SAMPLE);
    let (pair_values, duplicates) = pair_similarities(&documents, dim, &sample);
    let doc_dist = Distribution::new(&pair_values, 40);
    let query_dist = if queries.is_empty() {
        None
    } else {
        let refs: Vec<&str> = queries.iter().map(String::as_str).collect();
        let vectors = quiver::embed(&encoder, &refs, &options(TextKind::Query))?;
        Some(Distribution::new(&cross_similarities(&unit_rows(&vectors.data, dim), &documents, dim), 40))
    };

    let mut findings = discrimination_findings(&doc_dist, query_dist.as_ref());
    if !duplicates.is_empty() {
        findings.push(Finding {
            code: "near_duplicates",
            message: format!(
                "{} document pairs with cosine ≥ 0.98{}: duplicates crowd the top results",
                duplicates.len(),
                if sample.len() < index.len() {
                    format!(" among {} sampled documents", sample.len())
                } else {
                    String::new()
                }
            ),
        });
    }
    let empty = quiver::embed(&encoder, &[""], &options(TextKind::Document))?;
    let mut empty_scores = vec![0.0; index.len()];
    quiver::index::kernels::best().dot_f32(&unit_rows(&empty.data, dim), &documents, &mut empty_scores);
    let degenerate: Vec<(usize, &'static str)> = (0..index.len())
        .filter_map(|row| match &texts[row] {
            Some(t) if t.trim().chars().count() < 3 => Some((row, "empty or nearly empty text")),
            _ if empty_scores[row] >= DEGENERATE => Some((row, "embeds like an empty text")),
            _ => None,
        })
        .collect();
    if !degenerate.is_empty() {
        findings.push(Finding {
            code: "degenerate_texts",
            message: format!("{} documents are empty or carry almost no meaning for the model", degenerate.len()),
        });
    }

    if let Some(path) = &args.plot {
        let mut series = vec![("document–document", &doc_dist)];
        if let Some(q) = &query_dist {
            series.push(("query–document", q));
        }
        crate::plot::histograms(path, &format!("Cosine similarities, {}", encoder.id()), &series)?;
        eprintln!("histogram → {}", path.display());
    }

    let explained = args.query.as_deref().map(|q| explain(&encoder, &index, &texts, q, args.k)).transpose()?;
    let pair = |p: &quiver::diagnose::Pair| json!({"a": index.id(p.a), "b": index.id(p.b), "cosine": p.cosine});
    if args.json {
        let out = json!({
            "model": encoder.id(),
            "documents": index.len(),
            "sampled_documents": sample.len(),
            "document_document": doc_dist,
            "query_document": query_dist,
            "near_duplicates": duplicates.iter().take(100).map(pair).collect::<Vec<_>>(),
            "degenerate": degenerate.iter().map(|(row, why)| json!({"id": index.id(*row), "why": why})).collect::<Vec<_>>(),
            "findings": findings,
            "explain": explained,
        });
        println!("{out}");
        return Ok(());
    }

    println!("{} documents ({} sampled for pairs), model {}", index.len(), sample.len(), encoder.id());
    print_distribution("document–document", &doc_dist);
    if let Some(q) = &query_dist {
        print_distribution("query–document", q);
    }
    for p in duplicates.iter().take(10) {
        println!("  near-duplicate  {:.4}  {}  ~  {}", p.cosine, index.id(p.a), index.id(p.b));
    }
    for (row, why) in degenerate.iter().take(10) {
        println!("  degenerate      {}: {why}", index.id(*row));
    }
    if findings.is_empty() {
        println!("no problems found");
    }
    for f in &findings {
        println!("! {}: {}", f.code, f.message);
    }
    if let Some(Value::Array(rows)) = &explained {
        println!("\nwhy these results ({} ranks within the top 100 of each index kind):", rows.len());
        println!(
            "{:>4} {:>8}  {:<28} {:>5} {:>6} {:>6} {:>7} {:>7}  keyword overlap",
            "rank", "score", "id", "int8", "binary", "b+resc", "keyword", "hybrid"
        );
        for r in rows {
            let rank = |k: &str| r["ranks"][k].as_u64().map_or("-".to_owned(), |n| n.to_string());
            println!(
                "{:>4} {:>8.4}  {:<28} {:>5} {:>6} {:>6} {:>7} {:>7}  {}",
                r["rank"].as_u64().unwrap_or_default(),
                r["score"].as_f64().unwrap_or_default(),
                r["id"].as_str().unwrap_or_default(),
                rank("int8"),
                rank("binary"),
                rank("binary-rescore"),
                rank("keyword"),
                rank("hybrid"),
                r["keyword_overlap"]
                    .as_array()
                    .map(|t| t.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

fn print_distribution(name: &str, d: &Distribution) {
    let p = |q| d.percentile(q).unwrap_or_default();
    println!(
        "{name:<18} n={}  min {:.3}  p5 {:.3}  p50 {:.3}  p95 {:.3}  p99 {:.3}  max {:.3}  mean {:.3}  std {:.3}",
        d.count,
        d.min,
        p(5),
        p(50),
        p(95),
        p(99),
        d.max,
        d.mean,
        d.std
    );
}

/// The exact top `k` for `query`, each with its rank under the other index kinds (within
/// their top 100) and the query terms its text shares.
fn explain(encoder: &Encoder, index: &FlatIndex, texts: &[Option<String>], query: &str, k: usize) -> Result<Value> {
    let options = EmbedOptions { kind: TextKind::Query, batch_size: 1, ..Default::default() };
    let vector = quiver::embed(encoder, &[query], &quiver::options_for(index, encoder, &options))?.data;
    let kinds: Vec<(&str, SearchOptions)> = [
        ("exact", Strategy::Exact, SearchMode::Vector),
        ("int8", Strategy::Int8, SearchMode::Vector),
        ("binary", Strategy::Binary, SearchMode::Vector),
        ("binary-rescore", Strategy::BinaryRescore, SearchMode::Vector),
        ("keyword", Strategy::Exact, SearchMode::Keyword),
        ("hybrid", Strategy::Exact, SearchMode::Hybrid),
    ]
    .into_iter()
    .filter(|(_, _, mode)| *mode == SearchMode::Vector || index.keyword_index().is_some())
    .map(|(name, strategy, mode)| (name, SearchOptions { k: 100, strategy, mode, ..Default::default() }))
    .collect();
    let query_input = Query { vector: Some(&vector), text: Some(query) };
    let mut rankings = Vec::new();
    for (name, options) in &kinds {
        rankings.push((*name, index.search_query(&query_input, options)?));
    }
    let query_terms: BTreeSet<String> = analyze(query).into_iter().collect();
    let rows: Vec<Value> = rankings[0]
        .1
        .iter()
        .take(k)
        .enumerate()
        .map(|(rank, hit)| {
            let ranks: serde_json::Map<String, Value> = rankings
                .iter()
                .map(|(name, hits)| {
                    let at = hits.iter().position(|h| h.row == hit.row).map(|r| json!(r + 1));
                    (name.to_string(), at.unwrap_or(Value::Null))
                })
                .collect();
            let overlap: Vec<String> = texts[hit.row]
                .as_deref()
                .map(|t| analyze(t).into_iter().filter(|term| query_terms.contains(term)).collect::<BTreeSet<_>>())
                .unwrap_or_default()
                .into_iter()
                .collect();
            json!({ "rank": rank + 1, "id": index.id(hit.row), "score": hit.score, "ranks": ranks, "keyword_overlap": overlap })
        })
        .collect();
    Ok(Value::Array(rows))
}
