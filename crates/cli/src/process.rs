//! `stemfeed process`: one video through probe → validate → transcode →
//! captions → tags, with `manifest.json` written last so a reader never sees
//! a half-finished set. Runs the stages in this process: the file is the
//! caller's own and no credentials are at stake (the worker isolates them).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use stemfeed_core::Config;
use stemfeed_pipeline::contract::{JobSpec, StageSettings};
use stemfeed_pipeline::{Stage, stages};

use crate::probe_cmd::load_profile;

#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// The uploaded video (read only, never modified).
    input: PathBuf,
    /// Output directory (created; existing outputs are replaced).
    #[arg(long)]
    out: PathBuf,
    /// Profile TOML (default: the built-in pipelines/short-form.toml).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Spoken language (ISO 639-1) from the submitter; overrides detection.
    #[arg(long)]
    language: Option<String>,
    /// Title: steers Whisper's vocabulary prompt and counts as tagging evidence.
    #[arg(long)]
    title: Option<String>,
    /// Description: steers Whisper's vocabulary prompt and counts as tagging evidence.
    #[arg(long)]
    description: Option<String>,
    /// The submitter's grade (1–12), used for the grade band when the video names none.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=12))]
    grade: Option<u8>,
    /// Transcode only (no captions stage).
    #[arg(long)]
    no_captions: bool,
}

pub fn run(args: &ProcessArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let profile = load_profile(args.profile.as_deref())?;
    if let Some(lang) = &args.language {
        stemfeed_worker::ingest::check_language(lang)?;
    }
    let tagger = stemfeed_pipeline::tag::tagger(&config.tagging)?;
    let scratch = tempfile::tempdir()?;
    let job = JobSpec {
        input: args.input.clone(),
        display_name: args.input.display().to_string(),
        out: args.out.clone(),
        scratch: scratch.path().to_path_buf(),
        profile,
        language: args.language.clone(),
        title: args.title.clone(),
        description: args.description.clone(),
        grade: args.grade,
        captions: !args.no_captions,
    };
    let settings = StageSettings::from(config);
    let mut last = -1i64;
    let mut progress = |stage: Stage, fraction: f64| {
        if stage == Stage::Transcode {
            let pct = (fraction * 100.0) as i64;
            if pct / 10 > last / 10 {
                last = pct;
                eprintln!("{}: transcode {pct}%", job.display_name);
            }
        }
    };
    let prepared = stages::prepare(&job, &settings, &mut progress)?;
    stages::finish(&job, &settings, &tagger, prepared, &mut progress)?;
    println!("{}", args.out.join("manifest.json").display());
    Ok(ExitCode::SUCCESS)
}
