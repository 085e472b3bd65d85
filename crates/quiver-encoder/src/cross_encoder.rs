//! The cross-encoder: (query, document) pairs → BERT → pooler → classifier → relevance.

use crate::batch::{length_batches, padded};
use crate::bert::{Bert, Linear};
use crate::checkpoint::{BertWeights, Checkpoint};
use crate::config::{cross_encoder_activation, cross_encoder_max_length, BertConfig, ScoreActivation};
use crate::files::{optional, utf8, ModelFiles};
use crate::tokenize::{PairTokenizer, PairTokens};
use crate::Result;

/// A re-ranker: reads a query and a document together and scores their relevance, as
/// sentence-transformers' `CrossEncoder.predict` does with a one-label
/// `BertForSequenceClassification` (such as `cross-encoder/ms-marco-MiniLM-L-6-v2`).
///
/// The network mirrors transformers' `BertForSequenceClassification.forward`
/// (<https://github.com/huggingface/transformers/blob/v4.46.0/src/transformers/models/bert/modeling_bert.py>):
/// the BERT encoder over `[CLS] query [SEP] document [SEP]` with token types 0 then 1,
/// `BertPooler` (dense + tanh on the `[CLS]` vector) and the `classifier` linear; dropout is
/// off at inference. The score is the logit through the activation `CrossEncoder` picks
/// (`get_default_activation_fn` in
/// <https://github.com/UKPLab/sentence-transformers/blob/v4.0.1/sentence_transformers/cross_encoder/CrossEncoder.py>):
/// `config.json`'s `sentence_transformers.activation_fn` if set, else sigmoid.
///
/// Models with several labels (NLI heads) are refused at load: none of their labels is a
/// relevance to rank by.
pub struct CrossEncoder {
    bert: Bert,
    pooler: Linear,
    classifier: Linear,
    tokenizer: PairTokenizer,
    activation: ScoreActivation,
}

impl CrossEncoder {
    /// Loads a model folder's files with the folder's own token limit.
    pub fn load(files: &ModelFiles) -> Result<Self> {
        Self::load_with(files, None)
    }

    /// Loads a model folder's files; `max_length` (tokens per pair, special tokens included)
    /// replaces the limit the folder gives, up to the model's positions.
    pub fn load_with(files: &ModelFiles, max_length: Option<usize>) -> Result<Self> {
        files.check_required()?;
        let config_json = utf8(&files.config, "config.json")?;
        let bert_config = BertConfig::from_json(config_json)?;
        let activation = cross_encoder_activation(config_json, &bert_config)?;
        let max_length = match max_length {
            Some(max) => max.min(bert_config.max_position_embeddings),
            None => {
                cross_encoder_max_length(optional(&files.tokenizer_config, "tokenizer_config.json")?, &bert_config)?
            }
        };
        let tokenizer = PairTokenizer::from_bytes(&files.tokenizer, max_length)?;
        let checkpoint = Checkpoint::from_files(files)?;
        checkpoint.check_vocabulary(tokenizer.vocab_size(), &bert_config)?;
        let h = bert_config.hidden_size;
        Ok(CrossEncoder {
            bert: Bert::new(&bert_config, BertWeights::load(&bert_config, &checkpoint)?)?,
            pooler: Linear::new(checkpoint.linear("pooler.dense", h, h)?)?,
            classifier: Linear::new(checkpoint.head("classifier", h, 1)?)?,
            tokenizer,
            activation,
        })
    }

    /// Loads a model folder from disk.
    pub fn from_dir(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::load(&ModelFiles::read_dir(dir)?)
    }

    /// Tokens per pair, special tokens included; longer pairs are cut `longest_first`.
    pub fn max_length(&self) -> usize {
        self.tokenizer.max_len()
    }

    pub fn activation(&self) -> ScoreActivation {
        self.activation
    }

    pub fn bert_config(&self) -> &BertConfig {
        self.bert.config()
    }

    /// The ids and token type ids the model sees for a pair, truncated.
    pub fn tokenize(&self, query: &str, document: &str) -> Result<PairTokens> {
        self.tokenizer.encode(query, document)
    }

    /// Relevance of each document to `query`, in the order of `documents`: the activated logit
    /// (by default a sigmoid, in (0, 1)); higher is more relevant.
    pub fn score(&self, query: &str, documents: &[&str], batch_size: usize) -> Result<Vec<f32>> {
        let pairs: Vec<(&str, &str)> = documents.iter().map(|&p| (query, p)).collect();
        self.score_pairs(&pairs, batch_size)
    }

    /// The activated logit of each (query, document) pair, as `CrossEncoder.predict(pairs)`.
    pub fn score_pairs(&self, pairs: &[(&str, &str)], batch_size: usize) -> Result<Vec<f32>> {
        let mut scores = self.logits(pairs, batch_size)?;
        scores.iter_mut().for_each(|s| *s = self.activation.apply(*s));
        Ok(scores)
    }

    /// Indices of `documents` with their scores, most relevant first (ties keep input order).
    pub fn rank(&self, query: &str, documents: &[&str], batch_size: usize) -> Result<Vec<(usize, f32)>> {
        let mut ranked: Vec<(usize, f32)> = self.score(query, documents, batch_size)?.into_iter().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(ranked)
    }

    /// The classifier's raw logit for each pair, in batches of at most `batch_size` pairs
    /// grouped by length; the result does not depend on `batch_size`.
    pub fn logits(&self, pairs: &[(&str, &str)], batch_size: usize) -> Result<Vec<f32>> {
        let tokens = pairs.iter().map(|(q, p)| self.tokenize(q, p)).collect::<Result<Vec<_>>>()?;
        let lengths: Vec<usize> = tokens.iter().map(|t| t.ids.len()).collect();
        let mut logits = vec![0f32; pairs.len()];
        for batch in length_batches(&lengths, batch_size) {
            let members: Vec<&PairTokens> = batch.iter().map(|&i| &tokens[i]).collect();
            for (&i, logit) in batch.iter().zip(self.forward_batch(&members)?) {
                logits[i] = logit;
            }
        }
        Ok(logits)
    }

    /// One padded forward pass: one logit per pair.
    fn forward_batch(&self, batch: &[&PairTokens]) -> Result<Vec<f32>> {
        let seq = batch.iter().map(|t| t.ids.len()).max().unwrap_or(0);
        let ids = padded(batch.iter().map(|t| t.ids.as_slice()), seq, self.bert.config().pad_token_id as u32);
        let type_ids = padded(batch.iter().map(|t| t.type_ids.as_slice()), seq, 0);
        let lengths: Vec<usize> = batch.iter().map(|t| t.ids.len()).collect();
        let hidden = self.bert.forward(&ids, Some(&type_ids), &lengths, seq)?;
        // BertPooler reads the [CLS] position only.
        let cls = hidden.narrow(1, 0, 1)?.reshape((batch.len(), self.bert.config().hidden_size))?;
        let pooled = self.pooler.forward(&cls, None)?.tanh()?;
        Ok(self.classifier.forward(&pooled, None)?.flatten_all()?.to_vec1()?)
    }
}
