//! Model configuration, deserialised straight from the files of a Hugging Face /
//! sentence-transformers model folder.

use serde::{Deserialize, Serialize};

use crate::{EncoderError, Result};

/// `config.json` of a BERT-family model, as `transformers.BertConfig` reads it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct BertConfig {
    #[serde(default = "default_model_type")]
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: Activation,
    #[serde(default = "default_max_position_embeddings")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: usize,
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
    /// Labels of a sequence-classification head (cross-encoders).
    #[serde(default)]
    pub id2label: Option<std::collections::BTreeMap<String, String>>,
}

fn default_model_type() -> String {
    "bert".into()
}
fn default_hidden_act() -> Activation {
    Activation::Gelu
}
fn default_max_position_embeddings() -> usize {
    512
}
fn default_type_vocab_size() -> usize {
    2
}
fn default_layer_norm_eps() -> f64 {
    1e-12
}
fn default_position_embedding_type() -> String {
    "absolute".into()
}

/// `hidden_act` values of `transformers.activations.ACT2FN` that BERT models use.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Exact GELU with erf (`"gelu"`).
    Gelu,
    /// The tanh approximation (`"gelu_new"`, `"gelu_pytorch_tanh"`).
    #[serde(alias = "gelu_pytorch_tanh")]
    GeluNew,
    Relu,
}

impl BertConfig {
    pub fn from_json(text: &str) -> Result<Self> {
        let probe: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| EncoderError::InvalidConfig { file: "config.json", reason: e.to_string() })?;
        let model_type = probe.get("model_type").and_then(|v| v.as_str()).unwrap_or("bert");
        // multilingual-e5 is BERT with a larger vocabulary; RoBERTa/XLM-R offset positions
        // differently and are a different network.
        if model_type != "bert" {
            return Err(EncoderError::UnsupportedArchitecture { found: model_type.to_owned() });
        }
        let config: BertConfig = serde_json::from_value(probe)
            .map_err(|e| EncoderError::InvalidConfig { file: "config.json", reason: e.to_string() })?;
        if config.hidden_size == 0
            || config.num_attention_heads == 0
            || !config.hidden_size.is_multiple_of(config.num_attention_heads)
        {
            return Err(EncoderError::InvalidConfig {
                file: "config.json",
                reason: format!(
                    "hidden_size {} is not a multiple of num_attention_heads {}",
                    config.hidden_size, config.num_attention_heads
                ),
            });
        }
        if config.position_embedding_type != "absolute" {
            return Err(EncoderError::InvalidConfig {
                file: "config.json",
                reason: format!("position_embedding_type {:?} is not supported", config.position_embedding_type),
            });
        }
        Ok(config)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean of the token vectors under the attention mask (`[CLS]`/`[SEP]` included).
    #[default]
    Mean,
    /// The `[CLS]` token's vector.
    Cls,
    /// Per-dimension maximum under the attention mask.
    Max,
}

impl Pooling {
    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Max => "max",
        }
    }
}

impl std::str::FromStr for Pooling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mean" => Ok(Self::Mean),
            "cls" => Ok(Self::Cls),
            "max" => Ok(Self::Max),
            other => Err(format!("unknown pooling {other:?} (mean, cls, max)")),
        }
    }
}

/// `1_Pooling/config.json`.
#[derive(Debug, Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
}

/// One entry of `modules.json`.
#[derive(Debug, Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
}

/// `sentence_bert_config.json`.
#[derive(Debug, Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

/// Texts put before queries and documents, as E5 and BGE were trained with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Prefixes {
    pub query: String,
    pub document: String,
}

impl Prefixes {
    /// `"e5"`, `"bge"` or `"none"`.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "e5" => Some(Prefixes { query: "query: ".into(), document: "passage: ".into() }),
            "bge" => Some(Prefixes {
                query: "Represent this sentence for searching relevant passages: ".into(),
                document: String::new(),
            }),
            "none" => Some(Prefixes::default()),
            _ => None,
        }
    }
}

