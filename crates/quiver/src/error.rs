use std::path::PathBuf;

use quiver_encoder::EncoderError;
use quiver_gpu::GpuError;
use quiver_index::IndexError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Encoder(#[from] EncoderError),

    #[error(transparent)]
    Index(#[from] IndexError),

    #[error(transparent)]
    Gpu(#[from] GpuError),

    #[error("{path}:{line}: {reason}")]
    Input { path: PathBuf, line: usize, reason: String },

    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },

    #[error("{op}: {what}")]
    InvalidArgument { op: &'static str, what: String },

    #[error("no {0} is loaded")]
    NotLoaded(Part),
}

/// A part of an [`crate::Engine`] that is loaded on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Model,
    Index,
    Reranker,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::Model => "model",
            Part::Index => "index",
            Part::Reranker => "reranker",
        })
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    /// A stable, machine-readable name for the kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Encoder(e) => e.code(),
            EngineError::Index(e) => e.code(),
            EngineError::Gpu(e) => e.code(),
            EngineError::Input { .. } => "E_INPUT",
            EngineError::Io { .. } => "E_IO",
            EngineError::InvalidArgument { .. } => "E_INVALID_ARGUMENT",
            EngineError::NotLoaded(Part::Model) => "E_NO_MODEL",
            EngineError::NotLoaded(Part::Index) => "E_NO_INDEX",
            EngineError::NotLoaded(Part::Reranker) => "E_NO_RERANKER",
        }
    }
}
