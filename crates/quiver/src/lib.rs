//! Quiver: semantic search on the user's device. This facade joins the encoder
//! ([`quiver_encoder`]) and the index ([`quiver_index`]): documents in, ranked results out.

pub mod backend;
mod cache;
pub mod diagnose;
mod error;
pub mod eval;
pub mod ingest;

use serde::Serialize;
use serde_json::Value;

pub use backend::{Backend, BackendChoice, BackendOptions, BackendReport, DecisionCache, Embedder, GpuScan};
pub use cache::{CacheStats, QueryCache};
pub use error::{EngineError, Result};
pub use quiver_encoder as encoder;
pub use quiver_gpu as gpu;
pub use quiver_index as index;

use std::sync::{Arc, Mutex};

use quiver_encoder::{CrossEncoder, Embeddings, Encoder, TextKind};
use quiver_index::{Document, FlatIndex, Hit, IndexConfig, ModelInfo, Query, SearchMode, SearchOptions};

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
    Ok(match options.dims {
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

/// Embeds `query` as a query (with the model's query prefix) for `index` (Matryoshka
/// dimensions included), through `cache`.
pub fn embed_query(encoder: &Encoder, index: &FlatIndex, cache: &QueryCache, query: &str) -> Result<Arc<[f32]>> {
    let options = EmbedOptions { kind: TextKind::Query, batch_size: 1, ..Default::default() };
    let options = options_for(index, encoder, &options);
    cache.get_or_embed(query, |q| Ok(embed(encoder, &[q], &options)?.data))
}

/// [`embed_query`] on `embedder`'s backend.
pub async fn embed_query_on(
    embedder: &Embedder,
    index: &FlatIndex,
    cache: &QueryCache,
    query: &str,
) -> Result<Arc<[f32]>> {
    if let Some(vector) = cache.lookup(query) {
        return Ok(vector);
    }
    let options = EmbedOptions { kind: TextKind::Query, batch_size: 1, ..Default::default() };
    let options = options_for(index, embedder.encoder(), &options);
    Ok(cache.store(query, embedder.embed(&[query], &options).await?.data))
}

/// Searches `index` for a text query in `options.mode`: the query is embedded (cached)
/// unless the search is by keywords only.
pub fn search_text(
    encoder: &Encoder,
    index: &FlatIndex,
    cache: &QueryCache,
    query: &str,
    options: &SearchOptions,
) -> Result<Vec<Hit>> {
    let vector = match options.mode {
        SearchMode::Keyword => None,
        SearchMode::Vector | SearchMode::Hybrid => Some(embed_query(encoder, index, cache, query)?),
    };
    Ok(index.search_query(&Query { vector: vector.as_deref(), text: Some(query) }, options)?)
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

/// Searches for `query` and re-ranks the best `top` results with `cross_encoder`, returning
/// `options.k`. The re-ranked results carry the cross-encoder's scores; any below them (when
/// `k > top`) keep their search scores and order.
pub fn search_reranked(
    encoder: &Encoder,
    index: &FlatIndex,
    cache: &QueryCache,
    cross_encoder: &CrossEncoder,
    query: &str,
    options: &SearchOptions,
    top: usize,
) -> Result<Vec<SearchResult>> {
    let wide = SearchOptions { k: options.k.max(top), ..options.clone() };
    let mut found = results(index, &search_text(encoder, index, cache, query, &wide)?);
    let rest = found.split_off(top.min(found.len()));
    let mut ranked = rerank(cross_encoder, query, found, document_text)?;
    ranked.extend(rest);
    ranked.truncate(options.k);
    Ok(ranked)
}

/// Re-scores `results` with a cross-encoder and sorts them best first; `text` gives each
/// result's document. Scores become the cross-encoder's.
pub fn rerank(
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

/// An encoder on its backend, the index it searches (on the GPU too, when the GPU backend
/// runs), and its query cache.
pub struct Engine {
    pub embedder: Embedder,
    /// Private: the GPU holds a copy of it, which a change here would leave stale.
    index: FlatIndex,
    pub cache: QueryCache,
    /// The index on the GPU; dropped when a GPU search fails.
    scan: Mutex<Option<Arc<GpuScan>>>,
    /// Why the index is not (or no longer) searched on the GPU, if it was meant to be.
    scan_error: Mutex<Option<String>>,
}

impl Engine {
    /// The engine on the CPU.
    pub fn new(encoder: Encoder, index: FlatIndex) -> Result<Self> {
        check_model(&index, &encoder)?;
        Ok(Engine {
            embedder: Embedder::cpu(encoder),
            index,
            cache: QueryCache::default(),
            scan: Mutex::default(),
            scan_error: Mutex::default(),
        })
    }

    /// The engine on `embedder`'s backend: with the GPU backend, an index that belongs on
    /// the GPU ([`GpuScan::wanted`]) is uploaded, and the searches it handles run there.
    /// An index the GPU cannot take is searched on the CPU, and [`Engine::gpu_search_error`]
    /// says why.
    pub async fn on_backend(embedder: Embedder, index: FlatIndex) -> Result<Self> {
        check_model(&index, embedder.encoder())?;
        let (mut scan, mut scan_error) = (None, None);
        if let Some(ctx) = embedder.gpu_context().filter(|_| GpuScan::wanted(&index, embedder.report().requested)) {
            match GpuScan::new(&ctx, &index).await {
                Ok(uploaded) => scan = Some(Arc::new(uploaded)),
                Err(e) => scan_error = Some(format!("{}: {e}", e.code())),
            }
        }
        Ok(Engine {
            embedder,
            index,
            cache: QueryCache::default(),
            scan: Mutex::new(scan),
            scan_error: Mutex::new(scan_error),
        })
    }

    pub fn encoder(&self) -> &Encoder {
        self.embedder.encoder()
    }

    pub fn index(&self) -> &FlatIndex {
        &self.index
    }

    /// Why the index is not searched on the GPU although the GPU backend runs, if so.
    pub fn gpu_search_error(&self) -> Option<String> {
        self.scan_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The GPU's copy of the index, when vector searches with `options` run there.
    fn gpu_scan(&self, options: &SearchOptions) -> Option<Arc<GpuScan>> {
        let scan = self.scan.lock().unwrap_or_else(|e| e.into_inner()).clone();
        scan.filter(|_| GpuScan::handles(options))
    }

    /// Whether vector searches with `options` run on the GPU.
    pub fn searches_on_gpu(&self, options: &SearchOptions) -> bool {
        self.gpu_scan(options).is_some()
    }

    /// Searches for a text query in `options.mode` (vector, keyword or hybrid); the query's
    /// embedding is cached.
    pub async fn search(&self, query: &str, options: &SearchOptions) -> Result<Vec<SearchResult>> {
        let vector = match options.mode {
            SearchMode::Keyword => None,
            SearchMode::Vector | SearchMode::Hybrid => {
                Some(embed_query_on(&self.embedder, &self.index, &self.cache, query).await?)
            }
        };
        if let (Some(vector), true) = (&vector, self.searches_on_gpu(options)) {
            return self.search_vector(vector, options).await;
        }
        let hits = self.index.search_query(&Query { vector: vector.as_deref(), text: Some(query) }, options)?;
        Ok(results(&self.index, &hits))
    }

    pub async fn search_vector(&self, vector: &[f32], options: &SearchOptions) -> Result<Vec<SearchResult>> {
        if let Some(scan) = self.gpu_scan(options) {
            match scan.search(&self.index, vector, options).await {
                Ok(hits) => return Ok(results(&self.index, &hits)),
                // Bad input is the caller's: the CPU index refuses it too.
                Err(e @ EngineError::Index(_)) => return Err(e),
                // The CPU answers from now on, and says why.
                Err(e) => {
                    self.scan.lock().unwrap_or_else(|e| e.into_inner()).take();
                    *self.scan_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{}: {e}", e.code()));
                }
            }
        }
        Ok(results(&self.index, &self.index.search(vector, options)?))
    }
}
