//! Keyword search: an analyzer for English and German text ([`analyze`]) and a BM25
//! inverted index ([`Bm25Index`]) whose rows follow the vector rows of a `FlatIndex`.

mod analyzer;
mod bm25;

pub use analyzer::analyze;
pub(crate) use bm25::Posting;
pub use bm25::{Bm25Index, Bm25Params};
