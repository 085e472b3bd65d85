//! The engine-neutral conformance suite (`tests/conformance/`, described in its README)
//! through the `quiver` binary; the browser tests run the same cases in the page.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_owned()
}

fn quiver(args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_quiver")).args(args).current_dir(root()).output().unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The browser package's search options as `quiver search` flags.
fn flags(options: &Map<String, Value>) -> Vec<String> {
    let mut flags = Vec::new();
    for (name, value) in options {
        let flag = match name.as_str() {
            "k" => "--k",
            "strategy" => "--strategy",
            "oversample" => "--oversample",
            "rescore" => "--rescore",
            "filter" => "--filter",
            "mode" => "--mode",
            "fusion" => "--fusion",
            "rrfK" => "--rrf-k",
            "vectorWeight" => "--vector-weight",
            "fusionCandidates" => "--fusion-candidates",
            // A misspelt option: an unknown flag, which clap refuses as the page refuses it.
            other => {
                flags.extend([format!("--{other}"), value.to_string()]);
                continue;
            }
        };
        let value = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        flags.extend([flag.to_owned(), value]);
    }
    flags
}

/// The ids found, or the error's code: the one in `error: … (E_…)`, or a usage error's
/// (clap refuses a value the library's parser refuses).
fn answer(out: &std::process::Output) -> Result<Vec<String>, String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {
            let json: Value = serde_json::from_slice(&out.stdout).unwrap();
            Ok(json["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect())
        }
        Some(2) => Err("E_INVALID_ARGUMENT".into()),
        _ => Err(stderr
            .rsplit_once("(E_")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map_or_else(|| format!("no code in {stderr}"), |(code, _)| format!("E_{code}"))),
    }
}

#[test]
fn every_case_answers_as_expected() {
    let suite = root().join("tests/conformance");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&suite)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "cases in {}: {files:?}", suite.display());
    let work = tempfile::tempdir().unwrap();
    let (mut failures, mut searches) = (Vec::new(), 0);
    for file in &files {
        let case = read_json(file);
        let name = file.file_name().unwrap().to_string_lossy();
        let model = root().join("models").join(case["model"].as_str().unwrap());
        let model = model.to_string_lossy().into_owned();
        let documents = read_json(&suite.join("documents").join(case["documents"].as_str().unwrap()));
        let lines: Vec<String> = documents
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let mut record = d["metadata"].as_object().cloned().unwrap_or_default();
                record.insert("id".into(), d["id"].clone());
                record.insert("text".into(), d["text"].clone());
                Value::Object(record).to_string()
            })
            .collect();
        let input = work.path().join(format!("{name}.jsonl"));
        std::fs::write(&input, lines.join("\n")).unwrap();
        let index = work.path().join(format!("{name}.qvr")).to_string_lossy().into_owned();
        let built = quiver(
            &["index", "--model", &model, "--input", &input.to_string_lossy(), "--output", &index, "--backend", "cpu"]
                .map(str::to_owned),
        );
        assert!(built.status.success(), "{name}: {}", String::from_utf8_lossy(&built.stderr));
        for search in case["searches"].as_array().unwrap() {
            let query = search["query"].as_str().unwrap();
            let options = search["options"].as_object().cloned().unwrap_or_default();
            let mut args = ["search", "--index", &index, "--model", &model, "--backend", "cpu", "--json"]
                .map(str::to_owned)
                .to_vec();
            args.extend(flags(&options));
            args.extend(["--".to_owned(), query.to_owned()]);
            let expected = match search.get("error") {
                Some(code) => Err(code.as_str().unwrap().to_owned()),
                None => Ok(serde_json::from_value::<Vec<String>>(search["ids"].clone()).unwrap()),
            };
            let got = answer(&quiver(&args));
            if got != expected {
                failures.push(format!("{name}: {query:?} {options:?}: expected {expected:?}, got {got:?}"));
            }
            searches += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {searches} searches answered otherwise:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
