#!/usr/bin/env python3
"""Writes a BEIR-format evaluation folder for the sample product catalogue: a corpus built from
data/catalogue.jsonl in one language flavour, plus the judged queries and qrels committed in
tests/data/eval/catalogue/, filtered to the query groups that fit that flavour.

Flavours (--lang):
  en    title + description in English            (documents: title, description)
  de    title + description in German             (documents: title_de, description_de)
  both  English and German texts in one document  (title "EN | DE", text "description\\n\\ndescription_de")

Query groups (--queries, a comma-separated list of id prefixes; a query is kept when its id starts
with one of them followed by "-"):
  en     English queries             (run against --lang en, or --lang both)
  de     German queries              (run against --lang de, or --lang both)
  x-en   English queries, cross-lingual: meant for --lang de (the corpus has no English text)
  x-de   German queries, cross-lingual: meant for --lang en (the corpus has no German text)
  x      both cross-lingual groups
Default: en → "en,x-de"; de → "de,x-en"; both → "en,de,x".

Output (OUT/corpus.jsonl, OUT/queries.jsonl, OUT/qrels/test.tsv) is what `quiver eval --data OUT`
reads. The corpus always holds all 189 products; only the queries and qrels are filtered.

usage: make_catalogue_beir.py --lang en|de|both [--queries PREFIXES] [--catalogue data/catalogue.jsonl]
                              [--judged tests/data/eval/catalogue] --out OUT

examples:
  python3 scripts/make_catalogue_beir.py --lang en --queries en --out artifacts/eval/catalogue-en
  python3 scripts/make_catalogue_beir.py --lang de --queries x-en --out artifacts/eval/catalogue-x-en
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_GROUPS = {"en": "en,x-de", "de": "de,x-en", "both": "en,de,x"}


def document(product, lang):
    if lang == "en":
        title, text = product["title"], product["description"]
    elif lang == "de":
        title, text = product["title_de"], product["description_de"]
    else:
        title = f'{product["title"]} | {product["title_de"]}'
        text = f'{product["description"]}\n\n{product["description_de"]}'
    return {"_id": product["id"], "title": title or "", "text": (text or "").strip()}


def wanted(query_id, prefixes):
    return any(query_id.startswith(p + "-") for p in prefixes)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lang", required=True, choices=["en", "de", "both"])
    ap.add_argument("--queries", help="comma-separated query-id prefixes (default depends on --lang)")
    ap.add_argument("--catalogue", default=str(ROOT / "data" / "catalogue.jsonl"))
    ap.add_argument("--judged", default=str(ROOT / "tests" / "data" / "eval" / "catalogue"),
                    help="folder with the committed queries.jsonl and qrels/test.tsv")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    prefixes = [p.strip() for p in (args.queries or DEFAULT_GROUPS[args.lang]).split(",") if p.strip()]
    products = [json.loads(line) for line in open(args.catalogue, encoding="utf-8") if line.strip()]
    ids = {p["id"] for p in products}
    if len(ids) != len(products):
        sys.exit("duplicate product ids in " + args.catalogue)

    judged = Path(args.judged)
    queries = [json.loads(line) for line in open(judged / "queries.jsonl", encoding="utf-8") if line.strip()]
    queries = [q for q in queries if wanted(q["_id"], prefixes)]
    if not queries:
        sys.exit(f"no queries match the prefixes {prefixes}")
    keep = {q["_id"] for q in queries}
    with open(judged / "qrels" / "test.tsv", encoding="utf-8") as f:
        header = f.readline()
        qrels = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    qrels = [r for r in qrels if r[0] in keep]
    missing = sorted({r[1] for r in qrels} - ids)
    if missing:
        sys.exit(f"qrels name products not in {args.catalogue}: {', '.join(missing)}")

    out = Path(args.out)
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as f:
        for product in products:
            f.write(json.dumps(document(product, args.lang), ensure_ascii=False) + "\n")
    with open(out / "queries.jsonl", "w", encoding="utf-8") as f:
        for q in queries:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    with open(out / "qrels" / "test.tsv", "w", encoding="utf-8") as f:
        f.write(header)
        for r in qrels:
            f.write("\t".join(r) + "\n")
    print(f"{len(products)} documents ({args.lang}), {len(queries)} queries ({','.join(prefixes)}), "
          f"{len(qrels)} judgements → {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
