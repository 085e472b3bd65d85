//! Where embeddings are computed: the SIMD CPU encoder ([`quiver_encoder::Encoder`]) or the
//! GPU one ([`quiver_gpu::GpuBert`]), chosen per device. `auto` does not assume the GPU is
//! faster: a calibration run of at most [`CALIBRATION_BUDGET`] (or the budget in
//! [`BackendOptions`]) compares both on the same batch ([`calibration`]) and the decision
//! is cached per model and adapter ([`DecisionCache`]); where every cached decision for the
//! model is the CPU, no GPU is even asked for. Whatever fails on the GPU (no adapter, a lost
//! device, a kernel error, results that disagree with the CPU's) sends the work to the CPU
//! and is reported in [`BackendReport`]: a result is never wrong or missing because of the
//! GPU.

mod calibration;
mod decisions;
mod scan;

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use quiver_encoder::{length_batches, Embeddings, Encoder, ModelFiles, TextKind};
use quiver_gpu::{wgpu, GpuBert, GpuContext, GpuError};
use serde::{Deserialize, Serialize};

pub use calibration::{Calibration, CALIBRATION_BUDGET};
pub use decisions::{Decision, DecisionCache};
pub use scan::{GpuScan, ScanQuery, GPU_SCAN_MIN_ROWS};

use crate::{EmbedOptions, EngineError, Result};

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    Cpu,
    Gpu,
    /// The faster of the two on this device, measured once and cached.
    #[default]
    Auto,
}

/// The backend asked for, and how long `auto` may take to calibrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendOptions {
    pub choice: BackendChoice,
    /// CPU and GPU together. A larger budget lets a slow GPU finish its run, so the
    /// outcome is conclusive and cached.
    pub calibration_budget: Duration,
}

impl Default for BackendOptions {
    fn default() -> Self {
        BackendOptions { choice: BackendChoice::Auto, calibration_budget: CALIBRATION_BUDGET }
    }
}

impl From<BackendChoice> for BackendOptions {
    fn from(choice: BackendChoice) -> Self {
        BackendOptions { choice, ..Default::default() }
    }
}

impl BackendOptions {
    /// A budget in milliseconds as a user gives it: positive and finite.
    pub fn with_budget_ms(self, ms: f64) -> Result<Self> {
        if !(ms.is_finite() && ms > 0.0 && ms <= 3_600_000.0) {
            return Err(EngineError::InvalidArgument {
                op: "calibration budget",
                what: format!("must be a positive number of milliseconds up to an hour, not {ms}"),
            });
        }
        Ok(BackendOptions { calibration_budget: Duration::from_secs_f64(ms / 1e3), ..self })
    }
}

/// Where embeddings are computed now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Cpu,
    Gpu,
}

impl FromStr for BackendChoice {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(BackendChoice::Cpu),
            "gpu" => Ok(BackendChoice::Gpu),
            "auto" => Ok(BackendChoice::Auto),
            other => Err(EngineError::InvalidArgument {
                op: "backend",
                what: format!("must be gpu, cpu or auto, not {other:?}"),
            }),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Cpu => "cpu",
            Backend::Gpu => "gpu",
        })
    }
}

/// The GPU adapter, as its driver names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdapterSummary {
    pub name: String,
    /// vulkan, metal, dx12 or browser webgpu.
    pub api: String,
    /// discrete, integrated, cpu (a software rasteriser such as lavapipe), …
    pub device_type: String,
    pub driver: String,
    pub shader_f16: bool,
}

impl AdapterSummary {
    pub fn of(ctx: &GpuContext) -> Self {
        let info = ctx.adapter_info();
        let driver = [info.driver.as_str(), info.driver_info.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let api = match info.backend {
            wgpu::Backend::BrowserWebGpu => "webgpu".to_owned(),
            other => format!("{other:?}").to_lowercase(),
        };
        AdapterSummary {
            // Browsers do not name their WebGPU adapters.
            name: if info.name.is_empty() { format!("{api} adapter") } else { info.name.clone() },
            api,
            device_type: format!("{:?}", info.device_type).to_lowercase(),
            driver,
            shader_f16: ctx.shader_f16(),
        }
    }
}

/// Which backend runs, why, and what the calibration measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendReport {
    pub requested: BackendChoice,
    pub active: Backend,
    /// Why `active` runs, in words.
    pub reason: String,
    /// The error code that sent the work to the CPU (`E_GPU_UNAVAILABLE`, `E_GPU_LOST`, …).
    pub fallback_code: Option<String>,
    pub adapter: Option<AdapterSummary>,
    /// This run's calibration, or the cached one the decision came from.
    pub calibration: Option<Calibration>,
    /// Whether the decision came from the cache instead of a calibration run now.
    pub cached: bool,
    /// Time to get the GPU ready: adapter, weights upload, pipelines, first checked batch.
    pub gpu_setup_ms: Option<f64>,
    /// How the GPU stores the linears' weights: "f16" where the adapter has `shader-f16`.
    pub gpu_weights: Option<String>,
}

