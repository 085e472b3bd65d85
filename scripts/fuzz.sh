#!/usr/bin/env bash
# Fuzzes every reader of untrusted bytes with libFuzzer (cargo fuzz, the pinned nightly):
#   index        the index loader, then every strategy and keyword/hybrid search
#   gguf         model.gguf        safetensors  model.safetensors
#   config       config.json, quiver.json, modules.json, 1_Pooling/config.json,
#                sentence_bert_config.json, tokenizer_config.json
#   filter       --filter clauses and JSON filters      npy      .npy import (--vectors)
#   queries      a --queries file
# The model targets load the tiny model of fuzz/tiny-model/ with one file replaced by the
# input, and embed with it. Seeds come from the committed fixtures (index files of older
# formats, the tiny model and its quantized copies, the conformance filters, the evaluation
# queries) and are written to target/fuzz-seeds/; what a run finds that is new is kept in
# fuzz/corpus/TARGET, a crash in fuzz/artifacts/TARGET. Prints executions per target and
# fails on a crash.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET…]   SECONDS per target (default 60), all targets
#                                               unless named
#   bash scripts/fuzz.sh smoke [TARGET…]        what scripts/test.sh runs: from the seeds
#                                               alone, a fixed number of inputs with a fixed
#                                               random seed (at most 30 s each), so a pass
#                                               here is a pass on any machine
# Needs the CLI (scripts/setup.sh builds it) for the seeds.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift $(($# > 0 ? 1 : 0))
all=(index gguf safetensors config filter npy queries)
targets=("${@:-${all[@]}}")
# Inputs per target in a smoke run: about 10 s each here (the model targets run ~2,000
# inputs a second, the parsers 100,000 or more).
declare -A smoke_runs=([index]=2000000 [gguf]=15000 [safetensors]=15000 [config]=15000
  [filter]=1000000 [npy]=3000000 [queries]=500000)

# One pinned nightly for the project: the threaded wasm build's.
nightly=$(sed -n 's/^NIGHTLY=//p' scripts/build-web.sh)
rustup toolchain install "$nightly" --profile minimal >/dev/null 2>&1 || rustup toolchain install "$nightly" --profile minimal
cargo_fuzz=0.13.2
if [ "$(cargo fuzz --version 2>/dev/null | cut -d' ' -f2)" != "$cargo_fuzz" ]; then
  cargo install --locked cargo-fuzz --version "$cargo_fuzz"
fi
quiver=target/release/quiver
[ -x "$quiver" ] || { echo "no $quiver: run scripts/setup.sh first" >&2; exit 1; }

# Seeds, from scratch each run.
seeds=target/fuzz-seeds
rm -rf "$seeds"
for t in "${all[@]}"; do mkdir -p "$seeds/$t"; done
python3 - "$seeds" <<'PY'
import json, struct, sys
from pathlib import Path
seeds = Path(sys.argv[1])
# The conformance products as records (metadata fields beside id and text), to index.
records = []
for d in json.loads(Path("tests/conformance/documents/products.json").read_text()):
    records.append(json.dumps({**d.get("metadata", {}), "id": d["id"], "text": d["text"]}))
(seeds / "products.jsonl").write_text("\n".join(records) + "\n")
# Filters: every filter of the conformance cases as JSON, and CLI clauses.
for case in Path("tests/conformance").glob("*.json"):
    for i, search in enumerate(json.loads(case.read_text()).get("searches", [])):
        if "filter" in search.get("options", {}):
            (seeds / "filter" / f"{case.stem}-{i}.json").write_text(json.dumps(search["options"]["filter"]))
