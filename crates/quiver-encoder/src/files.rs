//! The files of a model folder, as bytes, so the same loader serves a native folder and a
//! browser's fetched files.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{BertConfig, Prefixes};
use crate::{EncoderError, Result};

/// `quiver.json`, Quiver's own optional file in a model folder: the model's public name and
/// its prefixes (written by `quiver fetch-model`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QuiverModelConfig {
    pub id: Option<String>,
    #[serde(default)]
    pub prefixes: Option<Prefixes>,
}

/// `quiver.json`'s `weights`: which of [`WEIGHTS_FILES`] to load. `quiver quantize` writes it
/// so a browser fetches the GGUF without probing for files.
pub const WEIGHTS_KEY: &str = "weights";

/// Which file the weights came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WeightsFormat {
    /// `model.safetensors`: float tensors (f32, f16 or bf16).
    #[default]
    Safetensors,
    /// `model.gguf`: quantized (the layout is in [`crate::gguf`]).
    Gguf,
}

impl WeightsFormat {
    pub fn file_name(self) -> &'static str {
        match self {
            WeightsFormat::Safetensors => "model.safetensors",
            WeightsFormat::Gguf => "model.gguf",
        }
    }
}

/// A Hugging Face / sentence-transformers model folder's files.
#[derive(Clone, Default)]
pub struct ModelFiles {
    /// A name for the model when `quiver.json` gives none (the folder name natively).
    pub name: String,
    pub config: Vec<u8>,
    pub tokenizer: Vec<u8>,
    /// The bytes of `model.safetensors` or `model.gguf`, as `weights_format` says; shared
    /// with the GGUF tensors read in place.
    pub weights: Arc<Vec<u8>>,
    pub weights_format: WeightsFormat,
    pub modules: Option<Vec<u8>>,
    pub pooling: Option<Vec<u8>>,
    pub sentence_bert: Option<Vec<u8>>,
    pub quiver: Option<Vec<u8>>,
    /// `tokenizer_config.json`: its `model_max_length` is a cross-encoder's token limit.
    pub tokenizer_config: Option<Vec<u8>>,
    /// sha256 (hex) of `weights` and `tokenizer` when the caller already has them (the
    /// browser hashes with WebCrypto, far faster than hashing in wasm); computed if absent.
    pub weights_sha256: Option<String>,
    pub tokenizer_sha256: Option<String>,
}

/// The files a model folder must have, besides one of [`WEIGHTS_FILES`].
pub const REQUIRED_FILES: [&str; 2] = ["config.json", "tokenizer.json"];
/// A folder's weights: a float `model.safetensors` or a quantized `model.gguf`.
/// `quiver.json`'s `weights` names which (`quiver quantize` writes it); without it the first
/// of these that exists is read: a published float folder needs no probe for a GGUF.
pub const WEIGHTS_FILES: [&str; 2] = ["model.safetensors", "model.gguf"];
const NO_WEIGHTS: &str = "model.safetensors or model.gguf";
pub const OPTIONAL_FILES: [&str; 5] =
    ["modules.json", "1_Pooling/config.json", "sentence_bert_config.json", "quiver.json", "tokenizer_config.json"];

