//! Fused in-place CPU ops for the encoder's hot path. Each runs on a fresh matmul output,
//! saving the separate passes and allocations that bias add, activation, residual add,
//! layer norm, masking and softmax would each cost as plain tensor ops.

use candle_core::{bail, CpuStorage, CustomOp1, InplaceOp1, InplaceOp2, Layout, Shape};
use gemm::Parallelism;
use rayon::prelude::*;

use crate::config::Activation;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128;

/// Rows per rayon task: enough work to amortise scheduling.
const ROWS_PER_TASK: usize = 16;

fn contiguous<'a>(storage: &'a mut CpuStorage, layout: &Layout, op: &str) -> candle_core::Result<&'a mut [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else { bail!("{op}: input is not contiguous") };
    match storage {
        CpuStorage::F32(v) => Ok(&mut v[start..end]),
        _ => bail!("{op}: expected f32 values"),
    }
}

/// `e^x` from arithmetic only (no libm call), so loops over it vectorise: range reduction to
/// `2^n · e^r` with `|r| ≤ ln2/2` and a degree-6 Taylor polynomial; relative error < 2e-7.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Adding and subtracting 1.5 · 2^23 rounds to the nearest integer without `round()`.
    let n = (x * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
    // ln 2 split in two (Cody–Waite) keeps r exact enough.
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // SAFETY: n is an integer in [-126, 127] after the clamp.
    let n: i32 = unsafe { n.to_int_unchecked() };
    p * f32::from_bits(((n + 127) as u32) << 23)
}

/// erf with |error| < 3e-7 (Abramowitz & Stegun 7.1.26 with the exp above).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

#[inline(always)]
fn activate(act: Activation, x: f32) -> f32 {
    match act {
        Activation::Gelu => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
        Activation::GeluNew => {
            let inner = 0.797_884_6 * (x + 0.044_715 * x * x * x);
            0.5 * x * (1.0 + inner.tanh())
        }
        Activation::Relu => x.max(0.0),
    }
}

// The portable row kernels below are the reference for their forms in [`avx2`] (x86) and
// `simd128` (wasm), and what other processors run.

/// Maximum in eight lanes by compare-and-select, which the compiler turns into vector
/// maxima (`f32::max`'s NaN rule keeps a running maximum scalar).
#[inline(always)]
fn max(values: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let body = values.len() / 8 * 8;
    for i in (0..body).step_by(8) {
        for l in 0..8 {
            let v = values[i + l];
            lanes[l] = if v > lanes[l] { v } else { lanes[l] };
        }
    }
    let mut top = f32::NEG_INFINITY;
    for v in lanes {
        top = if v > top { v } else { top };
    }
    for &v in &values[body..] {
        top = if v > top { v } else { top };
    }
    top
}

/// Sum in eight lanes, a shape the compiler turns into vector adds.
#[inline(always)]
fn sum(values: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let body = values.len() / 8 * 8;
    for i in (0..body).step_by(8) {
        for l in 0..8 {
            lanes[l] += values[i + l];
        }
    }
    let mut total = 0.0;
    for l in lanes {
        total += l;
    }
    for v in &values[body..] {
        total += v;
    }
    total
}

#[inline(always)]
fn sum_squares(values: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let body = values.len() / 8 * 8;
    for i in (0..body).step_by(8) {
        for l in 0..8 {
            lanes[l] += values[i + l] * values[i + l];
        }
    }
    let mut total = 0.0;
    for l in lanes {
        total += l;
    }
    for v in &values[body..] {
        total += v * v;
    }
    total
}

#[inline(always)]
fn bias_activation_rows(rows: &mut [f32], bias: &[f32], act: Option<Activation>) {
    let n = bias.len();
    for row in rows.chunks_exact_mut(n) {
        match act {
            Some(act) => {
                for i in 0..n {
                    row[i] = activate(act, row[i] + bias[i]);
                }
            }
            None => {
                for i in 0..n {
                    row[i] += bias[i];
                }
            }
        }
    }
}

