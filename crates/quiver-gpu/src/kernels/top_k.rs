//! Top-k selection on the GPU: each pass sorts blocks of [`BLOCK`] candidates and keeps the
//! best `keep` of each, until one block is left, sorted best first.

use super::dispatch;
use crate::context::workgroups;
use crate::{GpuContext, Result};

pub const SOURCE: &str = include_str!("top_k.wgsl");
/// Candidates sorted per workgroup.
pub const BLOCK: usize = 1024;

/// A scored row, as the scans write and the passes sort: higher scores first, then lower
/// rows. Padding has a score of -∞ and row `u32::MAX`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Candidate {
    pub score: f32,
    pub row: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct TopKParams {
    count: u32,
    keep: u32,
}

impl TopKParams {
    /// `count` input candidates, the best `keep` (≤ [`BLOCK`]) of each block kept.
    pub fn new(count: usize, keep: usize) -> Self {
        TopKParams { count: count as u32, keep: keep as u32 }
    }
}

pub struct TopK {
    pipeline: wgpu::ComputePipeline,
}

impl TopK {
    pub async fn new(ctx: &GpuContext) -> Result<Self> {
        Ok(TopK { pipeline: ctx.compute_pipeline("top_k", SOURCE, &[]).await? })
    }

    /// Binds the input candidates, the output (`keep` per block of input) and a uniform
    /// [`TopKParams`].
    pub fn bind(&self, ctx: &GpuContext, buffers: [&wgpu::Buffer; 3]) -> wgpu::BindGroup {
        ctx.bind_group("top_k", &self.pipeline, &buffers)
    }

    /// Records one pass over `count` candidates; returns how many it writes.
    pub fn encode(
        &self,
        ctx: &GpuContext,
        pass: &mut wgpu::ComputePass<'_>,
        bind_group: &wgpu::BindGroup,
        count: usize,
        keep: usize,
    ) -> Result<usize> {
        let blocks = workgroups(ctx, "top-k blocks", count, BLOCK)?;
        dispatch(pass, &self.pipeline, bind_group, [blocks, 1, 1]);
        Ok(blocks as usize * keep)
    }
}
