//! What the fuzz targets share: the tiny model folder (`tiny-model/`, made by its
//! `generate.py`) whose files a target replaces with its input, and the check that a model
//! that loads also embeds.

use quiver_encoder::{Encoder, ModelFiles, TextKind};

/// The tiny model's files, held in memory as the browser holds a fetched folder.
pub fn tiny_model() -> ModelFiles {
    let mut files = ModelFiles { name: "tiny".into(), ..ModelFiles::default() };
    files.insert("config.json", include_bytes!("../tiny-model/config.json").to_vec());
    files.insert("tokenizer.json", include_bytes!("../tiny-model/tokenizer.json").to_vec());
    files.insert("model.safetensors", include_bytes!("../tiny-model/model.safetensors").to_vec());
    files
}

/// Loads `files`; a model that loads must embed texts into vectors of its dimension
/// (finite ones are not promised: the weights may be NaN).
pub fn load_and_embed(files: &ModelFiles) {
    let Ok(encoder) = Encoder::load(files) else { return };
    let texts = ["red wine glass", "", "the oak tables and chairs for a kitchen of steel"];
    let embeddings = encoder.embed(&texts, TextKind::Document, 2).expect("a loaded model embeds");
    assert_eq!(embeddings.len(), texts.len());
    assert!(embeddings.rows().all(|row| row.len() == encoder.dim()));
}
