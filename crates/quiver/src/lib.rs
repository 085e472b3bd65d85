//! Quiver: semantic search on the user's device. This facade joins the encoder
//! ([`quiver_encoder`]) and the index ([`quiver_index`]): documents in, ranked results out.

pub mod backend;
mod cache;
pub mod diagnose;
mod engine;
mod error;
pub mod eval;
pub mod ingest;

use serde::Serialize;
use serde_json::Value;

pub use backend::{Backend, BackendChoice, BackendOptions, BackendReport, DecisionCache, Embedder, GpuScan};
pub use cache::{CacheStats, QueryCache};
pub use engine::{Engine, NewDocument, Stats};
pub use error::{EngineError, Part, Result};
pub use quiver_encoder as encoder;
pub use quiver_gpu as gpu;
pub use quiver_index as index;

use quiver_encoder::{CrossEncoder, Embeddings, Encoder, TextKind};
use quiver_index::{Document, FlatIndex, Hit, IndexConfig, ModelInfo};

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
        dims: None,
    }
}

/// The dimensions `encoder`'s vectors are cut to for `index`: `Some` for a Matryoshka
/// index (fewer dimensions than the model, recorded in its model info).
fn matryoshka_dims(index: &FlatIndex, encoder: &Encoder) -> Option<usize> {
    index.model().and_then(|m| m.dims).filter(|&d| d < encoder.dim())
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
            m.weights_sha256.get(..12).unwrap_or(&m.weights_sha256),
            m.pooling,
            m.normalize
        )
    };
    let same = built.weights_sha256 == now.weights_sha256
        && built.tokenizer_sha256 == now.tokenizer_sha256
        && built.pooling == now.pooling
        && built.normalize == now.normalize;
    if !same {
        return Err(quiver_index::IndexError::ModelMismatch { expected: key(built), actual: key(&now) }.into());
    }
    let dims = matryoshka_dims(index, encoder).unwrap_or(encoder.dim());
    if index.dim() != dims {
        return Err(quiver_index::IndexError::DimensionMismatch {
            op: "check model",
            expected: index.dim(),
            actual: dims,
        }
        .into());
    }
    Ok(())
}

/// How texts are embedded.
#[derive(Debug, Clone, Copy)]
pub struct EmbedOptions {
    pub kind: TextKind,
    pub batch_size: usize,
    /// Split long texts into windows of this many tokens with this overlap, averaged.
    pub chunk: Option<(usize, usize)>,
    /// Matryoshka: keep the first this many dimensions, re-normalised.
    pub dims: Option<usize>,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions { kind: TextKind::Document, batch_size: 32, chunk: None, dims: None }
    }
}

pub fn embed(encoder: &Encoder, texts: &[&str], options: &EmbedOptions) -> Result<Embeddings> {
    let full = match options.chunk {
        Some((window, overlap)) => encoder.embed_chunked(texts, options.kind, options.batch_size, window, overlap)?,
        None => encoder.embed(texts, options.kind, options.batch_size)?,
    };
    cut(full, options.dims)
}

/// Matryoshka: the first `dims` dimensions of each vector, re-normalised.
pub(crate) fn cut(full: Embeddings, dims: Option<usize>) -> Result<Embeddings> {
    Ok(match dims {
        Some(dims) if dims != full.dim => full.truncated(dims)?,
        _ => full,
    })
}

/// A new empty index for `encoder`'s vectors, cut to `dims` dimensions (Matryoshka) when
/// given. `config.keyword` adds a BM25 keyword index of the documents' texts.
pub fn new_index(encoder: &Encoder, mut config: IndexConfig, dims: Option<usize>) -> Result<FlatIndex> {
    let dims = dims.filter(|&d| d != encoder.dim());
    if let Some(d) = dims.filter(|&d| d == 0 || d > encoder.dim()) {
        return Err(EngineError::InvalidArgument {
            op: "new index",
            what: format!("Matryoshka dimensions must be 1..={}, got {d}", encoder.dim()),
        });
    }
    config.dim = dims.unwrap_or(encoder.dim());
    Ok(FlatIndex::new(config)?.with_model(ModelInfo { dims, ..model_info(encoder) }))
}

