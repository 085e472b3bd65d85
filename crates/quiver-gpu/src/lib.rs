//! Quiver's GPU compute path on wgpu: the BERT sentence encoder ([`GpuBert`]) and flat and
//! binary index search ([`GpuSearch`]) as WGSL kernels ([`kernels`]). The same code runs
//! natively (Vulkan, Metal, DX12; Mesa's lavapipe on machines without a GPU) and in the
//! browser (WebGPU). Every call that touches the GPU is `async` so the browser can await
//! it; natively, block on it (`pollster::block_on`).
//!
//! See `ARCHITECTURE.md` at the repository root.

mod bert;
mod context;
mod error;
pub mod kernels;
mod search;
#[cfg_attr(target_arch = "wasm32", path = "wait/browser.rs")]
#[cfg_attr(not(target_arch = "wasm32"), path = "wait/native.rs")]
mod wait;

pub use bert::{GpuBert, PendingEmbedding};
pub use context::{GpuContext, PendingRead};
pub use error::{GpuError, Result};
pub use kernels::matmul::Precision;
pub use search::{GpuSearch, HammingHit, Hit};
/// The wgpu this crate is built on, for callers that bind the kernels themselves.
pub use wgpu;
