//! A BERT checkpoint read once, from `model.safetensors` (f32, f16 or bf16) or `model.gguf`
//! (F32, F16, Q8_0 or Q4_0), into [`BertWeights`]: the backend-neutral structure that the
//! CPU encoder ([`crate::bert::Bert`]) and the GPU encoder (`quiver_gpu::GpuBert`) both
//! build from. The tensor names of Hugging Face's `BertModel` are spelled here only.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

use crate::config::BertConfig;
use crate::files::{ModelFiles, WeightsFormat};
use crate::gguf;
use crate::{EncoderError, Result};

pub const WORD_EMBEDDINGS: &str = "embeddings.word_embeddings.weight";
pub const POSITION_EMBEDDINGS: &str = "embeddings.position_embeddings.weight";
pub const TOKEN_TYPE_EMBEDDINGS: &str = "embeddings.token_type_embeddings.weight";
/// Each layer's FFN output linear, `encoder.layer.{i}.output.dense`.
pub const FFN_OUTPUT: &str = "output.dense";

/// A tensor as stored.
enum Stored {
    /// From `model.safetensors`, in its float type.
    Float(Tensor),
    /// From `model.gguf`, in its GGML type, where it lies in the file.
    Ggml(Blocks),
}

impl Stored {
    fn dims(&self) -> &[usize] {
        match self {
            Stored::Float(t) => t.dims(),
            Stored::Ggml(b) => &b.dims,
        }
    }

    fn to_f32(&self) -> Result<Tensor> {
        Ok(match self {
            Stored::Float(t) => t.to_dtype(DType::F32)?,
            Stored::Ggml(b) => b.dequantize()?,
        })
    }

    fn to_f32_vec(&self) -> Result<Vec<f32>> {
        Ok(self.to_f32()?.flatten_all()?.to_vec1()?)
    }
}

/// A checkpoint's tensors by name, each checked against the shape the config implies when
/// taken.
pub struct Checkpoint {
    tensors: HashMap<String, Stored>,
    /// `"bert."` when the encoder sits inside a task model (`BertForSequenceClassification`).
    prefix: &'static str,
}

impl Checkpoint {
    /// The tensors of a model folder, from whichever weights file it has.
    pub fn from_files(files: &ModelFiles) -> Result<Self> {
        match files.weights_format {
            WeightsFormat::Safetensors => Self::from_safetensors(&files.weights),
            WeightsFormat::Gguf => Self::from_gguf(files.weights.clone()),
        }
    }

    pub fn from_safetensors(bytes: &[u8]) -> Result<Self> {
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
            .map_err(|e| EncoderError::InvalidWeights(e.to_string()))?;
        Ok(Self::new(tensors.into_iter().map(|(name, t)| (name, Stored::Float(t))).collect()))
    }

    /// The tensors of a GGUF file, which they keep and read in place: none is copied out.
    pub fn from_gguf(file: Arc<Vec<u8>>) -> Result<Self> {
        let places = gguf::places(&gguf::read_header(&file)?, file.len())?;
        Ok(Self::new(
            places
                .into_iter()
                .map(|p| {
                    let blocks = Blocks { dtype: p.dtype, dims: p.dims, bytes: file.clone(), range: p.range };
                    (p.name, Stored::Ggml(blocks))
                })
                .collect(),
        ))
    }

    fn new(tensors: HashMap<String, Stored>) -> Self {
        let prefix = if tensors.contains_key(&format!("bert.{WORD_EMBEDDINGS}")) { "bert." } else { "" };
        Checkpoint { tensors, prefix }
    }

    /// `name` under the encoder's prefix.
    fn encoder_name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The tensor named exactly `name`, which must have exactly `shape`.
    fn stored(&self, name: &str, shape: &[usize]) -> Result<&Stored> {
        let tensor = self.tensors.get(name).ok_or_else(|| EncoderError::MissingTensor { name: name.to_owned() })?;
        if tensor.dims() != shape {
            return Err(EncoderError::ShapeMismatch {
                name: name.to_owned(),
                expected: shape.to_vec(),
                actual: tensor.dims().to_vec(),
            });
        }
        Ok(tensor)
    }

    /// The tensor `name` (under the encoder's prefix) as f32 values with exactly `shape`.
    fn values(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.stored(&self.encoder_name(name), shape)?.to_f32_vec()
    }

    /// A linear inside the encoder (`pooler.dense`), under the prefix.
    pub fn linear(&self, name: &str, inputs: usize, outputs: usize) -> Result<LinearWeights> {
        LinearWeights::stacked(self, &[self.encoder_name(name)], inputs, outputs)
    }

    /// A task head's linear beside the encoder, named as in the checkpoint (`classifier`).
    pub fn head(&self, name: &str, inputs: usize, outputs: usize) -> Result<LinearWeights> {
        LinearWeights::stacked(self, &[name.to_owned()], inputs, outputs)
    }

    fn norm(&self, name: &str, size: usize) -> Result<Norm> {
        Ok(Norm {
            gamma: self.values(&format!("{name}.weight"), &[size])?,
            beta: self.values(&format!("{name}.bias"), &[size])?,
        })
    }

