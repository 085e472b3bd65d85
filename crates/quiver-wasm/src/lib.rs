//! Browser bindings: conversions between JS values and the engine, nothing more. Every
//! failure reaches JS as an `Error` with a stable `code`; no input makes the module trap.

use std::cell::{Ref, RefCell, RefMut};
use std::path::Path;
use std::rc::Rc;

use js_sys::{Array, Float32Array, Object, Promise, Reflect, Uint8Array};
use quiver::encoder::{CrossEncoder, Encoder, EncoderError, ModelFiles, TextKind};
use quiver::gpu::GpuError;
use quiver::index::{
    Document, Filter, FlatIndex, Fusion, Hit, IndexConfig, Query, Rescore, SearchMode, SearchOptions, Strategy,
};
use quiver::{BackendChoice, BackendOptions, DecisionCache, EmbedOptions, Embedder, GpuScan, QueryCache};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// What to fetch in round `round` of loading a model folder by URL, given its `quiver.json`
/// once fetched: `{ required, optional, firstOf, hashed }`, or `null` when nothing more is
/// read. The rules are `ModelFiles::reads`, which the CLI reads a folder by.
#[wasm_bindgen(js_name = modelReads)]
pub fn model_reads(round: usize, quiver_json: Option<Vec<u8>>) -> Result<JsValue, JsValue> {
    let files = ModelFiles { quiver: quiver_json, ..Default::default() };
    match files.reads(round).map_err(engine_error)? {
        Some(reads) => to_js(&reads),
        None => Ok(JsValue::NULL),
    }
}

/// A JS `Error` carrying `code`.
fn error(code: &str, message: impl std::fmt::Display) -> JsValue {
    let e = js_sys::Error::new(&message.to_string());
    let _ = Reflect::set(&e, &"code".into(), &code.into());
    e.into()
}

fn engine_error(e: impl Into<quiver::EngineError>) -> JsValue {
    let e = e.into();
    error(e.code(), &e)
}

fn invalid(what: impl std::fmt::Display) -> JsValue {
    error("E_INVALID_ARGUMENT", what)
}

/// Plain JS objects and arrays (not `Map`s), as JSON would give.
fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(invalid)
}

/// Search options as JS passes them; every field optional.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsSearchOptions {
    k: Option<usize>,
    strategy: Option<String>,
    oversample: Option<usize>,
    rescore: Option<String>,
    filter: Option<serde_json::Value>,
    mode: Option<String>,
    fusion: Option<String>,
    rrf_k: Option<f32>,
    vector_weight: Option<f32>,
    fusion_candidates: Option<usize>,
    /// Re-rank this many top results with the loaded cross-encoder.
    rerank: Option<usize>,
}

/// A document as JS passes it to `add`.
#[derive(Deserialize)]
struct JsDocument {
    id: String,
    text: String,
    #[serde(default)]
    metadata: serde_json::Value,
}

#[wasm_bindgen]
pub struct Engine {
    /// Shared with the futures of the async methods; borrowed only between awaits (with
    /// `try_borrow`: a borrow that cannot be had is an `E_BUSY` error, never a trap).
    state: Rc<RefCell<State>>,
}

struct State {
    /// Where the next model embeds (`setBackend`).
    backend: BackendOptions,
    embedder: Option<Rc<Embedder>>,
    index: Option<FlatIndex>,
    reranker: Option<CrossEncoder>,
    /// Query embeddings; emptied whenever the model or the index is replaced.
    cache: QueryCache,
    /// The index on the GPU, uploaded by the first search that runs there.
    scan: Option<Rc<GpuScan>>,
    /// Why the index is not searched on the GPU although it would be: the upload or a GPU
    /// search failed. Not retried until the index changes.
    scan_error: Option<String>,
    /// Bumped whenever the index or the model changes: what an async call started on an
    /// older one (an upload, a GPU search, embedded documents) is not used.
    generation: u64,
    disposed: bool,
}

