//! `model.gguf`: Quiver's quantized model file, a GGUF container
//! (<https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>) read and written with
//! candle's `gguf_file`.
//!
//! # Layout
//! - GGUF version 3, little-endian, tensor data aligned to 32 bytes (the default).
//! - Metadata: `general.architecture` = `"bert"`; `quiver.quantization` = `"q8_0"`,
//!   `"q4_0"` or `"f16"`; `quiver.source_weights_sha256` = the sha256 (hex) of the f32
//!   weights file it was made from. The model's shape and settings come from `config.json`
//!   and the other files beside it, as for `model.safetensors`.
//! - Tensor names: the Hugging Face BERT names without a `bert.` prefix, as in
//!   all-MiniLM-L6-v2's safetensors: `embeddings.word_embeddings.weight`,
//!   `embeddings.position_embeddings.weight`, `embeddings.token_type_embeddings.weight`,
//!   `embeddings.LayerNorm.{weight,bias}`, and for each layer `i`
//!   `encoder.layer.{i}.attention.self.{query,key,value}.{weight,bias}`,
//!   `encoder.layer.{i}.attention.output.dense.{weight,bias}`,
//!   `encoder.layer.{i}.attention.output.LayerNorm.{weight,bias}`,
//!   `encoder.layer.{i}.intermediate.dense.{weight,bias}`,
//!   `encoder.layer.{i}.output.dense.{weight,bias}`,
//!   `encoder.layer.{i}.output.LayerNorm.{weight,bias}`; optionally `pooler.dense.*` and a
//!   cross-encoder's `classifier.*`.
//! - Shapes as in PyTorch: a linear weight is `[out, in]`. GGUF lists dimensions innermost
//!   first, so the file says `[in, out]`; the 32-value blocks run along `in`, one row of
//!   blocks per output.
//! - Types: the 2-D `*.weight` matrices whose rows are whole blocks (the linear weights and
//!   the word-embedding table) in the chosen type, except that `q4_0` keeps the matrices
//!   other than the word-embedding table and the FFN outputs (`encoder.layer.{i}.output.dense`)
//!   in Q8_0; everything else (biases, LayerNorms, position and token-type embeddings) in F32.
//!   Readers go by each tensor's own type.
//! - Blocks (ggml's): Q8_0 = 34 bytes {f16 d, 32 × i8 q}, value = q·d. Q4_0 = 18 bytes
//!   {f16 d, 16 bytes}, value `j` in the low nibble of byte `j` and value `j + 16` in its high
//!   nibble, value = (nibble − 8)·d. F16 = IEEE half floats.
//!
//! The reader takes F32, F16, Q8_0 and Q4_0 for any tensor, with or without the `bert.`
//! prefix, so files from other tools with these names load too.

use std::io::Cursor;
use std::ops::Range;

use candle_core::quantized::gguf_file::{self, Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};

use crate::{EncoderError, Result};

pub const ARCHITECTURE_KEY: &str = "general.architecture";
pub const QUANTIZATION_KEY: &str = "quiver.quantization";
pub const SOURCE_SHA256_KEY: &str = "quiver.source_weights_sha256";

const FILE: &str = "model.gguf";

fn invalid(reason: impl Into<String>) -> EncoderError {
    EncoderError::InvalidGguf { reason: reason.into() }
}

/// Reads a GGUF file's header, checking magic, architecture, tensor types and that the
/// file holds every tensor it lists (candle trusts the header's offsets).
pub fn read_header(bytes: &[u8]) -> Result<Content> {
    if !bytes.starts_with(b"GGUF") {
        let found: String = bytes.iter().take(4).map(|&b| if b.is_ascii_graphic() { b as char } else { '.' }).collect();
        return Err(invalid(format!("it starts with {found:?}, not the GGUF magic")));
    }
    let content = Content::read(&mut Cursor::new(bytes))
        .map_err(|e| invalid(format!("the header is truncated or corrupt ({e})")))?;
    if let Some(arch) = content.metadata.get(ARCHITECTURE_KEY) {
        let arch = arch.to_string().map_err(|_| invalid(format!("{ARCHITECTURE_KEY} is not a string")))?;
        if arch != "bert" {
            return Err(EncoderError::UnsupportedArchitecture { found: arch.clone() });
        }
    }
    places(&content, bytes.len())?;
    Ok(content)
}

/// Where a tensor's data lies in the file.
pub struct Place {
    pub name: String,
    pub dtype: GgmlDType,
    /// As candle orders them: `[out, in]` for a linear weight.
    pub dims: Vec<usize>,
    pub range: Range<usize>,
}

