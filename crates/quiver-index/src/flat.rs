//! The flat index: every vector scanned, in f32, int8 or binary form.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::filter::Filter;
use crate::fusion::{fuse, Fusion};
use crate::kernels::{self, Kernels};
use crate::keyword::{Bm25Index, Bm25Params};
use crate::quantize::{
    binarize, hamming_score, l2_normalize, learn_thresholds, quantize_i8, words_per_code, ThresholdKind,
};
use crate::section::Section;
use crate::topk::{Hit, TopK};
use crate::{IndexError, Result};

/// How scores are computed. With `Cosine` vectors are normalised on insert, so the scan is
/// a dot product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    #[default]
    Cosine,
    Dot,
    /// Scores are negated squared Euclidean distances, so higher is still better.
    L2,
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cosine" => Ok(Self::Cosine),
            "dot" => Ok(Self::Dot),
            "l2" => Ok(Self::L2),
            other => Err(format!("unknown metric {other:?} (cosine, dot, l2)")),
        }
    }
}

/// Which model made the vectors. The index only records and compares it; it knows nothing
/// about how embeddings are computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ModelInfo {
    pub id: String,
    pub weights_sha256: String,
    pub tokenizer_sha256: String,
    pub pooling: String,
    pub normalize: bool,
    pub max_seq_length: usize,
    pub query_prefix: String,
    pub document_prefix: String,
    /// Matryoshka: the vectors are the model's first `dims` dimensions, re-normalised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dims: Option<usize>,
}

/// Fixed properties of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexConfig {
    pub dim: usize,
    pub metric: Metric,
    pub threshold: ThresholdKind,
    /// Whether documents' texts are kept in a BM25 keyword index (for keyword and hybrid
    /// search). Absent from version-1 files, which have none.
    #[serde(default)]
    pub keyword: bool,
}

impl IndexConfig {
    pub fn new(dim: usize) -> Self {
        IndexConfig { dim, metric: Metric::Cosine, threshold: ThresholdKind::Mean, keyword: false }
    }
}

/// How a search scans the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Exact f32 scores.
    #[default]
    Exact,
    /// int8 vectors and query, integer dot products.
    Int8,
    /// Hamming distance of binary codes only; scores estimate cosine as `1 - 2·h/dim`.
    Binary,
    /// Hamming distance picks `oversample × k` candidates, rescored exactly. The default
    /// oversample of 30 keeps recall@10 ≥ 0.99 against exact search on real embeddings
    /// (`tests/tests/recall.rs`).
    BinaryRescore,
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "exact" => Ok(Self::Exact),
            "int8" => Ok(Self::Int8),
            "binary" => Ok(Self::Binary),
            "binary-rescore" => Ok(Self::BinaryRescore),
            other => Err(format!("unknown strategy {other:?} (exact, int8, binary, binary-rescore)")),
        }
    }
}

/// What `BinaryRescore` rescores its candidates with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rescore {
    #[default]
    F32,
    Int8,
}

impl std::str::FromStr for Rescore {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Self::F32),
            "int8" => Ok(Self::Int8),
            other => Err(format!("unknown rescore {other:?} (f32, int8)")),
        }
    }
}

/// Which ranking a search returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchMode {
    /// Nearest vectors; needs [`Query::vector`].
    #[default]
    Vector,
    /// BM25 over the keyword index; needs [`Query::text`] and `IndexConfig::keyword`.
    Keyword,
    /// Both rankings merged by [`SearchOptions::fusion`]; needs vector, text and keyword index.
    Hybrid,
}

impl std::str::FromStr for SearchMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "vector" => Ok(Self::Vector),
            "keyword" => Ok(Self::Keyword),
            "hybrid" => Ok(Self::Hybrid),
            other => Err(format!("unknown search mode {other:?} (vector, keyword, hybrid)")),
        }
    }
}

/// What to search for. Each mode uses the parts it needs and ignores the other.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<'a> {
    pub vector: Option<&'a [f32]>,
    pub text: Option<&'a str>,
}

#[derive(Debug, Clone)]
pub struct SearchOptions {
    pub k: usize,
    pub strategy: Strategy,
    pub oversample: usize,
    pub rescore: Rescore,
    pub filter: Option<Filter>,
    /// Vector (the default), keyword or hybrid; the latter two need `FlatIndex::search_query`.
    pub mode: SearchMode,
    /// How `Hybrid` merges the vector and keyword rankings.
    pub fusion: Fusion,
    /// How deep `Hybrid` takes each ranking before fusing (at least `k`): a row ranked
    /// just below the top k on both sides can still win.
    pub fusion_candidates: usize,
    /// BM25 scoring for keyword and hybrid search.
    pub bm25: Bm25Params,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            k: 10,
            strategy: Strategy::Exact,
            oversample: 30,
            rescore: Rescore::F32,
            filter: None,
            mode: SearchMode::Vector,
            fusion: Fusion::default(),
            fusion_candidates: 100,
            bm25: Bm25Params::default(),
        }
    }
}