#[inline(always)]
fn residual_norm_rows(rows: &mut [f32], residual: &[f32], op: &BiasResidualNorm) {
    let n = op.bias.len();
    let (bias, gamma, beta) = (&op.bias[..n], &op.gamma[..n], &op.beta[..n]);
    for (row, r) in rows.chunks_exact_mut(n).zip(residual.chunks_exact(n)) {
        for i in 0..n {
            row[i] += bias[i] + r[i];
        }
        let mean = sum(row) / n as f32;
        for v in row.iter_mut() {
            *v -= mean;
        }
        let inv = 1.0 / (sum_squares(row) / n as f32 + op.eps).sqrt();
        for i in 0..n {
            row[i] = row[i] * inv * gamma[i] + beta[i];
        }
    }
}

#[inline(always)]
fn masked_softmax_rows(sequence: &mut [f32], seq: usize, len: usize, scale: f32) {
    for row in sequence.chunks_exact_mut(seq) {
        let (valid, padded) = row.split_at_mut(len);
        let max = max(valid);
        for v in valid.iter_mut() {
            *v = exp((*v - max) * scale);
        }
        let inv = 1.0 / sum(valid);
        for v in valid.iter_mut() {
            *v *= inv;
        }
        padded.fill(0.0);
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// Runs the AVX2 form of a row kernel where the processor has it, the simd128 form in wasm
/// built with it, else the portable one.
macro_rules! rows {
    ($name:ident($($arg:ident: $ty:ty),*) else $portable:ident) => {
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if has_avx2() {
                // SAFETY: the processor supports AVX2 and FMA.
                return unsafe { avx2::$name($($arg),*) };
            }
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            return simd128::$name($($arg),*);
            #[allow(unreachable_code)]
            $portable($($arg),*)
        }
    };
}

rows!(bias_activation(rows: &mut [f32], bias: &[f32], act: Option<Activation>) else bias_activation_rows);
rows!(residual_norm(rows: &mut [f32], residual: &[f32], op: &BiasResidualNorm) else residual_norm_rows);
rows!(masked_softmax(sequence: &mut [f32], seq: usize, len: usize, scale: f32) else masked_softmax_rows);

/// `x = act(x + bias)` row by row; no activation when `act` is `None`.
pub struct BiasActivation<'a> {
    pub bias: &'a [f32],
    pub act: Option<Activation>,
}

impl InplaceOp1 for BiasActivation<'_> {
    fn name(&self) -> &'static str {
        "bias-activation"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let x = contiguous(storage, layout, self.name())?;
        let n = self.bias.len();
        x.par_chunks_mut(n * ROWS_PER_TASK).for_each(|rows| bias_activation(rows, self.bias, self.act));
        Ok(())
    }
}

/// `x = LayerNorm(x + bias + residual)`, as `BertSelfOutput` / `BertOutput`.
pub struct BiasResidualNorm<'a> {
    pub bias: &'a [f32],
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub eps: f32,
}

impl InplaceOp2 for BiasResidualNorm<'_> {
    fn name(&self) -> &'static str {
        "bias-residual-layer-norm"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        src: &CpuStorage,
        src_l: &Layout,
    ) -> candle_core::Result<()> {
        let x = contiguous(dst, dst_l, self.name())?;
        let (Some((start, end)), CpuStorage::F32(residual)) = (src_l.contiguous_offsets(), src) else {
            bail!("{}: residual must be contiguous f32", self.name())
        };
        let residual = &residual[start..end];
        let n = self.bias.len();
        if residual.len() != x.len() {
            bail!("{}: residual has {} values, input {}", self.name(), residual.len(), x.len());
        }
        x.par_chunks_mut(n * ROWS_PER_TASK)
            .zip(residual.par_chunks(n * ROWS_PER_TASK))
            .for_each(|(rows, res)| residual_norm(rows, res, self));
        Ok(())
    }
}

/// Self-attention of a right-padded batch, from the fused Q/K/V product: the input is
/// `[batch · seq, 3 · heads · head_dim]` (Q, K and V side by side, each head's columns in
/// order), the output `[batch · seq, heads · head_dim]`, softmax(`Q·Kᵀ / √head_dim`)·V per
/// sequence and head over the sequence's real tokens only.
///
/// One (sequence, head) at a time, its scores in a buffer of the thread's that stays in the
/// cache from the product with K through the softmax to the product with V; a batched
/// product would write and read back `batch × heads × seq²` scores (100 MB a layer for 32
/// texts of 256 tokens). The products read Q, K and V where they lie, by strides. Padded
/// rows come out zero: only row-wise ops read them, and pooling skips them.
pub struct Attention<'a> {
    pub lengths: &'a [usize],
    pub heads: usize,
    pub head_dim: usize,
}

