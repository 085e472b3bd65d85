#!/usr/bin/env bash
# Every test, on a fresh machine too: set-up (CLI, model, catalogue, test corpus), then the
# whole workspace's tests with the real model and real files.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
printf '\n== formatting\n'
cargo fmt --all -- --check
printf '\n== tests\n'
cargo test --workspace --locked