impl State {
    /// Whether a vector search with `options` runs on the GPU.
    fn scans_on_gpu(&self, options: &SearchOptions) -> bool {
        let (Some(embedder), Some(index)) = (&self.embedder, &self.index) else { return false };
        self.scan_error.is_none()
            && GpuScan::handles(options)
            && GpuScan::wanted(index, embedder.report().requested)
            && embedder.gpu_context().is_some()
    }

    /// The index changed: the GPU's copy of it is stale.
    fn index_changed(&mut self) {
        self.scan = None;
        self.scan_error = None;
        self.generation += 1;
    }

    /// A new index or model: the cached query vectors (whose dimensions follow the index)
    /// are stale too.
    fn replaced(&mut self) {
        self.index_changed();
        self.cache.clear();
    }

    fn live(&self) -> Result<(), JsValue> {
        if self.disposed {
            Err(error("E_DISPOSED", "this Quiver engine was disposed"))
        } else {
            Ok(())
        }
    }

    fn embedder(&self) -> Result<&Rc<Embedder>, JsValue> {
        self.live()?;
        self.embedder.as_ref().ok_or_else(|| error("E_NO_MODEL", "no model is loaded"))
    }

    fn encoder(&self) -> Result<&Encoder, JsValue> {
        Ok(self.embedder()?.encoder())
    }

    fn index(&self) -> Result<&FlatIndex, JsValue> {
        self.live()?;
        self.index.as_ref().ok_or_else(|| error("E_NO_INDEX", "no index is loaded"))
    }

    fn index_mut(&mut self) -> Result<&mut FlatIndex, JsValue> {
        self.live()?;
        self.index.as_mut().ok_or_else(|| error("E_NO_INDEX", "no index is loaded"))
    }

    /// Starts an empty index (with a keyword index) for the loaded model.
    fn new_index(&mut self) -> Result<(), JsValue> {
        let encoder = self.encoder()?;
        let config = IndexConfig { keyword: true, ..IndexConfig::new(encoder.dim()) };
        let index = quiver::new_index(encoder, config, None).map_err(engine_error)?;
        self.index = Some(index);
        self.replaced();
        Ok(())
    }
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

fn busy() -> JsValue {
    error("E_BUSY", "the engine is busy with another call")
}

fn borrow(state: &RefCell<State>) -> Result<Ref<'_, State>, JsValue> {
    state.try_borrow().map_err(|_| busy())
}

fn borrow_mut(state: &RefCell<State>) -> Result<RefMut<'_, State>, JsValue> {
    state.try_borrow_mut().map_err(|_| busy())
}

#[wasm_bindgen]
impl Engine {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Engine {
        let state = State {
            backend: BackendOptions::default(),
            embedder: None,
            index: None,
            reranker: None,
            cache: QueryCache::default(),
            scan: None,
            scan_error: None,
            generation: 0,
            disposed: false,
        };
        Engine { state: Rc::new(RefCell::new(state)) }
    }

