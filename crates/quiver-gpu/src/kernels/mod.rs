//! The WGSL kernels, one `.wgsl` file beside the Rust that names its buffers and sizes its
//! dispatch (and `workgroup_sum.wgsl`, a reduction two of them share); building the
//! pipeline, binding and dispatching are [`Kernel`]'s, once for all.
//! All compute in f32; the matmul can read f16 weights. `tests/naga.rs` validates every
//! kernel's source ([`sources`]) without a GPU; `tests/kernels.rs` checks the encoder's kernels against a CPU
//! reference, `tests/search.rs` the scans and top-k against the CPU index.
//!
//! Each kernel binds at most 4 storage buffers (the downlevel limit) plus one uniform
//! buffer of parameters, and uses at most 256 invocations and 8 KiB of workgroup memory,
//! within WebGPU's default limits.

use crate::{GpuContext, Result};

/// A kernel type: a newtype of [`Kernel`] that derefs to it, so callers `bind` through it.
macro_rules! kernel {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name(super::Kernel);

        impl std::ops::Deref for $name {
            type Target = super::Kernel;

            fn deref(&self) -> &super::Kernel {
                &self.0
            }
        }
    };
}

pub mod attention;
pub mod layer_norm;
pub mod matmul;
pub mod pooling;
pub mod scan;
pub mod top_k;

/// Every kernel's complete WGSL (shared parts prepended, each variant), by name.
pub fn sources() -> Vec<(&'static str, String)> {
    vec![
        ("attention", attention::SOURCE.to_owned()),
        ("layer_norm", layer_norm::SOURCE.to_owned()),
        ("matmul", matmul::source(matmul::Precision::F32)),
        ("matmul with f16 weights", matmul::source(matmul::Precision::F16)),
        ("pooling", pooling::SOURCE.to_owned()),
        ("scan", scan::SOURCE.to_owned()),
        ("top_k", top_k::SOURCE.to_owned()),
    ]
}

/// A kernel's compute pipeline, built once per device, and what every kernel does with it.
pub struct Kernel {
    label: &'static str,
    pipeline: wgpu::ComputePipeline,
}

impl Kernel {
    async fn build(ctx: &GpuContext, label: &'static str, source: &str, constants: &[(&str, f64)]) -> Result<Self> {
        Ok(Kernel { label, pipeline: ctx.compute_pipeline(label, source, constants).await? })
    }

    /// Binds `buffers` as group 0, in the order the kernel's type documents.
    pub fn bind<const N: usize>(&self, ctx: &GpuContext, buffers: [&wgpu::Buffer; N]) -> wgpu::BindGroup {
        ctx.bind_group(self.label, &self.pipeline, &buffers)
    }

    /// One dispatch with `group` as group 0.
    fn dispatch(&self, pass: &mut wgpu::ComputePass<'_>, group: &wgpu::BindGroup, [x, y, z]: [u32; 3]) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, group, &[]);
        pass.dispatch_workgroups(x, y, z);
    }
}