/// One document to insert.
#[derive(Debug, Clone)]
pub struct Document<'a> {
    pub id: String,
    pub vector: &'a [f32],
    pub metadata: Value,
    /// The text the keyword index analyses; ignored unless `IndexConfig::keyword` is set,
    /// and `None` there indexes no terms for the document.
    pub text: Option<&'a str>,
}

/// A query that has what its mode needs, the vector prepared for the metric.
enum CheckedQuery<'a> {
    Vector(Vec<f32>),
    Keyword(&'a Bm25Index, &'a str),
    Hybrid(Vec<f32>, &'a Bm25Index, &'a str),
}

/// Rows scanned per kernel call: large enough to amortise dispatch, small enough for L1/L2.
const BLOCK: usize = 512;

#[derive(Clone)]
pub struct FlatIndex {
    pub(crate) config: IndexConfig,
    pub(crate) model: Option<ModelInfo>,
    pub(crate) created_unix: u64,
    pub(crate) vectors: Section<f32>,
    pub(crate) codes: Section<i8>,
    pub(crate) scales: Section<f32>,
    pub(crate) bits: Section<u64>,
    pub(crate) thresholds: Vec<f32>,
    /// How many vectors the thresholds were learned from; they are relearned when the
    /// index has doubled since.
    pub(crate) trained_on: usize,
    pub(crate) ids: Vec<String>,
    pub(crate) metadata: Vec<Value>,
    pub(crate) row_of: HashMap<String, usize>,
    /// Squared norms, kept only for the L2 metric.
    pub(crate) sq_norms: Vec<f32>,
    /// Present exactly when `config.keyword` is set; its rows are this index's rows.
    pub(crate) keyword: Option<Bm25Index>,
}

impl FlatIndex {
    pub fn new(config: IndexConfig) -> Result<Self> {
        if config.dim == 0 {
            return Err(IndexError::InvalidArgument { op: "new index", what: "dimension must be at least 1".into() });
        }
        Ok(FlatIndex {
            config,
            model: None,
            created_unix: 0,
            vectors: Section::default(),
            codes: Section::default(),
            scales: Section::default(),
            bits: Section::default(),
            thresholds: vec![0.0; config.dim],
            trained_on: 0,
            ids: Vec::new(),
            metadata: Vec::new(),
            row_of: HashMap::new(),
            sq_norms: Vec::new(),
            keyword: config.keyword.then(Bm25Index::new),
        })
    }

    pub fn with_model(mut self, model: ModelInfo) -> Self {
        self.model = Some(model);
        self
    }

    pub fn config(&self) -> &IndexConfig {
        &self.config
    }

    pub fn dim(&self) -> usize {
        self.config.dim
    }

