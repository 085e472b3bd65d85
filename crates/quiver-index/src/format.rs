//! The index file: one self-describing, versioned, checksummed file.
//!
//! ```text
//! preamble   magic "QVRINDEX" | format version u32 | header length u32 | file length u64
//! header     JSON: config, model, counts, thresholds, section table (name, offset, bytes)
//! sections   64-byte aligned arrays: vectors f32, codes i8, scales f32, bits u64,
//!            id offsets u64 + id bytes, metadata offsets u64 + metadata JSON bytes,
//!            [version 2, with `config.keyword`] the keyword index:
//!              keyword_term_offsets u64 × (terms + 1) + keyword_term_bytes (UTF-8 terms,
//!              sorted and distinct), keyword_posting_offsets u64 × (terms + 1) (each term's
//!              first posting), keyword_postings (row u32, term frequency u32) × postings,
//!              sorted by row within a term; document lengths are the sums of their counts
//! footer     format version u32 | crc32 of everything before the footer u32 | magic "QVRINDEX"
//! ```
//! All integers are little-endian. Loading checks length, magic, version and checksum
//! before it trusts a single offset, so a cut or corrupted file is a typed error; then the
//! content the checksum cannot vouch for (`check_content`): a wrong or dishonest writer's
//! file is refused naming the section and row.
//!
//! Version 2 added the keyword index (`config.keyword` and the header's `keyword` counts);
//! a version-1 file reads as an index without one.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::flat::{FlatIndex, IndexConfig, Metric, ModelInfo};
use crate::keyword::{Bm25Index, Posting};
use crate::quantize::words_per_code;
use crate::section::{Backing, Section};
use crate::{IndexError, Result};

pub const MAGIC: &[u8; 8] = b"QVRINDEX";
/// The version this build writes; it reads every version up to this one.
pub const FORMAT_VERSION: u32 = 2;
const PREAMBLE: usize = 24;
const FOOTER: usize = 16;
const ALIGN: usize = 64;

#[derive(Serialize, Deserialize)]
struct Header {
    tool_version: String,
    created_unix: u64,
    config: IndexConfig,
    model: Option<ModelInfo>,
    count: usize,
    trained_on: usize,
    thresholds: Vec<f32>,
    sections: Vec<SectionEntry>,
    /// Present exactly when `config.keyword` is set.
    #[serde(default)]
    keyword: Option<KeywordCounts>,
}

/// Sizes of the keyword sections, so each can be checked before it is read.
#[derive(Serialize, Deserialize)]
struct KeywordCounts {
    terms: usize,
    postings: usize,
}

#[derive(Serialize, Deserialize, Clone)]
struct SectionEntry {
    name: String,
    offset: usize,
    bytes: usize,
}

/// Summary of an index file, for `quiver info`.
#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    pub format_version: u32,
    pub tool_version: String,
    pub created_unix: u64,
    pub config: IndexConfig,
    pub model: Option<ModelInfo>,
    pub count: usize,
    pub file_bytes: usize,
    pub sections: Vec<(String, usize)>,
    /// The keyword index's number of distinct terms; `None` when the file has none.
    pub keyword_terms: Option<usize>,
}

fn offsets_and_bytes<'a>(items: impl Iterator<Item = &'a [u8]>) -> (Vec<u64>, Vec<u8>) {
    let mut offsets = vec![0u64];
    let mut bytes = Vec::new();
    for item in items {
        bytes.extend_from_slice(item);
        offsets.push(bytes.len() as u64);
    }
    (offsets, bytes)
}

