//! The WGSL kernels, one `.wgsl` file beside the Rust that builds its pipeline, binds its
//! buffers and sizes its dispatch (and `workgroup_sum.wgsl`, a reduction two of them share).
//! All compute in f32; the matmul can read f16 weights. `tests/naga.rs` validates every
//! kernel's source ([`sources`]) without a GPU; `tests/kernels.rs` checks the encoder's kernels against a CPU
//! reference, `tests/search.rs` the scans and top-k against the CPU index.
//!
//! Each kernel binds at most 4 storage buffers (the downlevel limit) plus one uniform
//! buffer of parameters, and uses at most 256 invocations and 8 KiB of workgroup memory,
//! within WebGPU's default limits.

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

/// One dispatch of `pipeline` with `bind_group` as group 0.
fn dispatch(
    pass: &mut wgpu::ComputePass<'_>,
    pipeline: &wgpu::ComputePipeline,
    bind_group: &wgpu::BindGroup,
    [x, y, z]: [u32; 3],
) {
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, bind_group, &[]);
    pass.dispatch_workgroups(x, y, z);
}
