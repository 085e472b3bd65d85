#!/usr/bin/env bash
# Builds the browser package: the engine for wasm32 with simd128, wasm-bindgen's ES module
# glue into pkg/wasm/, then wasm-opt (npm binaryen) when it is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-unknown-unknown >/dev/null
# wasm-bindgen-cli must be exactly the version of the wasm-bindgen crate in Cargo.lock.
version=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
# It only rewrites one module per build: opt-level 1 compiles it in half the time.
if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$version" ]; then
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=false \
    cargo install wasm-bindgen-cli --version "$version"
fi

cargo build --release --locked --target wasm32-unknown-unknown -p quiver-wasm
built=target/wasm32-unknown-unknown/release/quiver_wasm.wasm
if [ pkg/wasm/quiver_wasm_bg.wasm -nt "$built" ] && [ pkg/wasm/quiver_wasm_bg.wasm -nt "$0" ]; then
  echo "pkg/wasm is up to date"
  exit 0
fi
# Built beside and then moved: an interrupted build never leaves a package that looks done.
rm -rf pkg/wasm pkg/wasm.partial
wasm-bindgen --target web --no-typescript --out-dir pkg/wasm.partial "$built"
if [ -x node_modules/.bin/wasm-opt ]; then
  node_modules/.bin/wasm-opt -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals pkg/wasm.partial/quiver_wasm_bg.wasm -o pkg/wasm.partial/quiver_wasm_bg.wasm
fi
mv pkg/wasm.partial pkg/wasm
printf 'pkg/wasm/quiver_wasm_bg.wasm: %s bytes, %s gzipped\n' \
  "$(stat -c %s pkg/wasm/quiver_wasm_bg.wasm)" "$(gzip -9 -c pkg/wasm/quiver_wasm_bg.wasm | wc -c)"