struct CrcWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
    written: usize,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.written += n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl FlatIndex {
    /// Sets the creation time recorded in the file (seconds since the Unix epoch); the
    /// caller supplies it because `wasm32-unknown-unknown` has no clock.
    pub fn set_created_unix(&mut self, seconds: u64) {
        self.created_unix = seconds;
    }

    /// Writes the whole file to `out`.
    pub fn write_to<W: Write>(&self, out: W) -> std::io::Result<()> {
        let metadata_json: Vec<Vec<u8>> = self
            .metadata
            .iter()
            .map(|m| if m.is_null() { Vec::new() } else { serde_json::to_vec(m).expect("JSON values serialise") })
            .collect();
        let (id_offsets, id_bytes) = offsets_and_bytes(self.ids.iter().map(|s| s.as_bytes()));
        let (meta_offsets, meta_bytes) = offsets_and_bytes(metadata_json.iter().map(Vec::as_slice));
        let keyword = self.keyword.as_ref().map(Bm25Index::to_sections);
        let mut arrays: Vec<(&str, &[u8])> = vec![
            ("vectors", bytemuck::cast_slice(self.vectors.as_slice())),
            ("codes", bytemuck::cast_slice(self.codes.as_slice())),
            ("scales", bytemuck::cast_slice(self.scales.as_slice())),
            ("bits", bytemuck::cast_slice(self.bits.as_slice())),
            ("id_offsets", bytemuck::cast_slice(&id_offsets)),
            ("id_bytes", &id_bytes),
            ("metadata_offsets", bytemuck::cast_slice(&meta_offsets)),
            ("metadata_bytes", &meta_bytes),
        ];
        if let Some(keyword) = &keyword {
            arrays.extend([
                ("keyword_term_offsets", bytemuck::cast_slice(&keyword.term_offsets)),
                ("keyword_term_bytes", &keyword.term_bytes),
                ("keyword_posting_offsets", bytemuck::cast_slice(&keyword.posting_offsets)),
                ("keyword_postings", bytemuck::cast_slice(&keyword.postings)),
            ]);
        }
        // The header's size depends on the offsets it lists: lay out with a generous
        // placeholder size, then fix the header length and pad it to that size.
        let mut header = Header {
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_unix: self.created_unix,
            config: self.config,
            model: self.model.clone(),
            count: self.len(),
            trained_on: self.trained_on,
            thresholds: self.thresholds.clone(),
            sections: Vec::new(),
            keyword: keyword
                .as_ref()
                .map(|k| KeywordCounts { terms: k.term_offsets.len() - 1, postings: k.postings.len() }),
        };
        let layout = |header_space: usize, header: &mut Header| {
            let mut at = (PREAMBLE + header_space).next_multiple_of(ALIGN);
            header.sections = arrays
                .iter()
                .map(|(name, bytes)| {
                    let entry = SectionEntry { name: name.to_string(), offset: at, bytes: bytes.len() };
                    at = (at + bytes.len()).next_multiple_of(ALIGN);
                    entry
                })
                .collect();
            at
        };
        let mut header_space = 1024;
        let mut json;
        loop {
            layout(header_space, &mut header);
            json = serde_json::to_vec(&header).expect("header serialises");
            if json.len() <= header_space {
                break;
            }
            header_space = json.len().next_multiple_of(1024);
        }
        let body_end = layout(header_space, &mut header);
        json = serde_json::to_vec(&header).expect("header serialises");
        json.resize(header_space, b' ');
        let file_len = body_end + FOOTER;

        let mut w = CrcWriter { inner: out, crc: crc32fast::Hasher::new(), written: 0 };
        w.write_all(MAGIC)?;
        w.write_all(&FORMAT_VERSION.to_le_bytes())?;
        w.write_all(&(header_space as u32).to_le_bytes())?;
        w.write_all(&(file_len as u64).to_le_bytes())?;
        w.write_all(&json)?;
        for ((_, bytes), entry) in arrays.iter().zip(&header.sections) {
            w.write_all(&vec![0u8; entry.offset - w.written])?;
            w.write_all(bytes)?;
        }
        w.write_all(&vec![0u8; body_end - w.written])?;
        let crc = w.crc.clone().finalize();
        let mut out = w.inner;
        out.write_all(&FORMAT_VERSION.to_le_bytes())?;
        out.write_all(&crc.to_le_bytes())?;
        out.write_all(MAGIC)?;
        out.flush()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.write_to(&mut bytes).expect("writing to memory cannot fail");
        bytes
    }

    /// Loads an index from the bytes of a file (what the browser does).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::from_backing(Arc::new(bytes))
    }

    /// Loads an index over bytes it keeps: the large arrays are views, not copies.
    pub fn from_backing(backing: Backing) -> Result<Self> {
        let header = check(backing.as_ref().as_ref())?;
        build(header, &backing)
    }

    /// Reads the file's header only, after the same checks as loading.
    pub fn inspect(bytes: &[u8]) -> Result<FileInfo> {
        let header = check(bytes)?;
        Ok(FileInfo {
            format_version: u32::from_le_bytes(bytes[8..12].try_into().unwrap()),
            tool_version: header.tool_version,
            created_unix: header.created_unix,
            config: header.config,
            model: header.model,
            count: header.count,
            file_bytes: bytes.len(),
            sections: header.sections.into_iter().map(|s| (s.name, s.bytes)).collect(),
            keyword_terms: header.keyword.map(|k| k.terms),
        })
    }

    /// Memory-maps an index file (reads it into memory on targets without mmap).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_backing(map_file(path)?)
    }

    /// Writes the index to `path` atomically: a temporary file in the same folder, synced,
    /// then renamed over the old one, so a failed write leaves the previous file intact.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = path.file_name().ok_or_else(|| IndexError::InvalidArgument {
            op: "save",
            what: format!("{} is not a file path", path.display()),
        })?;
        let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
        let result = (|| {
            let file = std::fs::File::create(&tmp).map_err(IndexError::io("create", &tmp))?;
            let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
            self.write_to(&mut writer).map_err(IndexError::io("write", &tmp))?;
            let file = writer.into_inner().map_err(|e| IndexError::io("write", &tmp)(e.into_error()))?;
            file.sync_all().map_err(IndexError::io("sync", &tmp))?;
            std::fs::rename(&tmp, path).map_err(IndexError::io("rename onto", path))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn map_file(path: &Path) -> Result<Backing> {
    let file = std::fs::File::open(path).map_err(IndexError::io("open", path))?;
    // SAFETY: the file is only read. Quiver replaces index files by rename, never in place,
    // so a mapped file does not change under the map.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(IndexError::io("map", path))?;
    Ok(Arc::new(map))
}

#[cfg(target_arch = "wasm32")]
fn map_file(path: &Path) -> Result<Backing> {
    Ok(Arc::new(std::fs::read(path).map_err(IndexError::io("read", path))?))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// Validates the envelope and returns the parsed header.
fn check(bytes: &[u8]) -> Result<Header> {
    let len = bytes.len();
    if len < 8 || &bytes[..8] != MAGIC {
        let found = &bytes[..len.min(8)];
        return Err(IndexError::BadMagic {
            expected: String::from_utf8_lossy(MAGIC).into(),
            actual: String::from_utf8_lossy(found).into(),
        });
    }
    if len < PREAMBLE + FOOTER {
        return Err(IndexError::Truncated { expected: (PREAMBLE + FOOTER) as u64, actual: len as u64 });
    }
    let version = u32_at(bytes, 8);
    if version == 0 || version > FORMAT_VERSION {
        return Err(IndexError::UnsupportedVersion { supported: FORMAT_VERSION, actual: version });
    }
    let header_len = u32_at(bytes, 12) as usize;
    let file_len = u64::from_le_bytes(bytes[16..24].try_into().unwrap());
    if (len as u64) < file_len {
        return Err(IndexError::Truncated { expected: file_len, actual: len as u64 });
    }
    if len as u64 != file_len {
        return Err(IndexError::Corrupt(format!("file is {len} bytes, its preamble says {file_len}")));
    }
    let footer = &bytes[len - FOOTER..];
    if &footer[8..] != MAGIC || u32_at(footer, 0) != version {
        return Err(IndexError::Corrupt("footer magic or version does not match the preamble".into()));
    }
    let expected = u32_at(footer, 4);
    let actual = crc32fast::hash(&bytes[..len - FOOTER]);
    if expected != actual {
        return Err(IndexError::ChecksumMismatch { expected, actual });
    }
    let header_bytes = bytes
        .get(PREAMBLE..PREAMBLE + header_len)
        .ok_or_else(|| IndexError::Corrupt("header runs past the end of the file".into()))?;
    serde_json::from_slice(header_bytes).map_err(|e| IndexError::Corrupt(format!("header: {e}")))
}

fn build(header: Header, backing: &Backing) -> Result<FlatIndex> {
    let bytes: &[u8] = backing.as_ref().as_ref();
    let config = header.config;
    let (n, dim) = (header.count, config.dim);
    let corrupt = |what: String| IndexError::Corrupt(what);
    if dim == 0 || header.thresholds.len() != dim {
        return Err(corrupt(format!("dimension {dim} with {} thresholds", header.thresholds.len())));
    }
    let body_end = bytes.len() - FOOTER;
    let section = |name: &str, elem: usize, count: usize| -> Result<&SectionEntry> {
        let entry = header
            .sections
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| corrupt(format!("section {name} is missing")))?;
        let expected = count.checked_mul(elem).ok_or_else(|| corrupt(format!("section {name}: size overflows")))?;
        // The writer aligns every section: one that is not was moved by an edit.
        if !entry.offset.is_multiple_of(ALIGN) {
            return Err(corrupt(format!("section {name}: offset {} is not {ALIGN}-byte aligned", entry.offset)));
        }
        if entry.bytes != expected || entry.offset.checked_add(entry.bytes).is_none_or(|end| end > body_end) {
            return Err(corrupt(format!(
                "section {name}: {} bytes at {}, expected {expected}",
                entry.bytes, entry.offset
            )));
        }
        Ok(entry)
    };
    let words = words_per_code(dim);
    let nd = n.checked_mul(dim).ok_or_else(|| corrupt("count overflows".into()))?;
    let vectors = section("vectors", 4, nd)?;
    let codes = section("codes", 1, nd)?;
    let scales = section("scales", 4, n)?;
    let bits = section("bits", 8, n * words)?;
    let id_offsets = section("id_offsets", 8, n + 1)?;
    let meta_offsets = section("metadata_offsets", 8, n + 1)?;
    let strings = |offsets: &SectionEntry, name: &str| -> Result<Vec<&[u8]>> {
        let table: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes[offsets.offset..offsets.offset + offsets.bytes]);
        // Checked, not cast: on wasm32 `2^63 as usize` is 0, which read as an empty string.
        let table = table
            .iter()
            .map(|&o| usize::try_from(o))
            .collect::<std::result::Result<Vec<usize>, _>>()
            .map_err(|_| corrupt(format!("section {}: an offset exceeds the address space", offsets.name)))?;
        if table[0] != 0 {
            return Err(corrupt(format!("section {}: the first offset is {}, not 0", offsets.name, table[0])));
        }
        let data_len = *table.last().unwrap();
        let data = section(name, 1, data_len)?;
        let data = &bytes[data.offset..data.offset + data.bytes];
        table
            .windows(2)
            .enumerate()
            .map(|(row, w)| {
                let (a, b) = (w[0], w[1]);
                data.get(a..b).filter(|_| a <= b).ok_or_else(|| {
                    let within = data.len();
                    corrupt(format!(
                        "section {}: row {row} has offsets {a}..{b}, not within {name}'s {within} bytes",
                        offsets.name
                    ))
                })
            })
            .collect()
    };
    let keyword = match (config.keyword, &header.keyword) {
        (false, None) => None,
        (true, Some(counts)) => {
            let term_offsets = section("keyword_term_offsets", 8, counts.terms.saturating_add(1))?;
            let terms = strings(term_offsets, "keyword_term_bytes")?
                .into_iter()
                .map(|b| String::from_utf8(b.to_vec()).map_err(|_| corrupt("a keyword term is not UTF-8".into())))
                .collect::<Result<Vec<_>>>()?;
            let posting_offsets = section("keyword_posting_offsets", 8, counts.terms.saturating_add(1))?;
            let postings = section("keyword_postings", size_of::<Posting>(), counts.postings)?;
            let posting_offsets: Vec<u64> = bytemuck::pod_collect_to_vec(
                &bytes[posting_offsets.offset..posting_offsets.offset + posting_offsets.bytes],
            );
            let postings: Vec<Posting> =
                bytemuck::pod_collect_to_vec(&bytes[postings.offset..postings.offset + postings.bytes]);
            Some(Bm25Index::from_sections(n, terms, &posting_offsets, &postings)?)
        }
        _ => return Err(corrupt("the keyword flag and the keyword sections disagree".into())),
    };
    let ids = strings(id_offsets, "id_bytes")?
        .into_iter()
        .map(|b| String::from_utf8(b.to_vec()).map_err(|_| corrupt("an id is not UTF-8".into())))
        .collect::<Result<Vec<_>>>()?;
    let metadata = strings(meta_offsets, "metadata_bytes")?
        .into_iter()
        .map(|b| {
            if b.is_empty() {
                Ok(Value::Null)
            } else {
                serde_json::from_slice(b).map_err(|e| corrupt(format!("metadata: {e}")))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let mut row_of = std::collections::HashMap::with_capacity(n);
    for (row, id) in ids.iter().enumerate() {
        if row_of.insert(id.clone(), row).is_some() {
            return Err(corrupt(format!("id {id:?} appears twice")));
        }
    }
    let vectors = Section::<f32>::borrow(backing, vectors.offset, nd);
    let scales = Section::<f32>::borrow(backing, scales.offset, n);
    let bits = Section::<u64>::borrow(backing, bits.offset, n * words);
    check_content(&config, &header.thresholds, vectors.as_slice(), scales.as_slice(), bits.as_slice())?;
    let sq_norms = if config.metric == Metric::L2 {
        vectors.as_slice().chunks_exact(dim).map(|v| v.iter().map(|x| x * x).sum()).collect()
    } else {
        Vec::new()
    };
    Ok(FlatIndex {
        config,
        model: header.model,
        created_unix: header.created_unix,
        vectors,
        codes: Section::borrow(backing, codes.offset, nd),
        scales,
        bits,
        thresholds: header.thresholds,
        trained_on: header.trained_on,
        ids,
        metadata,
        row_of,
        sq_norms,
        keyword,
    })
}

/// What a checksum cannot vouch for: the content of a file whose writer was wrong or
/// dishonest. Every value a search reads must be finite; under the cosine metric the
/// vectors are unit vectors (or zero); int8 scales are not negative; and binary codes have
/// no bits past the dimension. Errors name the section and the row.
fn check_content(
    config: &IndexConfig,
    thresholds: &[f32],
    vectors: &[f32],
    scales: &[f32],
    bits: &[u64],
) -> Result<()> {
    let corrupt = |what: String| Err(IndexError::Corrupt(what));
    let dim = config.dim;
    if let Some(d) = thresholds.iter().position(|t| !t.is_finite()) {
        return corrupt(format!("header: binary threshold {d} is {}", thresholds[d]));
    }
    for (row, v) in vectors.chunks_exact(dim).enumerate() {
        let squares = sum_squares(v);
        if !squares.is_finite() {
            return match v.iter().find(|x| !x.is_finite()) {
                Some(bad) => corrupt(format!("section vectors: row {row} holds {bad}")),
                None => corrupt(format!("section vectors: row {row}'s squares overflow")),
            };
        }
        if config.metric == Metric::Cosine && squares != 0.0 && (squares - 1.0).abs() > 1e-3 {
            return corrupt(format!(
                "section vectors: row {row} has norm {}, not 1 (cosine stores unit vectors)",
                squares.sqrt()
            ));
        }
    }
    if let Some(row) = scales.iter().position(|s| !(s.is_finite() && *s >= 0.0)) {
        return corrupt(format!("section scales: row {row} is {}", scales[row]));
    }
    let words = words_per_code(dim);
    if !dim.is_multiple_of(64) {
        let past = !0u64 << (dim % 64);
        if let Some(row) = bits.chunks_exact(words).position(|code| code[words - 1] & past != 0) {
            return corrupt(format!("section bits: row {row} has bits past dimension {dim}"));
        }
    }
    Ok(())
}

/// `Σ x²` in eight lanes, a shape the compiler vectorises: a million rows check in a fraction of the load.
fn sum_squares(v: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut chunks = v.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, x) in lanes.iter_mut().zip(chunk) {
            *lane += x * x;
        }
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().map(|x| x * x).sum::<f32>()
}
