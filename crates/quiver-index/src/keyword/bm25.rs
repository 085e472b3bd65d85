//! An inverted index scored by Okapi BM25, rows kept in step with the vector rows.

use std::collections::HashMap;

use bytemuck::{Pod, Zeroable};

use super::analyze;
use crate::topk::Hit;
use crate::topk::TopK;
use crate::{IndexError, Result};

/// BM25's free parameters: `k1` (how fast repeated terms saturate) and `b` (how much a
/// long document is penalised). They are applied at query time, so they can be changed
/// without rebuilding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bm25Params {
    pub k1: f32,
    pub b: f32,
}

impl Default for Bm25Params {
    fn default() -> Self {
        Bm25Params { k1: 1.2, b: 0.75 }
    }
}

/// One document's count of one term. Stored as is (two little-endian u32) in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct Posting {
    pub row: u32,
    pub tf: u32,
}

/// One row's count of one term (the forward direction of a posting).
#[derive(Debug, Clone, Copy)]
struct TermCount {
    term: u32,
    tf: u32,
}

#[derive(Debug, Clone, Default)]
struct Term {
    text: String,
    /// Sorted by row; empty only while the term id is free.
    postings: Vec<Posting>,
}

/// Term → postings, plus each row's terms so a row can be removed without a full scan.
///
/// Rows are dense and follow the vector index: [`Bm25Index::push`] appends the next row and
/// [`Bm25Index::swap_remove`] moves the last row into the removed one, as `FlatIndex` does.
#[derive(Debug, Clone, Default)]
pub struct Bm25Index {
    term_ids: HashMap<String, u32>,
    terms: Vec<Term>,
    /// Ids of terms whose last posting was removed, reused before new ids.
    free_term_ids: Vec<u32>,
    /// Per row, its distinct terms.
    row_terms: Vec<Vec<TermCount>>,
    /// Per row, its number of terms (the BM25 document length).
    row_lengths: Vec<u32>,
    total_length: u64,
}

/// The index as the file stores it: terms sorted, each term's postings sorted by row.
pub(crate) struct Bm25Sections {
    pub term_offsets: Vec<u64>,
    pub term_bytes: Vec<u8>,
    /// `postings[posting_offsets[t]..posting_offsets[t + 1]]` belong to term `t`.
    pub posting_offsets: Vec<u64>,
    pub postings: Vec<Posting>,
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).expect("keyword rows, terms and counts stay below 2^32")
}

impl Bm25Index {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of rows (documents, including those without terms).
    pub fn len(&self) -> usize {
        self.row_lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.row_lengths.is_empty()
    }

    /// Number of distinct terms.
    pub fn term_count(&self) -> usize {
        self.term_ids.len()
    }

    /// Analyses `text` and adds it as the next row.
    pub fn push(&mut self, text: &str) {
        let row = to_u32(self.len());
        let mut terms = analyze(text);
        terms.sort_unstable();
        let mut counts = Vec::new();
        for group in terms.chunk_by(|a, b| a == b) {
            let term = self.term_id(&group[0]);
            let tf = to_u32(group.len());
            self.terms[term as usize].postings.push(Posting { row, tf });
            counts.push(TermCount { term, tf });
        }
        let length = to_u32(terms.len());
        self.row_terms.push(counts);
        self.row_lengths.push(length);
        self.total_length += u64::from(length);
    }

    /// Removes `row`, moving the last row into its place (as `Vec::swap_remove`, and like it
    /// panics when `row` is out of bounds).
    pub fn swap_remove(&mut self, row: usize) {
        let last = self.len() - 1;
        for &TermCount { term, .. } in &self.row_terms[row] {
            let postings = &mut self.terms[term as usize].postings;
            let at = postings.binary_search_by_key(&to_u32(row), |p| p.row).expect("a row's terms list it");
            postings.remove(at);
            if postings.is_empty() {
                let text = std::mem::take(&mut self.terms[term as usize].text);
                self.term_ids.remove(&text);
                self.free_term_ids.push(term);
            }
        }
        if row != last {
            for &TermCount { term, tf } in &self.row_terms[last] {
                let postings = &mut self.terms[term as usize].postings;
                // The last row is the highest, so it is the last posting of each of its terms.
                postings.pop();
                let at = postings.partition_point(|p| (p.row as usize) < row);
                postings.insert(at, Posting { row: to_u32(row), tf });
            }
        }
        self.row_terms.swap_remove(row);
        self.total_length -= u64::from(self.row_lengths.swap_remove(row));
    }

    fn term_id(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.term_ids.get(text) {
            return id;
        }
        let id = match self.free_term_ids.pop() {
            Some(id) => {
                self.terms[id as usize].text = text.to_owned();
                id
            }
            None => {
                self.terms.push(Term { text: text.to_owned(), postings: Vec::new() });
                to_u32(self.terms.len() - 1)
            }
        };
        self.term_ids.insert(text.to_owned(), id);
        id
    }

