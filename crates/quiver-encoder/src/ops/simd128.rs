//! The row kernels in wasm `simd128` intrinsics, four lanes wide: compiled for wasm, the
//! portable loops stay scalar (maxima, sums, and every exp and erf). Multiplies and adds
//! stay separate (relaxed-simd's fused form rounds differently per processor), and the exp
//! and erf polynomials run in the portable code's order, lane for lane the same values.

use std::arch::wasm32::*;

use super::BiasResidualNorm;
use crate::config::Activation;

/// Lanes per vector.
const LANES: usize = 4;

/// The first four values of `values`.
#[inline(always)]
fn load(values: &[f32]) -> v128 {
    let four = &values[..LANES];
    // SAFETY: `four` holds 16 bytes; `v128_load` reads unaligned.
    unsafe { v128_load(four.as_ptr() as *const v128) }
}

/// Writes `v` over the first four values of `values`.
#[inline(always)]
fn store(values: &mut [f32], v: v128) {
    let four = &mut values[..LANES];
    // SAFETY: as in `load`.
    unsafe { v128_store(four.as_mut_ptr() as *mut v128, v) }
}

#[inline(always)]
fn total(v: v128) -> f32 {
    (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v))
        + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v))
}

#[inline(always)]
fn top(v: v128) -> f32 {
    f32x4_extract_lane::<0>(v)
        .max(f32x4_extract_lane::<1>(v))
        .max(f32x4_extract_lane::<2>(v).max(f32x4_extract_lane::<3>(v)))
}

/// `c + r·p`, the Horner step.
#[inline(always)]
fn step(c: f32, r: v128, p: v128) -> v128 {
    f32x4_add(f32x4_splat(c), f32x4_mul(r, p))
}

/// [`super::exp`] on four lanes.
#[inline(always)]
fn exp(x: v128) -> v128 {
    let x = f32x4_min(f32x4_max(x, f32x4_splat(-87.0)), f32x4_splat(88.0));
    let n = f32x4_nearest(f32x4_mul(x, f32x4_splat(std::f32::consts::LOG2_E)));
    let r = f32x4_sub(f32x4_sub(x, f32x4_mul(n, f32x4_splat(0.693_145_75))), f32x4_mul(n, f32x4_splat(1.428_606_8e-6)));
    let mut p = f32x4_splat(1.0 / 720.0);
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = step(c, r, p);
    }
    let power = i32x4_shl(i32x4_add(i32x4_trunc_sat_f32x4(n), i32x4_splat(127)), 23);
    f32x4_mul(p, power)
}

/// [`super::erf`] on four lanes.
#[inline(always)]
fn erf(x: v128) -> v128 {
    let sign = v128_and(x, f32x4_splat(-0.0));
    let a = f32x4_abs(x);
    let t = f32x4_div(f32x4_splat(1.0), step(1.0, f32x4_splat(0.327_591_1), a));
    let mut poly = f32x4_splat(1.061_405_4);
    for c in [-1.453_152, 1.421_413_7, -0.284_496_74, 0.254_829_6] {
        poly = step(c, t, poly);
    }
    let poly = f32x4_mul(t, poly);
    let y = f32x4_sub(f32x4_splat(1.0), f32x4_mul(poly, exp(f32x4_mul(f32x4_neg(a), a))));
    // The sign of `x`, as `copysign`: `y` itself may be a rounding below zero.
    v128_or(v128_andnot(y, f32x4_splat(-0.0)), sign)
}

/// `x·Φ(x)`, the exact (erf) GELU.
#[inline(always)]
fn gelu(x: v128) -> v128 {
    let half = f32x4_mul(f32x4_splat(0.5), x);
    f32x4_mul(half, f32x4_add(f32x4_splat(1.0), erf(f32x4_mul(x, f32x4_splat(std::f32::consts::FRAC_1_SQRT_2)))))
}

/// [`super::bias_activation_rows`]; only the exact GELU has a vector form here.
pub fn bias_activation(rows: &mut [f32], bias: &[f32], act: Option<Activation>) {
    if !matches!(act, None | Some(Activation::Gelu)) {
        return super::bias_activation_rows(rows, bias, act);
    }
    let n = bias.len();
    let body = n / LANES * LANES;
    for row in rows.chunks_exact_mut(n) {
        for i in (0..body).step_by(LANES) {
            let v = f32x4_add(load(&row[i..]), load(&bias[i..]));
            store(&mut row[i..], if act.is_some() { gelu(v) } else { v });
        }
        if body < n {
            super::bias_activation_rows(&mut row[body..], &bias[body..], act);
        }
    }
}

