//! Fused in-place CPU ops for the encoder's hot path. Each runs on a fresh matmul output,
//! saving the separate passes and allocations that bias add, activation, residual add,
//! layer norm, masking and softmax would each cost as plain tensor ops.

use candle_core::{bail, CpuStorage, InplaceOp1, InplaceOp2, Layout};
use rayon::prelude::*;

use crate::config::Activation;

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

// The row kernels below use plain index loops, not iterator adapters: adapters compile to
// separate generic functions that are not inlined into the AVX2 copies, and then run as
// SSE code.

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
        let mut max = f32::NEG_INFINITY;
        for v in valid.iter() {
            max = max.max(*v);
        }
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

/// Compiles each row kernel a second time for AVX2 + FMA and picks that one at run time
/// when the processor has them; the portable build is the fallback (and what wasm runs).
macro_rules! dispatch {
    ($name:ident => $kernel:ident($($arg:ident: $ty:ty),*)) => {
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    $kernel($($arg),*)
                }
                if has_avx2() {
                    // SAFETY: the processor supports AVX2 and FMA.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $kernel($($arg),*)
        }
    };
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

dispatch!(bias_activation => bias_activation_rows(rows: &mut [f32], bias: &[f32], act: Option<Activation>));
dispatch!(residual_norm => residual_norm_rows(rows: &mut [f32], residual: &[f32], op: &BiasResidualNorm));
dispatch!(masked_softmax => masked_softmax_rows(sequence: &mut [f32], seq: usize, len: usize, scale: f32));

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

/// Softmax of `scale · scores` over each row's first `lengths[batch]` keys; padded keys get
/// probability 0. `scores` is `[batch, heads, seq, seq]`.
pub struct MaskedSoftmax<'a> {
    pub lengths: &'a [usize],
    pub heads: usize,
    pub scale: f32,
}

impl InplaceOp1 for MaskedSoftmax<'_> {
    fn name(&self) -> &'static str {
        "masked-softmax"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let dims = layout.dims();
        let [batch, heads, seq, keys] = dims else { bail!("{}: expected 4 dims, got {dims:?}", self.name()) };
        if *batch != self.lengths.len() || *heads != self.heads || seq != keys {
            bail!("{}: shape {dims:?} does not fit {} sequences", self.name(), self.lengths.len());
        }
        let seq = *seq;
        let x = contiguous(storage, layout, self.name())?;
        // One task per (sequence, head): enough parallelism for a single long text too.
        let lengths = self.lengths;
        x.par_chunks_mut(seq * seq)
            .enumerate()
            .for_each(|(i, block)| masked_softmax(block, seq, lengths[i / self.heads], self.scale));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
