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
    // `passage` names the same prefix as `document`, the default.
    let encode = ["encode", "--model", m, "--input", &p("products.jsonl"), "--text-field", "title", "--prefix"];
    ok(&[&encode[..], &["passage", "--output", &p("passage.npy")]].concat());
    assert_eq!(read("passage.npy").data, encoded.data);
    ok(&[&encode[..], &["query", "--output", &p("query.npy")]].concat());
    assert_eq!(read("query.npy").rows, 5);
    // Vectors and records pair up one to one.
    std::fs::write(p("two.jsonl"), "{\"text\": \"a\"}\n{\"text\": \"b\"}\n").unwrap();
    fails(
        &["index", "--vectors", &p("v.npy"), "--input", &p("two.jsonl"), "--output", &p("x.qvr")],
        "5 vectors but 2 records",
    );
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
    assert_eq!(report["variant"], "cpu-f32");
    assert_eq!(report["n_docs"], 30);
    assert!(report["tokens_per_s"].as_f64().unwrap() > 0.0);
    let npy = std::fs::read(p("out.npy")).unwrap();
    assert_eq!(npy.len(), 128 + 30 * 384 * 4);
}

fn shared() -> PathBuf {
    let dir = std::env::var_os("QUIVER_SHARED").map(PathBuf::from).unwrap_or_else(|| root().join("../shared"));
    assert!(dir.join("fixtures").is_dir(), "the team's shared folder is missing: {}", dir.display());
    dir
}

/// `quiver COMMAND --model <all-MiniLM-L6-v2> --data <the judged Debian set> ARGS… --json`,
/// parsed.
fn on_debian_set(command: &str, args: &[&str]) -> Value {
    let (m, set) = (model(), root().join("tests/data/eval/debian-packages"));
    let head = [command, "--model", m.to_str().unwrap(), "--data", set.to_str().unwrap()];
    serde_json::from_str(&ok(&[&head[..], args, &["--json"]].concat())).unwrap()
}

#[test]
fn eval_prints_the_stable_json_form() {
    let out = on_debian_set("eval", &["--strategy", "exact", "--k", "10"]);
    for key in ["ndcg@10", "recall@10", "recall@100", "mrr@10", "precision@10"] {
        let v = out[key].as_f64().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    assert_eq!(out["queries"], 42);
    assert!(out["ndcg@10"].as_f64().unwrap() > 0.7, "{out}");
}

#[test]
fn eval_compares_index_kinds_and_dimensions_and_writes_a_trec_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run.trec");
    let out = on_debian_set(
        "eval",
        &[
            "--strategy",
            "exact",
            "--compare",
            "binary,binary-rescore,keyword,hybrid",
            "--dims",
            "384,128",
            "--trec-run",
            run.to_str().unwrap(),
        ],
    );
    let setups = out["setups"].as_array().unwrap();
    let labels: Vec<&str> = setups.iter().map(|s| s["strategy"].as_str().unwrap()).collect();
    assert_eq!(labels.len(), 10, "{labels:?}");
    assert_eq!(labels[0], "exact@384");
    let ndcg = |label: &str| setups.iter().find(|s| s["strategy"] == label).unwrap()["ndcg@10"].as_f64().unwrap();
    // Rescoring recovers what binary codes lose; fewer dimensions cost quality.
    assert!(ndcg("binary-rescore@384") >= 0.99 * ndcg("exact@384"));
    assert!(ndcg("binary@384") < ndcg("binary-rescore@384"));
    assert!(ndcg("exact@128") < ndcg("exact@384"));
    assert!(ndcg("keyword@384") > 0.2 && ndcg("hybrid@384") > ndcg("keyword@384"));
    let trec = std::fs::read_to_string(&run).unwrap();
    let first = trec.lines().next().unwrap();
    assert_eq!(first.split(' ').count(), 6, "{first}");
    assert!(trec.lines().any(|l| l.ends_with("all-MiniLM-L6-v2:hybrid@128")));
}

#[test]
fn eval_rejects_bad_sets_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("qrels")).unwrap();
    std::fs::write(dir.path().join("corpus.jsonl"), "{\"_id\": \"d1\", \"text\": \"a\"}\n").unwrap();
    std::fs::write(dir.path().join("queries.jsonl"), "{\"_id\": \"q1\", \"text\": \"a\"}\n").unwrap();
    std::fs::write(dir.path().join("qrels/test.tsv"), "query-id\tcorpus-id\tscore\nq1\td2\t1\n").unwrap();
    let m = model();
    fails(
        &["eval", "--model", m.to_str().unwrap(), "--data", dir.path().to_str().unwrap()],
        "test.tsv:2: document id \"d2\" is not in corpus.jsonl",
    );
}

