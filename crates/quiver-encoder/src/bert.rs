//! The BERT encoder, mirroring Hugging Face's `modeling_bert.py`
//! (<https://github.com/huggingface/transformers/blob/v4.46.0/src/transformers/models/bert/modeling_bert.py>):
//! `BertEmbeddings`, `BertSelfAttention` + `BertSelfOutput`, `BertIntermediate` +
//! `BertOutput`, stacked as `BertEncoder`. Inference only; token type ids are all zero
//! unless given (sentence pairs of a cross-encoder).

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QTensor};
use candle_core::{bail, CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};

use crate::config::{Activation, BertConfig};
use crate::files::{ModelFiles, WeightsFormat};
use crate::gguf;
use crate::ops::{BiasActivation, BiasResidualNorm, MaskedSoftmax};
use crate::qmatmul::QuantizedWeight;
use crate::{EncoderError, Result};

/// A checkpoint's tensor as stored.
enum Stored {
    /// From `model.safetensors`, in its float type.
    Float(Tensor),
    /// From `model.gguf`, in its GGML type (F32, F16, Q8_0 or Q4_0).
    Ggml(Arc<QTensor>),
}

impl Stored {
    fn dims(&self) -> &[usize] {
        match self {
            Stored::Float(t) => t.dims(),
            Stored::Ggml(q) => q.shape().dims(),
        }
    }

    fn to_f32(&self) -> Result<Tensor> {
        Ok(match self {
            Stored::Float(t) => t.to_dtype(DType::F32)?,
            Stored::Ggml(q) => q.dequantize(&Device::Cpu)?,
        })
    }
}

/// Tensors of a checkpoint by name, checked against the shapes the config implies.
pub(crate) struct Weights {
    tensors: HashMap<String, Stored>,
    /// `"bert."` when the encoder sits inside a task model (`BertForSequenceClassification`).
    prefix: &'static str,
}

impl Weights {
    /// The weights of a model folder, from whichever file it has.
    pub fn from_files(files: &ModelFiles) -> Result<Self> {
        match files.weights_format {
            WeightsFormat::Safetensors => Self::from_safetensors(&files.weights),
            WeightsFormat::Gguf => Self::from_gguf(&files.weights),
        }
    }

    pub fn from_safetensors(bytes: &[u8]) -> Result<Self> {
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
            .map_err(|e| EncoderError::InvalidWeights(e.to_string()))?;
        Ok(Self::new(tensors.into_iter().map(|(name, t)| (name, Stored::Float(t))).collect()))
    }

    pub fn from_gguf(bytes: &[u8]) -> Result<Self> {
        let tensors = gguf::read_tensors(bytes)?;
        Ok(Self::new(tensors.into_iter().map(|(name, q)| (name, Stored::Ggml(Arc::new(q)))).collect()))
    }

    fn new(tensors: HashMap<String, Stored>) -> Self {
        let prefix = if tensors.contains_key("bert.embeddings.word_embeddings.weight") { "bert." } else { "" };
        Weights { tensors, prefix }
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

    /// The tensor `name` (under the encoder's prefix) as f32 with exactly `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.get_exact(&self.encoder_name(name), shape)
    }

    /// A tensor outside the encoder (a classification head), without the prefix.
    pub fn get_exact(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.stored(name, shape)?.to_f32()
    }

    /// A linear's weight (`[out, in]`, named exactly): Q8_0 and Q4_0 stay quantized; float
    /// types become f32.
    fn linear_weight(&self, name: &str, shape: &[usize]) -> Result<LinearWeight> {
        Ok(match self.stored(name, shape)? {
            Stored::Ggml(q) if matches!(q.dtype(), GgmlDType::Q8_0 | GgmlDType::Q4_0) => {
                LinearWeight::Blocks(q.clone())
            }
            stored => LinearWeight::Dense(stored.to_f32()?),
        })
    }

    /// An embedding table (under the encoder's prefix): a GGML table other than F32 stays
    /// in its type, and only the rows looked up are widened.
    fn embedding_table(&self, name: &str, shape: &[usize]) -> Result<EmbeddingTable> {
        Ok(match self.stored(&self.encoder_name(name), shape)? {
            Stored::Ggml(q) if q.dtype() != GgmlDType::F32 => EmbeddingTable::Ggml(q.clone()),
            stored => EmbeddingTable::Dense(stored.to_f32()?),
        })
    }

