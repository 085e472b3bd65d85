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

/// The smallest of four lanes (none NaN).
#[inline(always)]
fn smallest(v: v128) -> f32 {
    let v = f32x4_pmin(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
    f32x4_extract_lane::<0>(f32x4_pmin(v, i32x4_shuffle::<1, 0, 3, 2>(v, v)))
}

/// The largest of four lanes (none NaN).
#[inline(always)]
fn largest(v: v128) -> f32 {
    let v = f32x4_pmax(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
    f32x4_extract_lane::<0>(f32x4_pmax(v, i32x4_shuffle::<1, 0, 3, 2>(v, v)))
}

/// `v` with its NaN lanes replaced by `with`'s. The compiler may turn `pmin` and `pmax`
/// into relaxed-simd's min and max, whose NaN results differ from engine to engine: NaNs
/// are replaced first, so every engine gives the portable code's values.
#[inline(always)]
fn unless_nan(v: v128, with: v128) -> v128 {
    v128_bitselect(v, with, f32x4_eq(v, v))
}

/// Eight lanes of integers in `-127..=127`, rounded to even as the portable code rounds,
/// narrowed to bytes: `-127..=127` saturates nowhere.
#[inline(always)]
fn narrow(r: [v128; 8]) -> [v128; 2] {
    let q = r.map(|r| i32x4_trunc_sat_f32x4(f32x4_nearest(r)));
    [
        i8x16_narrow_i16x8(i16x8_narrow_i32x4(q[0], q[1]), i16x8_narrow_i32x4(q[2], q[3])),
        i8x16_narrow_i16x8(i16x8_narrow_i32x4(q[4], q[5]), i16x8_narrow_i32x4(q[6], q[7])),
    ]
}

/// [`super::quantize_blocks`] in simd128, value for value: the portable loops compile to
/// scalar code for wasm, a seventh of a short query's time.
pub(super) fn quantize(x: &[f32], scales: &mut [f32], sums: &mut [i32], quants: &mut [i8]) {
    let blocks = scales.len();
    assert!(x.len() >= blocks * BLOCK && quants.len() >= blocks * BLOCK && sums.len() >= blocks);
    // SAFETY: every load and store is inside the lengths checked above.
    unsafe {
        let (zero, low, high) = (f32x4_splat(0.0), f32x4_splat(-127.0), f32x4_splat(127.0));
        for b in 0..blocks {
            let at = x.as_ptr().add(b * BLOCK);
            let v: [v128; 8] = std::array::from_fn(|i| v128_load(at.add(4 * i) as *const v128));
            // NaNs are skipped, as in the portable code.
            let amax = largest(v.iter().fold(zero, |m, &v| f32x4_pmax(m, unless_nan(f32x4_abs(v), zero))));
            let d = amax / 127.0;
            let inverse = f32x4_splat(if d == 0.0 { 0.0 } else { 1.0 / d });
            // A NaN becomes -127, as `f32::max` makes it.
            let q = narrow(v.map(|v| f32x4_pmin(high, f32x4_pmax(low, unless_nan(f32x4_mul(v, inverse), low)))));
            let out = quants.as_mut_ptr().add(b * BLOCK) as *mut v128;
            v128_store(out, q[0]);
            v128_store(out.add(1), q[1]);
            let wide = |q: v128| i32x4_extadd_pairwise_i16x8(i16x8_extadd_pairwise_i8x16(q));
            let sum = i32x4_add(wide(q[0]), wide(q[1]));
            *sums.get_unchecked_mut(b) = i32x4_extract_lane::<0>(sum)
                + i32x4_extract_lane::<1>(sum)
                + i32x4_extract_lane::<2>(sum)
                + i32x4_extract_lane::<3>(sum);
            *scales.get_unchecked_mut(b) = d;
        }
    }
}

/// [`super::quantize_blocks_unsigned7`] in simd128, value for value (a minimum of zero may
/// come out as `-0.0` where the portable code keeps `0.0`, or the reverse: the same number).
pub(super) fn quantize_unsigned7(x: &[f32], scales: &mut [f32], mins: &mut [f32], quants: &mut [i8]) {
    let blocks = scales.len();
    assert!(x.len() >= blocks * BLOCK && quants.len() >= blocks * BLOCK && mins.len() >= blocks);
    // SAFETY: every load and store is inside the lengths checked above.
    unsafe {
        let (zero, top) = (f32x4_splat(0.0), f32x4_splat(127.0));
        for b in 0..blocks {
            let at = x.as_ptr().add(b * BLOCK);
            let v: [v128; 8] = std::array::from_fn(|i| v128_load(at.add(4 * i) as *const v128));
            // NaNs are skipped, as in the portable code.
            let (up, down) = (f32x4_splat(f32::INFINITY), f32x4_splat(f32::NEG_INFINITY));
            let low = v.iter().fold(up, |m, &v| f32x4_pmin(m, unless_nan(v, up)));
            let high = v.iter().fold(down, |m, &v| f32x4_pmax(m, unless_nan(v, down)));
            let (mut min, mut max) = (smallest(low), largest(high));
            if !(max - min).is_finite() {
                (min, max) = (0.0, 0.0);
            }
            let d = (max - min) / 127.0;
            let inverse = f32x4_splat(if d == 0.0 { 0.0 } else { 1.0 / d });
            let least = f32x4_splat(min);
            // A NaN becomes 0, as `f32::max` makes it.
            let scaled = |v| unless_nan(f32x4_mul(f32x4_sub(v, least), inverse), zero);
            let q = narrow(v.map(|v| f32x4_pmin(top, f32x4_pmax(zero, scaled(v)))));
            let out = quants.as_mut_ptr().add(b * BLOCK) as *mut v128;
            v128_store(out, q[0]);
            v128_store(out.add(1), q[1]);
            *scales.get_unchecked_mut(b) = d;
            *mins.get_unchecked_mut(b) = min;
        }
    }
}