impl BackendReport {
    /// What a decision cached for `scope` says: its reason, calibration and fallback code.
    fn follow(&mut self, decision: &Decision, scope: &str) {
        self.cached = true;
        self.calibration = decision.calibration.clone();
        self.fallback_code = decision.fallback_code.clone();
        self.reason = format!("cached for {scope}: {}", decision.reason);
    }
}

/// The sentence encoder on the backend chosen for this device, with the CPU encoder always
/// at hand to fall back on.
pub struct Embedder {
    encoder: Encoder,
    /// The GPU model while the GPU backend is active; taken (its memory freed) when a GPU
    /// error sends the work to the CPU.
    gpu: Mutex<Option<Arc<GpuBert>>>,
    report: Mutex<BackendReport>,
}

/// Errors that will happen again on this model and adapter: `auto` remembers them.
fn lasting(error: &GpuError) -> bool {
    matches!(error, GpuError::Kernel { .. } | GpuError::Unsupported { .. } | GpuError::Limits { .. })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: still usable after a panic elsewhere.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Embedder {
    /// The CPU encoder only.
    pub fn cpu(encoder: Encoder) -> Self {
        let report = BackendReport {
            requested: BackendChoice::Cpu,
            active: Backend::Cpu,
            reason: "the CPU backend was asked for".into(),
            fallback_code: None,
            adapter: None,
            calibration: None,
            cached: false,
            gpu_setup_ms: None,
            gpu_weights: None,
        };
        Embedder { encoder, gpu: Mutex::new(None), report: Mutex::new(report) }
    }

    /// `encoder` (loaded from `files`) on the backend `options.choice` picks: `Gpu` uses
    /// the GPU whenever one works, `Auto` when it is also faster here, by `decisions` or by
    /// a calibration run recorded in `decisions` (with failures that would recur). Never
    /// fails: without a working GPU the CPU runs, and the report says why.
    pub async fn new(
        encoder: Encoder,
        files: &ModelFiles,
        options: impl Into<BackendOptions>,
        decisions: &mut DecisionCache,
    ) -> Self {
        let BackendOptions { choice, calibration_budget } = options.into();
        let embedder = Embedder::cpu(encoder);
        if choice == BackendChoice::Cpu {
            return embedder;
        }
        let started = web_time::Instant::now();
        let mut report = BackendReport { requested: choice, reason: String::new(), ..embedder.report() };
        if choice == BackendChoice::Auto {
            if let Some(decision) = decisions.cpu_for_model(&embedder.encoder) {
                report.follow(decision, "this model");
                report.adapter = decision.adapter.clone();
                embedder.set_report(report);
                return embedder;
            }
        }
        let ctx = match GpuContext::request().await {
            Ok(ctx) => ctx,
            // Not remembered: a driver may be installed, a browser flag turned on.
            Err(e) => return embedder.falling_back(report, &e),
        };
        let adapter = AdapterSummary::of(&ctx);
        report.adapter = Some(adapter.clone());
        let key = DecisionCache::key(&embedder.encoder, &adapter);
        let cached = decisions.get(&key).cloned().filter(|_| choice == BackendChoice::Auto);
        if let Some(decision) = &cached {
            report.follow(decision, "this model and adapter");
            if decision.backend == Backend::Cpu {
                embedder.set_report(report);
                return embedder;
            }
        }
        // Calibration compares the two backends' vectors itself, within its budget.
        let checked = choice == BackendChoice::Gpu || cached.is_some();
        let gpu = match embedder.ready_gpu(&ctx, files, checked).await {
            Ok(gpu) => gpu,
            Err(e) => {
                if choice == BackendChoice::Auto {
                    decisions.remember_failure(key, &adapter, &e, lasting(&e));
                }
                return embedder.falling_back(report, &e);
            }
        };
        report.gpu_setup_ms = Some(started.elapsed().as_secs_f64() * 1e3);
        report.gpu_weights = Some(gpu.precision().as_str().to_owned());
        if choice == BackendChoice::Gpu {
            report.active = Backend::Gpu;
            report.reason = "the GPU backend was asked for".into();
        } else if cached.is_some() {
            report.active = Backend::Gpu;
        } else {
            match calibration::calibrate(&embedder.encoder, &gpu, calibration_budget).await {
                Ok(calibration) => {
                    report.active = calibration.winner();
                    report.reason = format!("calibrated now: {}", calibration.summary());
                    if calibration.conclusive() {
                        decisions.insert(key, Decision::calibrated(&calibration, &adapter));
                    } else {
                        report.reason.push_str(" — inconclusive (the GPU ran out of budget), so not cached");
                    }
                    report.calibration = Some(calibration);
                }
                Err(e) => {
                    decisions.remember_failure(key, &adapter, &e, lasting(&e));
                    return embedder.falling_back(report, &e);
                }
            }
        }
        if report.active == Backend::Gpu {
            *lock(&embedder.gpu) = Some(Arc::new(gpu));
        }
        embedder.set_report(report);
        embedder
    }

    /// Loads the model onto the GPU and, if `check`, compares one sequence's vector with the
    /// CPU's: a driver that computes wrong numbers must not be used.
    async fn ready_gpu(&self, ctx: &GpuContext, files: &ModelFiles, check: bool) -> Result<GpuBert, GpuError> {
        let gpu = GpuBert::load(ctx, files).await?;
        if !check {
            return Ok(gpu);
        }
        let ids = vec![self.encoder.tokenize("Quiver checks the GPU against the CPU.", TextKind::Raw)?];
        let s = self.encoder.sentence_config();
        let on_gpu = gpu.embed_ids(&ids, s.pooling, s.normalize).await?;
        let on_cpu = self.encoder.embed_ids(&ids, 1)?.data;
        let cosine = calibration::cosine(&on_gpu, &on_cpu);
        if !calibration::agree(cosine) {
            return Err(GpuError::Kernel {
                kernel: "encoder check",
                message: format!("the GPU's vector differs from the CPU's (cosine {cosine:.6})"),
            });
        }
        Ok(gpu)
    }

    fn falling_back(self, report: BackendReport, error: &GpuError) -> Self {
        self.fall_back(report, error);
        self
    }

    /// From now on the CPU embeds; the GPU model is dropped.
    fn fall_back(&self, report: BackendReport, error: &GpuError) {
        lock(&self.gpu).take();
        self.set_report(BackendReport {
            active: Backend::Cpu,
            reason: format!("fell back to the CPU: {error}"),
            fallback_code: Some(error.code().to_owned()),
            ..report
        });
    }

    fn set_report(&self, report: BackendReport) {
        *lock(&self.report) = report;
    }

    pub fn report(&self) -> BackendReport {
        lock(&self.report).clone()
    }

    pub fn active(&self) -> Backend {
        lock(&self.report).active
    }

    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The GPU's device, while the GPU backend is active: for [`GpuScan`].
    pub fn gpu_context(&self) -> Option<GpuContext> {
        lock(&self.gpu).as_ref().map(|gpu| gpu.context().clone())
    }

    /// [`crate::embed`] on the active backend. Chunked embedding runs on the CPU.
    pub async fn embed(&self, texts: &[&str], options: &EmbedOptions) -> Result<Embeddings> {
        if options.chunk.is_some() || self.active() == Backend::Cpu {
            return crate::embed(&self.encoder, texts, options);
        }
        let ids = texts.iter().map(|t| self.encoder.tokenize(t, options.kind)).collect::<Result<Vec<_>, _>>()?;
        crate::cut(self.embed_ids(&ids, options.batch_size).await?, options.dims)
    }

    /// Token id sequences (special tokens included) on the active backend, in batches of at
    /// most `batch_size` grouped by length as the CPU encoder groups them.
    pub async fn embed_ids(&self, sequences: &[Vec<u32>], batch_size: usize) -> Result<Embeddings> {
        let gpu = lock(&self.gpu).clone();
        if let Some(gpu) = gpu {
            match self.embed_ids_on(&gpu, sequences, batch_size).await {
                Ok(embeddings) => return Ok(embeddings),
                // Bad input is the caller's: the CPU would refuse it too.
                Err(GpuError::InvalidArgument { op, what }) => return Err(EngineError::InvalidArgument { op, what }),
                Err(GpuError::Model(e)) => return Err(e.into()),
                Err(e) => self.fall_back(self.report(), &e),
            }
        }
        Ok(self.encoder.embed_ids(sequences, batch_size)?)
    }

    /// Every length batch is submitted before the first is read back, so the GPU never
    /// waits for the CPU between batches.
    async fn embed_ids_on(
        &self,
        gpu: &GpuBert,
        sequences: &[Vec<u32>],
        batch_size: usize,
    ) -> Result<Embeddings, GpuError> {
        let max = self.encoder.sentence_config().max_seq_length;
        if let Some(bad) = sequences.iter().find(|s| s.is_empty() || s.len() > max) {
            return Err(GpuError::InvalidArgument {
                op: "embed",
                what: format!("a sequence of {} ids (must be 1 to {max})", bad.len()),
            });
        }
        let (dim, s) = (self.encoder.dim(), self.encoder.sentence_config());
        let lengths: Vec<usize> = sequences.iter().map(Vec::len).collect();
        let batches = length_batches(&lengths, batch_size);
        let pending = batches
            .iter()
            .map(|batch| {
                let members: Vec<Vec<u32>> = batch.iter().map(|&i| sequences[i].clone()).collect();
                gpu.submit(&members, s.pooling, s.normalize)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut data = vec![0f32; sequences.len() * dim];
        for (batch, pending) in batches.iter().zip(pending) {
            let pooled = pending.values().await?;
            for (&i, vector) in batch.iter().zip(pooled.chunks_exact(dim)) {
                data[i * dim..(i + 1) * dim].copy_from_slice(vector);
            }
        }
        Ok(Embeddings { dim, data })
    }
}
