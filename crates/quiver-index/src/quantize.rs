//! Scalar (int8) and binary quantization of vectors.

use serde::{Deserialize, Serialize};

/// L2-normalises `v` in place; a zero vector stays zero.
pub fn l2_normalize(v: &mut [f32]) {
    let mut norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    // Squares overflow above ~1e19 and vanish below ~1e-19: there, divide by the largest
    // magnitude first (elsewhere not, which keeps every other vector's bits as they were).
    if !norm.is_finite() || norm < 1e-18 {
        let largest = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        if largest > 0.0 && largest.is_finite() {
            v.iter_mut().for_each(|x| *x /= largest);
            norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        }
    }
    if norm > 0.0 && norm.is_finite() {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Symmetric per-vector int8 quantization: `v[i] ≈ out[i] * scale`. Returns `scale`.
pub fn quantize_i8(v: &[f32], out: &mut [i8]) -> f32 {
    let max_abs = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max_abs == 0.0 {
        out.fill(0);
        return 0.0;
    }
    let scale = max_abs / 127.0;
    for (o, x) in out.iter_mut().zip(v) {
        *o = (x / scale).round().clamp(-127.0, 127.0) as i8;
    }
    scale
}

/// How the per-dimension bit threshold of binary quantization is learned from the corpus.
///
/// Plain sign bits (`Zero`) keep little of the ranking for models whose vectors sit on the
/// same side of zero in most dimensions (e5); centring each dimension fixes that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdKind {
    #[default]
    Mean,
    Median,
    Zero,
}

impl std::str::FromStr for ThresholdKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mean" => Ok(Self::Mean),
            "median" => Ok(Self::Median),
            "zero" | "sign" => Ok(Self::Zero),
            other => Err(format!("unknown threshold {other:?} (mean, median, zero)")),
        }
    }
}

/// Learns one threshold per dimension from `rows` (`dim` values each).
pub fn learn_thresholds(kind: ThresholdKind, rows: &[f32], dim: usize) -> Vec<f32> {
    let n = rows.len() / dim.max(1);
    if n == 0 || kind == ThresholdKind::Zero {
        return vec![0.0; dim];
    }
    match kind {
        ThresholdKind::Zero => unreachable!(),
        ThresholdKind::Mean => {
            let mut sum = vec![0f64; dim];
            for row in rows.chunks_exact(dim) {
                sum.iter_mut().zip(row).for_each(|(s, &x)| *s += x as f64);
            }
            sum.into_iter().map(|s| (s / n as f64) as f32).collect()
        }
        ThresholdKind::Median => {
            let mut column = Vec::with_capacity(n);
            (0..dim)
                .map(|d| {
                    column.clear();
                    column.extend(rows.chunks_exact(dim).map(|row| row[d]));
                    let mid = n / 2;
                    let (_, m, _) = column.select_nth_unstable_by(mid, f32::total_cmp);
                    *m
                })
                .collect()
        }
    }
}

/// Number of `u64` words that hold one binary code of `dim` bits.
pub fn words_per_code(dim: usize) -> usize {
    dim.div_ceil(64)
}

/// A binary search's score for the Hamming distance between two codes of `dim` bits:
/// 1 − 2·d/dim, on a cosine's scale (1 for equal codes, −1 for opposite ones).
pub fn hamming_score(distance: u32, dim: usize) -> f32 {
    1.0 - 2.0 * distance as f32 / dim as f32
}

/// Sets bit `i` of `out` when `v[i] > thresholds[i]`.
pub fn binarize(v: &[f32], thresholds: &[f32], out: &mut [u64]) {
    out.fill(0);
    for (i, (x, t)) in v.iter().zip(thresholds).enumerate() {
        if x > t {
            out[i / 64] |= 1 << (i % 64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Huge and tiny finite vectors normalise like ordinary ones; zero stays zero.
    #[test]
    fn normalization_neither_overflows_nor_vanishes() {
        for scale in [1.0, 1e20, 1e30, 1e-20, 1e-38] {
            let mut v = [3.0 * scale, 0.0, -4.0 * scale];
            l2_normalize(&mut v);
            let want = [0.6, 0.0, -0.8];
            assert!(v.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "×{scale}: {v:?}");
        }
        let mut zero = [0.0f32; 3];
        l2_normalize(&mut zero);
        assert_eq!(zero, [0.0; 3]);
    }

    #[test]
    fn int8_round_trip_is_close() {
        let v = [0.5, -0.25, 0.125, 0.0, -0.5];
        let mut q = [0i8; 5];
        let s = quantize_i8(&v, &mut q);
        assert_eq!(q[0], 127);
        assert_eq!(q[4], -127);
        for (x, c) in v.iter().zip(q) {
            assert!((x - c as f32 * s).abs() <= s / 2.0 + 1e-7);
        }
    }

    #[test]
    fn thresholds_centre_each_dimension() {
        let rows = [1.0, 10.0, 3.0, 20.0, 5.0, 60.0];
        assert_eq!(learn_thresholds(ThresholdKind::Mean, &rows, 2), vec![3.0, 30.0]);
        assert_eq!(learn_thresholds(ThresholdKind::Median, &rows, 2), vec![3.0, 20.0]);
        assert_eq!(learn_thresholds(ThresholdKind::Zero, &rows, 2), vec![0.0, 0.0]);
        let mut bits = [0u64];
        binarize(&[5.0, 10.0], &[3.0, 30.0], &mut bits);
        assert_eq!(bits[0], 0b01);
    }

    #[test]
    fn zero_vector_normalises_to_zero() {
        let mut v = [0.0f32; 4];
        l2_normalize(&mut v);
        assert_eq!(v, [0.0; 4]);
    }
}