    fn state(&self) -> Result<Ref<'_, State>, JsValue> {
        borrow(&self.state)
    }

    fn state_mut(&self) -> Result<RefMut<'_, State>, JsValue> {
        borrow_mut(&self.state)
    }

    /// Where the next `loadModel` computes embeddings: `backend` "gpu", "cpu" or "auto"
    /// (the default); `calibration_budget_ms` bounds an `auto` calibration run (300 ms
    /// when absent). Checked before anything is fetched.
    #[wasm_bindgen(js_name = setBackend)]
    pub fn set_backend(&self, backend: Option<String>, calibration_budget_ms: Option<f64>) -> Result<(), JsValue> {
        let choice = backend.as_deref().map_or(Ok(BackendChoice::Auto), str::parse).map_err(engine_error)?;
        let mut options = BackendOptions::from(choice);
        if let Some(ms) = calibration_budget_ms {
            options = options.with_budget_ms(ms).map_err(engine_error)?;
        }
        let mut state = self.state_mut()?;
        state.live()?;
        state.backend = options;
        Ok(())
    }

    /// Loads a model from `{ "config.json": Uint8Array, "tokenizer.json": …, … }` on the
    /// backend `setBackend` chose; `hashes` may carry the sha256 (hex) of the weights
    /// (`model.safetensors` or `model.gguf`) and `tokenizer.json`, by file name;
    /// `decisions` is the JSON of earlier `auto` decisions (from the page's storage).
    /// Resolves to `{ model, backend, decisions }`: the backend report and the decisions to
    /// store back.
    #[wasm_bindgen(js_name = loadModel)]
    pub fn load_model(
        &self,
        files: &Object,
        name: &str,
        hashes: &JsValue,
        decisions: &str,
    ) -> Result<Promise, JsValue> {
        let options = self.state()?.backend;
        self.state()?.live()?;
        let files = model_files(files, name, hashes)?;
        let encoder = Encoder::load(&files).map_err(engine_error)?;
        if let Some(index) = &self.state()?.index {
            quiver::check_model(index, &encoder).map_err(engine_error)?;
        }
        let mut decisions = DecisionCache::from_json(decisions);
        let state = self.state.clone();
        Ok(future_to_promise(async move {
            let embedder = Embedder::new(encoder, &files, options, &mut decisions).await;
            drop(files);
            let result = serde_json::json!({
                "model": quiver::model_info(embedder.encoder()),
                "backend": embedder.report(),
                "decisions": decisions.to_json(),
            });
            let mut state = borrow_mut(&state)?;
            state.live()?;
            state.embedder = Some(Rc::new(embedder));
            state.replaced();
            to_js(&result)
        }))
    }

    /// Loads a cross-encoder (BERT with a classification head) for `rerank` searches, from
    /// its files as `loadModel` takes them.
    #[wasm_bindgen(js_name = loadReranker)]
    pub fn load_reranker(&self, files: &Object, name: &str) -> Result<(), JsValue> {
        self.state()?.live()?;
        let files = model_files(files, name, &JsValue::UNDEFINED)?;
        self.state_mut()?.reranker = Some(CrossEncoder::load(&files).map_err(engine_error)?);
        Ok(())
    }

    /// Loads an index file's bytes (checked against the loaded model, if any).
    #[wasm_bindgen(js_name = loadIndex)]
    pub fn load_index(&self, bytes: Vec<u8>) -> Result<JsValue, JsValue> {
        {
            let mut state = self.state_mut()?;
            state.live()?;
            let index = FlatIndex::from_bytes(bytes).map_err(engine_error)?;
            if let Some(embedder) = &state.embedder {
                quiver::check_model(&index, embedder.encoder()).map_err(engine_error)?;
            }
            state.index = Some(index);
            state.replaced();
        }
        self.stats()
    }

    /// Starts an empty index (with a keyword index) for the loaded model.
    #[wasm_bindgen(js_name = newIndex)]
    pub fn new_index(&self) -> Result<(), JsValue> {
        self.state_mut()?.new_index()
    }

    /// Embeds texts (`kind`: "query", "document" or "raw") on the engine's backend;
    /// resolves to one `Float32Array` of `texts.length × dim` values.
    pub fn embed(&self, texts: JsValue, kind: &str) -> Result<Promise, JsValue> {
        let embedder = self.state()?.embedder()?.clone();
        let texts = strings(&texts, "texts")?;
        let kind = kind.parse::<TextKind>().map_err(invalid)?;
        Ok(future_to_promise(async move {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let options = EmbedOptions { kind, ..Default::default() };
            let vectors = embedder.embed(&refs, &options).await.map_err(engine_error)?;
            Ok(Float32Array::from(vectors.data.as_slice()).into())
        }))
    }

    /// Searches with a text query (`mode`: vector, keyword or hybrid); resolves to
    /// `[{ id, score, metadata }]`, best first. The query is embedded on the engine's
    /// backend (and cached); the scan runs on the GPU where `GpuScan` would.
    pub fn search(&self, query: JsValue, options: JsValue) -> Result<Promise, JsValue> {
        let query = query.as_string().ok_or_else(|| invalid("the query must be a string"))?;
        let (options, rerank) = search_options(options)?;
        let state = self.state()?;
        let (embedder, index) = (state.embedder()?.clone(), state.index()?);
        if let Some(top) = rerank {
            let reranker = state.reranker.as_ref().ok_or_else(|| error("E_NO_RERANKER", "no reranker is loaded"))?;
            let results =
                quiver::search_reranked(embedder.encoder(), index, &state.cache, reranker, &query, &options, top);
            return Ok(Promise::resolve(&to_js(&results.map_err(engine_error)?)?));
        }
        if options.mode == SearchMode::Keyword {
            let hits =
                index.search_query(&Query { vector: None, text: Some(&query) }, &options).map_err(engine_error)?;
            return Ok(Promise::resolve(&to_js(&quiver::results(index, &hits))?));
        }
        let cached = state.cache.lookup(&query);
        let embed_options = EmbedOptions { kind: TextKind::Query, batch_size: 1, ..Default::default() };
        let embed_options = quiver::options_for(index, embedder.encoder(), &embed_options);
        drop(state);
        let shared = self.state.clone();
        Ok(future_to_promise(async move {
            let vector = match cached {
                Some(vector) => vector,
                None => {
                    let embedded = embedder.embed(&[&query], &embed_options).await.map_err(engine_error)?;
                    borrow(&shared)?.cache.store(&query, embedded.data)
                }
            };
            search_embedded(&shared, &vector, Some(&query), &options).await
        }))
    }

    /// Searches with a vector of the index's dimension; resolves to the results.
    #[wasm_bindgen(js_name = searchVector)]
    pub fn search_vector(&self, vector: Vec<f32>, options: JsValue) -> Result<Promise, JsValue> {
        let (options, rerank) = search_options(options)?;
        if rerank.is_some() {
            return Err(invalid("rerank needs a text query: use search"));
        }
        self.state()?.index()?;
        let shared = self.state.clone();
        Ok(future_to_promise(async move { search_embedded(&shared, &vector, None, &options).await }))
    }

    /// Embeds (on the engine's backend) and adds (or replaces) `[{ id, text, metadata? }]`;
    /// all or nothing. Resolves to the number of documents.
    pub fn add(&self, docs: JsValue) -> Result<Promise, JsValue> {
        let docs: Vec<JsDocument> =
            serde_wasm_bindgen::from_value(docs).map_err(|e| invalid(format!("documents: {e}")))?;
        let (embedder, options, generation) = {
            let mut state = self.state_mut()?;
            if state.index.is_none() {
                state.new_index()?;
            }
            let embedder = state.embedder()?.clone();
            let options = quiver::options_for(state.index()?, embedder.encoder(), &EmbedOptions::default());
            (embedder, options, state.generation)
        };
        let state = self.state.clone();
        Ok(future_to_promise(async move {
            let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
            let vectors = embedder.embed(&texts, &options).await.map_err(engine_error)?;
            let batch: Vec<Document> = docs
                .iter()
                .zip(vectors.rows())
                .map(|(d, v)| Document {
                    id: d.id.clone(),
                    vector: v,
                    metadata: d.metadata.clone(),
                    text: Some(&d.text),
                })
                .collect();
            let mut state = borrow_mut(&state)?;
            if state.generation != generation {
                return Err(busy());
            }
            let index = state.index_mut()?;
            index.upsert(&batch).map_err(engine_error)?;
            let len = index.len();
            state.index_changed();
            Ok(JsValue::from(len))
        }))
    }

    /// Removes documents by id; unknown ids remove nothing and are an error.
    pub fn remove(&self, ids: JsValue) -> Result<usize, JsValue> {
        let ids = strings(&ids, "ids")?;
        let mut state = self.state_mut()?;
        let index = state.index_mut()?;
        index.remove(&ids).map_err(engine_error)?;
        let len = index.len();
        state.index_changed();
        Ok(len)
    }

    /// The index as file bytes, for storage.
    #[wasm_bindgen(js_name = indexBytes)]
    pub fn index_bytes(&self) -> Result<Vec<u8>, JsValue> {
        Ok(self.state()?.index()?.to_bytes())
    }

    /// `{ documents, dim, model, kernels, keyword, queryCache: { hits, misses, entries,
    /// capacity }, backend }` (`backend`: which one embeds, why, the calibration, the adapter).
    pub fn stats(&self) -> Result<JsValue, JsValue> {
        let state = self.state()?;
        state.live()?;
        let encoder = state.embedder.as_deref().map(Embedder::encoder);
        let stats = serde_json::json!({
            "documents": state.index.as_ref().map_or(0, FlatIndex::len),
            "dim": state.index.as_ref().map(FlatIndex::dim).or(encoder.map(Encoder::dim)),
            "model": encoder.map(|e| e.id().to_owned()),
            "kernels": quiver::index::kernels::best().name(),
            "keyword": state.index.as_ref().is_some_and(|i| i.keyword_index().is_some()),
            "queryCache": state.cache.stats(),
            "backend": state.embedder.as_deref().map(Embedder::report),
            "gpuSearch": state.scan.is_some(),
            "gpuSearchError": state.scan_error,
        });
        to_js(&stats)
    }

    /// Frees the model and index; every later call fails with `E_DISPOSED`.
    pub fn dispose(&self) -> Result<(), JsValue> {
        let mut state = self.state_mut()?;
        state.embedder = None;
        state.index = None;
        state.reranker = None;
        state.replaced();
        state.disposed = true;
        Ok(())
    }
}

