#!/usr/bin/env bash
# Every test, on a fresh machine too: set-up (CLI, model, catalogue, test corpus, browser
# package), the workspace's tests with the real model and real files, then the browser
# suite in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -x /usr/bin/chromium ]; then
  printf '\n== Debian chromium for the browser tests\n'
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ ! -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ]; then
  printf '\n== Mesa lavapipe (a Vulkan adapter for the GPU tests)\n'
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
fi
# The Vulkan loader and Mesa want a runtime folder; containers often have none.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  XDG_RUNTIME_DIR=$(mktemp -d)
  export XDG_RUNTIME_DIR
fi
printf '\n== formatting\n'
cargo fmt --all -- --check
printf '\n== tests\n'
cargo test --workspace --locked
printf '\n== browser tests (headless Chromium)\n'
node --test tests/browser/