#[test]
fn keyword_hybrid_and_reranked_search_and_matryoshka_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    std::fs::write(p("products.jsonl"), PRODUCTS).unwrap();
    let m = model();
    let m = m.to_str().unwrap();
    ok(&["index", "--model", m, "--input", &p("products.jsonl"), "--text-field", "title", "--output", &p("shop.qvr")]);
    let ids = |out: &str| -> Vec<String> {
        let v: Value = serde_json::from_str(out).unwrap();
        v["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
    };
    let shop = p("shop.qvr");
    let search = |extra: &[&str], query: &str| {
        let mut args = vec!["search", "--index", &shop, "--model", m, "--json", "--k", "3"];
        args.extend_from_slice(extra);
        args.push(query);
        ok(&args)
    };
    // Keyword search finds the exact word only; accents and case folded.
    assert_eq!(ids(&search(&["--mode", "keyword"], "CRYSTAL gläses")), ["p4"]);
    assert_eq!(ids(&search(&["--mode", "hybrid"], "fridge for medicines"))[0], "p3");

    // The tiny cross-encoder's scores are random, but they replace the search scores.
    let ce = shared().join("fixtures/tiny-cross-encoder");
    let reranked: Value = serde_json::from_str(&search(
        &["--rerank", ce.to_str().unwrap(), "--rerank-top", "5"],
        "something to serve cocktails",
    ))
    .unwrap();
    let scores: Vec<f64> =
        reranked["results"].as_array().unwrap().iter().map(|r| r["score"].as_f64().unwrap()).collect();
    assert_eq!(scores.len(), 3);
    assert!(scores.windows(2).all(|w| w[0] >= w[1]) && scores.iter().all(|s| (0.0..=1.0).contains(s)), "{scores:?}");

    // Matryoshka: 128 dimensions recorded, queries cut to match.
    ok(&[
        "index",
        "--model",
        m,
        "--input",
        &p("products.jsonl"),
        "--text-field",
        "title",
        "--dims",
        "128",
        "--output",
        &p("small.qvr"),
    ]);
    let info: Value = serde_json::from_str(&ok(&["info", &p("small.qvr"), "--json"])).unwrap();
    assert_eq!((info["config"]["dim"].as_u64(), info["model"]["dims"].as_u64()), (Some(128), Some(128)));
    let out = ok(&["search", "--index", &p("small.qvr"), "--model", m, "--json", "--k", "1", "digs deep mines"]);
    assert_eq!(ids(&out), ["p5"]);

    // Without a keyword index, keyword search is a typed error.
    ok(&[
        "index",
        "--model",
        m,
        "--input",
        &p("products.jsonl"),
        "--text-field",
        "title",
        "--no-keyword",
        "--output",
        &p("plain.qvr"),
    ]);
    fails(&["search", "--index", &p("plain.qvr"), "--model", m, "--mode", "hybrid", "x"], "keyword");
}

#[test]
fn diagnose_draws_histograms_and_explains_a_query() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("sims.svg");
    let out = on_debian_set(
        "diagnose",
        &["--plot", svg.to_str().unwrap(), "--query", "keep track of changes to my source code"],
    );
    let docs = &out["document_document"];
    assert_eq!(docs["count"], 567 * 566 / 2);
    assert!(docs["mean"].as_f64().unwrap() < 0.3, "{docs}");
    assert_eq!(out["query_document"]["count"], 42 * 567);
    let explain = out["explain"].as_array().unwrap();
    assert_eq!(explain.len(), 10);
    assert!(explain[0]["ranks"]["binary-rescore"].is_u64());
    assert!(explain.iter().any(|r| ["git", "mercurial", "subversion"].contains(&r["id"].as_str().unwrap())));
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.starts_with("<svg") && picture.contains("document–document") && picture.contains("<rect"));
}

