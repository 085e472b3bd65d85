//! The GPU the other tests run on.

mod common;

/// Skipping is for developer machines without a GPU driver; CI must have an adapter (Mesa's
/// lavapipe at least), or the GPU path would go untested.
#[test]
fn an_adapter_exists_in_ci() {
    let Some(ctx) = common::context() else {
        assert!(std::env::var_os("CI").is_none(), "CI is set but no GPU adapter could be created");
        return;
    };
    let info = ctx.adapter_info();
    let limits = ctx.limits();
    eprintln!(
        "adapter: {} ({:?}, {:?}, driver {} {}), shader-f16: {}, storage binding {} MiB, workgroup storage {} B",
        info.name,
        info.backend,
        info.device_type,
        info.driver,
        info.driver_info,
        ctx.shader_f16(),
        limits.max_storage_buffer_binding_size >> 20,
        limits.max_compute_workgroup_storage_size
    );
    assert!(!ctx.is_lost());
    ctx.check("adapter").unwrap();
}

/// wgpu panics on errors nobody handles; here they come back as `GpuError`s.
#[test]
fn errors_come_back_typed_instead_of_panicking() {
    let Some(ctx) = common::context() else { return };
    let error = pollster::block_on(ctx.compute_pipeline(
        "broken",
        "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }",
        &[],
    ))
    .err()
    .unwrap();
    assert_eq!(error.code(), "E_GPU_KERNEL", "{error}");
    // A mapped buffer must be a multiple of 4 bytes: an uncaptured validation error.
    let _ = ctx.device().create_buffer(&quiver_gpu::wgpu::BufferDescriptor {
        label: None,
        size: 3,
        usage: quiver_gpu::wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: true,
    });
    assert_eq!(ctx.check("test").unwrap_err().code(), "E_GPU_KERNEL");
    ctx.check("test").unwrap();

    ctx.device().destroy();
    let _ = ctx.device().poll(quiver_gpu::wgpu::PollType::wait_indefinitely());
    assert!(ctx.is_lost());
    assert_eq!(ctx.check("test").unwrap_err().code(), "E_GPU_LOST");
}
