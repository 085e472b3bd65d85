//! Similarity diagnostics: how query–document and document–document cosines are spread,
//! and what that spread says about a model on a corpus (no discrimination, near-duplicate
//! documents, texts that embed like an empty string).

use serde::Serialize;

use quiver_index::kernels::{self, Kernels};

/// Cosines at or above this mark two documents as near-duplicates.
pub const NEAR_DUPLICATE: f32 = 0.98;
/// A document this close to the empty text's vector says next to nothing.
pub const DEGENERATE: f32 = 0.95;
/// At most this many documents enter the all-pairs document–document scan.
pub const PAIR_SAMPLE: usize = 2000;

/// Summary statistics and a histogram over [-1, 1] of a set of cosines.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Distribution {
    pub count: usize,
    pub min: f32,
    pub max: f32,
    pub mean: f32,
    pub std: f32,
    /// (percentile, value) for 1, 5, 25, 50, 75, 95, 99.
    pub percentiles: Vec<(u8, f32)>,
    /// Counts in equal bins from -1 to 1.
    pub histogram: Vec<u64>,
}

impl Distribution {
    pub fn new(values: &[f32], bins: usize) -> Distribution {
        let count = values.len();
        let mut histogram = vec![0u64; bins.max(1)];
        if count == 0 {
            return Distribution { count, min: 0.0, max: 0.0, mean: 0.0, std: 0.0, percentiles: Vec::new(), histogram };
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f32::total_cmp);
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / count as f64;
        let variance = values.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / count as f64;
        // Nearest-rank percentiles: every value reported is one that occurred.
        let percentile = |p: u8| sorted[((p as f64 / 100.0 * count as f64).ceil() as usize).clamp(1, count) - 1];
        let last = histogram.len() - 1;
        for &v in values {
            let bin = ((v.clamp(-1.0, 1.0) + 1.0) / 2.0 * histogram.len() as f32) as usize;
            histogram[bin.min(last)] += 1;
        }
        Distribution {
            count,
            min: sorted[0],
            max: sorted[count - 1],
            mean: mean as f32,
            std: variance.sqrt() as f32,
            percentiles: [1, 5, 25, 50, 75, 95, 99].into_iter().map(|p| (p, percentile(p))).collect(),
            histogram,
        }
    }

    pub fn percentile(&self, p: u8) -> Option<f32> {
        self.percentiles.iter().find(|(q, _)| *q == p).map(|(_, v)| *v)
    }
}

/// Rows of `dim` floats scaled to unit length (zero rows stay zero), so dot = cosine.
pub fn unit_rows(vectors: &[f32], dim: usize) -> Vec<f32> {
    let mut out = vectors.to_vec();
    for row in out.chunks_exact_mut(dim) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|x| *x /= norm);
        }
    }
    out
}

/// Every query–document cosine (unit rows in, `queries × documents` values out).
pub fn cross_similarities(queries: &[f32], documents: &[f32], dim: usize) -> Vec<f32> {
    let kernels = kernels::best();
    let n = documents.len() / dim;
    let mut out = vec![0.0; queries.len() / dim * n];
    for (query, scores) in queries.chunks_exact(dim).zip(out.chunks_exact_mut(n.max(1))) {
        kernels.dot_f32(query, documents, scores);
    }
    out
}

/// A pair of documents (rows) and their cosine.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Pair {
    pub a: usize,
    pub b: usize,
    pub cosine: f32,
}

/// Document–document cosines of every pair among `rows` (unit rows of `documents`), and
/// the pairs at or above [`NEAR_DUPLICATE`].
pub fn pair_similarities(documents: &[f32], dim: usize, rows: &[usize]) -> (Vec<f32>, Vec<Pair>) {
    let kernels: &dyn Kernels = kernels::best();
    let sample: Vec<f32> = rows.iter().flat_map(|&r| &documents[r * dim..(r + 1) * dim]).copied().collect();
    let mut values = Vec::with_capacity(rows.len() * rows.len().saturating_sub(1) / 2);
    let mut duplicates = Vec::new();
    let mut scores = vec![0.0; rows.len()];
    for (i, query) in sample.chunks_exact(dim).enumerate() {
        let rest = &mut scores[i + 1..];
        kernels.dot_f32(query, &sample[(i + 1) * dim..], rest);
        for (j, &cosine) in rest.iter().enumerate() {
            values.push(cosine);
            if cosine >= NEAR_DUPLICATE {
                duplicates.push(Pair { a: rows[i], b: rows[i + 1 + j], cosine });
            }
        }
    }
    (values, duplicates)
}

/// Up to `limit` rows of `n`, spread evenly (deterministic, covers the whole index).
pub fn spread_sample(n: usize, limit: usize) -> Vec<usize> {
    if n <= limit {
        return (0..n).collect();
    }
    (0..limit).map(|i| i * n / limit).collect()
}

/// What the numbers reveal, for people: a stable `code` and a sentence.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    pub code: &'static str,
    pub message: String,
}

/// Flags a model that does not discriminate on this corpus: documents all look alike
/// (high mean cosine, narrow spread), or queries score their best and their median
/// documents nearly the same.
pub fn discrimination_findings(documents: &Distribution, queries: Option<&Distribution>) -> Vec<Finding> {
    let mut findings = Vec::new();
    if documents.count > 0 && (documents.mean >= 0.6 || documents.std < 0.05) {
        findings.push(Finding {
            code: "not_discriminating",
            message: format!(
                "documents look alike: mean document–document cosine {:.3}, std {:.3}. Absolute scores mean \
                 little with this model; compare ranks, and keep binary thresholds centred (the default)",
                documents.mean, documents.std
            ),
        });
    }
    if let Some(q) = queries {
        if let (Some(median), Some(top)) = (q.percentile(50), q.percentile(99)) {
            if q.count > 0 && top - median < 0.1 {
                findings.push(Finding {
                    code: "flat_query_scores",
                    message: format!(
                        "queries score their best documents barely above the median (p99 {top:.3} vs p50 \
                         {median:.3}): results will be close to arbitrary"
                    ),
                });
            }
        }
    }
    findings
}
