//! Quantized models (`model.gguf`): all-MiniLM-L6-v2 in Q8_0, Q4_0 and F16 against the
//! sentence-transformers reference (the team's shared fixture), the documented file layout,
//! re-quantizing, model folders, a quantized cross-encoder, and broken files as typed errors.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use quiver_encoder::files::sha256_hex;
use quiver_encoder::{
    quantize_model, write_quantized_model, CrossEncoder, Encoder, EncoderError, ModelFiles, Quantization, TextKind,
};
use serde::Deserialize;

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.ancestors().find(|d| d.join("Cargo.lock").is_file()).unwrap_or(manifest).to_owned()
}

/// all-MiniLM-L6-v2 as `quiver fetch-model` makes it, or `$QUIVER_MODEL_DIR`. A missing model
/// fails the test: a skipped quality test would pass silently.
fn minilm() -> ModelFiles {
    let dir = std::env::var_os("QUIVER_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("models").join("all-MiniLM-L6-v2"));
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} has no model: run `scripts/setup.sh` (or `quiver fetch-model`) first",
        dir.display()
    );
    ModelFiles::read_dir(dir).unwrap()
}

#[derive(Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    id: String,
    text: String,
    mean: Vec<f32>,
}

/// sentence-transformers' all-MiniLM-L6-v2 vectors: `../shared` or `$QUIVER_SHARED`.
fn reference() -> Reference {
    let shared =
        std::env::var_os("QUIVER_SHARED").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("../shared"));
    let path = shared.join("fixtures/all-MiniLM-L6-v2/reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: the team's shared folder must sit beside the checkout or be named by QUIVER_SHARED",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// `files` with `gguf` as their weights.
fn with_gguf(files: &ModelFiles, gguf: Vec<u8>) -> ModelFiles {
    let mut files = files.clone();
    files.insert("model.gguf", gguf);
    files
}

fn gguf_content(bytes: &[u8]) -> gguf_file::Content {
    gguf_file::Content::read(&mut Cursor::new(bytes)).unwrap()
}

/// A GGUF of `bytes`'s tensors with `change` applied to the list.
fn rewritten(bytes: &[u8], change: impl FnOnce(&mut Vec<(String, QTensor)>)) -> Vec<u8> {
    let content = gguf_content(bytes);
    let mut reader = Cursor::new(bytes);
    let mut tensors: Vec<(String, QTensor)> = content
        .tensor_infos
        .keys()
        .map(|name| (name.clone(), content.tensor(&mut reader, name, &Device::Cpu).unwrap()))
        .collect();
    change(&mut tensors);
    let metadata: Vec<(&str, &Value)> = content.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &tensors).unwrap();
    out.into_inner()
}

#[test]
fn quantized_minilm_stays_close_to_sentence_transformers() {
    let files = minilm();
    let reference = reference();
    let texts: Vec<&str> = reference.cases.iter().map(|c| c.text.as_str()).collect();
    for (to, bar) in [(Quantization::Q8_0, 0.995), (Quantization::Q4_0, 0.97), (Quantization::F16, 0.9999)] {
        let gguf = quantize_model(&files, to).unwrap();
        let encoder = Encoder::load(&with_gguf(&files, gguf.clone())).unwrap();
        assert_eq!(encoder.weights_sha256(), sha256_hex(&gguf), "a GGUF model is known by its file's hash");
        let vectors = encoder.embed(&texts, TextKind::Raw, 32).unwrap();
        let (mut worst, mut sum) = ((1.0f32, ""), 0.0f32);
        for (i, case) in reference.cases.iter().enumerate() {
            let c = cosine(vectors.row(i), &case.mean);
            sum += c;
            if c < worst.0 {
                worst = (c, &case.id);
            }
        }
        let mean = sum / reference.cases.len() as f32;
        eprintln!(
            "{to}: {} bytes, cosine to f32 sentence-transformers worst {:.5} ({}), mean {mean:.5} over {} cases",
            gguf.len(),
            worst.0,
            worst.1,
            reference.cases.len()
        );
        assert!(worst.0 >= bar, "{to}: worst cosine {} ({}) is below {bar}", worst.0, worst.1);
    }
}

