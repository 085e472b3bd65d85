//! A `--queries` file.
#![no_main]

use std::path::Path;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(queries) = quiver::ingest::parse_queries(data, Path::new("queries.jsonl")) {
        assert!(queries.len() <= data.split(|&b| b == b'\n').count());
    }
});