/// What the sentence-transformers files around the transformer say, each overridable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentenceConfig {
    pub pooling: Pooling,
    pub normalize: bool,
    pub max_seq_length: usize,
    pub prefixes: Prefixes,
}

impl SentenceConfig {
    /// Reads the optional `modules.json`, `1_Pooling/config.json` and
    /// `sentence_bert_config.json`; without them: mean pooling, normalised, the model's
    /// position limit.
    pub fn from_files(
        bert: &BertConfig,
        modules: Option<&str>,
        pooling: Option<&str>,
        sentence_bert: Option<&str>,
    ) -> Result<Self> {
        let mut config = SentenceConfig {
            pooling: Pooling::Mean,
            normalize: true,
            max_seq_length: bert.max_position_embeddings,
            prefixes: Prefixes::default(),
        };
        if let Some(text) = modules {
            let modules: Vec<Module> = serde_json::from_str(text)
                .map_err(|e| EncoderError::InvalidConfig { file: "modules.json", reason: e.to_string() })?;
            config.normalize = modules.iter().any(|m| m.kind.ends_with("Normalize"));
        }
        if let Some(text) = pooling {
            let p: PoolingConfig = serde_json::from_str(text)
                .map_err(|e| EncoderError::InvalidConfig { file: "1_Pooling/config.json", reason: e.to_string() })?;
            config.pooling = match (p.pooling_mode_cls_token, p.pooling_mode_mean_tokens, p.pooling_mode_max_tokens) {
                (true, _, _) => Pooling::Cls,
                (_, _, true) if !p.pooling_mode_mean_tokens => Pooling::Max,
                _ => Pooling::Mean,
            };
        }
        if let Some(text) = sentence_bert {
            let s: SentenceBertConfig = serde_json::from_str(text).map_err(|e| EncoderError::InvalidConfig {
                file: "sentence_bert_config.json",
                reason: e.to_string(),
            })?;
            if let Some(max) = s.max_seq_length {
                config.max_seq_length = max.min(bert.max_position_embeddings);
            }
        }
        Ok(config)
    }
}

/// How a cross-encoder's logit becomes its score. sentence-transformers' `CrossEncoder`
/// applies a sigmoid to a one-label model unless `config.json` names another `activation_fn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreActivation {
    /// `1 / (1 + e^-logit)`: a relevance in (0, 1).
    Sigmoid,
    /// The raw logit.
    Identity,
}

impl ScoreActivation {
    pub fn apply(self, logit: f32) -> f32 {
        match self {
            ScoreActivation::Sigmoid => 1.0 / (1.0 + (-logit).exp()),
            ScoreActivation::Identity => logit,
        }
    }
}