/// Every tensor's place, each checked to hold whole blocks and to lie inside a file of
/// `len` bytes.
pub fn places(content: &Content, len: usize) -> Result<Vec<Place>> {
    let mut places = Vec::with_capacity(content.tensor_infos.len());
    for (name, info) in &content.tensor_infos {
        let dtype = info.ggml_dtype;
        if !matches!(dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::Q8_0 | GgmlDType::Q4_0) {
            return Err(EncoderError::UnsupportedTensorType { name: name.clone(), dtype: format!("{dtype:?}") });
        }
        let dims = info.shape.dims();
        let size = dims
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
            .filter(|n| n.is_multiple_of(dtype.block_size() as u64))
            .and_then(|n| (n / dtype.block_size() as u64).checked_mul(dtype.type_size() as u64))
            .ok_or_else(|| invalid(format!("tensor {name} has shape {dims:?}, not whole {dtype:?} blocks")))?;
        let start = content.tensor_data_offset.checked_add(info.offset).and_then(|s| usize::try_from(s).ok());
        let end = start.and_then(|start| start.checked_add(usize::try_from(size).ok()?));
        let (Some(start), Some(end)) = (start, end) else {
            return Err(invalid(format!("tensor {name} lies past any file")));
        };
        // The values are read in place as f32, f16 or blocks led by an f16 scale (allocators
        // align the file's buffer to 8 or more); GGUF aligns every tensor to 32 anyway.
        let align = if dtype == GgmlDType::F32 { 4 } else { 2 };
        if !start.is_multiple_of(align) {
            return Err(invalid(format!("tensor {name} starts at byte {start}, not {align}-byte aligned")));
        }
        places.push(Place { name: name.clone(), dtype, dims: dims.to_vec(), range: start..end });
    }
    let end = places.iter().map(|p| p.range.end).max().unwrap_or(0).max(content.tensor_data_offset as usize);
    if end > len {
        return Err(EncoderError::TruncatedWeights { file: FILE, expected: end as u64, actual: len as u64 });
    }
    Ok(places)
}

pub fn metadata_string<'a>(content: &'a Content, key: &str) -> Option<&'a str> {
    content.metadata.get(key).and_then(|v| v.to_string().ok()).map(String::as_str)
}

/// A GGUF file of `tensors` (written in the given order, so equal inputs give equal bytes).
pub(crate) fn write(metadata: &[(&str, Value)], tensors: &[(String, QTensor)]) -> Result<Vec<u8>> {
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(key, value)| (*key, value)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(name, tensor)| (name.as_str(), tensor)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &tensors)?;
    let mut bytes = out.into_inner();
    // candle writes version 2. Version 3 only added big-endian files, so a little-endian
    // version 2 file is a version 3 file once its header says so.
    bytes[4..8].copy_from_slice(&3u32.to_le_bytes());
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::quantized::ggml_file::qtensor_from_ggml;
    use candle_core::{Device, Tensor};

    use super::*;

    #[test]
    fn tensors_and_metadata_survive_a_round_trip() {
        let values = Tensor::randn(0f32, 1.0, (6, 64), &Device::Cpu).unwrap();
        let tensors: Vec<(String, QTensor)> = [GgmlDType::F32, GgmlDType::F16, GgmlDType::Q8_0, GgmlDType::Q4_0]
            .into_iter()
            .map(|dtype| (format!("{dtype:?}"), QTensor::quantize(&values, dtype).unwrap()))
            .collect();
        let bytes = write(&[(ARCHITECTURE_KEY, Value::String("bert".into()))], &tensors).unwrap();
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 3);
        assert_eq!(metadata_string(&read_header(&bytes).unwrap(), ARCHITECTURE_KEY), Some("bert"));
        let content = read_header(&bytes).unwrap();
        let read: HashMap<String, QTensor> = places(&content, bytes.len())
            .unwrap()
            .into_iter()
            .map(|p| (p.name, qtensor_from_ggml(p.dtype, &bytes[p.range], p.dims, &Device::Cpu).unwrap()))
            .collect();
        assert_eq!(read.len(), tensors.len());
        for (name, written) in &tensors {
            let back = &read[name];
            assert_eq!((back.dtype(), back.shape()), (written.dtype(), written.shape()), "{name}");
            assert_eq!(back.data().unwrap(), written.data().unwrap(), "{name}");
        }
    }

    #[test]
    fn another_architecture_is_refused() {
        let bytes = write(&[(ARCHITECTURE_KEY, Value::String("llama".into()))], &[]).unwrap();
        assert!(
            matches!(read_header(&bytes), Err(EncoderError::UnsupportedArchitecture { found }) if found == "llama")
        );
    }
}
