//! Flat search on the GPU: the index's f32 vectors and binary codes are uploaded once; a
//! search scans every row on the GPU ([`kernels::scan`](crate::kernels::scan)) and selects
//! the best k there too ([`kernels::top_k`](crate::kernels::top_k)), so only k results
//! come back. Results are in the CPU index's order: higher score first, ties to the lower
//! row (`quiver-index`'s `FlatIndex::search` with `Strategy::Exact` on normalised vectors,
//! and the Hamming scan of `Strategy::Binary`).

use std::sync::Arc;

use crate::kernels::scan::{Scan, ScanParams, ROWS_PER_GROUP};
use crate::kernels::top_k::{Candidate, TopK, TopKParams, BLOCK};
use crate::{GpuContext, GpuError, Result};

/// Beyond this k a pass would not shrink the candidates (it keeps k of each block of
/// [`BLOCK`]), so the candidates are read back and selected on the CPU instead.
const MAX_GPU_K: usize = BLOCK / 2;

/// A row and its dot product with the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub row: usize,
    pub score: f32,
}

/// A row and the Hamming distance of its code to the query's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HammingHit {
    pub row: usize,
    pub distance: u32,
}

/// Consecutive rows in one storage buffer: an index larger than one binding is split.
struct Chunk {
    first_row: usize,
    rows: usize,
    buffer: wgpu::Buffer,
}

/// The search pipelines: built once per device ([`GpuContext`] keeps them) and shared by
/// every index uploaded to it.
pub(crate) struct SearchKernels {
    dot_scan: Scan,
    hamming_scan: Scan,
    top_k: TopK,
}

impl SearchKernels {
    pub(crate) async fn new(ctx: &GpuContext) -> Result<Self> {
        Ok(SearchKernels {
            dot_scan: Scan::dot(ctx).await?,
            hamming_scan: Scan::hamming(ctx).await?,
            top_k: TopK::new(ctx).await?,
        })
    }
}

pub struct GpuSearch {
    ctx: GpuContext,
    dim: usize,
    rows: usize,
    /// u32 words per binary code (two per u64 word).
    code_words: usize,
    vectors: Vec<Chunk>,
    codes: Vec<Chunk>,
    kernels: Arc<SearchKernels>,
    /// The scan's output and the passes' ping-pong, one candidate per row each.
    candidates: [wgpu::Buffer; 2],
}

