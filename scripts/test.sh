#!/usr/bin/env bash
# Every test, on a fresh machine too: set-up (CLI, models, catalogue, test corpus, browser
# package), formatting, clippy (warnings are errors), the workspace's tests with the real
# model and real files, the browser's kernels in Wasmtime, a short run of every fuzz target,
# then the browser suite in headless Chromium. Prints each phase's seconds at the end.
#
#   bash scripts/test.sh                  everything, as CI runs it
#   bash scripts/test.sh rust [FILTER]    set-up, then the Rust tests (those matching FILTER)
#   bash scripts/test.sh browser [FILTER] set-up, then the browser tests (names matching FILTER)
#   bash scripts/test.sh fuzz             set-up, then a smoke run of each fuzz target
#   bash scripts/test.sh FILTER           set-up, then Rust and browser tests matching FILTER
set -euo pipefail
cd "$(dirname "$0")/.."

what=all filter=
case "${1:-}" in
  '' | all) ;;
  rust | browser) what=$1 filter=${2:-} ;;
  fuzz) what=fuzz ;;
  -h | --help) sed -n '2,11s/^# \{0,1\}//p' "$0"; exit 0 ;;
  *) what=filter filter=$1 ;;
esac
wants() { [ "$what" = all ] || [ "$what" = filter ] || [ "$what" = "$1" ]; }

phases=() current= since=
started=$SECONDS
phase() {
  current=$1 since=$SECONDS
  shift
  printf '\n== %s\n' "$current"
  "$@"
  phases+=("$(printf '%5ds  %s' $((SECONDS - since)) "$current")")
  current=
}
summary() {
  printf '\n== seconds per phase\n'
  [ ${#phases[@]} -eq 0 ] || printf '%s\n' "${phases[@]}"
  [ -z "$current" ] || printf '%5ds  %s (failed)\n' $((SECONDS - since)) "$current"
  printf '%5ds  in all\n' $((SECONDS - started))
}
trap summary EXIT

# Debian packages the tests need: Chromium (browser tests) and Mesa's lavapipe (a Vulkan
# adapter for the GPU tests). They download and unpack in the background while set-up
# compiles; the package lists are refreshed first, in the foreground, since set-up reads them.
packages=()
[ -x /usr/bin/chromium ] || packages+=(chromium)
[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || packages+=(mesa-vulkan-drivers libvulkan1)
apt_pid=
if [ ${#packages[@]} -gt 0 ]; then
  mkdir -p artifacts
  phase "apt-get update (then ${packages[*]} in the background)" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >artifacts/apt.log 2>&1 &
  apt_pid=$!
fi
debian_packages() {
  if [ -n "$apt_pid" ] && ! wait "$apt_pid"; then
    cat artifacts/apt.log
    return 1
  fi
}

phase "set-up (scripts/setup.sh)" bash scripts/setup.sh
phase "Debian packages: ${packages[*]:-already installed}" debian_packages

# The Vulkan loader and Mesa want a runtime folder; containers often have none.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  XDG_RUNTIME_DIR=$(mktemp -d)
  export XDG_RUNTIME_DIR
fi

if [ "$what" = all ]; then
  phase "formatting" cargo fmt --all -- --check
  # Release, as the CLI: build scripts and proc macros are shared with its build.
  phase "lint (clippy)" cargo clippy --release --workspace --all-targets --locked -- -D warnings
fi
if wants rust; then
  # The release profile, as the CLI set-up just built: every dependency compiles once.
  # quiver-wasm has no native tests; set-up built it for the browser.
  phase "Rust tests" cargo test --release --workspace --exclude quiver-wasm --locked -- ${filter:+"$filter"}
fi
# The browser's kernels (matrix products in simd128 and relaxed-simd, row ops in simd128)
# through the same suites as the native ones: the encoder's qmatmul and ops tests built for
# WASI and run in Wasmtime (PyPI `wasmtime`; Node 20's relaxed-simd, behind a flag, computes
# the dot product wrongly).
WASMTIME=51.0.0
wasm_kernels() {
  rustup target add wasm32-wasip1 >/dev/null 2>&1 || rustup target add wasm32-wasip1
  python3 -c "import wasmtime" 2>/dev/null || python3 -m pip install -q "wasmtime==$WASMTIME"
  CARGO_TARGET_WASM32_WASIP1_RUNNER="python3 $PWD/scripts/wasi-run.py" \
    RUSTFLAGS='-C target-feature=+simd128,+relaxed-simd' \
    cargo test --release --locked --target wasm32-wasip1 --target-dir target/wasi -p quiver-encoder --lib -- qmatmul ops::
}
if wants rust; then
  phase "wasm kernels (wasm32-wasip1 in Wasmtime)" wasm_kernels
fi
# A smoke run of every fuzz target on its seeds; scripts/fuzz.sh SECONDS fuzzes for real.
if [ "$what" = all ] || [ "$what" = fuzz ]; then
  phase "fuzz targets, a fixed smoke run each (scripts/fuzz.sh smoke)" bash scripts/fuzz.sh smoke
fi
# The other build of the bindings (crates/quiver-wasm/Cargo.toml), which a browser test runs.
WASM_PACK=0.15.1
wasm_pack() {
  [ "$(wasm-pack --version 2>/dev/null | cut -d' ' -f2)" = "$WASM_PACK" ] ||
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=false cargo install wasm-pack --version "$WASM_PACK" --locked
}
if wants browser; then
  phase "wasm-pack $WASM_PACK" wasm_pack
  phase "browser tests (headless Chromium)" node --test ${filter:+--test-name-pattern="$filter"} tests/browser/
fi
