//! A model folder's JSON files: the first byte picks which one the rest replaces in the
//! tiny model (`config.json`, `quiver.json`, `modules.json`, …).
#![no_main]

use quiver_encoder::files::{OPTIONAL_FILES, REQUIRED_FILES};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, content)) = data.split_first() else { return };
    // tokenizer.json is the tokenizers crate's parser, not ours.
    let names: Vec<&str> =
        REQUIRED_FILES.iter().chain(&OPTIONAL_FILES).copied().filter(|&f| f != "tokenizer.json").collect();
    let mut files = quiver_fuzz::tiny_model();
    files.insert(names[pick as usize % names.len()], content.to_vec());
    quiver_fuzz::load_and_embed(&files);
});
