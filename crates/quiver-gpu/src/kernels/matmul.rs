//! `out = act(input · weightᵀ + bias)`: every linear of the encoder, as `nn.Linear`
//! (weight `[n, k]` as stored), with the activation of `BertIntermediate` fused in.

use quiver_encoder::config::Activation;

use super::dispatch;
use crate::context::workgroups;
use crate::{GpuContext, GpuError, Result};

const SOURCE: &str = include_str!("matmul.wgsl");
/// Rows and columns of `out` per workgroup.
const TILE: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    _pad: u32,
}

impl MatmulParams {
    /// `input` `[m, k]` times `weight` `[n, k]` transposed; `k` a multiple of 4.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        MatmulParams { m: m as u32, n: n as u32, k: k as u32, _pad: 0 }
    }
}

pub struct Matmul {
    pipeline: wgpu::ComputePipeline,
}

impl Matmul {
    /// The product with `activation` applied after the bias (none for `None`).
    pub async fn new(ctx: &GpuContext, activation: Option<Activation>) -> Result<Self> {
        let code = match activation {
            None => 0.0,
            Some(Activation::Gelu) => 1.0,
            Some(Activation::GeluNew) => 2.0,
            Some(Activation::Relu) => 3.0,
        };
        Ok(Matmul { pipeline: ctx.compute_pipeline("matmul", SOURCE, &[("ACTIVATION", code)]).await? })
    }

    /// Binds `input`, `weight`, `bias`, `out` and a uniform [`MatmulParams`].
    pub fn bind(&self, ctx: &GpuContext, buffers: [&wgpu::Buffer; 5]) -> wgpu::BindGroup {
        ctx.bind_group("matmul", &self.pipeline, &buffers)
    }

    /// Records the product `[m, k] · [n, k]ᵀ`; `k` must be a multiple of 4.
    pub fn encode(
        &self,
        ctx: &GpuContext,
        pass: &mut wgpu::ComputePass<'_>,
        bind_group: &wgpu::BindGroup,
        [m, n, k]: [usize; 3],
    ) -> Result<()> {
        if !k.is_multiple_of(4) {
            return Err(GpuError::Unsupported {
                what: format!("a linear of {k} inputs (the kernel reads them as vec4)"),
            });
        }
        let groups = [workgroups(ctx, "matmul columns", n, TILE)?, workgroups(ctx, "matmul rows", m, TILE)?, 1];
        dispatch(pass, &self.pipeline, bind_group, groups);
        Ok(())
    }
}