/// Searches the index with a query vector (and its text, for hybrid search): on the GPU
/// where `State::scans_on_gpu`, else (or when the GPU fails, or the index changed
/// meanwhile) on the CPU index.
async fn search_embedded(
    shared: &RefCell<State>,
    vector: &[f32],
    text: Option<&str>,
    options: &SearchOptions,
) -> Result<JsValue, JsValue> {
    let on_gpu = {
        let state = borrow(shared)?;
        state.index()?;
        state.scans_on_gpu(options).then(|| (state.generation, state.scan.clone()))
    };
    if let Some((generation, scan)) = on_gpu {
        if let Some(hits) = gpu_hits(shared, generation, scan, vector, options).await? {
            let state = borrow(shared)?;
            if state.generation == generation {
                return to_js(&quiver::results(state.index()?, &hits));
            }
        }
    }
    let state = borrow(shared)?;
    let index = state.index()?;
    let hits = index.search_query(&Query { vector: Some(vector), text }, options).map_err(engine_error)?;
    to_js(&quiver::results(index, &hits))
}

/// The GPU's hits for a vector search (uploading the index first when it is not there), or
/// `None` for the CPU to answer: the GPU failed (remembered in `scan_error`) or the index
/// changed while the GPU worked. Bad input is an error, as on the CPU.
async fn gpu_hits(
    shared: &RefCell<State>,
    generation: u64,
    scan: Option<Rc<GpuScan>>,
    vector: &[f32],
    options: &SearchOptions,
) -> Result<Option<Vec<Hit>>, JsValue> {
    let failed = |error: GpuError| -> Result<Option<Vec<Hit>>, JsValue> {
        let mut state = borrow_mut(shared)?;
        if state.generation == generation {
            state.scan = None;
            state.scan_error = Some(format!("{}: {error}", error.code()));
        }
        Ok(None)
    };
    let scan = match scan {
        Some(scan) => scan,
        None => {
            let (ctx, index) = {
                let state = borrow(shared)?;
                let ctx = state.embedder()?.gpu_context();
                // A copy: no borrow is held while it uploads.
                (ctx, state.index()?.clone())
            };
            let Some(ctx) = ctx else { return Ok(None) };
            let uploaded = match GpuScan::new(&ctx, &index).await {
                Ok(scan) => Rc::new(scan),
                Err(e) => return failed(e),
            };
            let mut state = borrow_mut(shared)?;
            if state.generation != generation {
                return Ok(None);
            }
            state.scan = Some(uploaded.clone());
            uploaded
        }
    };
    let query = {
        let state = borrow(shared)?;
        if state.generation != generation {
            return Ok(None);
        }
        scan.prepare(state.index()?, vector, options).map_err(engine_error)?
    };
    match scan.run(&query).await {
        Ok(hits) => Ok(Some(hits)),
        Err(quiver::EngineError::Gpu(e)) => failed(e),
        Err(e) => Err(engine_error(e)),
    }
}

