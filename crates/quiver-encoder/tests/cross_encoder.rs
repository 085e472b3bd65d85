//! The cross-encoder against the Hugging Face reference on the team's tiny random
//! `BertForSequenceClassification` (`../shared/fixtures/tiny-cross-encoder`): token ids, type
//! ids, logits and sigmoid scores for 20 pairs, batching, truncation and bad models.

use std::path::{Path, PathBuf};

use quiver_encoder::{CrossEncoder, EncoderError, ModelFiles, ScoreActivation};
use serde::Deserialize;

/// The fixture README's tolerances for a float32 engine.
const LOGIT_TOLERANCE: f32 = 1e-4;
const SIGMOID_TOLERANCE: f32 = 2.5e-5;
/// How much padding a batch may change a logit.
const BATCH_TOLERANCE: f32 = 1e-5;

#[derive(Deserialize)]
struct Expected {
    max_length: usize,
    pairs: Vec<Pair>,
}

#[derive(Deserialize)]
struct Pair {
    id: String,
    query: String,
    passage: String,
    token_ids: Vec<u32>,
    token_type_ids: Vec<u32>,
    logit: f32,
    sigmoid: f32,
}

/// `<workspace root>/../shared/fixtures/tiny-cross-encoder`, or under `$QUIVER_SHARED`, as
/// the cross-crate tests find the team's fixtures. A missing fixture fails the test: a
/// skipped parity test would pass silently.
fn fixture_dir() -> PathBuf {
    let shared = std::env::var_os("QUIVER_SHARED").map(PathBuf::from).unwrap_or_else(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest.ancestors().find(|d| d.join("Cargo.lock").is_file()).unwrap_or(manifest);
        root.join("..").join("shared")
    });
    let dir = shared.join("fixtures").join("tiny-cross-encoder");
    assert!(
        dir.join("expected.json").is_file() && dir.join("model.safetensors").is_file(),
        "{} is missing: the team's shared folder must sit beside the checkout (../shared) or be named by QUIVER_SHARED",
        dir.display()
    );
    dir
}

fn expected() -> Expected {
    let text = std::fs::read_to_string(fixture_dir().join("expected.json")).expect("expected.json is readable");
    serde_json::from_str(&text).expect("expected.json parses")
}

fn model() -> CrossEncoder {
    CrossEncoder::from_dir(fixture_dir()).unwrap()
}

fn pairs(expected: &Expected) -> Vec<(&str, &str)> {
    expected.pairs.iter().map(|p| (p.query.as_str(), p.passage.as_str())).collect()
}

/// The fixture's files with `config.json` edited by `edit`.
fn files_with_config(edit: impl FnOnce(&mut serde_json::Value)) -> ModelFiles {
    let mut files = ModelFiles::read_dir(fixture_dir()).unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&files.config).unwrap();
    edit(&mut config);
    files.config = serde_json::to_vec(&config).unwrap();
    files
}

#[test]
fn token_ids_and_type_ids_match_exactly() {
    let expected = expected();
    let model = model();
    assert_eq!(model.max_length(), expected.max_length);
    for pair in &expected.pairs {
        let tokens = model.tokenize(&pair.query, &pair.passage).unwrap();
        assert_eq!(tokens.ids, pair.token_ids, "{} ids", pair.id);
        assert_eq!(tokens.type_ids, pair.token_type_ids, "{} type ids", pair.id);
    }
}

#[test]
fn logits_and_scores_match_the_reference() {
    let expected = expected();
    let model = model();
    assert_eq!(model.activation(), ScoreActivation::Sigmoid);
    let (mut worst_logit, mut worst_sigmoid) = (0f32, 0f32);
    for pair in &expected.pairs {
        // One pair per forward pass, as the reference ran.
        let logit = model.logits(&[(&pair.query, &pair.passage)], 1).unwrap()[0];
        let score = model.score(&pair.query, &[&pair.passage], 1).unwrap()[0];
        let (dl, ds) = ((logit - pair.logit).abs(), (score - pair.sigmoid).abs());
        assert!(dl <= LOGIT_TOLERANCE, "{}: logit {logit} vs {} (|Δ| {dl})", pair.id, pair.logit);
        assert!(ds <= SIGMOID_TOLERANCE, "{}: score {score} vs {} (|Δ| {ds})", pair.id, pair.sigmoid);
        worst_logit = worst_logit.max(dl);
        worst_sigmoid = worst_sigmoid.max(ds);
    }
    eprintln!("max |Δlogit| {worst_logit:.2e}, max |Δsigmoid| {worst_sigmoid:.2e}");
}

