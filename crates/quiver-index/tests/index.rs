//! The index and its file: search semantics, updates, bad input, and files that are cut,
//! corrupted, from the future or from an older build.

mod common;

use quiver_index::format::FORMAT_VERSION;
use quiver_index::{
    Document, FileInfo, Filter, FlatIndex, IndexConfig, IndexError, Metric, ModelInfo, Rescore, SearchOptions,
    Strategy, ThresholdKind,
};
use rand::{Rng, SeedableRng};
use serde_json::json;

fn random_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

fn build(n: usize, dim: usize, metric: Metric) -> (FlatIndex, Vec<f32>) {
    let vectors = random_vectors(n, dim, 1);
    let mut index =
        FlatIndex::new(IndexConfig { dim, metric, threshold: ThresholdKind::Mean, keyword: false }).unwrap();
    let docs: Vec<Document> = vectors
        .chunks(dim)
        .enumerate()
        .map(|(i, v)| Document {
            id: format!("doc-{i}"),
            vector: v,
            metadata: json!({"category": if i % 3 == 0 { "shoes" } else { "hats" }, "price": i as f64}),
            text: None,
        })
        .collect();
    index.upsert(&docs).unwrap();
    index.retrain_thresholds();
    (index, vectors)
}

fn brute_force(vectors: &[f32], dim: usize, query: &[f32], k: usize, metric: Metric) -> Vec<usize> {
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let mut scored: Vec<(f32, usize)> = vectors
        .chunks(dim)
        .enumerate()
        .map(|(i, v)| {
            let dot: f32 = v.iter().zip(query).map(|(a, b)| a * b).sum();
            let score = match metric {
                Metric::Cosine => dot / (norm(v) * norm(query)),
                Metric::Dot => dot,
                Metric::L2 => -v.iter().zip(query).map(|(a, b)| (a - b) * (a - b)).sum::<f32>(),
            };
            (score, i)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|(_, i)| i).collect()
}

#[test]
fn exact_search_is_brute_force_for_every_metric() {
    for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
        let (index, vectors) = build(3000, 48, metric);
        let query = random_vectors(1, 48, 99);
        let hits = index.search(&query, &SearchOptions { k: 15, ..Default::default() }).unwrap();
        let rows: Vec<usize> = hits.iter().map(|h| h.row).collect();
        assert_eq!(rows, brute_force(&vectors, 48, &query, 15, metric), "{metric:?}");
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    }
}

#[test]
fn quantized_strategies_find_most_of_the_exact_top() {
    let (index, _) = build(5000, 128, Metric::Cosine);
    let query = random_vectors(1, 128, 5);
    let exact: Vec<usize> =
        index.search(&query, &SearchOptions { k: 10, ..Default::default() }).unwrap().iter().map(|h| h.row).collect();
    // Uniform random vectors have no structure for the sign bits to keep, so this bar is
    // low; tests/tests/recall.rs holds binary search to 0.99 on real embeddings.
    for (strategy, rescore, at_least) in [
        (Strategy::Int8, Rescore::F32, 9),
        (Strategy::BinaryRescore, Rescore::F32, 6),
        (Strategy::BinaryRescore, Rescore::Int8, 6),
    ] {
        let options = SearchOptions { k: 10, strategy, rescore, oversample: 20, ..Default::default() };
        let found = index.search(&query, &options).unwrap();
        let overlap = found.iter().filter(|h| exact.contains(&h.row)).count();
        assert!(overlap >= at_least, "{strategy:?}/{rescore:?}: {overlap} of 10");
    }
}

#[test]
fn filters_apply_during_the_scan() {
    let (index, _) = build(1000, 16, Metric::Cosine);
    let query = random_vectors(1, 16, 3);
    for strategy in [Strategy::Exact, Strategy::Int8, Strategy::Binary, Strategy::BinaryRescore] {
        let filter = Filter::parse(&["category=shoes", "price<300"]).unwrap();
        let options = SearchOptions { k: 500, strategy, filter: Some(filter), ..Default::default() };
        let hits = index.search(&query, &options).unwrap();
        // Exactly the rows 0, 3, …, 297 pass: all of them come back when k is large enough.
        assert_eq!(hits.len(), 100, "{strategy:?}");
        assert!(hits.iter().all(|h| h.row % 3 == 0 && h.row < 300));
    }
}

