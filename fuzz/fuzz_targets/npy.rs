//! `.npy` import (`quiver index --vectors`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(matrix) = quiver_index::npy::read_npy(data) {
        assert_eq!(Some(matrix.data.len()), matrix.rows.checked_mul(matrix.cols));
    }
});
