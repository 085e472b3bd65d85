//! The index loader: any bytes as an index file. One that loads must answer every strategy
//! with finite scores for rows it has, and keyword queries when it has a keyword index.
#![no_main]

use quiver_index::{FlatIndex, Query, SearchMode, SearchOptions, Strategy};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let inspected = FlatIndex::inspect(data);
    let Ok(index) = FlatIndex::from_bytes(data.to_vec()) else { return };
    assert!(inspected.is_ok(), "an index that loads also inspects");
    // A unit query that is not along any axis.
    let dim = index.dim();
    let query: Vec<f32> = (0..dim).map(|i| if i % 3 == 0 { 1.0 } else { -0.5 }).collect();
    let norm = query.iter().map(|x| x * x).sum::<f32>().sqrt();
    let query: Vec<f32> = query.iter().map(|x| x / norm).collect();
    let strategies = [Strategy::Exact, Strategy::Int8, Strategy::Binary, Strategy::BinaryRescore];
    for strategy in strategies {
        let options = SearchOptions { k: 5, strategy, ..SearchOptions::default() };
        let Ok(hits) = index.search(&query, &options) else { continue };
        assert!(hits.len() <= index.len().min(5));
        for hit in hits {
            assert!(hit.score.is_finite(), "{strategy:?} scored row {} {}", hit.row, hit.score);
            let _ = (index.id(hit.row), index.metadata(hit.row), index.vector(hit.row));
        }
    }
    if index.keyword_index().is_some() {
        for mode in [SearchMode::Keyword, SearchMode::Hybrid] {
            let query = Query { vector: Some(&query), text: Some("red wine glass") };
            let options = SearchOptions { k: 5, mode, ..SearchOptions::default() };
            if let Ok(hits) = index.search_query(&query, &options) {
                assert!(hits.iter().all(|h| h.score.is_finite() && h.row < index.len()));
            }
        }
    }
});
