//! `model.gguf`: any bytes as the tiny model's quantized weights.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut files = quiver_fuzz::tiny_model();
    files.insert("model.gguf", data.to_vec());
    quiver_fuzz::load_and_embed(&files);
});
