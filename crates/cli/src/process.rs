//! `stemfeed process`: one video through probe → validate → loudness and
//! ASR audio → transcode, with captions → tags running beside the transcode
//! from the moment the audio is ready, and `manifest.json` written last so
//! a reader never sees a half-finished set. Runs the stages in this process:
//! the file is the caller's own and no credentials are at stake (the worker
//! isolates them).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use stemfeed_core::Config;
use stemfeed_pipeline::compose;
use stemfeed_pipeline::contract::{AudioReady, Captioned, JobSpec, StageSettings};
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
        captions_elsewhere: false,
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
    // Captions start as soon as the first half has written the ASR audio,
    // and run while the video encodes. The first half's result or failure
    // decides what happens next: a failed transcode is reported at once.
    let (tx, rx) = std::sync::mpsc::channel::<Option<AudioReady>>();
    let captions = {
        let (job, settings) = (job.clone(), settings.clone());
        let beside = settings.beside_encode();
        std::thread::spawn(move || -> anyhow::Result<Option<Captioned>> {
            let Ok(audio) = rx.recv() else {
                return Ok(None);
            };
            // Heard before the encode ends: captions run beside it, with
            // fewer threads; without audio, tags alone after it.
            let settings = if audio.is_some() { &beside } else { &settings };
            let captioned = stages::captions(&job, settings, &tagger, audio, &mut |_, _| {})?;
            Ok(Some(captioned))
        })
    };
    let mut sent = false;
    let prepared = stages::prepare(&job, &settings, &mut progress, &mut |audio| {
        sent = tx.send(Some(audio)).is_ok();
    })?;
    if !sent {
        let _ = tx.send(None);
    }
    let captioned = captions
        .join()
        .map_err(|_| anyhow::anyhow!("{}: the captions thread panicked", job.display_name))??
        .ok_or_else(|| anyhow::anyhow!("{}: captions did not run", job.display_name))?;
    compose::write_manifest(&job, &prepared, &captioned)
        .map_err(|e| anyhow::anyhow!("{}: writing manifest.json: {e}", job.display_name))?;
    println!("{}", args.out.join("manifest.json").display());
    Ok(ExitCode::SUCCESS)
}
