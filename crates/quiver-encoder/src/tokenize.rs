//! The tokenizer, set up as sentence-transformers uses it.

use tokenizers::{
    DecoderWrapper, NormalizerWrapper, PostProcessor, PostProcessorWrapper, PreTokenizerWrapper, TokenizerImpl,
    TruncationParams, TruncationStrategy,
};

use crate::vocabulary::Vocabulary;
use crate::{EncoderError, Result};

/// The crate's tokenizer pipeline (normalizer, pre-tokenizer, added tokens, post-processor)
/// around [`Vocabulary`].
type Tokenizer =
    TokenizerImpl<Vocabulary, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>;

fn load(json: &[u8]) -> Result<Tokenizer> {
    serde_json::from_slice(json)
        .map_err(|e| EncoderError::Tokenizer { op: "could not be loaded", message: e.to_string() })
}

/// One tokenizer, which truncates and frames itself: a second copy configured to truncate
/// would hold the vocabulary twice.
pub struct TextTokenizer {
    whole: Tokenizer,
    max_len: usize,
    /// Ids the post-processor puts before and after a single sequence (`[CLS]`/`[SEP]`).
    before: Vec<u32>,
    after: Vec<u32>,
}

fn tokenizer_error(op: &'static str) -> impl Fn(tokenizers::Error) -> EncoderError {
    move |e| EncoderError::Tokenizer { op, message: e.to_string() }
}

impl TextTokenizer {
    /// Replaces the padding and truncation baked into `tokenizer.json` (all-MiniLM-L6-v2's
    /// pads and cuts at 128) with none and `max_len` (special tokens included).
    pub fn from_bytes(json: &[u8], max_len: usize) -> Result<Self> {
        let mut whole = load(json)?;
        whole.with_padding(None);
        whole.with_truncation(None).map_err(tokenizer_error("set truncation"))?;
        let empty = whole.encode("", true).map_err(tokenizer_error("encode"))?;
        let specials = empty.get_ids();
        let bare = whole.encode("", false).map_err(tokenizer_error("encode"))?.get_ids().len();
        // The template frames text as `before … after`; every BERT-family template puts
        // one token before.
        let (before, after) = match (specials.split_first(), bare) {
            (Some((first, rest)), 0) => (vec![*first], rest.to_vec()),
            _ => (Vec::new(), Vec::new()),
        };
        if max_len <= before.len() + after.len() {
            return Err(EncoderError::InvalidArgument {
                op: "tokenizer",
                what: format!("max sequence length {max_len} leaves no room for text"),
            });
        }
        Ok(TextTokenizer { whole, max_len, before, after })
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    pub fn vocab_size(&self) -> usize {
        self.whole.get_vocab_size(true)
    }

    /// Ids with special tokens, the text's truncated to the model's limit (what the
    /// tokenizer's own right truncation gives).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let room = self.max_len - self.before.len() - self.after.len();
        let ids = self.whole.encode(text, false).map_err(tokenizer_error("encode"))?;
        let ids = ids.get_ids();
        Ok([&self.before[..], &ids[..ids.len().min(room)], &self.after[..]].concat())
    }

    /// Ids of windows of at most `window` text tokens, `overlap` tokens shared by
    /// neighbours, each framed with the special tokens; one window for a short text.
    pub fn encode_chunks(&self, text: &str, window: usize, overlap: usize) -> Result<Vec<Vec<u32>>> {
        let room = self.max_len - self.before.len() - self.after.len();
        let window = window.clamp(1, room);
        if overlap >= window {
            return Err(EncoderError::InvalidArgument {
                op: "chunking",
                what: format!("overlap {overlap} must be smaller than the chunk size {window}"),
            });
        }
        let ids = self.whole.encode(text, false).map_err(tokenizer_error("encode"))?.get_ids().to_vec();
        let step = window - overlap;
        let mut chunks = Vec::new();
        let mut start = 0;
        loop {
            let end = (start + window).min(ids.len());
            chunks.push([&self.before[..], &ids[start..end], &self.after[..]].concat());
            if end == ids.len() {
                break Ok(chunks);
            }
            start += step;
        }
    }
}

/// The tokenizer for (query, document) pairs, as sentence-transformers' `CrossEncoder` calls
/// it: `[CLS] query [SEP] document [SEP]` with token types 0 then 1, no padding, and
/// `longest_first` truncation, which shortens the longer text first and, when both are
/// long, keeps half of the room for each.
pub struct PairTokenizer {
    tokenizer: Tokenizer,
    max_len: usize,
}

/// A pair's ids and token type ids, special tokens included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairTokens {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
}

impl PairTokenizer {
    /// Replaces the padding and truncation baked into `tokenizer.json` with none and
    /// `max_len` tokens per pair (special tokens included).
    pub fn from_bytes(json: &[u8], max_len: usize) -> Result<Self> {
        let mut tokenizer = load(json)?;
        tokenizer.with_padding(None);
        let specials = tokenizer.get_post_processor().map_or(0, |p| p.added_tokens(true));
        if max_len <= specials {
            return Err(EncoderError::InvalidArgument {
                op: "tokenizer",
                what: format!("max sequence length {max_len} leaves no room for a pair of texts"),
            });
        }
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                ..Default::default()
            }))
            .map_err(tokenizer_error("set truncation"))?;
        Ok(PairTokenizer { tokenizer, max_len })
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    pub fn encode(&self, first: &str, second: &str) -> Result<PairTokens> {
        let encoding = self.tokenizer.encode((first, second), true).map_err(tokenizer_error("encode"))?;
        Ok(PairTokens { ids: encoding.get_ids().to_vec(), type_ids: encoding.get_type_ids().to_vec() })
    }
}
