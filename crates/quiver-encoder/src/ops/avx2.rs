//! The row kernels in AVX2 + FMA intrinsics. Compiled for AVX2, the portable loops still
//! leave the maxima and sums of a row scalar and split every multiply-add in two; here both
//! run eight lanes wide, and the softmax sums its exponentials as it writes them.

use std::arch::x86_64::*;

use super::BiasResidualNorm;
use crate::config::Activation;

/// Lanes per vector.
const LANES: usize = 8;

#[inline(always)]
unsafe fn splat(v: f32) -> __m256 {
    _mm256_set1_ps(v)
}

#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn load(values: &[f32], i: usize) -> __m256 {
    debug_assert!(i + LANES <= values.len());
    _mm256_loadu_ps(values.as_ptr().add(i))
}

#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn store(values: &mut [f32], i: usize, v: __m256) {
    debug_assert!(i + LANES <= values.len());
    _mm256_storeu_ps(values.as_mut_ptr().add(i), v)
}

#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn total(v: __m256) -> f32 {
    let half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
    _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
}

#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn top(v: __m256) -> f32 {
    let half = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let pair = _mm_max_ps(half, _mm_movehl_ps(half, half));
    _mm_cvtss_f32(_mm_max_ss(pair, _mm_movehdup_ps(pair)))
}

/// [`super::exp`] on eight lanes, its polynomial in fused multiply-adds.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn exp(x: __m256) -> __m256 {
    let x = _mm256_min_ps(_mm256_max_ps(x, splat(-87.0)), splat(88.0));
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        splat(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, splat(1.428_606_8e-6), _mm256_fnmadd_ps(n, splat(0.693_145_75), x));
    let mut p = splat(1.0 / 720.0);
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = _mm256_fmadd_ps(p, r, splat(c));
    }
    let power = _mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)));
    _mm256_mul_ps(p, _mm256_castsi256_ps(power))
}

/// [`super::erf`] on eight lanes.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn erf(x: __m256) -> __m256 {
    let sign = _mm256_and_ps(x, splat(-0.0));
    let a = _mm256_andnot_ps(splat(-0.0), x);
    let t = _mm256_div_ps(splat(1.0), _mm256_fmadd_ps(splat(0.327_591_1), a, splat(1.0)));
    let mut poly = splat(1.061_405_4);
    for c in [-1.453_152, 1.421_413_7, -0.284_496_74, 0.254_829_6] {
        poly = _mm256_fmadd_ps(poly, t, splat(c));
    }
    poly = _mm256_mul_ps(poly, t);
    let y = _mm256_fnmadd_ps(poly, exp(_mm256_mul_ps(_mm256_xor_ps(a, splat(-0.0)), a)), splat(1.0));
    // The sign of `x`, as `copysign`: `y` itself may be a rounding below zero.
    _mm256_or_ps(_mm256_andnot_ps(splat(-0.0), y), sign)
}

/// `x·Φ(x)`, the exact (erf) GELU.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn gelu(x: __m256) -> __m256 {
    let half = _mm256_mul_ps(splat(0.5), x);
    _mm256_fmadd_ps(half, erf(_mm256_mul_ps(x, splat(std::f32::consts::FRAC_1_SQRT_2))), half)
}

/// [`super::bias_activation_rows`]; only the exact GELU has a vector form here.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn bias_activation(rows: &mut [f32], bias: &[f32], act: Option<Activation>) {
    if !matches!(act, None | Some(Activation::Gelu)) {
        return super::bias_activation_rows(rows, bias, act);
    }
    let n = bias.len();
    let body = n / LANES * LANES;
    for row in rows.chunks_exact_mut(n) {
        for i in (0..body).step_by(LANES) {
            let v = _mm256_add_ps(load(row, i), load(bias, i));
            store(row, i, if act.is_some() { gelu(v) } else { v });
        }
        if body < n {
            super::bias_activation_rows(&mut row[body..], &bias[body..], act);
        }
    }
}

