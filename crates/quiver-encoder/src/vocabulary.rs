//! The tokenizer's model: the tokenizers crate's own for WordPiece, BPE and WordLevel, and a
//! compact Unigram for SentencePiece vocabularies. The crate's Unigram keeps a byte trie with
//! a hash map per node, ~250 MB for XLM-R's 250k pieces (multilingual-e5); here the pieces
//! sit in one string, searched through an array sorted by their bytes: ~7 MB, same tokens.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokenizers::models::unigram::UnigramTrainer;
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::{Model, Token};

/// What `tokenizer.json`'s `model` holds.
pub enum Vocabulary {
    Crate(ModelWrapper),
    Pieces(Pieces),
}

/// A Unigram model (SentencePiece): pieces with log-probabilities, the most probable
/// segmentation found by Viterbi, as the crate's `Unigram` does, tie for tie.
pub struct Pieces {
    /// Every piece, one after the other; piece `i` ends at `ends[i]`.
    text: String,
    ends: Vec<u32>,
    scores: Vec<f64>,
    /// Ids in the order of their pieces' bytes; equal pieces keep id order.
    sorted: Vec<u32>,
    /// Where in `sorted` the pieces beginning with each byte value begin (and, last, end).
    first: Vec<u32>,
    min_score: f64,
    unk: Option<u32>,
    byte_fallback: bool,
}

/// SentencePiece's penalty below the least likely piece for a character no piece covers.
const UNKNOWN_PENALTY: f64 = 10.0;

impl Pieces {
    fn assemble(
        text: String,
        ends: Vec<u32>,
        scores: Vec<f64>,
        unk: Option<u32>,
        byte_fallback: bool,
    ) -> Result<Self, String> {
        if let Some(unk) = unk {
            if unk as usize >= ends.len() {
                return Err(format!("unk_id {unk} is outside the {} pieces", ends.len()));
            }
        }
        let count = u32::try_from(ends.len()).map_err(|_| "too many pieces".to_string())?;
        let min_score = scores.iter().copied().fold(f64::INFINITY, f64::min);
        let mut pieces =
            Pieces { text, ends, scores, sorted: Vec::new(), first: Vec::new(), min_score, unk, byte_fallback };
        let mut sorted: Vec<u32> = (0..count).collect();
        sorted.sort_by(|&a, &b| pieces.piece(a).as_bytes().cmp(pieces.piece(b).as_bytes()));
        pieces.first = (0..=256)
            .map(|byte| {
                sorted.partition_point(|&id| pieces.piece(id).as_bytes().first().map(|&b| b as usize) < Some(byte))
            })
            .map(|at| at as u32)
            .collect();
        pieces.sorted = sorted;
        Ok(pieces)
    }

    fn piece(&self, id: u32) -> &str {
        let id = id as usize;
        let start = if id == 0 { 0 } else { self.ends[id - 1] as usize };
        &self.text[start..self.ends[id] as usize]
    }

    /// The id of a piece; the last one where a piece is listed twice, as the crate maps it.
    fn id(&self, piece: &str) -> Option<u32> {
        let bytes = piece.as_bytes();
        let after = self.sorted.partition_point(|&id| self.piece(id).as_bytes() <= bytes);
        let last = *self.sorted.get(after.checked_sub(1)?)?;
        (self.piece(last) == piece).then_some(last)
    }

    /// Calls `found(length, id)` for every piece that `text` starts with, shortest first.
    fn prefixes(&self, text: &[u8], mut found: impl FnMut(usize, u32)) {
        // `sorted[lo..hi]` holds the pieces that begin with `text[..k]`; those exactly that
        // long sort first.
        let Some(&head) = text.first() else { return };
        let (mut lo, mut hi) = (self.first[head as usize] as usize, self.first[head as usize + 1] as usize);
        for (k, &byte) in text.iter().enumerate() {
            let at = |id: u32| self.piece(id).as_bytes().get(k).copied();
            let range = &self.sorted[lo..hi];
            let start = lo + range.partition_point(|&id| at(id) < Some(byte));
            hi = lo + range.partition_point(|&id| at(id) <= Some(byte));
            lo = start;
            if lo == hi {
                return;
            }
            let whole = self.sorted[lo..hi].iter().take_while(|&&id| self.piece(id).len() == k + 1).count();
            if whole > 0 {
                found(k + 1, self.sorted[lo + whole - 1]);
            }
        }
    }

