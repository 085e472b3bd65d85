//! Helpers for the cross-crate tests: where the team's shared fixtures and the fetched
//! model live. Missing files fail loudly: a skipped parity test would pass silently in CI.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The workspace root (the folder with `Cargo.lock`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.ancestors().find(|d| d.join("Cargo.lock").is_file()).unwrap_or(manifest).to_owned()
}

/// The team's shared folder: `<workspace root>/../shared`, or `$QUIVER_SHARED`.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("QUIVER_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("..").join("shared"),
    }
}

pub fn shared_file(rel: &str) -> PathBuf {
    let path = shared_dir().join(rel);
    assert!(
        path.is_file(),
        "{} is missing: the team's shared folder must sit beside the checkout (../shared) or be named by QUIVER_SHARED",
        path.display()
    );
    path
}

/// The all-MiniLM-L6-v2 folder `quiver fetch-model` makes (`models/all-MiniLM-L6-v2`), or
/// `$QUIVER_MODEL_DIR`.
pub fn minilm_dir() -> PathBuf {
    let dir = std::env::var_os("QUIVER_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("models").join("all-MiniLM-L6-v2"));
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} has no model: run `scripts/setup.sh` (or `quiver fetch-model`) first",
        dir.display()
    );
    dir
}

/// A file the project's setup fetches into `data/` (`scripts/fetch-data.sh`).
pub fn data_file(rel: &str) -> PathBuf {
    let path = workspace_root().join("data").join(rel);
    assert!(path.is_file(), "{} is missing: run `scripts/fetch-data.sh` first", path.display());
    path
}

#[derive(Deserialize)]
pub struct Reference {
    pub max_seq_length: usize,
    pub dim: usize,
    pub cases: Vec<Case>,
    pub pairs: Vec<Pair>,
}

#[derive(Deserialize)]
pub struct Case {
    pub id: String,
    pub group: String,
    pub text: String,
    pub token_ids: Vec<u32>,
    pub truncated: bool,
    pub mean: Vec<f32>,
    pub cls: Vec<f32>,
    pub max: Vec<f32>,
    pub mean_unnormalized: Vec<f32>,
}

#[derive(Deserialize)]
pub struct Pair {
    pub a: String,
    pub b: String,
    pub cosine: f32,
}

pub fn minilm_reference() -> Reference {
    let path = shared_file("fixtures/all-MiniLM-L6-v2/reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("reference.json parses")
}

/// The multilingual-e5-small folder `quiver fetch-model multilingual-e5-small` makes
/// (`models/multilingual-e5-small`), or `$QUIVER_E5_DIR`.
pub fn e5_dir() -> PathBuf {
    let dir = std::env::var_os("QUIVER_E5_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("models").join("multilingual-e5-small"));
    assert!(
        dir.join("model.gguf").is_file(),
        "{} has no model: run `scripts/setup.sh` (or `quiver fetch-model multilingual-e5-small`) first",
        dir.display()
    );
    dir
}

/// The C engine's reference for multilingual-e5-small (the shared fixture's README tells
/// how it was made and why three cases carry SentencePiece's ids as well).
#[derive(Deserialize)]
pub struct E5Reference {
    pub max_seq_length: usize,
    pub dim: usize,
    pub cases: Vec<E5Case>,
}

#[derive(Deserialize)]
pub struct E5Case {
    pub id: String,
    pub group: String,
    pub text: String,
    pub token_ids: Vec<u32>,
    pub embedding: Vec<f32>,
    pub hf_token_ids: Option<Vec<u32>>,
    pub embedding_for_hf_token_ids: Option<Vec<f32>>,
}

impl E5Case {
    /// What a SentencePiece-faithful tokenizer must give, and the engine's vector for it.
    pub fn expected(&self) -> (&[u32], &[f32]) {
        match (&self.hf_token_ids, &self.embedding_for_hf_token_ids) {
            (Some(ids), Some(v)) => (ids, v),
            _ => (&self.token_ids, &self.embedding),
        }
    }
}

pub fn e5_reference() -> E5Reference {
    let path = shared_file("fixtures/multilingual-e5-small-q4/reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("reference.json parses")
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

pub fn norm(a: &[f32]) -> f32 {
    a.iter().map(|x| x * x).sum::<f32>().sqrt()
}