/// [`super::residual_norm_rows`].
#[target_feature(enable = "avx2,fma")]
pub unsafe fn residual_norm(rows: &mut [f32], residual: &[f32], op: &BiasResidualNorm) {
    let n = op.bias.len();
    let body = n / LANES * LANES;
    let (bias, gamma, beta) = (&op.bias[..n], &op.gamma[..n], &op.beta[..n]);
    for (row, r) in rows.chunks_exact_mut(n).zip(residual.chunks_exact(n)) {
        let mut lanes = _mm256_setzero_ps();
        for i in (0..body).step_by(LANES) {
            let v = _mm256_add_ps(load(row, i), _mm256_add_ps(load(bias, i), load(r, i)));
            store(row, i, v);
            lanes = _mm256_add_ps(lanes, v);
        }
        let mut sum = total(lanes);
        for i in body..n {
            row[i] += bias[i] + r[i];
            sum += row[i];
        }
        let mean = sum / n as f32;
        let mut lanes = _mm256_setzero_ps();
        for i in (0..body).step_by(LANES) {
            let v = _mm256_sub_ps(load(row, i), splat(mean));
            store(row, i, v);
            lanes = _mm256_fmadd_ps(v, v, lanes);
        }
        let mut squares = total(lanes);
        for v in &mut row[body..] {
            *v -= mean;
            squares += *v * *v;
        }
        let inv = 1.0 / (squares / n as f32 + op.eps).sqrt();
        for i in (0..body).step_by(LANES) {
            let scaled = _mm256_mul_ps(load(row, i), splat(inv));
            store(row, i, _mm256_fmadd_ps(scaled, load(gamma, i), load(beta, i)));
        }
        for i in body..n {
            row[i] = row[i] * inv * gamma[i] + beta[i];
        }
    }
}

/// [`super::masked_softmax_rows`].
#[target_feature(enable = "avx2,fma")]
pub unsafe fn masked_softmax(sequence: &mut [f32], seq: usize, len: usize, scale: f32) {
    let body = len / LANES * LANES;
    for row in sequence.chunks_exact_mut(seq) {
        let (valid, padded) = row.split_at_mut(len);
        let mut lanes = splat(f32::NEG_INFINITY);
        for i in (0..body).step_by(LANES) {
            lanes = _mm256_max_ps(lanes, load(valid, i));
        }
        let mut max = top(lanes);
        for &v in &valid[body..] {
            max = if v > max { v } else { max };
        }
        // exp((v − max)·scale) as one multiply-add: v·scale − max·scale.
        let shift = -max * scale;
        let mut lanes = _mm256_setzero_ps();
        for i in (0..body).step_by(LANES) {
            let e = exp(_mm256_fmadd_ps(load(valid, i), splat(scale), splat(shift)));
            store(valid, i, e);
            lanes = _mm256_add_ps(lanes, e);
        }
        let mut sum = total(lanes);
        for v in &mut valid[body..] {
            *v = super::exp(v.mul_add(scale, shift));
            sum += *v;
        }
        let inv = 1.0 / sum;
        for i in (0..body).step_by(LANES) {
            store(valid, i, _mm256_mul_ps(load(valid, i), splat(inv)));
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

    #[test]
    fn exp_and_erf_match_the_portable_code() {
        if !super::super::has_avx2() {
            return;
        }
        let x: Vec<f32> = (-1000..=800).map(|i| i as f32 * 0.11).chain([f32::INFINITY, -f32::INFINITY]).collect();
        // exp to its relative error; erf, which cancels near 0, to its absolute one.
        for (name, vector, scalar, floor) in [
            ("exp", exp as unsafe fn(__m256) -> __m256, super::super::exp as fn(f32) -> f32, 1e-37),
            ("erf", erf, super::super::erf, 1e-7),
        ] {
            for chunk in x.chunks_exact(LANES) {
                let mut got = [0f32; LANES];
                // SAFETY: the processor has AVX2 and FMA.
                unsafe { _mm256_storeu_ps(got.as_mut_ptr(), vector(_mm256_loadu_ps(chunk.as_ptr()))) };
                for (g, &v) in got.iter().zip(chunk) {
                    let want = scalar(v);
                    assert!((g - want).abs() <= 4e-7 * want.abs() + floor, "{name}({v}) = {g} != {want}");
                }
            }
        }
    }

    #[test]
    fn row_ops_match_the_portable_code() {
        if !super::super::has_avx2() {
            return;
        }
        // SAFETY (each call): the processor has AVX2 and FMA.
        super::super::tests::row_ops_match(
            |rows, bias, act| unsafe { bias_activation(rows, bias, act) },
            |rows, residual, op| unsafe { residual_norm(rows, residual, op) },
            |sequence, seq, len, scale| unsafe { masked_softmax(sequence, seq, len, scale) },
        );
    }
}
