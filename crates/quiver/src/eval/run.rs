//! Runs a judged set through the engine under several setups (index kinds, Matryoshka
//! dimensions, re-ranking): the corpus and queries are embedded once per model, every
//! setup searches the same vectors.

use std::collections::HashMap;
use std::time::Instant;

use quiver_encoder::{CrossEncoder, Embeddings, Encoder, TextKind};
use quiver_index::{Document, FlatIndex, IndexConfig, Query, SearchMode, SearchOptions};

use super::{BeirSet, Evaluation, Runs};
use crate::{embed, new_index, EmbedOptions, Result};

/// How one setup builds and searches its index.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Shown in reports: the strategy name, `@dims`, `+rerank`.
    pub label: String,
    pub options: SearchOptions,
    /// Matryoshka dimensions; `None` keeps the model's.
    pub dims: Option<usize>,
    /// Re-rank this many of the top results with the cross-encoder.
    pub rerank_top: Option<usize>,
}

/// A setup's metrics, its runs and what its searches cost.
#[derive(Debug, Clone)]
pub struct SetupReport {
    pub label: String,
    pub evaluation: Evaluation,
    pub runs: Runs,
    /// Mean milliseconds per query: the search itself (the query's embedding excluded).
    pub search_ms: f64,
    /// Mean milliseconds per query spent re-ranking, when the setup re-ranks.
    pub rerank_ms: Option<f64>,
}

/// The set's documents and queries embedded once, at the model's full dimension.
pub struct EmbeddedSet {
    pub documents: Embeddings,
    pub queries: Embeddings,
    /// Milliseconds per query to embed the queries (batched).
    pub query_embed_ms: f64,
}

pub fn embed_set(encoder: &Encoder, set: &BeirSet, batch_size: usize) -> Result<EmbeddedSet> {
    let texts: Vec<String> = set.corpus.iter().map(|d| d.full_text()).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let documents =
        embed(encoder, &refs, &EmbedOptions { kind: TextKind::Document, batch_size, ..Default::default() })?;
    let started = Instant::now();
    let queries: Vec<&str> = set.queries.iter().map(|q| q.text.as_str()).collect();
    let queries = embed(encoder, &queries, &EmbedOptions { kind: TextKind::Query, batch_size, ..Default::default() })?;
    let query_embed_ms = started.elapsed().as_secs_f64() * 1e3 / set.queries.len().max(1) as f64;
    Ok(EmbeddedSet { documents, queries, query_embed_ms })
}

/// An index of the set's corpus (with its keyword index) at `dims` dimensions.
pub fn index_set(encoder: &Encoder, set: &BeirSet, documents: &Embeddings, dims: Option<usize>) -> Result<FlatIndex> {
    let config = IndexConfig { keyword: true, ..IndexConfig::new(encoder.dim()) };
    let mut index = new_index(encoder, config, dims)?;
    let vectors = cut(documents, index.dim())?;
    let texts: Vec<String> = set.corpus.iter().map(|d| d.full_text()).collect();
    let docs: Vec<Document> = set
        .corpus
        .iter()
        .zip(vectors.rows())
        .zip(&texts)
        .map(|((d, v), text)| Document {
            id: d.id.clone(),
            vector: v,
            metadata: serde_json::Value::Null,
            text: Some(text),
        })
        .collect();
    index.upsert(&docs)?;
    index.retrain_thresholds();
    Ok(index)
}

fn cut(vectors: &Embeddings, dims: usize) -> Result<Embeddings> {
    Ok(if dims == vectors.dim { vectors.clone() } else { vectors.truncated(dims)? })
}

/// Evaluates every setup at cut-offs `ks`, each search going `max(ks)` deep.
pub fn evaluate_setups(
    encoder: &Encoder,
    set: &BeirSet,
    embedded: &EmbeddedSet,
    setups: &[Setup],
    ks: &[usize],
    cross_encoder: Option<&CrossEncoder>,
) -> Result<Vec<SetupReport>> {
    let depth = ks.iter().copied().max().unwrap_or(10);
    let texts: HashMap<&str, String> = set.corpus.iter().map(|d| (d.id.as_str(), d.full_text())).collect();
    let mut indexes: HashMap<Option<usize>, FlatIndex> = HashMap::new();
    let mut reports = Vec::with_capacity(setups.len());
    for setup in setups {
        let index = match indexes.entry(setup.dims) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(index_set(encoder, set, &embedded.documents, setup.dims)?)
            }
        };
        let index = &*index;
        let queries = cut(&embedded.queries, index.dim())?;
        let options = SearchOptions { k: depth, ..setup.options.clone() };
        let mut runs = Runs::new();
        let mut search_s = 0.0;
        let mut rerank_s = 0.0;
        for (query, vector) in set.queries.iter().zip(queries.rows()) {
            let started = Instant::now();
            let vector = (options.mode != SearchMode::Keyword).then_some(vector);
            let hits = index.search_query(&Query { vector, text: Some(&query.text) }, &options)?;
            search_s += started.elapsed().as_secs_f64();
            let mut run: Vec<(String, f32)> = hits.iter().map(|h| (index.id(h.row).to_owned(), h.score)).collect();
            if let (Some(top), Some(cross)) = (setup.rerank_top, cross_encoder) {
                let started = Instant::now();
                run = reranked(cross, &query.text, run, top, &texts)?;
                rerank_s += started.elapsed().as_secs_f64();
            }
            runs.insert(query.id.clone(), run);
        }
        let n = set.queries.len().max(1) as f64;
        reports.push(SetupReport {
            label: setup.label.clone(),
            evaluation: Evaluation::new(set, &runs, ks),
            runs,
            search_ms: search_s * 1e3 / n,
            rerank_ms: setup.rerank_top.map(|_| rerank_s * 1e3 / n),
        });
    }
    Ok(reports)
}

/// The run with its first `top` documents re-ordered by the cross-encoder. Scores become
/// rank-based (n, n−1, …) so the metrics keep exactly this order.
fn reranked(
    cross: &CrossEncoder,
    query: &str,
    run: Vec<(String, f32)>,
    top: usize,
    texts: &HashMap<&str, String>,
) -> Result<Vec<(String, f32)>> {
    let top = top.min(run.len());
    let documents: Vec<&str> = run[..top].iter().map(|(id, _)| texts[id.as_str()].as_str()).collect();
    let order = cross.rank(query, &documents, 32)?;
    let ids: Vec<String> =
        order.iter().map(|&(i, _)| run[i].0.clone()).chain(run[top..].iter().map(|(id, _)| id.clone())).collect();
    let n = ids.len();
    Ok(ids.into_iter().enumerate().map(|(rank, id)| (id, (n - rank) as f32)).collect())
}