    /// Rows of the word-embedding table, if there is one.
    fn word_embedding_rows(&self) -> Option<usize> {
        self.tensors.get(&self.encoder_name(WORD_EMBEDDINGS)).and_then(|t| t.dims().first().copied())
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

const WORD_EMBEDDINGS: &str = "embeddings.word_embeddings.weight";

/// Fails when the tokenizer can give ids beyond the model's vocabulary (the config's or the
/// word-embedding table's, whichever is smaller).
pub(crate) fn check_vocabulary(tokenizer: usize, config: &BertConfig, weights: &Weights) -> Result<()> {
    let model = weights.word_embedding_rows().unwrap_or(config.vocab_size).min(config.vocab_size);
    if tokenizer > model {
        return Err(EncoderError::VocabularyMismatch { tokenizer, model });
    }
    Ok(())
}

/// A linear's weight as loaded, `[out, in]`.
enum LinearWeight {
    Dense(Tensor),
    /// Q8_0 or Q4_0 blocks, one row of blocks per output.
    Blocks(Arc<QTensor>),
}

impl LinearWeight {
    /// The weights of several linears with the same input, stacked into one wider linear.
    /// Rows of blocks are independent, so same-typed quantized matrices stack by their
    /// bytes; anything else stacks as f32.
    fn stack(parts: Vec<LinearWeight>) -> Result<Self> {
        let blocks: Option<Vec<&QTensor>> = parts
            .iter()
            .map(|p| match p {
                LinearWeight::Blocks(q) => Some(q.as_ref()),
                LinearWeight::Dense(_) => None,
            })
            .collect();
        if let Some(blocks) = blocks.filter(|b| b.iter().all(|q| q.dtype() == b[0].dtype())) {
            let dtype = blocks[0].dtype();
            let (mut rows, mut bytes) = (0, Vec::new());
            for q in &blocks {
                rows += q.shape().dims2()?.0;
                bytes.extend_from_slice(&q.data()?);
            }
            let columns = blocks[0].shape().dims2()?.1;
            return Ok(LinearWeight::Blocks(Arc::new(qtensor_from_ggml(
                dtype,
                &bytes,
                vec![rows, columns],
                &Device::Cpu,
            )?)));
        }
        let dense = parts
            .iter()
            .map(|p| match p {
                LinearWeight::Dense(t) => Ok(t.clone()),
                LinearWeight::Blocks(q) => Ok(q.dequantize(&Device::Cpu)?),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LinearWeight::Dense(Tensor::cat(&dense, 0)?))
    }
}

/// How a linear multiplies.
enum Product {
    /// The f32 weight stored transposed (`[in, out]`), so the product is a plain row-major
    /// matmul.
    Dense(Tensor),
    /// Q8_0 or Q4_0 blocks: integer block dot products with the input quantized to 8 bits
    /// ([`crate::qmatmul`]).
    Quantized(QuantizedWeight),
}

/// `x · Wᵀ` for a quantized `W`, as a candle op on the input's storage.
struct QuantizedProduct<'a>(&'a QuantizedWeight);

impl CustomOp1 for QuantizedProduct<'_> {
    fn name(&self) -> &'static str {
        "quantized-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let weight = self.0;
        let (Some((start, end)), CpuStorage::F32(x)) = (layout.contiguous_offsets(), storage) else {
            bail!("{}: input must be contiguous f32", self.name())
        };
        let mut dims = layout.dims().to_vec();
        match dims.last_mut() {
            Some(last) if *last == weight.inputs() => *last = weight.outputs(),
            _ => bail!("{}: input {:?} for {} inputs", self.name(), layout.dims(), weight.inputs()),
        }
        Ok((CpuStorage::F32(weight.matmul(&x[start..end])), Shape::from(dims)))
    }
}

/// `nn.Linear`; the bias is added by the fused op that follows the product.
pub(crate) struct Linear {
    product: Product,
    bias: Vec<f32>,
}

impl Linear {
    /// A linear inside the encoder (under the checkpoint's `bert.` prefix, if any).
    pub fn load(w: &Weights, name: &str, inputs: usize, outputs: usize) -> Result<Self> {
        Self::load_stacked(w, &[w.encoder_name(name)], inputs, outputs)
    }

    /// A task head's linear beside the encoder, named as in the checkpoint (`classifier`).
    pub fn load_head(w: &Weights, name: &str, inputs: usize, outputs: usize) -> Result<Self> {
        Self::load_stacked(w, &[name.to_owned()], inputs, outputs)
    }