(seeds / "filter" / "clauses.txt").write_text("category=Bar\nprice<=50\nstock.warehouse!=A\nprice>1e3\n")
# .npy: float32 and float64, 2-D and 1-D, version 1 and 2 headers.
def npy(name, descr, shape, values, version=1):
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    pad = -(10 + len(header) + 1) % 64
    header = (header + " " * pad + "\n").encode()
    size = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    data = struct.pack(f"<{len(values)}{'f' if descr == '<f4' else 'd'}", *values)
    (seeds / "npy" / name).write_bytes(b"\x93NUMPY" + bytes([version, 0]) + size + header + data)
npy("f4.npy", "<f4", (3, 4), [i / 7 for i in range(12)])
npy("f8.npy", "<f8", (2, 3), [1.5, -2.0, 0.0, 3.25, 1e-3, 7.0])
npy("row.npy", "<f4", (5,), [1, 2, 3, 4, 5])
npy("v2.npy", "<f4", (1, 2), [0.5, 0.5], version=2)
# Queries: the evaluation sets' first lines, plain lines and a filtered query.
for name in ["catalogue", "debian-packages"]:
    lines = Path(f"tests/data/eval/{name}/queries.jsonl").read_text().splitlines()[:20]
    (seeds / "queries" / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
(seeds / "queries" / "mixed.txt").write_text(
    'red wine\n"a gift"\n{"query": "glass", "id": 7, "filter": {"price": {"lte": 50}}}\n\n{"text": "oak"}\n')
PY
cp crates/quiver-index/tests/fixtures/*.qvr "$seeds/index/"
tiny=fuzz/tiny-model
"$quiver" index --model "$tiny" --input "$seeds/products.jsonl" --backend cpu \
  --output "$seeds/index/products.qvr"
"$quiver" index --model "$tiny" --input "$seeds/products.jsonl" --backend cpu --metric dot \
  --threshold median --no-keyword --output "$seeds/index/products-dot.qvr"
cp "$tiny/model.safetensors" "$seeds/safetensors/"
for q in q8_0 q4_0 f16; do
  "$quiver" quantize --model "$tiny" --to "$q" --output "$seeds/tiny-$q" >/dev/null 2>&1
  cp "$seeds/tiny-$q/model.gguf" "$seeds/gguf/$q.gguf"
done
# config: the first byte picks the file (fuzz/fuzz_targets/config.rs's order).
minilm=models/all-MiniLM-L6-v2
for pick in 0:"$tiny/config.json" 1:"$minilm/modules.json" 2:"$minilm/1_Pooling/config.json" \
  3:"$minilm/sentence_bert_config.json" 4:"$seeds/tiny-q8_0/quiver.json" 5:"$minilm/tokenizer_config.json"; do
  n=${pick%%:*} file=${pick#*:}
  if [ -f "$file" ]; then { printf "\\x0$n"; cat "$file"; } >"$seeds/config/$n-$(basename "$file")"; fi
done

status=0
report=()
for t in "${targets[@]}"; do
  if [ "$seconds" = smoke ]; then
    corpus=target/fuzz-smoke/$t
    rm -rf "$corpus"
    limits=(-runs="${smoke_runs[$t]}" -seed=1 -max_total_time=30)
  else
    corpus=fuzz/corpus/$t
    limits=(-max_total_time="$seconds")
  fi
  mkdir -p "$corpus"
  log=target/fuzz-$t.log
  # No sanitizer: the readers are safe Rust, so what there is to find is a panic, an
  # overflow (debug assertions are on), a hang or a runaway allocation.
  if cargo "+$nightly" fuzz run --fuzz-dir fuzz --sanitizer none --debug-assertions "$t" \
    "$corpus" "$seeds/$t" -- "${limits[@]}" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result="FAILED (log: $log; input: fuzz/artifacts/$t/$(ls -t fuzz/artifacts/"$t"/ 2>/dev/null | head -1))"
    tail -40 "$log"
    status=1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  report+=("$(printf '%-12s %10s executions in %ss  %s' "$t" "${runs:-?}" "${took:-$seconds}" "$result")")
done
printf '%s\n' "${report[@]}"
exit $status
