//! The index's flat scans on the GPU ([`quiver_gpu::GpuSearch`]): exact dot products and
//! binary Hamming distances over every row, top-k selected on the GPU. Same rows, same
//! order, same scores as the CPU index (ties aside); what the GPU does not do (filters,
//! int8, rescoring, keywords, the L2 metric) stays with the CPU index.

use quiver_gpu::{GpuContext, GpuError, GpuSearch};
use quiver_index::quantize::{binarize, hamming_score, words_per_code};
use quiver_index::{FlatIndex, Hit, Metric, SearchMode, SearchOptions, Strategy};

use super::BackendChoice;
use crate::Result;

/// A snapshot of an index's vectors and codes on the GPU: rebuild it after the index changes.
pub struct GpuScan {
    search: GpuSearch,
}

impl GpuScan {
    /// Uploads `index`'s vectors and binary codes.
    pub async fn new(ctx: &GpuContext, index: &FlatIndex) -> Result<Self, GpuError> {
        if index.config().metric == Metric::L2 {
            return Err(GpuError::Unsupported { what: "the L2 metric in GPU search".into() });
        }
        Ok(GpuScan { search: GpuSearch::new(ctx, index.vectors(), index.dim(), index.binary_codes()).await? })
    }

    /// Whether `index` belongs on the GPU: not under the L2 metric; any size when the GPU
    /// was asked for, from [`GPU_SCAN_MIN_ROWS`] rows with `auto` (below that the CPU's scan
    /// takes less than a GPU round trip).
    pub fn wanted(index: &FlatIndex, requested: BackendChoice) -> bool {
        index.config().metric != Metric::L2 && (requested == BackendChoice::Gpu || index.len() >= GPU_SCAN_MIN_ROWS)
    }

    /// Whether the GPU answers searches with `options`: by vector, exact or binary, unfiltered.
    pub fn handles(options: &SearchOptions) -> bool {
        options.mode == SearchMode::Vector
            && matches!(options.strategy, Strategy::Exact | Strategy::Binary)
            && options.filter.as_ref().is_none_or(|f| f.is_empty())
    }

    /// The query as the scan takes it, from `index` (the one this scan was built from):
    /// checked, normalised, binarised for a binary scan. Holds nothing of the index, so the
    /// index may be released while [`GpuScan::run`] awaits the GPU.
    pub fn prepare(&self, index: &FlatIndex, query: &[f32], options: &SearchOptions) -> Result<ScanQuery> {
        let query = index.prepared_query("GPU search", query)?;
        Ok(match options.strategy {
            Strategy::Binary => {
                let mut code = vec![0u64; words_per_code(index.dim())];
                binarize(&query, index.thresholds(), &mut code);
                ScanQuery::Binary { code, dim: index.dim(), k: options.k }
            }
            _ => ScanQuery::Exact { vector: query, k: options.k },
        })
    }

    /// The best rows for a prepared query, scored as the CPU index scores them.
    pub async fn run(&self, query: &ScanQuery) -> Result<Vec<Hit>> {
        Ok(match query {
            ScanQuery::Binary { code, dim, k } => self
                .search
                .search_hamming(code, *k)
                .await?
                .into_iter()
                .map(|h| Hit { row: h.row, score: hamming_score(h.distance, *dim) })
                .collect(),
            ScanQuery::Exact { vector, k } => self
                .search
                .search_dot(vector, *k)
                .await?
                .into_iter()
                .map(|h| Hit { row: h.row, score: h.score })
                .collect(),
        })
    }

    /// [`FlatIndex::search`] of `index` (the one this scan was built from) on the GPU, for
    /// options it [handles](GpuScan::handles).
    pub async fn search(&self, index: &FlatIndex, query: &[f32], options: &SearchOptions) -> Result<Vec<Hit>> {
        self.run(&self.prepare(index, query, options)?).await
    }
}

/// From this many rows `auto` scans on the GPU.
pub const GPU_SCAN_MIN_ROWS: usize = 50_000;

/// A query ready for [`GpuScan::run`].
pub enum ScanQuery {
    Exact { vector: Vec<f32>, k: usize },
    Binary { code: Vec<u64>, dim: usize, k: usize },
}