#[test]
fn a_batch_of_twenty_equals_one_at_a_time() {
    let expected = expected();
    let model = model();
    let pairs = pairs(&expected);
    let batched = model.logits(&pairs, 20).unwrap();
    let mut worst = 0f32;
    for (i, pair) in pairs.iter().enumerate() {
        let alone = model.logits(&[*pair], 1).unwrap()[0];
        let d = (batched[i] - alone).abs();
        assert!(d <= BATCH_TOLERANCE, "{}: batched {} vs alone {alone}", expected.pairs[i].id, batched[i]);
        worst = worst.max(d);
    }
    eprintln!("max |Δlogit| batch 20 vs 1: {worst:.2e}");
    let scores = model.score_pairs(&pairs, 7).unwrap();
    for ((score, logit), pair) in scores.iter().zip(&batched).zip(&expected.pairs) {
        assert!((score - ScoreActivation::Sigmoid.apply(*logit)).abs() <= BATCH_TOLERANCE, "{}", pair.id);
    }
}

#[test]
fn ranking_follows_the_reference_order() {
    let expected = expected();
    let model = model();
    let scores = model.score_pairs(&pairs(&expected), 8).unwrap();
    let order = |values: &[f32]| {
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
        order
    };
    let reference: Vec<f32> = expected.pairs.iter().map(|p| p.logit).collect();
    assert_eq!(order(&scores), order(&reference));

    // Re-ranking one query's passages: the pairs of "espresso machine" (pair-10, pair-11).
    let query = &expected.pairs[9].query;
    let passages: Vec<&str> = expected.pairs.iter().filter(|p| &p.query == query).map(|p| p.passage.as_str()).collect();
    assert_eq!(passages.len(), 2);
    let ranked = model.rank(query, &passages, 4).unwrap();
    let indices: Vec<usize> = ranked.iter().map(|r| r.0).collect();
    assert_eq!(indices, [0, 1], "pair-10's logit ({}) is above pair-11's ({})", reference[9], reference[10]);
    assert!((ranked[0].1 - expected.pairs[9].sigmoid).abs() <= SIGMOID_TOLERANCE);
}

#[test]
fn empty_texts_are_scored() {
    let model = model();
    for (query, passage) in [("", ""), ("", "a passage"), ("a query", "")] {
        let tokens = model.tokenize(query, passage).unwrap();
        assert_eq!(tokens.ids.len(), tokens.type_ids.len());
        let score = model.score(query, &[passage], 1).unwrap()[0];
        assert!(score.is_finite() && (0.0..=1.0).contains(&score), "({query:?}, {passage:?}): {score}");
    }
    assert_eq!(model.tokenize("", "").unwrap().ids, [101, 102, 102], "[CLS] [SEP] [SEP]");
    assert!(model.score("query", &[], 8).unwrap().is_empty());
}

#[test]
fn huge_texts_are_truncated() {
    let model = model();
    let huge = vec!["word"; 10_000].join(" ");
    let tokens = model.tokenize("travel mug", &huge).unwrap();
    assert_eq!(tokens.ids.len(), 512);
    assert_eq!(tokens.type_ids.iter().filter(|&&t| t == 0).count(), 4, "[CLS] travel mug [SEP] kept whole");
    // Both long: longest_first gives each about half.
    let tokens = model.tokenize(&huge, &huge).unwrap();
    assert_eq!(tokens.type_ids.iter().filter(|&&t| t == 0).count(), 2 + 254);
    assert_eq!(tokens.type_ids.iter().filter(|&&t| t == 1).count(), 255 + 1);
    let scores = model.score("travel mug", &[&huge, "a short passage"], 2).unwrap();
    assert!(scores.iter().all(|s| s.is_finite()), "{scores:?}");
}

