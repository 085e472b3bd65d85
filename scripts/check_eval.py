#!/usr/bin/env python3
"""Checks a judged evaluation set in BEIR format: every line of corpus.jsonl and queries.jsonl
parses, ids are unique and non-empty, qrels/test.tsv has the BEIR header, grades are 1 or 2, every
judgement names a known query and a known document, no pair is judged twice, and every query has
at least one judgement of grade 2. Prints counts; exits non-zero on the first set with a problem.

usage: check_eval.py DIR [--corpus FILE] [--id-field FIELD]
  --corpus    take document ids from FILE instead of DIR/corpus.jsonl (for the catalogue set,
              whose corpus is generated: --corpus data/catalogue.jsonl --id-field id)

examples:
  python3 scripts/check_eval.py tests/data/eval/debian-packages
  python3 scripts/check_eval.py tests/data/eval/catalogue --corpus data/catalogue.jsonl --id-field id
"""
import argparse
import json
import sys
from collections import Counter
from pathlib import Path


def read_jsonl(path, id_field):
    ids, problems = [], []
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        if not line.strip():
            problems.append(f"{path}:{n}: empty line")
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{path}:{n}: {e}")
            continue
        value = obj.get(id_field)
        if not isinstance(value, str) or not value:
            problems.append(f"{path}:{n}: no {id_field}")
            continue
        if id_field == "_id" and not isinstance(obj.get("text"), str):
            problems.append(f"{path}:{n}: no text")
        ids.append(value)
    for value, count in Counter(ids).items():
        if count > 1:
            problems.append(f"{path}: id {value!r} appears {count} times")
    return set(ids), problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--corpus")
    ap.add_argument("--id-field", default="_id")
    args = ap.parse_args()
    root = Path(args.dir)

    docs, problems = read_jsonl(args.corpus or root / "corpus.jsonl", args.id_field)
    queries, more = read_jsonl(root / "queries.jsonl", "_id")
    problems += more

    grades, judged, seen = Counter(), Counter(), set()
    with open(root / "qrels" / "test.tsv", encoding="utf-8") as f:
        header = f.readline().rstrip("\n")
        if header != "query-id\tcorpus-id\tscore":
            problems.append(f"qrels: header is {header!r}")
        for n, line in enumerate(f, 2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3:
                problems.append(f"qrels:{n}: {len(fields)} fields")
                continue
            q, d, score = fields
            if q not in queries:
                problems.append(f"qrels:{n}: unknown query {q!r}")
            if d not in docs:
                problems.append(f"qrels:{n}: unknown document {d!r}")
            if score not in ("1", "2"):
                problems.append(f"qrels:{n}: grade {score!r}")
            if (q, d) in seen:
                problems.append(f"qrels:{n}: ({q}, {d}) judged twice")
            seen.add((q, d))
            grades[score] += 1
            if score == "2":
                judged[q] += 1
    for q in sorted(queries - set(judged)):
        problems.append(f"query {q!r} has no judgement of grade 2")

    for p in problems:
        print(p, file=sys.stderr)
    per_query = Counter(q for q, _ in seen)
    print(f"{root}: {len(docs)} documents, {len(queries)} queries, {sum(grades.values())} judgements "
          f"(grade 2: {grades['2']}, grade 1: {grades['1']}), "
          f"{min(per_query.values(), default=0)}-{max(per_query.values(), default=0)} per query"
          + (f"; {len(problems)} problems" if problems else "; ok"))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
