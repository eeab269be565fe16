//! `stemfeed process`: one video through probe → validate → transcode, with
//! `manifest.json` written last so a reader never sees a half-finished set.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::json;
use stemfeed_core::{Config, media_info};

use crate::probe_cmd::{PROBE_TIMEOUT, load_profile};

/// Manifest format version; bump on incompatible changes.
const MANIFEST_VERSION: u32 = 1;

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
    /// Title, used in Whisper's vocabulary prompt.
    #[arg(long)]
    title: Option<String>,
    /// Description, used in Whisper's vocabulary prompt.
    #[arg(long)]
    description: Option<String>,
    /// Transcode only (no captions stage).
    #[arg(long)]
    no_captions: bool,
}

/// Transcoding may take a while on a small CPU box; this only stops a hung run.
fn transcode_timeout(duration_s: f64) -> Duration {
    Duration::from_secs_f64(120.0 + duration_s * 20.0)
}

fn relative(out: &Path, path: &Path) -> String {
    path.strip_prefix(out)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

pub fn run(args: &ProcessArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let profile = load_profile(args.profile.as_deref())?;
    if let Some(lang) = &args.language
        && (lang.len() != 2 || !lang.bytes().all(|b| b.is_ascii_lowercase()))
    {
        anyhow::bail!("--language {lang:?}: use an ISO 639-1 code such as ur, en, pa, sd, ps");
    }
    let started = Instant::now();
    let info = stemfeed_media::probe::probe(&args.input, PROBE_TIMEOUT)?;
    let probe_s = started.elapsed().as_secs_f64();

    let accepted = media_info::validate(&info, &profile)
        .map_err(|reason| anyhow::anyhow!("{}: validate: {reason}", args.input.display()))?;

    // Fail before transcoding if captions cannot run.
    let model_file = if args.no_captions {
        None
    } else {
        let store = stemfeed_models::ModelStore::new(&config.models_dir);
        let name = &config.asr.model;
        let installed = store.get(name)?.with_context(|| {
            format!("captions: model {name} is not installed; run `stemfeed models install default` (or pass --no-captions)")
        })?;
        // Per-language models are checked now too, not after the transcode.
        crate::captioning::language_models(config)?;
        Some(installed.file)
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let manifest_path = args.out.join("manifest.json");
    // An old manifest would describe outputs about to be replaced.
    let _ = std::fs::remove_file(&manifest_path);

    let t = Instant::now();
    let loudness = if accepted.has_audio {
        let a = &profile.audio;
        Some(stemfeed_media::loudness::measure(
            &args.input,
            a.sample_rate,
            a.channels,
            a.loudness_target_lufs,
            a.true_peak_max_dbtp,
            transcode_timeout(info.duration_s),
        )?)
    } else {
        None
    };
    let loudness_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut last = -1i64;
    let output = stemfeed_media::transcode::transcode(
        &args.input,
        &info,
        &profile,
        &args.out,
        loudness.as_ref().map_or(0.0, |l| l.applied_gain_db),
        transcode_timeout(info.duration_s),
        &mut |fraction| {
            let pct = (fraction * 100.0) as i64;
            if pct / 10 > last / 10 {
                last = pct;
                eprintln!("{}: transcode {pct}%", args.input.display());
            }
        },
    )?;
    let transcode_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let fps = output.renditions.first().map_or(30, |r| r.fps);
    let captions = match (&model_file, accepted.has_audio) {
        (Some(file), true) => Some(crate::captioning::run(
            file,
            &output.asr_pcm,
            &profile,
            config,
            fps,
            &crate::captioning::Hints {
                language: args.language.clone(),
                title: args.title.clone(),
                description: args.description.clone(),
            },
            &args.out,
            info.duration_s,
        )?),
        _ => None,
    };
    let captions_s = t.elapsed().as_secs_f64();
    let subtitles = captions
        .as_ref()
        .map(|c| c.subtitles.clone())
        .unwrap_or_default();
    let master =
        stemfeed_media::transcode::write_master_playlist(&args.out, &output.renditions, &subtitles)
            .context("writing hls/master.m3u8")?;

    let renditions: Vec<_> = output
        .renditions
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "path": relative(&args.out, &r.mp4),
                "hls_playlist": relative(&args.out, &r.hls_playlist),
                "width": r.width,
                "height": r.height,
                "fps": r.fps,
                "video_kbps": r.video_kbps,
                "audio_kbps": r.audio_kbps,
                "codecs": r.codecs,
                "bytes": std::fs::metadata(&r.mp4).map(|m| m.len()).unwrap_or(0),
                "duration_s": info.duration_s,
            })
        })
        .collect();
    let manifest = json!({
        "version": MANIFEST_VERSION,
        "source": {
            "file": args.input.file_name().map(|n| n.to_string_lossy().into_owned()),
            "media": info,
            "language_hint": args.language,
        },
        "profile": profile.name,
        "validation": accepted,
        "captions": match (&captions, args.no_captions, accepted.has_audio) {
            (Some(c), _, _) => c.manifest.clone(),
            (None, true, _) => json!({"skipped": "--no-captions"}),
            (None, _, false) => json!({"skipped": "no audio stream"}),
            (None, _, _) => json!(null),
        },
        "loudness": loudness,
        "renditions": renditions,
        "hls": { "master": relative(&args.out, &master) },
        "poster": output.poster.as_ref().map(|p| json!({
            "path": relative(&args.out, &p.path), "width": p.width, "height": p.height, "time_s": p.time_s,
        })),
        "thumbnails": output.thumbnails.iter().map(|t| json!({
            "path": relative(&args.out, &t.path), "width": t.width, "height": t.height, "time_s": t.time_s,
        })).collect::<Vec<_>>(),
        "asr_audio": { "samples_16k": output.asr_pcm.len(), "seconds": output.asr_pcm.len() as f64 / 16_000.0 },
        "stages": { "probe_s": probe_s, "loudness_s": loudness_s, "transcode_s": transcode_s, "captions_s": captions_s, "total_s": started.elapsed().as_secs_f64() },
    });
    let tmp = args.out.join(".manifest.json.partial");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&manifest)?).context("writing manifest")?;
    std::fs::rename(&tmp, &manifest_path).context("publishing manifest.json")?;
    println!("{}", manifest_path.display());
    Ok(ExitCode::SUCCESS)
}
