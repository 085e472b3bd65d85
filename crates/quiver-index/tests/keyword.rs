//! Keyword and hybrid search: the analyzer, BM25 scores, rows kept in step with the vector
//! index through upserts and removals, filters, fusion, and the keyword sections of the file.

mod common;

use std::collections::BTreeMap;

use quiver_index::fusion::fuse;
use quiver_index::keyword::analyze;
use quiver_index::{
    Bm25Index, Bm25Params, Document, Filter, FlatIndex, Fusion, Hit, IndexConfig, IndexError, Query, SearchMode,
    SearchOptions, Strategy,
};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const DIM: usize = 4;

/// A fixed vector per number, without a random generator whose stream could change.
fn vector_of(i: usize) -> Vec<f32> {
    (0..DIM).map(|j| ((i * DIM + j) as f32 * 0.37).sin()).collect()
}

/// (id, text, metadata) of the small catalogue used by several tests and the v2 fixture.
fn catalogue() -> Vec<(&'static str, Option<&'static str>, Value)> {
    vec![
        ("lab-fridge", Some("Labor-Kühlschrank mit Gefrierfach, 120 Liter"), json!({"category": "lab"})),
        ("kitchen-fridge", Some("Kühlschrank für die Küche, A+++"), json!({"category": "kitchen"})),
        ("trail-shoes", Some("Running shoes for trail and road"), json!({"category": "shoes"})),
        ("mug", Some("Café au lait mug, 350 ml"), json!({"category": "kitchen"})),
        ("duck", Some("北京烤鸭 recipe"), json!({"category": "food"})),
        ("no-text", None, json!({"category": "lab"})),
    ]
}

fn keyword_index(docs: &[(&str, Option<&str>, Value)]) -> FlatIndex {
    let mut index = FlatIndex::new(IndexConfig { keyword: true, ..IndexConfig::new(DIM) }).unwrap();
    let vectors: Vec<Vec<f32>> = (0..docs.len()).map(vector_of).collect();
    let docs: Vec<Document> = docs
        .iter()
        .zip(&vectors)
        .map(|((id, text, metadata), vector)| Document {
            id: id.to_string(),
            vector,
            metadata: metadata.clone(),
            text: *text,
        })
        .collect();
    index.upsert(&docs).unwrap();
    index
}

fn keyword_options(k: usize) -> SearchOptions {
    SearchOptions { k, mode: SearchMode::Keyword, ..Default::default() }
}

fn text_query(text: &str) -> Query<'_> {
    Query { vector: None, text: Some(text) }
}

fn ids(index: &FlatIndex, hits: &[Hit]) -> Vec<String> {
    hits.iter().map(|h| index.id(h.row).to_owned()).collect()
}

/// Same rows in the same order, scores within `tolerance`.
fn assert_hits(actual: &[Hit], expected: &[(usize, f32)], tolerance: f32) {
    let rows: Vec<usize> = actual.iter().map(|h| h.row).collect();
    assert_eq!(rows, expected.iter().map(|e| e.0).collect::<Vec<_>>());
    for (hit, (row, score)) in actual.iter().zip(expected) {
        assert!((hit.score - score).abs() < tolerance, "row {row}: {} vs {score}", hit.score);
    }
}

#[test]
fn analyzer_english() {
    assert_eq!(analyze("The Running Shoes are on SALE, 50% off!"), ["running", "shoe", "sale", "50", "off"]);
    // The S-stemmer's known limit: `-es` after `s` or `x` only loses its `s`.
    assert_eq!(analyze("batteries, glasses and boxes"), ["battery", "glasse", "boxe"]);
    assert_eq!(analyze("it is what it is"), ["what"]);
}

#[test]
fn analyzer_german_umlauts_and_sharp_s() {
    assert_eq!(analyze("Der Kühlschrank für die Küche"), ["kuhlschrank", "kuche"]);
    for spelling in ["Kühlschrank", "KÜHLSCHRANK", "Kuhlschrank", "kühlschrank"] {
        assert_eq!(analyze(spelling), ["kuhlschrank"], "{spelling}");
    }
    for spelling in ["Straße", "STRASSE", "strasse", "STRAẞE"] {
        assert_eq!(analyze(spelling), ["strasse"], "{spelling}");
    }
    assert_eq!(analyze("Größe über alles"), ["grosse", "alle"]);
}

