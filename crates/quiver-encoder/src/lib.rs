//! Quiver's sentence encoder: BERT-family models (all-MiniLM-L6-v2, BGE, E5,
//! multilingual-e5) on candle, with the tokenization, pooling and normalisation of
//! sentence-transformers; and a BERT cross-encoder that re-ranks search results.

mod batch;
mod bert;
pub mod config;
mod cross_encoder;
mod encoder;
mod error;
pub mod files;
mod ops;
pub mod pooling;
mod tokenize;

pub use config::{BertConfig, Pooling, Prefixes, ScoreActivation, SentenceConfig};
pub use cross_encoder::CrossEncoder;
pub use encoder::{Embeddings, Encoder, Overrides, TextKind};
pub use error::{EncoderError, Result};
pub use files::ModelFiles;
pub use tokenize::PairTokens;