/// One round of reading a model folder by relative path ([`ModelFiles::reads`]).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reads {
    /// Files that must exist.
    pub required: Vec<&'static str>,
    /// Files read where they exist.
    pub optional: Vec<&'static str>,
    /// Of these, the first that exists is read; one must.
    pub first_of: Vec<&'static str>,
    /// Of the files above, those whose sha256 identifies the model (the browser hashes them
    /// with WebCrypto, far faster than in wasm).
    pub hashed: Vec<&'static str>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl ModelFiles {
    /// Stores a file under its relative path (as listed in [`REQUIRED_FILES`],
    /// [`WEIGHTS_FILES`] and [`OPTIONAL_FILES`]); other paths are ignored.
    pub fn insert(&mut self, path: &str, bytes: Vec<u8>) {
        match path {
            "config.json" => self.config = bytes,
            "tokenizer.json" => self.tokenizer = bytes,
            "model.gguf" => {
                self.weights = Arc::new(bytes);
                self.weights_format = WeightsFormat::Gguf;
            }
            "model.safetensors" => {
                self.weights = Arc::new(bytes);
                self.weights_format = WeightsFormat::Safetensors;
            }
            "modules.json" => self.modules = Some(bytes),
            "1_Pooling/config.json" => self.pooling = Some(bytes),
            "sentence_bert_config.json" => self.sentence_bert = Some(bytes),
            "quiver.json" => self.quiver = Some(bytes),
            "tokenizer_config.json" => self.tokenizer_config = Some(bytes),
            _ => {}
        }
    }

    /// The bytes stored under a relative path, as [`ModelFiles::insert`] files them.
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        let bytes = match path {
            "config.json" => Some(&self.config),
            "tokenizer.json" => Some(&self.tokenizer),
            p if p == self.weights_format.file_name() => Some(self.weights.as_ref()),
            "modules.json" => self.modules.as_ref(),
            "1_Pooling/config.json" => self.pooling.as_ref(),
            "sentence_bert_config.json" => self.sentence_bert.as_ref(),
            "quiver.json" => self.quiver.as_ref(),
            "tokenizer_config.json" => self.tokenizer_config.as_ref(),
            _ => None,
        };
        bytes.map(Vec::as_slice).filter(|b| !b.is_empty())
    }

    /// Fails on the first required file that was not supplied.
    pub(crate) fn check_required(&self) -> Result<()> {
        for (file, bytes) in
            [("config.json", &self.config), ("tokenizer.json", &self.tokenizer), (NO_WEIGHTS, self.weights.as_ref())]
        {
            if bytes.is_empty() {
                return Err(EncoderError::MissingFile { dir: self.name.clone().into(), file });
            }
        }
        Ok(())
    }

    /// What round `round` of reading a folder file by file reads, given the files of the
    /// earlier rounds: first the configs and the tokenizer, then the weights (the file
    /// `quiver.json` names, else the first of [`WEIGHTS_FILES`] that exists); `None` after.
    /// [`ModelFiles::read_with`] follows it, and so does the browser's worker when it
    /// fetches a folder by URL: a folder loads the same files everywhere.
    pub fn reads(&self, round: usize) -> Result<Option<Reads>> {
        Ok(match round {
            0 => Some(Reads {
                required: REQUIRED_FILES.to_vec(),
                optional: OPTIONAL_FILES.to_vec(),
                first_of: Vec::new(),
                hashed: vec!["tokenizer.json"],
            }),
            1 => {
                let weights = self.named_weights()?.map_or(WEIGHTS_FILES.to_vec(), |named| vec![named]);
                Some(Reads { required: Vec::new(), optional: Vec::new(), first_of: weights.clone(), hashed: weights })
            }
            _ => None,
        })
    }

    /// A model folder read file by file, round by round as [`ModelFiles::reads`] says, through
    /// `read` (`None` where there is no such file); `place` names the folder in errors.
    pub fn read_with(
        name: String,
        place: &Path,
        mut read: impl FnMut(&'static str) -> Result<Option<Vec<u8>>>,
    ) -> Result<Self> {
        let missing = |file| EncoderError::MissingFile { dir: place.to_owned(), file };
        let mut files = ModelFiles { name, ..Default::default() };
        for round in 0.. {
            let Some(reads) = files.reads(round)? else { break };
            for file in reads.required {
                let bytes = read(file)?.ok_or_else(|| missing(file))?;
                files.insert(file, bytes);
            }
            for file in reads.optional {
                if let Some(bytes) = read(file)? {
                    files.insert(file, bytes);
                }
            }
            if reads.first_of.is_empty() {
                continue;
            }
            let mut found = None;
            for &file in &reads.first_of {
                if let Some(bytes) = read(file)? {
                    found = Some((file, bytes));
                    break;
                }
            }
            let absent = if let [only] = reads.first_of[..] { only } else { NO_WEIGHTS };
            let (file, bytes) = found.ok_or_else(|| missing(absent))?;
            files.insert(file, bytes);
        }
        Ok(files)
    }

    /// Reads a model folder.
    pub fn read_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(EncoderError::Io {
                op: "open model folder",
                path: dir.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a folder"),
            });
        }
        let name = dir
            .canonicalize()
            .unwrap_or(dir.to_owned())
            .file_name()
            .map_or_else(|| "model".to_owned(), |n| n.to_string_lossy().into_owned());
        Self::read_with(name, dir, |file| {
            let path = dir.join(file);
            if !path.is_file() {
                return Ok(None);
            }
            std::fs::read(&path).map(Some).map_err(|source| EncoderError::Io { op: "read", path, source })
        })
    }

    /// `config.json`.
    pub fn bert_config(&self) -> Result<BertConfig> {
        BertConfig::from_json(utf8(&self.config, "config.json")?)
    }

    /// `quiver.json`, or the defaults without one.
    pub fn quiver_config(&self) -> Result<QuiverModelConfig> {
        self.quiver.as_deref().map_or(Ok(QuiverModelConfig::default()), quiver_json)
    }

    /// The weights file `quiver.json` names, if it names one.
    fn named_weights(&self) -> Result<Option<&'static str>> {
        #[derive(Deserialize)]
        struct Named {
            weights: Option<String>,
        }
        let Some(named) = self.quiver.as_deref().map(quiver_json::<Named>).transpose()?.and_then(|n| n.weights) else {
            return Ok(None);
        };
        WEIGHTS_FILES.into_iter().find(|&f| f == named).map(Some).ok_or_else(|| EncoderError::InvalidConfig {
            file: "quiver.json",
            reason: format!("{WEIGHTS_KEY} must be one of {WEIGHTS_FILES:?}, not {named:?}"),
        })
    }
}

