//! The BERT encoder, mirroring Hugging Face's `modeling_bert.py`
//! (<https://github.com/huggingface/transformers/blob/v4.46.0/src/transformers/models/bert/modeling_bert.py>):
//! `BertEmbeddings`, `BertSelfAttention` + `BertSelfOutput`, `BertIntermediate` +
//! `BertOutput`, stacked as `BertEncoder`. Inference only; token type ids are all zero.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use crate::config::{Activation, BertConfig};
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
/// row-major matmul.
pub(crate) struct Linear {
    weight_t: Tensor,
    bias: Tensor,
}

impl Linear {
    pub fn load(w: &Weights, name: &str, inputs: usize, outputs: usize) -> Result<Self> {
        Ok(Linear {
            weight_t: w.get(&format!("{name}.weight"), &[outputs, inputs])?.t()?.contiguous()?,
            bias: w.get(&format!("{name}.bias"), &[outputs])?,
        })
    }

    /// Several linears with the same input fused into one wider product.
    fn fused(parts: &[Linear]) -> Result<Self> {
        let weights: Vec<&Tensor> = parts.iter().map(|l| &l.weight_t).collect();
        let biases: Vec<&Tensor> = parts.iter().map(|l| &l.bias).collect();
        Ok(Linear { weight_t: Tensor::cat(&weights, 1)?, bias: Tensor::cat(&biases, 0)? })
    }

    /// `x`: `[rows, in]` → `[rows, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&self.weight_t)?.broadcast_add(&self.bias)?)
    }
}

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn load(w: &Weights, name: &str, size: usize, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            weight: w.get(&format!("{name}.weight"), &[size])?,
            bias: w.get(&format!("{name}.bias"), &[size])?,
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps)?)
    }
}

/// `BertEmbeddings`: word + absolute position + token type 0, then LayerNorm.
struct Embeddings {
    word: Tensor,
    position: Tensor,
    token_type_zero: Tensor,
    norm: LayerNorm,
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
            token_type_zero: w.get("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, h])?.get(0)?,
            norm: LayerNorm::load(w, "embeddings.LayerNorm", h, eps)?,
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
    /// ids, `lengths[i]` how many of row `i`'s are real. Returns `[batch, seq, hidden]`.
    pub fn forward(&self, ids: &[u32], lengths: &[usize], seq: usize) -> Result<Tensor> {
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
        let dev = Device::Cpu;
        let ids_t = Tensor::from_slice(ids, batch * seq, &dev)?;
        let e = &self.embeddings;
        let x = e
            .word
            .index_select(&ids_t, 0)?
            .reshape((batch, seq, h))?
            .broadcast_add(&e.position.narrow(0, 0, seq)?)?
            .broadcast_add(&e.token_type_zero)?;
        let mut x = e.norm.forward(&x)?.reshape((batch * seq, h))?;

        // Additive mask: padding gets the most negative f32, as `get_extended_attention_mask`.
        let mask: Vec<f32> =
            lengths.iter().flat_map(|&len| (0..seq).map(move |j| if j < len { 0.0 } else { f32::MIN })).collect();
        let mask = Tensor::from_vec(mask, (batch, 1, 1, seq), &dev)?;
        let scale = 1.0 / (head_dim as f64).sqrt();

        for layer in &self.layers {
            let qkv = layer.qkv.forward(&x)?.reshape((batch, seq, 3, heads, head_dim))?.permute((2, 0, 3, 1, 4))?;
            let q = (qkv.get(0)? * scale)?.contiguous()?;
            let k = qkv.get(1)?.contiguous()?;
            let v = qkv.get(2)?.contiguous()?;
            let scores = q.matmul(&k.t()?)?.broadcast_add(&mask)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let context = probs.matmul(&v)?.transpose(1, 2)?.reshape((batch * seq, h))?;
            let attended = layer.attention_norm.forward(&(layer.attention_output.forward(&context)? + &x)?)?;
            let inner = layer.intermediate.forward(&attended)?;
            let inner = match c.hidden_act {
                Activation::Gelu => inner.gelu_erf()?,
                Activation::GeluNew => inner.gelu()?,
                Activation::Relu => inner.relu()?,
            };
            x = layer.output_norm.forward(&(layer.output.forward(&inner)? + &attended)?)?;
        }
        Ok(x.reshape((batch, seq, h))?)
    }
}