#[test]
fn upsert_replace_remove_and_bad_input() {
    let (mut index, _) = build(100, 8, Metric::Cosine);
    let v = [1.0f32; 8];
    index.upsert(&[Document { id: "doc-5".into(), vector: &v, metadata: json!({"new": true}), text: None }]).unwrap();
    assert_eq!(index.len(), 100);
    let row = index.row_of("doc-5").unwrap();
    assert_eq!(index.metadata(row)["new"], json!(true));
    let hits = index.search(&v, &SearchOptions { k: 1, ..Default::default() }).unwrap();
    assert_eq!(index.id(hits[0].row), "doc-5");

    index.remove(&["doc-0", "doc-99"]).unwrap();
    assert_eq!(index.len(), 98);
    assert!(index.row_of("doc-0").is_none() && index.row_of("doc-99").is_none());
    for (i, id) in index.ids().iter().enumerate() {
        assert_eq!(index.row_of(id), Some(i));
    }
    assert!(matches!(index.remove(&["doc-1", "nope"]), Err(IndexError::UnknownId(id)) if id == "nope"));
    assert!(index.row_of("doc-1").is_some(), "a failed remove deletes nothing");

    let before = index.len();
    let nan = [f32::NAN; 8];
    let short = [0.5f32; 7];
    let bad = [
        (Document { id: "ok".into(), vector: &v, metadata: json!(null), text: None }, "first is fine"),
        (Document { id: "x".into(), vector: &nan, metadata: json!(null), text: None }, "NaN"),
    ];
    let docs: Vec<Document> = bad.iter().map(|(d, _)| d.clone()).collect();
    assert!(matches!(index.upsert(&docs), Err(IndexError::NonFinite { .. })));
    assert_eq!(index.len(), before, "a rejected batch inserts nothing");
    assert!(matches!(
        index.upsert(&[Document { id: "s".into(), vector: &short, metadata: json!(null), text: None }]),
        Err(IndexError::DimensionMismatch { expected: 8, actual: 7, .. })
    ));
    let dup = [
        Document { id: "same".into(), vector: &v, metadata: json!(null), text: None },
        Document { id: "same".into(), vector: &v, metadata: json!(null), text: None },
    ];
    assert!(matches!(index.upsert(&dup), Err(IndexError::DuplicateId { .. })));
    assert!(matches!(
        index.search(&short, &SearchOptions::default()),
        Err(IndexError::DimensionMismatch { op: "search", .. })
    ));
    assert!(matches!(index.search(&nan, &SearchOptions::default()), Err(IndexError::NonFinite { .. })));
    assert!(index.search(&v, &SearchOptions { k: 0, ..Default::default() }).unwrap().is_empty());
    assert!(FlatIndex::new(IndexConfig::new(0)).is_err());
}

#[test]
fn thresholds_are_relearned_as_the_index_grows() {
    let mut index = FlatIndex::new(IndexConfig::new(4)).unwrap();
    // Every vector is positive in every dimension: sign bits would all be 1.
    let vectors: Vec<[f32; 4]> =
        (0..64).map(|i| [1.0 + i as f32, 2.0, 3.0 + (i % 5) as f32, 4.0 - (i % 3) as f32]).collect();
    for (i, v) in vectors.iter().enumerate() {
        index.upsert(&[Document { id: i.to_string(), vector: v, metadata: json!(null), text: None }]).unwrap();
    }
    assert!(index.thresholds().iter().all(|t| *t > 0.0), "{:?}", index.thresholds());
}

fn model() -> ModelInfo {
    ModelInfo { id: "test/model".into(), weights_sha256: "ab".repeat(32), pooling: "mean".into(), ..Default::default() }
}

