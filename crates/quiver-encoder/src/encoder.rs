//! The sentence encoder: text → token ids → BERT → pooled, normalised vectors.

use std::borrow::Cow;

use rayon::prelude::*;

use crate::batch::{length_batches, padded};
use crate::bert::Bert;
use crate::checkpoint::{BertWeights, Checkpoint};
use crate::config::{BertConfig, Pooling, Prefixes, SentenceConfig};
use crate::files::{optional, sha256_hex, ModelFiles, WeightsFormat};
use crate::gguf;
use crate::pooling::{normalize, pool};
use crate::tokenize::TextTokenizer;
use crate::{EncoderError, Result};

/// Which prefix a text gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    Query,
    Document,
    /// Exactly as given.
    Raw,
}

impl std::str::FromStr for TextKind {
    type Err = String;
    /// "query", "document" or "raw"; "passage" (e5's word for a document) and "none" (no
    /// prefix) are accepted too.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "query" => Ok(Self::Query),
            "document" | "passage" => Ok(Self::Document),
            "raw" | "none" => Ok(Self::Raw),
            other => Err(format!("unknown text kind {other:?} (query, document, raw)")),
        }
    }
}

/// Settings that override what the model folder says.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub pooling: Option<Pooling>,
    pub normalize: Option<bool>,
    pub max_seq_length: Option<usize>,
    pub prefixes: Option<Prefixes>,
}

/// Vectors of `dim` floats, row-major, in the order of the texts.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub dim: usize,
    pub data: Vec<f32>,
}

impl Embeddings {
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    pub fn rows(&self) -> std::slice::ChunksExact<'_, f32> {
        self.data.chunks_exact(self.dim)
    }

    /// Matryoshka truncation: the first `dims` dimensions of each row, re-normalised.
    /// Models trained for it keep most of their quality in a prefix of the vector.
    pub fn truncated(&self, dims: usize) -> Result<Embeddings> {
        if dims == 0 || dims > self.dim {
            return Err(EncoderError::InvalidArgument {
                op: "truncate embeddings",
                what: format!("dimensions must be 1..={}, got {dims}", self.dim),
            });
        }
        let mut data = Vec::with_capacity(self.len() * dims);
        for row in self.rows() {
            let start = data.len();
            data.extend_from_slice(&row[..dims]);
            normalize(&mut data[start..]);
        }
        Ok(Embeddings { dim: dims, data })
    }
}

pub struct Encoder {
    bert: Bert,
    tokenizer: TextTokenizer,
    sentence: SentenceConfig,
    id: String,
    weights_sha256: String,
    tokenizer_sha256: String,
    /// How the weights are stored: `f32` (any float checkpoint, computed in f32) or a GGUF's
    /// quantization (`q8_0`, `q4_0`, `f16`).
    weights: String,
}

impl Encoder {
    /// Loads a model folder's files with the folder's own settings.
    pub fn load(files: &ModelFiles) -> Result<Self> {
        Self::load_with(files, &Overrides::default())
    }

    pub fn load_with(files: &ModelFiles, overrides: &Overrides) -> Result<Self> {
        files.check_required()?;
        let bert_config = files.bert_config()?;
        let mut sentence = SentenceConfig::from_files(
            &bert_config,
            optional(&files.modules, "modules.json")?,
            optional(&files.pooling, "1_Pooling/config.json")?,
            optional(&files.sentence_bert, "sentence_bert_config.json")?,
        )?;
        let quiver = files.quiver_config()?;
        if let Some(prefixes) = quiver.prefixes {
            sentence.prefixes = prefixes;
        }
        if let Some(p) = overrides.pooling {
            sentence.pooling = p;
        }
        if let Some(n) = overrides.normalize {
            sentence.normalize = n;
        }
        if let Some(max) = overrides.max_seq_length {
            sentence.max_seq_length = max.min(bert_config.max_position_embeddings);
        }
        if let Some(prefixes) = &overrides.prefixes {
            sentence.prefixes = prefixes.clone();
        }
        let tokenizer = TextTokenizer::from_bytes(&files.tokenizer, sentence.max_seq_length)?;
        let stored = match files.weights_format {
            WeightsFormat::Safetensors => "f32".to_owned(),
            WeightsFormat::Gguf => gguf::metadata_string(&gguf::read_header(&files.weights)?, gguf::QUANTIZATION_KEY)
                .unwrap_or("gguf")
                .to_owned(),
        };
        let checkpoint = Checkpoint::from_files(files)?;
        checkpoint.check_vocabulary(tokenizer.vocab_size(), &bert_config)?;
        let weights = BertWeights::load(&bert_config, &checkpoint)?;
        // The weights hold what they took from the checkpoint; without its other references
        // each matrix is freed as `Bert::new` repacks it, which keeps the peak (and wasm's
        // memory, which never shrinks) near one copy of the weights.
        drop(checkpoint);
        let bert = Bert::new(&bert_config, weights)?;
        Ok(Encoder {
            bert,
            tokenizer,
            sentence,
            id: quiver.id.unwrap_or_else(|| files.name.clone()),
            weights_sha256: files.weights_sha256.clone().unwrap_or_else(|| sha256_hex(&files.weights)),
            tokenizer_sha256: files.tokenizer_sha256.clone().unwrap_or_else(|| sha256_hex(&files.tokenizer)),
            weights: stored,
        })
    }

    /// Loads a model folder from disk.
    pub fn from_dir(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::load(&ModelFiles::read_dir(dir)?)
    }

