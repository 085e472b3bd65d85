//! `quiver index`: documents embedded (or vectors imported) into an index file.

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use quiver::encoder::TextKind;
use quiver::index::{FlatIndex, IndexConfig, Metric, ThresholdKind};
use quiver::ingest::{read_records, Record};
use serde_json::Value;

use crate::args::{BackendArgs, EmbedArgs, OptionalInputArgs, OverrideArgs};
use crate::load::{load_embedder, load_encoder};
use crate::progress::{count_records, progress_bar};

#[derive(clap::Args)]
pub struct Args {
    /// Model folder; optional with --vectors.
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    overrides: OverrideArgs,
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    input: OptionalInputArgs,
    #[arg(long)]
    output: PathBuf,
    /// Index these vectors (.npy, [n, dim] float32) instead of embedding; --input then
    /// supplies ids and metadata row by row.
    #[arg(long)]
    vectors: Option<PathBuf>,
    /// cosine, dot or l2.
    #[arg(long, default_value = "cosine")]
    metric: Metric,
    /// Per-dimension binary threshold learned from the corpus: mean, median or zero.
    #[arg(long, default_value = "mean")]
    threshold: ThresholdKind,
    /// Skip the BM25 keyword index (no keyword or hybrid search; a smaller file).
    #[arg(long)]
    no_keyword: bool,
    #[command(flatten)]
    embed: EmbedArgs,
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let config = IndexConfig { dim: 0, metric: args.metric, threshold: args.threshold, keyword: !args.no_keyword };
    let mut index = match &args.vectors {
        Some(npy) => import(&args, npy, config)?,
        None => embed(&args, config)?,
    };
    index.set_created_unix(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    index.save(&args.output)?;
    eprintln!("indexed {} documents → {} in {:.1?}", index.len(), args.output.display(), started.elapsed());
    Ok(())
}

/// The index of vectors made elsewhere; records from --input give ids, texts and metadata.
fn import(args: &Args, npy: &PathBuf, config: IndexConfig) -> Result<FlatIndex> {
    let file = std::fs::File::open(npy).with_context(|| format!("opening {}", npy.display()))?;
    let matrix = quiver::index::npy::read_npy(std::io::BufReader::new(file))?;
    let encoder = args.model.as_deref().map(|dir| load_encoder(dir, &args.overrides)).transpose()?;
    let records: Vec<Record> = match &args.input.input {
        Some(path) => {
            read_records(path, args.input.fields.format, &args.input.fields.fields())?.collect::<quiver::Result<_>>()?
        }
        None => {
            (0..matrix.rows).map(|i| Record { id: i.to_string(), text: String::new(), metadata: Value::Null }).collect()
        }
    };
    quiver::import_vectors(config, &matrix.data, matrix.cols, &records, encoder.as_ref())
        .with_context(|| format!("indexing {}", npy.display()))
}

fn embed(args: &Args, config: IndexConfig) -> Result<FlatIndex> {
    let dir = args.model.as_deref().context("--model is needed to embed documents (or pass --vectors FILE.npy)")?;
    let path = args.input.input.as_deref().context("--input is needed")?;
    let embedder = load_embedder(dir, &args.overrides, args.backend)?;
    let mut index = quiver::new_index(embedder.encoder(), config, args.embed.dims)?;
    let bar = progress_bar(count_records(path, &args.input.fields), "indexing");
    let records = read_records(path, args.input.fields.format, &args.input.fields.fields())?;
    let options = args.embed.options(TextKind::Document);
    pollster::block_on(quiver::index_records(&embedder, &mut index, records, &options, |n| {
        bar.set_position(n as u64)
    }))?;
    bar.finish_and_clear();
    Ok(index)
}
