#!/usr/bin/env bash
# The demo end to end: set-up (fetch the model, build the CLI and the browser package,
# index the sample catalogue), example searches with the CLI, then the shop page served
# on http://127.0.0.1:8787/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
QUIVER=target/release/quiver

printf '\n== the sample catalogue index (built by setup)\n'
"$QUIVER" info data/catalogue.qvr

for query in "pink velvet armchair" "something to serve cocktails" "machine that digs deep in mines"; do
  printf '\n== search: %s\n' "$query"
  "$QUIVER" search --index data/catalogue.qvr --k 5 "$query"
done
printf '\n== search with binary quantization + rescoring, under 30 USD\n'
"$QUIVER" search --index data/catalogue.qvr --k 5 --strategy binary-rescore --filter 'price<=30' "wine glasses"

printf '\n== the demo shop\n'
exec node web/serve.mjs --port "${PORT:-8787}"
