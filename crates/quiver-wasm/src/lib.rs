//! Browser bindings: conversions between JS values and the engine, nothing more. Every
//! failure reaches JS as an `Error` with a stable `code`; no input makes the module trap.

use std::cell::{Ref, RefCell, RefMut};
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use js_sys::{Array, Float32Array, Promise, Reflect, Uint8Array};
use quiver::encoder::{CrossEncoder, Encoder, ModelFiles, TextKind};
use quiver::index::{Filter, FlatIndex, Fusion, Rescore, SearchMode, SearchOptions, Strategy};
use quiver::{BackendChoice, BackendOptions, DecisionCache, EmbedOptions, Embedder, NewDocument};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

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

/// Files received into wasm memory chunk by chunk as they arrive, by path: a model or an
/// index is copied into the engine once and never held whole by JS. `loadModel` and
/// `loadIndex` take theirs out.
#[wasm_bindgen]
#[derive(Default)]
pub struct Files {
    bytes: HashMap<String, Vec<u8>>,
}

#[wasm_bindgen]
impl Files {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Files {
        Files::default()
    }

    /// Starts `path` afresh, with room for `expected` bytes (0 when the length is unknown;
    /// a length too large to reserve, as a lying header may give, reserves nothing).
    pub fn begin(&mut self, path: &str, expected: usize) {
        let mut bytes = Vec::new();
        let _ = bytes.try_reserve_exact(expected);
        self.bytes.insert(path.to_owned(), bytes);
    }

    /// Adds bytes that arrived to the end of `path` (started if it was not).
    pub fn append(&mut self, path: &str, chunk: &[u8]) {
        self.bytes.entry(path.to_owned()).or_default().extend_from_slice(chunk);
    }

    /// A copy of a small file (`quiver.json`), for the worker to read.
    pub fn copy(&self, path: &str) -> Option<Vec<u8>> {
        self.bytes.get(path).cloned()
    }

    /// `path`'s bytes where they lie in wasm memory, without a copy: valid only until wasm
    /// next allocates, so hash or copy them at once.
    pub fn view(&self, path: &str) -> Option<Uint8Array> {
        // SAFETY: the view is read before any other call into wasm can move or free them.
        self.bytes.get(path).map(|bytes| unsafe { Uint8Array::view(bytes) })
    }
}

impl Files {
    fn take(&mut self, path: &str) -> Option<Vec<u8>> {
        self.bytes.remove(path)
    }
}

/// The engine behind one worker: a [`quiver::Engine`] and the options of its next model.
#[wasm_bindgen]
pub struct Engine {
    /// Shared with the futures of the async methods, which borrow it (with `try_borrow`)
    /// for the whole call: the worker runs one call at a time, and an overlapping call is an
    /// `E_BUSY` error, never a trap.
    state: Rc<RefCell<State>>,
}

#[derive(Default)]
struct State {
    /// Where the next model embeds (`setBackend`).
    backend: BackendOptions,
    engine: quiver::Engine,
    disposed: bool,
}

impl State {
    fn live(&self) -> Result<&quiver::Engine, JsValue> {
        if self.disposed {
            Err(error("E_DISPOSED", "this Quiver engine was disposed"))
        } else {
            Ok(&self.engine)
        }
    }