#[test]
fn diagnose_flags_near_duplicates_and_empty_texts() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let docs = format!(
        "{PRODUCTS}{}\n{}\n",
        r#"{"id": "dup", "title": "STAINLESS STEEL COCKTAIL SHAKER", "category": "Bar"}"#,
        r#"{"id": "blank", "title": " ", "category": "Bar"}"#
    );
    std::fs::write(p("products.jsonl"), docs).unwrap();
    let m = model();
    let m = m.to_str().unwrap();
    ok(&["index", "--model", m, "--input", &p("products.jsonl"), "--text-field", "title", "--output", &p("shop.qvr")]);
    let out: Value =
        serde_json::from_str(&ok(&["diagnose", "--index", &p("shop.qvr"), "--model", m, "--json"])).unwrap();
    let codes: Vec<&str> = out["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
    assert!(codes.contains(&"near_duplicates") && codes.contains(&"degenerate_texts"), "{out}");
    assert_eq!(out["near_duplicates"][0]["a"], "p1");
    assert_eq!(out["near_duplicates"][0]["b"], "dup");
    assert!(out["degenerate"].as_array().unwrap().iter().any(|d| d["id"] == "blank"));
}

#[test]
fn a_quantized_model_indexes_and_searches() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    std::fs::write(p("products.jsonl"), PRODUCTS).unwrap();
    let m = model();

    let printed = ok(&["quantize", "--model", m.to_str().unwrap(), "--to", "q8_0", "--output", &p("minilm-q8")]);
    assert!(printed.contains("q8_0"), "{printed}");
    assert!(Path::new(&p("minilm-q8/model.gguf")).is_file() && !Path::new(&p("minilm-q8/model.safetensors")).exists());
    let q8 = p("minilm-q8");
    ok(&[
        "index",
        "--model",
        &q8,
        "--input",
        &p("products.jsonl"),
        "--text-field",
        "title",
        "--output",
        &p("shop.qvr"),
    ]);
    let out: Value = serde_json::from_str(&ok(&[
        "search",
        "--index",
        &p("shop.qvr"),
        "--model",
        &q8,
        "--json",
        "fridge for medication",
    ]))
    .unwrap();
    assert_eq!(out["results"][0]["id"], "p3");

    // The GPU reads the GGUF too (lavapipe in CI; a machine without any adapter says so).
    let encode = ["encode", "--model", &q8, "--input", &p("products.jsonl"), "--text-field", "title", "--output"];
    let out = quiver(&[&encode[..], &[&p("q8.npy"), "--backend", "gpu"]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let no_adapter = std::env::var_os("CI").is_none() && stderr.contains("no GPU adapter");
    assert!(stderr.contains("backend: gpu") || no_adapter, "{stderr}");

    // The index knows its model: the float32 weights make other vectors.
    fails(&["search", "--index", &p("shop.qvr"), "--model", m.to_str().unwrap(), "fridge"], "the query model is");
    let unknown = quiver(&["quantize", "--model", m.to_str().unwrap(), "--to", "q3", "--output", &p("x")]);
    assert!(!unknown.status.success() && String::from_utf8_lossy(&unknown.stderr).contains("q8_0, q4_0 or f16"));
    fails(&["quantize", "--model", m.to_str().unwrap(), "--to", "q4_0", "--output", &q8], "already holds a model");
}

// A search that works prints no `error:` line: not where the session has no runtime folder
// (Mesa's drivers complain then when a GPU is opened), neither when `auto` calibrates nor
// when it follows its cached decision.
#[test]
fn a_successful_search_prints_no_error_lines() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    std::fs::write(p("products.jsonl"), PRODUCTS).unwrap();
    let m = model();
    let m = m.to_str().unwrap();
    let index = ["index", "--model", m, "--input", &p("products.jsonl"), "--text-field", "title", "--backend", "cpu"];
    ok(&[&index[..], &["--output", &p("shop.qvr")]].concat());
    let shop = p("shop.qvr");
    let search = |extra: &[&str]| {
        let args = [&["search", "--index", &shop, "--model", m, "--k", "2"][..], extra, &["cocktail shaker"]].concat();
        let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
            .args(&args)
            .env_remove("XDG_RUNTIME_DIR")
            .env("QUIVER_CACHE_DIR", p("cache"))
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "quiver {args:?} failed:\n{stderr}");
        assert!(String::from_utf8(out.stdout).unwrap().contains("p1"));
        assert!(!stderr.lines().any(|line| line.starts_with("error")), "quiver {args:?}:\n{stderr}");
        stderr
    };
    // A budget any adapter fits in: the decision is conclusive and cached (without an
    // adapter nothing is cached, and both searches run on the CPU).
    let first = search(&["--calibration-budget-ms", "600000"]);
    let second = search(&[]);
    if first.contains("calibrated now") {
        assert!(second.contains("cached for this model"), "{second}");
    }
    fails(&["search", "--index", &p("shop.qvr"), "--calibration-budget-ms", "0", "x"], "calibration budget");
}