    /// Linears (named exactly, `outputs` each) with the same input as one wider product.
    fn load_stacked(w: &Weights, names: &[String], inputs: usize, outputs: usize) -> Result<Self> {
        let mut weights = Vec::with_capacity(names.len());
        let mut bias = Vec::with_capacity(names.len() * outputs);
        for name in names {
            weights.push(w.linear_weight(&format!("{name}.weight"), &[outputs, inputs])?);
            bias.extend(w.get_exact(&format!("{name}.bias"), &[outputs])?.to_vec1::<f32>()?);
        }
        let product = match LinearWeight::stack(weights)? {
            LinearWeight::Dense(weight) => Product::Dense(weight.t()?.contiguous()?),
            LinearWeight::Blocks(weight) => Product::Quantized(
                QuantizedWeight::from_qtensor(&weight)?.expect("linear_weight keeps only Q8_0 and Q4_0 as blocks"),
            ),
        };
        Ok(Linear { product, bias })
    }

    fn product(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match &self.product {
            Product::Dense(weight_t) => x.matmul(weight_t)?,
            Product::Quantized(weight) => x.apply_op1_no_bwd(&QuantizedProduct(weight))?,
        })
    }

    /// `act(x · Wᵀ + b)` for `x` of `[rows, in]`.
    pub fn forward(&self, x: &Tensor, act: Option<Activation>) -> Result<Tensor> {
        let y = self.product(x)?;
        y.inplace_op1(&BiasActivation { bias: &self.bias, act })?;
        Ok(y)
    }

    /// `LayerNorm(x · Wᵀ + b + residual)`.
    fn forward_residual_norm(&self, x: &Tensor, residual: &Tensor, norm: &LayerNorm) -> Result<Tensor> {
        let y = self.product(x)?;
        y.inplace_op2(
            residual,
            &BiasResidualNorm { bias: &self.bias, gamma: &norm.gamma, beta: &norm.beta, eps: norm.eps },
        )?;
        Ok(y)
    }
}

struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    fn load(w: &Weights, name: &str, size: usize, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            gamma: w.get(&format!("{name}.weight"), &[size])?.to_vec1()?,
            beta: w.get(&format!("{name}.bias"), &[size])?.to_vec1()?,
            eps: eps as f32,
        })
    }
}

/// The word-embedding table: f32, or in its GGML type with only the rows looked up widened.
enum EmbeddingTable {
    Dense(Tensor),
    Ggml(Arc<QTensor>),
}

impl EmbeddingTable {
    fn rows(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(match self {
            EmbeddingTable::Dense(table) => table.index_select(ids, 0)?,
            EmbeddingTable::Ggml(table) => table.embedding(ids)?,
        })
    }
}

/// `BertEmbeddings`: word + absolute position + token type, then LayerNorm.
struct Embeddings {
    word: EmbeddingTable,
    position: Tensor,
    token_type: Tensor,
    norm: LayerNorm,
    zero_bias: Vec<f32>,
}

