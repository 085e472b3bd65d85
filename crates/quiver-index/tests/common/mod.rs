//! What more than one of these test files checks.

use quiver_index::{FlatIndex, IndexError};

/// Every cut of an index file's bytes is a typed truncation error, and every flipped byte is
/// noticed.
pub fn every_cut_and_flip_is_an_error(bytes: &[u8]) {
    for cut in 0..bytes.len() {
        let err = FlatIndex::from_bytes(bytes[..cut].to_vec()).err().unwrap_or_else(|| panic!("cut at {cut} loaded"));
        assert!(matches!(err, IndexError::Truncated { .. } | IndexError::BadMagic { .. }), "cut at {cut}: {err}");
    }
    for at in 0..bytes.len() {
        let mut corrupted = bytes.to_vec();
        corrupted[at] ^= 0x20;
        assert!(FlatIndex::from_bytes(corrupted).is_err(), "flipping byte {at} went unnoticed");
    }
}
