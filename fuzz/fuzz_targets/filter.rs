//! Filters: the CLI's clauses (`--filter 'price<=50'`, one a line) and the JSON both
//! front-ends take, each matched against a product's metadata.
#![no_main]

use quiver_index::Filter;
use serde_json::{json, Value};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let metadata = json!({
        "category": "Bar", "price": 49.5, "tags": ["gift", "glass"], "stock": {"warehouse": "B", "count": 3},
        "name": "Wine glass", "new": true, "discontinued": null
    });
    let clauses: Vec<&str> = text.lines().collect();
    if let Ok(filter) = Filter::parse(&clauses) {
        filter.matches(&metadata);
    }
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        if let Ok(filter) = Filter::from_json(&value) {
            filter.matches(&metadata);
            filter.matches(&value);
        }
    }
});
