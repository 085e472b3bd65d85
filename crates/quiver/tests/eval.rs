//! Evaluation metrics against a hand-computed example (graded relevance, a score tie, a
//! query with only non-relevant judgements, a query without judgements), and the BEIR
//! reader's errors.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use quiver::eval::{write_trec_run, BeirSet, Evaluation, Runs};
use quiver::EngineError;

fn write_set(dir: &Path, corpus: &str, queries: &str, qrels: &str) {
    fs::create_dir_all(dir.join("qrels")).unwrap();
    fs::write(dir.join("corpus.jsonl"), corpus).unwrap();
    fs::write(dir.join("queries.jsonl"), queries).unwrap();
    fs::write(dir.join("qrels/test.tsv"), qrels).unwrap();
}

const CORPUS: &str = r#"{"_id": "d1", "title": "One", "text": "first"}
{"_id": "d2", "title": "", "text": "second"}
{"_id": "d3", "text": "third"}
{"_id": "d4", "text": "fourth"}
{"_id": "d5", "text": "fifth"}
{"_id": "d7", "text": "seventh"}
{"_id": "d9", "text": "ninth"}
"#;
const QUERIES: &str = r#"{"_id": "q1", "text": "one"}
{"_id": "q2", "text": "two"}
{"_id": "q3", "text": "three"}
{"_id": "q4", "text": "four"}
"#;
const QRELS: &str = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t1\nq1\td5\t1\nq1\td9\t0\nq2\td2\t1\nq3\td4\t0\n";

fn example() -> (tempfile::TempDir, BeirSet, Runs) {
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), CORPUS, QUERIES, QRELS);
    let set = BeirSet::load(dir.path(), "test").unwrap();
    let run = |pairs: &[(&str, f32)]| pairs.iter().map(|(d, s)| (d.to_string(), *s)).collect::<Vec<_>>();
    let runs: Runs = HashMap::from([
        // d3 and d1 tie: d1 ranks first (ids ascending).
        ("q1".into(), run(&[("d3", 0.9), ("d1", 0.9), ("d2", 0.8), ("d5", 0.5), ("d9", 0.4), ("d7", 0.1)])),
        // The one relevant document was not retrieved.
        ("q2".into(), run(&[("d1", 0.7), ("d3", 0.6)])),
        // Only a grade-0 judgement: skipped.
        ("q3".into(), run(&[("d4", 1.0)])),
        // No judgements at all: skipped.
        ("q4".into(), run(&[("d1", 1.0)])),
    ]);
    (dir, set, runs)
}

#[test]
fn metrics_match_the_hand_computed_example() {
    let (_dir, set, runs) = example();
    let eval = Evaluation::new(&set, &runs, &[5, 1, 3, 3]);
    assert_eq!(eval.ks, vec![1, 3, 5]);
    assert_eq!((eval.evaluated, eval.skipped), (2, 2));

    // Computed by hand: q1@3 ranks d1 (2), d3 (1), d2 (0): DCG = 2 + 1/log2(3),
    // ideal = 2 + 1/log2(3) + 1/2, nDCG = 0.840303028380.
    let q1 = &eval.per_query["q1"];
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    close(q1[&1].ndcg, 1.0);
    close(q1[&1].recall, 1.0 / 3.0);
    close(q1[&1].precision, 1.0);
    close(q1[&3].ndcg, 0.840303028380);
    close(q1[&3].recall, 2.0 / 3.0);
    close(q1[&3].precision, 2.0 / 3.0);
    close(q1[&3].mrr, 1.0);
    close(q1[&5].ndcg, 0.977858512524);
    close(q1[&5].recall, 1.0);
    close(q1[&5].precision, 0.6);
    let q2 = &eval.per_query["q2"];
    close(q2[&5].ndcg + q2[&5].recall + q2[&5].mrr + q2[&5].precision, 0.0);

    close(eval.mean[&3].ndcg, 0.420151514190);
    close(eval.mean[&5].ndcg, 0.488929256262);
    close(eval.mean[&5].recall, 0.5);
    close(eval.mean[&1].mrr, 0.5);
    close(eval.mean[&5].precision, 0.3);

    let json = eval.to_json(true);
    close(json["ndcg@3"].as_f64().unwrap(), 0.420151514190);
    close(json["precision@1"].as_f64().unwrap(), 0.5);
    assert_eq!(json["queries"], 2);
    assert_eq!(json["skipped_queries"], 2);
    assert!(json["per_query"]["q3"].is_null());
}

