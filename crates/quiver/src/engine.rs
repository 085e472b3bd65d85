//! [`Engine`]: the one engine every front-end calls (the CLI, and the browser package
//! through quiver-wasm, which only converts values). It owns the model on its backend, the
//! index, the query cache, the index's copy on the GPU and the re-ranker.

use std::sync::{Arc, Mutex, MutexGuard};

use quiver_encoder::{CrossEncoder, Embeddings, Encoder, TextKind};
use quiver_index::{Document, FlatIndex, IndexConfig, IndexError, Query, SearchMode, SearchOptions};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    check_model, cut, document_text, options_for, rerank, results, BackendReport, CacheStats, EmbedOptions, Embedder,
    EngineError, GpuScan, Part, QueryCache, Result, SearchResult,
};

/// A document to embed and add.
#[derive(Debug, Clone, Deserialize)]
pub struct NewDocument {
    pub id: String,
    pub text: String,
    #[serde(default)]
    pub metadata: Value,
}

/// What an engine holds and how it runs (the browser package's `stats()`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub documents: usize,
    pub dim: Option<usize>,
    pub model: Option<String>,
    pub kernels: &'static str,
    /// The kernels of quantized models' matrix products (`relaxed-simd`, `avx2`, …).
    pub model_kernels: &'static str,
    pub keyword: bool,
    pub query_cache: CacheStats,
    pub backend: Option<BackendReport>,
    pub gpu_search: bool,
    pub gpu_search_error: Option<String>,
}