/// A pointer the attention's tasks write through, each to its own rows and columns.
struct Output(*mut f32);
// SAFETY: the tasks write disjoint elements (their sequence's rows, their head's columns).
unsafe impl Send for Output {}
unsafe impl Sync for Output {}

impl Output {
    fn at(&self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

thread_local! {
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `dst = lhs · rhs` for `(m, n, k)`: `m × k` times `k × n`, single-threaded. Each matrix is
/// its first element and its row stride (and column stride; `dst`'s is 1).
///
/// # Safety
/// Every element the shapes and strides reach must lie in its allocation, and `dst`'s must
/// not be written by anyone else meanwhile.
unsafe fn product(
    (m, n, k): (usize, usize, usize),
    (dst, dst_row): (*mut f32, isize),
    (lhs, lhs_row, lhs_column): (*const f32, isize, isize),
    (rhs, rhs_row, rhs_column): (*const f32, isize, isize),
) {
    let none = Parallelism::None;
    gemm::gemm(
        m, n, k, dst, 1, dst_row, false, lhs, lhs_column, lhs_row, rhs, rhs_column, rhs_row, 0.0, 1.0, false, false,
        false, none,
    );
}

impl CustomOp1 for Attention<'_> {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (Some((start, end)), CpuStorage::F32(qkv)) = (layout.contiguous_offsets(), storage) else {
            bail!("{}: input must be contiguous f32", self.name())
        };
        let (heads, head_dim, batch) = (self.heads, self.head_dim, self.lengths.len());
        let h = heads * head_dim;
        let &[rows, width] = layout.dims() else { bail!("{}: expected 2 dims, got {:?}", self.name(), layout.dims()) };
        if width != 3 * h || batch == 0 || rows % batch != 0 || self.lengths.iter().any(|&l| l > rows / batch) {
            bail!(
                "{}: {:?} does not hold {batch} sequences of {heads} heads of {head_dim}",
                self.name(),
                layout.dims()
            );
        }
        let seq = rows / batch;
        let qkv = &qkv[start..end];
        let mut out = vec![0f32; rows * h];
        let output = Output(out.as_mut_ptr());
        let scale = 1.0 / (head_dim as f32).sqrt();
        let (row, stride) = (3 * h as isize, h as isize);
        (0..batch * heads).into_par_iter().for_each(|task| {
            let (b, head) = (task / heads, task % heads);
            let len = self.lengths[b];
            let q = &qkv[b * seq * 3 * h + head * head_dim..];
            let (k, v) = (&q[h..], &q[2 * h..]);
            SCORES.with_borrow_mut(|scores| {
                scores.resize(len * len, 0.0);
                // SAFETY: every index the strides reach lies in the sequence's rows of `qkv`
                // (checked above) or in `scores`; `output` is written only at this task's
                // rows of `b` and columns of `head`.
                unsafe {
                    product(
                        (len, len, head_dim),
                        (scores.as_mut_ptr(), len as isize),
                        (q.as_ptr(), row, 1),
                        (k.as_ptr(), 1, row),
                    );
                    masked_softmax(scores, len, len, scale);
                    let context = output.at(b * seq * h + head * head_dim);
                    product(
                        (len, head_dim, len),
                        (context, stride),
                        (scores.as_ptr(), len as isize, 1),
                        (v.as_ptr(), row, 1),
                    );
                }
            });
        });
        Ok((CpuStorage::F32(out), Shape::from((rows, h))))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    fn random(len: usize, seed: &mut u64, spread: f32) -> Vec<f32> {
        (0..len)
            .map(|_| {
                *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                (((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * spread
            })
            .collect()
    }

    fn close(got: &[f32], want: &[f32], tolerance: f32, what: &str) {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tolerance * w.abs().max(1.0), "{what} [{i}]: {g} != {w}");
        }
    }

    /// One instruction set's row ops against the portable ones, on widths with a tail past
    /// the last vector.
    pub fn row_ops_match(
        bias_activation: impl Fn(&mut [f32], &[f32], Option<Activation>),
        residual_norm: impl Fn(&mut [f32], &[f32], &BiasResidualNorm),
        masked_softmax: impl Fn(&mut [f32], usize, usize, f32),
    ) {
        let mut seed = 11u64;
        for n in [384, 37, 5] {
            let rows = 3;
            let x = random(rows * n, &mut seed, 4.0);
            let bias = random(n, &mut seed, 1.0);
            for act in [None, Some(Activation::Gelu), Some(Activation::Relu)] {
                let (mut got, mut want) = (x.clone(), x.clone());
                bias_activation(&mut got, &bias, act);
                bias_activation_rows(&mut want, &bias, act);
                close(&got, &want, 1e-6, &format!("bias + {act:?}, width {n}"));
            }
            let (residual, gamma, beta) =
                (random(rows * n, &mut seed, 2.0), random(n, &mut seed, 1.0), random(n, &mut seed, 1.0));
            let op = BiasResidualNorm { bias: &bias, gamma: &gamma, beta: &beta, eps: 1e-12 };
            let (mut got, mut want) = (x.clone(), x.clone());
            residual_norm(&mut got, &residual, &op);
            residual_norm_rows(&mut want, &residual, &op);
            close(&got, &want, 2e-5, &format!("residual norm, width {n}"));
            for len in [n, n - 1, 1] {
                let (mut got, mut want) = (x.clone(), x.clone());
                masked_softmax(&mut got, n, len, 0.17);
                masked_softmax_rows(&mut want, n, len, 0.17);
                close(&got, &want, 2e-6, &format!("softmax of {len} in {n}"));
            }
        }
    }

    /// The fused attention against its definition, on a padded batch.
    #[test]
    fn attention_matches_the_definition() {
        let (heads, head_dim, seq, lengths) = (3, 4, 5, [5, 2]);
        let (h, rows) = (heads * head_dim, lengths.len() * seq);
        let mut seed = 3u64;
        let qkv: Vec<f32> = (0..rows * 3 * h)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        let input = Tensor::from_vec(qkv.clone(), (rows, 3 * h), &Device::Cpu).unwrap();
        let out = input.apply_op1_no_bwd(&Attention { lengths: &lengths, heads, head_dim }).unwrap();
        assert_eq!(out.dims(), [rows, h]);
        let out: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
        let at = |b: usize, t: usize, part: usize, head: usize, d: usize| {
            qkv[(b * seq + t) * 3 * h + part * h + head * head_dim + d] as f64
        };
        for (b, &len) in lengths.iter().enumerate() {
            for head in 0..heads {
                for t in 0..seq {
                    let got = &out[(b * seq + t) * h + head * head_dim..][..head_dim];
                    if t >= len {
                        assert!(got.iter().all(|&v| v == 0.0), "padded row {b}/{t}: {got:?}");
                        continue;
                    }
                    let scores: Vec<f64> = (0..len)
                        .map(|u| (0..head_dim).map(|d| at(b, t, 0, head, d) * at(b, u, 1, head, d)).sum::<f64>())
                        .map(|s| (s / (head_dim as f64).sqrt()).exp())
                        .collect();
                    let total: f64 = scores.iter().sum();
                    for (d, &g) in got.iter().enumerate() {
                        let want: f64 = (0..len).map(|u| scores[u] / total * at(b, u, 2, head, d)).sum();
                        assert!((g as f64 - want).abs() < 1e-5, "sequence {b} token {t} head {head}: {g} != {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn exp_is_accurate() {
        for i in -2000..=800 {
            let x = i as f32 * 0.1;
            let (fast, exact) = (exp(x), x.exp());
            assert!((fast - exact).abs() <= 3e-7 * exact + 1e-37, "exp({x}) = {fast} != {exact}");
        }
    }

    #[test]
    fn erf_is_accurate() {
        // Reference values of erf to 9 digits.
        for (x, want) in
            [(0.0f64, 0.0f64), (0.5, 0.520_499_878), (1.0, 0.842_700_793), (-2.0, -0.995_322_265), (3.5, 0.999_999_257)]
        {
            let got = erf(x as f32) as f64;
            assert!((got - want).abs() < 3e-7, "erf({x}) = {got} != {want}");
        }
    }
}