#[test]
fn the_file_has_the_documented_layout() {
    let files = minilm();
    let bytes = quantize_model(&files, Quantization::Q4_0).unwrap();
    assert_eq!(&bytes[..4], b"GGUF");
    assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 3, "GGUF version 3");
    assert_eq!(bytes, quantize_model(&files, Quantization::Q4_0).unwrap(), "equal inputs give equal bytes");

    let content = gguf_content(&bytes);
    let meta = |key: &str| content.metadata[key].to_string().unwrap().clone();
    assert_eq!(meta("general.architecture"), "bert");
    assert_eq!(meta("quiver.quantization"), "q4_0");
    assert_eq!(meta("quiver.source_weights_sha256"), sha256_hex(&files.weights));

    let info = |name: &str| &content.tensor_infos[name];
    let word = info("embeddings.word_embeddings.weight");
    assert_eq!((word.ggml_dtype, word.shape.dims()), (GgmlDType::Q4_0, &[30522, 384][..]));
    let ffn_output = info("encoder.layer.5.output.dense.weight");
    assert_eq!((ffn_output.ggml_dtype, ffn_output.shape.dims()), (GgmlDType::Q4_0, &[384, 1536][..]));
    let intermediate = info("encoder.layer.5.intermediate.dense.weight");
    assert_eq!((intermediate.ggml_dtype, intermediate.shape.dims()), (GgmlDType::Q8_0, &[1536, 384][..]));
    assert_eq!(info("encoder.layer.0.attention.self.value.weight").ggml_dtype, GgmlDType::Q8_0);
    for small in [
        "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight",
        "embeddings.LayerNorm.weight",
        "encoder.layer.0.attention.self.query.bias",
        "encoder.layer.0.output.LayerNorm.bias",
    ] {
        assert_eq!(info(small).ggml_dtype, GgmlDType::F32, "{small}");
    }
    assert!(content.tensor_infos.keys().all(|n| !n.starts_with("bert.")));
    assert!(!content.tensor_infos.contains_key("embeddings.position_ids"), "integer buffers are left out");
}

#[test]
fn a_quantized_model_requantizes_and_keeps_its_source() {
    let files = minilm();
    let q8 = with_gguf(&files, quantize_model(&files, Quantization::Q8_0).unwrap());
    let q4_from_q8 = quantize_model(&q8, Quantization::Q4_0).unwrap();
    let content = gguf_content(&q4_from_q8);
    assert_eq!(content.metadata["quiver.source_weights_sha256"].to_string().unwrap(), &sha256_hex(&files.weights));
    let encoder = Encoder::load(&with_gguf(&files, q4_from_q8)).unwrap();
    let direct = Encoder::load(&with_gguf(&files, quantize_model(&files, Quantization::Q4_0).unwrap())).unwrap();
    let text = ["A lounge chair with pink velvet upholstery and brass legs"];
    let (a, b) = (encoder.embed(&text, TextKind::Raw, 1).unwrap(), direct.embed(&text, TextKind::Raw, 1).unwrap());
    assert!(cosine(a.row(0), b.row(0)) > 0.97);
}

