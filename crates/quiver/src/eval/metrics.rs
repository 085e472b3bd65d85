//! Ranking metrics with graded relevance, as trec_eval and BEIR define them.
//!
//! How the edge cases are treated (and tested against a hand-computed example):
//! - **Relevant** means a grade above 0; grade-0 judgements count as judged non-relevant.
//! - **Gain** is linear (the grade itself), as trec_eval's `ndcg_cut` and BEIR use:
//!   DCG@k = Σ_{i=1..k} grade_i / log2(i + 1); the ideal DCG ranks all judged grades
//!   best first.
//! - **Ties** in score are broken by document id (ascending) before any cut-off, so a run's
//!   metrics do not depend on the order its documents were indexed in.
//! - **Precision@k** divides by k even when fewer than k documents were returned.
//! - **Queries without any relevant document** (absent from the qrels, or only grade 0)
//!   cannot score and are left out of the averages; reports count them as `skipped`.

use std::collections::HashMap;

/// The metric names, in report order.
pub const METRICS: [&str; 4] = ["ndcg", "recall", "mrr", "precision"];

/// Scores of one query's ranking at one cut-off.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct QueryScores {
    pub ndcg: f64,
    pub recall: f64,
    pub mrr: f64,
    pub precision: f64,
}

impl QueryScores {
    pub fn get(&self, metric: &str) -> f64 {
        match metric {
            "ndcg" => self.ndcg,
            "recall" => self.recall,
            "mrr" => self.mrr,
            "precision" => self.precision,
            _ => f64::NAN,
        }
    }
}

/// Sorts a run best first: score descending, ties by document id ascending.
pub fn sort_run(run: &mut [(String, f32)]) {
    run.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
}

/// Scores a run already sorted by [`sort_run`] against one query's judgements at cut-off
/// `k`. `None` when the query has no relevant document.
pub fn score_query(run: &[(String, f32)], judged: &HashMap<String, i32>, k: usize) -> Option<QueryScores> {
    let relevant = judged.values().filter(|&&g| g > 0).count();
    if relevant == 0 || k == 0 {
        return None;
    }
    let grade = |id: &str| judged.get(id).copied().unwrap_or(0).max(0) as f64;
    let discount = |rank: usize| 1.0 / ((rank + 2) as f64).log2();
    let top = &run[..k.min(run.len())];

    // fold from +0.0: `Sum` starts at -0.0, which would print as "-0.0000".
    let dcg = top.iter().enumerate().fold(0.0, |sum, (i, (id, _))| sum + grade(id) * discount(i));
    let mut ideal: Vec<f64> = judged.values().filter(|&&g| g > 0).map(|&g| g as f64).collect();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let idcg: f64 = ideal.iter().take(k).enumerate().map(|(i, g)| g * discount(i)).sum();

    let hits = top.iter().filter(|(id, _)| grade(id) > 0.0).count();
    let first = top.iter().position(|(id, _)| grade(id) > 0.0);
    Some(QueryScores {
        ndcg: dcg / idcg,
        recall: hits as f64 / relevant as f64,
        mrr: first.map_or(0.0, |rank| 1.0 / (rank + 1) as f64),
        precision: hits as f64 / k as f64,
    })
}

/// The mean of each metric over the queries that scored.
pub fn mean(scores: &[QueryScores]) -> QueryScores {
    let n = scores.len().max(1) as f64;
    let sum = |f: fn(&QueryScores) -> f64| scores.iter().map(f).fold(0.0, |a, b| a + b) / n;
    QueryScores {
        ndcg: sum(|s| s.ndcg),
        recall: sum(|s| s.recall),
        mrr: sum(|s| s.mrr),
        precision: sum(|s| s.precision),
    }
}
