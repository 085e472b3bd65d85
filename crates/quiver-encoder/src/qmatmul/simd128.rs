//! wasm `simd128` kernels: what every browser runs. wasm has no byte-pair multiply, so
//! bytes widen to 16 bits and `i32x4.dot_i16x8_s` sums pairs of products.

use std::arch::wasm32::*;

use super::{check_sizes, BlockType, Kernels, QuantizedRows, WeightRows, BLOCK};

pub struct Simd128;

impl Kernels for Simd128 {
    fn name(&self) -> &'static str {
        "simd128"
    }

    fn matmul(&self, w: &WeightRows, x: &QuantizedRows, out: &mut [f32], stride: usize) {
        check_sizes(self, w, x, out, stride);
        // SAFETY: the sizes the unchecked loads rely on are checked above.
        unsafe {
            match w.block_type {
                BlockType::Q8_0 => matmul::<false>(w, x, out, stride),
                BlockType::Q4_0 => matmul::<true>(w, x, out, stride),
            }
        }
    }
}

/// Weight rows in a tile: each input block widened serves this many dot products.
const TILE_ROWS: usize = 4;
/// Input rows in a tile: each weight block widened serves this many.
const TILE_INPUTS: usize = 2;

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
#[inline]
unsafe fn tile_column<const Q4: bool, const M: usize>(
    w: &WeightRows,
    x: &QuantizedRows,
    out: &mut [f32],
    stride: usize,
    j: usize,
) {
    let mut i = 0;
    while i + TILE_INPUTS <= x.rows() {
        tile::<Q4, M, TILE_INPUTS>(w, x, out, stride, j, i);
        i += TILE_INPUTS;
    }
    for i in i..x.rows() {
        tile::<Q4, M, 1>(w, x, out, stride, j, i);
    }
}

/// Weight rows `j..j + M` times input rows `i..i + N`, accumulated in four f32 lanes each.
#[inline(always)]
unsafe fn tile<const Q4: bool, const M: usize, const N: usize>(
    w: &WeightRows,
    x: &QuantizedRows,
    out: &mut [f32],
    stride: usize,
    j: usize,
    i: usize,
) {
    let mut acc = [[f32x4_splat(0.0); N]; M];
    for b in 0..w.blocks {
        let mut inputs = [[i16x8_splat(0); 4]; N];
        let mut input_scales = [0f32; N];
        for n in 0..N {
            let block = (i + n) * x.blocks + b;
            let quants = x.quants.as_ptr().add(block * BLOCK);
            for (k, input) in inputs[n].iter_mut().enumerate() {
                *input = i16x8_load_extend_i8x8(quants.add(8 * k) as *const i8);
            }
            input_scales[n] = *x.scales.get_unchecked(block);
        }
        for m in 0..M {
            let block = (j + m) * w.blocks + b;
            let values = weight_block::<Q4>(w.quants.as_ptr().add(block * w.step));
            let scale = *w.scales.get_unchecked(block);
            for n in 0..N {
                let [x0, x1, x2, x3] = inputs[n];
                let dots = i32x4_add(
                    i32x4_add(i32x4_dot_i16x8(values[0], x0), i32x4_dot_i16x8(values[1], x1)),
                    i32x4_add(i32x4_dot_i16x8(values[2], x2), i32x4_dot_i16x8(values[3], x3)),
                );
                let scales = f32x4_splat(scale * input_scales[n]);
                acc[m][n] = f32x4_add(acc[m][n], f32x4_mul(f32x4_convert_i32x4(dots), scales));
            }
        }
    }
    for m in 0..M {
        for n in 0..N {
            let a = acc[m][n];
            let sum = (f32x4_extract_lane::<0>(a) + f32x4_extract_lane::<1>(a))
                + (f32x4_extract_lane::<2>(a) + f32x4_extract_lane::<3>(a));
            *out.get_unchecked_mut((i + n) * stride + j + m) = sum;
        }
    }
}

/// A weight block's 32 values widened to 16 bits, eight at a time.
#[inline(always)]
unsafe fn weight_block<const Q4: bool>(quants: *const u8) -> [v128; 4] {
    if Q4 {
        // Low nibbles are values 0..16, high nibbles 16..32.
        let packed = v128_load(quants as *const v128);
        let eight = i8x16_splat(8);
        let low = i8x16_sub(v128_and(packed, u8x16_splat(0x0F)), eight);
        let high = i8x16_sub(u8x16_shr(packed, 4), eight);
        [
            i16x8_extend_low_i8x16(low),
            i16x8_extend_high_i8x16(low),
            i16x8_extend_low_i8x16(high),
            i16x8_extend_high_i8x16(high),
        ]
    } else {
        let q = quants as *const i8;
        [
            i16x8_load_extend_i8x8(q),
            i16x8_load_extend_i8x8(q.add(8)),
            i16x8_load_extend_i8x8(q.add(16)),
            i16x8_load_extend_i8x8(q.add(24)),
        ]
    }
}