#[test]
fn analyzer_hyphenated_compounds() {
    assert_eq!(analyze("Labor-Kühlschrank"), ["labor", "kuhlschrank", "laborkuhlschrank"]);
    assert_eq!(analyze("E-Mail-Adresse"), ["e", "mail", "adresse", "emailadresse"]);
    // Stop words leave the parts but not the joined form.
    assert_eq!(analyze("state-of-the-art"), ["state", "art", "stateoftheart"]);
    // A dangling hyphen ends the compound, and dashes are not hyphens.
    assert_eq!(analyze("Labor- und Kühlschrank"), ["labor", "kuhlschrank"]);
    assert_eq!(analyze("foo--bar -baz"), ["foo", "bar", "baz"]);
    assert_eq!(analyze("1990–2000"), ["1990", "2000"]);
    // The Unicode hyphen and the non-breaking hyphen join too.
    assert_eq!(analyze("RTX\u{2011}4090"), ["rtx", "4090", "rtx4090"]);
}

#[test]
fn analyzer_nfc_and_nfd_are_equal() {
    let nfc = "Kühlschrank café Ångström";
    let nfd = "Ku\u{308}hlschrank cafe\u{301} A\u{30a}ngstro\u{308}m";
    assert_ne!(nfc, nfd);
    assert_eq!(analyze(nfc), analyze(nfd));
    assert_eq!(analyze(nfc), ["kuhlschrank", "cafe", "angstrom"]);
    // Compatibility forms: a ligature, full-width letters, a dotted capital I.
    assert_eq!(analyze("ﬁle ＡＢＣ İstanbul"), ["file", "abc", "istanbul"]);
}

#[test]
fn analyzer_emoji_cjk_and_empty_text() {
    assert_eq!(analyze("I ❤️ 🍕 pizza 👩‍👩‍👧"), ["i", "pizza"]);
    assert_eq!(analyze("北京烤鸭 recipe"), ["北", "京", "烤", "鸭", "recipe"]);
    assert_eq!(analyze("すしとカメラ"), ["す", "し", "と", "カメラ"]);
    assert!(analyze("").is_empty());
    assert!(analyze("  ,;!! 🎉 — … ").is_empty());
}

#[test]
fn bm25_scores_match_a_hand_computation() {
    let mut index = Bm25Index::new();
    for text in ["apple banana apple", "banana cherry", "cherry cherry cherry date"] {
        index.push(text);
    }
    assert_eq!((index.len(), index.term_count()), (3, 4));
    // N = 3, mean length 3, k1 = 1.2, b = 0.75, idf = ln(1 + (N − df + 0.5) / (df + 0.5)).
    // apple: df 1, idf ln(8/3) = 0.980829; cherry: df 2, idf ln(1.6) = 0.470004.
    // row 0: apple tf 2, length 3: 0.980829 · 2 · 2.2 / (2 + 1.2 · (0.25 + 0.75 · 3/3)) = 1.348640
    // row 2: cherry tf 3, length 4: 0.470004 · 3 · 2.2 / (3 + 1.2 · (0.25 + 0.75 · 4/3)) = 0.689339
    // row 1: cherry tf 1, length 2: 0.470004 · 1 · 2.2 / (1 + 1.2 · (0.25 + 0.75 · 2/3)) = 0.544215
    let hits = index.search("apple cherry", 10, Bm25Params::default(), |_| true).unwrap();
    assert_hits(&hits, &[(0, 1.348_640_2), (2, 0.689_338_7), (1, 0.544_214_7)], 1e-5);
    // A repeated query term counts once; a term in no document adds nothing.
    assert_eq!(index.search("apple cherry cherry kiwi", 10, Bm25Params::default(), |_| true).unwrap(), hits);
    // k1 = 0 makes term frequency irrelevant: a row scores its terms' idf.
    let flat = index.search("cherry", 10, Bm25Params { k1: 0.0, b: 0.75 }, |_| true).unwrap();
    assert!(flat.iter().all(|h| (h.score - 0.470_003_6).abs() < 1e-5));
    assert_eq!(flat.iter().map(|h| h.row).collect::<Vec<_>>(), [1, 2], "ties go to the lower row");
    assert!(index.search("the of und", 10, Bm25Params::default(), |_| true).unwrap().is_empty());
    for bad in [Bm25Params { k1: -1.0, b: 0.5 }, Bm25Params { k1: 1.2, b: 1.5 }, Bm25Params { k1: f32::NAN, b: 0.5 }] {
        let err = index.search("apple", 10, bad, |_| true).unwrap_err();
        assert!(matches!(err, IndexError::InvalidArgument { .. }), "{bad:?}");
    }
}

