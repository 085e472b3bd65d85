//! Retrieval evaluation: a judged set ([`BeirSet`]), runs (each query's ranked documents)
//! and the metrics of [`metrics`], averaged and per query.

mod beir;
pub mod metrics;
mod run;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use serde_json::{json, Map, Value};

pub use beir::{BeirDocument, BeirQuery, BeirSet};
pub use metrics::{QueryScores, METRICS};
pub use run::{embed_set, evaluate_setups, index_set, EmbeddedSet, Setup, SetupReport};

/// Each query's ranked documents: query id → (document id, score).
pub type Runs = HashMap<String, Vec<(String, f32)>>;

/// The metrics of one run over a set.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub ks: Vec<usize>,
    /// Queries with at least one relevant document: the ones averaged.
    pub evaluated: usize,
    /// Queries without any relevant document, left out of the averages.
    pub skipped: usize,
    pub mean: BTreeMap<usize, QueryScores>,
    pub per_query: BTreeMap<String, BTreeMap<usize, QueryScores>>,
}

impl Evaluation {
    /// Scores `runs` (sorted here, ties by document id) against `set`'s judgements.
    pub fn new(set: &BeirSet, runs: &Runs, ks: &[usize]) -> Evaluation {
        let mut ks = ks.to_vec();
        ks.sort_unstable();
        ks.dedup();
        let empty = Vec::new();
        let mut per_query = BTreeMap::new();
        let mut skipped = 0;
        for query in &set.queries {
            let Some(judged) = set.qrels.get(&query.id) else {
                skipped += 1;
                continue;
            };
            let mut run = runs.get(&query.id).unwrap_or(&empty).clone();
            metrics::sort_run(&mut run);
            let at_k: BTreeMap<usize, QueryScores> =
                ks.iter().filter_map(|&k| metrics::score_query(&run, judged, k).map(|s| (k, s))).collect();
            if at_k.is_empty() {
                skipped += 1;
            } else {
                per_query.insert(query.id.clone(), at_k);
            }
        }
        let mean = ks
            .iter()
            .map(|&k| {
                let scores: Vec<QueryScores> = per_query.values().filter_map(|m| m.get(&k).copied()).collect();
                (k, metrics::mean(&scores))
            })
            .collect();
        Evaluation { ks, evaluated: per_query.len(), skipped, mean, per_query }
    }

    /// `{"ndcg@10": …, "recall@10": …, …}` for every metric and cut-off.
    pub fn metrics_json(scores: &BTreeMap<usize, QueryScores>) -> Map<String, Value> {
        let mut out = Map::new();
        for metric in METRICS {
            for (k, s) in scores {
                out.insert(format!("{metric}@{k}"), json!(s.get(metric)));
            }
        }
        out
    }

    /// The averages, the counts, and with `per_query` each query's metrics.
    pub fn to_json(&self, per_query: bool) -> Value {
        let mut out = Self::metrics_json(&self.mean);
        out.insert("queries".into(), json!(self.evaluated));
        out.insert("skipped_queries".into(), json!(self.skipped));
        if per_query {
            let each: Map<String, Value> =
                self.per_query.iter().map(|(id, m)| (id.clone(), Value::Object(Self::metrics_json(m)))).collect();
            out.insert("per_query".into(), Value::Object(each));
        }
        Value::Object(out)
    }
}

/// Writes `runs` in TREC run format (`qid Q0 docid rank score tag`), best first per query.
pub fn write_trec_run(out: &mut impl Write, set: &BeirSet, runs: &Runs, tag: &str) -> std::io::Result<()> {
    for query in &set.queries {
        let Some(run) = runs.get(&query.id) else { continue };
        let mut run = run.clone();
        metrics::sort_run(&mut run);
        for (rank, (id, score)) in run.iter().enumerate() {
            writeln!(out, "{} Q0 {} {} {} {}", query.id, id, rank + 1, score, tag)?;
        }
    }
    Ok(())
}
