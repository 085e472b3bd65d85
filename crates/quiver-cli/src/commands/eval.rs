//! `quiver eval`: retrieval quality on a judged BEIR folder, for one setup or several side
//! by side (models × strategies × Matryoshka dimensions, optionally re-ranked).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use quiver::encoder::CrossEncoder;
use quiver::eval::{embed_set, evaluate_setups, write_trec_run, BeirSet, Setup, SetupReport};
use quiver::index::{SearchMode, SearchOptions, Strategy};
use serde_json::{json, Map, Value};

use crate::args::{FusionArgs, OverrideArgs, RerankArgs};
use crate::load::load_encoder;

#[derive(clap::Args)]
pub struct Args {
    /// Model folder; repeat to compare models.
    #[arg(long, required = true)]
    model: Vec<PathBuf>,
    #[command(flatten)]
    overrides: OverrideArgs,
    /// BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value = "test")]
    split: String,
    /// exact, int8, binary, binary-rescore, keyword or hybrid; a comma list compares them.
    #[arg(long, default_value = "exact", value_delimiter = ',')]
    strategy: Vec<String>,
    /// More strategies, reported next to the first --strategy (the baseline).
    #[arg(long, value_delimiter = ',')]
    compare: Vec<String>,
    /// Cut-offs; recall@100 is always reported too.
    #[arg(long, default_value = "10", value_delimiter = ',')]
    k: Vec<usize>,
    /// Matryoshka dimensions to compare (each re-normalised), e.g. 384,256,128.
    #[arg(long, value_delimiter = ',')]
    dims: Vec<usize>,
    /// binary-rescore: candidates = oversample × k.
    #[arg(long, default_value_t = 30)]
    oversample: usize,
    #[command(flatten)]
    fusion: FusionArgs,
    #[command(flatten)]
    rerank: RerankArgs,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Write every setup's ranking in TREC run format (`qid Q0 doc rank score tag`).
    #[arg(long)]
    trec_run: Option<PathBuf>,
    /// Include each query's metrics in the JSON.
    #[arg(long)]
    per_query: bool,
    #[arg(long)]
    json: bool,
}

fn strategy_options(name: &str, args: &Args) -> Result<SearchOptions> {
    let base = SearchOptions {
        oversample: args.oversample,
        fusion: args.fusion.fusion(),
        fusion_candidates: args.fusion.fusion_candidates,
        ..Default::default()
    };
    Ok(match name {
        "keyword" => SearchOptions { mode: SearchMode::Keyword, ..base },
        "hybrid" => SearchOptions { mode: SearchMode::Hybrid, ..base },
        other => SearchOptions {
            strategy: other.parse::<Strategy>().map_err(|e| anyhow::anyhow!("{e}; or keyword, hybrid"))?,
            ..base
        },
    })
}

fn setups(args: &Args) -> Result<Vec<Setup>> {
    let strategies: Vec<&String> = args.strategy.iter().chain(&args.compare).collect();
    let dims: Vec<Option<usize>> =
        if args.dims.is_empty() { vec![None] } else { args.dims.iter().map(|&d| Some(d)).collect() };
    let mut setups = Vec::new();
    for d in &dims {
        for name in &strategies {
            let options = strategy_options(name, args)?;
            let label = match d {
                Some(d) => format!("{name}@{d}"),
                None => name.to_string(),
            };
            setups.push(Setup { label: label.clone(), options: options.clone(), dims: *d, rerank_top: None });
            if args.rerank.rerank.is_some() {
                let top = args.rerank.rerank_top;
                setups.push(Setup { label: format!("{label}+rerank{top}"), options, dims: *d, rerank_top: Some(top) });
            }
        }
    }
    Ok(setups)
}

