//! BEIR-format evaluation sets: `corpus.jsonl` (`_id`, `title`, `text`), `queries.jsonl`
//! (`_id`, `text`) and `qrels/<split>.tsv` (`query-id`, `corpus-id`, `score`, with or
//! without the header line). Every malformed line is an error naming the file and line.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{EngineError, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct BeirDocument {
    pub id: String,
    pub title: String,
    pub text: String,
}

impl BeirDocument {
    /// The text to embed and index: the title, then the body, as BEIR's own baselines join them.
    pub fn full_text(&self) -> String {
        match (self.title.trim().is_empty(), self.text.trim().is_empty()) {
            (true, _) => self.text.clone(),
            (false, true) => self.title.clone(),
            (false, false) => format!("{}. {}", self.title, self.text),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BeirQuery {
    pub id: String,
    pub text: String,
}

/// One evaluation set.
#[derive(Debug, Clone)]
pub struct BeirSet {
    pub corpus: Vec<BeirDocument>,
    pub queries: Vec<BeirQuery>,
    /// query id → (document id → grade).
    pub qrels: HashMap<String, HashMap<String, i32>>,
}

impl BeirSet {
    /// Loads `dir`, with the judgements of `qrels/<split>.tsv`.
    pub fn load(dir: &Path, split: &str) -> Result<BeirSet> {
        let corpus_path = dir.join("corpus.jsonl");
        let mut seen = HashSet::new();
        let mut corpus = Vec::new();
        for_each_line(&corpus_path, |line, object| {
            let id = id_field(&corpus_path, line, &object)?;
            if !seen.insert(id.clone()) {
                return Err(input(&corpus_path, line, format!("duplicate document id {id:?}")));
            }
            let text_field = |name| object.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
            corpus.push(BeirDocument { id, title: text_field("title"), text: text_field("text") });
            Ok(())
        })?;
        if corpus.is_empty() {
            return Err(input(&corpus_path, 0, "no documents".into()));
        }

        let queries_path = dir.join("queries.jsonl");
        let mut queries = Vec::new();
        let mut query_ids = HashSet::new();
        for_each_line(&queries_path, |line, object| {
            let id = id_field(&queries_path, line, &object)?;
            if !query_ids.insert(id.clone()) {
                return Err(input(&queries_path, line, format!("duplicate query id {id:?}")));
            }
            let text = object
                .get("text")
                .and_then(Value::as_str)
                .ok_or_else(|| input(&queries_path, line, "no \"text\" string".into()))?;
            queries.push(BeirQuery { id, text: text.to_owned() });
            Ok(())
        })?;
        if queries.is_empty() {
            return Err(input(&queries_path, 0, "no queries".into()));
        }

        let qrels_path = dir.join("qrels").join(format!("{split}.tsv"));
        let qrels = read_qrels(&qrels_path, &query_ids, &seen)?;
        Ok(BeirSet { corpus, queries, qrels })
    }
}

fn read_qrels(
    path: &Path,
    query_ids: &HashSet<String>,
    document_ids: &HashSet<String>,
) -> Result<HashMap<String, HashMap<String, i32>>> {
    let file = File::open(path).map_err(|source| EngineError::Io { op: "open", path: path.to_owned(), source })?;
    let mut qrels: HashMap<String, HashMap<String, i32>> = HashMap::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line_no = n + 1;
        let line = line.map_err(|source| EngineError::Io { op: "read", path: path.to_owned(), source })?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() || (line_no == 1 && fields[0] == "query-id") {
            continue;
        }
        // BEIR: query, document, grade. TREC qrels: query, iteration, document, grade.
        let (query, document, grade) = match fields[..] {
            [q, d, g] => (q, d, g),
            [q, _, d, g] => (q, d, g),
            _ => return Err(input(path, line_no, format!("expected 3 tab-separated fields, found {}", fields.len()))),
        };
        let grade: i32 =
            grade.parse().map_err(|_| input(path, line_no, format!("grade {grade:?} is not an integer")))?;
        if !query_ids.contains(query) {
            return Err(input(path, line_no, format!("query id {query:?} is not in queries.jsonl")));
        }
        if !document_ids.contains(document) {
            return Err(input(path, line_no, format!("document id {document:?} is not in corpus.jsonl")));
        }
        if qrels.entry(query.to_owned()).or_default().insert(document.to_owned(), grade).is_some() {
            return Err(input(path, line_no, format!("query {query:?} judges document {document:?} twice")));
        }
    }
    if qrels.is_empty() {
        return Err(input(path, 0, "no judgements".into()));
    }
    Ok(qrels)
}

fn for_each_line(path: &Path, mut each: impl FnMut(usize, serde_json::Map<String, Value>) -> Result<()>) -> Result<()> {
    let file = File::open(path).map_err(|source| EngineError::Io { op: "open", path: path.to_owned(), source })?;
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| EngineError::Io { op: "read", path: path.to_owned(), source })?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(Value::Object(object)) => each(n + 1, object)?,
            Ok(_) => return Err(input(path, n + 1, "not a JSON object".into())),
            Err(e) => return Err(input(path, n + 1, format!("invalid JSON: {e}"))),
        }
    }
    Ok(())
}

fn id_field(path: &Path, line: usize, object: &serde_json::Map<String, Value>) -> Result<String> {
    match object.get("_id") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(input(path, line, "no \"_id\" string".into())),
    }
}

fn input(path: &Path, line: usize, reason: String) -> EngineError {
    EngineError::Input { path: PathBuf::from(path), line, reason }
}