#[test]
fn ranks_do_not_depend_on_the_run_order() {
    let (_dir, set, mut runs) = example();
    let before = Evaluation::new(&set, &runs, &[3]).to_json(true);
    runs.get_mut("q1").unwrap().reverse();
    assert_eq!(before, Evaluation::new(&set, &runs, &[3]).to_json(true));
}

#[test]
fn trec_run_lists_each_query_best_first() {
    let (_dir, set, runs) = example();
    let mut out = Vec::new();
    write_trec_run(&mut out, &set, &runs, "exact").unwrap();
    let text = String::from_utf8(out).unwrap();
    let first: Vec<&str> = text.lines().take(2).collect();
    assert_eq!(first, ["q1 Q0 d1 1 0.9 exact", "q1 Q0 d3 2 0.9 exact"]);
    assert_eq!(text.lines().count(), 10);
}

#[test]
fn documents_join_title_and_text() {
    let (_dir, set, _) = example();
    assert_eq!(set.corpus[0].full_text(), "One. first");
    assert_eq!(set.corpus[1].full_text(), "second");
}

fn load_error(corpus: &str, queries: &str, qrels: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), corpus, queries, qrels);
    let err = BeirSet::load(dir.path(), "test").unwrap_err();
    (err.code().to_owned(), err.to_string())
}

#[test]
fn bad_sets_name_the_file_and_line() {
    let cases = [
        (CORPUS, QUERIES, "q1\tnope\t1\n", "test.tsv:1: document id \"nope\" is not in corpus.jsonl"),
        (CORPUS, QUERIES, "query-id\tcorpus-id\tscore\nq9\td1\t1\n", "test.tsv:2: query id \"q9\""),
        (CORPUS, QUERIES, "q1\td1\tvery\n", "test.tsv:1: grade \"very\" is not an integer"),
        (CORPUS, QUERIES, "q1 d1\n", "test.tsv:1: expected 3"),
        (CORPUS, QUERIES, "q1\td1\t1\nq1\td1\t2\n", "test.tsv:2: query \"q1\" judges document \"d1\" twice"),
        (CORPUS, QUERIES, "query-id\tcorpus-id\tscore\n", "test.tsv:0: no judgements"),
        (CORPUS, "", QRELS, "queries.jsonl:0: no queries"),
        (
            CORPUS,
            "{\"_id\": \"q1\", \"text\": \"a\"}\n{\"_id\": \"q1\", \"text\": \"b\"}\n",
            QRELS,
            "queries.jsonl:2: duplicate query id",
        ),
        (CORPUS, "{\"_id\": \"q1\"}\n", QRELS, "queries.jsonl:1: no \"text\""),
        ("{\"_id\": \"d1\"}\n{\"_id\": \"d1\"}\n", QUERIES, QRELS, "corpus.jsonl:2: duplicate document id"),
        ("{\"_id\": \"d1\"}\n{not json\n", QUERIES, QRELS, "corpus.jsonl:2: invalid JSON"),
        ("[1, 2]\n", QUERIES, QRELS, "corpus.jsonl:1: not a JSON object"),
        ("{\"title\": \"x\"}\n", QUERIES, QRELS, "corpus.jsonl:1: no \"_id\""),
    ];
    for (corpus, queries, qrels, expected) in cases {
        let (code, message) = load_error(corpus, queries, qrels);
        assert_eq!(code, "E_INPUT", "{message}");
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
}

#[test]
fn a_missing_folder_is_an_io_error() {
    let err = BeirSet::load(Path::new("/nonexistent/beir"), "test").unwrap_err();
    assert!(matches!(err, EngineError::Io { .. }), "{err}");
}
