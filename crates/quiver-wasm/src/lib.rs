//! Browser bindings: conversions between JS values and the engine, nothing more. Every
//! failure reaches JS as an `Error` with a stable `code`; no input makes the module trap.

use js_sys::{Array, Float32Array, Object, Reflect, Uint8Array};
use quiver::encoder::{CrossEncoder, Encoder, ModelFiles, TextKind};
use quiver::index::{Document, Filter, FlatIndex, Fusion, IndexConfig, Rescore, SearchMode, SearchOptions, Strategy};
use quiver::{EmbedOptions, QueryCache};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
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
    encoder: Option<Encoder>,
    index: Option<FlatIndex>,
    reranker: Option<CrossEncoder>,
    /// Query embeddings; emptied whenever the model or the index changes.
    cache: QueryCache,
    disposed: bool,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

#[wasm_bindgen]
impl Engine {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Engine {
        Engine { encoder: None, index: None, reranker: None, cache: QueryCache::default(), disposed: false }
    }

    fn live(&self) -> Result<(), JsValue> {
        if self.disposed {
            Err(error("E_DISPOSED", "this Quiver engine was disposed"))
        } else {
            Ok(())
        }
    }

    fn encoder(&self) -> Result<&Encoder, JsValue> {
        self.live()?;
        self.encoder.as_ref().ok_or_else(|| error("E_NO_MODEL", "no model is loaded"))
    }

    fn index(&self) -> Result<&FlatIndex, JsValue> {
        self.live()?;
        self.index.as_ref().ok_or_else(|| error("E_NO_INDEX", "no index is loaded"))
    }

    fn index_mut(&mut self) -> Result<&mut FlatIndex, JsValue> {
        self.live()?;
        self.index.as_mut().ok_or_else(|| error("E_NO_INDEX", "no index is loaded"))
    }

    /// Loads a model from `{ "config.json": Uint8Array, "tokenizer.json": …, … }`;
    /// `hashes` may carry the sha256 (hex) of the weights (`model.safetensors` or
    /// `model.gguf`) and `tokenizer.json`, by file name.
    #[wasm_bindgen(js_name = loadModel)]
    pub fn load_model(&mut self, files: &Object, name: &str, hashes: &JsValue) -> Result<JsValue, JsValue> {
        self.live()?;
        let encoder = Encoder::load(&model_files(files, name, hashes)?).map_err(engine_error)?;
        if let Some(index) = &self.index {
            quiver::check_model(index, &encoder).map_err(engine_error)?;
        }
        let info = to_js(&quiver::model_info(&encoder))?;
        self.encoder = Some(encoder);
        self.cache.clear();
        Ok(info)
    }

    /// Loads a cross-encoder (BERT with a classification head) for `rerank` searches, from
    /// its files as `loadModel` takes them.
    #[wasm_bindgen(js_name = loadReranker)]
    pub fn load_reranker(&mut self, files: &Object, name: &str) -> Result<(), JsValue> {
        self.live()?;
        let files = model_files(files, name, &JsValue::UNDEFINED)?;
        self.reranker = Some(CrossEncoder::load(&files).map_err(engine_error)?);
        Ok(())
    }

    /// Loads an index file's bytes (checked against the loaded model, if any).
    #[wasm_bindgen(js_name = loadIndex)]
    pub fn load_index(&mut self, bytes: Vec<u8>) -> Result<JsValue, JsValue> {
        self.live()?;
        let index = FlatIndex::from_bytes(bytes).map_err(engine_error)?;
        if let Some(encoder) = &self.encoder {
            quiver::check_model(&index, encoder).map_err(engine_error)?;
        }
        self.index = Some(index);
        self.cache.clear();
        self.stats()
    }

    /// Starts an empty index (with a keyword index) for the loaded model.
    #[wasm_bindgen(js_name = newIndex)]
    pub fn new_index(&mut self) -> Result<(), JsValue> {
        let encoder = self.encoder()?;
        let config = IndexConfig { keyword: true, ..IndexConfig::new(encoder.dim()) };
        let index = quiver::new_index(encoder, config, None).map_err(engine_error)?;
        self.index = Some(index);
        self.cache.clear();
        Ok(())
    }

    /// Embeds texts (`kind`: "query", "document" or "raw") into one `Float32Array` of
    /// `texts.length × dim` values.
    pub fn embed(&self, texts: JsValue, kind: &str) -> Result<Float32Array, JsValue> {
        let encoder = self.encoder()?;
        let texts = strings(&texts, "texts")?;
        let kind = match kind {
            "query" => TextKind::Query,
            "document" => TextKind::Document,
            "raw" => TextKind::Raw,
            other => return Err(invalid(format!("kind must be query, document or raw, not {other:?}"))),
        };
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let options = EmbedOptions { kind, ..Default::default() };
        let vectors = quiver::embed(encoder, &refs, &options).map_err(engine_error)?;
        Ok(Float32Array::from(vectors.data.as_slice()))
    }

