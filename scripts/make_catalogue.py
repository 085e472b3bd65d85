#!/usr/bin/env python3
"""Turns the commercetools sample-data presets (npm package
@commercetools/composable-commerce-test-data-sample-presets 1.1.0, MIT) into a product
catalogue in JSON Lines: one product per line with English and German names and
descriptions, categories, SKU, prices and image URL.

The package builds its products with JavaScript builder chains whose runtime dependency is
no longer published, so this reads the builder calls from the compiled sources instead.

usage: make_catalogue.py PACKAGE_DIR OUT.jsonl
"""
import json
import re
import sys
from pathlib import Path

STRING = r"""(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")"""


def text(m, group=1):
    """The string literal matched at `group` (single- or double-quoted)."""
    value = m.group(group) if m.group(group) is not None else m.group(group + 1)
    return unescape(value)


def unescape(s):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), s)


def localized(block, locale):
    m = re.search(r"\['" + re.escape(locale) + r"'\]\(" + STRING + r"\)", block)
    return text(m) if m else None


def segment(src, start, ends):
    """The text of a builder call from `start` up to the first of `ends` after it."""
    i = src.find(start)
    if i < 0:
        return ""
    stops = [j for j in (src.find(e, i + len(start)) for e in ends) if j >= 0]
    return src[i: min(stops) if stops else len(src)]


def camel_to_kebab(name):
    return re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", name).lower()


def category_names(root, dataset):
    names = {}
    for path in (root / "category" / dataset).glob("*.js"):
        src = path.read_text()
        key = re.search(r"\.key\(" + STRING + r"\)", src)
        name = localized(segment(src, ".name(", [".slug(", ".description(", ".orderHint("]), "en-US")
        if key and name:
            names[path.stem] = name
    return names


def standalone_prices(root, dataset):
    """sku → {currency: amount} from standalone prices (the B2B set prices this way)."""
    prices = {}
    for path in (root / "standalone-price" / dataset).glob("*.js"):
        src = path.read_text()
        sku = re.search(r"\.sku\(" + STRING + r"\)", src)
        m = re.search(r"currencyCode\('([A-Z]{3})'\)\.centAmount\((\d+)\)", src)
        if sku and m:
            prices.setdefault(text(sku), {}).setdefault(m.group(1), int(m.group(2)) / 100)
    return prices


def variants(root, dataset):
    found = {}
    standalone = standalone_prices(root, dataset)
    for path in (root / "product" / "product-variant" / dataset).glob("*.js"):
        src = path.read_text()
        key = re.search(r"\.key\(" + STRING + r"\)", src)
        if not key:
            continue
        prices = {}
        for m in re.finditer(
            r"currencyCode\('([A-Z]{3})'\)\.centAmount\((\d+)\)\)\s*(\.channel[^\n]*\n\s*)?\.country\('([A-Z]{2})'\)", src
        ):
            currency, cents, channel, country = m.groups()
            if not channel:
                prices.setdefault(currency, int(cents) / 100)
        sku = re.search(r"\.sku\(" + STRING + r"\)", src)
        image = re.search(r"\.url\(" + STRING + r"\)", src)
        if sku and not prices:
            prices = standalone.get(text(sku), {})
        found[text(key)] = {
            "sku": text(sku) if sku else None,
            "prices": prices,
            "image": text(image) if image else None,
        }
    return found


def main(package_dir, out_path):
    root = Path(package_dir) / "dist"
    products = []
    # The fashion set has English placeholder names only ("Sample Denim Jacket"): left out.
    for dataset_dir in sorted((root / "product" / "product").glob("sample-data-b*")):
        dataset = dataset_dir.name
        cats = category_names(root, dataset)
        vars_ = variants(root, dataset)
        for path in sorted(dataset_dir.glob("*.js")):
            if path.stem == "index":
                continue
            src = path.read_text()
            start = src.find("ProductDraft.presets")
            key = re.compile(r"\.key\(" + STRING + r"\)").search(src, start) if start >= 0 else None
            if not key:
                continue
            name = segment(src, ".name(", [".description(", ".slug("])
            desc = segment(src, ".description(", [".slug(", ".productType("])
            # Category variables: const fooDraft = category_1.CategoryDraftPresets.set.preset()
            cat_vars = dict(re.findall(r"const (\w+) = category_1\.CategoryDraftPresets\.\w+\s*\.(\w+)\(\)", src))
            listed = re.findall(r"category\(\)\s*\.key\((\w+)\.key\)", segment(src, ".categories([", ["]);"]))
            categories = [cats.get(camel_to_kebab(cat_vars[v]), cat_vars[v]) for v in listed if v in cat_vars]
            master = re.search(r"\.masterVariant\(product_variant_1\.ProductVariantDraftPresets\.\w+\.(\w+)\(\)", src)
            variant = vars_.get(master.group(1), {}) if master else {}
            prices = variant.get("prices", {})
            currency = "USD" if "USD" in prices else next(iter(prices), None)
            product = {
                "id": text(key),
                "title": localized(name, "en-US") or localized(name, "en-GB"),
                "title_de": localized(name, "de-DE"),
                "description": localized(desc, "en-US") or localized(desc, "en-GB") or "",
                "description_de": localized(desc, "de-DE") or "",
                "category": categories[0] if categories else None,
                "categories": categories,
                "price": prices.get(currency) if currency else None,
                "currency": currency,
                "sku": variant.get("sku"),
                "image": variant.get("image"),
                "collection": dataset.removeprefix("sample-data-"),
            }
            if product["title"]:
                products.append(product)
    with open(out_path, "w", encoding="utf-8") as out:
        for p in products:
            out.write(json.dumps(p, ensure_ascii=False) + "\n")
    print(f"{len(products)} products → {out_path}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
