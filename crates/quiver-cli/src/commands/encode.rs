//! `quiver encode`: texts into a float32 `.npy` matrix, one row per text, in input order,
//! streamed (a step of texts at a time, never the whole matrix in memory).

use std::path::PathBuf;

use anyhow::Result;
use quiver::encoder::TextKind;
use quiver::index::npy::NpyWriter;
use quiver::ingest::read_records;

use crate::args::{BackendArgs, EmbedArgs, InputArgs, ModelArgs};
use crate::load::load_embedder;
use crate::progress::{count_records, progress_bar};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    input: InputArgs,
    #[arg(long)]
    output: PathBuf,
    /// Which prefix texts get: document (the default; `passage` is the same), query, or none
    /// (as given).
    #[arg(long, default_value = "document")]
    prefix: TextKind,
    #[command(flatten)]
    embed: EmbedArgs,
}

pub fn run(args: Args) -> Result<()> {
    let embedder = load_embedder(&args.model.model, &args.model.overrides, args.backend)?;
    let options = args.embed.options(args.prefix);
    let dim = options.dims.unwrap_or(embedder.encoder().dim());
    let bar = progress_bar(count_records(&args.input.input, &args.input.fields), "embedding");
    let mut npy = NpyWriter::create(&args.output, dim)?;
    let records = read_records(&args.input.input, args.input.fields.format, &args.input.fields.fields())?;
    pollster::block_on(quiver::embed_records(&embedder, records, &options, |step, vectors| {
        npy.append(&vectors.data)?;
        bar.inc(step.len() as u64);
        Ok(())
    }))?;
    bar.finish_and_clear();
    let rows = npy.finish()?;
    eprintln!("{rows} vectors of dimension {dim} → {}", args.output.display());
    Ok(())
}