/// [`super::residual_norm_rows`].
pub fn residual_norm(rows: &mut [f32], residual: &[f32], op: &BiasResidualNorm) {
    let n = op.bias.len();
    let body = n / LANES * LANES;
    let (bias, gamma, beta) = (&op.bias[..n], &op.gamma[..n], &op.beta[..n]);
    for (row, r) in rows.chunks_exact_mut(n).zip(residual.chunks_exact(n)) {
        let mut lanes = f32x4_splat(0.0);
        for i in (0..body).step_by(LANES) {
            let v = f32x4_add(load(&row[i..]), f32x4_add(load(&bias[i..]), load(&r[i..])));
            store(&mut row[i..], v);
            lanes = f32x4_add(lanes, v);
        }
        let mut sum = total(lanes);
        for i in body..n {
            row[i] += bias[i] + r[i];
            sum += row[i];
        }
        let mean = sum / n as f32;
        let mut lanes = f32x4_splat(0.0);
        for i in (0..body).step_by(LANES) {
            let v = f32x4_sub(load(&row[i..]), f32x4_splat(mean));
            store(&mut row[i..], v);
            lanes = f32x4_add(lanes, f32x4_mul(v, v));
        }
        let mut squares = total(lanes);
        for v in &mut row[body..] {
            *v -= mean;
            squares += *v * *v;
        }
        let inv = 1.0 / (squares / n as f32 + op.eps).sqrt();
        for i in (0..body).step_by(LANES) {
            let scaled = f32x4_mul(f32x4_mul(load(&row[i..]), f32x4_splat(inv)), load(&gamma[i..]));
            store(&mut row[i..], f32x4_add(scaled, load(&beta[i..])));
        }
        for i in body..n {
            row[i] = row[i] * inv * gamma[i] + beta[i];
        }
    }
}

/// [`super::masked_softmax_rows`].
pub fn masked_softmax(sequence: &mut [f32], seq: usize, len: usize, scale: f32) {
    let body = len / LANES * LANES;
    for row in sequence.chunks_exact_mut(seq) {
        let (valid, padded) = row.split_at_mut(len);
        let mut lanes = f32x4_splat(f32::NEG_INFINITY);
        for i in (0..body).step_by(LANES) {
            lanes = f32x4_max(lanes, load(&valid[i..]));
        }
        let mut max = top(lanes);
        for &v in &valid[body..] {
            max = if v > max { v } else { max };
        }
        let mut lanes = f32x4_splat(0.0);
        for i in (0..body).step_by(LANES) {
            let e = exp(f32x4_mul(f32x4_sub(load(&valid[i..]), f32x4_splat(max)), f32x4_splat(scale)));
            store(&mut valid[i..], e);
            lanes = f32x4_add(lanes, e);
        }
        let mut sum = total(lanes);
        for v in &mut valid[body..] {
            *v = super::exp((*v - max) * scale);
            sum += *v;
        }
        let inv = 1.0 / sum;
        for i in (0..body).step_by(LANES) {
            let v = f32x4_mul(load(&valid[i..]), f32x4_splat(inv));
            store(&mut valid[i..], v);
        }
        for v in &mut valid[body..] {
            *v *= inv;
        }
        padded.fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lane for lane the portable code's operations, so the same values.
    #[test]
    fn exp_and_erf_equal_the_portable_code() {
        let x: Vec<f32> =
            (-1000..=799).map(|i| i as f32 * 0.11).chain([f32::INFINITY, -f32::INFINITY, 0.0, -0.0]).collect();
        for (name, vector, scalar) in
            [("exp", exp as fn(v128) -> v128, super::super::exp as fn(f32) -> f32), ("erf", erf, super::super::erf)]
        {
            for chunk in x.chunks_exact(LANES) {
                let mut got = [0f32; LANES];
                store(&mut got, vector(load(chunk)));
                for (g, &v) in got.iter().zip(chunk) {
                    assert_eq!(g.to_bits(), scalar(v).to_bits(), "{name}({v}) = {g} != {}", scalar(v));
                }
            }
        }
    }

    #[test]
    fn row_ops_match_the_portable_code() {
        super::super::tests::row_ops_match(bias_activation, residual_norm, masked_softmax);
    }
}
