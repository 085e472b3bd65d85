//! Token vectors to one vector per sequence (mean, `[CLS]` or max over the real tokens),
//! L2-normalised when asked, as [`quiver_encoder::pooling`] does on the CPU.

use quiver_encoder::Pooling as Mode;
use wgpu::{BindGroup, ComputePass};

use super::Kernel;
use crate::context::workgroups;
use crate::{GpuContext, Result};

pub const SOURCE: &str = concat!(include_str!("workgroup_sum.wgsl"), include_str!("pooling.wgsl"));

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PoolingParams {
    seq: u32,
    hidden: u32,
    mode: u32,
    normalize: u32,
}

impl PoolingParams {
    pub fn new(seq: usize, hidden: usize, mode: Mode, normalize: bool) -> Self {
        let mode = match mode {
            Mode::Mean => 0,
            Mode::Cls => 1,
            Mode::Max => 2,
        };
        PoolingParams { seq: seq as u32, hidden: hidden as u32, mode, normalize: normalize as u32 }
    }
}

kernel!(
    /// Binds the token vectors (`[batch, seq, hidden]`), the lengths (u32), the pooled output
    /// (`[batch, hidden]`) and a uniform [`PoolingParams`].
    Pooling
);

impl Pooling {
    pub async fn new(ctx: &GpuContext) -> Result<Self> {
        Ok(Pooling(Kernel::build(ctx, "pooling", SOURCE, &[]).await?))
    }

    pub fn encode(&self, ctx: &GpuContext, pass: &mut ComputePass<'_>, group: &BindGroup, batch: usize) -> Result<()> {
        self.dispatch(pass, group, [workgroups(ctx, "pooled sequences", batch, 1)?, 1, 1]);
        Ok(())
    }
}