    /// The best `k` rows for `query` among those `allowed`, best first, ties to the lower
    /// row. Only rows containing a query term are returned. Each distinct query term counts
    /// once; corpus statistics (document count, frequencies, mean length) ignore the filter.
    pub fn search(
        &self,
        query: &str,
        k: usize,
        params: Bm25Params,
        allowed: impl Fn(usize) -> bool,
    ) -> Result<Vec<Hit>> {
        let Bm25Params { k1, b } = params;
        if !(k1.is_finite() && k1 >= 0.0 && (0.0..=1.0).contains(&b)) {
            return Err(IndexError::InvalidArgument {
                op: "keyword search",
                what: format!("BM25 needs k1 ≥ 0 and 0 ≤ b ≤ 1, got k1 = {k1}, b = {b}"),
            });
        }
        let mut terms = analyze(query);
        terms.sort_unstable();
        terms.dedup();
        let n = self.len();
        if k == 0 || n == 0 {
            return Ok(Vec::new());
        }
        let mean_length = self.total_length as f32 / n as f32;
        let mut scores = vec![0f32; n];
        for term in terms.iter().filter_map(|t| self.term_ids.get(t)) {
            let postings = &self.terms[*term as usize].postings;
            let df = postings.len() as f32;
            let idf = (1.0 + (n as f32 - df + 0.5) / (df + 0.5)).ln();
            for &Posting { row, tf } in postings {
                let tf = tf as f32;
                let length_norm = k1 * (1.0 - b + b * self.row_lengths[row as usize] as f32 / mean_length);
                scores[row as usize] += idf * tf * (k1 + 1.0) / (tf + length_norm);
            }
        }
        let mut top = TopK::new(k);
        for (row, &score) in scores.iter().enumerate() {
            // Every matched term adds a positive amount, so zero means no match.
            if score > 0.0 && top.would_accept(score) && allowed(row) {
                top.push(score, row);
            }
        }
        Ok(top.into_sorted())
    }

    pub(crate) fn to_sections(&self) -> Bm25Sections {
        let mut live: Vec<&Term> = self.terms.iter().filter(|t| !t.postings.is_empty()).collect();
        live.sort_unstable_by(|a, b| a.text.cmp(&b.text));
        let mut sections = Bm25Sections {
            term_offsets: vec![0],
            term_bytes: Vec::new(),
            posting_offsets: vec![0],
            postings: Vec::new(),
        };
        for term in live {
            sections.term_bytes.extend_from_slice(term.text.as_bytes());
            sections.term_offsets.push(sections.term_bytes.len() as u64);
            sections.postings.extend_from_slice(&term.postings);
            sections.posting_offsets.push(sections.postings.len() as u64);
        }
        sections
    }

    /// Rebuilds the index of `rows` documents from the file's terms (sorted, distinct) and
    /// their postings, checking every invariant the other methods rely on.
    pub(crate) fn from_sections(
        rows: usize,
        terms: Vec<String>,
        posting_offsets: &[u64],
        postings: &[Posting],
    ) -> Result<Self> {
        let corrupt = |what: String| IndexError::Corrupt(format!("keyword index: {what}"));
        if posting_offsets.len() != terms.len() + 1
            || posting_offsets.first() != Some(&0)
            || posting_offsets.last() != Some(&(postings.len() as u64))
        {
            return Err(corrupt("posting offsets do not cover the postings".into()));
        }
        if rows > u32::MAX as usize {
            return Err(corrupt(format!("{rows} rows")));
        }
        let mut index = Bm25Index {
            term_ids: HashMap::with_capacity(terms.len()),
            terms: Vec::with_capacity(terms.len()),
            free_term_ids: Vec::new(),
            row_terms: vec![Vec::new(); rows],
            row_lengths: vec![0; rows],
            total_length: 0,
        };
        for (id, (text, range)) in terms.into_iter().zip(posting_offsets.windows(2)).enumerate() {
            if index.terms.last().is_some_and(|previous| previous.text >= text) {
                return Err(corrupt(format!("term {text:?} is out of order")));
            }
            let (start, end) = (range[0] as usize, range[1] as usize);
            let own = postings
                .get(start..end)
                .filter(|p| !p.is_empty())
                .ok_or_else(|| corrupt(format!("term {text:?}: bad posting range {start}..{end}")))?;
            let ordered = own.windows(2).all(|w| w[0].row < w[1].row);
            if !ordered || own.iter().any(|p| p.row as usize >= rows || p.tf == 0) {
                return Err(corrupt(format!("term {text:?}: postings unsorted, out of range or empty")));
            }
            let id = to_u32(id);
            for &Posting { row, tf } in own {
                let length = &mut index.row_lengths[row as usize];
                *length = length.checked_add(tf).ok_or_else(|| corrupt(format!("row {row} is too long")))?;
                index.row_terms[row as usize].push(TermCount { term: id, tf });
                index.total_length += u64::from(tf);
            }
            index.term_ids.insert(text.clone(), id);
            index.terms.push(Term { text, postings: own.to_vec() });
        }
        Ok(index)
    }
}
