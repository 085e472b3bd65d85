//! `quiver info`: what an index file holds, as text or JSON.

use std::path::PathBuf;

use anyhow::{Context, Result};
use quiver::index::FlatIndex;

#[derive(clap::Args)]
pub struct Args {
    index: PathBuf,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let path = &args.index;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let info = FlatIndex::inspect(&bytes)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    println!("{}", path.display());
    println!("  format version  {}", info.format_version);
    println!("  written by      quiver {}", info.tool_version);
    println!("  created (unix)  {}", info.created_unix);
    println!("  documents       {}", info.count);
    println!(
        "  dimension       {}  metric {:?}  binary threshold {:?}",
        info.config.dim, info.config.metric, info.config.threshold
    );
    if let Some(m) = &info.model {
        println!("  model           {}", m.id);
        println!("    weights       sha256 {}", m.weights_sha256);
        println!("    tokenizer     sha256 {}", m.tokenizer_sha256);
        println!("    pooling       {}  normalize {}  max tokens {}", m.pooling, m.normalize, m.max_seq_length);
        println!("    prefixes      query {:?}  document {:?}", m.query_prefix, m.document_prefix);
        if let Some(dims) = m.dims {
            println!("    matryoshka    first {dims} dimensions, re-normalised");
        }
    }
    match info.keyword_terms {
        Some(terms) => println!("  keyword index   BM25, {terms} terms"),
        None => println!("  keyword index   none (vector search only)"),
    }
    println!("  file size       {} bytes", info.file_bytes);
    for (name, bytes) in &info.sections {
        println!("    {name:<18} {bytes} bytes");
    }
    println!("  kernels         {}", quiver::index::kernels::best().name());
    Ok(())
}