    fn live_mut(&mut self) -> Result<&mut quiver::Engine, JsValue> {
        self.live()?;
        Ok(&mut self.engine)
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

// A call's future holds its borrow across awaits on purpose: borrows are taken with
// `try_borrow`, so an overlapping call is refused with E_BUSY, never a panic.
#[allow(clippy::await_holding_refcell_ref)]
#[wasm_bindgen]
impl Engine {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Engine {
        Engine { state: Rc::default() }
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
        let mut state = borrow_mut(&self.state)?;
        state.live()?;
        state.backend = options;
        Ok(())
    }

    /// Loads a model from its files (`config.json`, `tokenizer.json`, … by path), taken out
    /// of `files`, on the backend `setBackend` chose; `hashes` may carry the sha256 (hex) of the weights
    /// (`model.safetensors` or `model.gguf`) and `tokenizer.json`, by file name;
    /// `decisions` is the JSON of earlier `auto` decisions (from the page's storage).
    /// Resolves to `{ model, backend, decisions }`: the backend report and the decisions to
    /// store back.
    #[wasm_bindgen(js_name = loadModel)]
    pub fn load_model(
        &self,
        files: &mut Files,
        name: &str,
        hashes: &JsValue,
        decisions: &str,
    ) -> Result<Promise, JsValue> {
        let options = {
            let state = borrow(&self.state)?;
            state.live()?;
            state.backend
        };
        let files = model_files(files, name, hashes)?;
        let encoder = Encoder::load(&files).map_err(engine_error)?;
        // A model that cannot search the loaded index is refused before the GPU is set up.
        if let Ok(index) = borrow(&self.state)?.live()?.index() {
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
            borrow_mut(&state)?.live_mut()?.set_model(embedder).map_err(engine_error)?;
            to_js(&result)
        }))
    }

    /// Loads a cross-encoder (BERT with a classification head) for `rerank` searches, from
    /// its files as `loadModel` takes them.
    #[wasm_bindgen(js_name = loadReranker)]
    pub fn load_reranker(&self, files: &mut Files, name: &str) -> Result<(), JsValue> {
        borrow(&self.state)?.live()?;
        let reranker = CrossEncoder::load(&model_files(files, name, &JsValue::UNDEFINED)?).map_err(engine_error)?;
        borrow_mut(&self.state)?.live_mut()?.set_reranker(reranker);
        Ok(())
    }

    /// Loads the index file at `path` in `files`, taking it out (checked against the loaded
    /// model, if any).
    #[wasm_bindgen(js_name = loadIndex)]
    pub fn load_index(&self, files: &mut Files, path: &str) -> Result<JsValue, JsValue> {
        let bytes = files.take(path).ok_or_else(|| invalid(format!("no file {path} was received")))?;
        let index = FlatIndex::from_bytes(bytes).map_err(engine_error)?;
        borrow_mut(&self.state)?.live_mut()?.set_index(index).map_err(engine_error)?;
        self.stats()
    }

    /// Starts an empty index (with a keyword index) for the loaded model.
    #[wasm_bindgen(js_name = newIndex)]
    pub fn new_index(&self) -> Result<(), JsValue> {
        borrow_mut(&self.state)?.live_mut()?.new_index().map_err(engine_error)
    }

    /// Embeds texts (`kind`: "query", "document" or "raw") on the engine's backend;
    /// resolves to one `Float32Array` of `texts.length × dim` values.
    pub fn embed(&self, texts: JsValue, kind: &str) -> Result<Promise, JsValue> {
        let texts = strings(&texts, "texts")?;
        let kind = kind.parse::<TextKind>().map_err(invalid)?;
        let state = self.state.clone();
        Ok(future_to_promise(async move {
            let state = borrow(&state)?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let options = EmbedOptions { kind, ..Default::default() };
            let vectors = state.live()?.embed(&refs, &options).await.map_err(engine_error)?;
            Ok(Float32Array::from(vectors.data.as_slice()).into())
        }))
    }

    /// Searches with a text query (`mode`: vector, keyword or hybrid; `rerank`: re-rank this
    /// many top results with the loaded cross-encoder); resolves to `[{ id, score,
    /// metadata }]`, best first.
    pub fn search(&self, query: JsValue, options: JsValue) -> Result<Promise, JsValue> {
        let query = query.as_string().ok_or_else(|| invalid("the query must be a string"))?;
        let (options, rerank) = search_options(options)?;
        let state = self.state.clone();
        Ok(future_to_promise(async move {
            let state = borrow(&state)?;
            let engine = state.live()?;
            let results = match rerank {
                Some(top) => engine.search_reranked(&query, &options, top).await,
                None => engine.search(&query, &options).await,
            };
            to_js(&results.map_err(engine_error)?)
        }))
    }

