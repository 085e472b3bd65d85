//! Quiver: semantic search on the user's device. This facade joins the encoder
//! ([`quiver_encoder`]) and the index ([`quiver_index`]): documents in, ranked results out.

mod error;
pub mod ingest;

use serde::Serialize;
use serde_json::Value;

pub use error::{EngineError, Result};
pub use quiver_encoder as encoder;
pub use quiver_index as index;

use quiver_encoder::{Embeddings, Encoder, TextKind};
use quiver_index::{Document, FlatIndex, IndexConfig, ModelInfo, SearchOptions};

use crate::ingest::Record;

/// What the index records about the model that made its vectors.
pub fn model_info(encoder: &Encoder) -> ModelInfo {
    let s = encoder.sentence_config();
    ModelInfo {
        id: encoder.id().to_owned(),
        weights_sha256: encoder.weights_sha256().to_owned(),
        tokenizer_sha256: encoder.tokenizer_sha256().to_owned(),
        pooling: s.pooling.as_str().to_owned(),
        normalize: s.normalize,
        max_seq_length: s.max_seq_length,
        query_prefix: s.prefixes.query.clone(),
        document_prefix: s.prefixes.document.clone(),
    }
}

/// Fails unless `encoder` makes vectors comparable with those in `index`: same weights,
/// tokenizer, pooling and normalisation. Prefixes may differ (a user's choice).
pub fn check_model(index: &FlatIndex, encoder: &Encoder) -> Result<()> {
    let Some(built) = index.model() else { return Ok(()) };
    let now = model_info(encoder);
    let key = |m: &ModelInfo| {
        format!(
            "{} (weights {}…, pooling {}, normalize {})",
            m.id,
            &m.weights_sha256[..12.min(m.weights_sha256.len())],
            m.pooling,
            m.normalize
        )
    };
    let same = built.weights_sha256 == now.weights_sha256
        && built.tokenizer_sha256 == now.tokenizer_sha256
        && built.pooling == now.pooling
        && built.normalize == now.normalize;
    if same {
        Ok(())
    } else {
        Err(quiver_index::IndexError::ModelMismatch { expected: key(built), actual: key(&now) }.into())
    }
}

/// How texts are embedded.
#[derive(Debug, Clone, Copy)]
pub struct EmbedOptions {
    pub kind: TextKind,
    pub batch_size: usize,
    /// Split long texts into windows of this many tokens with this overlap, averaged.
    pub chunk: Option<(usize, usize)>,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions { kind: TextKind::Document, batch_size: 32, chunk: None }
    }
}

pub fn embed(encoder: &Encoder, texts: &[&str], options: &EmbedOptions) -> Result<Embeddings> {
    Ok(match options.chunk {
        Some((window, overlap)) => encoder.embed_chunked(texts, options.kind, options.batch_size, window, overlap)?,
        None => encoder.embed(texts, options.kind, options.batch_size)?,
    })
}

/// A new empty index for `encoder`'s vectors.
pub fn new_index(encoder: &Encoder, mut config: IndexConfig) -> Result<FlatIndex> {
    config.dim = encoder.dim();
    Ok(FlatIndex::new(config)?.with_model(model_info(encoder)))
}

/// Records embedded per step: bounds memory however long the input is.
pub const INDEX_STEP: usize = 1024;

/// Embeds records `INDEX_STEP` at a time, handing each step and its vectors to `each`;
/// only one step is in memory at once. Returns the number of records.
pub fn embed_records(
    encoder: &Encoder,
    records: impl Iterator<Item = Result<Record>>,
    options: &EmbedOptions,
    mut each: impl FnMut(&[Record], &Embeddings) -> Result<()>,
) -> Result<usize> {
    let mut done = 0;
    let mut step = Vec::with_capacity(INDEX_STEP);
    let mut records = records.peekable();
    while records.peek().is_some() {
        step.clear();
        for record in records.by_ref().take(INDEX_STEP) {
            step.push(record?);
        }
        let texts: Vec<&str> = step.iter().map(|r| r.text.as_str()).collect();
        let vectors = embed(encoder, &texts, options)?;
        each(&step, &vectors)?;
        done += step.len();
    }
    Ok(done)
}

/// Embeds and inserts records a step at a time, then relearns the binary thresholds from
/// the whole corpus. `progress` gets the number of records done so far.
pub fn index_records(
    encoder: &Encoder,
    index: &mut FlatIndex,
    records: impl Iterator<Item = Result<Record>>,
    options: &EmbedOptions,
    mut progress: impl FnMut(usize),
) -> Result<usize> {
    check_model(index, encoder)?;
    let mut done = 0;
    let n = embed_records(encoder, records, options, |step, vectors| {
        let docs: Vec<Document> = step
            .iter()
            .zip(vectors.rows())
            .map(|(r, v)| Document { id: r.id.clone(), vector: v, metadata: r.metadata.clone() })
            .collect();
        index.upsert(&docs)?;
        done += step.len();
        progress(done);
        Ok(())
    })?;
    index.retrain_thresholds();
    Ok(n)
}

/// One search result.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SearchResult {
    pub id: String,
    pub score: f32,
    pub metadata: Value,
}

/// An encoder and the index it searches.
pub struct Engine {
    pub encoder: Encoder,
    pub index: FlatIndex,
}

impl Engine {
    pub fn new(encoder: Encoder, index: FlatIndex) -> Result<Self> {
        check_model(&index, &encoder)?;
        Ok(Engine { encoder, index })
    }

    /// Embeds `query` as a query (with the model's query prefix) and searches.
    pub fn search(&self, query: &str, options: &SearchOptions) -> Result<Vec<SearchResult>> {
        let vector = self.encoder.embed(&[query], TextKind::Query, 1)?;
        self.search_vector(vector.row(0), options)
    }

    pub fn search_vector(&self, vector: &[f32], options: &SearchOptions) -> Result<Vec<SearchResult>> {
        Ok(self
            .index
            .search(vector, options)?
            .into_iter()
            .map(|hit| SearchResult {
                id: self.index.id(hit.row).to_owned(),
                score: hit.score,
                metadata: self.index.metadata(hit.row).clone(),
            })
            .collect())
    }
}