impl GpuSearch {
    /// Uploads `vectors` (rows of `dim`, row-major) and `codes` (each row's binary code as
    /// `dim.div_ceil(64)` u64 words, as `quiver_index::quantize::binarize` makes them; empty
    /// for an index searched by vector only).
    pub async fn new(ctx: &GpuContext, vectors: &[f32], dim: usize, codes: &[u64]) -> Result<Self> {
        let invalid = |what: String| GpuError::InvalidArgument { op: "GPU index", what };
        if dim == 0 || !vectors.len().is_multiple_of(dim) {
            return Err(invalid(format!("{} values are not rows of {dim}", vectors.len())));
        }
        let rows = vectors.len() / dim;
        let code_words = dim.div_ceil(64) * 2;
        if !codes.is_empty() && codes.len() * 2 != rows * code_words {
            return Err(invalid(format!("{} code words for {rows} rows of {dim} bits", codes.len())));
        }
        if rows >= u32::MAX as usize {
            return Err(GpuError::Limits { what: format!("{rows} rows (rows are u32 on the GPU)") });
        }
        let candidate_bytes = (rows.max(1) * size_of::<Candidate>()) as u64;
        Ok(GpuSearch {
            dim,
            rows,
            code_words,
            vectors: upload_chunks(ctx, "index vectors", vectors, dim)?,
            codes: upload_chunks(ctx, "index codes", bytemuck::cast_slice::<u64, u32>(codes), code_words)?,
            kernels: ctx.search_kernels().await?,
            candidates: [
                ctx.empty_storage_buffer("candidates", candidate_bytes)?,
                ctx.empty_storage_buffer("candidates", candidate_bytes)?,
            ],
            ctx: ctx.clone(),
        })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The `k` rows with the largest dot product with `query`, best first.
    pub async fn search_dot(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        if query.len() != self.dim {
            return Err(GpuError::InvalidArgument {
                op: "GPU search",
                what: format!("a query of {} dimensions for an index of {}", query.len(), self.dim),
            });
        }
        let best = self.top(&self.kernels.dot_scan, &self.vectors, self.dim, bytemuck::cast_slice(query), k).await?;
        Ok(best.into_iter().map(|c| Hit { row: c.row as usize, score: c.score }).collect())
    }

    /// The `k` rows whose codes are nearest `query_code` in Hamming distance, nearest first.
    pub async fn search_hamming(&self, query_code: &[u64], k: usize) -> Result<Vec<HammingHit>> {
        if query_code.len() * 2 != self.code_words || (self.codes.is_empty() && self.rows > 0) {
            return Err(GpuError::InvalidArgument {
                op: "GPU binary search",
                what: format!(
                    "a query code of {} words for codes of {} (an index uploaded without codes has none)",
                    query_code.len(),
                    self.code_words / 2
                ),
            });
        }
        let best = self
            .top(&self.kernels.hamming_scan, &self.codes, self.code_words, bytemuck::cast_slice(query_code), k)
            .await?;
        // Scores are negated distances, exact in f32.
        Ok(best.into_iter().map(|c| HammingHit { row: c.row as usize, distance: -c.score as u32 }).collect())
    }

    /// Scans every chunk with `scan`, then selects the best `k` candidates.
    async fn top(
        &self,
        scan: &Scan,
        chunks: &[Chunk],
        width: usize,
        query: &[u32],
        k: usize,
    ) -> Result<Vec<Candidate>> {
        let k = k.min(self.rows);
        if k == 0 {
            return Ok(Vec::new());
        }
        let ctx = &self.ctx;
        let query = ctx.storage_buffer("query", query)?;
        let scans = chunks
            .iter()
            .map(|chunk| {
                let params = ctx.uniform_buffer("scan", &ScanParams::new(chunk.rows, width, chunk.first_row));
                (chunk.rows, scan.bind(ctx, [&chunk.buffer, &query, &self.candidates[0], &params]))
            })
            .collect::<Vec<_>>();
        // Passes until one block is left; each keeps k of every block, at least halving.
        let mut passes = Vec::new();
        if k <= MAX_GPU_K {
            let mut count = self.rows;
            loop {
                let (from, to) = (passes.len() % 2, (passes.len() + 1) % 2);
                let params = ctx.uniform_buffer("top-k", &TopKParams::new(count, k));
                passes.push((
                    count,
                    self.kernels.top_k.bind(ctx, [&self.candidates[from], &self.candidates[to], &params]),
                ));
                if count <= BLOCK {
                    break;
                }
                count = count.div_ceil(BLOCK) * k;
            }
        }
        let mut encoder = ctx.encoder("search");
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for (rows, bind_group) in &scans {
                scan.encode(ctx, &mut pass, bind_group, *rows)?;
            }
            for (count, bind_group) in &passes {
                self.kernels.top_k.encode(ctx, &mut pass, bind_group, *count, k)?;
            }
        }
        let result = &self.candidates[passes.len() % 2];
        let best = if passes.is_empty() {
            let mut all = ctx.submit_read::<Candidate>("search", encoder, result, self.rows).values().await?;
            let order = |a: &Candidate, b: &Candidate| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row));
            all.select_nth_unstable_by(k - 1, order);
            all.truncate(k);
            all.sort_unstable_by(order);
            all
        } else {
            ctx.submit_read("search", encoder, result, k).values().await?
        };
        // Callers index their documents by these rows: a wrong one from a faulty driver is
        // an error, never an out-of-bounds lookup (a trap in the browser).
        if let Some(wrong) = best.iter().find(|c| c.row as usize >= self.rows) {
            return Err(GpuError::Kernel {
                kernel: "search",
                message: format!("the GPU returned row {} of an index of {} rows", wrong.row, self.rows),
            });
        }
        Ok(best)
    }
}

/// `values` (rows of `width`) in as few storage buffers as the device's binding size and
/// dispatch limits allow.
fn upload_chunks<T: bytemuck::Pod>(ctx: &GpuContext, label: &str, values: &[T], width: usize) -> Result<Vec<Chunk>> {
    let row_bytes = (width * size_of::<T>()) as u64;
    let max_rows_per_dispatch = ctx.limits().max_compute_workgroups_per_dimension as usize * ROWS_PER_GROUP;
    let rows_per_chunk = ((ctx.max_binding_bytes() / row_bytes) as usize).min(max_rows_per_dispatch);
    if rows_per_chunk == 0 {
        return Err(GpuError::Limits { what: format!("{label}: one row of {row_bytes} bytes exceeds a binding") });
    }
    values
        .chunks(rows_per_chunk * width)
        .enumerate()
        .map(|(i, part)| {
            Ok(Chunk {
                first_row: i * rows_per_chunk,
                rows: part.len() / width,
                buffer: ctx.storage_buffer(label, part)?,
            })
        })
        .collect()
}