pub fn run(args: Args) -> Result<()> {
    if args.k.contains(&0) {
        bail!("--k must be at least 1");
    }
    let set = BeirSet::load(&args.data, &args.split)?;
    let mut ks = args.k.clone();
    ks.push(100);
    let setups = setups(&args)?;
    let cross_encoder = args.rerank.rerank.as_deref().map(CrossEncoder::from_dir).transpose()?;
    eprintln!(
        "{}: {} documents, {} queries, {} judged",
        args.data.display(),
        set.corpus.len(),
        set.queries.len(),
        set.qrels.len()
    );

    let mut rows: Vec<(String, SetupReport, f64)> = Vec::new();
    for dir in &args.model {
        let encoder = load_encoder(dir, &args.overrides)?;
        let embedded = embed_set(&encoder, &set, args.batch_size)?;
        for report in evaluate_setups(&encoder, &set, &embedded, &setups, &ks, cross_encoder.as_ref())? {
            // The folder tells quantized variants of one model apart; the id does not.
            let folder = dir.file_name().map(|f| f.to_string_lossy().into_owned());
            rows.push((folder.unwrap_or_else(|| encoder.id().to_owned()), report, embedded.query_embed_ms));
        }
    }

    if let Some(path) = &args.trec_run {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        for (model, report, _) in &rows {
            let tag = format!("{}:{}", model.rsplit('/').next().unwrap_or(model), report.label).replace(' ', "_");
            write_trec_run(&mut out, &set, &report.runs, &tag)?;
        }
    }

    let main_k = args.k[0];
    let baseline = rows[0].1.evaluation.mean[&main_k].ndcg;
    let reports: Vec<Value> = rows
        .iter()
        .map(|(model, report, embed_ms)| {
            let mut object = Map::new();
            object.insert("model".into(), json!(model));
            object.insert("strategy".into(), json!(report.label));
            if let Value::Object(metrics) = report.evaluation.to_json(args.per_query) {
                object.extend(metrics);
            }
            object.insert("documents".into(), json!(set.corpus.len()));
            object.insert("query_embed_ms".into(), json!(embed_ms));
            object.insert("search_ms".into(), json!(report.search_ms));
            if let Some(ms) = report.rerank_ms {
                object.insert("rerank_ms".into(), json!(ms));
            }
            let ndcg = report.evaluation.mean[&main_k].ndcg;
            object.insert(
                format!("ndcg@{main_k}_vs_baseline"),
                json!(if baseline > 0.0 { ndcg / baseline } else { 0.0 }),
            );
            Value::Object(object)
        })
        .collect();

    if args.json {
        // One setup: one flat object (the stable form scripts read); several: a list.
        let out = if reports.len() == 1 { reports[0].clone() } else { json!({ "setups": reports }) };
        println!("{out}");
        return Ok(());
    }
    print_table(&rows, main_k, baseline);
    Ok(())
}

fn print_table(rows: &[(String, SetupReport, f64)], k: usize, baseline: f64) {
    let label_width = rows.iter().map(|(_, r, _)| r.label.len()).max().unwrap_or(8).max(8);
    println!(
        "{:<28} {:<label_width$} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8} {:>9}",
        "model",
        "setup",
        format!("nDCG@{k}"),
        format!("R@{k}"),
        format!("MRR@{k}"),
        format!("P@{k}"),
        "R@100",
        "vs base",
        "ms/query"
    );
    for (model, report, _) in rows {
        let at = |k: usize| report.evaluation.mean[&k];
        let name = model.rsplit('/').next().unwrap_or(model);
        let ms = report.search_ms + report.rerank_ms.unwrap_or(0.0);
        println!(
            "{:<28} {:<label_width$} {:>9.4} {:>9.4} {:>9.4} {:>9.4} {:>10.4} {:>7.1}% {:>9.3}",
            name,
            report.label,
            at(k).ndcg,
            at(k).recall,
            at(k).mrr,
            at(k).precision,
            at(100).recall,
            100.0 * at(k).ndcg / baseline.max(f64::MIN_POSITIVE),
            ms
        );
    }
    let first = &rows[0].1.evaluation;
    println!("{} queries evaluated, {} without relevant documents skipped", first.evaluated, first.skipped);
}
