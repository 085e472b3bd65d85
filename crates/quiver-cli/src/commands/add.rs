//! `quiver add`: add or replace documents in an existing index.

use anyhow::Result;
use quiver::encoder::TextKind;
use quiver::ingest::read_records;

use crate::args::{EmbedArgs, IndexArgs, InputArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: IndexArgs,
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    embed: EmbedArgs,
}

pub fn run(args: Args) -> Result<()> {
    let (mut index, embedder) = args.target.open()?;
    let records = read_records(&args.input.input, args.input.fields.format, &args.input.fields.fields())?;
    let before = index.len();
    let options = args.embed.options(TextKind::Document);
    let n = pollster::block_on(quiver::index_records(&embedder, &mut index, records, &options, |_| {}))?;
    index.save(&args.target.index)?;
    eprintln!("{n} documents added or replaced ({} new); {} in all", index.len() - before, index.len());
    Ok(())
}
