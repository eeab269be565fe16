//! `stemfeed transcribe`: one file's speech through the configured model.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use stemfeed_asr::{Model, Task, TranscribeOptions};
use stemfeed_core::Config;
use stemfeed_models::ModelStore;

/// Longest a decode of one input may take before it is abandoned.
const DECODE_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Args)]
pub struct TranscribeArgs {
    /// Audio or video file.
    input: PathBuf,
    /// Installed model name (default: the config's asr.model).
    #[arg(long)]
    model: Option<String>,
    /// Spoken language (ISO 639-1); detected when omitted.
    #[arg(long)]
    language: Option<String>,
    /// Translate to English instead of transcribing.
    #[arg(long)]
    translate: bool,
    /// Beam size (1 = greedy decoding).
    #[arg(long, default_value_t = stemfeed_asr::DEFAULT_BEAM)]
    beam: usize,
    /// Print the transcript as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &TranscribeArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let name = args.model.as_deref().unwrap_or(&config.asr.model);
    let store = ModelStore::new(&config.models_dir);
    let installed = store.get(name)?.with_context(|| {
        format!("model {name} is not installed; run `stemfeed models install default`")
    })?;
    let started = Instant::now();
    // Decode no further than the file's declared duration (plus a margin).
    let declared = stemfeed_media::probe::probe(&args.input, crate::probe_cmd::PROBE_TIMEOUT)?;
    let limit = stemfeed_media::DecodeLimit::for_declared(declared.duration_s);
    let pcm = stemfeed_media::audio::decode_to_asr_pcm(
        &args.input,
        limit,
        limit.samples_at(stemfeed_media::audio::ASR_RATE as u32),
        stemfeed_media::Watchdog::new(DECODE_TIMEOUT),
    )?;
    let decoded = started.elapsed();
    let model = Model::load(&installed.file, config.asr.gpu)?;
    let opts = TranscribeOptions {
        language: args.language.clone(),
        task: if args.translate {
            Task::Translate
        } else {
            Task::Transcribe
        },
        threads: config.asr.threads,
        beam_size: args.beam.clamp(1, 10),
        ..TranscribeOptions::default()
    };
    let transcript = model
        .transcribe(&pcm, &opts)
        .with_context(|| format!("{}: captioning", args.input.display()))?;
    let audio_s = pcm.len() as f64 / f64::from(stemfeed_asr::SAMPLE_RATE);
    let total = started.elapsed();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&transcript)?);
    } else {
        for s in &transcript.segments {
            println!("[{:>7.2} → {:>7.2}] {}", s.start, s.end, s.text.trim());
        }
    }
    eprintln!(
        "language {}, {:.1} s of audio, decode {:.2} s, total {:.2} s (model {name})",
        transcript.language,
        audio_s,
        decoded.as_secs_f64(),
        total.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