/// A model folder from `{ path: Uint8Array }`, read by the rules a folder on disk is read by.
fn model_files(files: &Object, name: &str, hashes: &JsValue) -> Result<ModelFiles, JsValue> {
    let hash = |file: &str| Reflect::get(hashes, &file.into()).ok().and_then(|v| v.as_string());
    let mut model = ModelFiles::read_with(name.to_owned(), Path::new(name), |path| {
        let value = Reflect::get(files, &path.into()).unwrap_or(JsValue::UNDEFINED);
        if value.is_undefined() {
            return Ok(None);
        }
        let bytes = value.dyn_into::<Uint8Array>().map_err(|_| EncoderError::InvalidArgument {
            op: "load model",
            what: format!("{path} is not a Uint8Array"),
        })?;
        Ok(Some(bytes.to_vec()))
    })
    .map_err(engine_error)?;
    model.tokenizer_sha256 = hash("tokenizer.json");
    model.weights_sha256 = hash(model.weights_format.file_name());
    Ok(model)
}

fn strings(value: &JsValue, what: &str) -> Result<Vec<String>, JsValue> {
    if !Array::is_array(value) {
        return Err(invalid(format!("{what} must be an array of strings")));
    }
    Array::from(value)
        .iter()
        .enumerate()
        .map(|(i, v)| v.as_string().ok_or_else(|| invalid(format!("{what}[{i}] is not a string"))))
        .collect()
}

