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

    #[error("model.safetensors has no tensor {name} (the config asks for it)")]
    MissingTensor { name: String },

    #[error("tensor {name} has shape {actual:?}, config.json implies {expected:?}")]
    ShapeMismatch { name: String, expected: Vec<usize>, actual: Vec<usize> },

    #[error("tokenizer.json {op}: {message}")]
    Tokenizer { op: &'static str, message: String },

    #[error("the tokenizer has {tokenizer} entries but the model's vocabulary has {model}")]
    VocabularyMismatch { tokenizer: usize, model: usize },

    #[error("{op}: {what}")]
    InvalidArgument { op: &'static str, what: String },

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
            | EncoderError::MissingTensor { .. }
            | EncoderError::ShapeMismatch { .. }
            | EncoderError::Tokenizer { .. }
            | EncoderError::VocabularyMismatch { .. } => "E_MODEL_INVALID",
            EncoderError::InvalidArgument { .. } => "E_INVALID_ARGUMENT",
            EncoderError::Candle(_) => "E_COMPUTE",
        }
    }
}
