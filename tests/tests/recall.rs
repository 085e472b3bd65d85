//! Binary quantization with rescoring against exact search, on 10,000 real texts (Debian
//! package synopses, drawn with a fixed seed by `scripts/make_synopses.py`) embedded with
//! the real all-MiniLM-L6-v2.

use quiver::EmbedOptions;
use quiver_encoder::{Encoder, TextKind};
use quiver_index::{Document, FlatIndex, IndexConfig, Rescore, SearchOptions, Strategy, ThresholdKind};
use quiver_tests::{data_file, minilm_dir};

const DOCS: usize = 10_000;
const QUERIES: usize = 500;
const K: usize = 10;

fn recall(index: &FlatIndex, queries: &quiver_encoder::Embeddings, options: &SearchOptions) -> f64 {
    let exact_options = SearchOptions { k: K, ..Default::default() };
    let mut found = 0usize;
    for q in queries.rows() {
        let exact: Vec<usize> = index.search(q, &exact_options).unwrap().iter().map(|h| h.row).collect();
        let approx = index.search(q, options).unwrap();
        found += approx.iter().filter(|h| exact.contains(&h.row)).count();
    }
    found as f64 / (K * queries.len()) as f64
}

#[test]
fn binary_rescore_keeps_exact_recall_on_real_embeddings() {
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(data_file("debian-synopses.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= DOCS + QUERIES, "need {} synopses, have {}", DOCS + QUERIES, lines.len());
    let texts: Vec<&str> = lines.iter().map(|l| l["text"].as_str().unwrap()).collect();
    let encoder = Encoder::from_dir(minilm_dir()).unwrap();
    let options = EmbedOptions { batch_size: 64, ..Default::default() };
    let docs = quiver::embed(&encoder, &texts[..DOCS], &options).unwrap();
    let queries =
        quiver::embed(&encoder, &texts[DOCS..DOCS + QUERIES], &EmbedOptions { kind: TextKind::Query, ..options })
            .unwrap();

    let mut report = Vec::new();
    for threshold in [ThresholdKind::Mean, ThresholdKind::Zero] {
        let mut index = FlatIndex::new(IndexConfig { threshold, ..IndexConfig::new(encoder.dim()) }).unwrap();
        let batch: Vec<Document> = docs
            .rows()
            .enumerate()
            .map(|(i, v)| Document {
                text: None,
                id: lines[i]["id"].as_str().unwrap().into(),
                vector: v,
                metadata: Default::default(),
            })
            .collect();
        index.upsert(&batch).unwrap();
        index.retrain_thresholds();
        let strategies = [
            ("int8", SearchOptions { k: K, strategy: Strategy::Int8, ..Default::default() }),
            ("binary", SearchOptions { k: K, strategy: Strategy::Binary, ..Default::default() }),
            ("binary-rescore-f32", SearchOptions { k: K, strategy: Strategy::BinaryRescore, ..Default::default() }),
            (
                "binary-rescore-int8",
                SearchOptions { k: K, strategy: Strategy::BinaryRescore, rescore: Rescore::Int8, ..Default::default() },
            ),
        ];
        for (name, options) in strategies {
            let r = recall(&index, &queries, &options);
            eprintln!("threshold {threshold:?}: {name} recall@{K} = {r:.4}");
            report.push((threshold, name, r));
        }
        for oversample in [5, 10, 20, 30, 40, 60] {
            let options = SearchOptions { k: K, strategy: Strategy::BinaryRescore, oversample, ..Default::default() };
            eprintln!(
                "threshold {threshold:?}: binary-rescore oversample {oversample}: {:.4}",
                recall(&index, &queries, &options)
            );
        }
    }
    let get = |t, n| report.iter().find(|(tt, nn, _)| *tt == t && *nn == n).unwrap().2;
    assert!(get(ThresholdKind::Mean, "binary-rescore-f32") >= 0.99);
    assert!(get(ThresholdKind::Mean, "int8") >= 0.95);
    // Binary alone is a candidate generator: far below, but well above chance.
    assert!(get(ThresholdKind::Mean, "binary") >= 0.4);
}