#[test]
fn keyword_search_through_the_flat_index() {
    let index = keyword_index(&catalogue());
    assert_eq!(index.keyword_index().unwrap().len(), 6);
    let search = |text: &str| ids(&index, &index.search_query(&text_query(text), &keyword_options(10)).unwrap());
    // The shorter document wins at equal term frequency.
    assert_eq!(search("Kühlschrank"), ["kitchen-fridge", "lab-fridge"]);
    assert_eq!(search("laborkühlschrank"), ["lab-fridge"]);
    assert_eq!(search("CAFE"), ["mug"]);
    assert_eq!(search("烤鸭"), ["duck"]);
    assert_eq!(search("running shoe"), ["trail-shoes"]);
    assert!(search("für die").is_empty());
    assert!(search("🍕").is_empty());
    // The query vector is not needed, and ignored when given.
    let v = vector_of(0);
    let with_vector = Query { vector: Some(&v), text: Some("kühlschrank") };
    assert_eq!(ids(&index, &index.search_query(&with_vector, &keyword_options(10)).unwrap()), search("kühlschrank"));
    assert_eq!(index.search_query(&text_query("kühlschrank"), &keyword_options(1)).unwrap().len(), 1);
    assert!(index.search_query(&text_query("kühlschrank"), &keyword_options(0)).unwrap().is_empty());
}

#[test]
fn filters_apply_to_keyword_and_hybrid_search() {
    let index = keyword_index(&catalogue());
    let filter = Filter::parse(&["category=lab"]).unwrap();
    let options = SearchOptions { filter: Some(filter.clone()), ..keyword_options(10) };
    let hits = index.search_query(&text_query("kühlschrank"), &options).unwrap();
    assert_eq!(ids(&index, &hits), ["lab-fridge"]);
    // The filter does not change the corpus statistics, only which rows come back.
    let unfiltered = index.search_query(&text_query("kühlschrank"), &keyword_options(10)).unwrap();
    assert_eq!(hits[0].score, unfiltered.iter().find(|h| h.row == hits[0].row).unwrap().score);

    let v = vector_of(2);
    let hybrid = SearchOptions { mode: SearchMode::Hybrid, filter: Some(filter), ..Default::default() };
    let hits = index.search_query(&Query { vector: Some(&v), text: Some("kühlschrank") }, &hybrid).unwrap();
    assert_eq!(ids(&index, &hits), ["lab-fridge", "no-text"]);
}

/// Keyword results as (id, score) sorted by score then id, so indexes whose rows are in a
/// different order compare equal.
fn keyword_results(index: &FlatIndex, text: &str) -> Vec<(String, f32)> {
    let hits = index.search_query(&text_query(text), &keyword_options(1000)).unwrap();
    let mut results: Vec<(String, f32)> = hits.iter().map(|h| (index.id(h.row).to_owned(), h.score)).collect();
    results.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    results
}

