//! AVX-512 VNNI kernels: `vpdpbusd` on 512-bit registers (AMD since Zen 4, Intel's servers
//! since Cascade Lake), where one instruction adds four byte products to each of sixteen
//! 32-bit sums: twice the AVX-VNNI kernel's work per instruction.
//!
//! The weights come in [`Layout::WidePanels`]: a register holds 8 values of each of a
//! panel's 8 rows, row `r` in lanes `2r` (values `8g..8g + 4`) and `2r + 1` (the next 4),
//! so one 8-byte broadcast of the input feeds all sixteen lanes. As in the AVX-VNNI kernel
//! the weights are unsigned bytes `w + o`, and a row's two lanes start from `-o/2 · Σ x`
//! each to take the offset back out. Each lane's block sum is scaled and accumulated on its
//! own, and a row's two lanes are added once, at the end of the row: a lane holds its half
//! of `Σ w·x` plus `o/2` times the difference of its and its neighbour's inputs, which the
//! final addition cancels (the small Q4_0 offset keeps that rounding small).

use std::arch::x86_64::*;

use super::{check_sizes, Kernels, Layout, QuantizedRows, WeightRows, BLOCK, PANEL};

pub struct Avx512Vnni;

impl Avx512Vnni {
    pub fn detect() -> bool {
        is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512f")
    }
}

impl Kernels for Avx512Vnni {
    fn name(&self) -> &'static str {
        "avx512-vnni"
    }

    fn layout(&self) -> Layout {
        Layout::WidePanels
    }

    fn matmul(&self, w: &WeightRows, x: &QuantizedRows, out: &mut [f32], stride: usize) {
        check_sizes(self, w, x, out, stride);
        // SAFETY: `Avx512Vnni` is only handed out after `detect()`; the sizes are checked above.
        unsafe { matmul(w, x, out, stride) }
    }
}

/// Input rows in a tile: each weight group loaded serves this many.
const TILE_INPUTS: usize = 4;
/// Values of one row in a group.
const WIDTH: usize = Layout::WidePanels.group();

#[target_feature(enable = "avx512f,avx512vnni")]
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
#[target_feature(enable = "avx512f,avx512vnni")]
#[inline]
// Indexed loops over the tile: `n` picks the input row and its accumulators together.
#[allow(clippy::needless_range_loop)]
unsafe fn tile(w: &WeightRows, x: &QuantizedRows, out: &mut [f32], stride: usize, panel: usize, i: usize) {
    let valid = (x.rows() - i).min(TILE_INPUTS);
    let half_offset = w.block_type.offset() / 2;
    // Lane `2r` and `2r + 1` take row `r`'s scale.
    let pairs = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    let mut acc = [_mm512_setzero_ps(); TILE_INPUTS];
    for b in 0..w.blocks {
        // The panel's scales for this block, and its first weight group.
        let at = (panel * w.blocks + b) * PANEL;
        let weights = w.quants.as_ptr().add(at * BLOCK);
        let mut blocks = [0; TILE_INPUTS];
        let mut sums = [_mm512_setzero_si512(); TILE_INPUTS];
        for n in 0..TILE_INPUTS {
            blocks[n] = (i + n.min(valid - 1)) * x.blocks + b;
            sums[n] = _mm512_set1_epi32(-half_offset * *x.sums.get_unchecked(blocks[n]));
        }
        for g in 0..BLOCK / WIDTH {
            let values = _mm512_loadu_si512(weights.add(g * PANEL * WIDTH) as *const __m512i);
            for n in 0..TILE_INPUTS {
                let eight = (x.quants.as_ptr().add(blocks[n] * BLOCK + g * WIDTH) as *const i64).read_unaligned();
                sums[n] = _mm512_dpbusd_epi32(sums[n], values, _mm512_set1_epi64(eight));
            }
        }
        let scales = _mm512_permutexvar_ps(pairs, _mm512_castps256_ps512(_mm256_loadu_ps(w.scales.as_ptr().add(at))));
        for n in 0..TILE_INPUTS {
            let both = _mm512_mul_ps(scales, _mm512_set1_ps(*x.scales.get_unchecked(blocks[n])));
            acc[n] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[n]), both, acc[n]);
        }
    }
    let j = panel * PANEL;
    let width = (w.rows() - j).min(PANEL);
    for n in 0..valid {
        let mut lanes = [0f32; 2 * PANEL];
        _mm512_storeu_ps(lanes.as_mut_ptr(), acc[n]);
        let at = (i + n) * stride + j;
        for (r, out) in out.get_unchecked_mut(at..at + width).iter_mut().enumerate() {
            *out = lanes[2 * r] + lanes[2 * r + 1];
        }
    }
}