/// A model on its backend, the index it searches (on the GPU too, when the GPU backend
/// runs), the query cache and a re-ranker; each part loaded or replaced on its own.
#[derive(Default)]
pub struct Engine {
    embedder: Option<Embedder>,
    index: Option<FlatIndex>,
    reranker: Option<CrossEncoder>,
    cache: QueryCache,
    /// The index on the GPU, uploaded by the first search that runs there; dropped when the
    /// index changes or a GPU search fails.
    scan: Mutex<Option<Arc<GpuScan>>>,
    /// Why the index is not searched on the GPU although it would be: the upload or a GPU
    /// search failed. Not retried until the index changes.
    scan_error: Mutex<Option<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Engine {
    /// The engine on the CPU.
    pub fn new(encoder: Encoder, index: FlatIndex) -> Result<Self> {
        let mut engine = Engine::default();
        engine.set_model(Embedder::cpu(encoder))?;
        engine.set_index(index)?;
        Ok(engine)
    }

    /// The engine on `embedder`'s backend. With the GPU backend, an index that belongs on
    /// the GPU ([`GpuScan::wanted`]) is uploaded now, so [`Engine::gpu_search_error`] says
    /// at once why it is not (an index the GPU cannot take is searched on the CPU).
    pub async fn on_backend(embedder: Embedder, index: FlatIndex) -> Result<Self> {
        let mut engine = Engine::default();
        engine.set_model(embedder)?;
        engine.set_index(index)?;
        engine.gpu_scan(&SearchOptions::default()).await;
        Ok(engine)
    }

    /// Replaces the model; it must make the loaded index's vectors.
    pub fn set_model(&mut self, embedder: Embedder) -> Result<()> {
        if let Some(index) = &self.index {
            check_model(index, embedder.encoder())?;
        }
        self.embedder = Some(embedder);
        self.replaced();
        Ok(())
    }

    /// Replaces the index; it must hold the loaded model's vectors.
    pub fn set_index(&mut self, index: FlatIndex) -> Result<()> {
        if let Some(embedder) = &self.embedder {
            check_model(&index, embedder.encoder())?;
        }
        self.index = Some(index);
        self.replaced();
        Ok(())
    }

    /// Starts an empty index (with a keyword index) for the model's vectors.
    pub fn new_index(&mut self) -> Result<()> {
        let encoder = self.encoder()?;
        let index = crate::new_index(encoder, IndexConfig { keyword: true, ..IndexConfig::new(encoder.dim()) }, None)?;
        self.set_index(index)
    }

    /// The cross-encoder that [`Engine::search_reranked`] re-ranks with.
    pub fn set_reranker(&mut self, reranker: CrossEncoder) {
        self.reranker = Some(reranker);
    }

    pub fn embedder(&self) -> Result<&Embedder> {
        self.embedder.as_ref().ok_or(EngineError::NotLoaded(Part::Model))
    }

    pub fn encoder(&self) -> Result<&Encoder> {
        Ok(self.embedder()?.encoder())
    }

    pub fn index(&self) -> Result<&FlatIndex> {
        self.index.as_ref().ok_or(EngineError::NotLoaded(Part::Index))
    }

    pub fn cache(&self) -> &QueryCache {
        &self.cache
    }

    /// The index changed: the GPU's copy of it is stale.
    fn index_changed(&mut self) {
        *lock(&self.scan) = None;
        *lock(&self.scan_error) = None;
    }

    /// A new index or model: the cached query vectors (whose dimensions follow the index)
    /// are stale too.
    fn replaced(&mut self) {
        self.index_changed();
        self.cache.clear();
    }

    /// Why the index is not searched on the GPU although the GPU backend runs, if so.
    pub fn gpu_search_error(&self) -> Option<String> {
        lock(&self.scan_error).clone()
    }

    /// Whether vector searches with `options` run on the GPU.
    pub fn searches_on_gpu(&self, options: &SearchOptions) -> bool {
        let (Some(embedder), Some(index)) = (&self.embedder, &self.index) else { return false };
        lock(&self.scan_error).is_none()
            && GpuScan::handles(options)
            && GpuScan::wanted(index, embedder.report().requested)
            && embedder.gpu_context().is_some()
    }

    /// The GPU's copy of the index (uploaded now if it is not there), or `None` for the CPU
    /// to answer: the GPU does not run this search, or failed (remembered).
    async fn gpu_scan(&self, options: &SearchOptions) -> Option<Arc<GpuScan>> {
        if !self.searches_on_gpu(options) {
            return None;
        }
        if let Some(scan) = lock(&self.scan).clone() {
            return Some(scan);
        }
        let ctx = self.embedder.as_ref()?.gpu_context()?;
        match GpuScan::new(&ctx, self.index.as_ref()?).await {
            Ok(uploaded) => {
                let scan = Arc::new(uploaded);
                *lock(&self.scan) = Some(scan.clone());
                Some(scan)
            }
            Err(e) => {
                *lock(&self.scan_error) = Some(format!("{}: {e}", e.code()));
                None
            }
        }
    }

    /// Texts embedded on the model's backend.
    pub async fn embed(&self, texts: &[&str], options: &EmbedOptions) -> Result<Embeddings> {
        self.embedder()?.embed(texts, options).await
    }

    /// `query` embedded as a query for the index (Matryoshka dimensions included), through
    /// the cache.
    async fn embed_query(&self, query: &str) -> Result<Arc<[f32]>> {
        if let Some(vector) = self.cache.lookup(query) {
            return Ok(vector);
        }
        let options = EmbedOptions { kind: TextKind::Query, batch_size: 1, ..Default::default() };
        let options = options_for(self.index()?, self.encoder()?, &options);
        Ok(self.cache.store(query, self.embed(&[query], &options).await?.data))
    }

    /// Searches for a text query in `options.mode` (vector, keyword or hybrid); the query's
    /// embedding is cached. An empty or blank query (a search box just cleared) finds nothing.
    pub async fn search(&self, query: &str, options: &SearchOptions) -> Result<Vec<SearchResult>> {
        let index = self.index()?;
        if query.trim().is_empty() {
            return Ok(Vec::new());
        }
        let vector = match options.mode {
            SearchMode::Keyword => None,
            SearchMode::Vector | SearchMode::Hybrid => Some(self.embed_query(query).await?),
        };
        if let (Some(vector), true) = (&vector, self.searches_on_gpu(options)) {
            return self.search_vector(vector, options).await;
        }
        let hits = index.search_query(&Query { vector: vector.as_deref(), text: Some(query) }, options)?;
        Ok(results(index, &hits))
    }

    /// [`Engine::search`] with the best `top` re-ranked by the re-ranker: `options.k`
    /// results, the re-ranked ones with its scores; any below them (when `k > top`) keep
    /// their search scores and order.
    pub async fn search_reranked(&self, query: &str, options: &SearchOptions, top: usize) -> Result<Vec<SearchResult>> {
        let reranker = self.reranker.as_ref().ok_or(EngineError::NotLoaded(Part::Reranker))?;
        let wide = SearchOptions { k: options.k.max(top), ..options.clone() };
        let mut found = self.search(query, &wide).await?;
        let rest = found.split_off(top.min(found.len()));
        let mut ranked = rerank(reranker, query, found, document_text)?;
        ranked.extend(rest);
        ranked.truncate(options.k);
        Ok(ranked)
    }

    /// Searches with a vector of the index's dimension.
    pub async fn search_vector(&self, vector: &[f32], options: &SearchOptions) -> Result<Vec<SearchResult>> {
        let index = self.index()?;
        if let Some(scan) = self.gpu_scan(options).await {
            match scan.search(index, vector, options).await {
                Ok(hits) => return Ok(results(index, &hits)),
                // Bad input is the caller's: the CPU index refuses it too.
                Err(e @ EngineError::Index(_)) => return Err(e),
                // The CPU answers from now on, and says why.
                Err(e) => {
                    lock(&self.scan).take();
                    *lock(&self.scan_error) = Some(format!("{}: {e}", e.code()));
                }
            }
        }
        Ok(results(index, &index.search(vector, options)?))
    }

    /// Embeds (on the model's backend) and adds or replaces documents, all or nothing;
    /// starts an index for the model when there is none. Returns the number of documents.
    pub async fn add(&mut self, docs: &[NewDocument]) -> Result<usize> {
        let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
        let options = EmbedOptions { kind: TextKind::Document, ..Default::default() };
        let vectors = self.embed(&texts, &options).await?;
        self.add_embedded(docs, &vectors.data)
    }

    /// [`Engine::add`] for documents embedded elsewhere with this model (`docs.len() ×
    /// dim` values, as [`Engine::embed`] makes them for documents): how a pool of
    /// engines splits the embedding and one of them keeps the index. Cut to the index's
    /// Matryoshka dimensions here.
    pub fn add_embedded(&mut self, docs: &[NewDocument], vectors: &[f32]) -> Result<usize> {
        let dim = self.encoder()?.dim();
        if vectors.len() != docs.len() * dim {
            return Err(IndexError::DimensionMismatch {
                op: "add embedded documents",
                expected: docs.len() * dim,
                actual: vectors.len(),
            }
            .into());
        }
        if self.index.is_none() {
            self.new_index()?;
        }
        let options = options_for(self.index()?, self.encoder()?, &EmbedOptions::default());
        let vectors = cut(Embeddings { dim, data: vectors.to_vec() }, options.dims)?;
        let batch: Vec<Document> = docs
            .iter()
            .zip(vectors.rows())
            .map(|(d, v)| Document { id: d.id.clone(), vector: v, metadata: d.metadata.clone(), text: Some(&d.text) })
            .collect();
        let index = self.index.as_mut().expect("started above");
        index.upsert(&batch)?;
        let len = index.len();
        self.index_changed();
        Ok(len)
    }

    /// Removes documents by id; an unknown id removes nothing and is an error. Returns the
    /// number of documents left.
    pub fn remove<S: AsRef<str>>(&mut self, ids: &[S]) -> Result<usize> {
        let index = self.index.as_mut().ok_or(EngineError::NotLoaded(Part::Index))?;
        index.remove(ids)?;
        let len = index.len();
        self.index_changed();
        Ok(len)
    }

    pub fn stats(&self) -> Stats {
        let encoder = self.embedder.as_ref().map(Embedder::encoder);
        Stats {
            documents: self.index.as_ref().map_or(0, FlatIndex::len),
            dim: self.index.as_ref().map(FlatIndex::dim).or(encoder.map(Encoder::dim)),
            model: encoder.map(|e| e.id().to_owned()),
            kernels: quiver_index::kernels::best().name(),
            model_kernels: quiver_encoder::int8_kernels(),
            keyword: self.index.as_ref().is_some_and(|i| i.keyword_index().is_some()),
            query_cache: self.cache.stats(),
            backend: self.embedder.as_ref().map(Embedder::report),
            gpu_search: lock(&self.scan).is_some(),
            gpu_search_error: self.gpu_search_error(),
        }
    }
}