    /// Searches with a text query (`mode`: vector, keyword or hybrid):
    /// `[{ id, score, metadata }]`, best first.
    pub fn search(&self, query: JsValue, options: JsValue) -> Result<JsValue, JsValue> {
        let query = query.as_string().ok_or_else(|| invalid("the query must be a string"))?;
        let (encoder, index) = (self.encoder()?, self.index()?);
        let (options, rerank) = search_options(options)?;
        let results = match rerank {
            Some(top) => {
                let reranker = self.reranker.as_ref().ok_or_else(|| error("E_NO_RERANKER", "no reranker is loaded"))?;
                quiver::search_reranked(encoder, index, &self.cache, reranker, &query, &options, top)
            }
            None => {
                quiver::search_text(encoder, index, &self.cache, &query, &options).map(|h| quiver::results(index, &h))
            }
        };
        to_js(&results.map_err(engine_error)?)
    }

    /// Searches with a vector of the index's dimension.
    #[wasm_bindgen(js_name = searchVector)]
    pub fn search_vector(&self, vector: Vec<f32>, options: JsValue) -> Result<JsValue, JsValue> {
        let index = self.index()?;
        let (options, rerank) = search_options(options)?;
        if rerank.is_some() {
            return Err(invalid("rerank needs a text query: use search"));
        }
        let hits = index.search(&vector, &options).map_err(engine_error)?;
        to_js(&quiver::results(index, &hits))
    }

    /// Embeds and adds (or replaces) `[{ id, text, metadata? }]`; all or nothing.
    pub fn add(&mut self, docs: JsValue) -> Result<usize, JsValue> {
        let docs: Vec<JsDocument> =
            serde_wasm_bindgen::from_value(docs).map_err(|e| invalid(format!("documents: {e}")))?;
        if self.index.is_none() {
            self.new_index()?;
        }
        let (encoder, index) = (self.encoder()?, self.index()?);
        let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
        let options = quiver::options_for(index, encoder, &EmbedOptions::default());
        let vectors = quiver::embed(encoder, &texts, &options).map_err(engine_error)?;
        let batch: Vec<Document> = docs
            .iter()
            .zip(vectors.rows())
            .map(|(d, v)| Document { id: d.id.clone(), vector: v, metadata: d.metadata.clone(), text: Some(&d.text) })
            .collect();
        let index = self.index_mut()?;
        index.upsert(&batch).map_err(engine_error)?;
        Ok(index.len())
    }

    /// Removes documents by id; unknown ids remove nothing and are an error.
    pub fn remove(&mut self, ids: JsValue) -> Result<usize, JsValue> {
        let ids = strings(&ids, "ids")?;
        let index = self.index_mut()?;
        index.remove(&ids).map_err(engine_error)?;
        Ok(index.len())
    }

    /// The index as file bytes, for storage.
    #[wasm_bindgen(js_name = indexBytes)]
    pub fn index_bytes(&self) -> Result<Vec<u8>, JsValue> {
        Ok(self.index()?.to_bytes())
    }

    /// `{ documents, dim, model, kernels, keyword, queryCache: { hits, misses, entries, capacity } }`.
    pub fn stats(&self) -> Result<JsValue, JsValue> {
        self.live()?;
        let stats = serde_json::json!({
            "documents": self.index.as_ref().map_or(0, FlatIndex::len),
            "dim": self.index.as_ref().map(FlatIndex::dim).or(self.encoder.as_ref().map(Encoder::dim)),
            "model": self.encoder.as_ref().map(|e| e.id().to_owned()),
            "kernels": quiver::index::kernels::best().name(),
            "keyword": self.index.as_ref().is_some_and(|i| i.keyword_index().is_some()),
            "queryCache": self.cache.stats(),
        });
        to_js(&stats)
    }

    /// Frees the model and index; every later call fails with `E_DISPOSED`.
    pub fn dispose(&mut self) {
        self.encoder = None;
        self.index = None;
        self.reranker = None;
        self.cache.clear();
        self.disposed = true;
    }
}

fn model_files(files: &Object, name: &str, hashes: &JsValue) -> Result<ModelFiles, JsValue> {
    let hash = |file: &str| Reflect::get(hashes, &file.into()).ok().and_then(|v| v.as_string());
    let mut model =
        ModelFiles { name: name.to_owned(), tokenizer_sha256: hash("tokenizer.json"), ..Default::default() };
    for entry in Object::entries(files).iter() {
        let pair = Array::from(&entry);
        let path = pair.get(0).as_string().unwrap_or_default();
        let bytes = pair.get(1).dyn_into::<Uint8Array>().map_err(|_| invalid(format!("{path} is not a Uint8Array")))?;
        model.insert(&path, bytes.to_vec());
    }
    // The hash of whichever weights file was taken (model.gguf or model.safetensors).
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
        options.rescore = match r.as_str() {
            "f32" => Rescore::F32,
            "int8" => Rescore::Int8,
            other => return Err(invalid(format!("rescore must be f32 or int8, not {other:?}"))),
        };
    }
    if let Some(f) = js.filter {
        options.filter = Some(Filter::from_json(&f).map_err(engine_error)?);
    }
    if let Some(m) = js.mode {
        options.mode = m.parse::<SearchMode>().map_err(invalid)?;
    }
    options.fusion = match js.fusion.as_deref() {
        None | Some("rrf") => Fusion::Rrf { k: js.rrf_k.unwrap_or(60.0) },
        Some("weighted") => Fusion::Weighted { vector_weight: js.vector_weight.unwrap_or(0.5) },
        Some(other) => return Err(invalid(format!("fusion must be rrf or weighted, not {other:?}"))),
    };
    if let Some(c) = js.fusion_candidates {
        options.fusion_candidates = c;
    }
    Ok((options, js.rerank))
}
