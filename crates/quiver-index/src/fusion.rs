//! Merging a vector ranking and a keyword ranking into one (hybrid search).

use std::collections::BTreeMap;

use crate::topk::{Hit, TopK};
use crate::{IndexError, Result};

/// How hybrid search merges its two rankings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// Reciprocal Rank Fusion: a row scores `Σ 1 / (k + rank)` over the rankings it is in
    /// (rank from 1). Uses ranks only, so the two kinds of score need not be comparable.
    Rrf { k: f32 },
    /// Each ranking's scores min-max normalised to [0, 1] (a ranking whose scores are all
    /// equal gives 1), then `vector_weight · vector + (1 − vector_weight) · keyword`; a row
    /// missing from a ranking gets 0 from it.
    Weighted { vector_weight: f32 },
}

impl Fusion {
    /// The fusion called `name` ("rrf" or "weighted"), with its parameter where given:
    /// `rrf_k` for RRF, `vector_weight` for weighted (the defaults otherwise).
    pub fn named(name: &str, rrf_k: Option<f32>, vector_weight: Option<f32>) -> Result<Self, String> {
        match name {
            "rrf" => Ok(Fusion::Rrf { k: rrf_k.unwrap_or(60.0) }),
            "weighted" => Ok(Fusion::Weighted { vector_weight: vector_weight.unwrap_or(0.5) }),
            other => Err(format!("unknown fusion {other:?} (rrf, weighted)")),
        }
    }
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion::Rrf { k: 60.0 }
    }
}

/// The best `k` rows of the fused rankings (each best first), ties to the lower row.
pub fn fuse(vector_hits: &[Hit], keyword_hits: &[Hit], fusion: Fusion, k: usize) -> Result<Vec<Hit>> {
    let invalid = |what: String| IndexError::InvalidArgument { op: "hybrid search", what };
    let mut fused = BTreeMap::<usize, f32>::new();
    match fusion {
        Fusion::Rrf { k: rank_offset } => {
            if !(rank_offset.is_finite() && rank_offset >= 0.0) {
                return Err(invalid(format!("RRF needs k ≥ 0, got {rank_offset}")));
            }
            for hits in [vector_hits, keyword_hits] {
                for (rank, hit) in hits.iter().enumerate() {
                    *fused.entry(hit.row).or_default() += 1.0 / (rank_offset + rank as f32 + 1.0);
                }
            }
        }
        Fusion::Weighted { vector_weight } => {
            if !(0.0..=1.0).contains(&vector_weight) {
                return Err(invalid(format!("the vector weight must be in [0, 1], got {vector_weight}")));
            }
            for (hits, weight) in [(vector_hits, vector_weight), (keyword_hits, 1.0 - vector_weight)] {
                let (min, max) = hits
                    .iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), h| (lo.min(h.score), hi.max(h.score)));
                for hit in hits {
                    let normalised = if max > min { (hit.score - min) / (max - min) } else { 1.0 };
                    *fused.entry(hit.row).or_default() += weight * normalised;
                }
            }
        }
    }
    let mut top = TopK::new(k);
    for (row, score) in fused {
        top.push(score, row);
    }
    Ok(top.into_sorted())
}
