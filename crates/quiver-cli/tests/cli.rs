//! The `quiver` binary as scripts use it: real model, real files, exit codes and JSON.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_owned()
}

fn model() -> PathBuf {
    let dir = root().join("models/all-MiniLM-L6-v2");
    assert!(dir.join("model.safetensors").is_file(), "run scripts/setup.sh first: {} has no model", dir.display());
    dir
}

fn quiver(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quiver")).args(args).current_dir(root()).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = quiver(args);
    assert!(out.status.success(), "quiver {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str], needle: &str) {
    let out = quiver(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "quiver {args:?} should fail: {stderr}");
    assert!(stderr.contains(needle), "quiver {args:?}: expected {needle:?} in {stderr}");
}

const PRODUCTS: &str = r#"{"id": "p1", "title": "Stainless steel cocktail shaker", "category": "Bar", "price": 24.5}
{"id": "p2", "title": "Velvet lounge armchair with brass legs", "category": "Furniture", "price": 750}
{"id": "p3", "title": "Laboratory refrigerator for storing medicines", "category": "Appliances", "price": 1200}
{"id": "p4", "title": "Crystal red wine glasses, set of four", "category": "Bar", "price": 39}
{"id": "p5", "title": "Hydraulic excavator for deep mining", "category": "Machines", "price": 250000}
"#;

#[test]
fn index_search_info_remove_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    std::fs::write(p("products.jsonl"), PRODUCTS).unwrap();
    let m = model();
    let m = m.to_str().unwrap();

    ok(&["index", "--model", m, "--input", &p("products.jsonl"), "--text-field", "title", "--output", &p("shop.qvr")]);
    let info: Value = serde_json::from_str(&ok(&["info", &p("shop.qvr"), "--json"])).unwrap();
    assert_eq!(info["count"], 5);
    assert_eq!(info["model"]["id"], "sentence-transformers/all-MiniLM-L6-v2");

    // Without --model the index's model is found under models/.
    let out: Value = serde_json::from_str(&ok(&[
        "search",
        "--index",
        &p("shop.qvr"),
        "--json",
        "--k",
        "2",
        "fridge for medication",
    ]))
    .unwrap();
    assert_eq!(out["results"][0]["id"], "p3");
    assert_eq!(out["results"][0]["metadata"]["category"], "Appliances");

    for strategy in ["exact", "int8", "binary", "binary-rescore"] {
        let out: Value = serde_json::from_str(&ok(&[
            "search",
            "--index",
            &p("shop.qvr"),
            "--model",
            m,
            "--json",
            "--strategy",
            strategy,
            "--filter",
            "category=Bar",
            "--filter",
            "price<30",
            "drinks",
        ]))
        .unwrap();
        let ids: Vec<&str> = out["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["p1"], "{strategy}");
    }

    std::fs::write(
        p("queries.jsonl"),
        "\"digging machine\"\n{\"id\": \"q2\", \"query\": \"glass for wine\", \"filter\": {\"category\": \"Bar\"}}\n\n{\"query\": \"sofa chair\"}\n",
    )
    .unwrap();
    let lines: Vec<Value> =
        ok(&["search", "--index", &p("shop.qvr"), "--model", m, "--k", "1", "--queries", &p("queries.jsonl")])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let tops: Vec<&str> = lines.iter().map(|l| l["results"][0]["id"].as_str().unwrap()).collect();
    assert_eq!(tops, ["p5", "p4", "p2"]);
    assert_eq!(lines[1]["id"], "q2");

    ok(&["remove", "--index", &p("shop.qvr"), "p5"]);
    let info: Value = serde_json::from_str(&ok(&["info", &p("shop.qvr"), "--json"])).unwrap();
    assert_eq!(info["count"], 4);
    fails(&["remove", "--index", &p("shop.qvr"), "p5"], "unknown id");

    // encode → .npy → index --vectors gives the same ranking as embedding in place.
    ok(&["encode", "--model", m, "--input", &p("products.jsonl"), "--text-field", "title", "--output", &p("v.npy")]);
    ok(&[
        "index",
        "--vectors",
        &p("v.npy"),
        "--model",
        m,
        "--input",
        &p("products.jsonl"),
        "--text-field",
        "title",
        "--output",
        &p("imported.qvr"),
    ]);
    let out: Value = serde_json::from_str(&ok(&[
        "search",
        "--index",
        &p("imported.qvr"),
        "--json",
        "--k",
        "1",
        "fridge for medication",
    ]))
    .unwrap();
    assert_eq!(out["results"][0]["id"], "p3");
    ok(&["export", "--index", &p("imported.qvr"), "--output", &p("back.npy")]);
    let read = |name: &str| quiver::index::npy::read_npy(std::fs::File::open(p(name)).unwrap()).unwrap();
    let (exported, encoded) = (read("back.npy"), read("v.npy"));
    assert_eq!((exported.rows, exported.cols), (5, 384));
    // The cosine index stores vectors renormalised: equal up to rounding.
    assert!(exported.data.iter().zip(&encoded.data).all(|(a, b)| (a - b).abs() < 1e-6));
}

#[test]
fn bad_input_fails_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let m = model();
    let m = m.to_str().unwrap();
    std::fs::write(p("products.jsonl"), PRODUCTS).unwrap();
    ok(&["index", "--model", m, "--input", &p("products.jsonl"), "--text-field", "title", "--output", &p("shop.qvr")]);

    let mut bytes = std::fs::read(p("shop.qvr")).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(p("flipped.qvr"), &bytes).unwrap();
    fails(&["search", "--index", &p("flipped.qvr"), "--model", m, "x"], "corrupted");
    std::fs::write(p("cut.qvr"), &bytes[..100]).unwrap();
    fails(&["info", &p("cut.qvr")], "truncated");
    fails(&["search", "--index", &p("missing.qvr"), "--model", m, "x"], "missing.qvr");
    fails(&["index", "--model", &p("no-model"), "--input", &p("products.jsonl"), "--output", &p("x.qvr")], "no-model");

    std::fs::write(p("broken.jsonl"), "{\"text\": \"fine\"}\n{oops\n").unwrap();
    fails(&["index", "--model", m, "--input", &p("broken.jsonl"), "--output", &p("b.qvr")], "broken.jsonl:2");
    assert!(!Path::new(&p("b.qvr")).exists(), "a failed build writes no index");
    fails(&["index", "--model", m, "--input", &p("products.jsonl"), "--output", &p("t.qvr")], "--text-field");

    std::fs::write(p("q.jsonl"), "{\"query\": \"x\", \"filter\": {\"price\": {\"between\": 3}}}\n").unwrap();
    fails(&["search", "--index", &p("shop.qvr"), "--model", m, "--queries", &p("q.jsonl")], "q.jsonl:1");
    fails(&["search", "--index", &p("shop.qvr"), "--model", m, "--filter", "price<cheap", "x"], "needs a number");
}

#[test]
fn bench_embed_speaks_the_peers_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let corpus: String = (0..40)
        .map(|i| format!("{{\"id\": \"{i}\", \"text\": \"text number {i} {}\"}}\n", "word ".repeat(i)))
        .collect();
    std::fs::write(p("corpus.jsonl"), corpus).unwrap();
    let m = model();
    ok(&[
        "bench-embed",
        "--model",
        m.to_str().unwrap(),
        "--corpus",
        &p("corpus.jsonl"),
        "--limit",
        "30",
        "--batch-size",
        "8",
        "--threads",
        "2",
        "--out",
        &p("out.npy"),
        "--json",
        &p("out.json"),
    ]);
    let report: Value = serde_json::from_slice(&std::fs::read(p("out.json")).unwrap()).unwrap();
    assert_eq!(report["peer"], "quiver");
    assert_eq!(report["n_docs"], 30);
    assert!(report["tokens_per_s"].as_f64().unwrap() > 0.0);
    let npy = std::fs::read(p("out.npy")).unwrap();
    assert_eq!(npy.len(), 128 + 30 * 384 * 4);
}