    /// The most probable segmentation of `text` with each piece's id, runs of unknown
    /// characters fused into one string without an id (SentencePiece's Viterbi, as the
    /// crate's optimized path runs it).
    fn segment<'t>(&self, text: &'t str) -> Result<Vec<(&'t str, Option<u32>)>, String> {
        struct Best {
            score: f64,
            start: Option<usize>,
            id: u32,
        }
        let unknown = self.min_score - UNKNOWN_PENALTY;
        let mut best: Vec<Best> = (0..=text.len()).map(|_| Best { score: 0.0, start: None, id: 0 }).collect();
        let offer = |best: &mut [Best], start: usize, end: usize, score: f64, id: u32| {
            let node = &mut best[end];
            if node.start.is_none() || score > node.score {
                *node = Best { score, start: Some(start), id };
            }
        };
        let mut start = 0;
        while let Some(c) = text[start..].chars().next() {
            let here = best[start].score;
            let width = c.len_utf8();
            let mut single = false;
            self.prefixes(&text.as_bytes()[start..], |len, id| {
                offer(&mut best, start, start + len, self.scores[id as usize] + here, id);
                single |= len == width;
            });
            if !single {
                let unk = self.unk.ok_or("a character matches no piece and there is no unk_id")?;
                offer(&mut best, start, start + width, unknown + here, unk);
            }
            start += width;
        }
        let mut pieces = Vec::new();
        let mut end = text.len();
        let mut fused: Option<usize> = None;
        while end > 0 {
            let node = &best[end];
            let start = node.start.expect("every character boundary is reached");
            if Some(node.id) == self.unk {
                fused.get_or_insert(end);
            } else {
                if let Some(fused_end) = fused.take() {
                    pieces.push((&text[end..fused_end], None));
                }
                pieces.push((&text[start..end], Some(node.id)));
            }
            end = start;
        }
        if let Some(fused_end) = fused {
            pieces.push((&text[..fused_end], None));
        }
        pieces.reverse();
        Ok(pieces)
    }
}

impl Model for Pieces {
    type Trainer = TrainerWrapper;

    fn tokenize(&self, text: &str) -> tokenizers::Result<Vec<Token>> {
        let mut tokens = Vec::new();
        let mut offset = 0;
        for (piece, id) in self.segment(text)? {
            let span = (offset, offset + piece.len());
            offset += piece.len();
            // A fused run of unknown characters is looked up whole, as the crate does.
            if let Some(id) = id.or_else(|| self.id(piece)) {
                tokens.push(Token::new(id, piece.to_string(), span));
                continue;
            }
            let bytes: Option<Vec<Token>> = match self.byte_fallback {
                true => piece
                    .bytes()
                    .map(|b| {
                        let name = format!("<0x{b:02X}>");
                        self.id(&name).map(|id| Token::new(id, name, span))
                    })
                    .collect(),
                false => None,
            };
            match bytes {
                Some(bytes) => tokens.extend(bytes),
                None => {
                    let unk = self.unk.ok_or("a piece is unknown and there is no unk_id")?;
                    tokens.push(Token::new(unk, piece.to_string(), span));
                }
            }
        }
        Ok(tokens)
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.id(token)
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        ((id as usize) < self.ends.len()).then(|| self.piece(id).to_string())
    }

    fn get_vocab(&self) -> HashMap<String, u32> {
        (0..self.ends.len() as u32).map(|id| (self.piece(id).to_string(), id)).collect()
    }

    fn get_vocab_size(&self) -> usize {
        self.ends.len()
    }

    fn save(&self, _folder: &Path, _prefix: Option<&str>) -> tokenizers::Result<Vec<PathBuf>> {
        Err("Quiver's Unigram vocabulary is read-only".into())
    }

    fn get_trainer(&self) -> TrainerWrapper {
        TrainerWrapper::UnigramTrainer(UnigramTrainer::default())
    }
}

impl Model for Vocabulary {
    type Trainer = TrainerWrapper;

