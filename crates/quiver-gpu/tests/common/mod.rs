//! What the GPU tests share: the device, or a clear skip where there is none.

#![allow(dead_code)] // each test file uses a part

use std::path::{Path, PathBuf};

use quiver_gpu::{GpuContext, GpuError};

/// The device, or `None` after printing why the test is skipped. Only a machine with no
/// adapter at all skips; `adapter.rs` fails in CI even then.
pub fn context() -> Option<GpuContext> {
    match pollster::block_on(GpuContext::request()) {
        Ok(ctx) => Some(ctx),
        Err(GpuError::NoAdapter { reason }) => {
            eprintln!("SKIPPED: no GPU adapter (install mesa-vulkan-drivers for lavapipe): {reason}");
            None
        }
        Err(e) => panic!("a GPU adapter exists but its device failed: {e}"),
    }
}

/// The workspace root (the folder with `Cargo.lock`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.ancestors().find(|d| d.join("Cargo.lock").is_file()).unwrap_or(manifest).to_owned()
}

/// The all-MiniLM-L6-v2 folder (`models/all-MiniLM-L6-v2`, or `$QUIVER_MODEL_DIR`).
pub fn minilm_dir() -> PathBuf {
    let dir = std::env::var_os("QUIVER_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("models").join("all-MiniLM-L6-v2"));
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} has no model: run `scripts/setup.sh` (or `quiver fetch-model`) first",
        dir.display()
    );
    dir
}

/// A file of the team's shared folder (`<workspace root>/../shared`, or `$QUIVER_SHARED`).
pub fn shared_file(rel: &str) -> PathBuf {
    let dir =
        std::env::var_os("QUIVER_SHARED").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("../shared"));
    let path = dir.join(rel);
    assert!(
        path.is_file(),
        "{} is missing: the team's shared folder must sit beside the checkout (../shared) or be named by QUIVER_SHARED",
        path.display()
    );
    path
}