#[test]
fn a_quantized_folder_loads_by_itself() {
    let files = minilm();
    let out = tempfile::tempdir().unwrap();
    write_quantized_model(&files, Quantization::Q8_0, out.path()).unwrap();
    for copied in
        ["config.json", "tokenizer.json", "modules.json", "1_Pooling/config.json", "sentence_bert_config.json"]
    {
        assert_eq!(std::fs::read(out.path().join(copied)).unwrap(), files.get(copied).unwrap(), "{copied}");
    }
    assert!(!out.path().join("model.safetensors").exists());
    let quiver: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("quiver.json")).unwrap()).unwrap();
    assert_eq!(quiver["weights"], "model.gguf");
    assert_eq!(quiver["id"], "sentence-transformers/all-MiniLM-L6-v2", "the source's quiver.json is kept");

    let encoder = Encoder::from_dir(out.path()).unwrap();
    assert_eq!(encoder.weights_sha256(), sha256_hex(&std::fs::read(out.path().join("model.gguf")).unwrap()));
    assert_eq!(encoder.id(), "sentence-transformers/all-MiniLM-L6-v2");
    let f32_encoder = Encoder::load(&files).unwrap();
    let text = ["Laboratory refrigerator for medicines with temperature monitoring"];
    let (q, f) = (encoder.embed(&text, TextKind::Raw, 1).unwrap(), f32_encoder.embed(&text, TextKind::Raw, 1).unwrap());
    assert!(cosine(q.row(0), f.row(0)) > 0.995);

    // quiver.json's choice is checked.
    std::fs::write(out.path().join("quiver.json"), br#"{"weights": "../elsewhere.bin"}"#).unwrap();
    assert!(matches!(Encoder::from_dir(out.path()), Err(EncoderError::InvalidConfig { file: "quiver.json", .. })));
    std::fs::write(out.path().join("quiver.json"), br#"{"weights": "model.safetensors"}"#).unwrap();
    assert!(matches!(Encoder::from_dir(out.path()), Err(EncoderError::MissingFile { file: "model.safetensors", .. })));
}

#[test]
fn broken_gguf_files_are_typed_errors() {
    let files = minilm();
    let gguf = quantize_model(&files, Quantization::Q4_0).unwrap();
    let load = |bytes: Vec<u8>| Encoder::load(&with_gguf(&files, bytes));

    let half = gguf.len() / 2;
    let err = load(gguf[..half].to_vec()).err().unwrap();
    assert!(
        matches!(err, EncoderError::TruncatedWeights { file: "model.gguf", actual, expected } if actual == half as u64 && expected > actual),
        "{err}"
    );
    assert_eq!(err.code(), "E_MODEL_INVALID");
    assert!(matches!(load(gguf[..100].to_vec()), Err(EncoderError::InvalidGguf { .. })), "a cut header");

    let foreign =
        [files.weights.to_vec(), b"GGUF but not really".to_vec(), (0..4096u32).map(|i| (i * 7919) as u8).collect()];
    for bytes in foreign {
        let err = load(bytes).err().unwrap();
        assert!(matches!(err, EncoderError::InvalidGguf { .. }), "{err}");
        assert_eq!(err.code(), "E_MODEL_INVALID");
    }

    let missing = rewritten(&gguf, |tensors| tensors.retain(|(name, _)| name != "encoder.layer.3.output.dense.weight"));
    assert!(
        matches!(load(missing), Err(EncoderError::MissingTensor { name }) if name == "encoder.layer.3.output.dense.weight")
    );

    let q4_1 = rewritten(&gguf, |tensors| {
        let (_, bias) = tensors.iter_mut().find(|(name, _)| name == "encoder.layer.0.output.dense.bias").unwrap();
        *bias = QTensor::quantize(&bias.dequantize(&Device::Cpu).unwrap(), GgmlDType::Q4_1).unwrap();
    });
    assert!(matches!(
        load(q4_1),
        Err(EncoderError::UnsupportedTensorType { name, dtype }) if name == "encoder.layer.0.output.dense.bias" && dtype == "Q4_1"
    ));

    let wrong_shape = rewritten(&gguf, |tensors| {
        let (_, weight) =
            tensors.iter_mut().find(|(name, _)| name == "encoder.layer.0.intermediate.dense.weight").unwrap();
        *weight = QTensor::quantize(
            &Tensor::zeros((1024, 384), candle_core::DType::F32, &Device::Cpu).unwrap(),
            GgmlDType::Q4_0,
        )
        .unwrap();
    });
    assert!(matches!(load(wrong_shape), Err(EncoderError::ShapeMismatch { expected, .. }) if expected == [1536, 384]));

    // Found by the `gguf` fuzz target: a tensor moved one byte off its alignment was read in
    // place as misaligned f16 scales (undefined behaviour). The tensor info is the name (u64
    // length, bytes), u32 dimension count, u64 dimensions, u32 type, u64 offset.
    let mut misaligned = gguf.clone();
    let name = b"encoder.layer.0.attention.output.dense.weight";
    let at = misaligned.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    let dims = u32::from_le_bytes(misaligned[at..at + 4].try_into().unwrap()) as usize;
    let offset = at + 4 + 8 * dims + 4;
    let moved = u64::from_le_bytes(misaligned[offset..offset + 8].try_into().unwrap()) + 1;
    misaligned[offset..offset + 8].copy_from_slice(&moved.to_le_bytes());
    let err = load(misaligned).err().unwrap();
    assert!(matches!(&err, EncoderError::InvalidGguf { .. }) && err.to_string().contains("aligned"), "{err}");
}

#[test]
fn a_tokenizer_larger_than_the_embedding_table_is_refused() {
    let files = minilm();
    let gguf = quantize_model(&files, Quantization::Q8_0).unwrap();
    let small_table = rewritten(&gguf, |tensors| {
        let (_, table) = tensors.iter_mut().find(|(name, _)| name == "embeddings.word_embeddings.weight").unwrap();
        let mut values = table.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        values.truncate(30000 * 384);
        let rows = Tensor::from_vec(values, (30000, 384), &Device::Cpu).unwrap();
        *table = QTensor::quantize(&rows, GgmlDType::Q8_0).unwrap();
    });
    let err = Encoder::load(&with_gguf(&files, small_table)).err().unwrap();
    assert!(matches!(err, EncoderError::VocabularyMismatch { tokenizer: 30522, model: 30000 }), "{err}");
    assert_eq!(err.code(), "E_MODEL_INVALID");
}

/// The team's tiny random `BertForSequenceClassification` (`bert.` prefix, pooler and
/// classifier): quantized, it loads as a cross-encoder and scores like the float one.
#[test]
fn a_quantized_cross_encoder_scores_like_the_float_one() {
    let shared =
        std::env::var_os("QUIVER_SHARED").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("../shared"));
    let files = ModelFiles::read_dir(shared.join("fixtures/tiny-cross-encoder")).unwrap();
    let gguf = quantize_model(&files, Quantization::Q8_0).unwrap();
    let content = gguf_content(&gguf);
    assert!(
        content.tensor_infos.contains_key("pooler.dense.weight")
            && content.tensor_infos.contains_key("classifier.weight")
    );
    let pairs = [
        ("fridge for medicines", "Laboratory refrigerator with temperature alarm"),
        ("fridge for medicines", "Crystal red wine glasses, set of four"),
        ("cocktail shaker", "Stainless steel cocktail shaker with strainer"),
    ];
    let float = CrossEncoder::load(&files).unwrap().logits(&pairs, 8).unwrap();
    let quantized = CrossEncoder::load(&with_gguf(&files, gguf)).unwrap().logits(&pairs, 8).unwrap();
    // The random weights are large (initializer range 0.3) and amplify rounding: about 0.05.
    for (f, q) in float.iter().zip(&quantized) {
        assert!((f - q).abs() <= 0.1, "q8_0 logit {q} vs f32 {f}");
    }
    let order = |logits: &[f32]| {
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        order
    };
    assert_eq!(order(&quantized), order(&float));
}
