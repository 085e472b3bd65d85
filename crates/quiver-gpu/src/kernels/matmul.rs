//! `out = act(input · weightᵀ + bias)`: every linear of the encoder, as `nn.Linear`
//! (weight `[n, k]` as stored), with the activation of `BertIntermediate` fused in.

use quiver_encoder::config::Activation;
use wgpu::{BindGroup, ComputePass};

use super::Kernel;
use crate::context::workgroups;
use crate::{GpuContext, GpuError, Result};

const SOURCE: &str = include_str!("matmul.wgsl");
/// The declaration [`source`] retypes for f16 weights.
const F32_WEIGHTS: &str = "var<storage, read> weight: array<vec4<f32>>;";
const F16_WEIGHTS: &str = "var<storage, read> weight: array<vec4<f16>>;";

/// How the weights are stored on the GPU; activations and sums are f32 either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    /// Half the memory and bandwidth; needs the device's `shader-f16`.
    F16,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }
}

/// The kernel's WGSL for weights stored in `precision`.
pub fn source(precision: Precision) -> String {
    match precision {
        Precision::F32 => SOURCE.to_owned(),
        Precision::F16 => {
            assert!(SOURCE.contains(F32_WEIGHTS), "matmul.wgsl declares its weights as {F32_WEIGHTS}");
            format!("enable f16;\n{}", SOURCE.replace(F32_WEIGHTS, F16_WEIGHTS))
        }
    }
}
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

kernel!(
    /// Binds `input`, `weight`, `bias`, `out` and a uniform [`MatmulParams`].
    Matmul
);

impl Matmul {
    /// The product with `activation` applied after the bias (none for `None`), for weights
    /// stored in `precision`.
    pub async fn new(ctx: &GpuContext, activation: Option<Activation>, precision: Precision) -> Result<Self> {
        let code = match activation {
            None => 0.0,
            Some(Activation::Gelu) => 1.0,
            Some(Activation::GeluNew) => 2.0,
            Some(Activation::Relu) => 3.0,
        };
        if precision == Precision::F16 && !ctx.shader_f16() {
            return Err(GpuError::Unsupported { what: "f16 weights on a device without shader-f16".into() });
        }
        Ok(Matmul(Kernel::build(ctx, "matmul", &source(precision), &[("ACTIVATION", code)]).await?))
    }

    /// Records the product `[m, k] · [n, k]ᵀ`; `k` must be a multiple of 4.
    pub fn encode(
        &self,
        ctx: &GpuContext,
        pass: &mut ComputePass<'_>,
        group: &BindGroup,
        mnk: [usize; 3],
    ) -> Result<()> {
        let [m, n, k] = mnk;
        if !k.is_multiple_of(4) {
            return Err(GpuError::Unsupported {
                what: format!("a linear of {k} inputs (the kernel reads them as vec4)"),
            });
        }
        let groups = [workgroups(ctx, "matmul columns", n, TILE)?, workgroups(ctx, "matmul rows", m, TILE)?, 1];
        self.dispatch(pass, group, groups);
        Ok(())
    }
}
