//! wasm `simd128` kernels: what every browser runs.
use std::arch::wasm32::*;

use super::Kernels;

pub struct Simd128;

impl Kernels for Simd128 {
    fn name(&self) -> &'static str {
        "simd128"
    }

    fn dot_f32(&self, query: &[f32], rows: &[f32], out: &mut [f32]) {
        let dim = query.len();
        let body = dim - dim % 8;
        for (row, o) in rows.chunks_exact(dim).zip(out) {
            let mut acc0 = f32x4_splat(0.0);
            let mut acc1 = f32x4_splat(0.0);
            let mut i = 0;
            while i < body {
                // SAFETY: i + 8 <= body <= dim, the length of both slices.
                unsafe {
                    let q = query.as_ptr().add(i) as *const v128;
                    let r = row.as_ptr().add(i) as *const v128;
                    acc0 = f32x4_add(acc0, f32x4_mul(v128_load(q), v128_load(r)));
                    acc1 = f32x4_add(acc1, f32x4_mul(v128_load(q.add(1)), v128_load(r.add(1))));
                }
                i += 8;
            }
            let acc = f32x4_add(acc0, acc1);
            let mut sum = f32x4_extract_lane::<0>(acc)
                + f32x4_extract_lane::<1>(acc)
                + f32x4_extract_lane::<2>(acc)
                + f32x4_extract_lane::<3>(acc);
            for j in body..dim {
                sum += query[j] * row[j];
            }
            *o = sum;
        }
    }

    fn dot_i8(&self, query: &[i8], rows: &[i8], out: &mut [i32]) {
        let dim = query.len();
        let body = dim - dim % 16;
        for (row, o) in rows.chunks_exact(dim).zip(out) {
            let mut acc = i32x4_splat(0);
            let mut i = 0;
            while i < body {
                // SAFETY: i + 16 <= body <= dim, the length of both slices.
                let (q, r) = unsafe {
                    (v128_load(query.as_ptr().add(i) as *const v128), v128_load(row.as_ptr().add(i) as *const v128))
                };
                acc = i32x4_add(acc, i32x4_dot_i16x8(i16x8_extend_low_i8x16(q), i16x8_extend_low_i8x16(r)));
                acc = i32x4_add(acc, i32x4_dot_i16x8(i16x8_extend_high_i8x16(q), i16x8_extend_high_i8x16(r)));
                i += 16;
            }
            let mut sum = i32x4_extract_lane::<0>(acc)
                + i32x4_extract_lane::<1>(acc)
                + i32x4_extract_lane::<2>(acc)
                + i32x4_extract_lane::<3>(acc);
            for j in body..dim {
                sum += query[j] as i32 * row[j] as i32;
            }
            *o = sum;
        }
    }

    fn hamming(&self, query: &[u64], rows: &[u64], out: &mut [u32]) {
        // wasm has a native 64-bit popcount; a vector version gains little at 6 words a row.
        for (row, o) in rows.chunks_exact(query.len()).zip(out) {
            *o = query.iter().zip(row).map(|(a, b)| (a ^ b).count_ones()).sum();
        }
    }
}