/// The search options, and how many top results to re-rank.
fn search_options(value: JsValue) -> Result<(SearchOptions, Option<usize>), JsValue> {
    let js: JsSearchOptions = if value.is_undefined() || value.is_null() {
        JsSearchOptions::default()
    } else {
        serde_wasm_bindgen::from_value(value).map_err(|e| invalid(format!("search options: {e}")))?
    };
    let mut options = SearchOptions::default();
    if let Some(k) = js.k {
        options.k = k;
    }
    if let Some(s) = js.strategy {
        options.strategy = s.parse::<Strategy>().map_err(invalid)?;
    }
    if let Some(o) = js.oversample {
        options.oversample = o;
    }
    if let Some(r) = js.rescore {
        options.rescore = r.parse::<Rescore>().map_err(invalid)?;
    }
    if let Some(f) = js.filter {
        options.filter = Some(Filter::from_json(&f).map_err(engine_error)?);
    }
    if let Some(m) = js.mode {
        options.mode = m.parse::<SearchMode>().map_err(invalid)?;
    }
    options.fusion =
        Fusion::named(js.fusion.as_deref().unwrap_or("rrf"), js.rrf_k, js.vector_weight).map_err(invalid)?;
    if let Some(c) = js.fusion_candidates {
        options.fusion_candidates = c;
    }
    Ok((options, js.rerank))
}
