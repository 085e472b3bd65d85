//! The WGSL kernels, one `.wgsl` file beside the Rust that builds its pipeline, binds its
//! buffers and sizes its dispatch. All run in f32. `tests/naga.rs` validates every `.wgsl`
//! here without a GPU; `tests/kernels.rs` checks the encoder's kernels against a CPU
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
