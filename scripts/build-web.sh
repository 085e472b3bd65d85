#!/usr/bin/env bash
# Builds the browser package: the engine for wasm32 with simd128, wasm-bindgen's ES module
# glue into pkg/wasm/, then wasm-opt (npm binaryen) when it is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-unknown-unknown >/dev/null
# wasm-bindgen-cli must be exactly the version of the wasm-bindgen crate in Cargo.lock.
version=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$version" ]; then
  cargo install wasm-bindgen-cli --version "$version"
fi

cargo build --release --locked --target wasm32-unknown-unknown -p quiver-wasm
rm -rf pkg/wasm
wasm-bindgen --target web --no-typescript --out-dir pkg/wasm target/wasm32-unknown-unknown/release/quiver_wasm.wasm
if [ -x node_modules/.bin/wasm-opt ]; then
  node_modules/.bin/wasm-opt -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals pkg/wasm/quiver_wasm_bg.wasm -o pkg/wasm/quiver_wasm_bg.wasm
fi
printf 'pkg/wasm/quiver_wasm_bg.wasm: %s bytes, %s gzipped\n' \
  "$(stat -c %s pkg/wasm/quiver_wasm_bg.wasm)" "$(gzip -9 -c pkg/wasm/quiver_wasm_bg.wasm | wc -c)"