    /// Searches with a vector of the index's dimension; resolves to the results.
    #[wasm_bindgen(js_name = searchVector)]
    pub fn search_vector(&self, vector: Vec<f32>, options: JsValue) -> Result<Promise, JsValue> {
        let (options, rerank) = search_options(options)?;
        if rerank.is_some() {
            return Err(invalid("rerank needs a text query: use search"));
        }
        let state = self.state.clone();
        Ok(future_to_promise(async move {
            let state = borrow(&state)?;
            to_js(&state.live()?.search_vector(&vector, &options).await.map_err(engine_error)?)
        }))
    }

    /// Embeds (on the engine's backend) and adds (or replaces) `[{ id, text, metadata? }]`;
    /// all or nothing. Resolves to the number of documents.
    pub fn add(&self, docs: JsValue) -> Result<Promise, JsValue> {
        let docs: Vec<NewDocument> =
            serde_wasm_bindgen::from_value(docs).map_err(|e| invalid(format!("documents: {e}")))?;
        let state = self.state.clone();
        Ok(future_to_promise(async move {
            let mut state = borrow_mut(&state)?;
            Ok(JsValue::from(state.live_mut()?.add(&docs).await.map_err(engine_error)?))
        }))
    }

    /// Adds (or replaces) `[{ id, text, metadata? }]` whose vectors were embedded elsewhere
    /// with this model (`embed(texts, "document")` in a pool's other workers): `vectors`
    /// holds `docs.length × dim` values. All or nothing; returns the number of documents.
    #[wasm_bindgen(js_name = addEmbedded)]
    pub fn add_embedded(&self, docs: JsValue, vectors: Vec<f32>) -> Result<usize, JsValue> {
        let docs: Vec<NewDocument> =
            serde_wasm_bindgen::from_value(docs).map_err(|e| invalid(format!("documents: {e}")))?;
        borrow_mut(&self.state)?.live_mut()?.add_embedded(&docs, &vectors).map_err(engine_error)
    }

    /// Removes documents by id; unknown ids remove nothing and are an error.
    pub fn remove(&self, ids: JsValue) -> Result<usize, JsValue> {
        let ids = strings(&ids, "ids")?;
        borrow_mut(&self.state)?.live_mut()?.remove(&ids).map_err(engine_error)
    }

    /// The index as file bytes, for storage.
    #[wasm_bindgen(js_name = indexBytes)]
    pub fn index_bytes(&self) -> Result<Vec<u8>, JsValue> {
        Ok(borrow(&self.state)?.live()?.index().map_err(engine_error)?.to_bytes())
    }

    /// `{ documents, dim, model, kernels, keyword, queryCache: { hits, misses, entries,
    /// capacity }, backend, gpuSearch, gpuSearchError }` (`backend`: which one embeds, why,
    /// the calibration, the adapter).
    pub fn stats(&self) -> Result<JsValue, JsValue> {
        to_js(&borrow(&self.state)?.live()?.stats())
    }

    /// Frees the model and index; every later call fails with `E_DISPOSED`.
    pub fn dispose(&self) -> Result<(), JsValue> {
        let mut state = borrow_mut(&self.state)?;
        state.engine = quiver::Engine::default();
        state.disposed = true;
        Ok(())
    }
}

/// A model folder taken out of `files`, read by the rules a folder on disk is read by.
fn model_files(files: &mut Files, name: &str, hashes: &JsValue) -> Result<ModelFiles, JsValue> {
    let hash = |file: &str| Reflect::get(hashes, &file.into()).ok().and_then(|v| v.as_string());
    let mut model =
        ModelFiles::read_with(name.to_owned(), Path::new(name), |path| Ok(files.take(path))).map_err(engine_error)?;
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
        // serde_wasm_bindgen reads only the fields a struct names, so a misspelt option would
        // pass unseen; through JSON, `deny_unknown_fields` refuses it by name.
        let json: serde_json::Value =
            serde_wasm_bindgen::from_value(value).map_err(|e| invalid(format!("search options: {e}")))?;
        serde_json::from_value(json).map_err(|e| invalid(format!("search options: {e}")))?
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
