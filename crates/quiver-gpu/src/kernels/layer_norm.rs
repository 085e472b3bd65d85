//! `x = LayerNorm(x + addend)`: after the attention output and the MLP output (the addend is
//! the residual), and for the embeddings (the addend is position + token type, repeating
//! every sequence).

use wgpu::{BindGroup, ComputePass};

use super::Kernel;
use crate::context::workgroups;
use crate::{GpuContext, Result};

pub const SOURCE: &str = concat!(include_str!("workgroup_sum.wgsl"), include_str!("layer_norm.wgsl"));

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LayerNormParams {
    rows: u32,
    width: u32,
    period: u32,
    eps: f32,
}

impl LayerNormParams {
    /// `rows` rows of `width`; row `r` adds addend row `r % period`.
    pub fn new(rows: usize, width: usize, period: usize, eps: f64) -> Self {
        LayerNormParams { rows: rows as u32, width: width as u32, period: period as u32, eps: eps as f32 }
    }
}

kernel!(
    /// Binds `x` (read and written), the addend, the norm's gamma followed by its beta, and a
    /// uniform [`LayerNormParams`].
    LayerNorm
);

impl LayerNorm {
    pub async fn new(ctx: &GpuContext) -> Result<Self> {
        Ok(LayerNorm(Kernel::build(ctx, "layer_norm", SOURCE, &[]).await?))
    }

    pub fn encode(&self, ctx: &GpuContext, pass: &mut ComputePass<'_>, group: &BindGroup, rows: usize) -> Result<()> {
        self.dispatch(pass, group, [workgroups(ctx, "layer norm rows", rows, 1)?, 1, 1]);
        Ok(())
    }
}