/// An index of vectors made elsewhere (`rows × dim`, row-major), one per record in order
/// (records give ids, texts and metadata), recording `encoder` as their model when given.
pub fn import_vectors(
    config: IndexConfig,
    vectors: &[f32],
    dim: usize,
    records: &[Record],
    encoder: Option<&Encoder>,
) -> Result<FlatIndex> {
    let invalid = |what: String| EngineError::InvalidArgument { op: "import vectors", what };
    if dim == 0 || !vectors.len().is_multiple_of(dim) {
        return Err(invalid(format!("{} values are not rows of {dim}", vectors.len())));
    }
    if let Some(encoder) = encoder.filter(|e| e.dim() != dim) {
        return Err(invalid(format!(
            "the vectors have {dim} columns but {} makes {}-dimensional vectors",
            encoder.id(),
            encoder.dim()
        )));
    }
    let rows = vectors.len() / dim;
    if records.len() != rows {
        return Err(invalid(format!("{rows} vectors but {} records", records.len())));
    }
    let mut index = FlatIndex::new(IndexConfig { dim, ..config })?;
    if let Some(encoder) = encoder {
        index = index.with_model(model_info(encoder));
    }
    let docs: Vec<Document> = records
        .iter()
        .zip(vectors.chunks_exact(dim))
        .map(|(r, v)| Document { id: r.id.clone(), vector: v, metadata: r.metadata.clone(), text: Some(&r.text) })
        .collect();
    index.upsert(&docs)?;
    index.retrain_thresholds();
    Ok(index)
}

/// How `index` wants documents embedded: `options` with the index's Matryoshka dimensions.
pub fn options_for(index: &FlatIndex, encoder: &Encoder, options: &EmbedOptions) -> EmbedOptions {
    EmbedOptions { dims: matryoshka_dims(index, encoder), ..*options }
}

/// Records embedded per step: bounds memory however long the input is.
pub const INDEX_STEP: usize = 1024;

/// Embeds records `INDEX_STEP` at a time on `embedder`'s backend, handing each step and
/// its vectors to `each`; only one step is in memory at once. Returns the number of records.
pub async fn embed_records(
    embedder: &Embedder,
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
        let vectors = embedder.embed(&texts, options).await?;
        each(&step, &vectors)?;
        done += step.len();
    }
    Ok(done)
}

/// Embeds and inserts records a step at a time, then relearns the binary thresholds from
/// the whole corpus. `progress` gets the number of records done so far.
pub async fn index_records(
    embedder: &Embedder,
    index: &mut FlatIndex,
    records: impl Iterator<Item = Result<Record>>,
    options: &EmbedOptions,
    mut progress: impl FnMut(usize),
) -> Result<usize> {
    let encoder = embedder.encoder();
    check_model(index, encoder)?;
    let options = options_for(index, encoder, options);
    let mut done = 0;
    let n = embed_records(embedder, records, &options, |step, vectors| {
        let docs: Vec<Document> = step
            .iter()
            .zip(vectors.rows())
            .map(|(r, v)| Document { id: r.id.clone(), vector: v, metadata: r.metadata.clone(), text: Some(&r.text) })
            .collect();
        index.upsert(&docs)?;
        done += step.len();
        progress(done);
        Ok(())
    })
    .await?;
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

/// Results with ids and metadata.
pub fn results(index: &FlatIndex, hits: &[Hit]) -> Vec<SearchResult> {
    hits.iter()
        .map(|hit| SearchResult {
            id: index.id(hit.row).to_owned(),
            score: hit.score,
            metadata: index.metadata(hit.row).clone(),
        })
        .collect()
}

/// Re-scores `results` with a cross-encoder and sorts them best first; `text` gives each
/// result's document. Scores become the cross-encoder's.
pub(crate) fn rerank(
    cross_encoder: &CrossEncoder,
    query: &str,
    results: Vec<SearchResult>,
    text: impl Fn(&SearchResult) -> String,
) -> Result<Vec<SearchResult>> {
    let documents: Vec<String> = results.iter().map(text).collect();
    let refs: Vec<&str> = documents.iter().map(String::as_str).collect();
    let ranked = cross_encoder.rank(query, &refs, 32)?;
    let mut slots: Vec<Option<SearchResult>> = results.into_iter().map(Some).collect();
    Ok(ranked.into_iter().filter_map(|(i, score)| slots[i].take().map(|r| SearchResult { score, ..r })).collect())
}

/// The document text of a result for re-ranking: its `text` metadata, else every string
/// field of its metadata joined (title, description, …).
pub fn document_text(result: &SearchResult) -> String {
    if let Some(text) = result.metadata.get("text").and_then(Value::as_str) {
        return text.to_owned();
    }
    let fields: Vec<&str> = result.metadata.as_object().into_iter().flatten().filter_map(|(_, v)| v.as_str()).collect();
    fields.join(". ")
}
