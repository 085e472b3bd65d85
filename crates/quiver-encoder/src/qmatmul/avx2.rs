//! AVX2 + FMA kernels (never AVX-512, so native figures stand for what users' laptops run).

use std::arch::x86_64::*;

use super::{check_sizes, BlockType, Kernels, QuantizedRows, WeightRows, BLOCK};

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

    fn matmul(&self, w: &WeightRows, x: &QuantizedRows, out: &mut [f32], stride: usize) {
        check_sizes(self, w, x, out, stride);
        // SAFETY: `Avx2` is only handed out after `detect()`; the sizes are checked above.
        unsafe {
            match w.block_type {
                BlockType::Q8_0 => matmul::<false>(w, x, out, stride),
                BlockType::Q4_0 => matmul::<true>(w, x, out, stride),
            }
        }
    }
}

/// Weight rows in a tile: each input block loaded serves this many dot products.
const TILE_ROWS: usize = 4;
/// Input rows in a tile: each weight block loaded serves this many, and their four block
/// dots share one conversion and one multiply-add (see [`tile`]).
const TILE_INPUTS: usize = 4;

#[target_feature(enable = "avx2,fma")]
unsafe fn matmul<const Q4: bool>(w: &WeightRows, x: &QuantizedRows, out: &mut [f32], stride: usize) {
    let mut j = 0;
    while j + TILE_ROWS <= w.rows() {
        tile_column::<Q4, TILE_ROWS>(w, x, out, stride, j);
        j += TILE_ROWS;
    }
    for j in j..w.rows() {
        tile_column::<Q4, 1>(w, x, out, stride, j);
    }
}

/// Weight rows `j..j + M` against every input row.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_column<const Q4: bool, const M: usize>(
    w: &WeightRows,
    x: &QuantizedRows,
    out: &mut [f32],
    stride: usize,
    j: usize,
) {
    for i in (0..x.rows()).step_by(TILE_INPUTS) {
        tile::<Q4, M>(w, x, out, stride, j, i);
    }
}

/// Weight rows `j..j + M` times input rows `i..i + 4`; past the last input row the tile
/// repeats it and drops those results.
///
/// Per block, the four inputs' 8-lane integer dots of one weight row fold by two
/// horizontal adds into one vector (lanes `n` and `n + 4` hold input `n`'s halves), which
/// takes one conversion and one multiply-add with the scales `d_w · d_x[n]`.
#[target_feature(enable = "avx2,fma")]
#[inline]
// Indexed loops over the tile: `m` picks the weight row and the accumulator together.
#[allow(clippy::needless_range_loop)]
unsafe fn tile<const Q4: bool, const M: usize>(
    w: &WeightRows,
    x: &QuantizedRows,
    out: &mut [f32],
    stride: usize,
    j: usize,
    i: usize,
) {
    let valid = (x.rows() - i).min(TILE_INPUTS);
    let mut blocks = [0; TILE_INPUTS];
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); M];
    for b in 0..w.blocks {
        // Plain loops, not array adapters: closures would not be compiled for AVX2.
        let mut inputs = [_mm256_setzero_si256(); TILE_INPUTS];
        for n in 0..TILE_INPUTS {
            blocks[n] = (i + n.min(valid - 1)) * x.blocks + b;
            inputs[n] = _mm256_loadu_si256(x.quants.as_ptr().add(blocks[n] * BLOCK) as *const __m256i);
        }
        let scale = |n: usize| *x.scales.get_unchecked(blocks[n]);
        let (s0, s1, s2, s3) = (scale(0), scale(1), scale(2), scale(3));
        let input_scales = _mm256_setr_ps(s0, s1, s2, s3, s0, s1, s2, s3);
        for m in 0..M {
            let block = (j + m) * w.blocks + b;
            let values = weight_block::<Q4>(w.quants.as_ptr().add(block * w.step));
            let magnitudes = _mm256_sign_epi8(values, values);
            let mut dots = [_mm256_setzero_si256(); TILE_INPUTS];
            for n in 0..TILE_INPUTS {
                // maddubs multiplies unsigned by signed bytes: |w| by x carrying w's sign.
                dots[n] =
                    _mm256_madd_epi16(_mm256_maddubs_epi16(magnitudes, _mm256_sign_epi8(inputs[n], values)), ones);
            }
            let folded = _mm256_hadd_epi32(_mm256_hadd_epi32(dots[0], dots[1]), _mm256_hadd_epi32(dots[2], dots[3]));
            let scales = _mm256_mul_ps(_mm256_set1_ps(*w.scales.get_unchecked(block)), input_scales);
            acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(folded), scales, acc[m]);
        }
    }
    for (m, acc) in acc.iter().enumerate() {
        let mut sums = [0f32; TILE_INPUTS];
        _mm_storeu_ps(sums.as_mut_ptr(), _mm_add_ps(_mm256_castps256_ps128(*acc), _mm256_extractf128_ps(*acc, 1)));
        for (n, sum) in sums.iter().enumerate().take(valid) {
            *out.get_unchecked_mut((i + n) * stride + j + m) = *sum;
        }
    }
}

/// A weight block's 32 values as signed bytes.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn weight_block<const Q4: bool>(quants: *const u8) -> __m256i {
    if Q4 {
        // Low nibbles are values 0..16, high nibbles 16..32: one 128-bit half each.
        let packed = _mm_loadu_si128(quants as *const __m128i);
        let nibbles = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), _mm256_set1_epi8(0x0F));
        _mm256_sub_epi8(nibbles, _mm256_set1_epi8(8))
    } else {
        _mm256_loadu_si256(quants as *const __m256i)
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
