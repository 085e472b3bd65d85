//! Top-k selection on the GPU: each pass sorts blocks of [`BLOCK`] candidates and keeps the
//! best `keep` of each, until one block is left, sorted best first.

use wgpu::{BindGroup, ComputePass};

use super::Kernel;
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

kernel!(
    /// Binds the input candidates, the output (`keep` per block of input) and a uniform
    /// [`TopKParams`].
    TopK
);

impl TopK {
    pub async fn new(ctx: &GpuContext) -> Result<Self> {
        Ok(TopK(Kernel::build(ctx, "top_k", SOURCE, &[]).await?))
    }

    /// Records one pass over `count` candidates, the best `keep` of each block kept;
    /// returns how many it writes.
    pub fn encode(
        &self,
        ctx: &GpuContext,
        pass: &mut ComputePass<'_>,
        group: &BindGroup,
        count: usize,
        keep: usize,
    ) -> Result<usize> {
        let blocks = workgroups(ctx, "top-k blocks", count, BLOCK)?;
        self.dispatch(pass, group, [blocks, 1, 1]);
        Ok(blocks as usize * keep)
    }
}