fn quiver_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| EncoderError::InvalidConfig { file: "quiver.json", reason: e.to_string() })
}

pub(crate) fn utf8<'a>(bytes: &'a [u8], file: &'static str) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| EncoderError::InvalidConfig { file, reason: e.to_string() })
}

pub(crate) fn optional<'a>(bytes: &'a Option<Vec<u8>>, file: &'static str) -> Result<Option<&'a str>> {
    bytes.as_deref().map(|b| utf8(b, file)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder with both weights files reads the safetensors, unless `quiver.json` names the
    /// GGUF; a named file that is absent is missing, with its name.
    #[test]
    fn the_weights_read_are_the_named_file_else_the_first_that_exists() {
        let dir = tempfile::tempdir().unwrap();
        for (file, bytes) in
            [("config.json", "{}"), ("tokenizer.json", "{}"), ("model.safetensors", "f"), ("model.gguf", "g")]
        {
            std::fs::write(dir.path().join(file), bytes).unwrap();
        }
        let read = || ModelFiles::read_dir(dir.path());
        let files = read().unwrap();
        assert_eq!((files.weights_format, files.weights.as_slice()), (WeightsFormat::Safetensors, &b"f"[..]));
        std::fs::write(dir.path().join("quiver.json"), r#"{"weights": "model.gguf"}"#).unwrap();
        assert_eq!(read().unwrap().weights_format, WeightsFormat::Gguf);
        std::fs::remove_file(dir.path().join("model.gguf")).unwrap();
        assert!(matches!(read(), Err(EncoderError::MissingFile { file: "model.gguf", .. })));
        std::fs::write(dir.path().join("quiver.json"), r#"{"weights": "weights.bin"}"#).unwrap();
        assert!(matches!(read(), Err(EncoderError::InvalidConfig { file: "quiver.json", .. })));
        std::fs::remove_file(dir.path().join("quiver.json")).unwrap();
        std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
        assert!(matches!(read(), Err(EncoderError::MissingFile { file: NO_WEIGHTS, .. })));
        // Two rounds, then nothing.
        let files = ModelFiles::default();
        assert_eq!(files.reads(1).unwrap().unwrap().first_of, WEIGHTS_FILES);
        assert!(files.reads(2).unwrap().is_none());
    }
}
