//! Distance kernels, one implementation per instruction set, chosen at run time.
//!
//! Each kernel scores one query against a block of rows stored back to back, so the
//! dispatch happens once per block rather than once per vector. Every implementation is
//! checked against [`scalar::Scalar`] by one engine-neutral test suite (`tests/kernels.rs`).

use std::sync::OnceLock;

#[cfg(target_arch = "x86_64")]
mod avx2;
mod scalar;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128;

/// The distance kernels of one instruction set. `rows` holds `out.len()` rows of
/// `query.len()` elements each.
pub trait Kernels: Sync + Send {
    /// Short name shown in benchmarks and `quiver info` (`scalar`, `avx2`, `simd128`).
    fn name(&self) -> &'static str;
    /// `out[i] = query · rows[i]`.
    fn dot_f32(&self, query: &[f32], rows: &[f32], out: &mut [f32]);
    /// `out[i] = query · rows[i]` in exact integer arithmetic.
    fn dot_i8(&self, query: &[i8], rows: &[i8], out: &mut [i32]);
    /// `out[i] = popcount(query ^ rows[i])`.
    fn hamming(&self, query: &[u64], rows: &[u64], out: &mut [u32]);
}

/// Every implementation this processor can run, the portable one first.
pub fn available() -> Vec<&'static dyn Kernels> {
    let mut all: Vec<&'static dyn Kernels> = vec![&scalar::Scalar];
    #[cfg(target_arch = "x86_64")]
    if avx2::Avx2::detect() {
        all.push(&avx2::Avx2);
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    all.push(&simd128::Simd128);
    all
}

/// The fastest implementation available, or the one named by `QUIVER_KERNELS`
/// (`scalar`, `avx2`, `simd128`) when that is set and available.
pub fn best() -> &'static dyn Kernels {
    static BEST: OnceLock<&'static dyn Kernels> = OnceLock::new();
    *BEST.get_or_init(|| {
        let all = available();
        let wanted = std::env::var("QUIVER_KERNELS").ok();
        wanted
            .and_then(|name| all.iter().copied().find(|k| k.name() == name))
            .unwrap_or_else(|| *all.last().expect("scalar is always available"))
    })
}
