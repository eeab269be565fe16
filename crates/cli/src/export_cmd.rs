//! `stemfeed export platform VIDEO --language L --out FILE`: one vertical
//! MP4 with the video's approved captions burned in, for short-video
//! platforms that show no sidecar captions (and whose own automatic
//! captions do not serve Urdu).
//!
//! The largest rendition (made by stemfeed's own encoder from the upload)
//! is decoded, scaled to the profile's frame, and the approved track drawn
//! in the profile's safe area: Nastaliq for Urdu, Punjabi (Shahmukhi),
//! Sindhi and Pashto, Noto Sans otherwise, shaped by Pango. The audio is
//! copied as it is.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use stemfeed_captions::bidi;
use stemfeed_core::Config;
use stemfeed_media::burnin::{self, Style, TimedText};
use stemfeed_media::limits::{DecodeLimit, Watchdog};
use stemfeed_server::{ServerSettings, tus};

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// A vertical H.264/AAC MP4 with an approved caption track burned in.
    Platform(PlatformArgs),
}

#[derive(Debug, Args)]
pub struct PlatformArgs {
    /// The video's id (as the review queue and the feed name it).
    video: String,
    /// The caption language to burn in (ISO 639-1): the video's transcript
    /// when it is spoken in it, else its translation.
    #[arg(long)]
    language: String,
    /// Where to write the MP4 (refused if it exists, unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
    /// Profile whose `[platform]` settings apply (default: short-form, built in).
    #[arg(long)]
    profile: Option<PathBuf>,
}

/// Average advance of a character, in ems, with room to spare: what a line
/// of the safe area's width holds (measured: Noto Sans 0.47, Noto Nastaliq
/// Urdu 0.38 on running text).
const LATIN_EM: f64 = 0.55;
const NASTALIQ_EM: f64 = 0.5;

pub fn run(cmd: ExportCommand, config: &Config) -> anyhow::Result<ExitCode> {
    match cmd {
        ExportCommand::Platform(args) => platform(&args, config),
    }
}

fn platform(args: &PlatformArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let profile = crate::probe_cmd::load_profile(args.profile.as_deref())?;
    let p = &profile.platform;
    if args.out.exists() && !args.force {
        bail!("{} exists; pass --force to replace it", args.out.display());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let work = tempfile::tempdir().context("creating a work directory")?;
    let input = work.path().join("rendition.mp4");
    let source = runtime.block_on(async {
        let server = ServerSettings::new(&config.server, "127.0.0.1:0".parse()?);
        let app = crate::serve::app(
            config,
            server,
            0,
            tus::UploadLimits {
                expiry: Duration::from_secs(1),
                max_open_per_submitter: 0,
                max_bytes_per_submitter: 0,
                min_free_mib: 0,
            },
        )
        .await?;
        let source = stemfeed_server::export::platform_source(&app, &args.video, &args.language)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.1))?;
        app.store
            .get_file(&source.rendition_key, &input)
            .await
            .with_context(|| format!("fetching the rendition of {}", args.video))?;
        anyhow::Ok(source)
    })?;

    let nastaliq = bidi::is_rtl_language(&args.language);
    let (font, size, em) = if nastaliq {
        ("Noto Nastaliq Urdu", p.nastaliq_font_px, NASTALIQ_EM)
    } else {
        ("Noto Sans", p.font_px, LATIN_EM)
    };
    let left = (f64::from(p.width) * p.safe_left).round() as u32;
    let right = (f64::from(p.width) * p.safe_right).round() as u32;
    let bottom = (f64::from(p.height) * p.safe_bottom).round() as u32;
    let safe_width = f64::from(p.width.saturating_sub(left + right));
    let max_line = (safe_width / (f64::from(size) * em)).floor().max(8.0) as usize;
    let cues: Vec<TimedText> = source
        .cues
        .iter()
        .map(|c| TimedText {
            start: c.start,
            end: c.end.min(source.duration_s.max(c.start)),
            text: bidi::strip_marks(&c.text),
        })
        .collect();
    let cues = burnin::wrap(
        &cues,
        max_line,
        p.max_lines,
        stemfeed_captions::segment::graphemes,
    );
    let partial = args.out.with_extension("partial.mp4");
    let style = Style {
        font: font.to_owned(),
        size_px: size,
        left,
        right,
        bottom,
        crf: p.quantizer,
    };
    let result = burnin::burn(
        &input,
        &partial,
        p.width,
        p.height,
        &cues,
        &style,
        DecodeLimit::for_declared(source.duration_s),
        Watchdog::new(Duration::from_secs(60) + Duration::from_secs_f64(source.duration_s * 20.0)),
    );
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e).with_context(|| format!("burning {} into {}", source.track, args.video));
    }
    std::fs::rename(&partial, &args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let report = serde_json::json!({
        "video": args.video,
        "title": source.title,
        "track": source.track,
        "version": source.version,
        "rendition": source.rendition_key,
        "captions": cues.iter().map(|c| serde_json::json!({"start": c.start, "end": c.end, "text": c.text})).collect::<Vec<_>>(),
        "out": args.out,
        "width": p.width,
        "height": p.height,
        "safe_area": { "left": left, "right": p.width - right, "bottom": p.height - bottom },
        "font": format!("{font} {size}px"),
        "max_line": max_line,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}
