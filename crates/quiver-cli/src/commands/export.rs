//! `quiver export`: an index's vectors as `.npy` (rows in index order), its ids as JSON lines.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use quiver::index::FlatIndex;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    index: PathBuf,
    #[arg(long)]
    output: PathBuf,
    /// Also write the ids, one per line, in row order.
    #[arg(long)]
    ids: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let index = FlatIndex::open(&args.index)?;
    let file = std::fs::File::create(&args.output).with_context(|| format!("creating {}", args.output.display()))?;
    quiver::index::npy::write_npy(std::io::BufWriter::new(file), index.vectors(), index.len(), index.dim())?;
    if let Some(path) = &args.ids {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for id in index.ids() {
            writeln!(out, "{}", serde_json::to_string(id)?)?;
        }
    }
    eprintln!("{} vectors of dimension {} → {}", index.len(), index.dim(), args.output.display());
    Ok(())
}
