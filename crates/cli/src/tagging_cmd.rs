//! `stemfeed tag DIR`: re-runs the tagging stage on a processed output
//! (after a caption edit or a taxonomy change) without touching the media,
//! and updates `tags.json` and the manifest's summary.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use stemfeed_core::Config;
use stemfeed_pipeline::Manifest;
use stemfeed_pipeline::contract::TagsEntry;
use stemfeed_pipeline::tag::{Metadata, tag_output, tagger};

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

pub fn run(args: &TagArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let manifest_path = args.dir.join("manifest.json");
    if !manifest_path.is_file() {
        anyhow::bail!(
            "tag: {} not found; run `stemfeed process` first",
            manifest_path.display()
        );
    }
    let mut manifest = Manifest::read(&manifest_path).with_context(|| {
        format!(
            "tag: {} is not a stemfeed manifest",
            manifest_path.display()
        )
    })?;
    let source = &manifest.source;
    let meta = Metadata {
        title: args.title.clone().or(source.title.clone()),
        description: args.description.clone().or(source.description.clone()),
        grade: args.grade.or(source.grade_hint),
    };
    let hint = source.language_hint.clone();
    let tags = tag_output(&tagger(&config.tagging)?, &args.dir, &meta, hint.as_deref())?;
    manifest.tags = TagsEntry::from(&tags);
    manifest
        .write(&args.dir)
        .context("tag: writing manifest.json")?;
    println!("{}", serde_json::to_string_pretty(&tags)?);
    Ok(ExitCode::SUCCESS)
}