/// `BertLayer`: self-attention with Q, K and V fused into one product, then the MLP.
struct Layer {
    qkv: Linear,
    attention_output: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

pub struct Bert {
    config: BertConfig,
    embeddings: Embeddings,
    layers: Vec<Layer>,
}

impl Bert {
    pub(crate) fn load(config: &BertConfig, w: &Weights) -> Result<Self> {
        let h = config.hidden_size;
        let eps = config.layer_norm_eps;
        let embeddings = Embeddings {
            word: w.embedding_table(WORD_EMBEDDINGS, &[config.vocab_size, h])?,
            position: w.get("embeddings.position_embeddings.weight", &[config.max_position_embeddings, h])?,
            token_type: w.get("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, h])?,
            norm: LayerNorm::load(w, "embeddings.LayerNorm", h, eps)?,
            zero_bias: vec![0.0; h],
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                let qkv = ["query", "key", "value"].map(|part| w.encoder_name(&format!("{p}.attention.self.{part}")));
                Ok(Layer {
                    qkv: Linear::load_stacked(w, &qkv, h, h)?,
                    attention_output: Linear::load(w, &format!("{p}.attention.output.dense"), h, h)?,
                    attention_norm: LayerNorm::load(w, &format!("{p}.attention.output.LayerNorm"), h, eps)?,
                    intermediate: Linear::load(w, &format!("{p}.intermediate.dense"), h, config.intermediate_size)?,
                    output: Linear::load(w, &format!("{p}.output.dense"), config.intermediate_size, h)?,
                    output_norm: LayerNorm::load(w, &format!("{p}.output.LayerNorm"), h, eps)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Bert { config: config.clone(), embeddings, layers })
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// Token vectors of the last layer for a right-padded batch: `ids` holds `batch × seq`
    /// ids, `lengths[i]` how many of row `i`'s are real; `type_ids`, laid out like `ids`, are
    /// all zero when `None`. Returns `[batch, seq, hidden]`.
    pub fn forward(&self, ids: &[u32], type_ids: Option<&[u32]>, lengths: &[usize], seq: usize) -> Result<Tensor> {
        let batch = lengths.len();
        let c = &self.config;
        let (h, heads, head_dim) = (c.hidden_size, c.num_attention_heads, c.head_dim());
        if ids.len() != batch * seq || seq > c.max_position_embeddings {
            return Err(EncoderError::InvalidArgument {
                op: "forward",
                what: format!("{} ids for {batch} sequences of {seq} (limit {})", ids.len(), c.max_position_embeddings),
            });
        }
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= c.vocab_size) {
            return Err(EncoderError::VocabularyMismatch { tokenizer: bad as usize + 1, model: c.vocab_size });
        }
        if let Some(types) = type_ids {
            if types.len() != ids.len() || types.iter().any(|&t| t as usize >= c.type_vocab_size) {
                return Err(EncoderError::InvalidArgument {
                    op: "forward",
                    what: format!(
                        "{} token type ids for {} ids (types below {})",
                        types.len(),
                        ids.len(),
                        c.type_vocab_size
                    ),
                });
            }
        }
        let dev = Device::Cpu;
        let ids_t = Tensor::from_slice(ids, batch * seq, &dev)?;
        let e = &self.embeddings;
        let words = e.word.rows(&ids_t)?;
        let positions = e.position.narrow(0, 0, seq)?;
        // Position + token type, added to the words by the fused LayerNorm below. Without type
        // ids every row shares type 0's vector: one small sum instead of a gather.
        let added = match type_ids {
            None => positions.broadcast_add(&e.token_type.get(0)?)?.unsqueeze(0)?.broadcast_as((batch, seq, h))?,
            Some(types) => e
                .token_type
                .index_select(&Tensor::from_slice(types, batch * seq, &dev)?, 0)?
                .reshape((batch, seq, h))?
                .broadcast_add(&positions)?,
        };
        words.inplace_op2(
            &added.reshape((batch * seq, h))?,
            &BiasResidualNorm { bias: &e.zero_bias, gamma: &e.norm.gamma, beta: &e.norm.beta, eps: e.norm.eps },
        )?;
        let mut x = words;
        let softmax = MaskedSoftmax { lengths, heads, scale: 1.0 / (head_dim as f32).sqrt() };

        for layer in &self.layers {
            let qkv =
                layer.qkv.forward(&x, None)?.reshape((batch, seq, 3, heads, head_dim))?.permute((2, 0, 3, 1, 4))?;
            let q = qkv.get(0)?.contiguous()?;
            let k = qkv.get(1)?.contiguous()?;
            let v = qkv.get(2)?.contiguous()?;
            let scores = q.matmul(&k.t()?)?;
            scores.inplace_op1(&softmax)?;
            let context = scores.matmul(&v)?.transpose(1, 2)?.reshape((batch * seq, h))?;
            let attended = layer.attention_output.forward_residual_norm(&context, &x, &layer.attention_norm)?;
            let inner = layer.intermediate.forward(&attended, Some(c.hidden_act))?;
            x = layer.output.forward_residual_norm(&inner, &attended, &layer.output_norm)?;
        }
        Ok(x.reshape((batch, seq, h))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stacking quantized Q, K and V by their bytes gives exactly the three products side by side.
    #[test]
    fn stacked_quantized_weights_multiply_like_their_parts() {
        let x = Tensor::randn(0f32, 1.0, (5, 64), &Device::Cpu).unwrap();
        for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_0] {
            let parts: Vec<Arc<QTensor>> = (0..3)
                .map(|_| {
                    let weight = Tensor::randn(0f32, 1.0, (32, 64), &Device::Cpu).unwrap();
                    Arc::new(QTensor::quantize(&weight, dtype).unwrap())
                })
                .collect();
            let product = |q: &QTensor| {
                let weight = QuantizedWeight::from_qtensor(q).unwrap().unwrap();
                x.apply_op1_no_bwd(&QuantizedProduct(&weight)).unwrap()
            };
            let separate: Vec<Tensor> = parts.iter().map(|q| product(q)).collect();
            let LinearWeight::Blocks(stacked) =
                LinearWeight::stack(parts.into_iter().map(LinearWeight::Blocks).collect()).unwrap()
            else {
                panic!("{dtype:?} weights stack as blocks")
            };
            assert_eq!((stacked.dtype(), stacked.shape().dims()), (dtype, &[96, 64][..]));
            let together = product(&stacked);
            let expected = Tensor::cat(&separate, 1).unwrap();
            assert_eq!(together.to_vec2::<f32>().unwrap(), expected.to_vec2::<f32>().unwrap(), "{dtype:?}");
        }
    }
}
