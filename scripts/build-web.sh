#!/usr/bin/env bash
# Builds the browser package's engines, each as wasm-bindgen's ES module glue and a module
# optimised by wasm-opt (npm binaryen, when installed):
#   pkg/wasm/          wasm32 + simd128, what every browser runs;
#   pkg/wasm-relaxed/  the same plus relaxed-simd (Chrome, Firefox; not Safari), whose
#                      integer dot product the quantized models' kernels use; the worker picks
#                      it where the browser validates that instruction. Its glue is
#                      pkg/wasm/'s (checked here), so only its module is kept;
#   pkg/wasm-threads/  relaxed-simd plus wasm threads (atomics, shared memory, rayon's pool
#                      as Web Workers), for cross-origin isolated pages where the browser has
#                      relaxed-simd (the same kernels as the relaxed build, so the same
#                      vectors): nightly Rust (pinned below) rebuilds std with atomics.
set -euo pipefail
cd "$(dirname "$0")/.."

# The nightly that builds the threaded engine; `-Z build-std` needs its rust-src.
NIGHTLY=nightly-2026-05-20

rustup target add wasm32-unknown-unknown >/dev/null
rustup toolchain install "$NIGHTLY" --profile minimal --component rust-src --target wasm32-unknown-unknown >/dev/null 2>&1 \
  || rustup toolchain install "$NIGHTLY" --profile minimal --component rust-src --target wasm32-unknown-unknown
# wasm-bindgen-cli must be exactly the version of the wasm-bindgen crate in Cargo.lock.
version=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
# It only rewrites one module per build: opt-level 1 compiles it in half the time.
if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$version" ]; then
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=false \
    cargo install wasm-bindgen-cli --version "$version"
fi

# package DIR BUILT [WASM-OPT FEATURE…]: pkg/DIR from the module BUILT, unless it is newer.
package() {
  local dir=pkg/$1 built=$2
  shift 2
  if [ "$dir/quiver_wasm_bg.wasm" -nt "$built" ] && [ "$dir/quiver_wasm_bg.wasm" -nt "$0" ]; then
    echo "$dir is up to date"
    return
  fi
  # Built beside and then moved: an interrupted build never leaves a package that looks done.
  rm -rf "$dir" "$dir.partial"
  wasm-bindgen --target web --no-typescript --out-dir "$dir.partial" "$built"
  if [ -x node_modules/.bin/wasm-opt ]; then
    node_modules/.bin/wasm-opt -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
      --enable-sign-ext --enable-mutable-globals "$@" "$dir.partial/quiver_wasm_bg.wasm" -o "$dir.partial/quiver_wasm_bg.wasm"
  fi
  mv "$dir.partial" "$dir"
  printf '%s/quiver_wasm_bg.wasm: %s bytes, %s gzipped\n' \
    "$dir" "$(stat -c %s "$dir/quiver_wasm_bg.wasm")" "$(gzip -9 -c "$dir/quiver_wasm_bg.wasm" | wc -c)"
}

cargo build --release --locked --target wasm32-unknown-unknown -p quiver-wasm
package wasm target/wasm32-unknown-unknown/release/quiver_wasm.wasm

# RUSTFLAGS replaces .cargo/config.toml's flags for wasm32, so they are repeated here; its
# own target directory keeps the builds from invalidating each other.
RUSTFLAGS='-C target-feature=+simd128,+relaxed-simd --cfg getrandom_backend="wasm_js"' \
  cargo build --release --locked --target wasm32-unknown-unknown -p quiver-wasm --target-dir target/relaxed
package wasm-relaxed target/relaxed/wasm32-unknown-unknown/release/quiver_wasm.wasm --enable-relaxed-simd
# The worker instantiates this module with pkg/wasm/'s glue: the two may differ in their
# comments only (wasm-bindgen notes the index of each closure's shim there).
if [ -f pkg/wasm-relaxed/quiver_wasm.js ]; then
  code() { grep -v '^ *//' "$1"; }
  cmp <(code pkg/wasm/quiver_wasm.js) <(code pkg/wasm-relaxed/quiver_wasm.js)
  rm pkg/wasm-relaxed/quiver_wasm.js
fi

# As for the relaxed build, RUSTFLAGS repeats the config's flags. The memory is imported
# and shared (what wasm-bindgen's thread support looks for), with a
# maximum, as shared memory must declare: 4 GiB, all that wasm32 addresses; each thread's
# thread-local storage is set up through the exported TLS symbols.
link='--shared-memory --import-memory --max-memory=4294967296 --export=__wasm_init_tls --export=__tls_size --export=__tls_align --export=__tls_base'
RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd,+atomics,+bulk-memory,+mutable-globals ${link//--/-C link-arg=--} --cfg getrandom_backend=\"wasm_js\"" \
  cargo "+$NIGHTLY" build --release --locked --target wasm32-unknown-unknown -p quiver-wasm --features threads \
  -Z build-std=panic_abort,std --target-dir target/threads
package wasm-threads target/threads/wasm32-unknown-unknown/release/quiver_wasm.wasm --enable-threads --enable-relaxed-simd