/// The parts of a cross-encoder's `config.json` beyond [`BertConfig`].
#[derive(Debug, Deserialize)]
struct ClassifierFields {
    #[serde(default)]
    architectures: Vec<String>,
    num_labels: Option<usize>,
    sentence_transformers: Option<SentenceTransformersFields>,
    /// Where sentence-transformers before 4.0 kept the activation.
    sbert_ce_default_activation_function: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SentenceTransformersFields {
    activation_fn: Option<String>,
}

/// Checks that `config.json` describes a `BertForSequenceClassification` with one label (a
/// relevance logit: the labels of a multi-label head, such as NLI's, rank nothing) and
/// returns the activation sentence-transformers' `CrossEncoder` applies to it.
pub(crate) fn cross_encoder_activation(config_json: &str, bert: &BertConfig) -> Result<ScoreActivation> {
    let fields: ClassifierFields = serde_json::from_str(config_json)
        .map_err(|e| EncoderError::InvalidConfig { file: "config.json", reason: e.to_string() })?;
    if !fields.architectures.iter().any(|a| a == "BertForSequenceClassification") {
        return Err(EncoderError::NotACrossEncoder {
            reason: format!("config.json lists the architectures {:?}", fields.architectures),
        });
    }
    // As transformers' `PretrainedConfig`: id2label wins, then num_labels, then 2.
    let labels = bert.id2label.as_ref().map(|l| l.len()).or(fields.num_labels).unwrap_or(2);
    if labels != 1 {
        let names = bert.id2label.iter().flat_map(|l| l.values().cloned()).collect::<Vec<_>>().join(", ");
        return Err(EncoderError::NotACrossEncoder { reason: format!("the model has {labels} labels ({names})") });
    }
    let path =
        fields.sentence_transformers.and_then(|s| s.activation_fn).or(fields.sbert_ce_default_activation_function);
    match path.as_deref().map(|p| p.rsplit('.').next().unwrap_or(p)) {
        None | Some("Sigmoid") => Ok(ScoreActivation::Sigmoid),
        Some("Identity") => Ok(ScoreActivation::Identity),
        Some(_) => Err(EncoderError::InvalidConfig {
            file: "config.json",
            reason: format!("activation_fn {:?} is not supported (Sigmoid or Identity)", path.unwrap_or_default()),
        }),
    }
}

/// Beyond this a cross-encoder's pairs are cut even if the model has more positions: attention
/// costs the square of the length (sentence-transformers' rerankers use 512).
const CROSS_ENCODER_MAX_LENGTH: usize = 512;

/// A cross-encoder's token limit per pair, as `CrossEncoder` takes it: `model_max_length` of
/// `tokenizer_config.json` (transformers writes 1e30 when there is none), else the model's
/// positions, and never more than those or [`CROSS_ENCODER_MAX_LENGTH`].
pub(crate) fn cross_encoder_max_length(tokenizer_config: Option<&str>, bert: &BertConfig) -> Result<usize> {
    let limit = bert.max_position_embeddings.min(CROSS_ENCODER_MAX_LENGTH);
    let Some(text) = tokenizer_config else { return Ok(limit) };
    let config: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| EncoderError::InvalidConfig { file: "tokenizer_config.json", reason: e.to_string() })?;
    Ok(match config.get("model_max_length").and_then(serde_json::Value::as_f64) {
        // The float-to-int cast saturates, so 1e30 becomes usize::MAX.
        Some(max) if max >= 1.0 => limit.min(max as usize),
        _ => limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINILM: &str = r#"{"architectures": ["BertModel"], "hidden_act": "gelu", "hidden_size": 384,
        "intermediate_size": 1536, "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
        "num_attention_heads": 12, "num_hidden_layers": 6, "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": 30522}"#;

    #[test]
    fn reads_a_sentence_transformers_folder() {
        let bert = BertConfig::from_json(MINILM).unwrap();
        assert_eq!(bert.head_dim(), 32);
        let s = SentenceConfig::from_files(
            &bert,
            Some(r#"[{"type": "sentence_transformers.models.Transformer"}, {"type": "sentence_transformers.models.Pooling"}, {"type": "sentence_transformers.models.Normalize"}]"#),
            Some(r#"{"pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true}"#),
            Some(r#"{"max_seq_length": 256, "do_lower_case": false}"#),
        )
        .unwrap();
        assert_eq!(s.pooling, Pooling::Mean);
        assert!(s.normalize);
        assert_eq!(s.max_seq_length, 256);
    }

    #[test]
    fn rejects_other_architectures() {
        let gpt = r#"{"model_type": "gpt2", "vocab_size": 5, "hidden_size": 4}"#;
        assert!(matches!(BertConfig::from_json(gpt), Err(EncoderError::UnsupportedArchitecture { .. })));
        let bad = MINILM.replace("\"num_attention_heads\": 12", "\"num_attention_heads\": 7");
        assert!(matches!(BertConfig::from_json(&bad), Err(EncoderError::InvalidConfig { .. })));
    }
}
