//! `quiver quantize`: a model's weights as a compact `model.gguf` (layout in [`crate::gguf`]).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Tensor;

use crate::checkpoint::{
    BertWeights, Checkpoint, FFN_OUTPUT, POSITION_EMBEDDINGS, TOKEN_TYPE_EMBEDDINGS, WORD_EMBEDDINGS,
};
use crate::files::{sha256_hex, ModelFiles, WeightsFormat, OPTIONAL_FILES, REQUIRED_FILES, WEIGHTS_KEY};
use crate::gguf;
use crate::{EncoderError, Result};

/// The type a quantized model stores its matrices in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantization {
    /// Blocks of 32 8-bit values with an f16 scale: 8.5 bits a weight, close to f32.
    Q8_0,
    /// Blocks of 32 4-bit values with an f16 scale (4.5 bits a weight) for the word-embedding
    /// table and each layer's FFN output matrix; Q8_0 for the other matrices, which lose too
    /// much in 4 bits (see [`tensor_type`]).
    Q4_0,
    /// Half floats: half of f32's size. Linear weights widen to f32 at load, so this saves
    /// download and disk, not memory (the word-embedding table stays f16).
    F16,
}

impl Quantization {
    pub const ALL: [Quantization; 3] = [Quantization::Q8_0, Quantization::Q4_0, Quantization::F16];

    /// The name in `quiver quantize --to` and the GGUF's `quiver.quantization`.
    pub fn name(self) -> &'static str {
        match self {
            Quantization::Q8_0 => "q8_0",
            Quantization::Q4_0 => "q4_0",
            Quantization::F16 => "f16",
        }
    }

    fn ggml(self) -> GgmlDType {
        match self {
            Quantization::Q8_0 => GgmlDType::Q8_0,
            Quantization::Q4_0 => GgmlDType::Q4_0,
            Quantization::F16 => GgmlDType::F16,
        }
    }
}

impl fmt::Display for Quantization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Quantization {
    type Err = EncoderError;

    fn from_str(s: &str) -> Result<Self> {
        Quantization::ALL.into_iter().find(|q| q.name() == s).ok_or_else(|| EncoderError::InvalidArgument {
            op: "quantize",
            what: format!("unknown quantization {s:?} (q8_0, q4_0 or f16)"),
        })
    }
}

/// The weights of a model folder as the bytes of a `model.gguf` in `to`'s type.
///
/// The source is a `model.safetensors` (f32, f16 or bf16) or a `model.gguf`. A GGUF is widened
/// to f32 first, so re-quantizing a quantized model is lossy: its errors and the new ones add
/// up. The source must load (every tensor `config.json` implies, in its shape). Equal inputs
/// give equal bytes.
pub fn quantize_model(files: &ModelFiles, to: Quantization) -> Result<Vec<u8>> {
    let checkpoint = Checkpoint::from_files(files)?;
    BertWeights::load(&files.bert_config()?, &checkpoint)?;
    let own_sha256 = || files.weights_sha256.clone().unwrap_or_else(|| sha256_hex(&files.weights));
    let source_sha256 = match files.weights_format {
        WeightsFormat::Safetensors => own_sha256(),
        // A re-quantized model still names the f32 weights it descends from.
        WeightsFormat::Gguf => gguf::metadata_string(&gguf::read_header(&files.weights)?, gguf::SOURCE_SHA256_KEY)
            .map_or_else(own_sha256, str::to_owned),
    };
    let tensors = checkpoint
        .to_f32_tensors()?
        .into_iter()
        .map(|(name, tensor)| {
            let dtype = tensor_type(&name, &tensor, to);
            Ok((name, QTensor::quantize(&tensor, dtype)?))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = [
        (gguf::ARCHITECTURE_KEY, Value::String("bert".into())),
        (gguf::QUANTIZATION_KEY, Value::String(to.name().into())),
        (gguf::SOURCE_SHA256_KEY, Value::String(source_sha256)),
    ];
    gguf::write(&metadata, &tensors)
}

/// The type a tensor is stored in. The 2-D weight matrices (linears and the word-embedding
/// table) whose rows are whole blocks take `to`'s type; everything else stays F32 (position and
/// token-type embeddings too: they are small and added to every token).
///
/// In Q4_0 only the word-embedding table and each layer's FFN output (`output.dense`) go to 4
/// bits, the rest to Q8_0. On all-MiniLM-L6-v2 against sentence-transformers, all-4-bit
/// matrices give a worst cosine of 0.894 (mean 0.959); Q/K/V, the attention output and the
/// FFN input each cost about as much, and no better rounding (error-minimising scales,
/// GPTQ) recovers it; this mix gives 0.974 (mean 0.990).
fn tensor_type(name: &str, tensor: &Tensor, to: Quantization) -> GgmlDType {
    let matrix = name.ends_with(".weight")
        && name != POSITION_EMBEDDINGS
        && name != TOKEN_TYPE_EMBEDDINGS
        && tensor.rank() == 2
        && tensor.dims()[1].is_multiple_of(to.ggml().block_size());
    let ffn_output = name.ends_with(&format!(".{FFN_OUTPUT}.weight")) && !name.contains(".attention.");
    let four_bits = name == WORD_EMBEDDINGS || ffn_output;
    if !matrix {
        GgmlDType::F32
    } else if to == Quantization::Q4_0 && !four_bits {
        GgmlDType::Q8_0
    } else {
        to.ggml()
    }
}

/// Writes a model folder at `out` (created if needed) with the weights of `files` as a
/// `model.gguf` in `to`'s type, the other files copied, and `quiver.json` naming the GGUF.
pub fn write_quantized_model(files: &ModelFiles, to: Quantization, out: &Path) -> Result<()> {
    let gguf = quantize_model(files, to)?;
    let mut quiver: serde_json::Map<String, serde_json::Value> = match &files.quiver {
        Some(bytes) => serde_json::from_slice(bytes)
            .map_err(|e| EncoderError::InvalidConfig { file: "quiver.json", reason: e.to_string() })?,
        None => serde_json::Map::new(),
    };
    quiver.insert(WEIGHTS_KEY.into(), WeightsFormat::Gguf.file_name().into());
    let quiver = serde_json::to_vec_pretty(&quiver).expect("a JSON map serialises");

    let copied = REQUIRED_FILES.into_iter().chain(OPTIONAL_FILES).filter(|&path| path != "quiver.json");
    let mut outputs: Vec<(&str, &[u8])> = copied.filter_map(|path| Some((path, files.get(path)?))).collect();
    outputs.extend([(WeightsFormat::Gguf.file_name(), gguf.as_slice()), ("quiver.json", &quiver)]);
    for (path, bytes) in outputs {
        let path = out.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| EncoderError::Io {
                op: "create folder",
                path: parent.to_owned(),
                source,
            })?;
        }
        std::fs::write(&path, bytes).map_err(|source| EncoderError::Io { op: "write", path, source })?;
    }
    Ok(())
}