#[test]
fn file_round_trip_from_bytes_and_map() {
    let (index, _) = build(777, 24, Metric::L2);
    let mut index = index.with_model(model());
    index.set_created_unix(1_790_000_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalogue.qvr");
    index.save(&path).unwrap();
    let query = random_vectors(1, 24, 8);
    let options = SearchOptions { k: 7, strategy: Strategy::BinaryRescore, ..Default::default() };
    let expected = index.search(&query, &options).unwrap();
    let mapped = FlatIndex::open(&path).unwrap();
    let read = FlatIndex::from_bytes(std::fs::read(&path).unwrap()).unwrap();
    for loaded in [&mapped, &read] {
        assert_eq!(loaded.len(), 777);
        assert_eq!(loaded.model(), Some(&model()));
        assert_eq!(loaded.ids(), index.ids());
        assert_eq!(loaded.metadata(10), index.metadata(10));
        assert_eq!(loaded.thresholds(), index.thresholds());
        assert_eq!(loaded.search(&query, &options).unwrap(), expected);
    }
    let info: FileInfo = FlatIndex::inspect(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!((info.count, info.created_unix, info.config.dim), (777, 1_790_000_000, 24));

    // A mapped index can be changed (copy on write) and saved over its own file.
    let mut changed = mapped;
    changed.remove(&["doc-3"]).unwrap();
    changed.save(&path).unwrap();
    assert_eq!(FlatIndex::open(&path).unwrap().len(), 776);
}

#[test]
fn unaligned_bytes_load_by_copying() {
    let (index, _) = build(50, 8, Metric::Cosine);
    let bytes = index.to_bytes();
    // Shift the file by one byte inside a larger buffer so no section is aligned.
    let mut shifted = vec![0u8; bytes.len() + 1];
    shifted[1..].copy_from_slice(&bytes);
    struct Offset(Vec<u8>);
    impl AsRef<[u8]> for Offset {
        fn as_ref(&self) -> &[u8] {
            &self.0[1..]
        }
    }
    let loaded = FlatIndex::from_backing(std::sync::Arc::new(Offset(shifted))).unwrap();
    assert_eq!(loaded.vectors(), index.vectors());
}

#[test]
fn every_cut_and_every_flipped_byte_is_a_typed_error() {
    let (index, _) = build(20, 8, Metric::Cosine);
    let bytes = index.with_model(model()).to_bytes();
    common::every_cut_and_flip_is_an_error(&bytes);
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(FlatIndex::from_bytes(longer), Err(IndexError::Corrupt(_))));
}

#[test]
fn newer_versions_are_refused() {
    let (index, _) = build(5, 8, Metric::Cosine);
    let mut bytes = index.to_bytes();
    let next = FORMAT_VERSION + 1;
    bytes[8..12].copy_from_slice(&next.to_le_bytes());
    assert!(matches!(
        FlatIndex::from_bytes(bytes),
        Err(IndexError::UnsupportedVersion { supported: FORMAT_VERSION, actual }) if actual == next
    ));
    assert!(matches!(FlatIndex::from_bytes(b"PK\x03\x04 a zip file".to_vec()), Err(IndexError::BadMagic { .. })));
}

#[test]
fn failed_save_keeps_the_previous_file() {
    let (index, _) = build(10, 8, Metric::Cosine);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keep.qvr");
    index.save(&path).unwrap();
    let before = std::fs::read(&path).unwrap();
    // A folder where the file should go makes the final rename fail.
    let blocked = dir.path().join("blocked.qvr");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("x"), b"x").unwrap();
    assert!(index.save(&blocked).is_err());
    assert!(index.save(dir.path().join("missing-folder/x.qvr")).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).collect();
    assert_eq!(leftovers.len(), 2, "no temporary files are left behind");
}

/// A version-1 file written by quiver 0.1.0, committed so that later builds keep reading it.
#[test]
fn format_v1_fixture_still_loads() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/format-v1.qvr");
    if std::env::var_os("QUIVER_WRITE_FIXTURE_V1").is_some() {
        let (fresh, _) = build(12, 8, Metric::Cosine);
        fresh.with_model(model()).save(path).unwrap();
    }
    let index = FlatIndex::open(path).unwrap();
    assert_eq!(index.len(), 12);
    assert_eq!(index.dim(), 8);
    assert_eq!(index.id(0), "doc-0");
    assert_eq!(index.metadata(3)["category"], json!("shoes"));
    assert_eq!(index.model().unwrap().id, "test/model");
    let hits = index.search(index.vector(4), &SearchOptions { k: 1, ..Default::default() }).unwrap();
    assert_eq!(index.id(hits[0].row), "doc-4");
}

