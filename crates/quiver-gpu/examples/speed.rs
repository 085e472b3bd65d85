//! Tokens per second of the GPU encoder against the CPU one on the same batches, and the
//! GPU's first-batch latency (when drivers compile pipelines lazily, that is in it):
//!
//! `cargo run -p quiver-gpu --example speed -- [model folder] [texts]`
//!
//! On lavapipe the GPU numbers only show that the path runs.

use std::time::{Duration, Instant};

use quiver_encoder::{Encoder, ModelFiles, TextKind};
use quiver_gpu::{GpuBert, GpuContext};

const BATCH: usize = 32;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir =
        args.next().unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/all-MiniLM-L6-v2").into());
    let count: usize = args.next().map_or(Ok(128), |n| n.parse())?;
    let files = ModelFiles::read_dir(&dir)?;
    let encoder = Encoder::load(&files)?;
    let started = Instant::now();
    let Some(ctx) = pollster::block_on(GpuContext::new())? else {
        return Err("no GPU adapter (install mesa-vulkan-drivers for lavapipe)".into());
    };
    let info = ctx.adapter_info();
    println!("adapter: {} ({:?}, {:?}) in {:.2?}", info.name, info.backend, info.device_type, started.elapsed());
    let started = Instant::now();
    let bert = pollster::block_on(GpuBert::load(&ctx, &files))?;
    println!("GPU model load (weights + pipelines): {:.2?}", started.elapsed());

    let texts: Vec<String> = (0..count)
        .map(|i| format!("Document {i} describes {} for the {} team", SUBJECTS[i % SUBJECTS.len()], i % 7))
        .collect();
    let ids: Vec<Vec<u32>> = texts.iter().map(|t| encoder.tokenize(t, TextKind::Document)).collect::<Result<_, _>>()?;
    let tokens: usize = ids.iter().map(Vec::len).sum();
    let pooling = encoder.sentence_config().pooling;
    let normalize = encoder.sentence_config().normalize;

    let mut gpu = Duration::ZERO;
    for (i, batch) in ids.chunks(BATCH).enumerate() {
        let started = Instant::now();
        pollster::block_on(bert.embed_ids(batch, pooling, normalize))?;
        let took = started.elapsed();
        if i == 0 {
            println!("GPU first batch of {}: {took:.2?}", batch.len());
        }
        gpu += took;
    }
    let started = Instant::now();
    encoder.embed_ids(&ids, BATCH)?;
    let cpu = started.elapsed();
    let rate = |d: Duration| tokens as f64 / d.as_secs_f64();
    println!("{count} texts, {tokens} tokens, batches of {BATCH}");
    println!("GPU: {gpu:.2?} ({:.0} tokens/s)", rate(gpu));
    println!("CPU: {cpu:.2?} ({:.0} tokens/s)", rate(cpu));
    Ok(())
}

const SUBJECTS: [&str; 6] = [
    "how to replace the battery of a bicycle light",
    "quarterly revenue of the northern region",
    "a recipe for lentil soup with cumin",
    "the migration of the database to a new server",
    "safety rules for the chemistry laboratory",
    "ein Rezept für Apfelkuchen mit Zimt",
];
