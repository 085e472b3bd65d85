//! The BERT encoder, mirroring Hugging Face's `modeling_bert.py`
//! (<https://github.com/huggingface/transformers/blob/v4.46.0/src/transformers/models/bert/modeling_bert.py>):
//! `BertEmbeddings`, `BertSelfAttention` + `BertSelfOutput`, `BertIntermediate` +
//! `BertOutput`, stacked as `BertEncoder`. Inference only; token type ids are all zero
//! unless given (sentence pairs of a cross-encoder).

use candle_core::{bail, CpuStorage, CustomOp1, Device, Layout, Shape, Tensor};

use crate::checkpoint::{BertWeights, LinearWeights, Matrix, Norm};
use crate::config::{Activation, BertConfig};
use crate::ops::{Attention, BiasActivation, BiasResidualNorm};
use crate::qmatmul::QuantizedWeight;
use crate::{EncoderError, Result};

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
    pub fn new(weights: LinearWeights) -> Result<Self> {
        let product = match weights.weight {
            Matrix::Dense(weight) => Product::Dense(weight.t()?.contiguous()?),
            Matrix::Blocks(weight) => match QuantizedWeight::from_blocks(&weight)? {
                Some(quantized) => Product::Quantized(quantized),
                // F16: widened once.
                None => Product::Dense(weight.dequantize()?.t()?.contiguous()?),
            },
        };
        Ok(Linear { product, bias: weights.bias })
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
    fn new(norm: Norm, eps: f64) -> Self {
        LayerNorm { gamma: norm.gamma, beta: norm.beta, eps: eps as f32 }
    }
}

/// `BertEmbeddings`: word + absolute position + token type, then LayerNorm.
struct Embeddings {
    word: Matrix,
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
    pub(crate) fn new(config: &BertConfig, weights: BertWeights) -> Result<Self> {
        let h = config.hidden_size;
        let eps = config.layer_norm_eps;
        let table = |values: Vec<f32>, rows: usize| Tensor::from_vec(values, (rows, h), &Device::Cpu);
        let embeddings = Embeddings {
            word: weights.word_embeddings,
            position: table(weights.position_embeddings, config.max_position_embeddings)?,
            token_type: table(weights.token_type_embeddings, config.type_vocab_size)?,
            norm: LayerNorm::new(weights.embedding_norm, eps),
            zero_bias: vec![0.0; h],
        };
        let layers = weights
            .layers
            .into_iter()
            .map(|layer| {
                Ok(Layer {
                    qkv: Linear::new(layer.qkv)?,
                    attention_output: Linear::new(layer.attention_output)?,
                    attention_norm: LayerNorm::new(layer.attention_norm, eps),
                    intermediate: Linear::new(layer.intermediate)?,
                    output: Linear::new(layer.output)?,
                    output_norm: LayerNorm::new(layer.output_norm, eps),
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
        let words = e.word.rows_tensor(&ids_t)?;
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
        let attention = Attention { lengths, heads, head_dim };

        for layer in &self.layers {
            let context = layer.qkv.forward(&x, None)?.apply_op1_no_bwd(&attention)?;
            let attended = layer.attention_output.forward_residual_norm(&context, &x, &layer.attention_norm)?;
            let inner = layer.intermediate.forward(&attended, Some(c.hidden_act))?;
            x = layer.output.forward_residual_norm(&inner, &attended, &layer.output_norm)?;
        }
        Ok(x.reshape((batch, seq, h))?)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::{GgmlDType, QTensor};

    use super::*;
    use crate::checkpoint::Blocks;

    /// Stacking quantized Q, K and V by their bytes gives exactly the three products side by side.
    #[test]
    fn stacked_quantized_weights_multiply_like_their_parts() {
        let x = Tensor::randn(0f32, 1.0, (5, 64), &Device::Cpu).unwrap();
        for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_0] {
            let parts: Vec<Blocks> = (0..3)
                .map(|_| {
                    let weight = Tensor::randn(0f32, 1.0, (32, 64), &Device::Cpu).unwrap();
                    Blocks::from_qtensor(&QTensor::quantize(&weight, dtype).unwrap()).unwrap()
                })
                .collect();
            let product = |q: &Blocks| {
                let weight = QuantizedWeight::from_blocks(q).unwrap().unwrap();
                x.apply_op1_no_bwd(&QuantizedProduct(&weight)).unwrap()
            };
            let separate: Vec<Tensor> = parts.iter().map(&product).collect();
            let Matrix::Blocks(stacked) = Matrix::stack(parts.into_iter().map(Matrix::Blocks).collect()).unwrap()
            else {
                panic!("{dtype:?} weights stack as blocks")
            };
            assert_eq!((stacked.dtype, &stacked.dims[..]), (dtype, &[96, 64][..]));
            let together = product(&stacked);
            let expected = Tensor::cat(&separate, 1).unwrap();
            assert_eq!(together.to_vec2::<f32>().unwrap(), expected.to_vec2::<f32>().unwrap(), "{dtype:?}");
        }
    }
}
