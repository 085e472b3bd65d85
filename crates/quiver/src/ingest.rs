//! Documents from files: JSON Lines, CSV, plain text (one document per line) and folders
//! of Markdown or text files. Every reader streams: one record at a time. And queries
//! files, one query a line ([`read_queries`]).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use quiver_index::Filter;
use serde_json::{Map, Value};

use crate::{EngineError, Result};

/// One document: its id, the text to embed, and the fields kept as metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: String,
    pub text: String,
    pub metadata: Value,
}

/// Which fields make up a record.
#[derive(Debug, Clone)]
pub struct Fields {
    /// Fields joined (with ". ") into the text to embed; the first present one at least.
    pub text: Vec<String>,
    /// The id field; records without one are numbered by line.
    pub id: String,
    /// Fields kept as metadata; `None` keeps every field but the id (text fields included:
    /// a results page shows them).
    pub metadata: Option<Vec<String>>,
}

impl Default for Fields {
    fn default() -> Self {
        Fields { text: vec!["text".into()], id: "id".into(), metadata: None }
    }
}

/// The input formats, chosen from the path unless given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
    Lines,
    Folder,
}

impl Format {
    pub fn detect(path: &Path) -> Format {
        if path.is_dir() {
            return Format::Folder;
        }
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("jsonl" | "ndjson" | "json") => Format::Jsonl,
            Some("csv") => Format::Csv,
            _ => Format::Lines,
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "jsonl" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            "lines" | "txt" => Ok(Format::Lines),
            "folder" | "markdown" => Ok(Format::Folder),
            other => Err(format!("unknown input format {other:?} (jsonl, csv, lines, folder)")),
        }
    }
}

/// Opens `path` and streams its records.
pub fn read_records(
    path: &Path,
    format: Option<Format>,
    fields: &Fields,
) -> Result<Box<dyn Iterator<Item = Result<Record>> + Send>> {
    let format = format.unwrap_or_else(|| Format::detect(path));
    let open = || File::open(path).map_err(|source| EngineError::Io { op: "open", path: path.to_owned(), source });
    Ok(match format {
        Format::Jsonl => Box::new(jsonl(path.to_owned(), BufReader::new(open()?), fields.clone())),
        Format::Lines => Box::new(lines(path.to_owned(), BufReader::new(open()?))),
        Format::Csv => Box::new(csv_records(path.to_owned(), open()?, fields.clone())?),
        Format::Folder => Box::new(folder(path)?),
    })
}

fn to_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Builds a record from a JSON object, or says what is missing.
fn record_from_object(object: Map<String, Value>, fields: &Fields, line: usize) -> Result<Record, String> {
    let parts: Vec<String> = fields.text.iter().filter_map(|f| object.get(f).and_then(to_text)).collect();
    if parts.is_empty() {
        let have: Vec<&String> = object.keys().collect();
        return Err(format!("no text field {:?} (fields: {have:?}); choose one with --text-field", fields.text));
    }
    let id = object.get(&fields.id).and_then(to_text).unwrap_or_else(|| line.to_string());
    let metadata = match &fields.metadata {
        Some(keep) => object.into_iter().filter(|(k, _)| keep.contains(k)).collect(),
        None => object.into_iter().filter(|(k, _)| *k != fields.id).collect(),
    };
    Ok(Record { id, text: parts.join(". "), metadata: Value::Object(metadata) })
}

fn jsonl(path: PathBuf, reader: impl BufRead + Send, fields: Fields) -> impl Iterator<Item = Result<Record>> + Send {
    reader.lines().enumerate().filter_map(move |(i, line)| {
        let line_no = i + 1;
        let err = |reason: String| EngineError::Input { path: path.clone(), line: line_no, reason };
        let line = match line {
            Ok(l) => l,
            Err(e) => return Some(Err(err(e.to_string()))),
        };
        if line.trim().is_empty() {
            return None;
        }
        Some(match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(object)) => record_from_object(object, &fields, line_no).map_err(err),
            Ok(Value::String(text)) => Ok(Record { id: line_no.to_string(), text, metadata: Value::Null }),
            Ok(_) => Err(err("expected a JSON object".into())),
            Err(e) => Err(err(format!("not JSON: {e}"))),
        })
    })
}

