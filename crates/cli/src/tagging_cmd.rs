//! The tagging stage: reads a processed output's caption tracks, tags the
//! video against the taxonomy and writes `tags.json`. `stemfeed process` runs
//! it after captions; `stemfeed tag DIR` re-runs it (after a caption edit or a
//! taxonomy change) without touching the media.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::Value;
use stemfeed_core::Config;
use stemfeed_tagging::{Document, Segment, Tagger, Tags, Taxonomy};

#[derive(Debug, Args)]
pub struct TagArgs {
    /// Output directory written by `stemfeed process` (holds manifest.json).
    dir: PathBuf,
    /// Title (default: the one recorded in the manifest).
    #[arg(long)]
    title: Option<String>,
    /// Description (default: the one recorded in the manifest).
    #[arg(long)]
    description: Option<String>,
    /// The submitter's grade, 1–12 (default: the one recorded in the manifest).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=12))]
    grade: Option<u8>,
}

/// The configured taxonomy, compiled.
pub fn tagger(config: &Config) -> anyhow::Result<Tagger> {
    let taxonomy = match &config.tagging.taxonomy {
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

/// Cues of `captions/<lang>.<kind>.json` files in `out`, by kind.
fn caption_segments(out: &Path) -> anyhow::Result<(Option<String>, Vec<Segment>, Vec<Segment>)> {
    let dir = out.join("captions");
    let mut language = None;
    let mut transcript = Vec::new();
    let mut translation = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok((None, transcript, translation));
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("tagging: reading {}", path.display()))?;
        let track: Value = serde_json::from_str(&text)
            .with_context(|| format!("tagging: {} is not caption JSON", path.display()))?;
        let segments = track["cues"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| Segment {
                text: c["text"].as_str().unwrap_or_default().to_owned(),
                start: c["start"].as_f64(),
                end: c["end"].as_f64(),
            });
        match track["kind"].as_str() {
            Some("translation") => translation.extend(segments),
            _ => {
                language = track["language"].as_str().map(str::to_owned);
                transcript.extend(segments);
            }
        }
    }
    Ok((language, transcript, translation))
}

/// Tags the video in `out` and writes `out/tags.json` (atomically).
pub fn tag_output(
    tagger: &Tagger,
    out: &Path,
    meta: &Metadata,
    language_hint: Option<&str>,
) -> anyhow::Result<Tags> {
    let (language, transcript, translation) = caption_segments(out)?;
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
    let tmp = out.join(".tags.json.partial");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&tags)?)
        .with_context(|| format!("tagging: writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("tagging: writing {}", path.display()))?;
    Ok(tags)
}

/// The manifest's summary of `tags.json`.
pub fn manifest_entry(tags: &Tags) -> Value {
    serde_json::json!({
        "file": "tags.json",
        "stem": tags.stem,
        "subject": tags.subjects.first().filter(|_| tags.stem).map(|s| &s.id),
        "topic": tags.subjects.first().filter(|_| tags.stem).and_then(|s| s.topics.first()).map(|t| &t.id),
        "grade_band": tags.grade_band.as_ref().map(|g| &g.id),
        "off_topic": tags.off_topic.as_ref().map(|o| &o.reason),
    })
}

pub fn run(args: &TagArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let manifest_path = args.dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path).with_context(|| {
        format!(
            "tag: {} not found; run `stemfeed process` first",
            manifest_path.display()
        )
    })?;
    let mut manifest: Value = serde_json::from_str(&text)
        .with_context(|| format!("tag: {} is not valid JSON", manifest_path.display()))?;
    let source = &manifest["source"];
    let meta = Metadata {
        title: args
            .title
            .clone()
            .or(source["title"].as_str().map(str::to_owned)),
        description: args
            .description
            .clone()
            .or(source["description"].as_str().map(str::to_owned)),
        grade: args.grade.or(source["grade_hint"]
            .as_u64()
            .and_then(|g| u8::try_from(g).ok())),
    };
    let hint = source["language_hint"].as_str().map(str::to_owned);
    let tags = tag_output(&tagger(config)?, &args.dir, &meta, hint.as_deref())?;
    manifest["tags"] = manifest_entry(&tags);
    let tmp = args.dir.join(".manifest.json.partial");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&manifest)?).context("tag: writing manifest")?;
    std::fs::rename(&tmp, &manifest_path).context("tag: publishing manifest.json")?;
    println!("{}", serde_json::to_string_pretty(&tags)?);
    Ok(ExitCode::SUCCESS)
}
