//! AVX2 + FMA kernels (never AVX-512, so native figures stand for what users' laptops run).
//!
//! The weights come in [`Layout::SignedPanels`] and the inputs as [`Activations::Unsigned7`]:
//! `maddubs` (unsigned × signed bytes) then needs neither sign tricks nor an offset, and
//! each of a register's eight lanes is one weight row, so no sum is folded across lanes.

use std::arch::x86_64::*;

use super::{check_sizes, Activations, Kernels, Layout, QuantizedRows, WeightRows, BLOCK, PANEL};

pub struct Avx2;

impl Avx2 {
    pub fn detect() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
}

impl Kernels for Avx2 {
    fn name(&self) -> &'static str {
        "avx2"
    }

    fn layout(&self) -> Layout {
        Layout::SignedPanels
    }

    fn activations(&self) -> Activations {
        Activations::Unsigned7
    }

    fn matmul(&self, w: &WeightRows, x: &QuantizedRows, out: &mut [f32], stride: usize) {
        check_sizes(self, w, x, out, stride);
        // SAFETY: `Avx2` is only handed out after `detect()`; the sizes are checked above.
        unsafe { matmul(w, x, out, stride) }
    }
}

/// Input rows in a tile: each weight group loaded serves this many.
const TILE_INPUTS: usize = 4;
/// Consecutive values of one row side by side in a group.
const GROUP: usize = Layout::SignedPanels.group();

#[target_feature(enable = "avx2,fma")]
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
///
/// `maddubs` multiplies 4 unsigned 7-bit inputs (broadcast) by each row's 4 signed weights
/// and adds them in pairs: at most `2 · 127 · 127`, so no 16-bit sum saturates; `madd`
/// with ones finishes each row's 4 products in its own 32-bit lane.
#[target_feature(enable = "avx2,fma")]
#[inline]
// Indexed loops over the tile: `n` picks the input row and its accumulators together.
#[allow(clippy::needless_range_loop)]
unsafe fn tile(w: &WeightRows, x: &QuantizedRows, out: &mut [f32], stride: usize, panel: usize, i: usize) {
    let valid = (x.rows() - i).min(TILE_INPUTS);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); TILE_INPUTS];
    for b in 0..w.blocks {
        // The panel's scales and totals for this block, and its first weight group.
        let at = (panel * w.blocks + b) * PANEL;
        let weights = w.quants.as_ptr().add(at * BLOCK);
        let mut blocks = [0; TILE_INPUTS];
        let mut dots = [_mm256_setzero_si256(); TILE_INPUTS];
        for n in 0..TILE_INPUTS {
            blocks[n] = (i + n.min(valid - 1)) * x.blocks + b;
        }
        for g in 0..BLOCK / GROUP {
            let values = _mm256_loadu_si256(weights.add(g * BLOCK) as *const __m256i);
            for n in 0..TILE_INPUTS {
                let four = (x.quants.as_ptr().add(blocks[n] * BLOCK + g * GROUP) as *const i32).read_unaligned();
                let pairs = _mm256_maddubs_epi16(_mm256_set1_epi32(four), values);
                dots[n] = _mm256_add_epi32(dots[n], _mm256_madd_epi16(pairs, ones));
            }
        }
        let scales = _mm256_loadu_ps(w.scales.as_ptr().add(at));
        let totals = _mm256_loadu_ps(w.totals.as_ptr().add(at));
        for n in 0..TILE_INPUTS {
            // `d_w·d_x·Σ w·q` plus the inputs' minimum times the weights' total.
            let both = _mm256_mul_ps(scales, _mm256_set1_ps(*x.scales.get_unchecked(blocks[n])));
            acc[n] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots[n]), both, acc[n]);
            acc[n] = _mm256_fmadd_ps(totals, _mm256_set1_ps(*x.mins.get_unchecked(blocks[n])), acc[n]);
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

