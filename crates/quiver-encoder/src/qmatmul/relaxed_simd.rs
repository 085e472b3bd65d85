//! wasm relaxed-simd kernels (Chrome, Firefox and Edge; not Safari): one
//! `i32x4.relaxed_dot_i8x16_i7x16_add_s` multiplies 16 weight bytes by 16 input bytes and
//! adds them, four to a lane, where simd128 widens both to 16 bits first. Engines lower it
//! to `pmaddubsw` + `pmaddwd` or one `vpdpbusd` on x86 (the 7-bit operand read as
//! unsigned) and to `sdot` on Arm (read as signed): the inputs are therefore quantized
//! into `0..=127` ([`Activations::Unsigned7`]), where both readings agree, and every
//! processor gives the same sums.

use std::arch::wasm32::*;

use super::{check_sizes, Activations, BlockType, Kernels, QuantizedRows, WeightRows, BLOCK};

pub struct RelaxedSimd;

impl Kernels for RelaxedSimd {
    fn name(&self) -> &'static str {
        "relaxed-simd"
    }

    fn activations(&self) -> Activations {
        Activations::Unsigned7
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

/// Weight rows in a tile: their block dots fold into the four lanes of one vector.
const TILE_ROWS: usize = 4;
/// Input rows in a tile: each weight tile's scales and totals serve this many.
const TILE_INPUTS: usize = 4;

unsafe fn matmul<const Q4: bool>(w: &WeightRows, x: &QuantizedRows, out: &mut [f32], stride: usize) {
    for j in (0..w.rows()).step_by(TILE_ROWS) {
        let mut i = 0;
        while i + TILE_INPUTS <= x.rows() {
            tile::<Q4, TILE_INPUTS>(w, x, out, stride, j, i);
            i += TILE_INPUTS;
        }
        for i in i..x.rows() {
            tile::<Q4, 1>(w, x, out, stride, j, i);
        }
    }
}

/// Weight rows `j..j + 4` times input rows `i..i + N`; past the last weight row the tile
/// repeats it and drops those results.
///
/// Per block and input row, the four weight rows' integer dots fold into one vector (lane
/// `m` for row `j + m`), which takes one conversion, one multiply by the four rows' scales
/// times the input's, and one multiply-add of the rows' totals by the input's minimum.
#[inline(always)]
unsafe fn tile<const Q4: bool, const N: usize>(
    w: &WeightRows,
    x: &QuantizedRows,
    out: &mut [f32],
    stride: usize,
    j: usize,
    i: usize,
) {
    let valid = (w.rows() - j).min(TILE_ROWS);
    let row = |m: usize| (j + m.min(valid - 1)) * w.blocks;
    let rows = [row(0), row(1), row(2), row(3)];
    let mut acc = [f32x4_splat(0.0); N];
    for b in 0..w.blocks {
        let lanes = |v: &[f32]| {
            f32x4(
                *v.get_unchecked(rows[0] + b),
                *v.get_unchecked(rows[1] + b),
                *v.get_unchecked(rows[2] + b),
                *v.get_unchecked(rows[3] + b),
            )
        };
        let (scales, totals) = (lanes(w.scales), lanes(w.totals));
        for (n, acc) in acc.iter_mut().enumerate() {
            let block = (i + n) * x.blocks + b;
            let quants = x.quants.as_ptr().add(block * BLOCK) as *const v128;
            let (x0, x1) = (v128_load(quants), v128_load(quants.add(1)));
            let mut dots = [i32x4_splat(0); TILE_ROWS];
            for (dot, &at) in dots.iter_mut().zip(&rows) {
                let [low, high] = weight_block::<Q4>(w.quants.as_ptr().add((at + b) * w.step));
                *dot = i32x4_relaxed_dot_i8x16_i7x16_add(
                    high,
                    x1,
                    i32x4_relaxed_dot_i8x16_i7x16_add(low, x0, i32x4_splat(0)),
                );
            }
            let scaled = f32x4_mul(
                f32x4_convert_i32x4(fold(dots)),
                f32x4_mul(scales, f32x4_splat(*x.scales.get_unchecked(block))),
            );
            *acc = f32x4_add(*acc, f32x4_add(scaled, f32x4_mul(totals, f32x4_splat(*x.mins.get_unchecked(block)))));
        }
    }
    for (n, acc) in acc.iter().enumerate() {
        let at = (i + n) * stride + j;
        if valid == TILE_ROWS {
            v128_store(out.as_mut_ptr().add(at) as *mut v128, *acc);
        } else {
            let mut sums = [0f32; TILE_ROWS];
            v128_store(sums.as_mut_ptr() as *mut v128, *acc);
            out.get_unchecked_mut(at..at + valid).copy_from_slice(&sums[..valid]);
        }
    }
}

/// `[Σ d0, Σ d1, Σ d2, Σ d3]`, each the sum of one vector's lanes, by interleaving (the
/// shuffles engines lower to single unpack instructions).
#[inline(always)]
fn fold([d0, d1, d2, d3]: [v128; 4]) -> v128 {
    // [d0₀ + d0₂, d1₀ + d1₂, d0₁ + d0₃, d1₁ + d1₃], and the same for d2, d3.
    let a = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(d0, d1), i32x4_shuffle::<2, 6, 3, 7>(d0, d1));
    let b = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(d2, d3), i32x4_shuffle::<2, 6, 3, 7>(d2, d3));
    i32x4_add(i64x2_shuffle::<0, 2>(a, b), i64x2_shuffle::<1, 3>(a, b))
}

/// A weight block's 32 values as signed bytes: values 0..16, then 16..32.
#[inline(always)]
unsafe fn weight_block<const Q4: bool>(quants: *const u8) -> [v128; 2] {
    if Q4 {
        // Low nibbles are values 0..16, high nibbles 16..32.
        let packed = v128_load(quants as *const v128);
        let eight = i8x16_splat(8);
        [i8x16_sub(v128_and(packed, u8x16_splat(0x0F)), eight), i8x16_sub(u8x16_shr(packed, 4), eight)]
    } else {
        let q = quants as *const v128;
        [v128_load(q), v128_load(q.add(1))]
    }
}