    /// Fails when the tokenizer can give ids beyond the model's vocabulary (the config's or
    /// the word-embedding table's, whichever is smaller).
    pub fn check_vocabulary(&self, tokenizer: usize, config: &BertConfig) -> Result<()> {
        let table = self.tensors.get(&self.encoder_name(WORD_EMBEDDINGS)).and_then(|t| t.dims().first().copied());
        let model = table.unwrap_or(config.vocab_size).min(config.vocab_size);
        if tokenizer > model {
            return Err(EncoderError::VocabularyMismatch { tokenizer, model });
        }
        Ok(())
    }

    /// Every float tensor as f32 (sorted by name, without the `bert.` prefix): what a GGUF
    /// stores. Integer buffers (`position_ids`) are left out; no model reads them.
    pub fn to_f32_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let mut names: Vec<&String> = self.tensors.keys().collect();
        names.sort();
        let mut tensors = Vec::with_capacity(names.len());
        for name in names {
            let stored = &self.tensors[name];
            if matches!(stored, Stored::Float(t) if !t.dtype().is_float()) {
                continue;
            }
            let bare = name.strip_prefix(self.prefix).unwrap_or(name);
            tensors.push((bare.to_owned(), stored.to_f32()?));
        }
        Ok(tensors)
    }
}

/// A GGML tensor's blocks (F32, F16, Q8_0 or Q4_0), row after row, where they lie: in the
/// weights file, shared by every tensor read from it, or in bytes of their own. A 4-bit
/// table of 250k rows is never copied (in wasm, whose memory never shrinks, a copy would
/// stay for good).
#[derive(Clone)]
pub struct Blocks {
    pub dtype: GgmlDType,
    pub dims: Vec<usize>,
    bytes: Arc<Vec<u8>>,
    range: Range<usize>,
}

impl Blocks {
    /// A copy of a tensor's blocks.
    pub fn from_qtensor(q: &QTensor) -> Result<Self> {
        let bytes = q.data()?.into_owned();
        Ok(Blocks { dtype: q.dtype(), dims: q.shape().dims().to_vec(), range: 0..bytes.len(), bytes: Arc::new(bytes) })
    }

    /// The blocks' bytes.
    pub fn data(&self) -> &[u8] {
        &self.bytes[self.range.clone()]
    }

    /// `[rows, columns]`.
    pub fn dims2(&self) -> Result<(usize, usize)> {
        match self.dims[..] {
            [rows, columns] => Ok((rows, columns)),
            _ => Err(EncoderError::InvalidWeights(format!("a matrix has shape {:?}", self.dims))),
        }
    }

    /// Bytes per row.
    fn row_bytes(&self) -> usize {
        self.dims.last().map_or(0, |columns| columns / self.dtype.block_size() * self.dtype.type_size())
    }

    /// The values widened to f32, in a tensor of the same shape.
    pub(crate) fn dequantize(&self) -> Result<Tensor> {
        Ok(qtensor_from_ggml(self.dtype, self.data(), self.dims.clone(), &Device::Cpu)?.dequantize(&Device::Cpu)?)
    }
}

/// A `[rows, columns]` matrix as stored: the CPU multiplies Q8_0 and Q4_0 blocks as they
/// are, and a table (multilingual-e5's 250k word rows stay 4-bit) widens only the rows
/// looked up.
pub enum Matrix {
    /// f32 (from any float checkpoint, and GGML's F32).
    Dense(Tensor),
    /// In its GGML type (F16, Q8_0 or Q4_0), one row of blocks per row.
    Blocks(Blocks),
}

impl Matrix {
    fn from_stored(stored: &Stored) -> Result<Self> {
        Ok(match stored {
            Stored::Ggml(b) if b.dtype != GgmlDType::F32 => Matrix::Blocks(b.clone()),
            stored => Matrix::Dense(stored.to_f32()?),
        })
    }

