//! The engine's build, for the backend decisions cached on disk and in pages: a hash of the
//! sources that can change which backend is faster or works (the encoder's CPU kernels, the
//! GPU path, the backend choice), so a decision made by another build is not followed.
//! The crate version alone never changes between commits.

use std::path::{Path, PathBuf};

const SOURCES: [&str; 3] = ["quiver-encoder/src", "quiver-gpu/src", "quiver/src/backend"];

fn files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs" || e == "wgsl") {
            found.push(path);
        }
    }
}

fn main() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    for dir in SOURCES {
        let dir = crates.join(dir);
        println!("cargo:rerun-if-changed={}", dir.display());
        files(&dir, &mut found);
    }
    found.sort();
    // FNV-1a over each file's path (relative to crates/) and bytes.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for path in &found {
        let name = path.strip_prefix(&crates).unwrap_or(path).to_string_lossy().replace('\\', "/");
        for byte in name.bytes().chain(std::fs::read(path).unwrap_or_default()) {
            hash = (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    println!("cargo:rustc-env=QUIVER_BUILD={}+{hash:016x}", env!("CARGO_PKG_VERSION"));
}
