//! Quiver's vector index: exact f32, int8 and binary (Hamming) search with rescoring,
//! ids, JSON metadata and filters, an optional BM25 keyword index for keyword and hybrid
//! search, stored in one checksummed file.
//!
//! Plain `&[f32]` in, ranked rows out: this crate knows nothing about how embeddings are
//! made. See `ARCHITECTURE.md` at the repository root.

mod error;
pub mod filter;
mod flat;
pub mod format;
pub mod fusion;
pub mod kernels;
pub mod keyword;
pub mod npy;
pub mod quantize;
mod section;
mod topk;

pub use error::{IndexError, Result};
pub use filter::{Condition, Filter};
pub use flat::{
    Document, FlatIndex, IndexConfig, Metric, ModelInfo, Query, Rescore, SearchMode, SearchOptions, Strategy,
};
pub use format::FileInfo;
pub use fusion::Fusion;
pub use keyword::{Bm25Index, Bm25Params};
pub use quantize::ThresholdKind;
pub use section::Backing;
pub use topk::Hit;
