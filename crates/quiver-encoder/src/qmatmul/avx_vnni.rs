//! AVX-VNNI kernels: `vpdpbusd` on 256-bit registers (Intel since Alder Lake, AMD since
//! Zen 5), where one instruction adds four byte products to each of eight 32-bit sums.
//!
//! The weights come in [`Layout::Panels`], as unsigned bytes `w + o` (the block type's
//! [offset](BlockType::offset)), which `vpdpbusd` (unsigned × signed) multiplies by the
//! signed inputs as they are. A block's sum then holds `Σ w·x + o · Σ x`; starting it from
//! `-o · Σ x` (the input block's sum, taken when the inputs were quantized) leaves exactly
//! `Σ w·x`. Each of the eight lanes is one
//! weight row, so a block ends with one conversion and one multiply-add per input row.

use std::arch::x86_64::*;

use super::{check_sizes, Kernels, Layout, QuantizedRows, WeightRows, BLOCK, PANEL};

/// Consecutive values of one row side by side in a group.
const GROUP: usize = Layout::Panels.group();

pub struct AvxVnni;

impl AvxVnni {
    pub fn detect() -> bool {
        is_x86_feature_detected!("avxvnni") && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
}

impl Kernels for AvxVnni {
    fn name(&self) -> &'static str {
        "avx-vnni"
    }

    fn layout(&self) -> Layout {
        Layout::Panels
    }

    fn matmul(&self, w: &WeightRows, x: &QuantizedRows, out: &mut [f32], stride: usize) {
        check_sizes(self, w, x, out, stride);
        // SAFETY: `AvxVnni` is only handed out after `detect()`; the sizes are checked above.
        unsafe { matmul(w, x, out, stride) }
    }
}

/// Input rows in a tile: each weight group loaded serves this many.
const TILE_INPUTS: usize = 4;

#[target_feature(enable = "avx2,fma,avxvnni")]
unsafe fn matmul(w: &WeightRows, x: &QuantizedRows, out: &mut [f32], stride: usize) {
    // A panel's weights stay in the L1 cache while every input row passes.
    for panel in 0..w.rows().div_ceil(PANEL) {
        for i in (0..x.rows()).step_by(TILE_INPUTS) {
            tile(w, x, out, stride, panel, i);
        }
    }
}

/// The panel's 8 weight rows times input rows `i..i + 4`; past the last input row the
/// tile repeats it and drops those results.
#[target_feature(enable = "avx2,fma,avxvnni")]
#[inline]
// Indexed loops over the tile: `n` picks the input row and its accumulators together.
#[allow(clippy::needless_range_loop)]
unsafe fn tile(w: &WeightRows, x: &QuantizedRows, out: &mut [f32], stride: usize, panel: usize, i: usize) {
    let valid = (x.rows() - i).min(TILE_INPUTS);
    let offset = w.block_type.offset();
    let mut acc = [_mm256_setzero_ps(); TILE_INPUTS];
    for b in 0..w.blocks {
        // The panel's scales for this block, and its first weight group.
        let at = (panel * w.blocks + b) * PANEL;
        let weights = w.quants.as_ptr().add(at * BLOCK);
        let mut blocks = [0; TILE_INPUTS];
        let mut sums = [_mm256_setzero_si256(); TILE_INPUTS];
        for n in 0..TILE_INPUTS {
            blocks[n] = (i + n.min(valid - 1)) * x.blocks + b;
            sums[n] = _mm256_set1_epi32(-offset * *x.sums.get_unchecked(blocks[n]));
        }
        for g in 0..BLOCK / GROUP {
            let values = _mm256_loadu_si256(weights.add(g * BLOCK) as *const __m256i);
            for n in 0..TILE_INPUTS {
                let four = (x.quants.as_ptr().add(blocks[n] * BLOCK + g * GROUP) as *const i32).read_unaligned();
                sums[n] = _mm256_dpbusd_avx_epi32(sums[n], values, _mm256_set1_epi32(four));
            }
        }
        let scales = _mm256_loadu_ps(w.scales.as_ptr().add(at));
        for n in 0..TILE_INPUTS {
            let both = _mm256_mul_ps(scales, _mm256_set1_ps(*x.scales.get_unchecked(blocks[n])));
            acc[n] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[n]), both, acc[n]);
        }
    }
    let j = panel * PANEL;
    let width = (w.rows() - j).min(PANEL);
    for n in 0..valid {
        let mut lanes = [0f32; PANEL];
        _mm256_storeu_ps(lanes.as_mut_ptr(), acc[n]);
        let at = (i + n) * stride + j;
        out.get_unchecked_mut(at..at + width).copy_from_slice(&lanes[..width]);
    }
}
