//! The models directory: `<name>.bin` (ggml) beside `<name>.json` (metadata).
//!
//! Files appear atomically (written under a temporary name, then renamed) and
//! metadata is written after its model, so a listed model is always complete.
//! Installs take an exclusive lock on the directory, so parallel test
//! processes or two operators never assemble the same model twice at once.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::ggml::HParams;
use crate::hashing::sha256_file;

#[derive(Debug, Clone)]
pub struct ModelStore {
    root: PathBuf,
}

/// Metadata of one installed model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstalledModel {
    pub name: String,
    pub file: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    pub multilingual: bool,
    /// whisper.cpp model size class: tiny, base, small, medium, large.
    pub size_class: String,
    /// Where it came from, for the operator: wheels, an imported directory, a URL.
    pub source: String,
    pub installed_unix: u64,
    /// Whisper model or voice-activity detector; metadata written before VAD
    /// models existed has no kind and is a Whisper model.
    #[serde(default)]
    pub kind: ModelKind,
}

/// What an installed ggml file is for: whisper.cpp loads the two kinds with
/// different functions.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    #[default]
    Whisper,
    /// Silero voice-activity detector (`whisper_vad_init_*`).
    Vad,
}

impl InstalledModel {
    /// Human summary of the languages the model covers.
    pub fn languages(&self) -> &'static str {
        if self.kind == ModelKind::Vad {
            "speech detector (VAD)"
        } else if self.multilingual {
            "99 languages (multilingual)"
        } else {
            "English only"
        }
    }
}

/// Held while installing; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: std::fs::File,
}

pub fn validate_name(name: &str) -> Result<(), ModelError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ModelError::InvalidName {
            name: name.to_owned(),
        })
    }
}

impl ModelStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn model_path(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.bin"))
    }

    fn metadata_path(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.json"))
    }

    pub fn ensure_root(&self) -> Result<(), ModelError> {
        std::fs::create_dir_all(&self.root).map_err(ModelError::io(&self.root))
    }

    /// Blocks until this process holds the directory's install lock.
    pub fn lock(&self) -> Result<StoreLock, ModelError> {
        self.ensure_root()?;
        let path = self.root.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(ModelError::io(&path))?;
        file.lock().map_err(ModelError::io(&path))?;
        Ok(StoreLock { _file: file })
    }

    /// A scratch directory inside the store (same filesystem, so renames out
    /// of it are atomic). The caller removes it.
    pub fn scratch_dir(&self, label: &str) -> Result<PathBuf, ModelError> {
        let dir = self
            .root
            .join(format!(".work-{label}-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(ModelError::io(&dir))?;
        }
        std::fs::create_dir_all(&dir).map_err(ModelError::io(&dir))?;
        Ok(dir)
    }

    /// Moves a finished ggml file into place and records its metadata.
    pub fn commit(
        &self,
        name: &str,
        ggml: &Path,
        hparams: &HParams,
        source: String,
    ) -> Result<InstalledModel, ModelError> {
        let class = hparams.size_name();
        let multilingual = hparams.is_multilingual();
        self.commit_as(name, ggml, ModelKind::Whisper, multilingual, class, source)
    }

    /// Moves a finished ggml VAD file into place and records its metadata.
    pub fn commit_vad(
        &self,
        name: &str,
        ggml: &Path,
        source: String,
    ) -> Result<InstalledModel, ModelError> {
        self.commit_as(name, ggml, ModelKind::Vad, false, "vad", source)
    }

    fn commit_as(
        &self,
        name: &str,
        ggml: &Path,
        kind: ModelKind,
        multilingual: bool,
        size_class: &str,
        source: String,
    ) -> Result<InstalledModel, ModelError> {
        validate_name(name)?;
        self.ensure_root()?;
        let dest = self.model_path(name);
        std::fs::rename(ggml, &dest).map_err(ModelError::io(&dest))?;
        let meta = InstalledModel {
            name: name.to_owned(),
            file: dest.clone(),
            bytes: std::fs::metadata(&dest)
                .map_err(ModelError::io(&dest))?
                .len(),
            sha256: sha256_file(&dest).map_err(ModelError::io(&dest))?,
            multilingual,
            size_class: size_class.to_owned(),
            source,
            installed_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            kind,
        };
        let meta_path = self.metadata_path(name);
        let tmp = meta_path.with_extension("json.partial");
        let json = serde_json::to_vec_pretty(&meta).expect("metadata serialises");
        std::fs::write(&tmp, json).map_err(ModelError::io(&tmp))?;
        std::fs::rename(&tmp, &meta_path).map_err(ModelError::io(&meta_path))?;
        Ok(meta)
    }

    /// The installed model `name`, if its metadata and file agree on size.
    pub fn get(&self, name: &str) -> Result<Option<InstalledModel>, ModelError> {
        validate_name(name)?;
        let meta_path = self.metadata_path(name);
        let text = match std::fs::read(&meta_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(ModelError::Io {
                    path: meta_path,
                    source: e,
                });
            }
        };
        let meta: InstalledModel = serde_json::from_slice(&text).map_err(|e| ModelError::Io {
            path: meta_path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        let on_disk = std::fs::metadata(&meta.file).map(|m| m.len()).ok();
        Ok((on_disk == Some(meta.bytes)).then_some(meta))
    }

    /// Re-hashes an installed model and compares with its metadata.
    pub fn verify(&self, model: &InstalledModel) -> Result<bool, ModelError> {
        Ok(sha256_file(&model.file).map_err(ModelError::io(&model.file))? == model.sha256)
    }

    /// Every complete installed model, by name.
    pub fn list(&self) -> Result<Vec<InstalledModel>, ModelError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(ModelError::Io {
                    path: self.root.clone(),
                    source: e,
                });
            }
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(ModelError::io(&self.root))?.path();
            let name = match (path.extension(), path.file_stem()) {
                (Some(ext), Some(stem)) if ext == "json" => stem.to_string_lossy().into_owned(),
                _ => continue,
            };
            if validate_name(&name).is_ok()
                && let Some(m) = self.get(&name)?
            {
                out.push(m);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_the_directory() {
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        for good in ["base", "tiny.en", "large-v3_turbo"] {
            assert!(validate_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn empty_store_lists_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path().join("missing"));
        assert!(store.list().unwrap().is_empty());
        assert!(store.get("base").unwrap().is_none());
    }
}
