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
