use std::path::PathBuf;

/// Everything that can go wrong in the index crate. Variants name the operation and carry
/// the expected and actual values, so a message is actionable without a debugger.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{op}: expected vectors of dimension {expected}, got {actual}")]
    DimensionMismatch { op: &'static str, expected: usize, actual: usize },

    #[error("{op}: value {index} is {value}, vectors must be finite")]
    NonFinite { op: &'static str, index: usize, value: f32 },

    #[error("{op}: {what}")]
    InvalidArgument { op: &'static str, what: String },

    #[error("{op}: this index has no keyword index (it was built without IndexConfig::keyword)")]
    KeywordIndexMissing { op: &'static str },

    #[error("unknown id {0:?}")]
    UnknownId(String),

    #[error("{op}: id {id:?} appears more than once")]
    DuplicateId { op: &'static str, id: String },

    #[error("invalid filter {filter:?}: {reason}")]
    InvalidFilter { filter: String, reason: String },

    #[error("not a Quiver index: expected magic {expected:?}, found {actual:?}")]
    BadMagic { expected: String, actual: String },

    #[error("index file is truncated: need at least {expected} bytes, have {actual}")]
    Truncated { expected: u64, actual: u64 },

    #[error("index format version {actual} is not supported (this build reads up to {supported})")]
    UnsupportedVersion { supported: u32, actual: u32 },

    #[error("index file is corrupted: checksum {actual:08x}, footer says {expected:08x}")]
    ChecksumMismatch { expected: u32, actual: u32 },

    #[error("index file is corrupted: {0}")]
    Corrupt(String),

    #[error("index was built with model {expected}, but the query model is {actual}")]
    ModelMismatch { expected: String, actual: String },

    #[error("npy file {what}")]
    Npy { what: String },

    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
}

pub type Result<T, E = IndexError> = std::result::Result<T, E>;

impl IndexError {
    /// A stable, machine-readable name for the kind of error (what the browser package puts
    /// in `error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            IndexError::DimensionMismatch { .. } => "E_DIMENSION",
            IndexError::NonFinite { .. } => "E_NON_FINITE",
            IndexError::InvalidArgument { .. } => "E_INVALID_ARGUMENT",
            IndexError::KeywordIndexMissing { .. } => "E_NO_KEYWORD_INDEX",
            IndexError::UnknownId(_) => "E_UNKNOWN_ID",
            IndexError::DuplicateId { .. } => "E_DUPLICATE_ID",
            IndexError::InvalidFilter { .. } => "E_FILTER",
            IndexError::BadMagic { .. }
            | IndexError::Truncated { .. }
            | IndexError::ChecksumMismatch { .. }
            | IndexError::Corrupt(_) => "E_INDEX_CORRUPT",
            IndexError::UnsupportedVersion { .. } => "E_INDEX_VERSION",
            IndexError::ModelMismatch { .. } => "E_MODEL_MISMATCH",
            IndexError::Npy { .. } => "E_NPY",
            IndexError::Io { .. } => "E_IO",
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| IndexError::Io { op, path, source }
    }
}