    /// The rows of `ids` (u32), `[ids, columns]`.
    pub(crate) fn rows_tensor(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Matrix::Dense(table) => table.index_select(ids, 0)?,
            Matrix::Blocks(table) => {
                let (rows, columns) = table.dims2()?;
                let width = table.row_bytes();
                let ids = ids.flatten_all()?.to_vec1::<u32>()?;
                let mut gathered = Vec::with_capacity(ids.len() * width);
                for &id in &ids {
                    let id = id as usize;
                    if id >= rows {
                        return Err(EncoderError::InvalidArgument {
                            op: "embedding lookup",
                            what: format!("token id {id} is past the table's {rows} rows"),
                        });
                    }
                    gathered.extend_from_slice(&table.data()[id * width..(id + 1) * width]);
                }
                qtensor_from_ggml(table.dtype, &gathered, vec![ids.len(), columns], &Device::Cpu)?
                    .dequantize(&Device::Cpu)?
            }
        })
    }

    /// The rows of `ids` as f32, one after another.
    pub fn rows(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let ids = Tensor::from_slice(ids, ids.len(), &Device::Cpu)?;
        Ok(self.rows_tensor(&ids)?.flatten_all()?.to_vec1()?)
    }

    /// The values, row-major, widened to f32.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let dense = match self {
            Matrix::Dense(t) => t.clone(),
            Matrix::Blocks(b) => b.dequantize()?,
        };
        Ok(dense.flatten_all()?.to_vec1()?)
    }

    /// Several matrices with the same columns, one under the other. Rows of blocks are
    /// independent, so same-typed quantized matrices stack by their bytes; anything else
    /// stacks as f32.
    pub(crate) fn stack(parts: Vec<Matrix>) -> Result<Self> {
        if parts.len() == 1 {
            return Ok(parts.into_iter().next().expect("one part"));
        }
        let blocks: Option<Vec<&Blocks>> = parts
            .iter()
            .map(|p| match p {
                Matrix::Blocks(b) => Some(b),
                Matrix::Dense(_) => None,
            })
            .collect();
        if let Some(blocks) = blocks.filter(|b| b.iter().all(|q| q.dtype == b[0].dtype)) {
            let (mut rows, mut bytes) = (0, Vec::new());
            for b in &blocks {
                rows += b.dims2()?.0;
                bytes.extend_from_slice(b.data());
            }
            let columns = blocks[0].dims2()?.1;
            let range = 0..bytes.len();
            return Ok(Matrix::Blocks(Blocks {
                dtype: blocks[0].dtype,
                dims: vec![rows, columns],
                bytes: Arc::new(bytes),
                range,
            }));
        }
        let dense = parts
            .iter()
            .map(|p| match p {
                Matrix::Dense(t) => Ok(t.clone()),
                Matrix::Blocks(b) => b.dequantize(),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Matrix::Dense(Tensor::cat(&dense, 0)?))
    }
}

/// `nn.Linear`: `weight` is `[outputs, inputs]`.
pub struct LinearWeights {
    pub weight: Matrix,
    pub bias: Vec<f32>,
}

impl LinearWeights {
    /// Linears (named exactly, `outputs` each) with the same input, stacked into one wider
    /// linear.
    fn stacked(checkpoint: &Checkpoint, names: &[String], inputs: usize, outputs: usize) -> Result<Self> {
        let mut weights = Vec::with_capacity(names.len());
        let mut bias = Vec::with_capacity(names.len() * outputs);
        for name in names {
            weights.push(Matrix::from_stored(checkpoint.stored(&format!("{name}.weight"), &[outputs, inputs])?)?);
            bias.extend(checkpoint.stored(&format!("{name}.bias"), &[outputs])?.to_f32_vec()?);
        }
        Ok(LinearWeights { weight: Matrix::stack(weights)?, bias })
    }
}

/// `LayerNorm`'s scale and shift (its epsilon is the config's).
pub struct Norm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

/// `BertLayer`'s weights, with Q, K and V stacked into one linear (`[3·hidden, hidden]`).
pub struct LayerWeights {
    pub qkv: LinearWeights,
    pub attention_output: LinearWeights,
    pub attention_norm: Norm,
    pub intermediate: LinearWeights,
    pub output: LinearWeights,
    pub output_norm: Norm,
}

/// `BertModel`'s weights (embeddings and layers; no pooler), checked against the config.
pub struct BertWeights {
    /// `[vocab, hidden]`.
    pub word_embeddings: Matrix,
    /// `[positions, hidden]`, row-major.
    pub position_embeddings: Vec<f32>,
    /// `[token types, hidden]`, row-major.
    pub token_type_embeddings: Vec<f32>,
    pub embedding_norm: Norm,
    pub layers: Vec<LayerWeights>,
}

impl BertWeights {
    pub fn load(config: &BertConfig, checkpoint: &Checkpoint) -> Result<Self> {
        let (h, inner) = (config.hidden_size, config.intermediate_size);
        let linear = |names: &[String], inputs, outputs| {
            let names: Vec<String> = names.iter().map(|n| checkpoint.encoder_name(n)).collect();
            LinearWeights::stacked(checkpoint, &names, inputs, outputs)
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                Ok(LayerWeights {
                    qkv: linear(&["query", "key", "value"].map(|part| format!("{p}.attention.self.{part}")), h, h)?,
                    attention_output: linear(&[format!("{p}.attention.output.dense")], h, h)?,
                    attention_norm: checkpoint.norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                    intermediate: linear(&[format!("{p}.intermediate.dense")], h, inner)?,
                    output: linear(&[format!("{p}.{FFN_OUTPUT}")], inner, h)?,
                    output_norm: checkpoint.norm(&format!("{p}.output.LayerNorm"), h)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(BertWeights {
            word_embeddings: Matrix::from_stored(
                checkpoint.stored(&checkpoint.encoder_name(WORD_EMBEDDINGS), &[config.vocab_size, h])?,
            )?,
            position_embeddings: checkpoint.values(POSITION_EMBEDDINGS, &[config.max_position_embeddings, h])?,
            token_type_embeddings: checkpoint.values(TOKEN_TYPE_EMBEDDINGS, &[config.type_vocab_size, h])?,
            embedding_norm: checkpoint.norm("embeddings.LayerNorm", h)?,
            layers,
        })
    }
}