/// A file whose checksum is right but whose content lies (a buggy or dishonest writer) is
/// refused, for each section, with an error naming the section and the row.
#[test]
fn checksum_valid_files_with_lying_content_are_refused() {
    let (index, _) = build(20, 8, Metric::Cosine);
    let bytes = index.to_bytes();
    let header_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[24..24 + header_len]).unwrap().to_owned();
    let json: serde_json::Value = serde_json::from_str(&header).unwrap();
    let offset = |name: &str| {
        let sections = json["sections"].as_array().unwrap();
        sections.iter().find(|s| s["name"] == name).unwrap()["offset"].as_u64().unwrap() as usize
    };
    // `edit` changes the bytes; the checksum is then recomputed, as a dishonest writer would.
    let refusal = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut lying = bytes.clone();
        edit(&mut lying);
        let end = lying.len() - 16;
        let crc = crc32fast::hash(&lying[..end]);
        lying[end + 4..end + 8].copy_from_slice(&crc.to_le_bytes());
        match FlatIndex::from_bytes(lying) {
            Err(IndexError::Corrupt(why)) => why,
            other => panic!("expected a corrupt index, got {:?}", other.map(|i| i.len())),
        }
    };
    let put_f32 = |at: usize, v: f32| move |b: &mut Vec<u8>| b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let vectors = offset("vectors");
    let row = |r: usize| vectors + r * 8 * 4;
    type Edit<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;
    let cases: Vec<(&str, Edit)> = vec![
        ("section vectors: row 3 holds NaN", Box::new(put_f32(row(3), f32::NAN))),
        ("section vectors: row 2 holds inf", Box::new(put_f32(row(2) + 4, f32::INFINITY))),
        ("section vectors: row 5 has norm", Box::new(move |b: &mut Vec<u8>| put_f32(row(5), 2.0)(b))),
        ("section scales: row 4 is -1", Box::new(put_f32(offset("scales") + 16, -1.0))),
        (
            "section bits: row 6 has bits past dimension 8",
            Box::new(move |b: &mut Vec<u8>| b[offset("bits") + 6 * 8 + 7] |= 0x80),
        ),
        (
            "section id_offsets",
            Box::new(move |b: &mut Vec<u8>| {
                b[offset("id_offsets") + 8..][..8].copy_from_slice(&(1u64 << 63).to_le_bytes())
            }),
        ),
        (
            "header: binary threshold 0",
            Box::new(|b: &mut Vec<u8>| {
                let at = header.find("\"thresholds\":[").unwrap() + "\"thresholds\":[".len();
                let end = at + header[at..].find([',', ']']).unwrap();
                let text = format!("{:width$}", "1e39", width = end - at);
                b[24 + at..24 + end].copy_from_slice(text.as_bytes());
            }),
        ),
        (
            "section vectors: offset",
            Box::new(|b: &mut Vec<u8>| {
                let key = format!("\"name\":\"vectors\",\"offset\":{vectors}");
                let at = header.find(&key).unwrap();
                let moved = format!("\"name\":\"vectors\",\"offset\":{}", vectors + 1);
                assert_eq!(moved.len(), key.len());
                b[24 + at..24 + at + key.len()].copy_from_slice(moved.as_bytes());
            }),
        ),
    ];
    for (expected, edit) in cases {
        let why = refusal(edit.as_ref());
        assert!(why.starts_with(expected) || why.contains(expected), "{expected:?}: {why}");
    }
}

/// A query scaled by 1e20 or 1e-30 (finite, but its squares overflow or vanish) ranks and
/// scores as the query itself under the cosine metric.
#[test]
fn huge_and_tiny_query_vectors_score_as_the_query() {
    let (index, _) = build(200, 16, Metric::Cosine);
    let query = random_vectors(1, 16, 3);
    let options = SearchOptions { k: 5, ..Default::default() };
    let expected = index.search(&query, &options).unwrap();
    for scale in [1e20f32, 1e-30] {
        let scaled: Vec<f32> = query.iter().map(|x| x * scale).collect();
        let hits = index.search(&scaled, &options).unwrap();
        assert_eq!(hits.iter().map(|h| h.row).collect::<Vec<_>>(), expected.iter().map(|h| h.row).collect::<Vec<_>>());
        for (h, e) in hits.iter().zip(&expected) {
            assert!((h.score - e.score).abs() < 1e-5, "×{scale}: {} != {}", h.score, e.score);
        }
    }
}