#[test]
fn max_length_can_be_lowered() {
    let files = ModelFiles::read_dir(fixture_dir()).unwrap();
    let model = CrossEncoder::load_with(&files, Some(64)).unwrap();
    assert_eq!(model.max_length(), 64);
    assert_eq!(model.tokenize("travel mug", &"word ".repeat(100)).unwrap().ids.len(), 64);
    // Never beyond the model's positions.
    assert_eq!(CrossEncoder::load_with(&files, Some(4096)).unwrap().max_length(), 512);
    // Room for the three special tokens at least.
    let err = CrossEncoder::load_with(&files, Some(3)).err().expect("3 tokens leave no room");
    assert_eq!(err.code(), "E_INVALID_ARGUMENT", "{err}");
}

#[test]
fn max_length_comes_from_the_tokenizer_config() {
    let mut files = ModelFiles::read_dir(fixture_dir()).unwrap();
    files.tokenizer_config = Some(br#"{"model_max_length": 256}"#.to_vec());
    assert_eq!(CrossEncoder::load(&files).unwrap().max_length(), 256);
    // transformers' "no limit" (1e30) and no file at all: the model's positions.
    files.tokenizer_config = Some(br#"{"model_max_length": 1000000000000000019884624838656}"#.to_vec());
    assert_eq!(CrossEncoder::load(&files).unwrap().max_length(), 512);
    files.tokenizer_config = None;
    assert_eq!(CrossEncoder::load(&files).unwrap().max_length(), 512);
}

#[test]
fn a_configured_identity_activation_gives_raw_logits() {
    let files = files_with_config(|c| {
        c["sentence_transformers"] = serde_json::json!({"activation_fn": "torch.nn.modules.linear.Identity"})
    });
    let model = CrossEncoder::load(&files).unwrap();
    assert_eq!(model.activation(), ScoreActivation::Identity);
    let expected = expected();
    let pair = &expected.pairs[0];
    let score = model.score(&pair.query, &[&pair.passage], 1).unwrap()[0];
    assert!((score - pair.logit).abs() <= LOGIT_TOLERANCE, "{score} vs {}", pair.logit);
}

#[test]
fn a_sentence_embedding_model_is_not_a_cross_encoder() {
    // all-MiniLM-L6-v2's config.json: a bare BertModel, no classification head.
    const MINILM: &str = r#"{"_name_or_path": "nreimers/MiniLM-L6-H384-uncased", "architectures": ["BertModel"],
        "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": false, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "hidden_size": 384, "initializer_range": 0.02, "intermediate_size": 1536,
        "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
        "num_hidden_layers": 6, "pad_token_id": 0, "position_embedding_type": "absolute",
        "transformers_version": "4.8.2", "type_vocab_size": 2, "use_cache": true, "vocab_size": 30522}"#;
    let mut files = ModelFiles::read_dir(fixture_dir()).unwrap();
    files.config = MINILM.as_bytes().to_vec();
    let err = CrossEncoder::load(&files).err().expect("a BertModel config is refused");
    assert!(matches!(err, EncoderError::NotACrossEncoder { .. }), "{err:?}");
    assert_eq!(err.code(), "E_MODEL_INVALID");
    assert!(err.to_string().contains("BertModel"), "{err}");
}

#[test]
fn a_multi_label_classifier_is_refused() {
    let files = files_with_config(|c| {
        c["id2label"] = serde_json::json!({"0": "contradiction", "1": "entailment", "2": "neutral"});
    });
    let err = CrossEncoder::load(&files).err().expect("an NLI head is refused");
    assert!(matches!(err, EncoderError::NotACrossEncoder { .. }), "{err:?}");
    assert!(err.to_string().contains("3 labels (contradiction, entailment, neutral)"), "{err}");
}

#[test]
fn an_unknown_activation_is_refused() {
    let files = files_with_config(|c| {
        c["sentence_transformers"] = serde_json::json!({"activation_fn": "torch.nn.modules.activation.Tanh"})
    });
    let err = CrossEncoder::load(&files).err().expect("Tanh is not supported");
    assert!(matches!(err, EncoderError::InvalidConfig { file: "config.json", .. }), "{err:?}");
}

#[test]
fn a_missing_folder_is_a_typed_error() {
    let err = CrossEncoder::from_dir(fixture_dir().join("no-such-model")).err().expect("no folder");
    assert_eq!(err.code(), "E_MODEL_MISSING", "{err}");
}
