//! The BERT encoder, mirroring Hugging Face's `modeling_bert.py`
//! (<https://github.com/huggingface/transformers/blob/v4.46.0/src/transformers/models/bert/modeling_bert.py>):
//! `BertEmbeddings`, `BertSelfAttention` + `BertSelfOutput`, `BertIntermediate` +
//! `BertOutput`, stacked as `BertEncoder`. Inference only; token type ids are all zero
//! unless given (sentence pairs of a cross-encoder).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use crate::config::{Activation, BertConfig};
use crate::ops::{BiasActivation, BiasResidualNorm, MaskedSoftmax};
use crate::{EncoderError, Result};

/// Tensors of a checkpoint by name, checked against the shapes the config implies.
pub(crate) struct Weights {
    tensors: HashMap<String, Tensor>,
    /// `"bert."` when the encoder sits inside a task model (`BertForSequenceClassification`).
    prefix: &'static str,
}

impl Weights {
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self> {
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
            .map_err(|e| EncoderError::InvalidWeights(e.to_string()))?;
        let prefix = if tensors.contains_key("bert.embeddings.word_embeddings.weight") { "bert." } else { "" };
        Ok(Weights { tensors, prefix })
    }

    /// The tensor `name` (under the encoder's prefix) as f32 with exactly `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.get_exact(&format!("{}{name}", self.prefix), shape)
    }

    /// A tensor outside the encoder (a classification head), without the prefix.
    pub fn get_exact(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let tensor = self.tensors.get(name).ok_or_else(|| EncoderError::MissingTensor { name: name.to_owned() })?;
        if tensor.dims() != shape {
            return Err(EncoderError::ShapeMismatch {
                name: name.to_owned(),
                expected: shape.to_vec(),
                actual: tensor.dims().to_vec(),
            });
        }
        Ok(tensor.to_dtype(DType::F32)?)
    }
}

/// `nn.Linear`, with the weight stored transposed (`[in, out]`) so the product is a plain
/// row-major matmul; the bias is added by the fused op that follows the product.
pub(crate) struct Linear {
    weight_t: Tensor,
    bias: Vec<f32>,
}

impl Linear {
    /// A linear inside the encoder (under the checkpoint's `bert.` prefix, if any).
    pub fn load(w: &Weights, name: &str, inputs: usize, outputs: usize) -> Result<Self> {
        Self::new(w.get(&format!("{name}.weight"), &[outputs, inputs])?, w.get(&format!("{name}.bias"), &[outputs])?)
    }

    /// A task head's linear beside the encoder, named as in the checkpoint (`classifier`).
    pub fn load_head(w: &Weights, name: &str, inputs: usize, outputs: usize) -> Result<Self> {
        Self::new(
            w.get_exact(&format!("{name}.weight"), &[outputs, inputs])?,
            w.get_exact(&format!("{name}.bias"), &[outputs])?,
        )
    }

    fn new(weight: Tensor, bias: Tensor) -> Result<Self> {
        Ok(Linear { weight_t: weight.t()?.contiguous()?, bias: bias.to_vec1()? })
    }

    /// Several linears with the same input fused into one wider product.
    fn fused(parts: &[Linear]) -> Result<Self> {
        let weights: Vec<&Tensor> = parts.iter().map(|l| &l.weight_t).collect();
        Ok(Linear { weight_t: Tensor::cat(&weights, 1)?, bias: parts.iter().flat_map(|l| l.bias.clone()).collect() })
    }

    /// `act(x · Wᵀ + b)` for `x` of `[rows, in]`.
    pub fn forward(&self, x: &Tensor, act: Option<Activation>) -> Result<Tensor> {
        let y = x.matmul(&self.weight_t)?;
        y.inplace_op1(&BiasActivation { bias: &self.bias, act })?;
        Ok(y)
    }

    /// `LayerNorm(x · Wᵀ + b + residual)`.
    fn forward_residual_norm(&self, x: &Tensor, residual: &Tensor, norm: &LayerNorm) -> Result<Tensor> {
        let y = x.matmul(&self.weight_t)?;
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

/// `BertEmbeddings`: word + absolute position + token type, then LayerNorm.
struct Embeddings {
    word: Tensor,
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
            word: w.get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?,
            position: w.get("embeddings.position_embeddings.weight", &[config.max_position_embeddings, h])?,
            token_type: w.get("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, h])?,
            norm: LayerNorm::load(w, "embeddings.LayerNorm", h, eps)?,
            zero_bias: vec![0.0; h],
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                let q = Linear::load(w, &format!("{p}.attention.self.query"), h, h)?;
                let k = Linear::load(w, &format!("{p}.attention.self.key"), h, h)?;
                let v = Linear::load(w, &format!("{p}.attention.self.value"), h, h)?;
                Ok(Layer {
                    qkv: Linear::fused(&[q, k, v])?,
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
        let words = e.word.index_select(&ids_t, 0)?;
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
