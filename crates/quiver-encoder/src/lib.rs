//! Quiver's sentence encoder: BERT-family models (all-MiniLM-L6-v2, BGE, E5,
//! multilingual-e5) on candle, with the tokenization, pooling and normalisation of
//! sentence-transformers.

mod bert;
pub mod config;
mod encoder;
mod error;
pub mod files;
mod ops;
pub mod pooling;
mod tokenize;

pub use config::{BertConfig, Pooling, Prefixes, SentenceConfig};
pub use encoder::{Embeddings, Encoder, Overrides, TextKind};
pub use error::{EncoderError, Result};
pub use files::ModelFiles;
