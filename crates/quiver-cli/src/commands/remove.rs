//! `quiver remove`: delete documents from an index by id.

use std::path::PathBuf;

use anyhow::Result;
use quiver::index::FlatIndex;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    index: PathBuf,
    #[arg(required = true)]
    ids: Vec<String>,
}

pub fn run(args: Args) -> Result<()> {
    let mut index = FlatIndex::open(&args.index)?;
    index.remove(&args.ids)?;
    index.save(&args.index)?;
    eprintln!("removed {} documents; {} remain", args.ids.len(), index.len());
    Ok(())
}
