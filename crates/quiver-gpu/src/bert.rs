//! The BERT encoder on the GPU, mirroring Hugging Face's `modeling_bert.py`
//! (<https://github.com/huggingface/transformers/blob/v4.46.0/src/transformers/models/bert/modeling_bert.py>)
//! as `quiver_encoder`'s CPU `Bert` does: `BertEmbeddings.forward` (word + absolute
//! position from 0 + token type 0, then LayerNorm), then per `BertLayer`:
//! `BertSelfAttention.forward` (Q, K and V as one fused linear; scores / √head_dim, the
//! padding masked, softmax, weighted sum of V), `BertSelfOutput.forward` (dense, + input,
//! LayerNorm), `BertIntermediate.forward` (dense + activation) and `BertOutput.forward`
//! (dense, + attention output, LayerNorm): post-LN BERT. Then sentence-transformers'
//! pooling and normalisation.
//!
//! Weights are uploaded once, pipelines built once; the activations of a pass live in
//! buffers that only grow and are reused by every later batch.
//!
//! The weights come from `quiver_encoder`'s [`BertWeights`], as the CPU encoder's do: a
//! float or a GGUF checkpoint (Q8_0 and Q4_0 blocks are widened once, at upload).
//!
//! The word-embedding table stays on the CPU, in its stored type: each batch's rows are
//! gathered there and uploaded (one `[tokens, hidden]` write per batch, like one
//! activation). This keeps every vocabulary within the storage binding limit —
//! multilingual-e5's 250k × 384 table is 384 MB as f32, beyond WebGPU's default 128 MiB —
//! without splitting the table.

use std::ops::Range;
use std::sync::Mutex;
use std::time::Duration;

use quiver_encoder::checkpoint::{BertWeights, Checkpoint, LinearWeights, Matrix, Norm};
use quiver_encoder::{BertConfig, ModelFiles, Pooling};

use crate::kernels::attention::{Attention, AttentionParams, MAX_HEAD_DIM};
use crate::kernels::layer_norm::{LayerNorm, LayerNormParams};
use crate::kernels::matmul::{Matmul, MatmulParams, Precision};
use crate::kernels::pooling::{Pooling as Pool, PoolingParams};
use crate::{GpuContext, GpuError, PendingRead, Result};

/// A linear's weight (`[out, in]`, as stored) and bias on the GPU.
struct Linear {
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
}

/// `BertLayer`'s weights; each norm is gamma followed by beta.
struct Layer {
    qkv: Linear,
    attention_output: Linear,
    attention_norm: wgpu::Buffer,
    intermediate: Linear,
    output: Linear,
    output_norm: wgpu::Buffer,
}

struct Kernels {
    linear: Matmul,
    /// The intermediate linear with the config's activation fused in.
    activated: Matmul,
    layer_norm: LayerNorm,
    attention: Attention,
    pooling: Pool,
}

/// Parameters of each dispatch, rewritten for every pass (they depend on its shape only).
struct Uniforms {
    qkv: wgpu::Buffer,
    attention_output: wgpu::Buffer,
    intermediate: wgpu::Buffer,
    output: wgpu::Buffer,
    embedding_norm: wgpu::Buffer,
    residual_norm: wgpu::Buffer,
    attention: wgpu::Buffer,
    pooling: wgpu::Buffer,
}

/// The activations of one pass, for up to `tokens` padded tokens in `sequences` sequences,
/// with every bind group that uses them.
struct Activations {
    tokens: usize,
    sequences: usize,
    /// `[tokens, hidden]`: the embeddings, then each layer's output.
    hidden_states: wgpu::Buffer,
    lengths: wgpu::Buffer,
    pooled: wgpu::Buffer,
    embedding: wgpu::BindGroup,
    layers: Vec<LayerBindings>,
    pooling: wgpu::BindGroup,
}

struct LayerBindings {
    qkv: wgpu::BindGroup,
    attention: wgpu::BindGroup,
    attention_output: wgpu::BindGroup,
    attention_norm: wgpu::BindGroup,
    intermediate: wgpu::BindGroup,
    output: wgpu::BindGroup,
    output_norm: wgpu::BindGroup,
}

/// A submitted batch: see [`GpuBert::submit`].
pub struct PendingEmbedding {
    passes: Vec<PendingRead<f32>>,
    values: usize,
}

