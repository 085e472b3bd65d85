//! Pooling and normalisation on plain slices, shared by every backend.

use crate::config::Pooling;

/// Pools one sequence's token vectors (`tokens` rows of `dim`, the first `len` real) into
/// `out`. Padding never counts: `len` comes from the sequence length, not from `id != 0`.
pub fn pool(pooling: Pooling, tokens: &[f32], dim: usize, len: usize, out: &mut [f32]) {
    let real = &tokens[..len * dim];
    match pooling {
        Pooling::Cls => out.copy_from_slice(&real[..dim]),
        Pooling::Mean => {
            out.fill(0.0);
            for token in real.chunks_exact(dim) {
                out.iter_mut().zip(token).for_each(|(o, t)| *o += t);
            }
            out.iter_mut().for_each(|o| *o /= len as f32);
        }
        Pooling::Max => {
            out.fill(f32::NEG_INFINITY);
            for token in real.chunks_exact(dim) {
                out.iter_mut().zip(token).for_each(|(o, &t)| *o = o.max(t));
            }
        }
    }
}

/// L2-normalises `v` in place, as `torch.nn.functional.normalize` (norm clamped at 1e-12).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_is_ignored() {
        let tokens = [1.0, 2.0, 3.0, -4.0, 100.0, 100.0];
        let mut out = [0.0; 2];
        pool(Pooling::Mean, &tokens, 2, 2, &mut out);
        assert_eq!(out, [2.0, -1.0]);
        pool(Pooling::Max, &tokens, 2, 2, &mut out);
        assert_eq!(out, [3.0, 2.0]);
        pool(Pooling::Cls, &tokens, 2, 2, &mut out);
        assert_eq!(out, [1.0, 2.0]);
    }
}
