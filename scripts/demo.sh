#!/usr/bin/env bash
# The demo end to end: set-up, index the sample catalogue with the native CLI, run
# example searches.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
QUIVER=target/release/quiver
MODEL=models/all-MiniLM-L6-v2

printf '\n== index the sample catalogue\n'
"$QUIVER" index --model "$MODEL" --input data/catalogue.jsonl \
  --text-field title --text-field description --output data/catalogue.qvr
"$QUIVER" info data/catalogue.qvr

for query in "pink velvet armchair" "something to serve cocktails" "machine that digs deep in mines"; do
  printf '\n== search: %s\n' "$query"
  "$QUIVER" search --index data/catalogue.qvr --k 5 "$query"
done
printf '\n== search with binary quantization + rescoring, under 30 USD\n'
"$QUIVER" search --index data/catalogue.qvr --k 5 --strategy binary-rescore --filter 'price<=30' "wine glasses"
