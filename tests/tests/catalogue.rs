//! The engine end to end on the sample catalogue: index, search by meaning, filter, save,
//! load from bytes and from a memory map.

use pollster::block_on;
use quiver::ingest::{read_records, Fields};
use quiver::{EmbedOptions, Embedder, Engine};
use quiver_encoder::Encoder;
use quiver_index::{Filter, FlatIndex, IndexConfig, SearchOptions, Strategy};
use quiver_tests::{data_file, minilm_dir};

fn fields() -> Fields {
    Fields { text: vec!["title".into(), "description".into()], ..Default::default() }
}

#[test]
fn catalogue_search_by_meaning_with_filters() {
    let encoder = Encoder::from_dir(minilm_dir()).unwrap();
    let mut index = quiver::new_index(&encoder, IndexConfig::new(encoder.dim()), None).unwrap();
    let embedder = Embedder::cpu(encoder);
    let records = read_records(&data_file("catalogue.jsonl"), None, &fields()).unwrap();
    let n = block_on(quiver::index_records(&embedder, &mut index, records, &EmbedOptions::default(), |_| {})).unwrap();
    assert!(n >= 150, "{n} products");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalogue.qvr");
    index.save(&path).unwrap();
    let engine = block_on(Engine::on_backend(embedder, FlatIndex::open(&path).unwrap())).unwrap();

    let top = |query: &str, options: &SearchOptions| -> Vec<String> {
        block_on(engine.search(query, options)).unwrap().into_iter().map(|r| r.id).collect()
    };
    for strategy in [Strategy::Exact, Strategy::BinaryRescore] {
        let options = SearchOptions { k: 5, strategy, ..Default::default() };
        let found = top("pink velvet armchair with brass legs", &options);
        assert_eq!(found[0], "abigail-lounge-chair", "{strategy:?}: {found:?}");
        let found = top("machine that digs deep in mines", &options);
        assert!(found.contains(&"a789-bc".to_owned()), "{strategy:?}: {found:?}");
    }

    let cheap = SearchOptions {
        k: 10,
        filter: Some(Filter::parse(&["price<=30", "currency=USD"]).unwrap()),
        ..Default::default()
    };
    let results = block_on(engine.search("glasses for wine", &cheap)).unwrap();
    assert!(!results.is_empty());
    for r in &results {
        assert!(r.metadata["price"].as_f64().unwrap() <= 30.0, "{r:?}");
        assert!(r.metadata["title"].is_string(), "text fields stay in the metadata for display");
        assert!(r.metadata.get("id").is_none(), "the id is not repeated in the metadata");
    }
    assert!(results.windows(2).all(|w| w[0].score >= w[1].score));
}

/// Documents embedded elsewhere (a pool's other workers) and added with their vectors make
/// the same index as `add`, Matryoshka cut included; a wrong number of values adds nothing.
#[test]
fn documents_embedded_elsewhere_add_as_if_embedded_here() {
    use quiver::NewDocument;
    let docs: Vec<NewDocument> = ["a linen tablecloth", "brass floor lamp", "ceramic mug, blue"]
        .iter()
        .enumerate()
        .map(|(i, text)| NewDocument {
            id: format!("d{i}"),
            text: (*text).into(),
            metadata: serde_json::json!({ "i": i }),
        })
        .collect();
    let cut = || {
        let encoder = Encoder::from_dir(minilm_dir()).unwrap();
        let index = quiver::new_index(&encoder, IndexConfig::new(encoder.dim()), Some(128)).unwrap();
        Engine::new(encoder, index).unwrap()
    };
    let mut here = cut();
    block_on(here.add(&docs)).unwrap();

    let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
    let vectors = block_on(here.embed(&texts, &EmbedOptions::default())).unwrap();
    assert_eq!(vectors.dim, 384, "embed gives the model's full vectors");
    let mut elsewhere = cut();
    let wrong = elsewhere.add_embedded(&docs, &vectors.data[..384 * 2]).unwrap_err();
    assert_eq!(wrong.code(), "E_DIMENSION", "{wrong}");
    assert_eq!(elsewhere.stats().documents, 0);
    assert_eq!(elsewhere.add_embedded(&docs, &vectors.data).unwrap(), 3);

    let options = SearchOptions { k: 3, ..Default::default() };
    let a = block_on(here.search("a lamp", &options)).unwrap();
    let b = block_on(elsewhere.search("a lamp", &options)).unwrap();
    assert_eq!(a[0].id, "d1");
    assert_eq!(
        a.iter().map(|r| (&r.id, r.score)).collect::<Vec<_>>(),
        b.iter().map(|r| (&r.id, r.score)).collect::<Vec<_>>()
    );
    assert_eq!(here.index().unwrap().to_bytes(), elsewhere.index().unwrap().to_bytes());
}