    fn tokenize(&self, text: &str) -> tokenizers::Result<Vec<Token>> {
        match self {
            Vocabulary::Crate(model) => model.tokenize(text),
            Vocabulary::Pieces(pieces) => pieces.tokenize(text),
        }
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        match self {
            Vocabulary::Crate(model) => model.token_to_id(token),
            Vocabulary::Pieces(pieces) => pieces.token_to_id(token),
        }
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        match self {
            Vocabulary::Crate(model) => model.id_to_token(id),
            Vocabulary::Pieces(pieces) => pieces.id_to_token(id),
        }
    }

    fn get_vocab(&self) -> HashMap<String, u32> {
        match self {
            Vocabulary::Crate(model) => model.get_vocab(),
            Vocabulary::Pieces(pieces) => pieces.get_vocab(),
        }
    }

    fn get_vocab_size(&self) -> usize {
        match self {
            Vocabulary::Crate(model) => model.get_vocab_size(),
            Vocabulary::Pieces(pieces) => pieces.get_vocab_size(),
        }
    }

    fn save(&self, folder: &Path, prefix: Option<&str>) -> tokenizers::Result<Vec<PathBuf>> {
        match self {
            Vocabulary::Crate(model) => model.save(folder, prefix),
            Vocabulary::Pieces(pieces) => pieces.save(folder, prefix),
        }
    }

    fn get_trainer(&self) -> TrainerWrapper {
        match self {
            Vocabulary::Crate(model) => model.get_trainer(),
            Vocabulary::Pieces(pieces) => pieces.get_trainer(),
        }
    }
}

/// Reads `model` field by field so that a Unigram's pieces stream straight into [`Pieces`]
/// (the crate first copies the whole model into a `serde_json::Value`); any other model
/// goes to the crate as it is.
impl<'de> Deserialize<'de> for Vocabulary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(VocabularyVisitor)
    }
}

struct VocabularyVisitor;

/// `vocab`: a list of `[piece, score]` (Unigram) or anything else (the crate's models).
enum VocabField {
    Pieces { text: String, ends: Vec<u32>, scores: Vec<f64> },
    Other(Value),
}

impl<'de> Visitor<'de> for VocabularyVisitor {
    type Value = Vocabulary;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tokenizer model")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vocabulary, A::Error> {
        let mut fields = Map::new();
        let mut vocab = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "vocab" {
                vocab = Some(map.next_value::<VocabField>()?);
            } else {
                fields.insert(key, map.next_value()?);
            }
        }
        // Models without `type` are from older tokenizers; of those, only Unigram lists pieces.
        let kind = fields.get("type").and_then(Value::as_str).unwrap_or("Unigram").to_string();
        match vocab {
            Some(VocabField::Pieces { text, ends, scores }) if kind == "Unigram" => {
                let unk = match fields.get("unk_id") {
                    None | Some(Value::Null) => None,
                    Some(id) => Some(
                        id.as_u64()
                            .and_then(|id| u32::try_from(id).ok())
                            .ok_or_else(|| de::Error::custom(format!("unk_id {id} is not a piece number")))?,
                    ),
                };
                let byte_fallback = fields.get("byte_fallback").and_then(Value::as_bool).unwrap_or(false);
                Pieces::assemble(text, ends, scores, unk, byte_fallback)
                    .map(Vocabulary::Pieces)
                    .map_err(de::Error::custom)
            }
            Some(VocabField::Pieces { .. }) => {
                Err(de::Error::custom(format!("a {kind} vocabulary is a map, not a list")))
            }
            other => {
                if let Some(VocabField::Other(value)) = other {
                    fields.insert("vocab".into(), value);
                }
                serde_json::from_value(Value::Object(fields)).map(Vocabulary::Crate).map_err(de::Error::custom)
            }
        }
    }
}

impl<'de> Deserialize<'de> for VocabField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(VocabFieldVisitor)
    }
}

struct VocabFieldVisitor;

impl<'de> Visitor<'de> for VocabFieldVisitor {
    type Value = VocabField;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a vocabulary")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<VocabField, A::Error> {
        let mut text = String::new();
        let mut ends = Vec::new();
        let mut scores = Vec::new();
        while let Some((piece, score)) = seq.next_element::<(String, f64)>()? {
            text.push_str(&piece);
            ends.push(u32::try_from(text.len()).map_err(|_| de::Error::custom("the pieces exceed 4 GiB"))?);
            scores.push(score);
        }
        Ok(VocabField::Pieces { text, ends, scores })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<VocabField, A::Error> {
        Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(VocabField::Other)
    }
}
