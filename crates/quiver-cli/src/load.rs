//! Model folders into encoders and embedders, saying on stderr what was loaded and which
//! backend runs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use quiver::encoder::{Encoder, ModelFiles};
use quiver::index::FlatIndex;
use quiver::{DecisionCache, Embedder};

use crate::args::{BackendArgs, IndexArgs, OverrideArgs};

impl IndexArgs {
    /// The index, and the model that embeds for it on the chosen backend.
    pub fn open(&self) -> Result<(FlatIndex, Embedder)> {
        let index = FlatIndex::open(&self.index)?;
        let dir = model_dir_for(&index, self.model.clone())?;
        let embedder = load_embedder(&dir, &OverrideArgs::default(), self.backend)?;
        Ok((index, embedder))
    }
}

/// A model folder's files and the CPU encoder made from them.
pub fn read_model(dir: &Path, overrides: &OverrideArgs) -> Result<(ModelFiles, Encoder)> {
    let started = Instant::now();
    let files = ModelFiles::read_dir(dir)?;
    let encoder = Encoder::load_with(&files, &overrides.overrides()?)?;
    eprintln!("loaded {} ({} dims) in {:.2?}", encoder.id(), encoder.dim(), started.elapsed());
    Ok((files, encoder))
}

pub fn load_encoder(dir: &Path, overrides: &OverrideArgs) -> Result<Encoder> {
    Ok(read_model(dir, overrides)?.1)
}

/// The encoder on the backend `backend` asks for; `auto` decisions are cached in
/// [`DecisionCache::default_path`]. Prints which backend runs and why.
pub fn load_embedder(dir: &Path, overrides: &OverrideArgs, backend: BackendArgs) -> Result<Embedder> {
    let options = backend.options()?;
    let (files, encoder) = read_model(dir, overrides)?;
    let path = DecisionCache::default_path();
    let mut decisions = path.as_deref().map(DecisionCache::load).unwrap_or_default();
    let before = decisions.clone();
    let embedder = pollster::block_on(Embedder::new(encoder, &files, options, &mut decisions));
    if let (Some(path), true) = (&path, decisions != before) {
        if let Err(e) = decisions.save(path) {
            eprintln!("warning: the backend decision was not cached: {e}");
        }
    }
    let report = embedder.report();
    let adapter = report.adapter.as_ref().map(|a| format!(" on {} ({}, {})", a.name, a.api, a.device_type));
    eprintln!("backend: {}{} — {}", report.active, adapter.unwrap_or_default(), report.reason);
    Ok(embedder)
}

/// The model folder for an index: given, or `models/<last part of the index's model id>`.
pub fn model_dir_for(index: &FlatIndex, given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir);
    }
    let id = index.model().map(|m| m.id.clone()).context("the index records no model: pass --model DIR")?;
    let guess = Path::new("models").join(id.rsplit('/').next().unwrap_or(&id));
    if guess.is_dir() {
        Ok(guess)
    } else {
        bail!("the index was built with {id}; pass --model DIR (looked for {})", guess.display())
    }
}
