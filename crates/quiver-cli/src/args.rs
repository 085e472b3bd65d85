//! Flag groups that several commands share: the model and its overrides, the backend, the
//! input file and its fields, embedding options and hybrid fusion.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use quiver::encoder::{Overrides, Pooling, Prefixes, TextKind};
use quiver::index::Fusion;
use quiver::ingest::{Fields, Format};
use quiver::{BackendChoice, BackendOptions, EmbedOptions};

#[derive(Args)]
pub struct ModelArgs {
    /// Model folder (config.json, tokenizer.json, model.safetensors or model.gguf).
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

/// An existing index and the model that embeds for it.
#[derive(Args)]
pub struct IndexArgs {
    #[arg(long)]
    pub index: PathBuf,
    /// Model folder (default: models/<name of the index's model>).
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// A cross-encoder that re-scores the top results.
#[derive(Args)]
pub struct RerankArgs {
    /// Re-rank the top results with this cross-encoder model folder (`eval`: each setup is
    /// also evaluated re-ranked).
    #[arg(long)]
    pub rerank: Option<PathBuf>,
    /// How many of the top results the cross-encoder re-scores (at least --k are fetched).
    #[arg(long, default_value_t = 20, requires = "rerank")]
    pub rerank_top: usize,
}

/// Where embeddings are computed.
#[derive(Args, Clone, Copy)]
pub struct BackendArgs {
    /// gpu, cpu or auto (the faster here: measured once per model and adapter, ≤ 300 ms,
    /// and cached). Without a working GPU the CPU runs, and says why.
    #[arg(long, default_value = "auto")]
    pub backend: BackendChoice,
    /// How long `auto` may calibrate, CPU and GPU together, in milliseconds. A larger
    /// budget lets a slow GPU finish, so the decision is conclusive and cached.
    #[arg(long, default_value_t = 300.0)]
    pub calibration_budget_ms: f64,
}

impl BackendArgs {
    pub fn options(&self) -> Result<BackendOptions> {
        Ok(BackendOptions::from(self.backend).with_budget_ms(self.calibration_budget_ms)?)
    }
}

#[derive(Args, Clone, Default)]
pub struct OverrideArgs {
    /// Override the folder's pooling.
    #[arg(long)]
    pub pooling: Option<Pooling>,
    /// Override normalisation (true/false).
    #[arg(long)]
    pub normalize: Option<bool>,
    /// Override the maximum sequence length in tokens.
    #[arg(long)]
    pub max_seq_length: Option<usize>,
    /// Prefix preset: e5, bge or none.
    #[arg(long)]
    pub prefix_preset: Option<String>,
    /// Free query prefix (overrides the preset).
    #[arg(long)]
    pub query_prefix: Option<String>,
    /// Free document prefix (overrides the preset).
    #[arg(long)]
    pub document_prefix: Option<String>,
}

impl OverrideArgs {
    pub fn overrides(&self) -> Result<Overrides> {
        let mut prefixes = match &self.prefix_preset {
            Some(name) => Some(
                Prefixes::preset(name).with_context(|| format!("unknown prefix preset {name:?} (e5, bge, none)"))?,
            ),
            None => None,
        };
        if self.query_prefix.is_some() || self.document_prefix.is_some() {
            let p = prefixes.get_or_insert_with(Prefixes::default);
            if let Some(q) = &self.query_prefix {
                p.query = q.clone();
            }
            if let Some(d) = &self.document_prefix {
                p.document = d.clone();
            }
        }
        Ok(Overrides {
            pooling: self.pooling,
            normalize: self.normalize,
            max_seq_length: self.max_seq_length,
            prefixes,
        })
    }
}

#[derive(Args, Clone)]
pub struct InputArgs {
    /// JSONL, CSV, plain text (one document per line) or a folder of Markdown files.
    #[arg(long)]
    pub input: PathBuf,
    #[command(flatten)]
    pub fields: FieldArgs,
}

#[derive(Args, Clone)]
pub struct OptionalInputArgs {
    #[arg(long)]
    pub input: Option<PathBuf>,
    #[command(flatten)]
    pub fields: FieldArgs,
}

#[derive(Args, Clone)]
pub struct FieldArgs {
    /// Input format (default: from the extension; a folder is Markdown).
    #[arg(long)]
    pub format: Option<Format>,
    /// Field(s) holding the text; several are joined.
    #[arg(long = "text-field", default_values = ["text"])]
    pub text_field: Vec<String>,
    #[arg(long, default_value = "id")]
    pub id_field: String,
    /// Keep only these fields as metadata (default: every field but the id).
    #[arg(long = "metadata-field")]
    pub metadata_field: Vec<String>,
}

impl FieldArgs {
    pub fn fields(&self) -> Fields {
        Fields {
            text: self.text_field.clone(),
            id: self.id_field.clone(),
            metadata: (!self.metadata_field.is_empty()).then(|| self.metadata_field.clone()),
        }
    }
}

#[derive(Args, Clone)]
pub struct EmbedArgs {
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Split long documents into windows of this many tokens (vectors averaged).
    #[arg(long)]
    pub chunk_tokens: Option<usize>,
    /// Tokens shared by neighbouring windows.
    #[arg(long, default_value_t = 32, requires = "chunk_tokens")]
    pub overlap: usize,
    /// Matryoshka: keep the first N dimensions of each vector, re-normalised.
    #[arg(long)]
    pub dims: Option<usize>,
}

impl EmbedArgs {
    pub fn options(&self, kind: TextKind) -> EmbedOptions {
        EmbedOptions {
            kind,
            batch_size: self.batch_size,
            chunk: self.chunk_tokens.map(|w| (w, self.overlap)),
            dims: self.dims,
        }
    }
}

/// How hybrid search merges its rankings.
#[derive(Args, Clone)]
pub struct FusionArgs {
    /// rrf or weighted.
    #[arg(long, default_value = "rrf", value_parser = fusion_name)]
    pub fusion: String,
    /// Reciprocal Rank Fusion's k: larger flattens the weight of the top ranks.
    #[arg(long, default_value_t = 60.0)]
    pub rrf_k: f32,
    /// Weighted fusion: the vector ranking's share (the keyword ranking gets the rest).
    #[arg(long, default_value_t = 0.5)]
    pub vector_weight: f32,
    /// How deep hybrid search takes each ranking before fusing.
    #[arg(long, default_value_t = 100)]
    pub fusion_candidates: usize,
}

fn fusion_name(name: &str) -> Result<String, String> {
    Fusion::named(name, None, None).map(|_| name.to_owned())
}

impl FusionArgs {
    pub fn fusion(&self) -> Fusion {
        Fusion::named(&self.fusion, Some(self.rrf_k), Some(self.vector_weight)).expect("checked by the parser")
    }
}
