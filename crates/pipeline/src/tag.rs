//! The tagging stage: reads an output's caption tracks, tags the video
//! against the taxonomy and writes `tags.json`. Pure Rust, so `stemfeed tag`
//! re-runs it after a caption edit or a taxonomy change without media code.

use std::path::{Path, PathBuf};

use stemfeed_captions::CaptionFile;
use stemfeed_core::config::TaggingConfig;
use stemfeed_tagging::{Document, Segment, Tagger, Tags, Taxonomy, TaxonomyError};

use crate::contract::write_atomic;

/// The configured taxonomy, compiled.
pub fn tagger(config: &TaggingConfig) -> Result<Tagger, TaxonomyError> {
    let taxonomy = match &config.taxonomy {
        Some(path) => Taxonomy::load(path)?,
        None => Taxonomy::built_in(),
    };
    Ok(Tagger::new(taxonomy))
}

/// What the submitter told us about the video.
#[derive(Debug, Default, Clone)]
pub struct Metadata {
    pub title: Option<String>,
    pub description: Option<String>,
    pub grade: Option<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum TagError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a caption track file: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The caption track files (`captions/*.json`) under `out`, by name.
pub fn caption_files(out: &Path) -> Result<Vec<CaptionFile>, TagError> {
    let dir = out.join("captions");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).map_err(|source| TagError::Read {
                path: path.clone(),
                source,
            })?;
            serde_json::from_slice(&bytes).map_err(|source| TagError::Parse { path, source })
        })
        .collect()
}

/// Tags the video in `out` and writes `out/tags.json` (atomically).
pub fn tag_output(
    tagger: &Tagger,
    out: &Path,
    meta: &Metadata,
    language_hint: Option<&str>,
) -> Result<Tags, TagError> {
    let mut language = None;
    let (mut transcript, mut translation) = (Vec::new(), Vec::new());
    for track in caption_files(out)? {
        let segments = track.cues.iter().map(|c| Segment {
            text: c.text.clone(),
            start: Some(c.start),
            end: Some(c.end),
        });
        if track.is_translation() {
            translation.extend(segments);
        } else {
            language = Some(track.language.clone());
            transcript.extend(segments);
        }
    }
    let doc = Document {
        title: meta.title.clone().unwrap_or_default(),
        description: meta.description.clone().unwrap_or_default(),
        language: language.or(language_hint.map(str::to_owned)),
        transcript,
        translation,
        grade_hint: meta.grade,
    };
    let tags = tagger.tag(&doc);
    let path = out.join("tags.json");
    let bytes = serde_json::to_vec_pretty(&tags).expect("tags are plain data");
    write_atomic(&path, &bytes).map_err(|source| TagError::Write { path, source })?;
    Ok(tags)
}
