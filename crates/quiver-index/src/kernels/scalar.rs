use super::Kernels;

/// Portable kernels: the reference every SIMD implementation is tested against.
pub struct Scalar;

impl Kernels for Scalar {
    fn name(&self) -> &'static str {
        "scalar"
    }

    fn dot_f32(&self, query: &[f32], rows: &[f32], out: &mut [f32]) {
        for (row, o) in rows.chunks_exact(query.len()).zip(out) {
            *o = query.iter().zip(row).map(|(a, b)| a * b).sum();
        }
    }

    fn dot_i8(&self, query: &[i8], rows: &[i8], out: &mut [i32]) {
        for (row, o) in rows.chunks_exact(query.len()).zip(out) {
            *o = query.iter().zip(row).map(|(&a, &b)| a as i32 * b as i32).sum();
        }
    }

    fn hamming(&self, query: &[u64], rows: &[u64], out: &mut [u32]) {
        for (row, o) in rows.chunks_exact(query.len()).zip(out) {
            *o = query.iter().zip(row).map(|(a, b)| (a ^ b).count_ones()).sum();
        }
    }
}