fn lines(path: PathBuf, reader: impl BufRead + Send) -> impl Iterator<Item = Result<Record>> + Send {
    reader.lines().enumerate().filter_map(move |(i, line)| match line {
        Ok(l) if l.trim().is_empty() => None,
        Ok(text) => Some(Ok(Record { id: (i + 1).to_string(), text, metadata: Value::Null })),
        Err(e) => Some(Err(EngineError::Input { path: path.clone(), line: i + 1, reason: e.to_string() })),
    })
}

fn csv_records(path: PathBuf, file: File, fields: Fields) -> Result<impl Iterator<Item = Result<Record>> + Send> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(file);
    let headers = reader
        .headers()
        .map_err(|e| EngineError::Input { path: path.clone(), line: 1, reason: e.to_string() })?
        .clone();
    Ok(reader.into_records().enumerate().map(move |(i, row)| {
        let line = i + 2;
        let err = |reason: String| EngineError::Input { path: path.clone(), line, reason };
        let row = row.map_err(|e| err(e.to_string()))?;
        let object: Map<String, Value> =
            headers.iter().zip(row.iter()).map(|(h, v)| (h.to_owned(), Value::String(v.to_owned()))).collect();
        let mut record = record_from_object(object, &fields, line - 1).map_err(err)?;
        if let Value::Object(metadata) = &mut record.metadata {
            metadata.values_mut().for_each(|v| *v = csv_value(v.as_str().unwrap_or_default()));
        }
        Ok(record)
    }))
}

/// CSV cells are text; in metadata, numbers become JSON numbers so range filters work.
fn csv_value(cell: &str) -> Value {
    cell.parse::<i64>()
        .map(Value::from)
        .or_else(|_| cell.parse::<f64>().ok().filter(|x| x.is_finite()).map(Value::from).ok_or(()))
        .unwrap_or_else(|_| Value::String(cell.to_owned()))
}

