//! Bad input to the encoder and engine: typed errors or defined results, never a panic.

use quiver::{check_model, EngineError};
use quiver_encoder::{Encoder, EncoderError, ModelFiles, Overrides, TextKind};
use quiver_index::{FlatIndex, IndexConfig, IndexError};
use quiver_tests::minilm_dir;

fn encoder() -> Encoder {
    Encoder::from_dir(minilm_dir()).unwrap()
}

fn is_unit(v: &[f32]) -> bool {
    v.iter().all(|x| x.is_finite()) && (v.iter().map(|x| x * x).sum::<f32>().sqrt() - 1.0).abs() < 1e-4
}

#[test]
fn degenerate_huge_and_unusual_texts_embed() {
    let e = encoder();
    let huge = "word ".repeat(200_000) + "ünïcödé";
    let texts = ["", " ", "\n\n\t", "\u{200b}", "\u{0}\u{7}", "👩‍👩‍👧‍👦🇩🇪", "مرحبا بالعالم", "[CLS] [SEP] [PAD]", &huge];
    let vectors = e.embed(&texts, TextKind::Raw, 4).unwrap();
    assert_eq!(vectors.len(), texts.len());
    for (t, v) in texts.iter().zip(vectors.rows()) {
        assert!(is_unit(v), "{:?}…", t.chars().take(20).collect::<String>());
    }
    // Empty and whitespace-only texts are both `[CLS] [SEP]`.
    assert_eq!(vectors.row(0), vectors.row(1));
    assert_eq!(e.tokenize(&huge, TextKind::Raw).unwrap().len(), 256);
    assert!(e.embed(&[], TextKind::Raw, 8).unwrap().is_empty());
}

#[test]
fn chunking_covers_long_texts_and_leaves_short_ones_alone() {
    let e = encoder();
    let short = "A lounge chair with pink velvet upholstery.";
    let long = "The excavator digs deep mines. ".repeat(300);
    let plain = e.embed(&[short], TextKind::Raw, 1).unwrap();
    let chunked = e.embed_chunked(&[short, &long], TextKind::Raw, 8, 128, 16).unwrap();
    let c: f32 = plain.row(0).iter().zip(chunked.row(0)).map(|(a, b)| a * b).sum();
    assert!(c > 0.99999, "a text shorter than a chunk is embedded as is ({c})");
    assert!(is_unit(chunked.row(1)));
    assert!(matches!(e.embed_chunked(&[short], TextKind::Raw, 8, 64, 64), Err(EncoderError::InvalidArgument { .. })));
}

fn files() -> ModelFiles {
    ModelFiles::read_dir(minilm_dir()).unwrap()
}

#[test]
fn broken_model_folders_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(Encoder::from_dir(dir.path()), Err(EncoderError::MissingFile { file: "config.json", .. })));
    assert!(matches!(Encoder::from_dir(dir.path().join("nope")), Err(EncoderError::Io { .. })));

    let mut cut = files();
    cut.weights = cut.weights[..cut.weights.len() / 2].to_vec().into();
    assert!(matches!(Encoder::load(&cut), Err(EncoderError::InvalidWeights(_))));

    let mut garbage = files();
    garbage.weights = b"not a safetensors file at all".to_vec().into();
    assert!(matches!(Encoder::load(&garbage), Err(EncoderError::InvalidWeights(_))));

    let mut wrong_shape = files();
    let config = String::from_utf8(wrong_shape.config.clone())
        .unwrap()
        .replace("\"intermediate_size\": 1536", "\"intermediate_size\": 1024");
    wrong_shape.config = config.into_bytes();
    assert!(matches!(Encoder::load(&wrong_shape), Err(EncoderError::ShapeMismatch { .. })));

    let mut small_vocab = files();
    let config =
        String::from_utf8(small_vocab.config.clone()).unwrap().replace("\"vocab_size\": 30522", "\"vocab_size\": 1000");
    small_vocab.config = config.into_bytes();
    assert!(matches!(
        Encoder::load(&small_vocab),
        Err(EncoderError::VocabularyMismatch { tokenizer: 30522, model: 1000 })
    ));

    let mut gpt = files();
    gpt.config = br#"{"model_type": "gpt2", "vocab_size": 50257, "hidden_size": 768}"#.to_vec();
    assert!(matches!(Encoder::load(&gpt), Err(EncoderError::UnsupportedArchitecture { .. })));

    let mut bad_tokenizer = files();
    bad_tokenizer.tokenizer.truncate(1000);
    assert!(matches!(Encoder::load(&bad_tokenizer), Err(EncoderError::Tokenizer { .. })));
}

#[test]
fn an_index_refuses_another_model() {
    let e = encoder();
    let index = quiver::new_index(&e, IndexConfig::new(e.dim()), None).unwrap();
    check_model(&index, &e).unwrap();
    let cls =
        Encoder::load_with(&files(), &Overrides { pooling: Some(quiver_encoder::Pooling::Cls), ..Default::default() })
            .unwrap();
    assert!(matches!(check_model(&index, &cls), Err(EngineError::Index(IndexError::ModelMismatch { .. }))));
    let bytes = index.to_bytes();
    let loaded = FlatIndex::from_bytes(bytes).unwrap();
    assert!(quiver::Engine::new(cls, loaded).is_err());
}
