//! One query against a chunk of index rows: dot products of f32 vectors or Hamming
//! distances of binary codes (`scan.wgsl`, specialised by its `HAMMING` constant), each row
//! written as a [`Candidate`](super::top_k::Candidate) for [`super::top_k`].

use super::dispatch;
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

pub struct Scan {
    pipeline: wgpu::ComputePipeline,
}

impl Scan {
    /// Scores are dot products.
    pub async fn dot(ctx: &GpuContext) -> Result<Self> {
        Ok(Scan { pipeline: ctx.compute_pipeline("dot scan", SOURCE, &[("HAMMING", 0.0)]).await? })
    }

    /// Scores are negated Hamming distances.
    pub async fn hamming(ctx: &GpuContext) -> Result<Self> {
        Ok(Scan { pipeline: ctx.compute_pipeline("Hamming scan", SOURCE, &[("HAMMING", 1.0)]).await? })
    }

    /// Binds the chunk's rows, the query, the candidates (the whole index's) and a uniform
    /// [`ScanParams`].
    pub fn bind(&self, ctx: &GpuContext, buffers: [&wgpu::Buffer; 4]) -> wgpu::BindGroup {
        ctx.bind_group("scan", &self.pipeline, &buffers)
    }

    pub fn encode(
        &self,
        ctx: &GpuContext,
        pass: &mut wgpu::ComputePass<'_>,
        bind_group: &wgpu::BindGroup,
        rows: usize,
    ) -> Result<()> {
        dispatch(pass, &self.pipeline, bind_group, [workgroups(ctx, "scanned rows", rows, ROWS_PER_GROUP)?, 1, 1]);
        Ok(())
    }
}