#[test]
fn upserts_and_removals_match_a_fresh_build() {
    const WORDS: [&str; 12] = [
        "apple",
        "Äpfel",
        "banana",
        "kiwi",
        "Labor-Kühlschrank",
        "kühlschrank",
        "cherry",
        "dates",
        "the",
        "北京",
        "x",
        "y",
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut index = FlatIndex::new(IndexConfig { keyword: true, ..IndexConfig::new(DIM) }).unwrap();
    // The expected content: id → (vector seed, text).
    let mut live: BTreeMap<String, (usize, Option<String>)> = BTreeMap::new();
    for step in 0..600 {
        if rng.gen_bool(0.3) && !live.is_empty() {
            let count = rng.gen_range(1..=live.len().min(3));
            let mut doomed: Vec<String> = Vec::new();
            while doomed.len() < count {
                let id = live.keys().nth(rng.gen_range(0..live.len())).unwrap().clone();
                if !doomed.contains(&id) {
                    doomed.push(id);
                }
            }
            index.remove(&doomed).unwrap();
            for id in &doomed {
                live.remove(id);
            }
        } else {
            let mut batch: Vec<(String, usize, Option<String>)> = (0..rng.gen_range(1..4))
                .map(|b| {
                    let words = rng.gen_range(0..6);
                    let text = (words > 0).then(|| {
                        (0..words).map(|_| WORDS[rng.gen_range(0..WORDS.len())]).collect::<Vec<_>>().join(" ")
                    });
                    // Ids repeat often, so many upserts replace a document.
                    (format!("{}-{b}", rng.gen_range(0..40)), step, text)
                })
                .collect();
            batch.sort_by(|a, b| a.0.cmp(&b.0));
            batch.dedup_by(|a, b| a.0 == b.0);
            let vectors: Vec<Vec<f32>> = batch.iter().map(|(_, seed, _)| vector_of(*seed)).collect();
            let docs: Vec<Document> = batch
                .iter()
                .zip(&vectors)
                .map(|((id, _, text), v)| Document {
                    id: id.clone(),
                    vector: v,
                    metadata: Value::Null,
                    text: text.as_deref(),
                })
                .collect();
            index.upsert(&docs).unwrap();
            for (id, seed, text) in batch {
                live.insert(id, (seed, text));
            }
        }
    }
    assert_eq!(index.len(), live.len());
    let keyword = index.keyword_index().unwrap();
    assert_eq!(keyword.len(), index.len());

    let fresh_docs: Vec<(String, Option<String>, usize)> =
        live.iter().map(|(id, (seed, text))| (id.clone(), text.clone(), *seed)).collect();
    let vectors: Vec<Vec<f32>> = fresh_docs.iter().map(|(_, _, seed)| vector_of(*seed)).collect();
    let mut fresh = FlatIndex::new(IndexConfig { keyword: true, ..IndexConfig::new(DIM) }).unwrap();
    let docs: Vec<Document> = fresh_docs
        .iter()
        .zip(&vectors)
        .map(|((id, text, _), v)| Document { id: id.clone(), vector: v, metadata: Value::Null, text: text.as_deref() })
        .collect();
    fresh.upsert(&docs).unwrap();
    assert_eq!(keyword.term_count(), fresh.keyword_index().unwrap().term_count());

    let mut queries: Vec<String> = WORDS.iter().map(|w| w.to_string()).collect();
    queries.extend(["apple kiwi", "laborkühlschrank cherry", "dates 北 y x", "nothing"].map(String::from));
    let reloaded = FlatIndex::from_bytes(index.to_bytes()).unwrap();
    for query in &queries {
        let expected = keyword_results(&fresh, query);
        assert_eq!(keyword_results(&index, query), expected, "{query}");
        assert_eq!(keyword_results(&reloaded, query), expected, "{query} after a reload");
    }
    assert!(!keyword_results(&index, "kiwi").is_empty(), "the test exercises matches");
}

#[test]
fn an_upsert_replaces_the_old_text_and_text_is_ignored_without_keyword_config() {
    let mut index = keyword_index(&catalogue());
    let v = vector_of(9);
    let replace = |text| Document { id: "mug".into(), vector: &v, metadata: Value::Null, text };
    index.upsert(&[replace(Some("Espresso cup"))]).unwrap();
    let search = |index: &FlatIndex, text: &str| {
        ids(index, &index.search_query(&text_query(text), &keyword_options(10)).unwrap())
    };
    assert!(search(&index, "café").is_empty());
    assert_eq!(search(&index, "espresso"), ["mug"]);
    index.upsert(&[replace(None)]).unwrap();
    assert!(search(&index, "espresso").is_empty());
    index.remove(&["lab-fridge"]).unwrap();
    assert_eq!(search(&index, "kühlschrank"), ["kitchen-fridge"]);
    assert!(search(&index, "gefrierfach").is_empty());

    let mut plain = FlatIndex::new(IndexConfig::new(DIM)).unwrap();
    plain.upsert(&[replace(Some("Espresso cup"))]).unwrap();
    assert!(plain.keyword_index().is_none());
}

#[test]
fn rrf_and_weighted_fusion_by_hand() {
    let hit = |row, score| Hit { row, score };
    let by_vector = [hit(0, 0.9), hit(1, 0.5), hit(2, 0.1)];
    let by_keyword = [hit(2, 10.0), hit(3, 4.0)];
    // RRF, k = 60: row 2 = 1/63 + 1/61, row 0 = 1/61, rows 1 and 3 = 1/62 (tie: lower row first).
    let fused = fuse(&by_vector, &by_keyword, Fusion::Rrf { k: 60.0 }, 10).unwrap();
    assert_hits(&fused, &[(2, 1.0 / 63.0 + 1.0 / 61.0), (0, 1.0 / 61.0), (1, 1.0 / 62.0), (3, 1.0 / 62.0)], 1e-7);
    assert_eq!(fuse(&by_vector, &by_keyword, Fusion::default(), 2).unwrap(), fused[..2]);
    // Weighted, 0.5: vector normalised 1, 0.5, 0; keyword 1, 0.
    // row 0 = 0.5, row 2 = 0 + 0.5, row 1 = 0.25, row 3 = 0.
    let fused = fuse(&by_vector, &by_keyword, Fusion::Weighted { vector_weight: 0.5 }, 10).unwrap();
    assert_hits(&fused, &[(0, 0.5), (2, 0.5), (1, 0.25), (3, 0.0)], 1e-6);
    // One result, or equal scores, normalise to 1.
    let fused = fuse(&[hit(4, 0.3)], &[], Fusion::Weighted { vector_weight: 0.8 }, 10).unwrap();
    assert_hits(&fused, &[(4, 0.8)], 1e-6);
    for bad in [Fusion::Rrf { k: -1.0 }, Fusion::Rrf { k: f32::INFINITY }, Fusion::Weighted { vector_weight: 1.5 }] {
        let err = fuse(&by_vector, &by_keyword, bad, 10).unwrap_err();
        assert!(matches!(err, IndexError::InvalidArgument { .. }), "{bad:?}");
    }
}

#[test]
fn hybrid_search_fuses_both_rankings() {
    let index = keyword_index(&catalogue());
    let v = vector_of(3);
    let query = Query { vector: Some(&v), text: Some("Kühlschrank") };
    for (strategy, fusion) in [
        (Strategy::Exact, Fusion::default()),
        (Strategy::BinaryRescore, Fusion::Rrf { k: 1.0 }),
        (Strategy::Int8, Fusion::Weighted { vector_weight: 0.3 }),
    ] {
        let options = SearchOptions {
            k: 3,
            mode: SearchMode::Hybrid,
            strategy,
            fusion,
            fusion_candidates: 5,
            ..Default::default()
        };
        let hits = index.search_query(&query, &options).unwrap();
        let vector = index.search(&v, &SearchOptions { k: 5, mode: SearchMode::Vector, ..options.clone() }).unwrap();
        let keyword = index.search_query(&query, &SearchOptions { k: 5, mode: SearchMode::Keyword, ..options.clone() });
        assert_eq!(hits, fuse(&vector, &keyword.unwrap(), fusion, 3).unwrap(), "{strategy:?}");
    }
    // The nearest vector (row 3, "mug") and both keyword matches make the top three.
    let hits = index.search_query(&query, &SearchOptions { k: 3, mode: SearchMode::Hybrid, ..Default::default() });
    let mut found = ids(&index, &hits.unwrap());
    found.sort();
    assert_eq!(found, ["kitchen-fridge", "lab-fridge", "mug"]);
}

#[test]
fn missing_inputs_and_missing_keyword_index_are_typed_errors() {
    let index = keyword_index(&catalogue());
    let v = vector_of(0);
    let hybrid = SearchOptions { mode: SearchMode::Hybrid, ..Default::default() };
    for (query, options) in [
        (text_query("kühlschrank"), &hybrid),
        (Query { vector: Some(&v), text: None }, &hybrid),
        (Query { vector: Some(&v), text: None }, &keyword_options(10)),
        (text_query("kühlschrank"), &SearchOptions::default()),
    ] {
        let err = index.search_query(&query, options).unwrap_err();
        assert!(matches!(err, IndexError::InvalidArgument { op: "search", .. }), "{query:?} {:?}: {err}", options.mode);
    }
    // `search` takes only a vector: keyword mode there lacks its text.
    assert!(matches!(index.search(&v, &keyword_options(3)), Err(IndexError::InvalidArgument { .. })));
    assert!(matches!(
        index.search_query(&Query { vector: Some(&v[..2]), text: Some("x") }, &hybrid),
        Err(IndexError::DimensionMismatch { .. })
    ));

    let mut plain = FlatIndex::new(IndexConfig::new(DIM)).unwrap();
    plain.upsert(&[Document { id: "a".into(), vector: &v, metadata: Value::Null, text: Some("apple") }]).unwrap();
    let both = Query { vector: Some(&v), text: Some("apple") };
    for (options, op) in [(keyword_options(3), "keyword search"), (hybrid, "hybrid search")] {
        let err = plain.search_query(&both, &options).unwrap_err();
        assert!(matches!(err, IndexError::KeywordIndexMissing { op: o } if o == op), "{err}");
        assert_eq!(err.code(), "E_NO_KEYWORD_INDEX");
    }
    assert_eq!("hybrid".parse::<SearchMode>(), Ok(SearchMode::Hybrid));
    assert!("fuzzy".parse::<SearchMode>().is_err());
}

#[test]
fn save_and_load_keep_keyword_results() {
    let mut index = keyword_index(&catalogue());
    index.remove(&["trail-shoes"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyword.qvr");
    index.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    // Shifted by one byte so no section is aligned, as a buffer from JS may be.
    struct Offset(Vec<u8>);
    impl AsRef<[u8]> for Offset {
        fn as_ref(&self) -> &[u8] {
            &self.0[1..]
        }
    }
    let shifted = Offset([&[0u8][..], &bytes].concat());
    let loaded = [
        FlatIndex::open(&path).unwrap(),
        FlatIndex::from_bytes(bytes.clone()).unwrap(),
        FlatIndex::from_backing(std::sync::Arc::new(shifted)).unwrap(),
    ];
    let v = vector_of(1);
    for text in ["kühlschrank", "café mug", "北", "running", "gefrierfach liter"] {
        for mode in [SearchMode::Keyword, SearchMode::Hybrid] {
            let query = Query { vector: Some(&v), text: Some(text) };
            let options = SearchOptions { k: 5, mode, ..Default::default() };
            let expected = index.search_query(&query, &options).unwrap();
            for copy in &loaded {
                assert_eq!(copy.search_query(&query, &options).unwrap(), expected, "{text} {mode:?}");
            }
        }
    }
    let info = FlatIndex::inspect(&bytes).unwrap();
    assert_eq!(info.format_version, quiver_index::format::FORMAT_VERSION);
    assert!(info.config.keyword);
    assert_eq!(info.keyword_terms, Some(index.keyword_index().unwrap().term_count()));
    assert!(info.sections.iter().any(|(name, bytes)| name == "keyword_postings" && *bytes > 0));

    // An index whose documents have no text at all still round-trips.
    let mut empty = FlatIndex::new(IndexConfig { keyword: true, ..IndexConfig::new(DIM) }).unwrap();
    empty.upsert(&[Document { id: "a".into(), vector: &v, metadata: Value::Null, text: None }]).unwrap();
    let reloaded = FlatIndex::from_bytes(empty.to_bytes()).unwrap();
    assert_eq!(reloaded.keyword_index().unwrap().term_count(), 0);
    assert!(reloaded.search_query(&text_query("a"), &keyword_options(3)).unwrap().is_empty());
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn format_v1_fixture_loads_without_a_keyword_index() {
    let bytes = std::fs::read(fixture("format-v1.qvr")).unwrap();
    let info = FlatIndex::inspect(&bytes).unwrap();
    assert_eq!((info.format_version, info.config.keyword, info.keyword_terms), (1, false, None));
    let index = FlatIndex::from_bytes(bytes).unwrap();
    assert!(index.keyword_index().is_none());
    let err = index.search_query(&text_query("shoes"), &keyword_options(3)).unwrap_err();
    assert!(matches!(err, IndexError::KeywordIndexMissing { .. }), "{err}");
    assert_eq!(err.code(), "E_NO_KEYWORD_INDEX");
}

/// A version-2 file with a keyword section, committed so later builds keep reading it.
/// Regenerate with `QUIVER_WRITE_FIXTURE_V2=1 cargo test -p quiver-index --test keyword format_v2`.
#[test]
fn format_v2_fixture_with_keywords_still_loads() {
    let path = fixture("format-v2.qvr");
    let fresh = keyword_index(&catalogue());
    if std::env::var_os("QUIVER_WRITE_FIXTURE_V2").is_some() {
        let mut fixture = fresh.clone();
        fixture.set_created_unix(1_790_000_000);
        fixture.save(&path).unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    let info = FlatIndex::inspect(&bytes).unwrap();
    assert_eq!((info.format_version, info.count, info.keyword_terms), (2, 6, Some(22)));
    let index = FlatIndex::from_bytes(bytes).unwrap();
    assert_eq!(index.id(5), "no-text");
    let search = |text: &str| index.search_query(&text_query(text), &keyword_options(10)).unwrap();
    let hits = search("kühlschrank");
    assert_eq!(ids(&index, &hits), ["kitchen-fridge", "lab-fridge"]);
    // The same scores as a fresh build (six documents, 23 terms in all, df 2).
    let fresh_hits = fresh.search_query(&text_query("kühlschrank"), &keyword_options(10)).unwrap();
    assert_eq!(hits, fresh_hits);
    assert_eq!(ids(&index, &search("Labor-Kühlschrank")), ["lab-fridge", "kitchen-fridge"]);
    assert_eq!(ids(&index, &search("café")), ["mug"]);
    assert_eq!(ids(&index, &search("鸭")), ["duck"]);
}

#[test]
fn every_cut_and_flip_of_a_keyword_file_is_a_typed_error() {
    let bytes = keyword_index(&catalogue()).to_bytes();
    common::every_cut_and_flip_is_an_error(&bytes);
}

/// A flip with the checksum recomputed gets past the envelope: what the sections say must
/// then be checked itself. Every such file loads or is refused, never panics, and one that
/// loads can be searched and changed.
#[test]
fn flips_behind_a_valid_checksum_never_panic() {
    let bytes = keyword_index(&catalogue()).to_bytes();
    let footer = bytes.len() - 16;
    let v = vector_of(0);
    let query = Query { vector: Some(&v), text: Some("kühlschrank labor mug 北 running") };
    let mut refused = 0;
    for at in 0..footer {
        for flip in [0x01u8, 0x20, 0x80] {
            let mut corrupted = bytes.clone();
            corrupted[at] ^= flip;
            let crc = crc32fast::hash(&corrupted[..footer]);
            corrupted[footer + 4..footer + 8].copy_from_slice(&crc.to_le_bytes());
            match FlatIndex::from_bytes(corrupted) {
                Ok(mut index) => {
                    for mode in [SearchMode::Keyword, SearchMode::Hybrid] {
                        let _ = index.search_query(&query, &SearchOptions { mode, ..Default::default() });
                    }
                    // Removal walks the postings the file gave.
                    for row in [0, 2] {
                        let id = index.id(row).to_owned();
                        index.remove(&[id]).unwrap();
                    }
                }
                Err(_) => refused += 1,
            }
        }
    }
    assert!(refused > 0);
}
