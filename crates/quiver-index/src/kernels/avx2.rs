//! AVX2 + FMA kernels: what most users' laptops run natively. AVX-512 is deliberately not
//! used, so native figures stand for what a user gets.
use std::arch::x86_64::*;

use super::Kernels;

pub struct Avx2;

impl Avx2 {
    pub fn detect() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("popcnt")
    }
}

impl Kernels for Avx2 {
    fn name(&self) -> &'static str {
        "avx2"
    }

    fn dot_f32(&self, query: &[f32], rows: &[f32], out: &mut [f32]) {
        // SAFETY: `Avx2` is only handed out by `available()` after `detect()` succeeded.
        unsafe { dot_f32(query, rows, out) }
    }

    fn dot_i8(&self, query: &[i8], rows: &[i8], out: &mut [i32]) {
        // SAFETY: as above.
        unsafe { dot_i8(query, rows, out) }
    }

    fn hamming(&self, query: &[u64], rows: &[u64], out: &mut [u32]) {
        // SAFETY: as above.
        unsafe { hamming(query, rows, out) }
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn hsum_ps(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

#[target_feature(enable = "avx2")]
unsafe fn hsum_epi32(v: __m256i) -> i32 {
    let lo = _mm256_castsi256_si128(v);
    let hi = _mm256_extracti128_si256(v, 1);
    let s = _mm_add_epi32(lo, hi);
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dot_f32(query: &[f32], rows: &[f32], out: &mut [f32]) {
    let dim = query.len();
    let body = dim - dim % 16;
    for (row, o) in rows.chunks_exact(dim).zip(out) {
        let (q, r) = (query.as_ptr(), row.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut i = 0;
        while i < body {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q.add(i)), _mm256_loadu_ps(r.add(i)), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q.add(i + 8)), _mm256_loadu_ps(r.add(i + 8)), acc1);
            i += 16;
        }
        let mut sum = hsum_ps(_mm256_add_ps(acc0, acc1));
        for j in body..dim {
            sum += query[j] * row[j];
        }
        *o = sum;
    }
}

#[target_feature(enable = "avx2")]
unsafe fn dot_i8(query: &[i8], rows: &[i8], out: &mut [i32]) {
    let dim = query.len();
    let body = dim - dim % 16;
    for (row, o) in rows.chunks_exact(dim).zip(out) {
        let (q, r) = (query.as_ptr(), row.as_ptr());
        let mut acc = _mm256_setzero_si256();
        let mut i = 0;
        while i < body {
            // Widen 16 int8 to int16, multiply pairwise and add neighbours into int32.
            let qa = _mm256_cvtepi8_epi16(_mm_loadu_si128(q.add(i) as *const __m128i));
            let ra = _mm256_cvtepi8_epi16(_mm_loadu_si128(r.add(i) as *const __m128i));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(qa, ra));
            i += 16;
        }
        let mut sum = hsum_epi32(acc);
        for j in body..dim {
            sum += query[j] as i32 * row[j] as i32;
        }
        *o = sum;
    }
}

#[target_feature(enable = "popcnt")]
unsafe fn hamming(query: &[u64], rows: &[u64], out: &mut [u32]) {
    for (row, o) in rows.chunks_exact(query.len()).zip(out) {
        let mut sum = 0u32;
        for (a, b) in query.iter().zip(row) {
            sum += _popcnt64((a ^ b) as i64) as u32;
        }
        *o = sum;
    }
}
