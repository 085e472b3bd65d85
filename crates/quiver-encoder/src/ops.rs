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

/// erf with |error| < 1.5e-7 (Abramowitz & Stegun 7.1.26): well inside f32 parity, and
/// one `exp` instead of libm's slower `erff`.
#[inline]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    let y = 1.0 - poly * (-a * a).exp();
    y.copysign(x)
}

#[inline]
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
        x.par_chunks_mut(n * ROWS_PER_TASK).for_each(|rows| {
            for row in rows.chunks_exact_mut(n) {
                match self.act {
                    Some(act) => row.iter_mut().zip(self.bias).for_each(|(v, b)| *v = activate(act, *v + b)),
                    None => row.iter_mut().zip(self.bias).for_each(|(v, b)| *v += b),
                }
            }
        });
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
        x.par_chunks_mut(n * ROWS_PER_TASK).zip(residual.par_chunks(n * ROWS_PER_TASK)).for_each(|(rows, res)| {
            for (row, r) in rows.chunks_exact_mut(n).zip(res.chunks_exact(n)) {
                let mut sum = 0f32;
                for ((v, b), r) in row.iter_mut().zip(self.bias).zip(r) {
                    *v += b + r;
                    sum += *v;
                }
                let mean = sum / n as f32;
                let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
                let inv = 1.0 / (var + self.eps).sqrt();
                for ((v, g), b) in row.iter_mut().zip(self.gamma).zip(self.beta) {
                    *v = (*v - mean) * inv * g + b;
                }
            }
        });
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
        x.par_chunks_mut(heads * seq * seq).zip(self.lengths).for_each(|(sequence, &len)| {
            for row in sequence.chunks_exact_mut(seq) {
                let (valid, padded) = row.split_at_mut(len);
                let max = valid.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let mut sum = 0f32;
                for v in valid.iter_mut() {
                    *v = ((*v - max) * self.scale).exp();
                    sum += *v;
                }
                let inv = 1.0 / sum;
                valid.iter_mut().for_each(|v| *v *= inv);
                padded.fill(0.0);
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_is_accurate() {
        // Reference values of erf to 9 digits.
        for (x, want) in
            [(0.0, 0.0), (0.5, 0.520_499_878), (1.0, 0.842_700_793), (-2.0, -0.995_322_265), (3.5, 0.999_999_257)]
        {
            assert!((erf(x) - want).abs() < 3e-7, "erf({x}) = {} != {want}", erf(x));
        }
    }
}