    pub fn model(&self) -> Option<&ModelInfo> {
        self.model.as_ref()
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn id(&self, row: usize) -> &str {
        &self.ids[row]
    }

    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    pub fn metadata(&self, row: usize) -> &Value {
        &self.metadata[row]
    }

    pub fn row_of(&self, id: &str) -> Option<usize> {
        self.row_of.get(id).copied()
    }

    /// The stored vector of a row (normalised under the cosine metric).
    pub fn vector(&self, row: usize) -> &[f32] {
        let dim = self.config.dim;
        &self.vectors.as_slice()[row * dim..(row + 1) * dim]
    }

    /// All stored vectors, row-major.
    pub fn vectors(&self) -> &[f32] {
        self.vectors.as_slice()
    }

    pub fn thresholds(&self) -> &[f32] {
        &self.thresholds
    }

    /// Every row's binary code (`dim.div_ceil(64)` words each, against [`FlatIndex::thresholds`]).
    pub fn binary_codes(&self) -> &[u64] {
        self.bits.as_slice()
    }

    /// `query` checked (dimension, finite values) and prepared as searches use it
    /// (normalised under the cosine metric): for scans outside this index, such as the GPU's.
    pub fn prepared_query(&self, op: &'static str, query: &[f32]) -> Result<Vec<f32>> {
        self.check_vector(op, query)?;
        Ok(self.prepared(query))
    }

    /// The keyword index, when the index was built with `IndexConfig::keyword`.
    pub fn keyword_index(&self) -> Option<&Bm25Index> {
        self.keyword.as_ref()
    }

    /// Adds the documents, replacing those whose id exists. Every document is checked
    /// before any is inserted, so a bad one leaves the index as it was.
    pub fn upsert(&mut self, docs: &[Document<'_>]) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for doc in docs {
            self.check_vector("insert", doc.vector)?;
            if !seen.insert(doc.id.as_str()) {
                return Err(IndexError::DuplicateId { op: "insert", id: doc.id.clone() });
            }
        }
        for doc in docs {
            if let Some(row) = self.row_of(&doc.id) {
                self.swap_remove(row);
            }
            self.push(doc);
        }
        if self.len() >= 2 * self.trained_on.max(1) {
            self.retrain_thresholds();
        }
        Ok(())
    }

    /// Deletes the documents with these ids; unknown ids are an error and delete nothing.
    pub fn remove<S: AsRef<str>>(&mut self, ids: &[S]) -> Result<()> {
        if let Some(missing) = ids.iter().find(|id| !self.row_of.contains_key(id.as_ref())) {
            return Err(IndexError::UnknownId(missing.as_ref().to_owned()));
        }
        for id in ids {
            if let Some(row) = self.row_of(id.as_ref()) {
                self.swap_remove(row);
            }
        }
        Ok(())
    }

    /// Relearns the binary thresholds from every stored vector and recomputes all codes.
    pub fn retrain_thresholds(&mut self) {
        let dim = self.config.dim;
        self.thresholds = learn_thresholds(self.config.threshold, self.vectors.as_slice(), dim);
        let words = words_per_code(dim);
        let mut bits = vec![0u64; self.len() * words];
        for (row, out) in self.vectors.as_slice().chunks_exact(dim).zip(bits.chunks_exact_mut(words)) {
            binarize(row, &self.thresholds, out);
        }
        self.bits = Section::Owned(bits);
        self.trained_on = self.len();
    }

    fn check_vector(&self, op: &'static str, v: &[f32]) -> Result<()> {
        if v.len() != self.config.dim {
            return Err(IndexError::DimensionMismatch { op, expected: self.config.dim, actual: v.len() });
        }
        if let Some((index, &value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(IndexError::NonFinite { op, index, value });
        }
        Ok(())
    }

    fn prepared(&self, v: &[f32]) -> Vec<f32> {
        let mut v = v.to_vec();
        if self.config.metric == Metric::Cosine {
            l2_normalize(&mut v);
        }
        v
    }

    fn push(&mut self, doc: &Document<'_>) {
        let dim = self.config.dim;
        let v = self.prepared(doc.vector);
        let mut code = vec![0i8; dim];
        let scale = quantize_i8(&v, &mut code);
        let mut bits = vec![0u64; words_per_code(dim)];
        binarize(&v, &self.thresholds, &mut bits);
        if self.config.metric == Metric::L2 {
            self.sq_norms.push(v.iter().map(|x| x * x).sum());
        }
        self.vectors.to_mut().extend_from_slice(&v);
        self.codes.to_mut().extend_from_slice(&code);
        self.scales.to_mut().push(scale);
        self.bits.to_mut().extend_from_slice(&bits);
        self.row_of.insert(doc.id.clone(), self.ids.len());
        self.ids.push(doc.id.clone());
        self.metadata.push(doc.metadata.clone());
        if let Some(keyword) = &mut self.keyword {
            keyword.push(doc.text.unwrap_or_default());
        }
    }

    /// Moves the last row into `row`.
    fn swap_remove(&mut self, row: usize) {
        fn swap_remove_block<T: bytemuck::Pod>(v: &mut Vec<T>, row: usize, width: usize) {
            let last = v.len() / width - 1;
            if row != last {
                v.copy_within(last * width..(last + 1) * width, row * width);
            }
            v.truncate(last * width);
        }
        let dim = self.config.dim;
        swap_remove_block(self.vectors.to_mut(), row, dim);
        swap_remove_block(self.codes.to_mut(), row, dim);
        swap_remove_block(self.scales.to_mut(), row, 1);
        swap_remove_block(self.bits.to_mut(), row, words_per_code(dim));
        if !self.sq_norms.is_empty() {
            self.sq_norms.swap_remove(row);
        }
        self.metadata.swap_remove(row);
        if let Some(keyword) = &mut self.keyword {
            keyword.swap_remove(row);
        }
        let removed = self.ids.swap_remove(row);
        self.row_of.remove(&removed);
        if let Some(moved) = self.ids.get(row) {
            self.row_of.insert(moved.clone(), row);
        }
    }

    /// The best `k` rows for the query vector, best first; ties go to the lower row. Only
    /// for [`SearchMode::Vector`]: the other modes need text, see [`FlatIndex::search_query`].
    pub fn search(&self, query: &[f32], options: &SearchOptions) -> Result<Vec<Hit>> {
        self.search_with(kernels::best(), query, options)
    }

    /// [`FlatIndex::search`] with the given kernels, so every implementation can be tested.
    pub fn search_with(&self, kernels: &dyn Kernels, query: &[f32], options: &SearchOptions) -> Result<Vec<Hit>> {
        self.run_query(kernels, &Query { vector: Some(query), text: None }, options)
    }

    /// The best `k` rows in `options.mode`: by vector, by keywords (BM25) or both fused.
    /// Keyword and hybrid search need an index built with `IndexConfig::keyword`.
    pub fn search_query(&self, query: &Query<'_>, options: &SearchOptions) -> Result<Vec<Hit>> {
        self.run_query(kernels::best(), query, options)
    }

    fn run_query(&self, kernels: &dyn Kernels, query: &Query<'_>, options: &SearchOptions) -> Result<Vec<Hit>> {
        let checked = self.check_query(query, options.mode)?;
        if options.k == 0 || self.is_empty() {
            return Ok(Vec::new());
        }
        let filter = options.filter.as_ref().filter(|f| !f.is_empty());
        let allowed = |row: usize| filter.is_none_or(|f| f.matches(&self.metadata[row]));
        match checked {
            CheckedQuery::Vector(vector) => Ok(self.vector_hits(kernels, &vector, options.k, options, allowed)),
            CheckedQuery::Keyword(keyword, text) => keyword.search(text, options.k, options.bm25, allowed),
            CheckedQuery::Hybrid(vector, keyword, text) => {
                let depth = options.k.max(options.fusion_candidates);
                let by_vector = self.vector_hits(kernels, &vector, depth, options, allowed);
                let by_keyword = keyword.search(text, depth, options.bm25, allowed)?;
                fuse(&by_vector, &by_keyword, options.fusion, options.k)
            }
        }
    }

    /// Checks that the query and the index have what `mode` needs, and prepares the vector.
    fn check_query<'q>(&'q self, query: &Query<'q>, mode: SearchMode) -> Result<CheckedQuery<'q>> {
        let missing = |what: &str| IndexError::InvalidArgument {
            op: "search",
            what: format!("{mode:?} search needs a query {what}"),
        };
        let vector = || -> Result<Vec<f32>> {
            let vector = query.vector.ok_or_else(|| missing("vector"))?;
            self.check_vector("search", vector)?;
            Ok(self.prepared(vector))
        };
        let keyword = |op: &'static str| self.keyword.as_ref().ok_or(IndexError::KeywordIndexMissing { op });
        let text = || query.text.ok_or_else(|| missing("text"));
        Ok(match mode {
            SearchMode::Vector => CheckedQuery::Vector(vector()?),
            SearchMode::Keyword => CheckedQuery::Keyword(keyword("keyword search")?, text()?),
            SearchMode::Hybrid => {
                let keyword = keyword("hybrid search")?;
                CheckedQuery::Hybrid(vector()?, keyword, text()?)
            }
        })
    }

    /// The best `k` rows for a prepared query vector with the configured strategy.
    fn vector_hits(
        &self,
        kernels: &dyn Kernels,
        query: &[f32],
        k: usize,
        options: &SearchOptions,
        allowed: impl Fn(usize) -> bool,
    ) -> Vec<Hit> {
        match options.strategy {
            Strategy::Exact => self.scan_f32(kernels, query, k, allowed),
            Strategy::Int8 => self.scan_i8(kernels, query, k, allowed),
            Strategy::Binary => self.scan_binary(kernels, query, k, allowed),
            Strategy::BinaryRescore => {
                let wanted = k.saturating_mul(options.oversample.max(1));
                let candidates = self.scan_binary(kernels, query, wanted, allowed);
                self.rescore(kernels, query, &candidates, k, options.rescore)
            }
        }
    }

    fn l2_score(&self, query_sq_norm: f32, row: usize, dot: f32) -> f32 {
        -(query_sq_norm + self.sq_norms[row] - 2.0 * dot)
    }

    fn scan_f32(&self, kernels: &dyn Kernels, query: &[f32], k: usize, allowed: impl Fn(usize) -> bool) -> Vec<Hit> {
        let dim = self.config.dim;
        let query_sq_norm: f32 = query.iter().map(|x| x * x).sum();
        let mut top = TopK::new(k);
        let mut scores = [0f32; BLOCK];
        for (block, rows) in self.vectors.as_slice().chunks(BLOCK * dim).enumerate() {
            let out = &mut scores[..rows.len() / dim];
            kernels.dot_f32(query, rows, out);
            for (i, &dot) in out.iter().enumerate() {
                let row = block * BLOCK + i;
                if allowed(row) {
                    let score =
                        if self.config.metric == Metric::L2 { self.l2_score(query_sq_norm, row, dot) } else { dot };
                    top.push(score, row);
                }
            }
        }
        top.into_sorted()
    }

    fn quantized_query(query: &[f32]) -> (Vec<i8>, f32) {
        let mut code = vec![0i8; query.len()];
        let scale = quantize_i8(query, &mut code);
        (code, scale)
    }

    fn scan_i8(&self, kernels: &dyn Kernels, query: &[f32], k: usize, allowed: impl Fn(usize) -> bool) -> Vec<Hit> {
        let dim = self.config.dim;
        let (code, query_scale) = Self::quantized_query(query);
        let query_sq_norm: f32 = query.iter().map(|x| x * x).sum();
        let scales = self.scales.as_slice();
        let mut top = TopK::new(k);
        let mut dots = [0i32; BLOCK];
        for (block, rows) in self.codes.as_slice().chunks(BLOCK * dim).enumerate() {
            let out = &mut dots[..rows.len() / dim];
            kernels.dot_i8(&code, rows, out);
            for (i, &dot) in out.iter().enumerate() {
                let row = block * BLOCK + i;
                if allowed(row) {
                    let dot = dot as f32 * query_scale * scales[row];
                    let score =
                        if self.config.metric == Metric::L2 { self.l2_score(query_sq_norm, row, dot) } else { dot };
                    top.push(score, row);
                }
            }
        }
        top.into_sorted()
    }

    fn scan_binary(&self, kernels: &dyn Kernels, query: &[f32], k: usize, allowed: impl Fn(usize) -> bool) -> Vec<Hit> {
        let dim = self.config.dim;
        let words = words_per_code(dim);
        let mut code = vec![0u64; words];
        binarize(query, &self.thresholds, &mut code);
        let mut top = TopK::new(k);
        let mut distances = [0u32; BLOCK];
        for (block, rows) in self.bits.as_slice().chunks(BLOCK * words).enumerate() {
            let out = &mut distances[..rows.len() / words];
            kernels.hamming(&code, rows, out);
            for (i, &h) in out.iter().enumerate() {
                let row = block * BLOCK + i;
                if top.would_accept(-(h as f32)) && allowed(row) {
                    top.push(-(h as f32), row);
                }
            }
        }
        top.into_sorted()
            .into_iter()
            .map(|hit| Hit { row: hit.row, score: hamming_score(-hit.score as u32, dim) })
            .collect()
    }

    fn rescore(&self, kernels: &dyn Kernels, query: &[f32], candidates: &[Hit], k: usize, how: Rescore) -> Vec<Hit> {
        let dim = self.config.dim;
        let query_sq_norm: f32 = query.iter().map(|x| x * x).sum();
        let mut top = TopK::new(k);
        match how {
            Rescore::F32 => {
                let vectors = self.vectors.as_slice();
                for hit in candidates {
                    let mut dot = [0f32];
                    kernels.dot_f32(query, &vectors[hit.row * dim..(hit.row + 1) * dim], &mut dot);
                    let score = if self.config.metric == Metric::L2 {
                        self.l2_score(query_sq_norm, hit.row, dot[0])
                    } else {
                        dot[0]
                    };
                    top.push(score, hit.row);
                }
            }
            Rescore::Int8 => {
                let (code, query_scale) = Self::quantized_query(query);
                let (codes, scales) = (self.codes.as_slice(), self.scales.as_slice());
                for hit in candidates {
                    let mut dot = [0i32];
                    kernels.dot_i8(&code, &codes[hit.row * dim..(hit.row + 1) * dim], &mut dot);
                    let dot = dot[0] as f32 * query_scale * scales[hit.row];
                    let score =
                        if self.config.metric == Metric::L2 { self.l2_score(query_sq_norm, hit.row, dot) } else { dot };
                    top.push(score, hit.row);
                }
            }
        }
        top.into_sorted()
    }
}
