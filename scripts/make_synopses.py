#!/usr/bin/env python3
"""Reads `apt-cache dumpavail` on stdin and writes N Debian package synopses as JSON Lines
({"id": package, "text": synopsis}), drawn with a fixed seed from the unique packages in
name order: real, varied short texts for the recall test and benchmarks.

usage: apt-cache dumpavail | make_synopses.py N OUT.jsonl
"""
import json
import random
import sys


def main(n, out_path):
    synopses = {}
    package = None
    for line in sys.stdin:
        if line.startswith("Package: "):
            package = line[len("Package: "):].strip()
        elif line.startswith("Description: ") and package:
            synopses.setdefault(package, line[len("Description: "):].strip())
            package = None
    names = sorted(synopses)
    if len(names) < n:
        sys.exit(f"only {len(names)} packages with a description; run apt-get update first")
    chosen = random.Random(20261128).sample(names, n)
    with open(out_path, "w", encoding="utf-8") as out:
        for name in chosen:
            out.write(json.dumps({"id": name, "text": synopses[name]}, ensure_ascii=False) + "\n")
    print(f"{n} synopses of {len(names)} packages → {out_path}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(int(sys.argv[1]), sys.argv[2])