impl PendingEmbedding {
    /// The pooled vectors, `[sequences, hidden]` row-major, once the GPU is done.
    pub async fn values(self) -> Result<Vec<f32>> {
        Ok(self.values_within(None).await?.expect("no timeout, so never timed out"))
    }

    /// The vectors if the GPU is done within `timeout`, else `None`.
    pub async fn values_within(self, timeout: Option<Duration>) -> Result<Option<Vec<f32>>> {
        let started = web_time::Instant::now();
        let mut vectors = Vec::with_capacity(self.values);
        for pass in self.passes {
            let values = match timeout {
                None => pass.values().await?,
                Some(t) => match pass.values_within(t.saturating_sub(started.elapsed())).await? {
                    Some(values) => values,
                    None => return Ok(None),
                },
            };
            vectors.extend(values);
        }
        Ok(Some(vectors))
    }
}

pub struct GpuBert {
    ctx: GpuContext,
    config: BertConfig,
    precision: Precision,
    /// `[vocab, hidden]`, gathered on the CPU (see the module's documentation).
    word_embeddings: Matrix,
    /// `[positions, hidden]`: each position's vector plus token type 0's, summed once.
    position_type: wgpu::Buffer,
    embedding_norm: wgpu::Buffer,
    layers: Vec<Layer>,
    kernels: Kernels,
    uniforms: Uniforms,
    activations: Mutex<Option<Activations>>,
}

impl GpuBert {
    /// Reads `config.json` and the weights (`model.safetensors` or `model.gguf`, as the CPU
    /// encoder does) and uploads them: the linears' as f16 where the device has
    /// `shader-f16`, everything else as f32.
    pub async fn load(ctx: &GpuContext, files: &ModelFiles) -> Result<Self> {
        let precision = if ctx.shader_f16() { Precision::F16 } else { Precision::F32 };
        Self::load_with(ctx, files, precision).await
    }