/// Every `.md`, `.markdown` and `.txt` file below `dir`, sorted by path: id is the relative
/// path, metadata holds the path and the first heading as title.
fn folder(dir: &Path) -> Result<impl Iterator<Item = Result<Record>> + Send> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        let entries =
            std::fs::read_dir(&d).map_err(|source| EngineError::Io { op: "list", path: d.clone(), source })?;
        for entry in entries {
            let path = entry.map_err(|source| EngineError::Io { op: "list", path: d.clone(), source })?.path();
            if path.is_dir() {
                pending.push(path);
            } else if matches!(path.extension().and_then(|e| e.to_str()), Some("md" | "markdown" | "txt")) {
                files.push(path);
            }
        }
    }
    files.sort();
    let root = dir.to_owned();
    Ok(files.into_iter().map(move |path| {
        let text = std::fs::read_to_string(&path).map_err(|source| EngineError::Io {
            op: "read",
            path: path.clone(),
            source,
        })?;
        let rel = path.strip_prefix(&root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
        let title = text
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("# ").map(|t| t.trim().to_owned()))
            .unwrap_or_else(|| rel.clone());
        Ok(Record { id: rel.clone(), text, metadata: serde_json::json!({ "path": rel, "title": title }) })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_files_take_strings_objects_and_plain_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.jsonl");
        let lines = [
            r#""wine glasses""#,
            "",
            r#"{"query": "a lamp", "id": 7, "filter": {"price": {"lte": 30}}}"#,
            r#"{"_id": "q2", "text": "BEIR style"}"#,
            "plain text query",
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        let queries = read_queries(&path).unwrap();
        let texts: Vec<&str> = queries.iter().map(|q| q.text.as_str()).collect();
        assert_eq!(texts, ["wine glasses", "a lamp", "BEIR style", "plain text query"]);
        assert_eq!(queries[1].id, Some(serde_json::json!(7)));
        assert!(queries[1].filter.is_some() && queries[0].filter.is_none());

        for (bad, reason) in
            [(r#"{"id": 1}"#, "no \"query\""), (r#"{"query": "x", "filter": {"price": {"between": 3}}}"#, "between")]
        {
            std::fs::write(&path, format!("\"fine\"\n{bad}\n")).unwrap();
            match read_queries(&path) {
                Err(EngineError::Input { line: 2, reason: r, .. }) => assert!(r.contains(reason), "{r}"),
                other => panic!("expected an error on line 2, got {other:?}"),
            }
        }
        assert_eq!(read_queries(&dir.path().join("missing")).unwrap_err().code(), "E_IO");
    }

    fn collect(path: &Path, fields: &Fields) -> Vec<Result<Record>> {
        read_records(path, None, fields).unwrap().collect()
    }

    #[test]
    fn jsonl_csv_lines_and_folders() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = dir.path().join("a.jsonl");
        std::fs::write(
            &jsonl,
            "{\"id\": \"x\", \"title\": \"Fridge\", \"text\": \"cold\", \"price\": 9}\n\n{\"title\": \"Oven\"}\n",
        )
        .unwrap();
        let fields = Fields { text: vec!["title".into(), "text".into()], ..Default::default() };
        let records = collect(&jsonl, &fields);
        let first = records[0].as_ref().unwrap();
        assert_eq!((first.id.as_str(), first.text.as_str()), ("x", "Fridge. cold"));
        assert_eq!(first.metadata, serde_json::json!({"title": "Fridge", "text": "cold", "price": 9}));
        assert_eq!(records[1].as_ref().unwrap().id, "3");

        let csv = dir.path().join("b.csv");
        std::fs::write(&csv, "sku,name,price\nA1,\"Red, shoes\",12.5\nA2,Hat\n").unwrap();
        let fields = Fields { text: vec!["name".into()], id: "sku".into(), metadata: None };
        let records = collect(&csv, &fields);
        assert_eq!(records[0].as_ref().unwrap().metadata["price"], serde_json::json!(12.5));
        match &records[1] {
            Err(EngineError::Input { line: 3, .. }) => {}
            other => panic!("expected an error on line 3, got {other:?}"),
        }

        let docs = dir.path().join("docs");
        std::fs::create_dir_all(docs.join("guide")).unwrap();
        std::fs::write(docs.join("guide/install.md"), "intro\n# Installing\nsteps").unwrap();
        std::fs::write(docs.join("image.png"), "not text").unwrap();
        let records = collect(&docs, &Fields::default());
        assert_eq!(records.len(), 1);
        let r = records[0].as_ref().unwrap();
        assert_eq!((r.id.as_str(), r.metadata["title"].as_str()), ("guide/install.md", Some("Installing")));
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = dir.path().join("bad.jsonl");
        std::fs::write(&jsonl, "{\"text\": \"ok\"}\n{broken\n[1]\n{\"name\": \"no text\"}\n").unwrap();
        let records = collect(&jsonl, &Fields::default());
        assert!(records[0].is_ok());
        for (i, line) in [(1, 2), (2, 3), (3, 4)] {
            match &records[i] {
                Err(e @ EngineError::Input { line: l, .. }) if *l == line => {
                    assert!(e.to_string().contains("bad.jsonl"))
                }
                other => panic!("line {line}: {other:?}"),
            }
        }
    }
}

/// One query of a queries file: its text, and the id and filter it may carry.
#[derive(Debug, Clone)]
pub struct QueryLine {
    pub text: String,
    pub id: Option<Value>,
    pub filter: Option<Filter>,
}

/// Reads a queries file, one query a line: a JSON string; a JSON object with `"query"` (or
/// `"text"`, as BEIR's queries.jsonl), an optional `"id"` and an optional `"filter"`; or, on a
/// line that is neither, the line itself. Blank lines are skipped; errors name the file and
/// line.
pub fn read_queries(path: &Path) -> Result<Vec<QueryLine>> {
    let file = File::open(path).map_err(|source| EngineError::Io { op: "open", path: path.to_owned(), source })?;
    parse_queries(BufReader::new(file), path)
}

/// [`read_queries`] of text already open; `path` names it in errors.
pub fn parse_queries(text: impl BufRead, path: &Path) -> Result<Vec<QueryLine>> {
    let mut queries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let err = |reason: String| EngineError::Input { path: path.to_owned(), line: i + 1, reason };
        let line = line.map_err(|e| err(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        queries.push(match serde_json::from_str::<Value>(&line) {
            Ok(Value::String(text)) => QueryLine { text, id: None, filter: None },
            Ok(Value::Object(object)) => {
                let text = object.get("query").or(object.get("text")).and_then(Value::as_str);
                let text = text.ok_or_else(|| err("no \"query\" (or \"text\") string".into()))?.to_owned();
                let filter = object.get("filter").map(Filter::from_json).transpose().map_err(|e| err(e.to_string()))?;
                QueryLine { text, id: object.get("id").cloned(), filter }
            }
            _ => QueryLine { text: line.trim().to_owned(), id: None, filter: None },
        });
    }
    Ok(queries)
}
