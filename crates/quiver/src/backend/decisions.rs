//! `auto`'s decisions, kept per model and adapter so that calibration runs once per device:
//! natively in a JSON file in the user's cache folder, in the browser in the page's storage
//! (the npm package hands the same JSON back and forth).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use quiver_encoder::Encoder;
use quiver_gpu::GpuError;
use serde::{Deserialize, Serialize};

use super::{AdapterSummary, Backend, Calibration};
use crate::{EngineError, Result};

/// A cached choice, why, the adapter it was made on and the calibration it came from (none
/// for a GPU that failed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub backend: Backend,
    pub reason: String,
    pub fallback_code: Option<String>,
    pub calibration: Option<Calibration>,
    /// Absent in decisions cached by Quiver 0.1 before this field.
    #[serde(default)]
    pub adapter: Option<AdapterSummary>,
}

impl Decision {
    pub fn calibrated(calibration: &Calibration, adapter: &AdapterSummary) -> Self {
        Decision {
            backend: calibration.winner(),
            reason: calibration.summary(),
            fallback_code: None,
            calibration: Some(calibration.clone()),
            adapter: Some(adapter.clone()),
        }
    }
}

/// Decisions by [`DecisionCache::key`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DecisionCache {
    decisions: BTreeMap<String, Decision>,
}

impl DecisionCache {
    /// Model (by weights hash) and adapter (name, API, kind, driver) and this build of
    /// Quiver (`build.rs`: its version and a hash of its kernels' sources), whose kernels may
    /// change the answer.
    pub fn key(encoder: &Encoder, adapter: &AdapterSummary) -> String {
        format!(
            "{}{} {} {} {} | quiver {}",
            Self::model_prefix(encoder),
            adapter.name,
            adapter.api,
            adapter.device_type,
            adapter.driver,
            env!("QUIVER_BUILD")
        )
    }

    /// The part of a key that names the model.
    fn model_prefix(encoder: &Encoder) -> String {
        let hash = encoder.weights_sha256();
        // `get`: a hash handed in from JS need not be ASCII.
        let weights = hash.get(..16).unwrap_or(hash);
        format!("{} {weights} | ", encoder.id())
    }

    pub fn get(&self, key: &str) -> Option<&Decision> {
        self.decisions.get(key)
    }

    /// The cached decision for this model where every adapter it was decided on (by this
    /// version of Quiver) chose the CPU: `auto` then needs no GPU at all, not even to ask
    /// for an adapter (which wakes the GPU driver).
    pub fn cpu_for_model(&self, encoder: &Encoder) -> Option<&Decision> {
        let prefix = Self::model_prefix(encoder);
        let version = format!("| quiver {}", env!("QUIVER_BUILD"));
        let mut found = self.decisions.iter().filter(|(key, _)| key.starts_with(&prefix) && key.ends_with(&version));
        let (_, first) = found.next()?;
        let all_cpu = first.backend == Backend::Cpu && found.all(|(_, d)| d.backend == Backend::Cpu);
        all_cpu.then_some(first)
    }

    pub fn insert(&mut self, key: String, decision: Decision) {
        self.decisions.insert(key, decision);
    }

    /// After the GPU failed under `auto`: a `lasting` failure (a kernel, the model, the
    /// limits) is remembered as a CPU decision, so later loads skip the GPU; any other (a
    /// lost device, memory) forgets what was cached, so the next load tries again.
    pub fn remember_failure(&mut self, key: String, adapter: &AdapterSummary, error: &GpuError, lasting: bool) {
        if lasting {
            let decision = Decision {
                backend: Backend::Cpu,
                reason: format!("the GPU failed: {error}"),
                fallback_code: Some(error.code().to_owned()),
                calibration: None,
                adapter: Some(adapter.clone()),
            };
            self.decisions.insert(key, decision);
        } else {
            self.decisions.remove(&key);
        }
    }

    pub fn len(&self) -> usize {
        self.decisions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.decisions.is_empty()
    }

    /// Parses stored decisions; anything unreadable is an empty cache (it only costs a
    /// calibration run).
    pub fn from_json(json: &str) -> Self {
        serde_json::from_str(json).unwrap_or_default()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("decisions are plain data")
    }

    /// Where native runs keep decisions: `$QUIVER_CACHE_DIR`, else `$XDG_CACHE_HOME/quiver`,
    /// else `~/.cache/quiver`; `backend.json` in it.
    pub fn default_path() -> Option<PathBuf> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let dir = var("QUIVER_CACHE_DIR")
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("quiver")))
            .or_else(|| var("HOME").map(|d| d.join(".cache").join("quiver")))?;
        Some(dir.join("backend.json"))
    }

    /// The decisions in `path`; none when it does not exist or cannot be read.
    pub fn load(path: &Path) -> Self {
        std::fs::read_to_string(path).map(|json| Self::from_json(&json)).unwrap_or_default()
    }

    /// Writes the decisions to `path` (a temporary file renamed over it, so a reader never
    /// sees half a file).
    pub fn save(&self, path: &Path) -> Result<()> {
        let io = |op: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| EngineError::Io { op, path, source }
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        }
        let partial = path.with_extension("json.partial");
        std::fs::write(&partial, self.to_json()).map_err(io("write", &partial))?;
        std::fs::rename(&partial, path).map_err(io("rename", path))
    }
}