    /// [`GpuBert::load`] with the linears' weights stored in `precision`.
    pub async fn load_with(ctx: &GpuContext, files: &ModelFiles, precision: Precision) -> Result<Self> {
        let config = files.bert_config()?;
        // The kernels read rows as vec4: every BERT's sizes are multiples of 64.
        let (head_dim, inner) = (config.head_dim(), config.intermediate_size);
        if head_dim > MAX_HEAD_DIM || !head_dim.is_multiple_of(4) || !inner.is_multiple_of(4) {
            return Err(GpuError::Unsupported {
                what: format!(
                    "attention heads of {head_dim} and an intermediate size of {inner} (multiples of 4, heads at most {MAX_HEAD_DIM})"
                ),
            });
        }
        let weights = BertWeights::load(&config, &Checkpoint::from_files(files)?)?;
        let h = config.hidden_size;

        // Token type 0's vector is added to every position once, here.
        let mut position_type = weights.position_embeddings;
        for position in position_type.chunks_exact_mut(h) {
            position.iter_mut().zip(&weights.token_type_embeddings[..h]).for_each(|(p, t)| *p += t);
        }
        let upload_linear = |label: &str, linear: LinearWeights| -> Result<Linear> {
            let weight = linear.weight.to_f32()?;
            let weight = match precision {
                Precision::F32 => ctx.storage_buffer(label, &weight)?,
                Precision::F16 => {
                    let halves: Vec<u16> = weight.iter().map(|&w| half::f16::from_f32(w).to_bits()).collect();
                    ctx.storage_buffer(label, &halves)?
                }
            };
            Ok(Linear { weight, bias: ctx.storage_buffer(label, &linear.bias)? })
        };
        let upload_norm = |label: &str, norm: Norm| -> Result<wgpu::Buffer> {
            let mut gamma_beta = norm.gamma;
            gamma_beta.extend(norm.beta);
            ctx.storage_buffer(label, &gamma_beta)
        };
        let layers = weights
            .layers
            .into_iter()
            .map(|layer| {
                Ok(Layer {
                    qkv: upload_linear("qkv", layer.qkv)?,
                    attention_output: upload_linear("attention output", layer.attention_output)?,
                    attention_norm: upload_norm("attention norm", layer.attention_norm)?,
                    intermediate: upload_linear("intermediate", layer.intermediate)?,
                    output: upload_linear("output", layer.output)?,
                    output_norm: upload_norm("output norm", layer.output_norm)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let kernels = Kernels {
            linear: Matmul::new(ctx, None, precision).await?,
            activated: Matmul::new(ctx, Some(config.hidden_act), precision).await?,
            layer_norm: LayerNorm::new(ctx).await?,
            attention: Attention::new(ctx).await?,
            pooling: Pool::new(ctx).await?,
        };
        let matmul = MatmulParams::new(0, 0, 0);
        let norm = LayerNormParams::new(0, 0, 1, 0.0);
        let uniforms = Uniforms {
            qkv: ctx.uniform_buffer("qkv", &matmul),
            attention_output: ctx.uniform_buffer("attention output", &matmul),
            intermediate: ctx.uniform_buffer("intermediate", &matmul),
            output: ctx.uniform_buffer("output", &matmul),
            embedding_norm: ctx.uniform_buffer("embedding norm", &norm),
            residual_norm: ctx.uniform_buffer("residual norm", &norm),
            attention: ctx.uniform_buffer("attention", &AttentionParams::new(0, 1, 0)),
            pooling: ctx.uniform_buffer("pooling", &PoolingParams::new(0, 0, Pooling::Mean, false)),
        };
        Ok(GpuBert {
            word_embeddings: weights.word_embeddings,
            position_type: ctx.storage_buffer("position + token type", &position_type)?,
            embedding_norm: upload_norm("embedding norm", weights.embedding_norm)?,
            layers,
            kernels,
            uniforms,
            activations: Mutex::new(None),
            precision,
            config,
            ctx: ctx.clone(),
        })
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// How the linears' weights are stored.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The device the model lives on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Embeds token id sequences (special tokens included, as
    /// `quiver_encoder::Encoder::tokenize` gives them) as one right-padded batch: the
    /// encoder, `pooling` over each sequence's real tokens and, if `normalize`, L2
    /// normalisation all run on the GPU; returns `[sequences, hidden]` row-major. A batch
    /// too large for the device's limits runs as several passes, all submitted before the
    /// first is read back.
    pub async fn embed_ids(&self, sequences: &[Vec<u32>], pooling: Pooling, normalize: bool) -> Result<Vec<f32>> {
        self.submit(sequences, pooling, normalize)?.values().await
    }

    /// As [`GpuBert::embed_ids`], but gives up waiting (`None`) once `timeout` has passed:
    /// a calibration run must not take longer than its budget on a slow adapter. The
    /// timeout counts from the call, submission included.
    pub async fn embed_ids_within(
        &self,
        sequences: &[Vec<u32>],
        pooling: Pooling,
        normalize: bool,
        timeout: Option<Duration>,
    ) -> Result<Option<Vec<f32>>> {
        let started = web_time::Instant::now();
        let pending = self.submit(sequences, pooling, normalize)?;
        pending.values_within(timeout.map(|t| t.saturating_sub(started.elapsed()))).await
    }

    /// Submits the batch and returns at once; [`PendingEmbedding::values`] waits for it.
    /// Batches submitted one after another run in order and never wait for the CPU.
    pub fn submit(&self, sequences: &[Vec<u32>], pooling: Pooling, normalize: bool) -> Result<PendingEmbedding> {
        let c = &self.config;
        if let Some(bad) = sequences.iter().find(|s| s.is_empty() || s.len() > c.max_position_embeddings) {
            return Err(GpuError::InvalidArgument {
                op: "GPU embed",
                what: format!("a sequence of {} ids (must be 1 to {})", bad.len(), c.max_position_embeddings),
            });
        }
        if let Some(&bad) = sequences.iter().flatten().find(|&&id| id as usize >= c.vocab_size) {
            return Err(GpuError::InvalidArgument {
                op: "GPU embed",
                what: format!("token id {bad} is beyond the vocabulary of {}", c.vocab_size),
            });
        }
        let passes = self
            .passes(sequences)?
            .into_iter()
            .map(|range| self.submit_pass(&sequences[range], pooling, normalize))
            .collect::<Result<Vec<_>>>()?;
        Ok(PendingEmbedding { passes, values: sequences.len() * c.hidden_size })
    }

    /// Splits the batch, in order, into passes whose widest activation
    /// (`[tokens, max(3·hidden, intermediate)]`) fits one storage binding and whose token
    /// rows fit one dispatch dimension.
    fn passes(&self, sequences: &[Vec<u32>]) -> Result<Vec<Range<usize>>> {
        let c = &self.config;
        let widest_row = ((3 * c.hidden_size).max(c.intermediate_size) * size_of::<f32>()) as u64;
        let max_tokens = ((self.ctx.max_binding_bytes() / widest_row) as usize)
            .min(self.ctx.limits().max_compute_workgroups_per_dimension as usize);
        split_passes(sequences.iter().map(Vec::len), max_tokens)
    }

    /// Uploads one pass's inputs, records the whole encoder and submits it.
    fn submit_pass(&self, batch: &[Vec<u32>], pooling: Pooling, normalize: bool) -> Result<PendingRead<f32>> {
        let c = &self.config;
        let (h, inner, heads, head_dim) = (c.hidden_size, c.intermediate_size, c.num_attention_heads, c.head_dim());
        let seq = batch.iter().map(Vec::len).max().unwrap_or(0);
        let tokens = batch.len() * seq;
        // Padding rows stay zero: they are masked as keys and never pooled.
        let ids: Vec<u32> = batch.iter().flatten().copied().collect();
        let mut rows = self.word_embeddings.rows(&ids)?.into_iter();
        let mut words = vec![0f32; tokens * h];
        for (sequence, padded) in batch.iter().zip(words.chunks_exact_mut(seq * h)) {
            padded[..sequence.len() * h].iter_mut().zip(rows.by_ref()).for_each(|(w, r)| *w = r);
        }
        let lengths: Vec<u32> = batch.iter().map(|s| s.len() as u32).collect();

        // Held until submitted, so that no other pass's writes land in this submission.
        let mut cache = self.activations.lock().unwrap_or_else(|e| e.into_inner());
        if cache.as_ref().is_none_or(|a| a.tokens < tokens || a.sequences < batch.len()) {
            let (old_tokens, old_sequences) = cache.as_ref().map_or((0, 0), |a| (a.tokens, a.sequences));
            *cache = None;
            *cache = Some(self.activations(tokens.max(old_tokens), batch.len().max(old_sequences))?);
        }
        let acts = cache.as_ref().expect("allocated above");
        let queue = self.ctx.queue();
        let u = &self.uniforms;
        queue.write_buffer(&acts.hidden_states, 0, bytemuck::cast_slice(&words));
        queue.write_buffer(&acts.lengths, 0, bytemuck::cast_slice(&lengths));
        let eps = c.layer_norm_eps;
        queue.write_buffer(&u.qkv, 0, bytemuck::bytes_of(&MatmulParams::new(tokens, 3 * h, h)));
        queue.write_buffer(&u.attention_output, 0, bytemuck::bytes_of(&MatmulParams::new(tokens, h, h)));
        queue.write_buffer(&u.intermediate, 0, bytemuck::bytes_of(&MatmulParams::new(tokens, inner, h)));
        queue.write_buffer(&u.output, 0, bytemuck::bytes_of(&MatmulParams::new(tokens, h, inner)));
        queue.write_buffer(&u.embedding_norm, 0, bytemuck::bytes_of(&LayerNormParams::new(tokens, h, seq, eps)));
        queue.write_buffer(&u.residual_norm, 0, bytemuck::bytes_of(&LayerNormParams::new(tokens, h, tokens, eps)));
        queue.write_buffer(&u.attention, 0, bytemuck::bytes_of(&AttentionParams::new(seq, head_dim, h)));
        queue.write_buffer(&u.pooling, 0, bytemuck::bytes_of(&PoolingParams::new(seq, h, pooling, normalize)));

        let (ctx, k) = (&self.ctx, &self.kernels);
        let mut encoder = ctx.encoder("encode");
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            k.layer_norm.encode(ctx, &mut pass, &acts.embedding, tokens)?;
            for layer in &acts.layers {
                k.linear.encode(ctx, &mut pass, &layer.qkv, [tokens, 3 * h, h])?;
                k.attention.encode(ctx, &mut pass, &layer.attention, [batch.len(), seq, heads, head_dim])?;
                k.linear.encode(ctx, &mut pass, &layer.attention_output, [tokens, h, h])?;
                k.layer_norm.encode(ctx, &mut pass, &layer.attention_norm, tokens)?;
                k.activated.encode(ctx, &mut pass, &layer.intermediate, [tokens, inner, h])?;
                k.linear.encode(ctx, &mut pass, &layer.output, [tokens, h, inner])?;
                k.layer_norm.encode(ctx, &mut pass, &layer.output_norm, tokens)?;
            }
            k.pooling.encode(ctx, &mut pass, &acts.pooling, batch.len())?;
        }
        Ok(ctx.submit_read("GPU embed", encoder, &acts.pooled, batch.len() * h))
    }

    /// Buffers and bind groups for passes of up to `tokens` tokens in `sequences` sequences.
    fn activations(&self, tokens: usize, sequences: usize) -> Result<Activations> {
        let (ctx, k, u) = (&self.ctx, &self.kernels, &self.uniforms);
        let c = &self.config;
        let h = c.hidden_size;
        let floats =
            |label: &str, width: usize| ctx.empty_storage_buffer(label, (tokens * width * size_of::<f32>()) as u64);
        let hidden_states = floats("hidden states", h)?;
        let qkv = floats("qkv", 3 * h)?;
        let context = floats("context", h)?;
        let attended = floats("attended", h)?;
        let intermediate = floats("intermediate", c.intermediate_size)?;
        let lengths = ctx.empty_storage_buffer("lengths", (sequences * size_of::<u32>()) as u64)?;
        let pooled = ctx.empty_storage_buffer("pooled", (sequences * h * size_of::<f32>()) as u64)?;
        let layers = self
            .layers
            .iter()
            .map(|layer| LayerBindings {
                qkv: k.linear.bind(ctx, [&hidden_states, &layer.qkv.weight, &layer.qkv.bias, &qkv, &u.qkv]),
                attention: k.attention.bind(ctx, [&qkv, &lengths, &context, &u.attention]),
                attention_output: k.linear.bind(
                    ctx,
                    [
                        &context,
                        &layer.attention_output.weight,
                        &layer.attention_output.bias,
                        &attended,
                        &u.attention_output,
                    ],
                ),
                attention_norm: k
                    .layer_norm
                    .bind(ctx, [&attended, &hidden_states, &layer.attention_norm, &u.residual_norm]),
                intermediate: k.activated.bind(
                    ctx,
                    [&attended, &layer.intermediate.weight, &layer.intermediate.bias, &intermediate, &u.intermediate],
                ),
                output: k
                    .linear
                    .bind(ctx, [&intermediate, &layer.output.weight, &layer.output.bias, &hidden_states, &u.output]),
                output_norm: k.layer_norm.bind(ctx, [&hidden_states, &attended, &layer.output_norm, &u.residual_norm]),
            })
            .collect();
        Ok(Activations {
            tokens,
            sequences,
            embedding: k
                .layer_norm
                .bind(ctx, [&hidden_states, &self.position_type, &self.embedding_norm, &u.embedding_norm]),
            pooling: k.pooling.bind(ctx, [&hidden_states, &lengths, &pooled, &u.pooling]),
            layers,
            hidden_states,
            lengths,
            pooled,
        })
    }
}

/// Consecutive runs of sequences (by their lengths) whose count times their longest length
/// is at most `max_tokens`.
fn split_passes(lengths: impl Iterator<Item = usize>, max_tokens: usize) -> Result<Vec<Range<usize>>> {
    let mut passes = Vec::new();
    let (mut start, mut longest, mut count) = (0, 0, 0);
    for (i, len) in lengths.enumerate() {
        if len > max_tokens {
            return Err(GpuError::Limits {
                what: format!("a sequence of {len} tokens (at most {max_tokens} per pass)"),
            });
        }
        let padded = longest.max(len);
        if (i + 1 - start) * padded > max_tokens {
            passes.push(start..i);
            (start, longest) = (i, len);
        } else {
            longest = padded;
        }
        count = i + 1;
    }
    if start < count {
        passes.push(start..count);
    }
    Ok(passes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_fit_the_token_budget() {
        // Passes as (start, end).
        let split = |lengths: &[usize], max| -> Vec<(usize, usize)> {
            split_passes(lengths.iter().copied(), max).unwrap().into_iter().map(|r| (r.start, r.end)).collect()
        };
        assert_eq!(split(&[], 10), []);
        assert_eq!(split(&[3, 3, 3], 10), [(0, 3)]);
        // 4 × 3 > 10; then the long one pads everything it joins.
        assert_eq!(split(&[3, 3, 3, 3, 8, 2], 10), [(0, 3), (3, 4), (4, 5), (5, 6)]);
        assert_eq!(split(&[10, 1], 10), [(0, 1), (1, 2)]);
        assert_eq!(split_passes([11].into_iter(), 10).unwrap_err().code(), "E_GPU_LIMITS");
    }
}
