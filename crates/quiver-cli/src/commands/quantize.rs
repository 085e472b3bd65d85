//! `quiver quantize`: a copy of a model folder with compact quantized weights.

use std::path::PathBuf;

use anyhow::{bail, Result};
use quiver::encoder::{ModelFiles, Quantization};

#[derive(clap::Args)]
pub struct Args {
    /// Model folder (model.safetensors, or a model.gguf to re-quantize, which is lossy).
    #[arg(long)]
    model: PathBuf,
    /// q8_0 (close to float32), q4_0 (smallest) or f16.
    #[arg(long)]
    to: Quantization,
    /// Folder to write.
    #[arg(long)]
    output: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let Args { model, to, output } = args;
    if output.join("config.json").exists() {
        bail!("{} already holds a model", output.display());
    }
    quiver::encoder::write_quantized_model(&ModelFiles::read_dir(&model)?, to, &output)?;
    let size = std::fs::metadata(output.join("model.gguf"))?.len();
    println!("{}: {to}, {:.1} MB", output.display(), size as f64 / 1e6);
    Ok(())
}
