//! `quiver add`: add or replace documents in an existing index.

use std::path::PathBuf;

use anyhow::Result;
use quiver::encoder::TextKind;
use quiver::index::FlatIndex;
use quiver::ingest::read_records;

use crate::args::{BackendArgs, EmbedArgs, InputArgs, OverrideArgs};
use crate::load::{load_embedder, model_dir_for};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    index: PathBuf,
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    embed: EmbedArgs,
}

pub fn run(args: Args) -> Result<()> {
    let mut index = FlatIndex::open(&args.index)?;
    let dir = model_dir_for(&index, args.model)?;
    let embedder = load_embedder(&dir, &OverrideArgs::default(), args.backend)?;
    let records = read_records(&args.input.input, args.input.fields.format, &args.input.fields.fields())?;
    let before = index.len();
    let options = args.embed.options(TextKind::Document);
    let n = pollster::block_on(quiver::index_records(&embedder, &mut index, records, &options, |_| {}))?;
    index.save(&args.index)?;
    eprintln!("{n} documents added or replaced ({} new); {} in all", index.len() - before, index.len());
    Ok(())
}