    pub fn dim(&self) -> usize {
        self.bert.config().hidden_size
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// How the weights are stored: `f32`, `q8_0`, `q4_0` or `f16`.
    pub fn weights(&self) -> &str {
        &self.weights
    }

    pub fn weights_sha256(&self) -> &str {
        &self.weights_sha256
    }

    pub fn tokenizer_sha256(&self) -> &str {
        &self.tokenizer_sha256
    }

    pub fn sentence_config(&self) -> &SentenceConfig {
        &self.sentence
    }

    pub fn bert_config(&self) -> &BertConfig {
        self.bert.config()
    }

    fn prefixed<'a>(&self, text: &'a str, kind: TextKind) -> Cow<'a, str> {
        let prefix = match kind {
            TextKind::Query => &self.sentence.prefixes.query,
            TextKind::Document => &self.sentence.prefixes.document,
            TextKind::Raw => "",
        };
        if prefix.is_empty() {
            Cow::Borrowed(text)
        } else {
            Cow::Owned(format!("{prefix}{text}"))
        }
    }

    /// The ids the model sees for `text`: prefix, special tokens, truncation.
    pub fn tokenize(&self, text: &str, kind: TextKind) -> Result<Vec<u32>> {
        self.tokenizer.encode(&self.prefixed(text, kind))
    }

    /// Embeds texts in batches of at most `batch_size`, sorted by length so padding is
    /// minimal; the result is in the order of `texts` and does not depend on `batch_size`.
    pub fn embed(&self, texts: &[&str], kind: TextKind, batch_size: usize) -> Result<Embeddings> {
        let ids = texts.iter().map(|t| self.tokenize(t, kind)).collect::<Result<Vec<_>>>()?;
        self.embed_ids(&ids, batch_size)
    }

    /// Embeds long texts as overlapping windows of `window` tokens and averages each text's
    /// window vectors (then normalises, when the model normalises).
    pub fn embed_chunked(
        &self,
        texts: &[&str],
        kind: TextKind,
        batch_size: usize,
        window: usize,
        overlap: usize,
    ) -> Result<Embeddings> {
        let mut owners = Vec::new();
        let mut chunks = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            for chunk in self.tokenizer.encode_chunks(&self.prefixed(text, kind), window, overlap)? {
                owners.push(i);
                chunks.push(chunk);
            }
        }
        let pieces = self.embed_ids(&chunks, batch_size)?;
        let dim = self.dim();
        let mut data = vec![0f32; texts.len() * dim];
        let mut counts = vec![0usize; texts.len()];
        for (owner, piece) in owners.iter().zip(pieces.rows()) {
            counts[*owner] += 1;
            data[owner * dim..(owner + 1) * dim].iter_mut().zip(piece).for_each(|(d, p)| *d += p);
        }
        for (row, count) in data.chunks_exact_mut(dim).zip(counts) {
            row.iter_mut().for_each(|x| *x /= count as f32);
            if self.sentence.normalize {
                normalize(row);
            }
        }
        Ok(Embeddings { dim, data })
    }

    /// Embeds token id sequences (special tokens included), batched by length.
    pub fn embed_ids(&self, sequences: &[Vec<u32>], batch_size: usize) -> Result<Embeddings> {
        let dim = self.dim();
        let max = self.tokenizer.max_len();
        if let Some(bad) = sequences.iter().find(|s| s.is_empty() || s.len() > max) {
            return Err(EncoderError::InvalidArgument {
                op: "embed",
                what: format!("a sequence of {} ids (must be 1 to {max})", bad.len()),
            });
        }
        let lengths: Vec<usize> = sequences.iter().map(Vec::len).collect();
        let mut data = vec![0f32; sequences.len() * dim];
        let threads = rayon::current_num_threads();
        for batch in length_batches(&lengths, batch_size) {
            // Each thread runs a share of the batch through the whole model: fewer forks and
            // joins than every thread sharing each op (in wasm, a short batch's op costs less
            // than waking the other threads for it), and no more memory than the batch.
            let parts: Vec<&[usize]> = batch.chunks(batch.len().div_ceil(threads)).collect();
            let pooled = parts
                .par_iter()
                .map(|part| self.forward_batch(&part.iter().map(|&i| sequences[i].as_slice()).collect::<Vec<_>>()))
                .collect::<Result<Vec<_>>>()?;
            for (part, pooled) in parts.iter().zip(pooled) {
                for (&i, vector) in part.iter().zip(pooled.chunks_exact(dim)) {
                    data[i * dim..(i + 1) * dim].copy_from_slice(vector);
                }
            }
        }
        Ok(Embeddings { dim, data })
    }

    /// One padded forward pass: pooled (and normalised) vectors, row-major.
    fn forward_batch(&self, batch: &[&[u32]]) -> Result<Vec<f32>> {
        let dim = self.dim();
        let seq = batch.iter().map(|s| s.len()).max().unwrap_or(0);
        let ids = padded(batch.iter().copied(), seq, self.bert.config().pad_token_id as u32);
        let lengths: Vec<usize> = batch.iter().map(|s| s.len()).collect();
        let hidden = self.bert.forward(&ids, None, &lengths, seq)?.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0f32; batch.len() * dim];
        for (i, (row, &len)) in out.chunks_exact_mut(dim).zip(&lengths).enumerate() {
            pool(self.sentence.pooling, &hidden[i * seq * dim..(i + 1) * seq * dim], dim, len, row);
            if self.sentence.normalize {
                normalize(row);
            }
        }
        Ok(out)
    }
}