/// [`super::quantize_blocks`] in AVX2, value for value: a block's 32 values in four
/// registers, its maximum magnitude folded across lanes, then rounded (the processor's
/// round-to-nearest-even, as the portable code's `1.5 · 2^23` trick) and packed to bytes.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn quantize(x: &[f32], scales: &mut [f32], sums: &mut [i32], quants: &mut [i8]) {
    let blocks = scales.len();
    assert!(x.len() >= blocks * BLOCK && quants.len() >= blocks * BLOCK && sums.len() >= blocks);
    let magnitude = _mm256_set1_ps(f32::from_bits(0x7FFF_FFFF));
    let (low, high) = (_mm256_set1_ps(-127.0), _mm256_set1_ps(127.0));
    // The two packs leave the block's 4-byte groups in the order 0, 2, 4, 6, 1, 3, 5, 7
    // (each 128-bit lane packs its half of every register); this gathers them back.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for b in 0..blocks {
        let at = x.as_ptr().add(b * BLOCK);
        let v =
            [_mm256_loadu_ps(at), _mm256_loadu_ps(at.add(8)), _mm256_loadu_ps(at.add(16)), _mm256_loadu_ps(at.add(24))];
        // `max(a, m)` keeps `m` where `a` is NaN: NaNs are skipped, as in the portable code.
        let mut m = _mm256_setzero_ps();
        for v in v {
            m = _mm256_max_ps(_mm256_and_ps(v, magnitude), m);
        }
        m = _mm256_max_ps(m, _mm256_permute2f128_ps(m, m, 1));
        m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0b0100_1110));
        m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0b1011_0001));
        let d = _mm256_cvtss_f32(m) / 127.0;
        let inverse = _mm256_set1_ps(if d == 0.0 { 0.0 } else { 1.0 / d });
        let mut q = [_mm256_setzero_si256(); 4];
        let mut sum = _mm256_setzero_si256();
        for (q, v) in q.iter_mut().zip(v) {
            // `max` first: a NaN product becomes -127, as `f32::max` makes it.
            *q = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v, inverse), low), high));
            sum = _mm256_add_epi32(sum, *q);
        }
        let bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256(
            quants.as_mut_ptr().add(b * BLOCK) as *mut __m256i,
            _mm256_permutevar8x32_epi32(bytes, order),
        );
        let halves = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        let pairs = _mm_add_epi32(halves, _mm_shuffle_epi32(halves, 0b0100_1110));
        *sums.get_unchecked_mut(b) = _mm_cvtsi128_si32(_mm_add_epi32(pairs, _mm_shuffle_epi32(pairs, 0b1011_0001)));
        *scales.get_unchecked_mut(b) = d;
    }
}

/// [`super::quantize_blocks_unsigned7`] in AVX2, value for value (a minimum of zero may
/// come out as `-0.0` where the portable code keeps `0.0`, or the reverse: the same number).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn quantize_unsigned7(x: &[f32], scales: &mut [f32], mins: &mut [f32], quants: &mut [i8]) {
    let blocks = scales.len();
    assert!(x.len() >= blocks * BLOCK && quants.len() >= blocks * BLOCK && mins.len() >= blocks);
    let (zero, top) = (_mm256_setzero_ps(), _mm256_set1_ps(127.0));
    // As in `quantize`: the packs' group order, gathered back.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for b in 0..blocks {
        let at = x.as_ptr().add(b * BLOCK);
        let v =
            [_mm256_loadu_ps(at), _mm256_loadu_ps(at.add(8)), _mm256_loadu_ps(at.add(16)), _mm256_loadu_ps(at.add(24))];
        // `min(v, m)` and `max(v, m)` keep `m` where `v` is NaN: NaNs are skipped.
        let (mut low, mut high) = (_mm256_set1_ps(f32::INFINITY), _mm256_set1_ps(f32::NEG_INFINITY));
        for v in v {
            low = _mm256_min_ps(v, low);
            high = _mm256_max_ps(v, high);
        }
        low = _mm256_min_ps(low, _mm256_permute2f128_ps(low, low, 1));
        low = _mm256_min_ps(low, _mm256_shuffle_ps(low, low, 0b0100_1110));
        low = _mm256_min_ps(low, _mm256_shuffle_ps(low, low, 0b1011_0001));
        high = _mm256_max_ps(high, _mm256_permute2f128_ps(high, high, 1));
        high = _mm256_max_ps(high, _mm256_shuffle_ps(high, high, 0b0100_1110));
        high = _mm256_max_ps(high, _mm256_shuffle_ps(high, high, 0b1011_0001));
        let (mut min, mut max) = (_mm256_cvtss_f32(low), _mm256_cvtss_f32(high));
        if !(max - min).is_finite() {
            (min, max) = (0.0, 0.0);
        }
        let d = (max - min) / 127.0;
        let inverse = _mm256_set1_ps(if d == 0.0 { 0.0 } else { 1.0 / d });
        let mut q = [_mm256_setzero_si256(); 4];
        for (q, v) in q.iter_mut().zip(v) {
            // `max` first: a NaN becomes 0, as `f32::max` makes it.
            let r = _mm256_mul_ps(_mm256_sub_ps(v, _mm256_set1_ps(min)), inverse);
            *q = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, zero), top));
        }
        let bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256(
            quants.as_mut_ptr().add(b * BLOCK) as *mut __m256i,
            _mm256_permutevar8x32_epi32(bytes, order),
        );
        *scales.get_unchecked_mut(b) = d;
        *mins.get_unchecked_mut(b) = min;
    }
}
