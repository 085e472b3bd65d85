//! One query against a chunk of index rows: dot products of f32 vectors or Hamming
//! distances of binary codes (`scan.wgsl`, specialised by its `HAMMING` constant), each row
//! written as a [`Candidate`](super::top_k::Candidate) for [`super::top_k`].

use wgpu::{BindGroup, ComputePass};

use super::Kernel;
use crate::context::workgroups;
use crate::{GpuContext, Result};

pub const SOURCE: &str = include_str!("scan.wgsl");

/// Rows per workgroup: one invocation each.
pub const ROWS_PER_GROUP: usize = 256;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ScanParams {
    rows: u32,
    width: u32,
    first_row: u32,
    _pad: u32,
}

impl ScanParams {
    /// `rows` rows of `width` values (f32 dimensions or u32 code words), written as
    /// candidates `first_row..first_row + rows`.
    pub fn new(rows: usize, width: usize, first_row: usize) -> Self {
        ScanParams { rows: rows as u32, width: width as u32, first_row: first_row as u32, _pad: 0 }
    }
}

kernel!(
    /// Binds the chunk's rows, the query, the candidates (the whole index's) and a uniform
    /// [`ScanParams`].
    Scan
);

impl Scan {
    /// Scores are dot products.
    pub async fn dot(ctx: &GpuContext) -> Result<Self> {
        Ok(Scan(Kernel::build(ctx, "dot scan", SOURCE, &[("HAMMING", 0.0)]).await?))
    }

    /// Scores are negated Hamming distances.
    pub async fn hamming(ctx: &GpuContext) -> Result<Self> {
        Ok(Scan(Kernel::build(ctx, "Hamming scan", SOURCE, &[("HAMMING", 1.0)]).await?))
    }

    pub fn encode(&self, ctx: &GpuContext, pass: &mut ComputePass<'_>, group: &BindGroup, rows: usize) -> Result<()> {
        self.dispatch(pass, group, [workgroups(ctx, "scanned rows", rows, ROWS_PER_GROUP)?, 1, 1]);
        Ok(())
    }
}
