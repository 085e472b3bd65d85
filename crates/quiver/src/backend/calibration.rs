//! The calibration run behind `auto`: the same representative batch on the CPU and on the
//! GPU, within a budget in all ([`CALIBRATION_BUDGET`] unless the caller gives another).
//! The GPU only ever gets the time that is left
//! and, for the timed run, no more than the CPU took: a GPU still busy then has lost, and
//! nobody waits for it (on lavapipe or SwiftShader it loses within the budget). Where the
//! budget ran out before the GPU had the CPU's time, the outcome is inconclusive: the CPU
//! runs this time and nothing is cached.

use std::time::Duration;

use quiver_encoder::{Encoder, TextKind};
use quiver_gpu::{GpuBert, GpuError};
use serde::{Deserialize, Serialize};
use web_time::Instant;

use super::Backend;

/// The most a calibration run takes by default, CPU and GPU together.
pub const CALIBRATION_BUDGET: Duration = Duration::from_millis(300);

/// The CPU's share: what its timed batch is sized to take, so the GPU has time left. A
/// larger budget gives the GPU more time, not the CPU a larger batch.
const CPU_SHARE: Duration = Duration::from_millis(90);

/// Sequences of the representative batch: at most a catalogue batch, at least two.
const MAX_SEQUENCES: usize = 32;
const MIN_SEQUENCES: usize = 2;

/// The least cosine between GPU and CPU vectors of the same text for the GPU to be used.
const AGREEMENT: f32 = 0.999;

/// Whether GPU and CPU vectors with this cosine agree (NaN never does).
pub(super) fn agree(cosine: f32) -> bool {
    cosine >= AGREEMENT
}

/// A catalogue-like sentence of about 32 tokens.
const SAMPLE: &str = "Waterproof hiking boots with a cushioned sole and breathable lining, \
    ideal for long walks on rocky mountain trails in every season of the year";

/// What a calibration run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Calibration {
    /// Sequences × tokens of the representative batch.
    pub sequences: usize,
    pub tokens_per_sequence: usize,
    pub cpu_ms: f64,
    /// The GPU's first run, of one sequence: includes lazily compiled pipelines.
    pub gpu_first_ms: Option<f64>,
    /// The GPU's timed run; `None` when it did not finish before the CPU's time was up.
    pub gpu_ms: Option<f64>,
    /// How long the GPU's unfinished run was allowed: the CPU's time, or less where the
    /// budget ran out first (then the calibration is inconclusive).
    pub gpu_allowed_ms: Option<f64>,
    /// The whole calibration, both backends.
    pub total_ms: f64,
    /// The budget the run had (absent in decisions cached before budgets could be set).
    #[serde(default)]
    pub budget_ms: Option<f64>,
}

impl Calibration {
    /// Whether the outcome would hold on a rerun: the GPU finished, or had at least the
    /// CPU's time and did not.
    pub fn conclusive(&self) -> bool {
        self.gpu_ms.is_some() || self.gpu_allowed_ms.is_some_and(|allowed| allowed >= self.cpu_ms)
    }

    pub fn winner(&self) -> Backend {
        match self.gpu_ms {
            Some(gpu) if gpu < self.cpu_ms => Backend::Gpu,
            _ => Backend::Cpu,
        }
    }

    /// One line for reports: both times on the batch and who won.
    pub fn summary(&self) -> String {
        let unfinished = self.gpu_allowed_ms.map_or("unfinished".to_owned(), |t| format!("unfinished in {t:.1} ms"));
        let gpu = |t: Option<f64>| t.map_or(unfinished.clone(), |t| format!("{t:.1} ms"));
        let first = self.gpu_first_ms.map_or("unfinished".to_owned(), |t| format!("{t:.1} ms"));
        format!(
            "{} wins on {}×{} tokens (CPU {:.1} ms, GPU {}; the GPU's first run of one sequence {first})",
            self.winner().to_string().to_uppercase(),
            self.sequences,
            self.tokens_per_sequence,
            self.cpu_ms,
            gpu(self.gpu_ms),
        )
    }
}

/// Times the representative batch on both backends (the GPU's results checked against the
/// CPU's), within `budget`.
pub(super) async fn calibrate(encoder: &Encoder, gpu: &GpuBert, budget: Duration) -> Result<Calibration, GpuError> {
    let started = Instant::now();
    let remaining = || left(started, budget);
    let cpu_share = CPU_SHARE.min(budget.mul_f64(0.3));
    let sample = encoder.tokenize(SAMPLE, TextKind::Raw)?;
    let batch = |n: usize| vec![sample.clone(); n];
    let s = encoder.sentence_config();

    // A small probe sizes the timed batch to the CPU's share of the budget.
    let probe = Instant::now();
    encoder.embed_ids(&batch(MIN_SEQUENCES), MAX_SEQUENCES)?;
    let per_sequence = probe.elapsed().as_secs_f64() / MIN_SEQUENCES as f64;
    let sequences = ((cpu_share.as_secs_f64() / per_sequence.max(1e-6)) as usize).clamp(MIN_SEQUENCES, MAX_SEQUENCES);
    let ids = batch(sequences);

    let timed = Instant::now();
    let on_cpu = encoder.embed_ids(&ids, MAX_SEQUENCES)?.data;
    let cpu = timed.elapsed();

    let mut calibration = Calibration {
        sequences,
        tokens_per_sequence: sample.len(),
        cpu_ms: ms(cpu),
        gpu_first_ms: None,
        gpu_ms: None,
        gpu_allowed_ms: None,
        total_ms: 0.0,
        budget_ms: Some(ms(budget)),
    };
    // One sequence first: its time is the first-batch latency (pipelines a driver compiles
    // lazily), and a slow adapter abandons little work when it runs out of time.
    let first = Instant::now();
    let allowed = remaining();
    let first_run = gpu.embed_ids_within(&ids[..1], s.pooling, s.normalize, Some(allowed)).await?;
    if first_run.is_none() {
        calibration.gpu_allowed_ms = Some(ms(allowed));
    }
    if let Some(on_gpu) = first_run {
        calibration.gpu_first_ms = Some(ms(first.elapsed()));
        let agreement = cosine(&on_gpu, &on_cpu[..on_gpu.len()]);
        if !agree(agreement) {
            return Err(GpuError::Kernel {
                kernel: "calibration",
                message: format!("the GPU's vector differs from the CPU's (cosine {agreement:.6})"),
            });
        }
        let timed = Instant::now();
        let deadline = remaining().min(cpu);
        if gpu.embed_ids_within(&ids, s.pooling, s.normalize, Some(deadline)).await?.is_some() {
            calibration.gpu_ms = Some(ms(timed.elapsed()));
        } else {
            calibration.gpu_allowed_ms = Some(ms(deadline));
        }
    }
    calibration.total_ms = ms(started.elapsed());
    Ok(calibration)
}

/// What is left of the budget, less a margin for the bookkeeping around the GPU's runs.
fn left(started: Instant, budget: Duration) -> Duration {
    budget.saturating_sub(started.elapsed() + Duration::from_millis(5))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Cosine similarity; NaN anywhere gives NaN (which fails every `>=` check).
pub(super) fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}
