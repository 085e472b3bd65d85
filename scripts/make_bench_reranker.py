#!/usr/bin/env python3
"""Builds a cross-encoder folder shaped exactly like cross-encoder/ms-marco-MiniLM-L-6-v2
(BERT, 6 layers, hidden 384, 12 heads, one label) for LATENCY benchmarks only: its encoder is
all-MiniLM-L6-v2's and its classifier head is drawn from a fixed seed, so its scores mean
nothing. No trained cross-encoder can be fetched here; the time a re-ranking stage takes
depends only on the architecture and the pair lengths, which this reproduces.

usage: make_bench_reranker.py MINILM_DIR OUT_DIR
"""
import json
import random
import shutil
import struct
import sys
from pathlib import Path


def main(src, out):
    src, out = Path(src), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    raw = (src / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    header.pop("__metadata__", None)

    tensors = []
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        start, end = info["data_offsets"]
        tensors.append(("bert." + name, info["dtype"], info["shape"], data[start:end]))
    hidden = json.loads((src / "config.json").read_text())["hidden_size"]
    rng = random.Random(20261128)
    weight = [rng.gauss(0.0, 0.05) for _ in range(hidden)]
    tensors.append(("classifier.weight", "F32", [1, hidden], struct.pack(f"<{hidden}f", *weight)))
    tensors.append(("classifier.bias", "F32", [1], struct.pack("<f", 0.0)))

    new_header, offset, blobs = {}, 0, []
    for name, dtype, shape, blob in tensors:
        new_header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    encoded = json.dumps(new_header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(out / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for blob in blobs:
            f.write(blob)

    config = json.loads((src / "config.json").read_text())
    config.update(architectures=["BertForSequenceClassification"], id2label={"0": "LABEL_0"}, label2id={"LABEL_0": 0})
    (out / "config.json").write_text(json.dumps(config, indent=2))
    shutil.copy(src / "tokenizer.json", out / "tokenizer.json")
    (out / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 512}))
    print(f"latency-only cross-encoder (random head) → {out}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
